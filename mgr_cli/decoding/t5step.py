"""One decoder step of a transformers T5 model for beam search, without copies.

The encoder runs once per user; each layer's cross-attention keys and values are
computed once from it, [users, heads, source, d_kv], and every beam of a user attends
to them by broadcasting, so the encoder output is never repeated per beam. The
self-attention cache is [users, beams, heads, steps, d_kv], reordered with one gather
per layer when beams are re-ranked. Layer norms, feed-forward blocks, the embedding
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

    @torch.no_grad()
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        enc = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        h = enc.last_hidden_state
        b, s, _ = h.shape
        cross = []
        for block in self.blocks:
            att = block.layer[1].EncDecAttention
            k = att.k(h).view(b, s, self.heads, self.d_kv).transpose(1, 2)
            v = att.v(h).view(b, s, self.heads, self.d_kv).transpose(1, 2)
            cross.append((k, v))
        bias = torch.zeros(b, 1, 1, s, dtype=h.dtype, device=h.device)
        bias.masked_fill_(~attention_mask.bool()[:, None, None, :], torch.finfo(h.dtype).min)
        return cross, bias

    def new_cache(self, users: int, beams: int, steps: int, like: torch.Tensor):
        shape = (users, beams, self.heads, steps, self.d_kv)
        return [(like.new_zeros(shape), like.new_zeros(shape)) for _ in self.blocks]

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, t: int, cache, cross, enc_bias) -> torch.Tensor:
        """Log-probabilities [users, beams, vocab] of the token after `tokens` (position t)."""
        b, k = tokens.shape
        h = self.embed(tokens)
        bias_t = self.position_bias[:, t, : t + 1]  # [heads, t+1]
        for layer, block in enumerate(self.blocks):
            sa = block.layer[0]
            att = sa.SelfAttention
            x = sa.layer_norm(h)
            q = att.q(x).view(b, k, self.heads, self.d_kv)
            ck, cv = cache[layer]
            ck[:, :k, :, t] = att.k(x).view(b, k, self.heads, self.d_kv)
            cv[:, :k, :, t] = att.v(x).view(b, k, self.heads, self.d_kv)
            scores = torch.einsum("bkhd,bkhtd->bkht", q, ck[:, :k, :, : t + 1]) + bias_t
            w = torch.softmax(scores.float(), dim=-1).to(q.dtype)
            out = torch.einsum("bkht,bkhtd->bkhd", w, cv[:, :k, :, : t + 1])
            h = h + att.o(out.reshape(b, k, -1))
            ca = block.layer[1]
            att = ca.EncDecAttention
            q = att.q(ca.layer_norm(h)).view(b, k, self.heads, self.d_kv)
            xk, xv = cross[layer]
            scores = torch.einsum("bkhd,bhsd->bkhs", q, xk) + enc_bias
            w = torch.softmax(scores.float(), dim=-1).to(q.dtype)
            out = torch.einsum("bkhs,bhsd->bkhd", w, xv)
            h = h + att.o(out.reshape(b, k, -1))
            h = block.layer[2](h)
        h = self.final_norm(h) * self.out_scale
        return torch.log_softmax(self.lm_head(h).float(), dim=-1)

    @staticmethod
    def reorder(cache, parent: torch.Tensor):
        """Keep, for every user, the beams named by `parent` [users, beams]."""
        out = []
        for ck, cv in cache:
            idx = parent[:, :, None, None, None].expand(-1, -1, *ck.shape[2:])
            out.append((ck.gather(1, idx), cv.gather(1, idx)))
        return out
