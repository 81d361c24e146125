"""Quantize methods: the registry `mgr quantize --method` chooses from.

A `Method` turns a matrix of item embeddings into codes, one row per item:

    encode(x, cfg, log, collab) -> (codes, recon, info)
        x       float32 array [n_items, dim], standardised per dimension
                (unless cfg.standardize is false)
        cfg     the QuantizeConfig: cfg.levels, cfg.codebook_size, cfg.seed, and the
                fields the method lists in `reads`
        log     a function taking one line of progress (stderr)
        collab  float32 array [n_items, d] of collaborative embeddings when the method
                `needs_collab` (mgr quantize --collab), else None
        codes   integers [n_items, cfg.levels] in [0, cfg.codebook_size) (numpy or torch)
        recon   the reconstruction of x [n_items, dim], or None if the method has none
        info    a JSON-able dict, recorded in the artifact as meta.training ("seconds"
                goes to the provenance as training_seconds); except "quantizer": a
                mgr_cli.quantize.frozen.Frozen that assigns codes to new vectors, stored
                in the artifact for `mgr items add` (without one, items cannot be added)

The stage does everything else: it checks the inputs, seeds torch with cfg.seed, adds
the uniqueness level, measures the reconstruction, and writes the artifact, recording
the method's name and the config fields it reads (besides the shared ones).
A plugin file registers its own with `register_method(Method(...))`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mgr_cli.errors import MgrError
from mgr_cli.quantize.frozen import centroids_frozen, rqvae_frozen
from mgr_cli.registry import Registry

# fields every method's artifact records; a method adds the ones it `reads`
SHARED_FIELDS = ("method", "levels", "codebook_size", "standardize", "dedup", "seed")
RQVAE_FIELDS = ("latent_dim", "hidden", "beta", "lr", "batch_size", "max_epochs", "patience")


@dataclass(frozen=True)
class Method:
    name: str
    help: str
    encode: Callable[..., tuple[Any, Any, dict]]
    reads: tuple[str, ...] = ()  # QuantizeConfig fields beyond SHARED_FIELDS
    needs_collab: bool = False


def _standardise(x):
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    return (x - mu) / sd, mu, sd


def _rqvae(letter: bool):
    def encode(x, cfg, log, collab=None):
        import torch

        from mgr_cli.quantize.rqvae import RQVAEConfig, train_rqvae

        xs = torch.from_numpy(x)
        rq = RQVAEConfig(levels=cfg.levels, codebook_size=cfg.codebook_size,
                         latent_dim=cfg.latent_dim, hidden=list(cfg.hidden), beta=cfg.beta,
                         lr=cfg.lr, max_epochs=cfg.max_epochs,
                         batch_size=cfg.batch_size or min(1024, max(128, len(x) // 16)),
                         patience=cfg.patience, seed=cfg.seed,
                         letter_alpha=cfg.alpha if letter else 0.0,
                         letter_gamma=cfg.gamma if letter else 0.0,
                         letter_clusters=cfg.clusters)
        cb = _standardise(torch.from_numpy(collab).float())[0] if letter else None
        model, info = train_rqvae(xs, rq, log, collab=cb)
        codes, recon = model.encode(xs)
        return codes, recon, {**info, "quantizer": rqvae_frozen(model)}

    return encode


def _kmeans(hierarchical: bool):
    def encode(x, cfg, log, collab=None):
        import torch

        from mgr_cli.quantize.kmeans import hierarchical_kmeans, residual_kmeans

        if hierarchical:  # a recursive split of the catalogue: nothing places a new item
            return (*hierarchical_kmeans(torch.from_numpy(x), cfg.levels, cfg.codebook_size,
                                         cfg.seed), {})
        centres: list = []
        codes, recon = residual_kmeans(torch.from_numpy(x), cfg.levels, cfg.codebook_size,
                                       cfg.seed, centroids=centres)
        return codes, recon, {"quantizer": centroids_frozen(centres)}

    return encode


METHODS: Registry[Method] = Registry("quantize method", "--method", [
    Method("rqvae", "TIGER", _rqvae(False), RQVAE_FIELDS),
    Method("letter", "RQ-VAE + LETTER's collaborative and diversity regularisers; needs --collab",
           _rqvae(True), RQVAE_FIELDS + ("alpha", "gamma", "clusters"), needs_collab=True),
    Method("rkmeans", "residual k-means, no training", _kmeans(False)),
    Method("hierarchical", "HC-indexer: recursive k-means", _kmeans(True)),
])


def register_method(method: Method) -> Method:
    """Add a quantize method (from a plugin file); a name already taken is an error."""
    if not isinstance(method, Method):
        raise MgrError("register_method takes a mgr_cli.quantize.Method")
    return METHODS.register(method)
