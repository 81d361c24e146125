"""Semantic IDs for new items from the frozen quantizer of an ID artifact (`mgr items add`):
no retraining; the old items keep their full IDs exactly; with a uniqueness level each new
item takes the smallest last-level code that no item with the same codes uses."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mgr_cli.artifacts import Input, Provenance
from mgr_cli.data.dataset import BASE
from mgr_cli.errors import MgrError
from mgr_cli.quantize.frozen import Frozen, assign, free_codes
from mgr_cli.quantize.ids import collision_rate, save_ids


def new_codes(fz: Frozen, old: np.ndarray, header: dict, x_new: np.ndarray
              ) -> tuple[np.ndarray, list[int], dict]:
    """Full codes of the new items, the extended codebook sizes, and what happened."""
    meta = header["meta"]
    unique = bool(meta["dedup_level"])
    base = assign(fz, x_new)
    levels = old.shape[1] - (1 if unique else 0)
    if base.shape[1] != levels:
        raise MgrError(f"the stored quantizer gives {base.shape[1]} levels, the IDs have "
                       f"{levels} before the uniqueness level; re-run mgr quantize")
    full, shared = free_codes(old, base, unique)
    sizes = [int(k) for k in meta["codebook_sizes"]]
    grown = []
    for lv in range(len(sizes)):
        top = int(full[:, lv].max()) + 1
        if top > sizes[lv]:
            grown.append({"level": lv + 1, "before": sizes[lv], "after": top})
            sizes[lv] = top
    facts = {"items_before": len(old), "items_added": len(full), "shared_ids": shared,
             "grown_levels": grown}
    return full, sizes, facts


def save_extended(base: Path, header: dict, fz: Frozen, old: np.ndarray, full_new: np.ndarray,
                  sizes: list[int], facts: dict, item_ids: list[str], out: Path,
                  embeddings: tuple[Path, dict], *, command: str = "python API",
                  force: bool = False) -> dict:
    """The ID artifact of the extended catalogue (and its JSONL view): `base`'s codes, then
    the new items'; the same quantizer, so items can be added again."""
    meta = header["meta"]
    codes = np.concatenate([old, full_new])
    unique = bool(meta["dedup_level"])
    before = collision_rate(codes[:, :-1] if unique else codes)
    kept = {k: meta[k] for k in ("training", "standin", "method_plugin") if k in meta}
    return save_ids(out, item_ids, codes, modality=meta["modality"], method=meta["method"],
                    codebook_sizes=sizes, dedup="never",
                    collisions={"collision_rate_before": round(before, 6), "dedup_level": unique},
                    quantizer=fz, meta={**kept, "added": {"base": os.path.basename(base), **facts}},
                    provenance=Provenance(command, header["config"]),
                    inputs=[Input("embeddings", embeddings[0], embeddings[1]),
                            Input(BASE, base, header)], force=force)
