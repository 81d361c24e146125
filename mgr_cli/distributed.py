"""One code path for one process and for torchrun (single or multi node).

The launch decides: `torchrun --nproc_per_node=N -m mgr_cli STAGE ...` sets RANK,
LOCAL_RANK and WORLD_SIZE; plain `mgr STAGE ...` runs as rank 0 of 1. CUDA runs use
nccl, CPU runs gloo. Rank 0 alone writes artifacts and draws progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mgr_cli.errors import MgrError

if TYPE_CHECKING:  # torch is imported where it is used: the evaluation writers need no torch
    import torch


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env() -> Dist:
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(name: str, dist: Dist) -> torch.device:
    """'auto' is CUDA (this rank's GPU) when present, else CPU."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MgrError("--device cuda asked for, but no CUDA device is visible; use --device cpu")
        if name == "cuda":
            name = f"cuda:{dist.local_rank % torch.cuda.device_count()}"
        torch.cuda.set_device(torch.device(name))
    elif name != "cpu":
        raise MgrError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return torch.device(name)


def init(device: torch.device) -> Dist:
    """Join the process group torchrun set up (no-op for a single process)."""
    import torch

    d = from_env()
    if d.active and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return d


def check_shardable(n: int, dist: Dist, what: str) -> None:
    if dist.world > n:
        raise MgrError(f"{dist.world} processes for {n} {what}: every process needs at least "
                       f"one; use --nproc_per_node <= {n}")


def shard(n: int, dist: Dist) -> range:
    """This rank's share of 0..n-1 (strided, so every index lands on exactly one rank)."""
    return range(dist.rank, n, dist.world)


def gather(obj: Any, dist: Dist) -> list[Any] | None:
    """Every rank's `obj` on rank 0 (in rank order); None elsewhere."""
    import torch

    if not dist.active:
        return [obj]
    out = [None] * dist.world if dist.main else None
    torch.distributed.gather_object(obj, out, dst=0)
    return out


def rank0_flag(flag: bool, dist: Dist, device: torch.device) -> bool:
    """Rank 0's `flag`, on every rank (so that all ranks take the same branch)."""
    import torch

    if not dist.active:
        return flag
    t = torch.tensor([int(flag)], device=device)
    torch.distributed.broadcast(t, 0)
    return bool(t.item())


def rank0_value(value: float, dist: Dist, device: torch.device) -> float:
    """Rank 0's `value`, on every rank (e.g. its clock, so that all ranks agree on time)."""
    import torch

    if not dist.active:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, 0)
    return float(t.item())


def any_flag(flag: bool, dist: Dist, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank."""
    import torch

    if not dist.active:
        return flag
    t = torch.tensor([int(flag)], device=device)
    torch.distributed.all_reduce(t)
    return bool(t.item())


def barrier(dist: Dist) -> None:
    import torch

    if dist.active:
        torch.distributed.barrier()


def finish(dist: Dist) -> None:
    import torch

    if dist.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
