"""mgr sasrec: the SASRec baseline (ID-based), same split, metrics and output files.

    mgr sasrec train beauty.dataset.jsonl -o runs/sasrec
    mgr sasrec train beauty.dataset.jsonl -o runs/sasrec --resume      # after Ctrl-C or a crash
    mgr sasrec evaluate runs/sasrec beauty.dataset.jsonl -o eval/sasrec
    mgr sasrec embed runs/sasrec beauty.dataset.jsonl -o sasrec.emb.safetensors   # for LETTER
    torchrun --standalone --nproc_per_node=4 -m mgr_cli sasrec train beauty.dataset.jsonl -o runs/sasrec
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from mgr_cli.cli.common import choice, command_line, config_option, console, handle_errors, log

app = typer.Typer(help="SASRec (Kang and McAuley 2018): train and evaluate the ID-based baseline.",
                  no_args_is_help=True)


@app.command("train")
@handle_errors
def sasrec_train(
    ctx: typer.Context,
    dataset: Path = typer.Argument(..., help="Dataset artifact."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder."),
    epochs: int = typer.Option(200, help="Maximum epochs."),
    batch_size: int = typer.Option(256, help="Users per step and process."),
    lr: float = typer.Option(1e-3, help="AdamW learning rate."),
    hidden: int = typer.Option(64, help="Embedding size."),
    layers: int = typer.Option(2, help="Self-attention blocks."),
    heads: int = typer.Option(2, help="Attention heads."),
    dropout: float = typer.Option(0.2, help="Dropout."),
    max_len: int = typer.Option(20, help="History length (as the generative models)."),
    eval_every: int = typer.Option(5, help="Validate every N epochs."),
    eval_users: int = typer.Option(2000, help="Validation users per evaluation."),
    patience: int = typer.Option(5, help="Stop after N evaluations without improvement (0: never)."),
    select: str = typer.Option("best", help="best: keep the best validation epoch; last: keep the last "
                               "epoch and read no validation item (collaborative IDs: training split only)."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    config: Optional[Path] = config_option(),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint (same options)."),
    force: bool = typer.Option(False, "--force", help="Overwrite a finished run in OUT."),
) -> None:
    """Train SASRec with a full softmax over all items; keep the best model on validation NDCG@10
    (or, --select last, the last epoch's)."""
    from mgr_cli.models.sasrec import SASRecConfig
    from mgr_cli.training.sasrec import SASRecTrainConfig, train_sasrec

    cfg = SASRecTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, eval_every=eval_every,
                            eval_users=eval_users, patience=patience, select=select, seed=seed, device=device,
                            model=SASRecConfig(hidden=hidden, layers=layers, heads=heads,
                                               dropout=dropout, max_len=max_len))
    train_sasrec(dataset, out, cfg, resume=resume, command=command_line(ctx), force=force, log=log)


@app.command("evaluate")
@handle_errors
def sasrec_evaluate(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run folder from mgr sasrec train."),
    dataset: Path = typer.Argument(..., help="The dataset it was trained on."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for metrics.jsonl and predictions.jsonl."),
    split: str = typer.Option("test", callback=choice(("test", "valid")), help="test or valid."),
    top_k: int = typer.Option(20, help="Items kept per user."),
    sample: Optional[int] = typer.Option(None, help="A seeded random sample of N users (as mgr evaluate --sample)."),
    seed: int = typer.Option(0, help="Seed of --sample."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    config: Optional[Path] = config_option(),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Rank ALL items for every user; the same metrics and files as mgr evaluate."""
    from mgr_cli.training.sasrec import evaluate_sasrec

    meta = evaluate_sasrec(run, dataset, out, split=split, k=top_k, device=device, sample=sample, seed=seed,
                           command=command_line(ctx), force=force)
    if meta is not None:
        m = meta["metrics"]
        console().print(f"{meta['users']} users, SASRec: " + ", ".join(
            f"{key} {m[key]:.4f}" for key in ("mrr", "ndcg@5", "ndcg@10", "hits@5", "hits@10")))
        print(json.dumps({"users": meta["users"], **m}))


@app.command("embed")
@handle_errors
def sasrec_embed(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run folder from mgr sasrec train."),
    dataset: Path = typer.Argument(..., help="The dataset it was trained on."),
    out: Path = typer.Option(..., "--out", "-o", help="Embeddings artifact to write (.safetensors)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
) -> None:
    """Write SASRec's item embeddings as an embeddings artifact (modality "collab"), the
    collaborative side of `mgr quantize --method letter`."""
    from mgr_cli.training.sasrec import export_item_embeddings

    header = export_item_embeddings(run, dataset, out, command=command_line(ctx), force=force)
    log(f"wrote {header['meta']['n_items']} x {header['meta']['dim']} SASRec item embeddings to {out}")
