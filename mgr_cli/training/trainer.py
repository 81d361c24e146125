"""`align` and `train`: one trainer, one code path for one process and for torchrun.

    task "align": the alignment examples (an item's ID in one modality -> its ID in another)
    task "rec":   next-item examples (history -> next item), validated by constrained
                  beam search on the validation split, early-stopped on a ranking metric

AdamW, linear warm-up then linear decay, gradient clipping, bf16 autocast on CUDA, DDP
(nccl on CUDA, gloo on CPU) under torchrun. The run folder holds:

    run.jsonl      the run artifact: header (config, vocabulary, inputs), one record per evaluation
    model/         the best model, loadable with T5ForConditionalGeneration.from_pretrained
    checkpoint/    the latest state (model, optimiser, scheduler, RNG, data position): --resume
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mgr_cli import distributed
from mgr_cli.artifacts import Input, Provenance, read_header, sha256_file, write_jsonl
from mgr_cli.decoding.metrics import Mean, user_metrics, validation_rows
from mgr_cli.decoding.rank import rank_examples
from mgr_cli.errors import MgrError
from mgr_cli.models.dropout import use_fast_dropout
from mgr_cli.models.t5 import ModelConfig, build_model, load_pretrained_t5
from mgr_cli.tokens.stage import Tokenized
from mgr_cli.training import checkpoint
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
    max_minutes: float = 0.0
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
                   (0 <= m.dropout < 1, "--dropout must be in [0, 1)")]
        checks += [(getattr(m, k) >= 1, f"--{k.replace('_', '-')} must be at least 1")
                   for k in ("layers", "decoder_layers", "d_model", "heads", "d_kv", "d_ff")]
        return [msg for ok, msg in checks if not ok]


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        return max(0.0, (cfg.steps - step) / max(1, cfg.steps - cfg.warmup))
    return factor


def _use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast: asked for, or `auto` on CUDA and on CPUs with AMX-BF16 units."""
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and has_amx_bf16())


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


