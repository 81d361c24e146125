"""Embedding throughput: the `mgr embed` image pipeline (decode + preprocess in loader
workers, forward) against the bare encoder forward pass on the same, already
preprocessed batches. Target: pipeline >= 80% of bare.

    .venv/bin/python bench/embed_throughput.py                         # H&M photos if present
    .venv/bin/python bench/embed_throughput.py --images build/demo/raw/images --model ViT-B-32

The encoder is CLIP ViT-B-32 with random weights (the compute of the real one). The
last line is the figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from mgr_cli.encoders.embed import EmbedConfig, ImageFiles, run_images, run_texts
from mgr_cli.encoders.towers import clip_towers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", default="../shared/data/hm/images")
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    root = Path(args.images)
    if not root.is_dir():
        root = Path("build/demo/raw/images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png"))[: args.n]
    if not paths:
        raise SystemExit(f"no images under {args.images} or build/demo/raw/images (run make demo)")
    torch.manual_seed(0)
    device = torch.device("cpu")
    tower = clip_towers(args.model, None, device)["image"]
    cfg = EmbedConfig(batch_size=args.batch_size, workers=args.workers)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.model} (random init), {len(paths)} images "
          f"from {root}, batch {args.batch_size}, {args.workers} loader worker(s)")
    pre = ImageFiles(paths, tower.transform)
    batches = [torch.stack([pre[k] for k in range(s, min(s + args.batch_size, len(paths)))])
               for s in range(0, len(paths), args.batch_size)]
    with torch.inference_mode():
        tower.forward(batches[0][:2])  # warm-up
        start = time.perf_counter()
        for b in batches:
            tower.forward(b)
        bare = time.perf_counter() - start
    start = time.perf_counter()
    out = run_images(tower, paths, cfg, device, torch.float32, lambda n: None)
    pipe = time.perf_counter() - start
    assert out.shape[0] == len(paths)
    print(f"bare forward:  {len(paths) / bare:8.1f} images/s ({bare:.2f} s)")
    print(f"mgr pipeline:  {len(paths) / pipe:8.1f} images/s ({pipe:.2f} s)")
    texts = [f"item {k}: a soft cotton jersey top with short sleeves, colour {k % 7}" for k in range(len(paths))]
    tt = clip_towers(args.model, None, device)["text"]
    toks = [tt.prepare(texts[s:s + args.batch_size]) for s in range(0, len(texts), args.batch_size)]
    with torch.inference_mode():
        tt.forward(toks[0])  # warm-up
        start = time.perf_counter()
        for t in toks:
            tt.forward(t)
        bare_t = time.perf_counter() - start
    start = time.perf_counter()
    run_texts(tt, texts, cfg, device, torch.float32, lambda n: None)
    pipe_t = time.perf_counter() - start
    print(f"text: bare {len(texts) / bare_t:.1f}/s, pipeline {len(texts) / pipe_t:.1f}/s, "
          f"ratio {bare_t / pipe_t:.3f}")
    print(f"image pipeline throughput / bare forward: {bare / pipe:.3f} (target >= 0.80)")


if __name__ == "__main__":
    main()
