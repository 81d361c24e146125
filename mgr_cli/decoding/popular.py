"""The floor every trained row must clear: the most popular items of the training split.

Every user gets the same list: the items that occur most often in the training part of
all users' sequences (everything but each user's last two items, so neither the
validation nor the test target is counted). It is written exactly like `evaluate`'s
output (predictions.jsonl, metrics.jsonl with standard errors and coverage), so the
tables read it as one more row.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mgr_cli.artifacts import Input, check_output
from mgr_cli.decoding.evaluate import PartWriter, finish, select_rows
from mgr_cli.errors import MgrError

LAYOUT = "popular"


def popular_items(sequences: list[list[int]], k: int) -> tuple[list[int], list[float]]:
    """The k most frequent items of the training split (ties: lower item index first),
    and their shares of the training interactions as scores."""
    counts = Counter(i for seq in sequences for i in seq[:-2])
    total = sum(counts.values()) or 1
    ranked = sorted(counts, key=lambda i: (-counts[i], i))[:k]
    return ranked, [counts[i] / total for i in ranked]


def evaluate_popular(dataset: Path | str, out_dir: Path | str, *, split: str = "test", k: int = 20,
                     sample: int | None = None, seed: int = 0, command: str = "python API",
                     force: bool = False) -> dict:
    from mgr_cli import distributed
    from mgr_cli.data import load_dataset

    dataset, out_dir = Path(dataset), Path(out_dir)
    if split not in ("test", "valid"):
        raise MgrError(f"--split must be test or valid, got {split!r}")
    if k < 1:
        raise MgrError(f"--top-k must be at least 1, got {k}")
    for name in ("predictions.jsonl", "metrics.jsonl"):
        check_output(out_dir / name, force)
    ds, dh = load_dataset(dataset)
    rows = select_rows(len(ds.sequences), None, sample, seed)
    ranked, scores = popular_items(ds.sequences, k)
    names = [ds.items[i].id for i in ranked]
    cut = 1 if split == "test" else 2
    out_dir.mkdir(parents=True, exist_ok=True)
    part = PartWriter(out_dir, 0)
    for u in rows:
        part.add(ds.user_ids[u], ds.items[ds.sequences[u][-cut]].id, names, scores)
    config = {"split": split, "top_k": k, "sample": sample, "seed": seed if sample else None,
              "world_size": 1, "counted": "training split (all but each user's last two items)"}
    return finish(out_dir, distributed.Dist(), part.close(), meta={"layout": LAYOUT, "modalities": []},
                  config=config, inputs=[Input("dataset", dataset, dh)], command=command,
                  force=force, n_items=len(ds.items))
