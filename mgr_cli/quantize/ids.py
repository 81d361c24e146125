"""The semantic-ID artifact: its public writer (which owns the header) and reader,
collision handling and code statistics.

    from mgr_cli.quantize import save_ids, load_ids
    save_ids("my.ids.safetensors", item_ids, codes, modality="text", method="mine",
             codebook_sizes=[256, 256, 256], dedup="auto",
             inputs=[Input("dataset", "beauty.dataset.jsonl", dataset_header)])
    codes, header = load_ids("my.ids.safetensors")

One safetensors tensor, `codes` (int64, [n_items, levels]), rows in the dataset's item
order, and beside it a readable JSONL view (`X.ids.jsonl`); docs/artifacts.md lists the
header fields.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mgr_cli.artifacts import (ArtifactError, Input, Provenance, check_output, read_tensors,
                               write_jsonl, write_tensors)
from mgr_cli.data.dataset import item_facts

KIND = "semantic-ids"
VIEW_KIND = "semantic-ids-view"
TENSOR = "codes"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
OWNED = ("modality", "method", "levels", "codebook_sizes", "n_items", "dataset", "item_ids_hash",
         "level_stats", "collision_rate_before", "collision_rate_after", "dedup_level",
         "quantizer")
DEDUP = ("always", "auto", "never")


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


def with_unique_level(codes: np.ndarray, sizes: list[int], dedup: str
                      ) -> tuple[np.ndarray, list[int], dict]:
    """Append the uniqueness level (`dedup`: always, auto: only on collisions, never);
    returns the codes, the codebook sizes and the collision facts for the header."""
    before = collision_rate(codes)
    added = dedup == "always" or (dedup == "auto" and before > 0)
    if added:
        codes, extra = add_dedup_level(codes)
        sizes = sizes + [extra]
    return codes, sizes, {"collision_rate_before": round(before, 6),
                          "collision_rate_after": round(collision_rate(codes), 6),
                          "dedup_level": added}


def view_path(out: Path | str) -> Path:
    """The readable JSONL view written beside a semantic-ID artifact."""
    out = Path(out)
    stem = out.name.rsplit(".", 1)[0]
    stem = stem[:-4] if stem.endswith(".ids") else stem  # text.ids.safetensors -> text.ids.jsonl
    return out.with_name(stem + ".ids.jsonl")


def as_codes(codes: Any, sizes: Sequence[int] | None, item_ids: Sequence[str] | None
             ) -> tuple[np.ndarray, list[int]]:
    """int64 codes [items, levels] and their codebook sizes (default: the largest code of
    each level + 1), refusing other shapes and dtypes, negative or out-of-range codes."""
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise ArtifactError(f"codes have dtype {c.dtype}; expected integers")
    if c.ndim != 2 or 0 in c.shape:
        raise ArtifactError(f"codes have shape {tuple(c.shape)}; expected a 2-d array "
                            "[items, levels] with at least one item and one level")
    c = c.astype(np.int64)
    sizes = [int(c[:, lv].max()) + 1 for lv in range(c.shape[1])] if sizes is None else list(sizes)
    if len(sizes) != c.shape[1] or any(int(k) < 1 for k in sizes):
        raise ArtifactError(f"{len(sizes)} codebook sizes for {c.shape[1]} levels; give one "
                            "positive size per level")
    bad = np.argwhere((c < 0) | (c >= np.array(sizes)))
    if len(bad):
        r, lv = (int(v) for v in bad[0])
        who = f"item {str(item_ids[r])!r}" if item_ids is not None and r < len(item_ids) else f"row {r}"
        raise ArtifactError(f"{len(bad)} codes are out of range (e.g. {who}, level {lv + 1}: "
                            f"{c[r, lv]}, not in 0..{sizes[lv] - 1})")
    return c, [int(k) for k in sizes]


def save_ids(path: Path | str, item_ids: Sequence[str], codes: Any, *, modality: str,
             method: str = "import", codebook_sizes: Sequence[int] | None = None,
             dedup: str = "never", meta: dict | None = None,
             provenance: Provenance | None = None, inputs: Iterable[Input] = (),
             sources: Iterable[dict] = (), quantizer=None, collisions: dict | None = None,
             force: bool = False) -> dict:
    """Write a semantic-ID artifact and its JSONL view beside it (each atomically); return
    the artifact's header.

    Row k of `codes` is item `item_ids[k]`; the rows must be in the item order of every
    input that records one (checked). `codebook_sizes` defaults to each level's largest
    code + 1. `dedup` appends a level that makes IDs unique (always, auto: only when some
    collide, never). `meta` adds the producer's own facts, not the fields this writer owns.
    `quantizer` (a mgr_cli.quantize.frozen.Frozen) is stored beside the codes, so that new
    items can be placed later (`mgr items add`). `collisions` are the collision facts of
    codes that already end in their uniqueness level (an extended catalogue's; dedup
    must then be never)."""
    path = Path(path)
    if dedup not in DEDUP:
        raise ArtifactError(f"dedup must be one of {', '.join(DEDUP)}, got {dedup!r}")
    if not isinstance(modality, str) or not modality:
        raise ArtifactError("modality must be a non-empty name (text, image, fused, ...)")
    clash = sorted(set(meta or {}) & set(OWNED))
    if clash:
        raise ArtifactError(f"meta may not set {', '.join(clash)}: save_ids writes them")
    check_output(path, force)
    check_output(view_path(path), force)
    codes, sizes = as_codes(codes, codebook_sizes, item_ids)
    if len(item_ids) != len(codes):
        raise ArtifactError(f"{len(item_ids)} item ids for {len(codes)} rows of codes; "
                            "give one row per item")
    inputs = list(inputs)
    facts = item_facts(item_ids, inputs)
    if collisions is not None:
        if dedup != "never":
            raise ArtifactError("give collisions only with dedup='never' (the codes already "
                                "carry their uniqueness level)")
        coll = {"collision_rate_before": float(collisions["collision_rate_before"]),
                "collision_rate_after": round(collision_rate(codes), 6),
                "dedup_level": bool(collisions["dedup_level"])}
    else:
        codes, sizes, coll = with_unique_level(codes, sizes, dedup)
    stored = quantizer.stored() if quantizer is not None else {}
    head_q = {"quantizer": quantizer.meta()} if quantizer is not None else {}
    head = {"modality": modality, "method": method, **coll, "levels": int(codes.shape[1]),
            "codebook_sizes": sizes, **facts, "level_stats": level_stats(codes, sizes), **head_q}
    prov = provenance or Provenance()
    header = write_tensors(path, KIND, {TENSOR: codes, **stored}, provenance=prov, inputs=inputs,
                           sources=sources, meta={**head, **(meta or {})}, force=force)
    toks = tokens(codes)
    write_jsonl(view_path(path), VIEW_KIND,
                ({"item": k, "id": str(i), "codes": codes[k].tolist(), "tokens": toks[k]}
                 for k, i in enumerate(item_ids)),
                provenance=prov, inputs=[Input("ids", path, header)],
                meta={"modality": modality}, force=force)
    return header


def load_ids(path: Path | str) -> tuple[np.ndarray, dict]:
    """Read and verify a semantic-ID artifact: (codes [n_items, levels] int64, header)."""
    header, tensors = read_tensors(path, KIND)
    c = tensors.get(TENSOR)
    if c is None or c.ndim != 2 or len(c) != header["meta"].get("n_items", len(c)):
        raise ArtifactError(f"{path}: damaged semantic-ID artifact (no [items, levels] tensor "
                            f"{TENSOR!r}); re-create it")
    return c, header
