"""`quantize`: embeddings in, one semantic ID per item out (RQ-VAE, LETTER, residual
k-means or hierarchical k-means). IDs made by other tokenizers come in and go out through
`mgr_cli.quantize.exchange` (`mgr ids import`, `mgr ids export`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mgr_cli.artifacts import ArtifactError, Input, Provenance, check_output, find_ancestor
from mgr_cli.data import load_dataset
from mgr_cli.errors import MgrError
from mgr_cli.quantize.ids import load_ids, save_ids, view_path
from mgr_cli.quantize.kmeans import kmeans
from mgr_cli.quantize.rqvae import RQVAEConfig, train_rqvae

METHODS = ("rqvae", "letter", "rkmeans", "hierarchical")


@dataclass
class QuantizeConfig:
    method: str = "rqvae"
    levels: int = 3
    codebook_size: int = 256
    latent_dim: int = 32
    hidden: list[int] = field(default_factory=lambda: [512, 256, 128])
    beta: float = 0.25
    lr: float = 1e-3
    batch_size: int = 0  # 0: auto, n_items // 16 within [128, 1024] (enough steps per epoch)
    max_epochs: int = 500
    patience: int = 15
    standardize: bool = True
    dedup: str = "always"
    seed: int = 0
    # LETTER (method "letter"): weights of the collaborative and diversity regularisers
    alpha: float = 0.02
    gamma: float = 1e-4
    clusters: int = 10

    def problems(self) -> list[str]:
        checks = [(self.method in METHODS, f"--method must be one of {', '.join(METHODS)}"),
                  (self.levels >= 1, "--levels must be at least 1"),
                  (self.codebook_size >= 2, "--codebook-size must be at least 2"),
                  (self.dedup in ("always", "auto", "never"), "--dedup must be always, auto or never"),
                  (self.latent_dim >= 1, "--latent-dim must be at least 1"),
                  (all(h >= 1 for h in self.hidden), "--hidden sizes must be at least 1"),
                  (self.batch_size >= 0, "--batch-size must be at least 1 (or 0: automatic)"),
                  (self.max_epochs >= 1, "--epochs must be at least 1"),
                  (self.patience >= 1, "--patience must be at least 1"),
                  (math.isfinite(self.lr) and self.lr > 0, "--lr must be a positive number"),
                  (self.alpha >= 0 and self.gamma >= 0, "--alpha and --gamma must not be negative"),
                  (self.clusters >= 2, "--clusters must be at least 2")]
        return [msg for ok, msg in checks if not ok]


def dataset_of(path: Path, header: dict, dataset: Path | None) -> Path:
    """The dataset given, or the one in the artifact's lineage."""
    return dataset if dataset is not None else find_ancestor(path, "dataset", header)


def _dataset_items(path: Path, want_hash: str, source: Path):
    ds, header = load_dataset(path)
    if header["meta"]["item_ids_hash"] != want_hash:
        raise ArtifactError(f"{source} and {path} disagree on item order (item_ids_hash); "
                            "use the dataset the embeddings were made from")
    return ds, header


