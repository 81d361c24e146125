"""One decoder step of a transformers T5 model for beam search, without copies.

The encoder runs once per user; each layer's cross-attention keys and values are
computed once from it, [users, heads, source, d_kv], and every beam of a user attends
to them by broadcasting, so the encoder output is never repeated per beam. The
self-attention cache (`BeamCache`) is never copied when beams are re-ranked: only small
ancestor tables change. Layer norms, feed-forward blocks, the embedding
and the LM head are the model's own modules; `tests` check the logits against the
model's forward pass.
"""

from __future__ import annotations

import torch


class T5Decoder:
    def __init__(self, model, max_steps: int):
        cfg = model.config
        self.model = model
        dec = model.get_decoder()
        self.blocks = dec.block
        self.embed = dec.embed_tokens
        self.final_norm = dec.final_layer_norm
        self.lm_head = model.lm_head
        self.heads, self.d_kv = cfg.num_heads, cfg.d_kv
        scale = getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", True))
        self.out_scale = cfg.d_model ** -0.5 if scale else 1.0
        rel = self.blocks[0].layer[0].SelfAttention
        with torch.no_grad():  # [heads, query position, key position]
            self.position_bias = rel.compute_bias(max_steps, max_steps)[0]

    @torch.inference_mode()
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        enc = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        h = enc.last_hidden_state
        b, s, _ = h.shape
        cross = []
        for block in self.blocks:
            att = block.layer[1].EncDecAttention
            # laid out once for the per-step matmuls: keys [b, h, d, s], values [b, h, s, d]
            k = att.k(h).view(b, s, self.heads, self.d_kv).permute(0, 2, 3, 1).contiguous()
            v = att.v(h).view(b, s, self.heads, self.d_kv).transpose(1, 2).contiguous()
            cross.append((k, v))
        bias = torch.zeros(b, 1, 1, s, dtype=h.dtype, device=h.device)
        bias.masked_fill_(~attention_mask.bool()[:, None, None, :], torch.finfo(h.dtype).min)
        return cross, bias

    def new_cache(self, users: int, beams: int, steps: int, like: torch.Tensor) -> "BeamCache":
        return BeamCache(len(self.blocks), users, beams, steps, self.heads, self.d_kv, like)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, t: int, cache: "BeamCache", cross, enc_bias) -> torch.Tensor:
        """Log-probabilities [users, beams, vocab] of the token after `tokens` (position t)."""
        b, k = tokens.shape
        h = self.embed(tokens)
        bias_t = self.position_bias[:, t, : t + 1]  # [heads, t+1]
        for layer, block in enumerate(self.blocks):
            sa = block.layer[0]
            att = sa.SelfAttention
            x = sa.layer_norm(h)
            q = att.q(x).view(b, k, self.heads, self.d_kv).transpose(1, 2)  # [b, h, k, d]
            out = cache.attend(layer, t, q, att.k(x).view(b, k, self.heads, self.d_kv),
                               att.v(x).view(b, k, self.heads, self.d_kv), bias_t)
            h = h + att.o(out.transpose(1, 2).reshape(b, k, -1))
            ca = block.layer[1]
            att = ca.EncDecAttention
            q = att.q(ca.layer_norm(h)).view(b, k, self.heads, self.d_kv).transpose(1, 2)
            xk, xv = cross[layer]
            scores = torch.matmul(q, xk) + enc_bias  # [b, h, k, s]: beams share the keys
            w = torch.softmax(scores.float(), dim=-1).to(q.dtype)
            out = torch.matmul(w, xv).transpose(1, 2)  # [b, k, h, d]
            h = h + att.o(out.reshape(b, k, -1))
            h = block.layer[2](h)
        h = self.final_norm(h) * self.out_scale
        return torch.log_softmax(self.lm_head(h).float(), dim=-1)


class BeamCache:
    """Self-attention keys/values per position, never copied when beams are re-ranked.

    Position tau holds what the beams alive at step tau produced (keys as [users, heads,
    d_kv, slots], values as [users, heads, slots, d_kv]); `ancestor[tau]` says, for each
    current beam, which slot it descends from. Re-ranking only updates these small index
    tables. Attention scores each beam's query against every slot of a position with
    small batched matmuls and then picks its ancestor's score, which costs less than
    gathering every beam's history of keys and values at every step.
    """

    def __init__(self, layers: int, users: int, beams: int, steps: int, heads: int, d_kv: int,
                 like: torch.Tensor):
        self.keys = [like.new_zeros((steps, users, heads, d_kv, beams)) for _ in range(layers)]
        self.values = [like.new_zeros((steps, users, heads, beams, d_kv)) for _ in range(layers)]
        self.ancestor = torch.zeros((steps, users, beams), dtype=torch.long, device=like.device)
        self.users, self.beams, self.steps_done = users, beams, 0

    def attend(self, layer: int, t: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias_t: torch.Tensor) -> torch.Tensor:
        """Store this step's keys/values [users, beams, heads, d_kv]; attention output
        [users, heads, beams, d_kv] of queries q [users, heads, beams, d_kv]."""
        n = k.shape[1]
        self.keys[layer][t, :, :, :, :n] = k.permute(0, 2, 3, 1)
        self.values[layer][t, :, :, :n] = v.transpose(1, 2)
        if layer == 0:
            self.ancestor[t, :, :n] = torch.arange(n, device=k.device)
            self.steps_done = t + 1
        anc = self.ancestor[: t + 1, :, None, :n, None].expand(-1, -1, q.shape[1], -1, 1)
        every = torch.matmul(q.unsqueeze(0), self.keys[layer][: t + 1])  # [t+1, u, h, n, slots]
        scores = every.gather(-1, anc).squeeze(-1) + bias_t.T[:, None, :, None]  # [t+1, u, h, n]
        w = torch.softmax(scores.float(), dim=0).to(q.dtype)
        pick = torch.zeros_like(every).scatter_(-1, anc, w.unsqueeze(-1))
        return torch.matmul(pick, self.values[layer][: t + 1]).sum(0)

    def reorder(self, parent: torch.Tensor) -> "BeamCache":
        """Keep, for every user, the beams named by `parent` [users, beams]."""
        t = self.steps_done
        n = parent.shape[1]
        self.ancestor[:t, :, :n] = self.ancestor[:t].gather(2, parent[None].expand(t, -1, -1))
        return self
