"""Ranking metrics per user, then averaged: MRR, NDCG@K, Hits@K (= Recall@K for one
target). Full ranking: the ranked list comes from decoding over ALL items."""

from __future__ import annotations

import math

HITS_KS = (1, 5, 10, 20)
NDCG_KS = (5, 10, 20)


def user_metrics(ranked: list[int], target: int) -> dict[str, float]:
    """Metrics of one user whose list is `ranked` (best first) and true next item `target`.
    MRR counts the target's reciprocal rank within the list (0 if absent)."""
    rank = ranked.index(target) + 1 if target in ranked else None
    out = {"mrr": 1.0 / rank if rank else 0.0}
    for k in NDCG_KS:
        out[f"ndcg@{k}"] = 1.0 / math.log2(rank + 1) if rank and rank <= k else 0.0
    for k in HITS_KS:
        out[f"hits@{k}"] = 1.0 if rank and rank <= k else 0.0
    return out


class Mean:
    """Running means of per-user metrics and their standard errors (constant memory)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.squares: dict[str, float] = {}
        self.n = 0

    def add(self, m: dict[str, float]) -> None:
        for k, v in m.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.squares[k] = self.squares.get(k, 0.0) + v * v
        self.n += 1

    def merge(self, other: "Mean") -> None:
        for k, v in other.sums.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.squares[k] = self.squares.get(k, 0.0) + other.squares[k]
        self.n += other.n

    def result(self) -> dict[str, float]:
        return {k: v / self.n for k, v in self.sums.items()} if self.n else {}

    def errors(self) -> dict[str, float]:
        """The standard error of each mean (`result`), over users."""
        return standard_errors(self.sums, self.squares, self.n)


class Coverage:
    """What the lists of all users hold together: how many distinct items are ranked
    first, and the share of the catalogue in anybody's top-k. A recommender that gives
    everybody the same few items shows here, whatever its hit rate."""

    def __init__(self) -> None:
        self.top1: set = set()
        self.listed: set = set()

    def add(self, ranked: list) -> None:
        if ranked:
            self.top1.add(ranked[0])
        self.listed.update(ranked)

    def merge(self, other: "Coverage") -> None:
        self.top1 |= other.top1
        self.listed |= other.listed

    def result(self, n_items: int, k: int) -> dict[str, float]:
        return {"distinct_top1": len(self.top1), f"coverage@{k}": round(len(self.listed) / n_items, 6)}


def standard_errors(sums: dict[str, float], squares: dict[str, float], n: int) -> dict[str, float]:
    """Standard error of each mean over users: sqrt(var / n), var with n - 1."""
    import math

    if n < 2:
        return {k: 0.0 for k in sums}
    return {k: math.sqrt(max(0.0, (squares[k] - sums[k] ** 2 / n) / (n - 1)) / n) for k in sums}


def validation_rows(n: int, size: int, seed: int) -> list[int]:
    """A seeded random sample of `size` users (all if fewer), in row order: data files
    are often ordered (by user id, by activity), so the first rows are not representative."""
    import numpy as np

    if size >= n:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n, size=size, replace=False).tolist())
