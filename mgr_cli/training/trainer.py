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
import random
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
    model: ModelConfig = field(default_factory=ModelConfig)

    def problems(self) -> list[str]:
        checks = [(self.task in ("rec", "align"), "--task must be rec or align"),
                  (self.steps >= 1, "--steps must be at least 1"),
                  (self.batch_size >= 1, "--batch-size must be at least 1"),
                  (self.eval_every >= 1, "--eval-every must be at least 1"),
                  (self.precision in ("auto", "fp32", "bf16"), "--precision must be auto, fp32 or bf16"),
                  (self.metric in ("mrr", "ndcg@5", "ndcg@10", "ndcg@20", "hits@1", "hits@5",
                                   "hits@10", "hits@20"), f"unknown --metric {self.metric!r}")]
        return [msg for ok, msg in checks if not ok]


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        return max(0.0, (cfg.steps - step) / max(1, cfg.steps - cfg.warmup))
    return factor


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
        return T5ForConditionalGeneration.from_pretrained(path / "model"), {"init_run": run}
    log(f"starting from the pretrained T5 in {path}")
    return load_pretrained_t5(path, size), {}


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
          log: Callable[[str], None] = lambda s: None) -> dict | None:
    """Train on `tokenized`; rank 0 writes `out_dir` and returns the run header."""
    if cfg.problems():
        raise MgrError("; ".join(cfg.problems()))
    out_dir = Path(out_dir)
    run_file = out_dir / "run.jsonl"
    if run_file.exists() and not (force or resume):
        raise MgrError(f"{out_dir} already holds a finished run; pass --force to overwrite it "
                       "or --resume to continue it")
    ckpt = out_dir / "checkpoint"
    if resume and not (ckpt / "state.pt").exists():
        raise MgrError(f"{ckpt}: no checkpoint to resume from")
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
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg))
    state = {"step": 0, "epoch": 0, "batch": 0, "best": None, "best_step": None, "stale": 0, "log": []}
    if resume:
        saved = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
        from safetensors.torch import load_file

        model.load_state_dict(load_file(ckpt / "model.safetensors", device=str(device)), strict=False)
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        state = saved["state"]
        rngs = saved["rng"]  # one per rank; an interrupted run saved rank 0's only
        _set_rng_state(rngs[dist.rank] if len(rngs) == dist.world else rngs[0])
        log(f"resuming at step {state['step']}")
    net = model
    if dist.active:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    batches = Batches(src, tgt, cfg.batch_size, cfg.seed, dist.rank, dist.world)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if device.type == "cuda" and cfg.precision in ("auto", "bf16")
                else contextlib.nullcontext())
    t0, seen = time.perf_counter(), 0
    try:
        while state["step"] < cfg.steps:
            epoch_batches = batches.epoch(state["epoch"])
            while state["batch"] < len(epoch_batches) and state["step"] < cfg.steps:
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
                if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
                    if _evaluate_and_save(model, opt, sched, tok, cfg, state, dist, device, out_dir,
                                          float(loss.detach()), seen / (time.perf_counter() - t0), log,
                                          (src, tgt)):
                        state["step"] = cfg.steps  # early stop
            if state["batch"] >= len(epoch_batches):
                state["epoch"] += 1
                state["batch"] = 0
    except KeyboardInterrupt:
        if dist.main:
            _save_checkpoint(model, opt, sched, state, [_rng_state()], out_dir)
        raise MgrError(f"interrupted at step {state['step']}; a resumable checkpoint is in "
                       f"{ckpt}: continue with --resume") from None
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
    rngs = distributed.gather(_rng_state(), dist)  # every rank's, for an exact resume
    if dist.main:
        result = _validate(model, tok, cfg, device, *examples)
        key = cfg.metric if cfg.task == "rec" else "loss"
        value = result[key]
        better = state["best"] is None or (value > state["best"] if cfg.task == "rec" else value < state["best"])
        if better:
            state["best"], state["best_step"], state["stale"] = value, state["step"], 0
            model.save_pretrained(out_dir / "model")
        else:
            state["stale"] += 1
        entry = {"step": state["step"], "train_loss": round(loss, 5), "samples_per_s": round(rate, 1),
                 **{k: round(v, 6) for k, v in result.items()}}
        state["log"].append(entry)
        log(json.dumps(entry))
        _save_checkpoint(model, opt, sched, state, rngs, out_dir)
        stop = bool(cfg.patience) and state["stale"] >= cfg.patience
    if dist.active:
        flag = torch.tensor([int(stop)], device=device)
        torch.distributed.broadcast(flag, 0)
        stop = bool(flag.item())
    return stop


def _save_checkpoint(model, opt, sched, state, rngs: list, out_dir: Path) -> None:
    from safetensors.torch import save_file

    ckpt = out_dir / "checkpoint"
    tmp = out_dir / ".checkpoint.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()
               if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")
               or not model.config.tie_word_embeddings}, tmp / "model.safetensors")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "state": state, "rng": rngs}, tmp / "state.pt")
    if ckpt.exists():
        import shutil

        shutil.rmtree(ckpt)
    tmp.replace(ckpt)


def _write_run(out_dir: Path, tok: Tokenized, cfg: TrainConfig, state: dict, command: str,
               extra: dict) -> dict:
    meta = {"task": cfg.task, "layout": tok.header["meta"]["layout"],
            "vocab_fingerprint": tok.header["meta"]["vocab_fingerprint"],
            "vocab_size": tok.header["meta"]["vocab_size"],
            "item_ids_hash": tok.header["meta"]["item_ids_hash"],
            "best": state["best"], "best_step": state["best_step"], "steps": state["step"],
            "metric": cfg.metric if cfg.task == "rec" else "loss",
            "model_sha256": sha256_file(out_dir / "model" / "model.safetensors")}
    if "init_run" in extra:
        meta["init_run"] = {"path": cfg.init, "content_hash": extra["init_run"]["content_hash"]}
    return write_jsonl(out_dir / "run.jsonl", RUN_KIND, state["log"],
                       provenance=Provenance(command, asdict(cfg)),
                       inputs=[Input("tokenized", tok.path, tok.header)], meta=meta, force=True)
