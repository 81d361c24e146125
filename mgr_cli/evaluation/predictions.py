"""Predictions and metrics artifacts: which users an evaluation ranks, each rank's part
file of predictions, and the merge (in user order) into predictions.jsonl plus
metrics.jsonl with standard errors and catalogue coverage. Every ranking command writes
through these: `evaluate`, `sasrec evaluate`, the reference rows (popular, random,
oracle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from mgr_cli import distributed
from mgr_cli.artifacts import Input, Provenance, write_jsonl
from mgr_cli.errors import MgrError
from mgr_cli.evaluation.metrics import Coverage, Mean, user_metrics, validation_rows


def select_rows(n: int, limit: int | None, sample: int | None, seed: int) -> list[int]:
    """All n users, the first `limit`, or a seeded random `sample` of them (in row order;
    the same seed gives the same users for every model of a dataset)."""
    if limit is not None and sample is not None:
        raise MgrError("give --limit or --sample, not both")
    if sample is not None:
        if sample < 1:
            raise MgrError(f"--sample must be at least 1, got {sample}")
        return validation_rows(n, sample, seed)
    return list(range(n if limit is None else min(limit, n)))


class PartWriter:
    """One rank's predictions, one JSON line per user, plus the running metric means."""

    def __init__(self, out_dir: Path, rank: int):
        self.file = open(out_dir / f".predictions.part{rank}", "w")
        self.mean = Mean()
        self.coverage = Coverage()

    def add(self, user: str, target: str, items: list[str], scores: list[float]) -> None:
        self.mean.add(user_metrics(items, target))
        self.coverage.add(items)
        rank = items.index(target) + 1 if target in items else None
        self.file.write(json.dumps({"user": user, "target": target, "rank": rank, "items": items,
                                    "scores": [round(s, 5) for s in scores]}) + "\n")

    def close(self) -> "PartWriter":
        self.file.close()
        return self


def finish(out_dir: Path, dist, part: PartWriter, *, meta: dict, config: dict, inputs: list[Input],
           command: str, force: bool, n_items: int) -> dict | None:
    """Gather every rank's metrics; rank 0 merges the part files, in user order, into
    predictions.jsonl and writes metrics.jsonl. Returns the metrics meta on rank 0: the
    means, their standard errors over users, and the lists' coverage of the catalogue."""
    parts = distributed.gather((part.mean, part.coverage), dist)
    distributed.barrier(dist)
    result = None
    if dist.main:
        total, coverage = Mean(), Coverage()
        for mean, cov in parts:
            total.merge(mean)
            coverage.merge(cov)
        metrics = {key: round(v, 6) for key, v in sorted(total.result().items())}
        errors = {key: round(v, 6) for key, v in sorted(total.errors().items())}
        result = {"users": total.n, **meta, "metrics": metrics, "standard_errors": errors,
                  **coverage.result(n_items, config["top_k"]), **config}
        prov = Provenance(command, config)
        write_jsonl(out_dir / "predictions.jsonl", "predictions", merge_parts(out_dir, dist.world),
                    provenance=prov, inputs=inputs, meta=result, force=force)
        write_jsonl(out_dir / "metrics.jsonl", "metrics",
                    [{"split": config["split"], **metrics,
                      **{f"{k}_se": v for k, v in errors.items()},
                      **coverage.result(n_items, config["top_k"])}],
                    provenance=prov, inputs=inputs, meta=result, force=force)
        for w in range(dist.world):
            (out_dir / f".predictions.part{w}").unlink(missing_ok=True)
    distributed.barrier(dist)
    distributed.finish(dist)
    return result


def merge_parts(out_dir: Path, world: int) -> Iterator[dict]:
    """Rows were strided over ranks: read one line of each part in turn."""
    files = [open(out_dir / f".predictions.part{w}") for w in range(world)]
    try:
        while True:
            done = 0
            for f in files:
                line = f.readline()
                if line:
                    yield json.loads(line)
                else:
                    done += 1
            if done == world:
                return
    finally:
        for f in files:
            f.close()
