"""Semantic IDs: the artifact, collision handling, code statistics, and the LC-Rec JSON
format other tokenizers (LC-Rec, LETTER, MQL4GRec) write."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from mgr_cli.errors import MgrError

KIND = "semantic-ids"
VIEW_KIND = "semantic-ids-view"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(r"^<([A-Za-z]+)_(\d+)>$")


def collision_rate(codes: np.ndarray) -> float:
    """Share of items whose code tuple is shared with at least one other item."""
    if len(codes) == 0:
        return 0.0
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return float((counts[inverse.ravel()] > 1).mean())


def add_dedup_level(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Append a level numbering items that share a code tuple 0, 1, ... (in item order),
    as TIGER does; returns the codes and that level's size (the largest group)."""
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    extra = np.zeros(len(codes), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, g in enumerate(inverse):
        extra[i] = seen.get(g, 0)
        seen[g] = extra[i] + 1
    return np.concatenate([codes, extra[:, None]], axis=1), int(extra.max()) + 1


def level_stats(codes: np.ndarray, sizes: list[int]) -> list[dict]:
    """Per level: codes used, share of the codebook used, entropy (bits) and its share of
    the maximum log2(K)."""
    out = []
    for level, k in enumerate(sizes):
        counts = np.bincount(codes[:, level], minlength=k)
        p = counts[counts > 0] / counts.sum()
        h = float(-(p * np.log2(p)).sum())
        out.append({"level": level + 1, "codebook_size": k, "used": int((counts > 0).sum()),
                    "usage": round(float((counts > 0).mean()), 4), "entropy_bits": round(h, 4),
                    "entropy_ratio": round(h / math.log2(k), 4) if k > 1 else 1.0})
    return out


def tokens(codes: np.ndarray, letters: str = LETTERS) -> list[list[str]]:
    return [[f"<{letters[lv]}_{int(c)}>" for lv, c in enumerate(row)] for row in codes]


def export_lcrec(codes: np.ndarray, path: Path, letters: str = LETTERS) -> None:
    """{"<item index>": ["<a_12>", "<b_3>", ...]}, the item index being the dataset's order."""
    data = {str(i): row for i, row in enumerate(tokens(codes, letters))}
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def import_lcrec(path: Path, item_ids: list[str]) -> tuple[np.ndarray, list[int], dict]:
    """Codes [n_items, L] from an LC-Rec style JSON, joined to the dataset's items.

    Keys are matched to item ids when they all are item ids, otherwise read as item
    indices in the dataset's order (the LC-Rec convention). Codebook sizes are the
    largest code per level + 1.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MgrError(f"{path}: no such file") from None
    except ValueError as e:
        raise MgrError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict) or not data:
        raise MgrError(f"{path}: expected a non-empty object {{item: [tokens]}}")
    index = {iid: k for k, iid in enumerate(item_ids)}
    by_id = all(key in index for key in data)
    if not by_id and not all(key.isdigit() for key in data):
        stray = next(k for k in data if k not in index)
        raise MgrError(f"{path}: key {stray!r} is neither an item id of the dataset nor an index")
    lengths = {len(v) for v in data.values() if isinstance(v, list)}
    if len(lengths) != 1:
        raise MgrError(f"{path}: every entry must be a list of the same length "
                       f"(found lengths {sorted(lengths)})")
    n_levels = lengths.pop()
    codes = np.full((len(item_ids), n_levels), -1, dtype=np.int64)
    prefixes: list[str] = [""] * n_levels
    for key, toks in data.items():
        row = index[key] if by_id else int(key)
        if row >= len(item_ids):
            raise MgrError(f"{path}: index {key} is beyond the dataset's {len(item_ids)} items; "
                           "was it made for another dataset?")
        for level, tok in enumerate(toks):
            m = _TOKEN.match(str(tok))
            if not m:
                raise MgrError(f"{path}: item {key}: token {tok!r} is not of the form <x_N>")
            prefixes[level] = prefixes[level] or m.group(1)
            codes[row, level] = int(m.group(2))
    missing = np.where(codes[:, 0] < 0)[0]
    if len(missing):
        raise MgrError(f"{path}: {len(missing)} of the dataset's {len(item_ids)} items have no "
                       f"ID (e.g. {item_ids[missing[0]]!r}); was it made for another dataset?")
    sizes = [int(codes[:, lv].max()) + 1 for lv in range(n_levels)]
    return codes, sizes, {"joined_by": "item id" if by_id else "item index",
                          "token_prefixes": prefixes}
