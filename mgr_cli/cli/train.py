"""mgr align / mgr train: the T5 recommender's two training stages (same options).

    mgr align lfpp.tok.safetensors -o runs/lfpp-align --steps 2000
    mgr train lfpp.tok.safetensors -o runs/lfpp --init runs/lfpp-align --steps 10000
    mgr train tiger.tok.safetensors -o runs/tiger --resume
    torchrun --standalone --nproc_per_node=8 -m mgr_cli train tiger.tok.safetensors -o runs/tiger
    torchrun --nnodes=2 --node_rank=$R --master_addr=$HOST --nproc_per_node=8 -m mgr_cli train ...
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mgr_cli.cli.common import (choice, command_line, config_option, handle_errors, log,
                                plugin_option)

METRICS = ("mrr", "ndcg@5", "ndcg@10", "ndcg@20", "hits@1", "hits@5", "hits@10", "hits@20")


def _run(task: str, ctx: typer.Context, tokenized: Path, out: Path, **kw) -> None:
    from mgr_cli.models.t5 import ModelConfig
    from mgr_cli.training.trainer import TrainConfig, train

    model = ModelConfig(**{k: kw.pop(k) for k in ("layers", "decoder_layers", "d_model", "heads",
                                                   "d_kv", "d_ff", "dropout", "encoder_input")})
    resume, force = kw.pop("resume"), kw.pop("force")
    kw["init_codes"] = [str(p) for p in kw.pop("init_codes") or []]
    cfg = TrainConfig(task=task, model=model, **kw)
    from mgr_cli.cli.progress import progress_bar

    with progress_bar(cfg.steps, task if task == "align" else "train") as advance:
        train(tokenized, out, cfg, resume=resume, command=command_line(ctx), force=force, log=log,
              progress=advance)


def _options(task: str):
    default_steps = 2000 if task == "align" else 10000

    @handle_errors
    def command(
        ctx: typer.Context,
        tokenized: Path = typer.Argument(..., help="Tokenized artifact from mgr tokenize."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder (run.jsonl, model/, checkpoint/)."),
        init: Optional[str] = typer.Option(None, help="Start from a local pretrained T5 folder or a previous align/train run."),
        init_codes: Optional[List[Path]] = typer.Option(None, "--init-codes", help="Start each semantic-ID token's embedding from its codebook vector: the ID artifacts (from mgr quantize) that TOKENIZED was made from (repeat per modality)."),
        steps: int = typer.Option(default_steps, help="Optimiser steps."),
        batch_size: int = typer.Option(256, help="Examples per step and process."),
        lr: float = typer.Option(1e-3, help="Peak learning rate (AdamW)."),
        warmup: int = typer.Option(100, help="Linear warm-up steps."),
        weight_decay: float = typer.Option(0.01, help="AdamW weight decay."),
        clip: float = typer.Option(1.0, help="Gradient norm clipping."),
        eval_every: int = typer.Option(500, help="Validate and checkpoint every N steps."),
        eval_users: int = typer.Option(1000, help="Validation users decoded per evaluation."),
        eval_beams: int = typer.Option(20, help="Beams for validation decoding."),
        metric: str = typer.Option("ndcg@10", callback=choice(METRICS), help="Early-stopping metric (rec)."),
        patience: int = typer.Option(0, help="Stop after N evaluations without improvement (0: never)."),
        max_minutes: float = typer.Option(0.0, help="Stop (validate, keep the best model) once this much wall time has passed (0: no limit)."),
        decay_over: str = typer.Option("steps", callback=choice(("steps", "minutes")), help="Decay the learning rate to 0 at --steps, or (minutes) at --steps or --max-minutes, whichever comes first: for a wall-time budget."),
        layers: int = typer.Option(4, help="Encoder layers."),
        decoder_layers: int = typer.Option(4, help="Decoder layers."),
        d_model: int = typer.Option(128, help="Model width."),
        heads: int = typer.Option(6, help="Attention heads."),
        d_kv: int = typer.Option(64, help="Size of each head."),
        d_ff: int = typer.Option(1024, help="Feed-forward width."),
        dropout: float = typer.Option(0.1, help="Dropout."),
        encoder_input: str = typer.Option("tokens", callback=choice(("tokens", "items")), help="tokens: one encoder position per semantic-ID token (TIGER); items: one per history item, the sum of its tokens' embeddings (rec only; ~L times fewer encoder positions)."),
        seed: int = typer.Option(0, help="Random seed."),
        device: str = typer.Option("auto", help="auto, cpu, cuda."),
        precision: str = typer.Option("auto", callback=choice(("auto", "fp32", "bf16")), help="auto (bf16 autocast on CUDA and on CPUs with AMX-BF16, else fp32), fp32, bf16."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint."),
        force: bool = typer.Option(False, "--force", help="Overwrite a finished run in OUT."),
        config: Optional[Path] = config_option(),
        plugin: Optional[List[Path]] = plugin_option(),
    ) -> None:
        kw = {k: v for k, v in locals().items()
              if k not in ("ctx", "tokenized", "out", "task", "config", "plugin")}
        _run(task, ctx, tokenized, out, **kw)

    command.__doc__ = ("Alignment pre-training: predict an item's ID in one modality from its ID "
                       "in another (MGR-LF++)." if task == "align" else
                       "Next-item training, optionally from an align run (--init).")
    return command


align_cmd = _options("align")
train_cmd = _options("rec")
