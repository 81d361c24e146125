"""mgr evaluate: constrained beam search over all items; metrics and predictions.
mgr compare and mgr table read what it wrote.

    mgr evaluate runs/lfpp lfpp.tok.safetensors -o eval/lfpp
    mgr evaluate runs/lf lf.tok.safetensors -o eval/lf-text --modalities text     # Table 3
    mgr compare eval/text/predictions.jsonl eval/ef/predictions.jsonl           # Table 2
    mgr table eval/tiger-text/metrics.jsonl eval/lfpp/metrics.jsonl              # markdown
    torchrun --standalone --nproc_per_node=4 -m mgr_cli evaluate runs/lfpp lfpp.tok.safetensors -o eval/lfpp
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from mgr_cli.cli.common import (choice, command_line, config_option, console, handle_errors,
                                plugin_option)
from mgr_cli.errors import MgrError

SPLITS = ("test", "valid")
PRECISIONS = ("auto", "fp32", "bf16")


@handle_errors
def evaluate_cmd(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run folder from mgr train."),
    tokenized: Path = typer.Argument(..., help="Tokenized artifact the run was trained on."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for metrics.jsonl and predictions.jsonl."),
    split: str = typer.Option("test", callback=choice(SPLITS), help="test or valid."),
    beams: int = typer.Option(20, help="Beam width."),
    top_k: int = typer.Option(20, help="Items kept per user."),
    batch_size: int = typer.Option(64, help="Users decoded together."),
    workers: int = typer.Option(0, help="CPU decoding threads, each searching part of a batch (0: one per core, at least 16 users each)."),
    modalities: Optional[str] = typer.Option(None, help="Decode only these modalities' IDs (comma-separated)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N users (smoke runs)."),
    sample: Optional[int] = typer.Option(None, help="A seeded random sample of N users (the same users for every model of a dataset)."),
    seed: int = typer.Option(0, help="Seed of --sample."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    precision: str = typer.Option("auto", callback=choice(PRECISIONS), help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 (faster on CPUs with AMX; scores differ by ~1e-3)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    config: Optional[Path] = config_option(),
    plugin: Optional[List[Path]] = plugin_option(),
) -> None:
    """Rank all items for each user; MRR, NDCG@5/10/20, Hits@1/5/10/20 on stdout as JSON."""
    from mgr_cli.decoding.evaluate import evaluate

    for option, value in (("--batch-size", batch_size), ("--limit", limit)):
        if value is not None and value < 1:
            raise MgrError(f"{option} must be at least 1, got {value}")
    mods = [m.strip() for m in modalities.split(",")] if modalities else None
    meta = evaluate(run, tokenized, out, split=split, beams=beams, k=top_k, batch_size=batch_size,
                    workers=workers or None, modalities=mods, limit=limit, sample=sample, seed=seed, device=device, precision=precision,
                    command=command_line(ctx),
                    force=force)
    if meta is not None:
        m = meta["metrics"]
        console().print(f"{meta['users']} users, {meta['layout']} ({', '.join(meta['modalities'])}): "
                        + ", ".join(f"{k} {m[k]:.4f}" for k in ("mrr", "ndcg@5", "ndcg@10", "hits@5", "hits@10"))
                        + f"; {meta['distinct_top1']} distinct top-1 items, top-{top_k} lists cover "
                        f"{meta[f'coverage@{top_k}']:.1%} of the items")
        print(json.dumps({"users": meta["users"], **m}))


@handle_errors
def compare_cmd(
    a: Path = typer.Argument(..., metavar="A_PRED", help="A predictions.jsonl from mgr evaluate."),
    b: Path = typer.Argument(..., metavar="B_PRED", help="Another one, of the same users."),
    top_k: int = typer.Option(20, help="Length of the lists whose overlap is averaged."),
) -> None:
    """Agreement of two models' predictions (Table 2) on stdout as JSON."""
    from mgr_cli.evaluation.compare import overlap

    if top_k < 1:
        raise MgrError(f"--top-k must be at least 1, got {top_k}")
    print(json.dumps(overlap(a, b, top_k)))


@handle_errors
def table_cmd(
    metrics: List[Path] = typer.Argument(..., metavar="METRICS",
                                         help="metrics.jsonl files (mgr evaluate, popular, random, sasrec evaluate)."),
) -> None:
    """One markdown table of metrics files, a row each (named by its folder), on stdout."""
    from mgr_cli.evaluation.compare import metrics_table

    print(metrics_table(metrics))
