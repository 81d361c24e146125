"""`evaluate`: a trained run and its tokenized data in; metrics and streamed predictions out.

Full ranking: constrained beam search (default 20 beams) over all items, per user
metrics averaged. Under torchrun each rank decodes a strided shard of the users into
its own part file; rank 0 merges the parts in user order into one predictions
artifact, so every user is counted exactly once and memory does not grow with users
(the writers: `mgr_cli.evaluation.predictions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from mgr_cli import distributed
from mgr_cli.artifacts import Input, check_output, read_jsonl
from mgr_cli.decoding.rank import check_workers, decode_sequences, rank_examples
from mgr_cli.errors import MgrError
from mgr_cli.evaluation.predictions import PartWriter, finish, select_rows
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
