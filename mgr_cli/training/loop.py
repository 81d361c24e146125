"""The trainer skeleton that `mgr align` / `mgr train` (T5) and `mgr sasrec train` share.

A trainer hands over a `Loop`: its model, optimiser and (optional) scheduler, one
optimiser step, its validation and how its best model is written. This module owns
everything around that, once for both:

    run folder   a file in the way, a finished run without --force or --resume, an
                 unfinished one without --resume or --force: refused before any work
    session      the device, DDP under torchrun (set up and torn down), the seed
    schedule     validation when the loop says it is due; early stopping after
                 `patience` validations without improvement, decided by rank 0 and
                 followed by every rank; --max-minutes; Ctrl-C or SIGTERM stops after
                 a whole step with a resumable checkpoint
    resume       exact: model, optimiser, scheduler, step, data position, every rank's
                 RNG, best so far; refused when the options differ from the saved ones
    write-out    the best model and the checkpoint under a temporary name, renamed into
                 place (run.jsonl is written by `write_jsonl`, atomic as well), so a
                 crash leaves the previous file or none, never half of one

The data position lives in the state as "epoch" and "batch" (the loop advances them);
"step" counts optimiser steps.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch

from mgr_cli import distributed
from mgr_cli.artifacts import check_output
from mgr_cli.artifacts.replace import replace_atomically
from mgr_cli.errors import MgrError
from mgr_cli.training import checkpoint


class Loop(Protocol):
    trainer: str         # "t5" or "sasrec": one trainer never resumes the other's checkpoint
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object | None  # an LR scheduler, or None
    metric: str          # the validation result's key that picks the best model
    higher_is_better: bool
    model_name: str      # the best model's name in the run folder (a file or a folder)
    new_run_hint: str    # what to do instead of a resume with changed options

    def train_step(self, net: torch.nn.Module, state: dict) -> tuple[float, int]:
        """One optimiser step through `net` (the model, DDP-wrapped under torchrun);
        advances state["epoch"] / state["batch"]; returns (loss, examples on this rank)."""

    def finished(self, state: dict) -> bool: ...

    def eval_due(self, state: dict) -> bool: ...

    def validate(self) -> dict:
        """Rank 0 only: the validation results (model left in train mode)."""

    def position(self, state: dict) -> dict:
        """Fields for the log record besides the step (e.g. the epoch)."""

    def write_model(self, path: Path) -> None:
        """Write the model at `path` (a temporary name; the skeleton renames it)."""


def check_run_folder(out_dir: Path, *, force: bool, resume: bool) -> Path:
    """Refuse what a new run or a resume must not write over; returns the checkpoint path."""
    check_output(out_dir / "run.jsonl", force=True)  # refuses a run folder that is, or is under, a file
    if out_dir.exists() and not out_dir.is_dir():
        raise MgrError(f"{out_dir} is a file, not a run folder; give another --out")
    ckpt = out_dir / "checkpoint"
    if (out_dir / "run.jsonl").exists() and not (force or resume):
        raise MgrError(f"{out_dir} already holds a finished run; pass --force to overwrite it "
                       "or --resume to continue it")
    if resume and not checkpoint.exists(ckpt):
        raise MgrError(f"{ckpt}: no checkpoint to resume from")
    if not (resume or force) and (checkpoint.exists(ckpt) or (out_dir / "model").exists()
                                  or (out_dir / "model.safetensors").exists()):
        raise MgrError(f"{out_dir} holds an unfinished run; pass --resume to continue it or "
                       "--force to start over")
    return ckpt


@contextlib.contextmanager
def session(device_name: str, seed: int, n_shards: int, what: str):
    """(dist, device) for one process or this torchrun rank, seeded; the process group is
    left on the way out (after a barrier when the block ended normally)."""
    dist = distributed.from_env()
    device = distributed.pick_device(device_name, dist)
    dist = distributed.init(device)
    try:
        distributed.check_shardable(n_shards, dist, what)
        torch.manual_seed(seed)
        yield dist, device
        distributed.barrier(dist)
    finally:
        distributed.finish(dist)


def save_checkpoint(ckpt: Path, loop: Loop, state: dict, rngs: list[dict], config: dict) -> None:
    checkpoint.save(ckpt, loop.model, loop.opt, loop.sched, state, rngs, config, trainer=loop.trainer)


def restore(loop: Loop, ckpt: Path, config: dict, dist, device, log) -> dict:
    """Load `ckpt` into the loop's model, optimiser and scheduler, and this rank's RNG;
    returns the saved state. Refused when `config` differs from the saved one."""
    saved = checkpoint.load(ckpt, device)
    if saved["trainer"] != loop.trainer:
        raise MgrError(f"{ckpt}: a {saved['trainer']} checkpoint, not a {loop.trainer} one; "
                       "give this trainer's own run folder")
    changed = checkpoint.changed_options(saved["config"], config)
    if changed:
        raise MgrError(f"{ckpt}: --resume continues the run as it was configured; changed: "
                       f"{changed} ({loop.new_run_hint})")
    try:
        loop.model.load_state_dict(saved["model"], strict=False)
        loop.opt.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise MgrError(f"{ckpt}: does not fit this model ({str(e).splitlines()[0][:100]}); "
                       "resume with the options the run was started with") from None
    if loop.sched is not None:
        loop.sched.load_state_dict(saved["scheduler"])
    rngs = saved["rngs"]  # one per rank (a run on another number of ranks takes rank 0's)
    checkpoint.set_rng_state(rngs[dist.rank] if len(rngs) == dist.world else rngs[0])
    log(f"resuming at step {saved['state']['step']}")
    return saved["state"]


def fresh_state() -> dict:
    return {"step": 0, "epoch": 0, "batch": 0, "best": None, "best_step": None, "stale": 0,
            "log": [], "seconds": 0, "loss_sum": 0, "loss_n": 0}


def fit(loop: Loop, out_dir: Path, config: dict, *, dist, device, resume: bool, patience: int,
        max_minutes: float = 0.0, log: Callable[[str], None] = lambda s: None,
        progress: Callable[[int], None] = lambda n: None) -> dict:
    """Train `loop` to the end (or an early stop); rank 0 keeps the best model in
    `out_dir` and checkpoints at every validation. Returns the final state."""
    ckpt = out_dir / "checkpoint"
    state = restore(loop, ckpt, config, dist, device, log) if resume else fresh_state()
    if dist.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    net = loop.model
    if dist.active:
        net = torch.nn.parallel.DistributedDataParallel(
            loop.model, device_ids=[device.index] if device.type == "cuda" else None)
    clock, seen = time.perf_counter(), 0
    progress(state["step"])
    with _interrupt_at_step_boundary(dist, device) as interrupted:
        while not (state.get("stopped") or loop.finished(state)):
            if interrupted():
                state["seconds"] += time.perf_counter() - clock
                rngs = distributed.gather(checkpoint.rng_state(), dist)
                if dist.main:
                    save_checkpoint(ckpt, loop, state, rngs, config)
                raise MgrError(f"interrupted at step {state['step']}; a resumable checkpoint is "
                               f"in {ckpt}: continue with --resume")
            loss, n = loop.train_step(net, state)
            state["step"] += 1
            seen += n
            state["loss_sum"] += loss
            state["loss_n"] += 1
            progress(1)
            out_of_time = _out_of_time(max_minutes, state, clock, dist, device)
            if out_of_time or loop.eval_due(state) or loop.finished(state):
                now = time.perf_counter()
                state["seconds"] += now - clock
                rate = seen * dist.world / max(now - clock, 1e-9)
                stop = _validate_and_save(loop, state, dist, device, out_dir, config, patience,
                                          max_minutes if out_of_time else 0.0, rate, log)
                if out_of_time:
                    log(f"stopping at step {state['step']}: --max-minutes {max_minutes:g} reached")
                state["stopped"] = stop
                clock, seen = time.perf_counter(), 0
    return state


def _validate_and_save(loop: Loop, state: dict, dist, device, out_dir: Path, config: dict,
                       patience: int, out_of_time: float, rate: float, log) -> str | None:
    """Validate (rank 0), keep the best model, checkpoint; the reason to stop, on every rank."""
    mean_loss = state["loss_sum"] / state["loss_n"]
    state["loss_sum"], state["loss_n"] = 0, 0
    rngs = distributed.gather(checkpoint.rng_state(), dist)  # every rank's, for an exact resume
    stop = None
    if dist.main:
        started = time.perf_counter()
        result = loop.validate()
        eval_seconds = time.perf_counter() - started
        value = result[loop.metric]
        best = state["best"]
        if best is None or (value > best if loop.higher_is_better else value < best):
            state["best"], state["best_step"], state["stale"] = value, state["step"], 0
            replace_atomically(out_dir / loop.model_name, loop.write_model)
        else:
            state["stale"] += 1
        entry = {"step": state["step"], **loop.position(state),
                 "minutes": round(state["seconds"] / 60, 2), "train_loss": round(mean_loss, 5),
                 "samples_per_s": round(rate, 1), "eval_seconds": round(eval_seconds, 1),
                 **{k: round(v, 6) for k, v in result.items()}}
        state["log"].append(entry)
        log(json.dumps(entry))
        state["seconds"] += time.perf_counter() - started  # validation is part of the wall time
        if out_of_time:
            stop = f"--max-minutes {out_of_time:g}"
        elif patience and state["stale"] >= patience:
            stop = f"--patience {patience}"
        state["stopped"] = stop  # in the checkpoint too: a resumed stopped run stays stopped
        save_checkpoint(out_dir / "checkpoint", loop, state, rngs, config)
    flag = distributed.rank0_flag(stop is not None, dist, device)
    return stop if dist.main else ("stopped" if flag else None)


def _out_of_time(max_minutes: float, state: dict, clock: float, dist, device) -> bool:
    """--max-minutes: the wall time so far (validations included) has reached the budget.
    Rank 0's clock decides for every rank; it is also kept in state["elapsed"], the same on
    every rank, for a schedule that decays over the time budget."""
    if not max_minutes:
        return False
    state["elapsed"] = distributed.rank0_value(state["seconds"] + time.perf_counter() - clock,
                                               dist, device)
    return state["elapsed"] >= max_minutes * 60


@contextlib.contextmanager
def _interrupt_at_step_boundary(dist, device) -> Iterator[Callable[[], bool]]:
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
