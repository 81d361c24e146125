"""A quantize method in one file: residual random-projection signs (locality-sensitive
hashing, level by level), registered as `rp-signs`. No training, numpy only.

    mgr quantize text.safetensors -o text.rp.ids.safetensors \\
        --plugin examples/plugin_quantizer.py --method rp-signs --levels 3 --codebook-size 256
    MGR_PLUGINS=examples/plugin_quantizer.py mgr quantize ... --method rp-signs

Each level draws b = floor(log2(codebook_size)) random hyperplanes (seeded by --seed and
the level) through the mean of what is left to encode; an item's code is the b-bit
pattern of the sides it falls on. The level's reconstruction is the mean of the items
sharing its code, and the next level hashes the residual. The contract a method meets
is in mgr_cli/quantize/methods.py and docs/extending.md.
"""

from __future__ import annotations

import numpy as np

from mgr_cli.quantize import Method, register_method


def rp_signs(x: np.ndarray, cfg, log, collab=None):
    """codes [n, levels] in [0, 2**b), the reconstruction of x, and a summary."""
    bits = int(np.floor(np.log2(cfg.codebook_size)))
    residual = x.astype(np.float64).copy()
    recon = np.zeros_like(residual)
    codes = np.zeros((len(x), cfg.levels), dtype=np.int64)
    used = []
    for level in range(cfg.levels):
        rng = np.random.default_rng([cfg.seed, level])
        planes = rng.standard_normal((x.shape[1], bits))
        centred = residual - residual.mean(0)
        signs = (centred @ planes > 0).astype(np.int64)
        codes[:, level] = signs @ (1 << np.arange(bits))
        means = np.zeros((1 << bits, x.shape[1]))
        np.add.at(means, codes[:, level], residual)
        counts = np.bincount(codes[:, level], minlength=1 << bits)
        means /= np.maximum(counts, 1)[:, None]
        recon += means[codes[:, level]]
        residual -= means[codes[:, level]]
        used.append(int((counts > 0).sum()))
        log(f"rp-signs level {level + 1}: {bits} hyperplanes, {used[-1]} codes used")
    return codes, recon.astype(np.float32), {"bits_per_level": bits, "codes_used": used}


register_method(Method(
    name="rp-signs",
    help="residual random-projection signs (LSH), no training; from examples/plugin_quantizer.py",
    encode=rp_signs,
    reads=(),  # only the shared fields: levels, codebook_size, seed
))
