"""Embedding new items with the encoders an embeddings artifact records (`mgr items add`).

The towers are rebuilt from the artifact's own configuration (as `mgr embed` built them,
seed included, so random-weight towers come out the same), checked against the encoders
it records, and checked once more by re-embedding a few of its items: their vectors must
come out as recorded, else the encoder is not the one that made the catalogue's vectors.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import numpy as np

from mgr_cli.artifacts import Input, Provenance
from mgr_cli.data.dataset import BASE, Dataset, Item
from mgr_cli.errors import MgrError

CHECKED = 4  # existing items re-embedded to check the encoders
MIN_COSINE = 0.99  # bf16 on a GPU, other batch padding: close, not bit-equal
DESCRIBED = ("family", "model", "pretrained", "tower", "pooling", "weights")


def recorded_config(path: Path, header: dict, device: str):
    """The EmbedConfig that made an embeddings artifact, or a one-line error saying why
    new items cannot be embedded like its items."""
    from mgr_cli.encoders.embed import EmbedConfig
    from mgr_cli.encoders.families import ENCODERS

    meta, config = header["meta"], header["config"]
    encoders = meta.get("encoders") or {}
    if not encoders or "modality" not in config:
        raise MgrError(f"{path}: records no encoder configuration (imported, or fused from two "
                       "artifacts); embed the new items the same way, or add them to the text "
                       "and image embeddings and fuse those")
    for m, e in encoders.items():
        if e.get("family") not in ENCODERS:
            raise MgrError(f"{path}: its {m} encoder family {e.get('family')!r} is not "
                           "registered here (a plugin's? pass --plugin FILE)")
    if meta.get("fusion") == "balanced":
        raise MgrError(f"{path}: balanced fusion is fitted to the catalogue (PCA of all "
                       "items); add the items to its text and image embeddings instead")
    known = {f.name for f in fields(EmbedConfig)}
    cfg = EmbedConfig(**{k: v for k, v in config.items() if k in known})
    cfg.device, cfg.workers = device, 0
    if cfg.modality != meta["modality"]:
        raise MgrError(f"{path}: its configuration says {cfg.modality}, its vectors are "
                       f"{meta['modality']}; re-create it")
    return cfg


def check_new_items(path: Path, header: dict, new: list[Item], device: str = "auto"):
    """The recorded EmbedConfig, once the new items have what it embeds (cheap: before
    any encoder is built)."""
    cfg = recorded_config(path, header, device)
    need = ["text", "image"] if cfg.modality == "fused" else [cfg.modality]
    if "text" in need and not any(it.text for it in new):
        raise MgrError(f"the new items have no text, but {path} holds {cfg.modality} "
                       "embeddings; give them a text column")
    if "image" in need and not any(it.image for it in new):
        raise MgrError(f"the new items have no images, but {path} holds {cfg.modality} "
                       "embeddings; give them an image column")
    return cfg


def _same(recorded: dict, built: dict) -> bool:
    return all(recorded.get(k) == built.get(k) for k in DESCRIBED if k in recorded or k in built)


def embed_like(path: Path, header: dict, vectors: np.ndarray, ds: Dataset, new: list[Item],
               image_root: str | None, *, device: str = "auto",
               log=lambda s: None) -> tuple[np.ndarray, list[str]]:
    """Vectors [len(new), dim] of the new items, by the encoders that made `path` (whose
    catalogue is `ds`, vectors `vectors`), and the new items embedded from a blank image
    (under --missing-images blank); a few old items are re-embedded as a check."""
    import torch

    from mgr_cli import distributed
    from mgr_cli.data.images import image_file
    from mgr_cli.encoders.embed import _dtype, _fuse, build_towers, run_images, run_texts

    cfg = check_new_items(path, header, new, device)
    need = ["text", "image"] if cfg.modality == "fused" else [cfg.modality]
    dev = distributed.pick_device(cfg.device, distributed.from_env())
    dtype = _dtype(cfg.precision, dev)
    torch.manual_seed(cfg.seed)  # as mgr embed: random-weight towers come out the same
    tw = build_towers(cfg, dev)
    for m in need:
        rec = header["meta"]["encoders"].get(m, {})
        if not _same(rec, tw[m].describe):
            raise MgrError(f"{path}: its {m} encoder ({rec.get('family')} {rec.get('model')}) is "
                           f"not what its configuration builds here ({tw[m].describe.get('family')} "
                           f"{tw[m].describe.get('model')}); re-embed the catalogue")
    sample = sorted({int(k) for k in np.linspace(0, len(ds.items) - 1, min(CHECKED, len(ds.items)))})
    blank = set(header["meta"].get("blank_images", []))
    items = [ds.items[k] for k in sample] + list(new)
    vecs, missing = {}, []
    for m in need:
        log(f"embedding {len(new)} new items ({m}, and {len(sample)} old ones as a check) with "
            f"{tw[m].describe['family']} {tw[m].describe['model']} on {dev}")
        if m == "text":
            vecs[m] = run_texts(tw[m], [it.text for it in items], cfg, dev, dtype, lambda n: None)
        else:
            paths = [None if (it.id in blank or not it.image or not image_root)
                     else image_file(image_root, it.image, cfg.outside_images) for it in items]
            missing = [it.id for it, p in zip(new, paths[len(sample):]) if p is None]
            if missing and cfg.missing_images == "error":
                raise MgrError(f"{len(missing)} new items have no image (e.g. {missing[0]!r}); "
                               f"{path} was embedded with --missing-images error")
            vecs[m] = run_images(tw[m], paths, cfg, dev, dtype, lambda n: None)
    emb = _fuse(vecs, cfg)
    if cfg.normalize and cfg.fusion != "balanced":
        emb = torch.nn.functional.normalize(emb, dim=-1)
    out = emb.float().numpy()
    cos = _cosine(out[:len(sample)], vectors[sample])
    if cos < MIN_COSINE:
        raise MgrError(f"{path}: re-embedding {len(sample)} of its items with its recorded "
                       f"encoders does not give their recorded vectors (cosine {cos:.3f}): the "
                       "encoder changed, or did not make these vectors; re-embed the catalogue")
    return out[len(sample):], missing


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return float(((a * b).sum(1) / np.maximum(na * nb, 1e-12)).min())


def save_extended(base: Path, header: dict, old: np.ndarray, new_vectors: np.ndarray,
                  item_ids: list[str], out: Path, dataset: tuple[Path, dict], *,
                  new_blank: list[str] = (), command: str = "python API",
                  force: bool = False) -> dict:
    """The embeddings of the extended catalogue: `base`'s rows, then the new items'."""
    from mgr_cli.encoders.artifact import save_embeddings

    m = header["meta"]
    kept = {k: v for k, v in m.items() if k in ("device", "precision", "world_size")}
    added = {"base": os.path.basename(base), "items_before": len(old),
             "items_added": len(new_vectors)}
    return save_embeddings(out, item_ids, np.concatenate([old, new_vectors]),
                           modality=m["modality"], encoders=m["encoders"],
                           normalized=m["normalized"], fusion=m["fusion"], standin=m["standin"],
                           blank_images=list(m.get("blank_images", [])) + list(new_blank),
                           meta={**kept, "added": added},
                           provenance=Provenance(command, header["config"]),
                           inputs=[Input("dataset", dataset[0], dataset[1]),
                                   Input(BASE, base, header)], force=force)
