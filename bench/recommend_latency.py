"""`mgr recommend` latency and throughput: the library function on the test split's
histories (given as item ids, as a client would send them), one user at a time
(`--batch-size 1`: p50/p95 milliseconds per answer) and in batches of 64 (users/s).

    .venv/bin/python bench/recommend_latency.py --tokenized build/beauty2/letter.tok.safetensors
    .venv/bin/python bench/recommend_latency.py --tokenized tok.safetensors --run runs/mgr-lfpp --users 500

Without --run the model is TIGER-size (mgr train's default: 4+4 layers, d_model 128)
with random weights: latency does not depend on the weights. The first answers of each
mode are a warm-up and are not timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from mgr_cli.decoding.recommend import Recommender, catalogue_ids
from mgr_cli.models.t5 import ModelConfig, build_model
from mgr_cli.tokens.stage import Tokenized


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenized", required=True, help="a tokenized artifact (its dataset must be in its lineage)")
    ap.add_argument("--run", help="a trained run folder for this artifact (default: TIGER-size T5, random weights)")
    ap.add_argument("--users", type=int, default=500, help="test users timed in each mode")
    ap.add_argument("--warmup", type=int, default=5, help="untimed answers before each mode")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--beams", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64, help="the batched mode's batch")
    ap.add_argument("--exclude-history", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    tok = Tokenized.load(args.tokenized)
    if args.run:
        from pathlib import Path

        from mgr_cli.decoding.evaluate import load_run_model

        model, _ = load_run_model(Path(args.run), tok, device, verb="benchmark")
    else:
        model = build_model(tok.header["meta"]["vocab_size"], ModelConfig()).to(device)
    item_ids = catalogue_ids(tok)
    hist = tok.tensors["test_history"]
    n = min(args.users + args.warmup, len(hist))
    histories = [[item_ids[i] for i in row[row >= 0]] for row in hist[:n]]
    rec = Recommender(model.eval(), tok, item_ids=item_ids, device=device)
    lengths = [len(h) for h in histories[args.warmup:]]
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, device {device}")
    print(f"{args.tokenized}: {len(tok.items)} items x {tok.items.shape[1]} tokens "
          f"({tok.header['meta']['layout']}), max history {rec.max_history}; {len(lengths)} test users "
          f"(history {np.mean(lengths):.1f} items on average); top-{args.top_k}, {args.beams} beams"
          f"{', --exclude-history' if args.exclude_history else ''}; model "
          f"{'from ' + args.run if args.run else 'TIGER-size, random weights'}", flush=True)

    def answers(batch_size: int):
        return rec.recommend(histories, k=args.top_k, beams=args.beams, batch_size=batch_size,
                             exclude_history=args.exclude_history)

    # one user at a time: the time from asking for an answer to getting it
    it = answers(1)
    for _ in range(args.warmup):
        next(it)
    ms = []
    while True:
        start = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            break
        ms.append((time.perf_counter() - start) * 1000)
    p50, p95 = np.percentile(ms, [50, 95])
    print(f"--batch-size 1: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(ms):.1f} ms per user "
          f"({len(ms)} users; {1000 / np.mean(ms):.1f} users/s)", flush=True)

    # batches: users per second over the same users (the warm-up batch not timed)
    warm = rec.recommend(histories[:args.batch_size], k=args.top_k, beams=args.beams,
                         batch_size=args.batch_size, exclude_history=args.exclude_history)
    for _ in warm:
        pass
    it = rec.recommend(histories[args.warmup:], k=args.top_k, beams=args.beams,
                       batch_size=args.batch_size, exclude_history=args.exclude_history)
    start = time.perf_counter()
    done = sum(1 for _ in it)
    secs = time.perf_counter() - start
    print(f"--batch-size {args.batch_size}: {done / secs:.1f} users/s ({done} users in {secs:.2f} s)")


if __name__ == "__main__":
    main()
