"""T5 decoding for beam search, without copies.

The encoder runs once per user, on the real tokens only (packed; attention padded); each
layer's cross-attention keys and values are computed once from it, and every beam of a
user attends to them by broadcasting, so the encoder output is never repeated per beam.
The self-attention cache (`BeamCache`) is never copied when beams are re-ranked: only
small ancestor tables change. A one-position step turns them into one additive mask
(shared by every layer) under which a beam attends only to the slots of its own
ancestors; a pass over several positions (a run of forced tokens) gathers each beam's
own history instead. Rows are position- and beam-major, so the projections are already
the strided batches the attention matmuls take, and keys and values are written straight
into the cache. The weights are the model's own; residual additions happen in place,
inside the output matmuls (addmm_). `tests` check the log-probabilities against the
model's forward pass, one position at a time and several at once, for TIGER's T5 and a
gated T5 v1.1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mgr_cli.models.t5 import item_inputs, item_width


class T5Decoder:
    def __init__(self, model, max_steps: int):
        cfg = model.config
        self.model = model
        self.width = item_width(model)  # 0: one encoder position per token
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
            self.enc_qkv = [self._qkv(b) for b in model.get_encoder().block]

    @staticmethod
    def _qkv(block) -> torch.Tensor:  # the self-attention's q, k, v projections as one
        att = block.layer[0].SelfAttention
        return torch.cat([att.q.weight, att.k.weight, att.v.weight])

    @staticmethod
    def _norm(x: torch.Tensor, ln) -> torch.Tensor:  # T5LayerNorm: RMS, no mean, no bias
        return F.rms_norm(x, (x.shape[-1],), ln.weight, ln.variance_epsilon)

    @torch.inference_mode()
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list["CrossAttention"]:
        """Per decoder layer, the cross-attention to each user's encoder output. A model
        with one encoder position per item (`item_width`) sums each item's embeddings first."""
        embed = self.model.get_encoder().embed_tokens
        if self.width:
            x, attention_mask = item_inputs(embed, input_ids, attention_mask, self.width)
        else:
            x = embed(input_ids)
        b, s = attention_mask.shape
        rows = attention_mask.T.reshape(-1).nonzero().squeeze(1)  # real tokens; row = position * b + user
        padding = (attention_mask.T.reshape(-1) == 0).nonzero().squeeze(1)
        h = self._encoder(x, attention_mask, rows, padding)
        bias = torch.zeros(b, 1, 1, s, dtype=h.dtype, device=h.device)
        bias.masked_fill_(~attention_mask.bool()[:, None, None, :], float("-inf"))
        padded = h.new_empty(s * b, self.heads * self.d_kv).index_fill_(0, padding, 0)  # reused: padding stays 0
        return [CrossAttention(block.layer[1].EncDecAttention, h, rows, padded, bias, self.heads, self.d_kv)
                for block in self.blocks]

    def _encoder(self, x: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor,
                 padding: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden state for the real tokens only, packed [tokens,
        d_model]; `rows` and `padding` are the real and the padding tokens' rows in the
        padded position-major [source * users] layout.
        Projections and feed-forward blocks skip the padding (a quarter of the rows of a
        64-user batch); attention runs padded, with the padding mask and the relative
        position bias added once for every layer. Position-major rows make each padded
        projection a [users * heads, source, d_kv] view for the attention matmuls. The
        model's own weights; q, k and v in one matmul."""
        enc = self.model.get_encoder()
        b, s = attention_mask.shape
        pos, user = rows // b, rows % b
        h = x.transpose(0, 1).reshape(s * b, -1)[rows]
        bias = enc.block[0].layer[0].SelfAttention.compute_bias(s, s).to(h.dtype)  # [1, heads, s, s]
        bias = bias.masked_fill(~attention_mask.bool()[:, None, None, :], float("-inf")).view(-1, s, s)
        inner = self.heads * self.d_kv
        qkv = h.new_empty(3, s * b, inner).index_fill_(1, padding, 0)  # padded; the padding rows stay 0
        for layer, block in enumerate(enc.block):
            sa, ff = block.layer[0], block.layer[-1]
            qkv[:, rows] = F.linear(self._norm(h, sa.layer_norm), self.enc_qkv[layer]).view(-1, 3, inner).transpose(0, 1)
            q, k, v = (x.view(s, b * self.heads, -1).transpose(0, 1) for x in qkv)
            out = _attend(q, k, v, bias).view(b, self.heads, s, -1)[user, :, pos]  # [tokens, heads, d_kv]
            h.addmm_(out.reshape(-1, inner), sa.SelfAttention.o.weight.T)
            _feed_forward(ff.DenseReluDense, self._norm(h, ff.layer_norm), h)
        return self._norm(h, enc.final_layer_norm)

    def new_cache(self, users: int, beams: int, steps: int, like: torch.Tensor) -> "BeamCache":
        return BeamCache(len(self.blocks), users, beams, steps, self.heads, self.d_kv, like)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, t: int, cache: "BeamCache", cross) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed `tokens` [users, beams, m] at positions t .. t+m-1 of each beam: one
        position while beams branch; several for a run of forced tokens (teacher forcing
        along each beam). Returns the log-probabilities [users, beams, vocab] after the
        last one, and [users, beams, m-1] those of tokens 1 .. m-1 where they were fed.

        Inside, rows are position- then beam-major ([m * beams, users, d_model]): then a
        projection's output is already the batch of query matrices the attention matmuls
        take (as a strided view, no copy), and a position's keys and values are a
        contiguous block of the slot-major cache. One position attends to every slot
        under the ancestor mask; several gather their beam's own history instead (every
        slot for each of m positions would be m times the work, mostly masked)."""
        b, k, m = tokens.shape
        rows, heads = m * k, self.heads
        h = self.embed(tokens.permute(2, 1, 0).reshape(rows, b))  # the residual stream, added to in place
        if m == 1:
            bias = cache.mask(t, k, self.position_bias[:, t, : t + 1]).view(b * heads, k, -1)
        else:
            history = cache.history(t, k, m)  # [t+m, k, users]: each beam's slot at each position
            causal = torch.ones(m, t + m, dtype=torch.bool, device=h.device).triu_(t + 1)
            bias = self.position_bias[:, t: t + m, : t + m].float().masked_fill(causal, float("-inf"))
        h2 = h.view(rows * b, -1)
        for layer, block in enumerate(self.blocks):
            sa, ca = block.layer[0], block.layer[1]
            x = self._norm(h, sa.layer_norm)
            q = F.linear(x, sa.SelfAttention.q.weight)
            cache.write(layer, t, k, m, x.view(m, k * b, -1), sa.SelfAttention.k.weight, sa.SelfAttention.v.weight)
            if m == 1:
                keys, values = cache.read(layer, t)
                out = _merge(_attend(_heads(q, b, heads), keys, values, bias), b, heads)
            else:  # batch (beam, user, head): queries [m, d_kv], keys and values [t+m, d_kv]
                keys, values = (_heads(x, k * b, heads) for x in cache.gather(layer, history))
                scores = torch.bmm(_heads(q.view(m, k * b, -1), k * b, heads), keys.transpose(1, 2))
                w = _short_softmax(scores.view(k * b, heads, m, t + m).float().add_(bias)).to(h.dtype)
                out = torch.bmm(w.view(k * b * heads, m, t + m), values)  # [k * b * heads, m, d_kv]
                out = out.view(k, b, heads, m, -1).permute(3, 0, 1, 2, 4).reshape(rows * b, -1)
            h2.addmm_(out, sa.SelfAttention.o.weight.T)
            cross[layer].add_to(h2, self._norm(h, ca.layer_norm))
            ff = block.layer[2]
            _feed_forward(ff.DenseReluDense, self._norm(h2, ff.layer_norm), h2)
        h = self._norm(h, self.final_norm) * self.out_scale
        # one position at a time: [k, users, vocab] log-probabilities stay in cache
        fed = [torch.log_softmax(self.lm_head(h[i * k:(i + 1) * k]).float(), dim=-1)
               .gather(-1, tokens[:, :, i + 1].T[..., None]).squeeze(-1) for i in range(m - 1)]
        last = torch.log_softmax(self.lm_head(h[(m - 1) * k:]).float(), dim=-1)
        fed = torch.stack(fed, -1) if fed else last.new_zeros(k, b, 0)
        return last.transpose(0, 1), fed.transpose(0, 1)


def _heads(x: torch.Tensor, b: int, heads: int) -> torch.Tensor:
    """[rows, b, heads * d_kv] -> [b * heads, rows, d_kv], a view (the strides BLAS takes)."""
    k = x.shape[0]
    return x.view(k, b * heads, -1).transpose(0, 1)


def _merge(out: torch.Tensor, b: int, heads: int) -> torch.Tensor:
    """[b * heads, rows, d_kv] -> [rows * b, heads * d_kv] (one copy)."""
    _, k, d = out.shape
    return out.view(b, heads, k, d).permute(2, 0, 1, 3).reshape(k * b, heads * d)


class CrossAttention:
    """One decoder layer's attention from every beam of a user to that user's encoder
    output: keys [b * heads, d_kv, s] and values [b * heads, s, d_kv] computed once per
    batch, which every beam reads by broadcasting (the encoder output is never repeated
    per beam). Folding the query and output projections into the keys and values (one
    [beams, d_model] x [d_model, heads*s] matmul per user) was measured and is slower on
    the CPU: these matmuls are bound by reading the keys, and folding doubles them.
    """

    def __init__(self, att, h: torch.Tensor, rows: torch.Tensor, padded: torch.Tensor,
                 bias: torch.Tensor, heads: int, d_kv: int):
        """h: the encoder's states of the real tokens [tokens, d_model], at `rows` of the
        padded position-major layout; padded: a zero [s * b, heads * d_kv] work buffer
        whose other rows stay zero (padding keys: the bias masks them); bias [b, 1, 1, s]."""
        self.att, self.heads, self.d_kv = att, heads, d_kv
        self.bias = bias  # 0, or -inf on padding
        b, s = bias.shape[0], bias.shape[-1]
        self.k = padded.index_put_((rows,), att.k(h)).view(s, b * heads, d_kv).permute(1, 2, 0).contiguous()
        self.v = padded.index_put_((rows,), att.v(h)).view(s, b * heads, d_kv).transpose(0, 1).contiguous()

    def add_to(self, h: torch.Tensor, x: torch.Tensor) -> None:
        """Add the attention block's output (after the output projection) to the residual
        stream h [beams * b, d_model] in place; x: the layer-normed states [beams, b, d_model]."""
        k, b, _ = x.shape
        q = _heads(self.att.q(x), b, self.heads)  # [b * heads, k, d_kv]
        scores = torch.bmm(q, self.k).view(b, self.heads, k, -1).add_(self.bias)  # beams share the keys
        w = torch.softmax(scores.float(), dim=-1).to(x.dtype).view(b * self.heads, k, -1)
        h.addmm_(_merge(torch.bmm(w, self.v), b, self.heads), self.att.o.weight.T)


def _feed_forward(ff, x: torch.Tensor, h: torch.Tensor, chunk: int = 1024) -> None:
    """h += T5's feed-forward block of x, in place, `chunk` rows at a time (the hidden
    layer of a chunk stays in the CPU's cache: 30 % faster than all rows at once for
    3,840 rows of TIGER's d_ff); the plain ReLU block (TIGER's) with one temporary per
    chunk, which the ReLU overwrites."""
    x = x.reshape(-1, x.shape[-1])
    parts = -(-len(x) // chunk)
    cuts = [len(x) * i // parts for i in range(parts + 1)]
    relu = type(ff).__name__ == "T5DenseActDense" and isinstance(ff.act, torch.nn.ReLU) \
        and ff.wi.bias is None and ff.wo.bias is None
    for a, b in zip(cuts, cuts[1:]):
        if relu:
            h[a:b].addmm_(F.linear(x[a:b], ff.wi.weight).relu_(), ff.wo.weight.T)
        else:  # gated (T5 v1.1) and other activations: the module itself
            h[a:b].add_(ff(x[a:b]))


def _short_softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over a short last dimension (a beam's few positions), in place: 6x faster
    than torch.softmax's kernel on rows of 10 on the CPU (slower on long rows)."""
    x.sub_(x.amax(-1, keepdim=True)).exp_()
    return x.div_(x.sum(-1, keepdim=True))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """T5 attention (no 1/sqrt(d) scale) of q [B, n, d] over k, v [B, s, d] with an
    additive bias [B, n, s] (B: users x heads; strided views welcome); the bias enters the
    score matmul (baddbmm), which on the CPU beats both a separate add and the fused SDPA
    kernel at these sizes."""
    scores = torch.baddbmm(bias, q, k.transpose(1, 2))
    return torch.bmm(torch.softmax(scores.float(), dim=-1).to(q.dtype), v)


