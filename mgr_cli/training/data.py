"""Batches of (source, target) token sequences for the seq2seq recommender.

Examples of similar source length go together (shuffle, sort within chunks of 50
batches, shuffle the batches), so padding stays small; each batch is padded only to
its own longest sequence. Everything is a function of (seed, epoch), which is what an
exact resume needs; under torchrun each rank takes every world-th batch, cut to the
same count on every rank.
"""

from __future__ import annotations

import numpy as np
import torch

from mgr_cli.tokens.layout import PAD, pad


class Batches:
    def __init__(self, src: list[np.ndarray], tgt: list[np.ndarray], batch_size: int,
                 seed: int, rank: int = 0, world: int = 1):
        self.src, self.tgt = src, tgt
        self.lengths = np.array([len(s) for s in src])
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world

    def epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.src))
        chunk = self.batch_size * 50
        batches = []
        for s in range(0, len(order), chunk):
            part = order[s:s + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i:i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        per_rank = len(batches) // self.world if self.world > 1 else len(batches)
        return batches[self.rank::self.world][:per_rank]

    def collate(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        return collate([self.src[i] for i in idx], [self.tgt[i] for i in idx], device)


def collate(src: list[np.ndarray], tgt: list[np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    ids = pad(src, PAD)
    labels = pad(tgt, -100)
    return {"input_ids": ids.to(device), "attention_mask": (ids != PAD).long().to(device),
            "labels": labels.to(device)}
