"""`quantize`: embeddings in, one semantic ID per item out (by any method of
`mgr_cli.quantize.methods.METHODS`: RQ-VAE, LETTER, residual or hierarchical k-means,
or a plugin's). IDs made by other tokenizers come in and go out through
`mgr_cli.quantize.exchange` (`mgr ids import`, `mgr ids export`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mgr_cli.artifacts import (ArtifactError, Input, Provenance, check_output, find_ancestor,
                               source_entry)
from mgr_cli.data import load_dataset
from mgr_cli.errors import MgrError
from mgr_cli.quantize.frozen import Frozen
from mgr_cli.quantize.ids import load_ids, save_ids, view_path
from mgr_cli.quantize.methods import METHODS, SHARED_FIELDS, _standardise


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
        checks = [(self.method in METHODS, f"--method must be one of {', '.join(METHODS)}, got {self.method!r}"),
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


def _encode(x: np.ndarray, cfg: QuantizeConfig, log: Callable[[str], None],
            collab: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Run the method `cfg.method` on standardised `x`; its codes (checked) and info."""
    method = METHODS.pick(cfg.method)
    torch.manual_seed(cfg.seed)
    xt = torch.from_numpy(x).float()
    xs, mu, sd = _standardise(xt)
    if not cfg.standardize:
        xs = xt
    codes, recon, info = method.encode(xs.numpy(), cfg, log, collab)
    codes = _checked_codes(codes, len(x), cfg)
    info = dict(info or {})
    frozen = info.get("quantizer")
    if frozen is not None:
        if not isinstance(frozen, Frozen):
            raise MgrError(f"method {cfg.method} returned info['quantizer'] of type "
                           f"{type(frozen).__name__}; give a mgr_cli.quantize.frozen.Frozen")
        frozen.standardize = cfg.standardize
        if cfg.standardize:
            frozen.tensors.update(mean=mu.numpy(), sd=sd.numpy())
    if recon is not None:
        recon = torch.as_tensor(np.asarray(recon) if not torch.is_tensor(recon) else recon).float()
        if tuple(recon.shape) != tuple(xs.shape):
            raise MgrError(f"method {cfg.method} returned a reconstruction of shape "
                           f"{tuple(recon.shape)} for embeddings of shape {tuple(xs.shape)}")
        back = recon * sd + mu if cfg.standardize else recon
        info["recon_mse_standardised"] = round(float((recon - xs).pow(2).mean()), 6)
        info["recon_relative_error"] = round(float((back - xt).pow(2).sum() / (xt - mu).pow(2).sum()), 6)
    return codes, info


def _checked_codes(codes, n: int, cfg: QuantizeConfig) -> np.ndarray:
    """A method's codes as int64 [n, levels] within the codebook, or a clear error."""
    arr = codes.numpy() if torch.is_tensor(codes) else np.asarray(codes)
    where = f"method {cfg.method} returned"
    if arr.shape != (n, cfg.levels):
        raise MgrError(f"{where} codes of shape {arr.shape}, expected ({n}, {cfg.levels}) "
                       "(items x --levels)")
    if not np.issubdtype(arr.dtype, np.integer):
        raise MgrError(f"{where} {arr.dtype} codes; codes are integers")
    if arr.size and (arr.min() < 0 or arr.max() >= cfg.codebook_size):
        raise MgrError(f"{where} codes outside [0, {cfg.codebook_size}) (--codebook-size)")
    return arr.astype(np.int64)


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
    method = METHODS.pick(cfg.method)
    config = recorded_config(cfg, method)
    if method.needs_collab and collab is None:
        raise MgrError(f"--method {method.name} needs --collab (collaborative embeddings, e.g. "
                       "from `mgr sasrec embed`)")
    if collab is not None and not method.needs_collab:
        raise MgrError(f"--method {method.name} takes no --collab (only "
                       f"{', '.join(k for k, m in METHODS.items() if m.needs_collab)} do)")
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
    frozen = info.pop("quantizer", None)  # stored as tensors, not in meta.training
    timing = {"training_seconds": info.pop("seconds")} if "seconds" in info else {}
    meta = {"training": info, "standin": eh["meta"].get("standin", False)}
    plugin = METHODS.origins.get(method.name)  # a plugin's method: its file is a hashed source
    if plugin is not None:
        meta["method_plugin"] = str(plugin)
    return save_ids(out, [it.id for it in ds.items], codes, modality=eh["meta"]["modality"],
                    method=cfg.method, codebook_sizes=[cfg.codebook_size] * cfg.levels,
                    dedup=cfg.dedup, meta=meta, provenance=Provenance(command, config, timing),
                    inputs=inputs, sources=[source_entry(plugin)] if plugin is not None else [],
                    quantizer=frozen, force=force)


def recorded_config(cfg: QuantizeConfig, method) -> dict:
    """The config fields that made the IDs: the shared ones and those the method reads."""
    full = asdict(cfg)
    unknown = [f for f in method.reads if f not in full]
    if unknown:
        raise MgrError(f"method {method.name} reads {', '.join(unknown)}, which QuantizeConfig "
                       f"does not have (fields: {', '.join(full)})")
    return {k: v for k, v in full.items() if k in SHARED_FIELDS or k in method.reads}


__all__ = ["QuantizeConfig", "quantize", "recorded_config", "load_ids", "save_ids", "view_path",
           "dataset_of"]
