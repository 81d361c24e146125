"""`evaluate`: a trained run and its tokenized data in; metrics and streamed predictions out.

Full ranking: constrained beam search (default 20 beams) over all items, per user
metrics averaged. Under torchrun each rank decodes a strided shard of the users into
its own part file; rank 0 merges the parts in user order into one predictions
artifact, so every user is counted exactly once and memory does not grow with users.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import torch

from mgr_cli import distributed
from mgr_cli.artifacts import Input, Provenance, check_output, read_jsonl, write_jsonl
from mgr_cli.decoding.metrics import Coverage, Mean, user_metrics, validation_rows
from mgr_cli.decoding.rank import check_workers, decode_sequences, rank_examples
from mgr_cli.errors import MgrError
from mgr_cli.tokens.stage import Tokenized


def load_run_model(run_dir: Path, tok: Tokenized, device: torch.device, precision: str = "fp32",
                   verb: str = "evaluate"):
    from transformers import T5ForConditionalGeneration

    from mgr_cli.artifacts import model_problem
    from mgr_cli.artifacts.lineage import parent_path

    run, _ = read_jsonl(run_dir / "run.jsonl", "run")  # verified: its header is hashed too
    if run["meta"].get("vocab_fingerprint") != tok.header["meta"]["vocab_fingerprint"]:
        raise MgrError(f"{run_dir}: the model's vocabulary does not match {tok.path}; {verb} "
                       "with the tokenized data the model was trained on")
    trained = next((i for i in run["inputs"] if i["role"] == "tokenized"), None)
    if trained is None or not _made_from(tok, trained["content_hash"]):
        was = (f"{parent_path(run_dir / 'run.jsonl', trained).resolve()} "
               f"({trained['content_hash'][:19]}...)" if trained else "unrecorded tokenized data")
        raise MgrError(f"{run_dir}: trained on {was}, not on {tok.path} "
                       f"({tok.header['content_hash'][:19]}...); {verb} with the tokenized data "
                       "the model was trained on")
    problem = model_problem(run_dir / "run.jsonl", run)  # missing, or not the recorded one
    if problem:
        raise MgrError(problem)
    try:  # a run folder is local: never a hub download
        model = T5ForConditionalGeneration.from_pretrained(run_dir / "model", local_files_only=True)
    except (OSError, ValueError) as e:
        raise MgrError(f"{run_dir / 'model'}: not a loadable model ({str(e).splitlines()[0]}); "
                       "train it again with mgr train") from None
    model = model.to(device).eval()
    if precision == "bf16":
        model = model.to(torch.bfloat16)  # scores are still accumulated in fp32
    return model, run


def _made_from(tok: Tokenized, want: str) -> bool:
    """Whether `tok` is the tokenized data with content hash `want`, or extends it (an
    extended catalogue from `mgr items add`, in the same vocabulary: its "base" inputs)."""
    from mgr_cli.artifacts import read_header
    from mgr_cli.artifacts.lineage import parent_path

    path, header = tok.path, tok.header
    for _ in range(100):  # a chain of additions; a cycle cannot be made, but stop anyway
        if header["content_hash"] == want:
            return True
        base = next((e for e in header["inputs"] if e["role"] == "base"), None)
        if base is None:
            return False
        if base["content_hash"] == want:
            return True
        path = parent_path(path, base)
        try:
            header = read_header(path, "tokenized")
        except MgrError:
            return False
    return False


def _ids_of_dataset(tok: Tokenized) -> tuple[list[str], list[str]]:
    from mgr_cli.artifacts import find_ancestor
    from mgr_cli.data import load_dataset

    ds, _ = load_dataset(find_ancestor(tok.path, "dataset", tok.header))
    return [it.id for it in ds.items], ds.user_ids


def evaluate(run_dir: Path | str, tokenized: Path | str, out_dir: Path | str, *, split: str = "test",
             beams: int = 20, k: int = 20, batch_size: int = 64, workers: int | None = None, modalities: list[str] | None = None,
             limit: int | None = None, sample: int | None = None, seed: int = 0,
             device: str = "auto", precision: str = "auto", command: str = "python API",
             force: bool = False, log: Callable[[str], None] = lambda s: None) -> dict | None:
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    preds_path, metrics_path = out_dir / "predictions.jsonl", out_dir / "metrics.jsonl"
    dist = distributed.from_env()
    if dist.main:
        check_output(preds_path, force)
        check_output(metrics_path, force)
    if beams < 1 or k < 1:
        raise MgrError("--beams and --top-k must be at least 1")
    check_workers(workers)
    from mgr_cli.models.t5 import quiet_transformers

    quiet_transformers()
    tok = Tokenized.load(tokenized)
    dev = distributed.pick_device(device, dist)
    dist = distributed.init(dev)
    if precision not in ("auto", "fp32", "bf16"):
        raise MgrError(f"--precision must be auto, fp32 or bf16, got {precision!r}")
    precision = ("bf16" if dev.type == "cuda" else "fp32") if precision == "auto" else precision
    model, run = load_run_model(run_dir, tok, dev, precision)
    _, kept = decode_sequences(tok, modalities)
    n = len(tok.tensors[f"{split}_target"])
    rows = select_rows(n, limit, sample, seed)
    if not rows:
        raise MgrError(f"{tokenized}: the {split} split is empty")
    distributed.check_shardable(len(rows), dist, "users")
    item_ids, user_ids = _ids_of_dataset(tok)
    users, targets = tok.tensors[f"{split}_user"], tok.tensors[f"{split}_target"]
    out_dir.mkdir(parents=True, exist_ok=True)
    part = PartWriter(out_dir, dist.rank)
    for r, items, scores in rank_examples(model, tok, split, rows[dist.rank::dist.world],
                                          beams=beams, k=k, batch_size=batch_size, device=dev,
                                          modalities=modalities, workers=workers):
        part.add(user_ids[users[r]], item_ids[targets[r]], [item_ids[i] for i in items], scores)
    config = {"split": split, "beams": beams, "top_k": k, "modalities": kept, "limit": limit,
              "sample": sample, "seed": seed if sample else None, "world_size": dist.world, "precision": precision}
    inputs = [Input("run", run_dir / "run.jsonl", run), Input("tokenized", Path(tokenized), tok.header)]
    return finish(out_dir, dist, part.close(), meta={"layout": tok.header["meta"]["layout"]},
                  config=config, inputs=inputs, command=command, force=force,
                  n_items=len(tok.items))



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


def hit_overlap(a: dict[str, dict], b: dict[str, dict], k: int = 5) -> float:
    """Jaccard overlap of the users two models (predictions by user) get right in their
    top k: of the users either model predicts correctly, the share both do (the paper's
    Table 2, "identical prediction results")."""
    hits = [{u for u, r in p.items() if r["rank"] is not None and r["rank"] <= k} for p in (a, b)]
    union = hits[0] | hits[1]
    return round(len(hits[0] & hits[1]) / len(union), 6) if union else 0.0


def top1_agreement(a: dict[str, dict], b: dict[str, dict]) -> float:
    """Share of the common users whose top prediction is the same item."""
    common = [u for u in a if u in b]
    same = sum(a[u]["items"][:1] == b[u]["items"][:1] for u in common)
    return round(same / len(common), 6) if common else 0.0


def predictions_by_user(path: Path | str) -> dict[str, dict]:
    _, rows = read_jsonl(path, "predictions")
    return {r["user"]: r for r in rows}


def overlap(a: Path | str, b: Path | str, k: int = 20) -> dict:
    """Agreement of two prediction files on the same users: Table 2's Jaccard overlap of
    the users both get right (Hits@5), the share of users whose top prediction is the
    same, and the mean overlap of the top-k lists. `mgr evaluate --compare` and the
    Table 2 report both use these definitions."""
    pa, pb = predictions_by_user(a), predictions_by_user(b)
    common = [u for u in pa if u in pb]
    if not common:
        raise MgrError(f"{a} and {b} share no users")
    pa, pb = {u: pa[u] for u in common}, {u: pb[u] for u in common}
    topk = sum(len(set(pa[u]["items"][:k]) & set(pb[u]["items"][:k])) / k for u in common) / len(common)
    return {"users": len(common), "hit_overlap@5": hit_overlap(pa, pb), "top1_agreement": top1_agreement(pa, pb),
            f"top{k}_overlap": round(topk, 6)}


def metrics_table(paths: list[Path]) -> str:
    """One markdown row per metrics artifact (named by its folder): MRR, NDCG@5/10, Hits@5/10
    (each ± its standard error over users where recorded), and how many distinct items
    the users' lists hold: distinct top-1 items, catalogue coverage of the top-k lists."""
    cols = ["mrr", "ndcg@5", "ndcg@10", "hits@5", "hits@10"]
    lines = ["| run | users | " + " | ".join(c.upper().replace("HITS", "Hits") for c in cols)
             + " | top-1 items | coverage |", "|---|---|" + "---|" * (len(cols) + 2)]
    for p in paths:
        h, _ = read_jsonl(p, "metrics")
        meta = h["meta"]
        m, se = meta["metrics"], meta.get("standard_errors", {})
        cov = next((v for k, v in meta.items() if k.startswith("coverage@")), None)
        cells = [f"{m[c]:.4f} ± {se[c]:.4f}" if c in se else f"{m[c]:.4f}" for c in cols]
        lines.append(f"| {Path(p).parent.name} | {meta['users']} | " + " | ".join(cells)
                     + f" | {meta.get('distinct_top1', '-')} | "
                     + (f"{cov:.3f}" if cov is not None else "-") + " |")
    return "\n".join(lines)
