"""Balanced early fusion: each modality contributes a chosen share of the fused
embedding's variance, whatever its width and scale.

Plain concatenation of the L2-normalised vectors gives each modality the same norm, but
not the same influence on what a quantizer sees: its k-means and residual codebooks
follow the directions of largest variance, and a wide, spread-out modality (a 1,280-d
image encoder next to a 384-d text one) owns most of them, so the fused IDs follow it
(the paper's early-fusion dominance). Balanced fusion instead

  1. centres each modality and reduces it by PCA to one common width (`width`, at most
     the narrower modality's width and n - 1): both get the same number of dimensions;
  2. scales each reduced block so that its total variance is its share of the whole
     (`shares`, default half each);
  3. concatenates the blocks.

The result is not L2-normalised again (that would mix the shares row by row): the fused
variance splits exactly as asked, which `variance_shares` measures.
"""

from __future__ import annotations

import numpy as np

from mgr_cli.errors import MgrError


def balanced_fusion(blocks: dict[str, np.ndarray], shares: dict[str, float],
                    width: int) -> np.ndarray:
    """Fuse {modality: [n, d_m]} so that modality m holds shares[m] of the variance."""
    if set(blocks) != set(shares) or abs(sum(shares.values()) - 1) > 1e-6 or min(shares.values()) <= 0:
        raise MgrError("balanced fusion needs a share above 0 for every modality, summing to 1")
    n = len(next(iter(blocks.values())))
    if n < 2:
        raise MgrError("balanced fusion needs at least two items")
    w = min([width, n - 1] + [b.shape[1] for b in blocks.values()])
    out = []
    for m, x in blocks.items():
        x = np.asarray(x, dtype=np.float64)
        x = x - x.mean(0)
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        z = u[:, :w] * s[:w]  # the top-w principal components
        var = float((z ** 2).sum()) / n
        if var <= 0:
            raise MgrError(f"balanced fusion: every item has the same {m} embedding; nothing to balance")
        out.append(z * np.sqrt(shares[m] / var))
    return np.concatenate(out, axis=1).astype(np.float32)


def variance_shares(fused: np.ndarray, widths: dict[str, int]) -> dict[str, float]:
    """Each block's share of the total variance of `fused` (blocks in order of `widths`)."""
    x = np.asarray(fused, dtype=np.float64)
    x = x - x.mean(0)
    total = float((x ** 2).sum())
    out, start = {}, 0
    for m, w in widths.items():
        out[m] = float((x[:, start:start + w] ** 2).sum()) / total
        start += w
    return out
