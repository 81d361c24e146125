"""Where a CPU training step of the CPU recipe's T5 goes, and whether torch.compile helps.

    .venv/bin/python bench/step_profile.py build/beauty2/letter.tok.safetensors
    .venv/bin/python bench/step_profile.py build/beauty2/letter.tok.safetensors --compile
    .venv/bin/python bench/step_profile.py build/beauty2/letter.tok.safetensors --profile

The model is configs/cpu.toml's [model] (read from the file; 2+2 layers, d_ff 512 when the
profile in bench/RESULTS.md was taken, 4+4 and d_ff 1024 since round 8; token input), the batches `mgr train`'s (length-bucketed, seed 0, epoch 0), the step
`mgr train`'s (AdamW foreach, clipping at 1), fp32. It prints the warm-up seconds
(3 steps: compilation, with --compile), then samples/s over the next 40 steps; with
--profile, the operators of 10 more steps by self CPU time. Threads: OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

from mgr_cli.models.t5 import ModelConfig, build_model
from mgr_cli.tokens.stage import Tokenized
from mgr_cli.training.data import Batches
from mgr_cli.training.trainer import _param_groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokenized")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--compile", action="store_true", help="torch.compile(model, dynamic=True)")
    ap.add_argument("--profile", action="store_true", help="print the operator table of 10 steps")
    args = ap.parse_args()
    torch.manual_seed(0)
    tok = Tokenized.load(args.tokenized)
    src, tgt = tok.rec_examples("train")
    lengths = np.array([len(s) for s in src])
    print(f"source tokens: mean {lengths.mean():.1f}, max {lengths.max()}; target {len(tgt[0])}")
    recipe = tomllib.loads((Path(__file__).resolve().parents[1] / "configs/cpu.toml").read_text())
    cfg = ModelConfig(**{k.replace("-", "_"): v for k, v in recipe["model"].items()})
    model = build_model(tok.header["meta"]["vocab_size"], cfg).train()
    opt = torch.optim.AdamW(_param_groups(model, 0.01), lr=1e-3, foreach=True)
    batches = Batches(src, tgt, args.batch_size, 0)
    order = batches.epoch(0)
    net = torch.compile(model, dynamic=True) if args.compile else model
    device = torch.device("cpu")

    def step(i: int) -> int:
        b = batches.collate(order[i], device)
        loss = net(**b).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return len(b["input_ids"])

    start = time.perf_counter()
    for i in range(3):
        step(i)
    print(f"warm-up (3 steps): {time.perf_counter() - start:.1f} s")
    start, n = time.perf_counter(), 0
    for i in range(3, 43):
        n += step(i)
    mode = "compiled" if args.compile else "eager"
    print(f"{mode}, {torch.get_num_threads()} thread(s): {n / (time.perf_counter() - start):.0f} samples/s")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(43, 53):
                step(i)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
