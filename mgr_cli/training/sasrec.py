"""`sasrec train` / `sasrec evaluate`: the SASRec baseline on a dataset artifact, with the
same split, history length, metrics and output files as the generative recommender.

Training: one example per user (its training items, inputs shifted by one), full
softmax over all items, AdamW, validation on the validation split every few epochs with
early stopping on a ranking metric, DDP under torchrun (each rank takes a strided share
of the users per epoch). The run folder holds `run.jsonl` (kind "run", task "sasrec"),
`model.safetensors` (the best model) and `checkpoint/` (the latest state: --resume).
The run folder, seeding, DDP, the validation schedule with early stopping, the exact
resume and the atomic write-out are the trainer skeleton's (`training/loop.py`), the
same as the T5 trainer's; `SASRecLoop` is the SASRec part.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from mgr_cli import distributed
from mgr_cli.artifacts import Input, Provenance, check_output, read_header, write_jsonl
from mgr_cli.data import Dataset, load_dataset
from mgr_cli.evaluation.predictions import PartWriter, finish, select_rows
from mgr_cli.evaluation.metrics import Mean, user_metrics, validation_rows
from mgr_cli.errors import MgrError
from mgr_cli.models.sasrec import SASRec, SASRecConfig
from mgr_cli.training import loop


METRICS = ("mrr", "ndcg@5", "ndcg@10", "ndcg@20", "hits@1", "hits@5", "hits@10", "hits@20")


@dataclass
class SASRecTrainConfig:
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 5
    eval_users: int = 2000
    metric: str = "ndcg@10"
    patience: int = 5
    select: str = "best"  # best: the best validation epoch; last: the last epoch, no validation
    seed: int = 0
    device: str = "auto"
    model: SASRecConfig = field(default_factory=SASRecConfig)

    def problems(self) -> list[str]:
        m = self.model
        checks = [(self.epochs >= 1, "--epochs must be at least 1"),
                  (self.batch_size >= 1, "--batch-size must be at least 1"),
                  (math.isfinite(self.lr) and self.lr > 0, "--lr must be a positive number"),
                  (self.eval_every >= 1, "--eval-every must be at least 1"),
                  (self.eval_users >= 1, "--eval-users must be at least 1"),
                  (self.patience >= 0, "--patience must be 0 (never stop early) or more"),
                  (math.isfinite(self.weight_decay) and self.weight_decay >= 0,
                   "--weight-decay must be 0 or more"),
                  (self.metric in METRICS, f"--metric must be one of {', '.join(METRICS)}"),
                  (self.select in ("best", "last"), "--select must be best or last"),
                  (m.hidden >= 1, "--hidden must be at least 1"),
                  (m.layers >= 1, "--layers must be at least 1"),
                  (m.heads >= 1 and m.hidden % m.heads == 0,
                   "--heads must be at least 1 and divide --hidden"),
                  (0 <= m.dropout < 1, "--dropout must be at least 0 and below 1"),
                  (m.max_len >= 1, "--max-len must be at least 1")]
        return [msg for ok, msg in checks if not ok]


def _left_pad(seqs: list[list[int]], length: int) -> torch.Tensor:
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for r, s in enumerate(seqs):
        s = s[-length:]
        if s:
            out[r, length - len(s):] = np.asarray(s) + 1  # 0 is padding
    return torch.from_numpy(out)


def histories(ds: Dataset, split: str, rows: list[int]) -> tuple[list[list[int]], list[int]]:
    pairs = [ds.held_out(u, split) for u in rows]
    return [h for h, _ in pairs], [t for _, t in pairs]


def rank_users(model: SASRec, ds: Dataset, split: str, rows: list[int], k: int, device,
               batch: int = 512) -> Iterator[tuple[int, list[int], list[float]]]:
    """(user row, top-k items over ALL items, scores), in row order."""
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(rows), batch):
            chunk = rows[s:s + batch]
            hist, _ = histories(ds, split, chunk)
            scores = model.scores(_left_pad(hist, model.cfg.max_len).to(device))
            top = scores.topk(min(k, scores.shape[1]), dim=1)
            for r, items, sc in zip(chunk, top.indices.tolist(), top.values.tolist()):
                yield r, items, sc


def _validate(model, ds, cfg, device) -> dict:
    rows = validation_rows(len(ds.sequences), cfg.eval_users, cfg.seed)
    _, targets = histories(ds, "valid", rows)
    mean = Mean()
    for (_, items, _), t in zip(rank_users(model, ds, "valid", rows, 20, device), targets):
        mean.add(user_metrics(items, t))
    model.train()
    return mean.result()


class SASRecLoop:
    """SASRec as the skeleton's loop: one step is one batch of this rank's strided share
    of the users, in an order that is a function of (seed, epoch)."""

    trainer, model_name, higher_is_better = "sasrec", "model.safetensors", True
    new_run_hint = "start a new run in another folder, or --force to start this one over"

    def __init__(self, cfg: SASRecTrainConfig, ds: Dataset, model: SASRec, dist, device):
        self.cfg, self.ds, self.model, self.device, self.dist = cfg, ds, model, device, dist
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # select "last": the model of the last epoch, and no validation item is ever read
        # (the collaborative IDs of a multimodal layout: the training split only)
        self.sched, self.metric = None, cfg.metric if cfg.select == "best" else "epoch"
        self._epochs = 0
        train = [ds.held_out(u, "valid")[0] for u in range(len(ds.sequences))]  # the training part
        self.inputs = _left_pad([t[:-1] for t in train], cfg.model.max_len)
        self.targets = _left_pad([t[1:] for t in train], cfg.model.max_len)
        self.n_users = len(train)
        self.per_rank = self.n_users // dist.world
        self.n_batches = math.ceil(self.per_rank / cfg.batch_size)
        self._order: tuple[int, np.ndarray | None] = (-1, None)

    def _mine(self, epoch: int) -> np.ndarray:
        if self._order[0] != epoch:
            order = np.random.default_rng([self.cfg.seed, epoch + 1]).permutation(self.n_users)
            self._order = (epoch, order[self.dist.rank::self.dist.world][:self.per_rank])
        return self._order[1]

    def train_step(self, net, state: dict) -> tuple[float, int]:
        if state["batch"] >= self.n_batches:
            state["epoch"] += 1
            state["batch"] = 0
        s = state["batch"] * self.cfg.batch_size
        idx = torch.from_numpy(self._mine(state["epoch"])[s:s + self.cfg.batch_size])
        loss = net(self.inputs[idx].to(self.device), self.targets[idx].to(self.device))  # forward = loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        state["batch"] += 1
        self._epochs = self.epochs_done(state)
        return float(loss.detach()), len(idx)

    def epochs_done(self, state: dict) -> int:
        return state["epoch"] + (state["batch"] >= self.n_batches)

    def finished(self, state: dict) -> bool:
        return self.epochs_done(state) >= self.cfg.epochs

    def eval_due(self, state: dict) -> bool:
        return state["batch"] >= self.n_batches and self.epochs_done(state) % self.cfg.eval_every == 0

    def validate(self) -> dict:
        if self.cfg.select == "last":  # later is better: every check keeps the latest model
            return {"epoch": float(self._epochs)}
        return _validate(self.model, self.ds, self.cfg, self.device)

    def position(self, state: dict) -> dict:
        return {"epoch": self.epochs_done(state)}

    def write_model(self, path: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, path)


def train_sasrec(dataset: Path | str, out_dir: Path | str, cfg: SASRecTrainConfig, *,
                 resume: bool = False, command: str = "python API", force: bool = False,
                 log: Callable[[str], None] = lambda s: None,
                 progress: Callable[[int], None] = lambda n: None) -> dict | None:
    """Train SASRec on `dataset`; rank 0 writes `out_dir` and returns the run header.
    `resume` continues from `out_dir/checkpoint` exactly (same options required)."""
    if cfg.problems():
        raise MgrError("; ".join(cfg.problems()))
    out_dir = Path(out_dir)
    loop.check_run_folder(out_dir, force=force, resume=resume)
    ds, dh = load_dataset(dataset)
    header = None
    with loop.session(cfg.device, cfg.seed, len(ds.sequences), "users") as (dist, device):
        model = SASRec(len(ds.items), cfg.model).to(device).train()
        sas = SASRecLoop(cfg, ds, model, dist, device)
        state = loop.fit(sas, out_dir, asdict(cfg), dist=dist, device=device, resume=resume,
                         patience=cfg.patience, log=log, progress=progress)
        if dist.main:
            best_epoch = next((e["epoch"] for e in state["log"] if e["step"] == state["best_step"]), None)
            meta = {"task": "sasrec", "item_ids_hash": dh["meta"]["item_ids_hash"], "n_items": len(ds.items),
                    "metric": cfg.metric, "best": state["best"], "best_epoch": best_epoch,
                    "epochs": sas.epochs_done(state), "steps": state["step"],
                    "stopped": state.get("stopped"), "model_config": cfg.model.to_dict()}
            header = write_jsonl(out_dir / "run.jsonl", "run", state["log"],
                                 provenance=Provenance(command, asdict(cfg)),
                                 inputs=[Input("dataset", Path(dataset), dh)], meta=meta, force=True)
            log(f"best {cfg.metric} {state['best']} at epoch {best_epoch}; "
                f"model in {out_dir / 'model.safetensors'}")
    return header


def _load_run(run_dir: Path, dataset: Path | str, device) -> tuple[SASRec, dict, Dataset, dict]:
    run = read_header(run_dir / "run.jsonl", "run")
    if run["meta"].get("task") != "sasrec":
        raise MgrError(f"{run_dir}: not a SASRec run (task {run['meta'].get('task')!r})")
    ds, dh = load_dataset(dataset)
    if dh["meta"]["item_ids_hash"] != run["meta"]["item_ids_hash"]:
        raise MgrError(f"{run_dir} was trained on another dataset than {dataset} (item order differs)")
    from safetensors.torch import load_file

    model = SASRec(len(ds.items), SASRecConfig(**run["meta"]["model_config"])).to(device)
    model.load_state_dict(load_file(run_dir / "model.safetensors", device=str(device)))
    return model, run, ds, dh


def export_item_embeddings(run_dir: Path | str, dataset: Path | str, out: Path | str, *,
                           command: str = "python API", force: bool = False) -> dict:
    """SASRec's item embedding table (padding row dropped, dataset item order) as an
    embeddings artifact of modality "collab"."""
    from mgr_cli.encoders import save_embeddings

    run_dir, out = Path(run_dir), Path(out)
    check_output(out, force)
    model, run, ds, dh = _load_run(run_dir, dataset, torch.device("cpu"))
    emb = model.items.weight[1:].detach().float().numpy()
    encoder = {"name": "sasrec", "run": str(run_dir), "standin": False,
               "best_epoch": run["meta"].get("best_epoch")}
    return save_embeddings(out, [it.id for it in ds.items], emb, modality="collab",
                           encoders={"collab": encoder}, normalized=False,
                           provenance=Provenance(command, {"run": str(run_dir)}),
                           inputs=[Input("run", run_dir / "run.jsonl", run),
                                   Input("dataset", Path(dataset), dh)], force=force)


def evaluate_sasrec(run_dir: Path | str, dataset: Path | str, out_dir: Path | str, *,
                    split: str = "test", k: int = 20, device: str = "auto",
                    sample: int | None = None, seed: int = 0,
                    command: str = "python API", force: bool = False) -> dict | None:
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    dist = distributed.from_env()
    if dist.main:
        for name in ("predictions.jsonl", "metrics.jsonl"):
            check_output(out_dir / name, force)
    dev = distributed.pick_device(device, dist)
    dist = distributed.init(dev)
    model, run, ds, dh = _load_run(run_dir, dataset, dev)
    rows = select_rows(len(ds.sequences), None, sample, seed)
    distributed.check_shardable(len(rows), dist, "users")
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = rows[dist.rank::dist.world]
    _, targets = histories(ds, split, mine)
    part = PartWriter(out_dir, dist.rank)
    for (r, items, sc), t in zip(rank_users(model, ds, split, mine, k, dev), targets):
        part.add(ds.user_ids[r], ds.items[t].id, [ds.items[i].id for i in items], sc)
    config = {"split": split, "top_k": k, "sample": sample, "seed": seed if sample else None,
              "world_size": dist.world}
    inputs = [Input("run", run_dir / "run.jsonl", run), Input("dataset", Path(dataset), dh)]
    return finish(out_dir, dist, part.close(), meta={"layout": "sasrec", "modalities": []},
                  config=config, inputs=inputs, command=command, force=force,
                  n_items=len(ds.items))
