"""K-means in torch (k-means++ seeding, Lloyd iterations), seeded and deterministic on CPU.

Used to initialise RQ-VAE codebooks, for residual k-means semantic IDs, and for the
hierarchical indexer.
"""

from __future__ import annotations

import torch


def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ c.T + c.pow(2).sum(1)).clamp_min_(0)


def kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding; with fewer distinct points than k, centres repeat points."""
    n = x.shape[0]
    centres = [x[torch.randint(n, (1,), generator=gen)].squeeze(0)]
    d2 = _sq_dist(x, centres[0][None]).squeeze(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            idx = torch.randint(n, (1,), generator=gen)
        else:
            idx = torch.multinomial(d2 / total, 1, generator=gen)
        centres.append(x[idx].squeeze(0))
        d2 = torch.minimum(d2, _sq_dist(x, centres[-1][None]).squeeze(1))
    return torch.stack(centres)


def kmeans(x: torch.Tensor, k: int, *, iters: int = 25, seed: int = 0,
           tol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """(centres [k, d], assignment [n]) of x [n, d]."""
    gen = torch.Generator().manual_seed(seed)
    x = x.float()
    k_eff = min(k, x.shape[0])
    c = kmeans_pp(x, k_eff, gen)
    assign = torch.zeros(x.shape[0], dtype=torch.long)
    prev = float("inf")
    for _ in range(iters):
        d = _sq_dist(x, c)
        err, assign = d.min(1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k_eff).float()
        empty = counts == 0
        c = torch.where(empty[:, None], c, sums / counts.clamp_min(1)[:, None])
        if empty.any():  # re-seed empty clusters at the worst-fit points
            worst = err.topk(int(empty.sum())).indices
            c[empty] = x[worst]
        total = float(err.sum())
        if prev - total <= tol * max(prev, 1e-12):
            break
        prev = total
    if k_eff < k:  # pad so callers always get k centres
        c = torch.cat([c, c[torch.randint(k_eff, (k - k_eff,), generator=gen)]])
    return c, _sq_dist(x, c).argmin(1)


def residual_kmeans(x: torch.Tensor, levels: int, k: int, seed: int,
                    centroids: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual k-means IDs: k-means on the residual left by the levels before. Each
    level's centres are appended to `centroids` when given (the frozen quantizer)."""
    residual, recon, codes = x.clone(), torch.zeros_like(x), []
    for level in range(levels):
        centres, assign = kmeans(residual, k, iters=30, seed=seed + level)
        if centroids is not None:
            centroids.append(centres)
        codes.append(assign)
        recon += centres[assign]
        residual -= centres[assign]
    return torch.stack(codes, 1), recon


def hierarchical_kmeans(x: torch.Tensor, levels: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HC-indexer / DSI semantic docids: k-means splits the items into at most k clusters,
    then each cluster again, level by level; the path of cluster numbers is the ID. A
    cluster of at most k items gives each item its own child. Reconstruction: the mean
    of the items that share a full path."""
    n = x.shape[0]
    codes = torch.zeros((n, levels), dtype=torch.long)

    def split(idx: torch.Tensor, level: int) -> None:
        if level == levels or len(idx) <= 1:
            return
        if len(idx) <= k:
            codes[idx, level] = torch.arange(len(idx))
            return
        _, assign = kmeans(x[idx], k, iters=20, seed=seed + level)
        codes[idx, level] = assign
        for c in torch.unique(assign):
            split(idx[assign == c], level + 1)

    split(torch.arange(n), 0)
    _, group = torch.unique(codes, dim=0, return_inverse=True)
    sums = torch.zeros(int(group.max()) + 1, x.shape[1]).index_add_(0, group, x)
    counts = torch.bincount(group).float()[:, None]
    return codes, (sums / counts)[group]
