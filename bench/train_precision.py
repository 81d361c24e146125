"""Training throughput in bf16 autocast (AMX on this CPU) against fp32, on the same batches.

    .venv/bin/python bench/train_precision.py --tokenized build/beauty/letter.tok.safetensors

For each model size, two copies of one model (same seed) take the very same batches
(a seeded sample across the whole epoch, so lengths are representative), fp32 and bf16
alternating step by step in one process, so the machine's drift hits both alike. Prints
samples/s per precision and the ratio last.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from mgr_cli.models.dropout import use_fast_dropout
from mgr_cli.models.t5 import ModelConfig, build_model
from mgr_cli.tokens.stage import Tokenized
from mgr_cli.training.data import Batches

SIZES = {
    "TIGER 4+4, d128, 6x64, ff1024": ModelConfig(),
    "CPU recipe 2+2, d128, 4x32, ff512": ModelConfig(layers=2, decoder_layers=2, heads=4, d_kv=32, d_ff=512),
    "small 2+2, d64, 4x16, ff256": ModelConfig(layers=2, decoder_layers=2, d_model=64, heads=4, d_kv=16, d_ff=256),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokenized", default="build/beauty/letter.tok.safetensors")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    tok = Tokenized.load(args.tokenized)
    src, tgt = tok.rec_examples("train")
    batches = Batches(src, tgt, args.batch_size, seed=0)
    epoch = batches.epoch(0)
    pick = np.random.default_rng(0).choice(len(epoch), size=args.steps + 2, replace=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.tokenized}, batch {args.batch_size}, "
          f"{args.steps} timed steps (+2 warm-up), fp32 and bf16 alternating")
    ratios = []
    for name, cfg in SIZES.items():
        runs = {}
        for prec in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = build_model(tok.header["meta"]["vocab_size"], cfg)
            use_fast_dropout(model)
            runs[prec] = [model.train(), torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True), 0.0, 0]
        for s, b in enumerate(pick):
            batch = batches.collate(epoch[b], torch.device("cpu"))
            for prec, run in runs.items():
                model, opt = run[0], run[1]
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
                    loss = model(**batch).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if s >= 2:
                    run[2] += time.perf_counter() - start
                    run[3] += len(batch["input_ids"])
        rate = {p: r[3] / r[2] for p, r in runs.items()}
        ratios.append(rate["bf16"] / rate["fp32"])
        print(f"{name}: fp32 {rate['fp32']:.0f} samples/s, bf16 {rate['bf16']:.0f} samples/s, "
              f"{ratios[-1]:.2f}x")
    print(f"bf16 / fp32 training throughput: {', '.join(f'{r:.2f}x' for r in ratios)} ({', '.join(SIZES)})")


if __name__ == "__main__":
    main()
