"""Adjusted mutual information (Vinh et al. 2009) between clusterings of items: the
first level of two semantic-ID artifacts (the paper's Table 1), any level or prefix,
or an ID artifact against a category field of the dataset."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from mgr_cli.errors import MgrError

# The paper's Table 1 columns, in its order: (row label, modality a, modality b)
TABLE1 = [("Img vs. Txt", "image", "text"), ("Img vs. Multimodal", "image", "fused"),
          ("Txt vs. Multimodal", "text", "fused")]


def cluster_labels(codes: np.ndarray, level: int | None = None, prefix: int | None = None) -> np.ndarray:
    """One integer label per item: the code at `level` (1-based), or the tuple of the
    first `prefix` codes. Default: the first level, as in the paper."""
    if level is not None and prefix is not None:
        raise MgrError("give --level or --prefix, not both")
    n_levels = codes.shape[1]
    if level is not None:
        if not 1 <= level <= n_levels:
            raise MgrError(f"--level {level} is outside 1..{n_levels}")
        return codes[:, level - 1]
    prefix = prefix or 1
    if not 1 <= prefix <= n_levels:
        raise MgrError(f"--prefix {prefix} is outside 1..{n_levels}")
    return np.unique(codes[:, :prefix], axis=0, return_inverse=True)[1].ravel()


def field_labels(values: list[str]) -> np.ndarray:
    return np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)[1].ravel()


def ami(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import adjusted_mutual_info_score

    if len(a) != len(b):
        raise MgrError(f"cannot compare clusterings of {len(a)} and {len(b)} items")
    return float(adjusted_mutual_info_score(a, b))


def pairwise(named: dict[str, np.ndarray]) -> list[dict]:
    """AMI of every pair; when text, image and fused are all present, the paper's Table 1
    rows come first, in its order."""
    rows, done = [], set()
    if {"text", "image", "fused"} <= set(named):
        for label, a, b in TABLE1:
            rows.append({"pair": label, "a": a, "b": b, "ami": ami(named[a], named[b])})
            done.add(frozenset((a, b)))
    for a, b in combinations(named, 2):
        if frozenset((a, b)) not in done:
            rows.append({"pair": f"{a} vs. {b}", "a": a, "b": b, "ami": ami(named[a], named[b])})
    return rows


def to_markdown(rows: list[dict], title: str) -> str:
    head = "| " + " | ".join(r["pair"] for r in rows) + " |"
    sep = "|" + "---|" * len(rows)
    vals = "| " + " | ".join(f"{r['ami']:.4f}" for r in rows) + " |"
    return f"**{title}**\n\n{head}\n{sep}\n{vals}\n"
