"""`align` and `train`: one trainer, one code path for one process and for torchrun.

    task "align": the alignment examples (an item's ID in one modality -> its ID in another)
    task "rec":   next-item examples (history -> next item), validated by constrained
                  beam search on the validation split, early-stopped on a ranking metric

AdamW, linear warm-up then linear decay, gradient clipping, bf16 autocast on CUDA, DDP
(nccl on CUDA, gloo on CPU) under torchrun. The run folder holds:

    run.jsonl      the run artifact: header (config, vocabulary, inputs), one record per evaluation
    model/         the best model, loadable with T5ForConditionalGeneration.from_pretrained
    checkpoint/    the latest state (model, optimiser, scheduler, RNG, data position): --resume

This module is the T5 loop (`T5Loop`: one step, validation, the model's write-out); the
run folder, seeding, DDP, the validation schedule with early stopping, resume and the
atomic write-out are the skeleton's (`training/loop.py`), shared with SASRec.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mgr_cli.artifacts import Input, Provenance, read_header, sha256_file, write_jsonl
from mgr_cli.evaluation.metrics import Mean, user_metrics, validation_rows
from mgr_cli.decoding.rank import rank_examples
from mgr_cli.errors import MgrError
from mgr_cli.models.dropout import use_fast_dropout
from mgr_cli.models.t5 import (ENCODER_INPUTS, ModelConfig, build_model, item_inputs, item_width,
                               load_pretrained_t5, set_item_width)
from mgr_cli.tokens.stage import Tokenized
from mgr_cli.training import loop
from mgr_cli.training.data import Batches

RUN_KIND = "run"


@dataclass
class TrainConfig:
    task: str = "rec"
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    clip: float = 1.0
    eval_every: int = 500
    eval_users: int = 1000
    eval_beams: int = 20
    metric: str = "ndcg@10"
    patience: int = 0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    init: str | None = None
    init_codes: list[str] = field(default_factory=list)
    max_minutes: float = 0.0
    decay_over: str = "steps"
    model: ModelConfig = field(default_factory=ModelConfig)

    def problems(self) -> list[str]:
        checks = [(self.task in ("rec", "align"), "--task must be rec or align"),
                  (self.steps >= 1, "--steps must be at least 1"),
                  (self.batch_size >= 1, "--batch-size must be at least 1"),
                  (self.eval_every >= 1, "--eval-every must be at least 1"),
                  (self.precision in ("auto", "fp32", "bf16"), "--precision must be auto, fp32 or bf16"),
                  (self.metric in ("mrr", "ndcg@5", "ndcg@10", "ndcg@20", "hits@1", "hits@5",
                                   "hits@10", "hits@20"), f"unknown --metric {self.metric!r}")]
        m = self.model
        finite = all(math.isfinite(v) for v in (self.lr, self.weight_decay, self.clip, m.dropout))
        checks += [(finite, "--lr, --weight-decay, --clip and --dropout must be finite numbers"),
                   (self.lr > 0, "--lr must be above 0"),
                   (self.warmup >= 0, "--warmup must be 0 or more"),
                   (self.weight_decay >= 0, "--weight-decay must be 0 or more"),
                   (self.clip > 0, "--clip must be above 0"),
                   (self.eval_users >= 1, "--eval-users must be at least 1"),
                   (self.eval_beams >= 1, "--eval-beams must be at least 1"),
                   (self.patience >= 0, "--patience must be 0 or more"),
                   (math.isfinite(self.max_minutes) and self.max_minutes >= 0,
                    "--max-minutes must be 0 (no limit) or more"),
                   (not (self.init and self.init_codes),
                    "--init-codes starts the code embeddings afresh: it cannot go with --init "
                    "(give it to the run you --init from)"),
                   (self.decay_over in ("steps", "minutes"), "--decay-over must be steps or minutes"),
                   (self.decay_over == "steps" or self.max_minutes > 0,
                    "--decay-over minutes needs a time budget: add --max-minutes M"),
                   (0 <= m.dropout < 1, "--dropout must be in [0, 1)"),
                   (m.encoder_input in ENCODER_INPUTS, "--encoder-input must be tokens or items"),
                   (not (self.task == "align" and m.encoder_input == "items"),
                    "--encoder-input items is for next-item training (mgr train), not align: "
                    "alignment sources are one ID, not a history of items")]
        checks += [(getattr(m, k) >= 1, f"--{k.replace('_', '-')} must be at least 1")
                   for k in ("layers", "decoder_layers", "d_model", "heads", "d_kv", "d_ff")]
        return [msg for ok, msg in checks if not ok]


def _schedule(cfg: TrainConfig, time_used: Callable[[], float] = lambda: 0.0) -> Callable[[int], float]:
    """Linear warm-up, then linear decay to 0 at --steps; with --decay-over minutes, to 0 at
    whichever comes first, --steps or --max-minutes (`time_used()`: the share of the time
    budget spent), so a run that the clock stops still ends on a decayed learning rate."""
    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        left = (cfg.steps - step) / max(1, cfg.steps - cfg.warmup)
        if cfg.decay_over == "minutes":
            left = min(left, 1.0 - time_used())
        return max(0.0, left)
    return factor


def _use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast: asked for, or `auto` on CUDA and on CPUs with AMX-BF16 units."""
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and has_amx_bf16())


