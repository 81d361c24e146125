"""mgr popular / mgr random / mgr demo-oracle: reference rows, written like an evaluation.

    mgr popular beauty.dataset.jsonl -o eval/popular
    mgr random beauty.dataset.jsonl -o eval/random
    mgr demo-oracle build/demo/raw/truth.json build/demo/dataset.jsonl -o eval/oracle
    mgr table eval/random/metrics.jsonl eval/popular/metrics.jsonl ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from mgr_cli.cli.common import choice, command_line, config_option, console, handle_errors

SPLIT = typer.Option("test", callback=choice(("test", "valid")), help="test or valid.")
TOP_K = typer.Option(20, help="Items kept per user.")
SAMPLE = typer.Option(None, help="A seeded random sample of N users (as mgr evaluate --sample).")
SEED = typer.Option(0, help="Seed of --sample (and of the random ranking).")
FORCE = typer.Option(False, "--force", help="Overwrite existing outputs.")
OUT = typer.Option(..., "--out", "-o", help="Folder for metrics.jsonl and predictions.jsonl.")
DATASET = typer.Argument(..., help="Dataset artifact from mgr prepare.")


def _report(meta: dict, name: str) -> None:
    m = meta["metrics"]
    console().print(f"{meta['users']} users, {name}: "
                    + ", ".join(f"{k} {m[k]:.4f}" for k in ("mrr", "ndcg@5", "ndcg@10", "hits@5", "hits@10")))
    print(json.dumps({"users": meta["users"], **m}))


def _ranking_cmd(evaluator: str, name: str, doc: str):
    """A reference-row command over a dataset (popular, random): same options, one evaluator."""
    @handle_errors
    def command(ctx: typer.Context, dataset: Path = DATASET, out: Path = OUT, split: str = SPLIT,
                top_k: int = TOP_K, sample: Optional[int] = SAMPLE, seed: int = SEED,
                config: Optional[Path] = config_option(), force: bool = FORCE) -> None:
        from mgr_cli.decoding import baselines

        evaluate = getattr(baselines, evaluator)
        _report(evaluate(dataset, out, split=split, k=top_k, sample=sample, seed=seed,
                         command=command_line(ctx), force=force), name)

    command.__doc__ = doc
    return command


popular_cmd = _ranking_cmd("evaluate_popular", "most popular", "Recommend the training split's most "
                           "popular items to everybody: the floor a trained model must clear.")
random_cmd = _ranking_cmd("evaluate_random", "random",
                          "Rank the catalogue at random for every user (seeded): chance level.")


@handle_errors
def oracle_cmd(ctx: typer.Context,
               truth: Path = typer.Argument(..., help="truth.json written by mgr demo-data."),
               dataset: Path = DATASET, out: Path = OUT, split: str = SPLIT, top_k: int = TOP_K,
               sample: Optional[int] = SAMPLE, seed: int = SEED, force: bool = FORCE) -> None:
    """The demo catalogue's ceiling: rank by the simulation's own next-item probabilities."""
    from mgr_cli.decoding.baselines import evaluate_oracle

    _report(evaluate_oracle(dataset, truth, out, split=split, k=top_k, sample=sample, seed=seed,
                            command=command_line(ctx), force=force), "oracle")