class BeamCache:
    """Self-attention keys/values per position, never copied when beams are re-ranked.

    Slot-major, [slots, users, heads * d_kv] per layer: position 0 (one beam) has slot 0;
    position tau >= 1 has the `beams` slots from 1 + (tau - 1) * beams, one for each beam
    alive at step tau. A step's projections are written straight into its block of slots,
    and attention reads every slot as a strided [users * heads, slots, d_kv] view.
    `ancestor[tau]` says, for each current beam, which slot of position tau it descends
    from. Re-ranking only updates these small index tables; `mask` turns them into an
    additive attention mask (the relative position bias on a beam's ancestors, -inf
    elsewhere), so attention runs over every slot with two batched matmuls per layer
    instead of gathering each beam's history.
    """

    def __init__(self, layers: int, users: int, beams: int, steps: int, heads: int, d_kv: int,
                 like: torch.Tensor):
        # not zeroed here: `write` zeroes the slots a step leaves empty (they are masked,
        # but 0 * NaN is NaN)
        shape = (1 + (steps - 1) * beams, users, heads * d_kv)
        self.keys = [like.new_empty(shape) for _ in range(layers)]
        self.values = [like.new_empty(shape) for _ in range(layers)]
        self.ancestor = torch.zeros((steps, users, beams), dtype=torch.long, device=like.device)
        self.users, self.beams, self.heads, self.steps_done = users, beams, heads, 0

    def _start(self, t: int) -> int:  # the first slot of position t
        return 0 if t == 0 else 1 + (t - 1) * self.beams

    def _feed(self, t: int, n: int, m: int) -> torch.Tensor:
        """Record the n beams fed at positions t .. t+m-1 (each is its own ancestor there);
        each beam's slot at every position up to t+m-1, [t+m, users, n]."""
        end = t + m
        self.ancestor[t:end, :, :n] = torch.arange(n, device=self.ancestor.device)
        self.steps_done = end
        offset = torch.tensor([self._start(tau) for tau in range(end)], device=self.ancestor.device)
        return self.ancestor[:end, :, :n] + offset[:, None, None]

    def mask(self, t: int, n: int, bias_t: torch.Tensor) -> torch.Tensor:
        """Additive mask [users, heads, n, slots up to t] for the n beams at step t, whose
        relative position bias to positions 0..t is bias_t [heads, t+1]."""
        u, h = self.users, self.heads
        slot = self._feed(t, n, 1).permute(1, 2, 0)  # [u, n, t+1]
        out = torch.full((u, h, n, self._start(t + 1)), float("-inf"), dtype=self.keys[0].dtype,
                         device=self.keys[0].device)
        return out.scatter_(-1, slot[:, None].expand(u, h, n, t + 1),
                            bias_t.to(out.dtype)[None, :, None, :].expand(u, h, n, t + 1))

    def history(self, t: int, n: int, m: int) -> torch.Tensor:
        """For the n beams fed at positions t .. t+m-1: the rows of the flattened [slots *
        users] cache holding each beam's keys at positions 0 .. t+m-1, [t+m, n, users]."""
        slot = self._feed(t, n, m)  # [t+m, u, n]
        users = torch.arange(self.users, device=slot.device)[None, :, None]
        return (slot * self.users + users).transpose(1, 2)

    def gather(self, layer: int, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values at `rows` (from `history`), each [t+m, n * users, heads * d_kv]."""
        flat = rows.reshape(-1)
        return tuple(cache.view(-1, cache.shape[-1]).index_select(0, flat).view(rows.shape[0], -1, cache.shape[-1])
                     for cache in (self.keys[layer], self.values[layer]))

    def write(self, layer: int, t: int, n: int, m: int, x: torch.Tensor, wk: torch.Tensor,
              wv: torch.Tensor) -> None:
        """Project x [m, n * users, d_model] (the n beams at positions t .. t+m-1) to keys
        and values straight into their slots; each position's unused slots are zeroed."""
        blocks = [(self._start(p), self._start(p + 1)) for p in range(t, t + m)]
        for cache, w in ((self.keys[layer], wk), (self.values[layer], wv)):
            if n == self.beams and t > 0:  # the m positions' slots are one block
                torch.mm(x.view(m * n * self.users, -1), w.T,
                         out=cache[blocks[0][0]: blocks[-1][1]].view(m * n * self.users, -1))
                continue
            for i, (start, stop) in enumerate(blocks):
                torch.mm(x[i], w.T, out=cache[start: start + n].view(n * self.users, -1))
                if start + n < stop:
                    cache[start + n: stop].zero_()

    def read(self, layer: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of every slot up to position t, each [users * heads, slots, d_kv]."""
        end = self._start(t + 1)
        return tuple(cache[:end].view(end, self.users * self.heads, -1).transpose(0, 1)
                     for cache in (self.keys[layer], self.values[layer]))

    def reorder(self, parent: torch.Tensor) -> "BeamCache":
        """Keep, for every user, the beams named by `parent` [users, beams]."""
        t = self.steps_done
        n = parent.shape[1]
        self.ancestor[:t, :, :n] = self.ancestor[:t].gather(2, parent[None].expand(t, -1, -1))
        return self