def train(tokenized: Path | str, out_dir: Path | str, cfg: TrainConfig, *, resume: bool = False,
          command: str = "python API", force: bool = False,
          log: Callable[[str], None] = lambda s: None,
          progress: Callable[[int], None] = lambda n: None) -> dict | None:
    """Train on `tokenized`; rank 0 writes `out_dir` and returns the run header.
    `progress(n)` is told of every n steps done (a progress bar)."""
    if cfg.problems():
        raise MgrError("; ".join(cfg.problems()))
    out_dir = Path(out_dir)
    run_file = out_dir / "run.jsonl"
    if run_file.exists() and not (force or resume):
        raise MgrError(f"{out_dir} already holds a finished run; pass --force to overwrite it "
                       "or --resume to continue it")
    ckpt = out_dir / "checkpoint"
    if resume and not checkpoint.exists(ckpt):
        raise MgrError(f"{ckpt}: no checkpoint to resume from")
    if not (resume or force) and (checkpoint.exists(ckpt) or (out_dir / "model").exists()):
        raise MgrError(f"{out_dir} holds an unfinished run; pass --resume to continue it or "
                       "--force to start over")
    from mgr_cli.models.t5 import quiet_transformers

    quiet_transformers()
    tok = Tokenized.load(tokenized)
    src, tgt = tok.align_examples() if cfg.task == "align" else tok.rec_examples("train")
    dist = distributed.from_env()
    device = distributed.pick_device(cfg.device, dist)
    dist = distributed.init(device)
    distributed.check_shardable(len(src), dist, "training examples")
    torch.manual_seed(cfg.seed)
    model, extra = _init_model(cfg, tok, log)
    if device.type == "cpu":
        use_fast_dropout(model)
    model.to(device).train()
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg))
    state = {"step": 0, "epoch": 0, "batch": 0, "best": None, "best_step": None, "stale": 0, "log": []}
    if resume:
        saved = checkpoint.load(ckpt, device)
        changed = _changed_options(saved["config"], asdict(cfg))
        if changed:
            raise MgrError(f"{ckpt}: --resume continues the run as it was configured; changed: "
                           f"{changed} (start a new run, optionally --init from this one)")
        try:
            model.load_state_dict(saved["model"], strict=False)
            opt.load_state_dict(saved["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise MgrError(f"{ckpt}: does not fit this model ({str(e).splitlines()[0][:100]}); "
                           "resume with the options the run was started with") from None
        sched.load_state_dict(saved["scheduler"])
        state = saved["state"]
        rngs = saved["rngs"]  # one per rank; an interrupted run saved rank 0's only
        checkpoint.set_rng_state(rngs[dist.rank] if len(rngs) == dist.world else rngs[0])
        log(f"resuming at step {state['step']}")
    net = model
    if dist.active:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    batches = Batches(src, tgt, cfg.batch_size, cfg.seed, dist.rank, dist.world)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                if _use_bf16(cfg.precision, device) else contextlib.nullcontext())
    for key in ("seconds", "loss_sum", "loss_n"):
        state.setdefault(key, 0)
    clock, seen = time.perf_counter(), 0
    progress(state["step"])
    with _interrupt_at_step_boundary(dist, device) as interrupted:
        while state["step"] < cfg.steps:
            epoch_batches = batches.epoch(state["epoch"])
            while state["batch"] < len(epoch_batches) and state["step"] < cfg.steps:
                if interrupted():
                    state["seconds"] += time.perf_counter() - clock
                    if dist.main:
                        checkpoint.save(ckpt, model, opt, sched, state, [checkpoint.rng_state()],
                                        asdict(cfg))
                    distributed.finish(dist)
                    raise MgrError(f"interrupted at step {state['step']}; a resumable checkpoint is "
                                   f"in {ckpt}: continue with --resume")
                b = batches.collate(epoch_batches[state["batch"]], device)
                with autocast:
                    loss = net(**b).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                opt.step()
                sched.step()
                state["batch"] += 1
                state["step"] += 1
                seen += len(b["input_ids"])
                state["loss_sum"] += float(loss.detach())
                state["loss_n"] += 1
                progress(1)
                out_of_time = _out_of_time(cfg, state, clock, dist, device)
                if out_of_time or state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
                    now = time.perf_counter()
                    state["seconds"] += now - clock
                    mean_loss = state["loss_sum"] / state["loss_n"]
                    state["loss_sum"], state["loss_n"] = 0, 0
                    stop = _evaluate_and_save(model, opt, sched, tok, cfg, state, dist, device, out_dir,
                                              mean_loss, seen * dist.world / (now - clock),
                                              log, (src, tgt))
                    if out_of_time:
                        state["stopped"] = f"--max-minutes {cfg.max_minutes:g}"
                        log(f"stopping at step {state['step']}: --max-minutes {cfg.max_minutes:g} reached")
                    elif stop:
                        state["stopped"] = f"--patience {cfg.patience}"
                    if stop or out_of_time:
                        state["steps_done"] = state["step"]
                        state["step"] = cfg.steps  # early stop
                    clock, seen = time.perf_counter(), 0
            if state["batch"] >= len(epoch_batches):
                state["epoch"] += 1
                state["batch"] = 0
    header = None
    if dist.main:
        header = _write_run(out_dir, tok, cfg, state, command, extra)
        log(f"best {cfg.metric if cfg.task == 'rec' else 'loss'} {state['best']} at step "
            f"{state['best_step']}; model in {out_dir / 'model'}")
    distributed.barrier(dist)
    distributed.finish(dist)
    return header


