"""The paper's preprocessing protocol, applied to what any reader produced.

In order: unknown items and empty texts (error, or a policy the user picked), image
paths that resolve outside the image folder (error unless allowed), items without an
image dropped (on by default when images are used) and undecodable images (error or
drop), repeated purchases (kept by default), chronological order per user (ties keep
file order), iterative k-core on users and items (k=5), leave-one-out.
Every step's removals are counted in the report that the dataset artifact records.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mgr_cli.data.dataset import Dataset, Item
from mgr_cli.data.images import find_bad_images, image_file
from mgr_cli.data.readers.common import RawData
from mgr_cli.errors import MgrError

POLICIES = {
    "unknown_items": ("error", "drop"),
    "empty_text": ("error", "drop", "keep"),
    "bad_images": ("error", "drop"),
    "repeats": ("keep", "drop"),
}


@dataclass
class PrepareConfig:
    k_core: int = 5
    max_history: int = 20
    drop_missing_images: bool = True
    unknown_items: str = "error"
    empty_text: str = "error"
    bad_images: str = "error"
    repeats: str = "keep"
    outside_images: bool = False  # allow image paths that resolve outside the image folder

    def problems(self) -> list[str]:
        out = [f"--{k.replace('_', '-')} must be one of {', '.join(v)}, got {getattr(self, k)!r}"
               for k, v in POLICIES.items() if getattr(self, k) not in v]
        if self.k_core < 1:
            out.append(f"--k-core must be at least 1, got {self.k_core}")
        if self.max_history < 1:
            out.append(f"--max-history must be at least 1, got {self.max_history}")
        return out


Interactions = list[tuple[str, str, float]]


def _examples(values, n: int = 3) -> str:
    vals = list(values)[:n]
    return ", ".join(repr(v) for v in vals) + (", ..." if len(vals) == n else "")


def _drop_items(inter: Interactions, gone: set[str]) -> Interactions:
    return [x for x in inter if x[1] not in gone] if gone else inter


def _count(inter: Interactions) -> dict[str, int]:
    return {"users": len({u for u, _, _ in inter}), "items": len({i for _, i, _ in inter}),
            "interactions": len(inter)}


def _unknown(raw: RawData, inter: Interactions, cfg: PrepareConfig, report: dict) -> Interactions:
    unknown = [x for x in inter if x[1] not in raw.items]
    if not unknown:
        return inter
    ids = dict.fromkeys(i for _, i, _ in unknown)
    if cfg.unknown_items == "error":
        raise MgrError(f"{len(unknown)} interactions refer to {len(ids)} item ids missing from "
                       f"the item file (e.g. {_examples(ids)}); fix the files or pass "
                       "--unknown-items drop")
    report["dropped_unknown_item_interactions"] = len(unknown)
    return _drop_items(inter, set(ids))


def _empty_text(raw: RawData, inter: Interactions, cfg: PrepareConfig, report: dict) -> Interactions:
    if not raw.has_text or cfg.empty_text == "keep":
        return inter
    used = dict.fromkeys(i for _, i, _ in inter)
    empty = [i for i in used if not raw.items[i].text.strip()]
    if not empty:
        return inter
    if cfg.empty_text == "error":
        raise MgrError(f"{len(empty)} items have empty text (e.g. {_examples(empty)}); pass "
                       "--empty-text drop to drop them or --empty-text keep to keep them")
    report["dropped_empty_text_items"] = len(empty)
    return _drop_items(inter, set(empty))


def _images(raw: RawData, inter: Interactions, cfg: PrepareConfig, report: dict,
            log: Callable[[str], None]) -> Interactions:
    if raw.image_root is None:
        for it in raw.items.values():
            it.image = None
        return inter
    root = raw.image_root
    if not root.is_dir():
        raise MgrError(f"{root}: image folder not found; give --images DIR or --no-images")
    used = list(dict.fromkeys(i for _, i, _ in inter))
    paths = {i: image_file(root, raw.items[i].image, cfg.outside_images)
             for i in used if raw.items[i].image is not None}
    missing = [i for i in used if i not in paths or not os.path.exists(paths[i])]
    if missing and cfg.drop_missing_images:
        report["dropped_items_without_image"] = len(missing)
        inter = _drop_items(inter, set(missing))
    else:
        report["items_without_image"] = len(missing)
        for i in missing:
            raw.items[i].image = None
    present = [i for i in dict.fromkeys(i for _, i, _ in inter) if raw.items[i].image]
    log(f"checking that {len(present)} images decode")
    bad = find_bad_images([paths[i] for i in present])
    if not bad:
        return inter
    if cfg.bad_images == "error":
        listing = "; ".join(f"{p} ({r})" for p, r in bad[:5]) + ("; ..." if len(bad) > 5 else "")
        raise MgrError(f"{len(bad)} images do not decode: {listing}; replace them or pass "
                       "--bad-images drop")
    bad_paths = {p for p, _ in bad}
    bad_ids = {i for i in present if paths[i] in bad_paths}
    report["dropped_items_bad_image"] = len(bad_ids)
    return _drop_items(inter, bad_ids)


def _drop_repeats(inter: Interactions, report: dict) -> Interactions:
    seen: set[tuple[str, str]] = set()
    out = []
    for x in inter:
        if (x[0], x[1]) not in seen:
            seen.add((x[0], x[1]))
            out.append(x)
    report["dropped_repeated_interactions"] = len(inter) - len(out)
    return out


def k_core(inter: Interactions, k: int) -> tuple[Interactions, int]:
    """Iteratively drop users and items with fewer than k interactions; (kept, rounds)."""
    rounds = 0
    while True:
        users = Counter(u for u, _, _ in inter)
        items = Counter(i for _, i, _ in inter)
        kept = [x for x in inter if users[x[0]] >= k and items[x[1]] >= k]
        if len(kept) == len(inter):
            return kept, rounds
        inter, rounds = kept, rounds + 1


def _sequences(inter: Interactions) -> dict[str, list[str]]:
    """Per user (first-appearance order), items in time order; ties keep file order."""
    by_user: dict[str, list[tuple[float, int, str]]] = {}
    for pos, (u, i, t) in enumerate(inter):
        by_user.setdefault(u, []).append((t, pos, i))
    return {u: [i for _, _, i in sorted(evts)] for u, evts in by_user.items()}


def apply_protocol(raw: RawData, cfg: PrepareConfig, name: str,
                   log: Callable[[str], None] = lambda s: None) -> tuple[Dataset, dict[str, Any]]:
    """Raw data in, a split-ready dataset and a report of every count out."""
    bad = cfg.problems()
    if bad:
        raise MgrError("; ".join(bad))
    inter = raw.interactions
    if not inter:
        raise MgrError("no interactions in the input")
    report: dict[str, Any] = {"raw": _count(inter), "raw_items_in_item_file": len(raw.items)}
    report.update(raw.notes)
    inter = _unknown(raw, inter, cfg, report)
    inter = _empty_text(raw, inter, cfg, report)
    inter = _images(raw, inter, cfg, report, log)
    if cfg.repeats == "drop":
        inter = _drop_repeats(inter, report)
    before = _count(inter)
    log(f"{cfg.k_core}-core on {before['users']} users, {before['items']} items, "
        f"{before['interactions']} interactions")
    inter, rounds = k_core(inter, cfg.k_core)
    after = _count(inter)
    report["k_core"] = {"k": cfg.k_core, "rounds": rounds, "before": before, "after": after,
                        "removed_users": before["users"] - after["users"],
                        "removed_items": before["items"] - after["items"],
                        "removed_interactions": before["interactions"] - after["interactions"]}
    seqs = {u: s for u, s in _sequences(inter).items() if len(s) >= 3}
    report["dropped_users_too_short_for_split"] = after["users"] - len(seqs)
    if not seqs:
        raise MgrError(f"no user keeps 3 or more interactions after the {cfg.k_core}-core "
                       f"(of {before['users']} users and {before['items']} items); "
                       "lower --k-core or check the input")
    used = {i for s in seqs.values() for i in s}
    if raw.item_order == "given":
        order = [i for i in raw.items if i in used]
    else:
        order = list(dict.fromkeys(i for s in seqs.values() for i in s))
    index = {i: n for n, i in enumerate(order)}
    items: list[Item] = [raw.items[i] for i in order]
    ds = Dataset(name, items, list(seqs), [[index[i] for i in s] for s in seqs.values()],
                 cfg.max_history, str(Path(raw.image_root).resolve()) if raw.image_root else None)
    return ds, report