def slow_bf16_warning(precision: str, device: torch.device) -> str | None:
    """bf16 asked for on a CPU without AMX-BF16: it works but runs in emulation, about 10x
    slower than fp32 (an AVX2 EPYC: 48 against 452 samples/s, results/beauty.md)."""
    if precision == "bf16" and device.type == "cpu" and not has_amx_bf16():
        return ("--precision bf16 on a CPU without AMX-BF16 units runs about 10x slower than "
                "fp32; use --precision auto (bf16 only where it is fast) or fp32")
    return None


def has_amx_bf16() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on the matrices of the layers only: not on embeddings (the shared
    token table, relative-position buckets) nor on layer-norm scales."""
    decay, keep = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "embed" in name or "shared" in name or "relative_attention_bias" in name
        (keep if no_decay else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def _init_model(cfg: TrainConfig, tok: Tokenized, log) -> tuple[torch.nn.Module, dict]:
    model, extra = _new_or_loaded_model(cfg, tok, log)
    if cfg.model.encoder_input == "items":
        set_item_width(model, tok.items.shape[1])
    if cfg.task == "align" and item_width(model):
        raise MgrError(f"{cfg.init}: its model reads one encoder position per item (--encoder-input "
                       "items), which alignment sources are not; align from a tokens model")
    return model, extra


def _new_or_loaded_model(cfg: TrainConfig, tok: Tokenized, log) -> tuple[torch.nn.Module, dict]:
    size = tok.header["meta"]["vocab_size"]
    if not cfg.init:
        return build_model(size, cfg.model), {}
    path = Path(cfg.init)
    if (path / "run.jsonl").exists():  # a previous align/train run: same vocabulary required
        run = read_header(path / "run.jsonl", RUN_KIND)
        want, got = tok.header["meta"]["vocab_fingerprint"], run["meta"]["vocab_fingerprint"]
        if want != got:
            raise MgrError(f"{path}: its vocabulary does not match {tok.path} ({got[:15]}... vs "
                           f"{want[:15]}...); use a run made from the same IDs and layout")
        from transformers import T5ForConditionalGeneration

        log(f"starting from the {run['meta']['task']} run in {path}")
        model = T5ForConditionalGeneration.from_pretrained(path / "model", local_files_only=True)
        return model, {"init_run": run}
    log(f"starting from the pretrained T5 in {path}")
    return load_pretrained_t5(path, size), {}


def _validate(model, tok: Tokenized, cfg: TrainConfig, device, src, tgt) -> dict:
    """Rec: ranking metrics on validation users. Align: loss on a fixed sample of the
    alignment examples (`src`, `tgt`, built once by the caller)."""
    if cfg.task == "align":
        rng = np.random.default_rng(cfg.seed)
        pick = rng.choice(len(src), size=min(len(src), 2048), replace=False)
        from mgr_cli.training.data import collate

        model.eval()
        losses = []
        with torch.no_grad():
            for s in range(0, len(pick), 256):
                b = collate([src[i] for i in pick[s:s + 256]], [tgt[i] for i in pick[s:s + 256]], device)
                losses.append(float(model(**b).loss))
        model.train()
        return {"loss": float(np.mean(losses))}
    rows = validation_rows(len(tok.tensors["valid_target"]), cfg.eval_users, cfg.seed)
    mean = Mean()
    targets = tok.tensors["valid_target"]
    for r, items, _ in rank_examples(model, tok, "valid", rows, beams=cfg.eval_beams, k=20,
                                     batch_size=64, device=device):
        mean.add(user_metrics(items, int(targets[r])))
    model.train()
    return mean.result()


class T5Loop:
    """`mgr train` / `mgr align` as the skeleton's loop: one step is one batch of
    `Batches` (by epoch and position in it), with warm-up and decay, clipping, autocast."""

    trainer, model_name = "t5", "model"
    new_run_hint = "start a new run, optionally --init from this one"

    def __init__(self, cfg: TrainConfig, tok: Tokenized, model, src, tgt, dist, device):
        self.cfg, self.tok, self.model, self.src, self.tgt, self.device = cfg, tok, model, src, tgt, device
        self.world = dist.world
        self.width = item_width(model)  # 0: one encoder position per token
        self.opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, foreach=True)
        self._time_used = 0.0  # the share of --max-minutes spent, rank 0's clock (set each step)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _schedule(cfg, lambda: self._time_used))
        self.metric = cfg.metric if cfg.task == "rec" else "loss"
        self.higher_is_better = cfg.task == "rec"
        self.batches = Batches(src, tgt, cfg.batch_size, cfg.seed, dist.rank, dist.world)
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                         if _use_bf16(cfg.precision, device) else contextlib.nullcontext())
        self._epoch: tuple[int, list] = (-1, [])

    def _epoch_batches(self, state: dict) -> list:
        if self._epoch[0] != state["epoch"]:
            self._epoch = (state["epoch"], self.batches.epoch(state["epoch"]))
        return self._epoch[1]

    def train_step(self, net, state: dict) -> tuple[float, int]:
        while state["batch"] >= len(self._epoch_batches(state)):
            state["epoch"] += 1
            state["batch"] = 0
        b = self.batches.collate(self._epoch_batches(state)[state["batch"]], self.device)
        n = len(b["labels"])
        with self.autocast:
            if self.width:  # one position per item; the embedding sum is part of the graph
                embeds, mask = item_inputs(self.model.get_input_embeddings(), b["input_ids"],
                                           b["attention_mask"], self.width)
                b = {"inputs_embeds": embeds, "attention_mask": mask, "labels": b["labels"]}
            loss = net(**b).loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.opt.step()
        if self.cfg.max_minutes:
            self._time_used = state.get("elapsed", 0.0) / (self.cfg.max_minutes * 60)
        self.sched.step()
        state["batch"] += 1
        return float(loss.detach()), n

    def finished(self, state: dict) -> bool:
        return state["step"] >= self.cfg.steps

    def eval_due(self, state: dict) -> bool:
        return state["step"] % self.cfg.eval_every == 0

    def validate(self) -> dict:
        return _validate(self.model, self.tok, self.cfg, self.device, self.src, self.tgt)

    def position(self, state: dict) -> dict:
        return {"epoch": round(state["step"] * self.cfg.batch_size * self.world / len(self.src), 2)}

    def write_model(self, path: Path) -> None:
        self.model.save_pretrained(path)


def train(tokenized: Path | str, out_dir: Path | str, cfg: TrainConfig, *, resume: bool = False,
          command: str = "python API", force: bool = False,
          log: Callable[[str], None] = lambda s: None,
          progress: Callable[[int], None] = lambda n: None) -> dict | None:
    """Train on `tokenized`; rank 0 writes `out_dir` and returns the run header.
    `progress(n)` is told of every n steps done (a progress bar)."""
    if cfg.problems():
        raise MgrError("; ".join(cfg.problems()))
    out_dir = Path(out_dir)
    loop.check_run_folder(out_dir, force=force, resume=resume)
    from mgr_cli.models.t5 import quiet_transformers

    quiet_transformers()
    tok = Tokenized.load(tokenized)
    src, tgt = tok.align_examples() if cfg.task == "align" else tok.rec_examples("train")
    header = None
    with loop.session(cfg.device, cfg.seed, len(src), "training examples") as (dist, device):
        warning = slow_bf16_warning(cfg.precision, device)
        if warning and dist.main:
            log(f"warning: {warning}")
        model, extra = _init_model(cfg, tok, log)
        if cfg.init_codes:
            from mgr_cli.training.code_init import init_code_embeddings

            extra["init_codes"] = init_code_embeddings(model, tok, cfg.init_codes, cfg.seed,
                                                       log if dist.main else (lambda s: None))
        if device.type == "cpu":
            use_fast_dropout(model)
        model.to(device).train()
        t5 = T5Loop(cfg, tok, model, src, tgt, dist, device)
        state = loop.fit(t5, out_dir, asdict(cfg), dist=dist, device=device, resume=resume,
                         patience=cfg.patience, max_minutes=cfg.max_minutes, log=log, progress=progress)
        if dist.main:
            header = _write_run(out_dir, tok, cfg, state, command, extra)
            log(f"best {t5.metric} {state['best']} at step {state['best_step']}; "
                f"model in {out_dir / 'model'}")
    return header


def _write_run(out_dir: Path, tok: Tokenized, cfg: TrainConfig, state: dict, command: str,
               extra: dict) -> dict:
    meta = {"task": cfg.task, "layout": tok.header["meta"]["layout"],
            "vocab_fingerprint": tok.header["meta"]["vocab_fingerprint"],
            "vocab_size": tok.header["meta"]["vocab_size"],
            "item_ids_hash": tok.header["meta"]["item_ids_hash"],
            "best": state["best"], "best_step": state["best_step"], "steps": state["step"],
            "stopped": state.get("stopped"), "train_minutes": round(state["seconds"] / 60, 2),
            "metric": cfg.metric if cfg.task == "rec" else "loss",
            "model_sha256": sha256_file(out_dir / "model" / "model.safetensors")}
    if "init_run" in extra:
        meta["init_run"] = {"path": cfg.init, "content_hash": extra["init_run"]["content_hash"]}
    inputs = [Input("tokenized", tok.path, tok.header)]
    if extra.get("init_codes"):
        meta["init_codes"] = {m: levels for m, levels, _, _ in extra["init_codes"]}
        inputs += [Input(f"codes:{m}", Path(p), h) for m, _, p, h in extra["init_codes"]]
    return write_jsonl(out_dir / "run.jsonl", RUN_KIND, state["log"],
                       provenance=Provenance(command, asdict(cfg)), inputs=inputs, meta=meta,
                       force=True)