def _evaluate_and_save(model, opt, sched, tok, cfg, state, dist, device, out_dir, loss,
                       rate, log, examples) -> bool:
    """Validate (rank 0), keep the best model, checkpoint; True to stop early."""
    stop = False
    rngs = distributed.gather(checkpoint.rng_state(), dist)  # every rank's, for an exact resume
    if dist.main:
        started = time.perf_counter()
        result = _validate(model, tok, cfg, device, *examples)
        eval_seconds = time.perf_counter() - started
        key = cfg.metric if cfg.task == "rec" else "loss"
        value = result[key]
        better = state["best"] is None or (value > state["best"] if cfg.task == "rec" else value < state["best"])
        if better:
            state["best"], state["best_step"], state["stale"] = value, state["step"], 0
            model.save_pretrained(out_dir / "model")
        else:
            state["stale"] += 1
        entry = {"step": state["step"], "epoch": round(state["step"] * cfg.batch_size * dist.world
                                                        / len(examples[0]), 2),
                 "minutes": round(state["seconds"] / 60, 2), "train_loss": round(loss, 5),
                 "samples_per_s": round(rate, 1), "eval_seconds": round(eval_seconds, 1),
                 **{k: round(v, 6) for k, v in result.items()}}
        state["log"].append(entry)
        log(json.dumps(entry))
        state["seconds"] += time.perf_counter() - started  # validation is part of the wall time
        checkpoint.save(out_dir / "checkpoint", model, opt, sched, state, rngs, asdict(cfg))
        stop = bool(cfg.patience) and state["stale"] >= cfg.patience
    return distributed.rank0_flag(stop, dist, device)


def _out_of_time(cfg: TrainConfig, state: dict, clock: float, dist, device) -> bool:
    """--max-minutes: the wall time so far (validations included) has reached the budget.
    Rank 0's clock decides for every rank."""
    if not cfg.max_minutes:
        return False
    over = state["seconds"] + time.perf_counter() - clock >= cfg.max_minutes * 60
    return distributed.rank0_flag(over, dist, device)


@contextlib.contextmanager
def _interrupt_at_step_boundary(dist, device):
    """Ctrl-C (SIGINT) or SIGTERM sets a flag that the loop reads between steps, so the
    checkpoint it then writes is exactly the state after a whole step: `--resume` goes on
    as if nothing happened. A second Ctrl-C stops at once. Under torchrun the ranks agree
    on the flag every step, so they all stop after the same step."""
    import signal
    import threading

    hit = {"flag": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if hit["flag"]:
            raise KeyboardInterrupt
        hit["flag"] = True

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    try:
        yield lambda: distributed.any_flag(hit["flag"], dist, device)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _changed_options(saved: dict, now: dict) -> str:
    """The training options a resume would change (the device may differ)."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out

    a, b = flat(saved), flat(now)
    diff = [f"--{k.split('.')[-1].replace('_', '-')} {a.get(k)} -> {b.get(k)}"
            for k in sorted(set(a) | set(b)) if k != "device" and a.get(k) != b.get(k)]
    return ", ".join(diff)


def _write_run(out_dir: Path, tok: Tokenized, cfg: TrainConfig, state: dict, command: str,
               extra: dict) -> dict:
    meta = {"task": cfg.task, "layout": tok.header["meta"]["layout"],
            "vocab_fingerprint": tok.header["meta"]["vocab_fingerprint"],
            "vocab_size": tok.header["meta"]["vocab_size"],
            "item_ids_hash": tok.header["meta"]["item_ids_hash"],
            "best": state["best"], "best_step": state["best_step"], "steps": state.get("steps_done", state["step"]),
            "stopped": state.get("stopped"), "train_minutes": round(state["seconds"] / 60, 2),
            "metric": cfg.metric if cfg.task == "rec" else "loss",
            "model_sha256": sha256_file(out_dir / "model" / "model.safetensors")}
    if "init_run" in extra:
        meta["init_run"] = {"path": cfg.init, "content_hash": extra["init_run"]["content_hash"]}
    return write_jsonl(out_dir / "run.jsonl", RUN_KIND, state["log"],
                       provenance=Provenance(command, asdict(cfg)),
                       inputs=[Input("tokenized", tok.path, tok.header)], meta=meta, force=True)
