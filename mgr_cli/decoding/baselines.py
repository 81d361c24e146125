"""Reference rows that need no training, written exactly like `evaluate`'s output
(predictions.jsonl, metrics.jsonl with standard errors and coverage), so the tables read
them as rows like any other:

    popular  the floor every trained row must clear: everybody gets the items that occur
             most often in the training part of all sequences (all but each user's last
             two items, so neither the validation nor the test target is counted)
    random   a seeded uniform random ranking of the whole catalogue per user: chance
    oracle   (the demo catalogue only) the simulation's own next-item distribution,
             from its hidden rules and user preferences: the ceiling
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from mgr_cli.artifacts import Input, check_output, sha256_file
from mgr_cli.evaluation.predictions import PartWriter, finish, select_rows
from mgr_cli.errors import MgrError


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
    def rank(ds):
        ranked, scores = popular_items(ds.sequences, k)
        names = [ds.items[i].id for i in ranked]
        return lambda u, history: (names, scores)

    return _write_baseline("popular", rank, dataset, out_dir, split=split, k=k, sample=sample,
                           seed=seed, command=command, force=force,
                           extra={"counted": "training split (all but each user's last two items)"})


def evaluate_random(dataset: Path | str, out_dir: Path | str, *, split: str = "test", k: int = 20,
                    sample: int | None = None, seed: int = 0, command: str = "python API",
                    force: bool = False) -> dict:
    """Each user: k distinct items drawn uniformly from the catalogue (seeded per user
    row, so a sample ranks its users as the whole run does)."""
    def rank(ds):
        n = len(ds.items)
        if k > n:
            raise MgrError(f"--top-k {k} exceeds the catalogue's {n} items")

        def one(u, history):
            pick = np.random.default_rng([seed, u]).choice(n, size=k, replace=False)
            return [ds.items[i].id for i in pick], [1.0 / n] * k
        return one

    return _write_baseline("random", rank, dataset, out_dir, split=split, k=k, sample=sample,
                           seed=seed, command=command, force=force, extra={"random_seed": seed})


def evaluate_oracle(dataset: Path | str, truth_path: Path | str, out_dir: Path | str, *,
                    split: str = "test", k: int = 20, sample: int | None = None, seed: int = 0,
                    command: str = "python API", force: bool = False) -> dict:
    """The demo catalogue's ceiling: the k most likely next items under the simulation
    that made the data (`truth.json` of `mgr demo-data`)."""
    from mgr_cli.data.demo import oracle_probabilities

    truth_path = Path(truth_path)
    try:
        truth = json.loads(truth_path.read_text())
        raw_item = {name: i for i, name in enumerate(truth["item_ids"])}
        raw_user = {name: u for u, name in enumerate(truth["user_ids"])}
        truth["items"] = {k: np.asarray(v) for k, v in truth["items"].items()}  # once, not per user
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MgrError(f"{truth_path}: not the truth file of mgr demo-data ({e}); "
                       "generate the catalogue again with mgr demo-data") from None

    def rank(ds):
        missing = [it.id for it in ds.items if it.id not in raw_item][:3]
        missing += [u for u in ds.user_ids if u not in raw_user][:3]
        if missing:
            raise MgrError(f"{truth_path}: does not know {', '.join(missing)} of {dataset}; "
                           "the oracle needs the dataset prepared from that demo catalogue")
        names = np.array([it.id for it in ds.items])
        to_ds = np.full(len(truth["item_ids"]), -1)
        to_ds[[raw_item[n] for n in names]] = np.arange(len(names))

        def one(u, history):
            p = oracle_probabilities(truth, raw_user[ds.user_ids[u]], [raw_item[names[i]] for i in history])
            order = [i for i in np.argsort(-p, kind="stable") if to_ds[i] >= 0][:k]
            return [str(names[to_ds[i]]) for i in order], [float(p[i]) for i in order]
        return one

    return _write_baseline("oracle", rank, dataset, out_dir, split=split, k=k, sample=sample,
                           seed=seed, command=command, force=force,
                           extra={"truth": str(truth_path), "truth_sha256": sha256_file(truth_path)})


def _write_baseline(name: str, make_ranker, dataset, out_dir, *, split: str, k: int,
                    sample: int | None, seed: int, command: str, force: bool, extra: dict) -> dict:
    """Rank every user of `split` with `make_ranker(dataset)(user row, history indices)`
    and write the predictions and metrics as `evaluate` does."""
    from mgr_cli import distributed
    from mgr_cli.data import load_dataset

    dataset, out_dir = Path(dataset), Path(out_dir)
    if split not in ("test", "valid"):
        raise MgrError(f"--split must be test or valid, got {split!r}")
    if k < 1:
        raise MgrError(f"--top-k must be at least 1, got {k}")
    for file in ("predictions.jsonl", "metrics.jsonl"):
        check_output(out_dir / file, force)
    ds, dh = load_dataset(dataset)
    rows = select_rows(len(ds.sequences), None, sample, seed)
    ranker = make_ranker(ds)
    out_dir.mkdir(parents=True, exist_ok=True)
    part = PartWriter(out_dir, 0)
    for u in rows:
        history, target = ds.held_out(u, split)
        items, scores = ranker(u, history)
        part.add(ds.user_ids[u], ds.items[target].id, items, scores)
    config = {"split": split, "top_k": k, "sample": sample, "seed": seed if sample else None,
              "world_size": 1, **extra}
    return finish(out_dir, distributed.Dist(), part.close(), meta={"layout": name, "modalities": []},
                  config=config, inputs=[Input("dataset", dataset, dh)], command=command,
                  force=force, n_items=len(ds.items))
