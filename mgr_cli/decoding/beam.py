"""Constrained beam search over the valid items, with a tensorised prefix tree.

Every item's token sequence has the same length T (the layout guarantees it). The tree
keeps, for each depth t, the distinct prefixes of length t and a padded table of their
children: the allowed next tokens and the prefix ids they lead to. A beam is a prefix
id, so finding its allowed tokens is one index into that table; candidates are scored
with one gather of log-probabilities; the K best (user-wise) survive. After T tokens a
last step adds the end-of-sequence log-probability, so scores equal the model's
probability of the full target sequence (what brute-force scoring computes). Depths
where every prefix has a single child (an LF/LF++ item's later modalities, once its
first ID is chosen; the end token) need no choice: their tokens are fed together in one
decoder pass, which scores them all at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mgr_cli.decoding.t5step import T5Decoder
from mgr_cli.tokens.layout import EOS, PAD


@dataclass
class PrefixTree:
    child_tokens: list[torch.Tensor]  # per depth: [n_prefixes, max_children], -1 padded
    child_ids: list[torch.Tensor]  # per depth: prefix ids at depth t+1
    leaf_items: list[list[int]]  # leaf prefix id -> items with that sequence

    @property
    def depth(self) -> int:
        return len(self.child_tokens)

    @classmethod
    def build(cls, sequences: np.ndarray, items: np.ndarray | None = None) -> "PrefixTree":
        """The tree of `sequences` [n, depth]; row r is item `items[r]` (default: r)."""
        n, depth = sequences.shape
        parent = np.zeros(n, dtype=np.int64)
        toks, ids = [], []
        for t in range(depth):
            _, child = np.unique(sequences[:, : t + 1], axis=0, return_inverse=True)
            child = child.ravel()
            pairs = np.unique(np.stack([parent, sequences[:, t], child], 1), axis=0)
            n_parent = int(parent.max()) + 1
            counts = np.bincount(pairs[:, 0], minlength=n_parent)
            width = int(counts.max())
            tok_table = np.full((n_parent, width), -1, dtype=np.int64)
            id_table = np.full((n_parent, width), 0, dtype=np.int64)
            slot = np.arange(len(pairs)) - np.repeat(np.cumsum(counts) - counts, counts)
            tok_table[pairs[:, 0], slot] = pairs[:, 1]
            id_table[pairs[:, 0], slot] = pairs[:, 2]
            toks.append(torch.from_numpy(tok_table))
            ids.append(torch.from_numpy(id_table))
            parent = child
        leaves: list[list[int]] = [[] for _ in range(int(parent.max()) + 1)]
        for row, leaf in enumerate(parent):
            leaves[leaf].append(int(items[row]) if items is not None else row)
        return cls(toks, ids, leaves)

    def to(self, device: torch.device) -> "PrefixTree":
        return PrefixTree([t.to(device) for t in self.child_tokens],
                          [t.to(device) for t in self.child_ids], self.leaf_items)


@torch.inference_mode()
def beam_search(decoder: T5Decoder, tree: PrefixTree, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, beams: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(leaf prefix ids [users, beams], log-probabilities [users, beams]), best first.

    A leaf id of -1 marks an empty beam (fewer valid sequences than beams)."""
    users = input_ids.shape[0]
    device = input_ids.device
    cross = decoder.encode(input_ids, attention_mask)
    cache = decoder.new_cache(users, beams, tree.depth + 1, cross[0].bias)
    forced = [table.shape[1] == 1 for table in tree.child_tokens]  # every prefix has one child
    last = torch.full((users, 1), PAD, dtype=torch.long, device=device)  # fed at position `pos`
    prefix = torch.zeros((users, 1), dtype=torch.long, device=device)
    score = torch.zeros((users, 1), device=device)
    pos = depth = 0  # next position fed; the depth its pass decides
    while True:
        # a run of forced depths is fed in the same pass (their tokens are known); the
        # pass's last position then decides the next branching depth, or the end
        feed = [last]
        while depth < tree.depth and forced[depth]:
            feed.append(tree.child_tokens[depth][prefix][..., 0])
            prefix = tree.child_ids[depth][prefix][..., 0]
            depth += 1
        logp, fed = decoder.step(torch.stack(feed, -1), pos, cache, cross)  # [U, k, V], [U, k, m-1]
        pos += len(feed)
        if len(feed) > 1:
            score = score + fed.sum(-1)
        if depth == tree.depth:
            score = score + logp[..., EOS]
            break
        ctok = tree.child_tokens[depth][prefix]  # [U, k, C]
        valid = ctok >= 0
        cand = score[..., None] + logp.gather(-1, ctok.clamp_min(0))
        cand = cand.masked_fill(~valid, float("-inf")).flatten(1)  # [U, k*C]
        score, flat = cand.topk(min(beams, cand.shape[1]), dim=1)
        cache.reorder(flat // ctok.shape[2])
        last = ctok.flatten(1).gather(1, flat).masked_fill(torch.isinf(score), PAD)
        prefix = tree.child_ids[depth][prefix].flatten(1).gather(1, flat)
        depth += 1
    score, order = score.sort(dim=1, descending=True)
    prefix = prefix.gather(1, order)
    return prefix.masked_fill(torch.isinf(score), -1), score


def ranked_items(tree: PrefixTree, leaves: torch.Tensor, scores: torch.Tensor,
                 k: int) -> list[tuple[list[int], list[float]]]:
    """Per user: up to k items, best first (items sharing a sequence share its score)."""
    out = []
    for row_l, row_s in zip(leaves.tolist(), scores.tolist()):
        items: list[int] = []
        sc: list[float] = []
        for leaf, s in zip(row_l, row_s):
            if leaf < 0:
                break
            for item in tree.leaf_items[leaf]:
                items.append(item)
                sc.append(s)
        out.append((items[:k], sc[:k]))
    return out
