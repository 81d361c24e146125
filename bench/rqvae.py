"""RQ-VAE training time: 12,000 items x 512-d, 3 levels x 256 codes, to convergence.

    .venv/bin/python bench/rqvae.py                     # CLIP-like synthetic embeddings
    .venv/bin/python bench/rqvae.py --embeddings hm.image.safetensors

Target: converged in <= 60 s on 2 CPU cores. Prints seconds and reconstruction error;
the last line is the figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from mgr_cli.quantize import ids as sid
from mgr_cli.quantize.stage import QuantizeConfig, _encode


def clip_like(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Clustered, L2-normalised vectors (the shape of CLIP item embeddings)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(200, d, generator=g)
    x = centres[torch.randint(200, (n,), generator=g)] + 0.6 * torch.randn(n, d, generator=g)
    return torch.nn.functional.normalize(x, dim=-1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--embeddings", help="an mgr embeddings artifact instead of synthetic data")
    ap.add_argument("--items", type=int, default=12000)
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()
    if args.embeddings:
        from mgr_cli.encoders.embed import load_embeddings

        x = load_embeddings(args.embeddings)[0]
        source = args.embeddings
    else:
        x = clip_like(args.items, args.dim)
        source = "synthetic CLIP-like (200 clusters, L2-normalised)"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"data: {x.shape[0]} x {x.shape[1]} ({source}); RQ-VAE 3 x 256, latent 32")
    start = time.perf_counter()
    codes, info = _encode(x, QuantizeConfig(), print)
    seconds = time.perf_counter() - start
    stats = sid.level_stats(codes, [256] * 3)
    print(f"epochs {info['epochs']} (converged: {info['converged']}), "
          f"dead-code restarts {info['dead_code_restarts']}")
    print("codes used per level: " + ", ".join(str(s["used"]) for s in stats)
          + f"; collision rate {sid.collision_rate(codes):.4f}")
    print(f"reconstruction: relative error {info['recon_relative_error']:.4f}, "
          f"MSE (standardised) {info['recon_mse_standardised']:.4f}")
    print(f"RQ-VAE training to convergence: {seconds:.1f} s (target <= 60 s)")


if __name__ == "__main__":
    main()