def residual_kmeans(x: torch.Tensor, levels: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    residual, recon, codes = x.clone(), torch.zeros_like(x), []
    for level in range(levels):
        centres, assign = kmeans(residual, k, iters=30, seed=seed + level)
        codes.append(assign)
        recon += centres[assign]
        residual -= centres[assign]
    return torch.stack(codes, 1), recon


def hierarchical_kmeans(x: torch.Tensor, levels: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HC-indexer / DSI semantic docids: k-means splits the items into at most k clusters,
    then each cluster again, level by level; the path of cluster numbers is the ID. A
    cluster of at most k items gives each item its own child. Reconstruction: the mean
    of the items that share a full path."""
    n = x.shape[0]
    codes = torch.zeros((n, levels), dtype=torch.long)

    def split(idx: torch.Tensor, level: int) -> None:
        if level == levels or len(idx) <= 1:
            return
        if len(idx) <= k:
            codes[idx, level] = torch.arange(len(idx))
            return
        _, assign = kmeans(x[idx], k, iters=20, seed=seed + level)
        codes[idx, level] = assign
        for c in torch.unique(assign):
            split(idx[assign == c], level + 1)

    split(torch.arange(n), 0)
    _, group = torch.unique(codes, dim=0, return_inverse=True)
    sums = torch.zeros(int(group.max()) + 1, x.shape[1]).index_add_(0, group, x)
    counts = torch.bincount(group).float()[:, None]
    return codes, (sums / counts)[group]


def _standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    return (x - mu) / sd, mu, sd


def _encode(x: np.ndarray, cfg: QuantizeConfig, log: Callable[[str], None],
            collab: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    torch.manual_seed(cfg.seed)
    xt = torch.from_numpy(x).float()
    xs, mu, sd = _standardise(xt)
    if not cfg.standardize:
        xs = xt
    info: dict = {}
    if cfg.method in ("rqvae", "letter"):
        letter = cfg.method == "letter"
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
    elif cfg.method == "rkmeans":
        codes, recon = residual_kmeans(xs, cfg.levels, cfg.codebook_size, cfg.seed)
    else:
        codes, recon = hierarchical_kmeans(xs, cfg.levels, cfg.codebook_size, cfg.seed)
    back = recon * sd + mu if cfg.standardize else recon
    info["recon_mse_standardised"] = round(float((recon - xs).pow(2).mean()), 6)
    info["recon_relative_error"] = round(float((back - xt).pow(2).sum() / (xt - mu).pow(2).sum()), 6)
    return codes.numpy().astype(np.int64), info


def quantize(embeddings: Path | str, out: Path | str, cfg: QuantizeConfig, *,
             dataset: Path | None = None, collab: Path | str | None = None,
             command: str = "python API", force: bool = False,
             log: Callable[[str], None] = lambda s: None) -> dict:
    """Quantise an embeddings artifact into a semantic-ID artifact (and its JSONL view).
    LETTER (`cfg.method == "letter"`) also needs `collab`: an embeddings artifact of
    collaborative item vectors (e.g. `mgr sasrec embed`) of the same dataset."""
    from mgr_cli.artifacts import require_agreement
    from mgr_cli.encoders import load_embeddings

    if cfg.problems():
        raise MgrError("; ".join(cfg.problems()))
    if (cfg.method == "letter") != (collab is not None):
        raise MgrError("--method letter needs --collab (collaborative embeddings, e.g. from "
                       "`mgr sasrec embed`); other methods take no --collab")
    out, embeddings = Path(out), Path(embeddings)
    check_output(out, force)
    check_output(view_path(out), force)
    x, eh = load_embeddings(embeddings)
    inputs = [Input("embeddings", embeddings, eh)]
    cx = None
    if collab is not None:
        cx, ch = load_embeddings(collab)
        require_agreement([(embeddings, eh), (Path(collab), ch)], "item_ids_hash", "item order")
        inputs.append(Input("collab", Path(collab), ch))
    ds_path = dataset_of(embeddings, eh, dataset)
    ds, _ = _dataset_items(ds_path, eh["meta"]["item_ids_hash"], embeddings)
    if len(x) < cfg.codebook_size:
        log(f"warning: {len(x)} items for {cfg.codebook_size} codes per level")
    log(f"quantizing {x.shape[0]} x {x.shape[1]} {eh['meta']['modality']} embeddings with "
        f"{cfg.method} ({cfg.levels} x {cfg.codebook_size})")
    codes, info = _encode(x, cfg, log, collab=cx)
    timing = {"training_seconds": info.pop("seconds")} if "seconds" in info else {}
    meta = {"training": info, "standin": eh["meta"].get("standin", False)}
    config = asdict(cfg)
    if cfg.method != "letter":
        for key in ("alpha", "gamma", "clusters"):
            config.pop(key)
    return save_ids(out, [it.id for it in ds.items], codes, modality=eh["meta"]["modality"],
                    method=cfg.method, codebook_sizes=[cfg.codebook_size] * cfg.levels,
                    dedup=cfg.dedup, meta=meta, provenance=Provenance(command, config, timing),
                    inputs=inputs, force=force)


__all__ = ["METHODS", "QuantizeConfig", "quantize", "load_ids", "save_ids", "view_path",
           "dataset_of"]
