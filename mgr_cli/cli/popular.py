"""mgr popular: the most-popular baseline, written like an evaluation.

    mgr popular beauty.dataset.jsonl -o eval/popular
    mgr evaluate --table eval/popular/metrics.jsonl --table eval/tiger/metrics.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from mgr_cli.cli.common import command_line, console, handle_errors


@handle_errors
def popular_cmd(
    ctx: typer.Context,
    dataset: Path = typer.Argument(..., help="Dataset artifact from mgr prepare."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for metrics.jsonl and predictions.jsonl."),
    split: str = typer.Option("test", help="test or valid."),
    top_k: int = typer.Option(20, help="Items kept per user."),
    sample: Optional[int] = typer.Option(None, help="A seeded random sample of N users (as mgr evaluate --sample)."),
    seed: int = typer.Option(0, help="Seed of --sample."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Recommend the training split's most popular items to everybody: the floor a trained model must clear."""
    from mgr_cli.decoding.popular import evaluate_popular

    meta = evaluate_popular(dataset, out, split=split, k=top_k, sample=sample, seed=seed,
                            command=command_line(ctx), force=force)
    m = meta["metrics"]
    console().print(f"{meta['users']} users, most popular: "
                    + ", ".join(f"{k} {m[k]:.4f}" for k in ("mrr", "ndcg@5", "ndcg@10", "hits@5", "hits@10")))
    print(json.dumps({"users": meta["users"], **m}))
