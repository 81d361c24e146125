"""Training throughput: `mgr train` against a plain loop over the same model and the same
training examples with transformers defaults (random batches padded to their longest
example, nn.Dropout, AdamW defaults).

    .venv/bin/python bench/train_speed.py                # demo LF++ tokens, TIGER-size T5
    .venv/bin/python bench/train_speed.py --tokenized build/hm/tok/mgr-lfpp.safetensors

The last line is the ratio of samples per second (target >= 2x on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch

from mgr_cli.artifacts import read_jsonl
from mgr_cli.models.t5 import ModelConfig, build_model
from mgr_cli.tokens.stage import Tokenized
from mgr_cli.training.data import collate
from mgr_cli.training.trainer import TrainConfig, train


def plain_loop(tok: Tokenized, steps: int, batch: int, seed: int) -> tuple[float, float]:
    src, tgt = tok.rec_examples("train")
    torch.manual_seed(seed)
    model = build_model(tok.header["meta"]["vocab_size"], ModelConfig()).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(src))
    device = torch.device("cpu")
    tokens = 0
    start = time.perf_counter()
    for s in range(steps):
        idx = order[(s * batch) % len(src):][:batch]
        b = collate([src[i] for i in idx], [tgt[i] for i in idx], device)
        tokens += b["input_ids"].numel()
        loss = model(**b).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    secs = time.perf_counter() - start
    return steps * batch / secs, tokens / (steps * batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokenized", default="build/demo/tok/mgr-lfpp.safetensors")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    tok = Tokenized.load(args.tokenized)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.tokenized} ({tok.header['meta']['layout']}, "
          f"{tok.header['meta']['examples']['train']} training examples); TIGER-size T5 (4+4, d128)")
    plain, padded = plain_loop(tok, args.steps, args.batch_size, 0)
    print(f"plain loop (transformers defaults): {plain:8.1f} samples/s, {padded:.0f} source tokens per example after padding")
    with tempfile.TemporaryDirectory() as d:
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, eval_every=args.steps,
                          eval_users=1, eval_beams=1, device="cpu")
        train(args.tokenized, d, cfg)
        _, log = read_jsonl(f"{d}/run.jsonl", "run")
        ours = log[-1]["samples_per_s"]
    print(f"mgr train:                          {ours:8.1f} samples/s")
    print(f"training throughput, mgr train / plain loop: {ours / plain:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
