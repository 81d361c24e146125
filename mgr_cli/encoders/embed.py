"""`embed`: a dataset in, one embedding per item out, for text, image, or both fused.

Towers: CLIP (open_clip) for both modalities by default, as in the paper; a
transformers text encoder from a local directory replaces the text tower
(`text_model`), a timm model with local weights replaces the image tower
(`image_model`); `NAME:SPEC` picks any registered encoder family
(mgr_cli/encoders/families.py: standin:minilm, or a plugin's). Early fusion (`fused`) embeds both modalities and combines the
L2-normalised vectors: `mean` (both towers must share a space, as CLIP's do),
`concat`, or `balanced` (each modality PCA-reduced to one width and scaled to a chosen
share of the variance: `mgr_cli/encoders/fusion.py`). The paper's MGR-EF uses one multimodal encoder; CLIP's shared space with the
mean is our equivalent.

Under torchrun each rank embeds a strided shard; rank 0 gathers and writes one
artifact in item order.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mgr_cli import distributed
from mgr_cli.artifacts import Input, Provenance, check_output
from mgr_cli.data import Dataset, load_dataset
from mgr_cli.data.images import decode_problem
from mgr_cli.encoders import towers
from mgr_cli.encoders.artifact import KIND, load_embeddings, save_embeddings
from mgr_cli.errors import MgrError

__all__ = ["KIND", "EmbedConfig", "embed", "fuse_artifacts", "load_embeddings", "save_embeddings"]
MODALITIES = ("text", "image", "fused")


@dataclass
class EmbedConfig:
    modality: str = "text"
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = "openai"
    text_model: str | None = None
    pooling: str = "mean"
    image_model: str | None = None
    image_weights: str | None = None
    fusion: str = "auto"
    text_share: float = 0.5  # balanced fusion: the text's share of the fused variance
    fusion_dim: int = 128  # balanced fusion: the common width of each modality's block
    normalize: bool = True
    batch_size: int = 64
    workers: int = 1
    device: str = "auto"
    precision: str = "auto"
    missing_images: str = "error"
    outside_images: bool = False  # allow image paths resolving outside the image folder
    seed: int = 0  # random-init towers are seeded: the same weights in every rank and run

    def problems(self) -> list[str]:
        checks = [
            (self.modality in MODALITIES, f"--modality must be one of {', '.join(MODALITIES)}"),
            (self.fusion in FUSIONS, "--fusion must be auto, mean, concat or balanced"),
            (0 < self.text_share < 1, "--text-share must be between 0 and 1 (exclusive)"),
            (self.fusion_dim >= 1, "--fusion-dim must be at least 1"),
            (self.pooling in ("mean", "cls"), "--pooling must be mean or cls"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"),
             "--precision must be auto, fp32, bf16 or fp16"),
            (self.missing_images in ("error", "blank"), "--missing-images must be error or blank"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.workers >= 0, "--workers must be 0 or more"),
        ]
        return [msg for ok, msg in checks if not ok]


def _dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if precision == "fp16" and device.type == "cpu":
        raise MgrError("--precision fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def build_towers(cfg: EmbedConfig, device: torch.device) -> dict[str, towers.Tower]:
    """The towers this run needs, each from its encoder family (mgr_cli.encoders.families)."""
    from mgr_cli.encoders.families import build_towers as from_families

    need = ["text", "image"] if cfg.modality == "fused" else [cfg.modality]
    return from_families({m: cfg.text_model if m == "text" else cfg.image_model for m in need},
                         cfg, device)


def image_inputs(ds: Dataset, policy: str, allow_outside: bool = False
                 ) -> tuple[list[Path | None], list[str]]:
    """Each item's image path (None: embed a blank image), and the ids of those without one."""
    paths = [ds.image_path(i, allow_outside) for i in range(len(ds.items))]
    bad = [(ds.items[i].id, "no image" if p is None else decode_problem(p))
           for i, p in enumerate(paths)]
    bad = [(i, r) for i, r in bad if r is not None]
    if bad and policy == "error":
        listing = ", ".join(f"{i} ({r})" for i, r in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise MgrError(f"{len(bad)} items have no usable image: {listing}; fix them or pass "
                       "--missing-images blank to embed a blank image (recorded in the artifact)")
    blank = {i for i, _ in bad}
    return [None if ds.items[k].id in blank else p for k, p in enumerate(paths)], [i for i, _ in bad]


class ImageFiles(torch.utils.data.Dataset):
    """Decode and transform images in loader workers, off the forward pass."""

    def __init__(self, paths: list[Path | None], transform: Callable):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, k: int) -> torch.Tensor:
        from PIL import Image

        p = self.paths[k]
        if p is None:
            return self.transform(Image.new("RGB", (224, 224), (127, 127, 127)))
        from mgr_cli.data.images import DECODE_ERRORS

        try:
            with Image.open(p) as im:
                return self.transform(im.convert("RGB"))
        except DECODE_ERRORS as e:
            raise MgrError(f"{p}: the image does not decode ({e}); fix or remove it, then "
                           "prepare the dataset again") from None


def _autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def run_texts(tower: towers.Tower, texts: list[str], cfg: EmbedConfig, device: torch.device,
              dtype: torch.dtype, progress: Callable[[int], None]) -> torch.Tensor:
    order = sorted(range(len(texts)), key=lambda k: len(texts[k]))  # less padding per batch
    chunks = []
    with torch.inference_mode(), _autocast(device, dtype):
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            chunks.append(tower.forward(tower.prepare([texts[k] for k in idx])).float().cpu())
            progress(len(idx))
    if not chunks:
        return torch.empty(0)
    stacked = torch.cat(chunks)
    out = torch.empty_like(stacked)
    out[torch.tensor(order)] = stacked  # back to item order
    return out


def run_images(tower: towers.Tower, paths: list[Path | None], cfg: EmbedConfig,
               device: torch.device, dtype: torch.dtype,
               progress: Callable[[int], None]) -> torch.Tensor:
    loader = torch.utils.data.DataLoader(
        ImageFiles(paths, tower.transform), batch_size=cfg.batch_size, num_workers=cfg.workers,
        collate_fn=tower.prepare, pin_memory=device.type == "cuda",
        persistent_workers=False, prefetch_factor=4 if cfg.workers else None)
    chunks = []
    try:
        with torch.inference_mode(), _autocast(device, dtype):
            for batch in loader:
                chunks.append(tower.forward(batch.to(device, non_blocking=True)).float().cpu())
                progress(len(batch))
    except MgrError as e:  # from a loader worker, the message carries the worker's traceback
        raise MgrError(str(e).strip().splitlines()[-1].removeprefix("mgr_cli.errors.MgrError: ")) from None
    return torch.cat(chunks) if chunks else torch.empty(0)


def fusion_for(fusion: str, encoders: dict[str, dict]) -> str:
    """`auto`: the mean when both vectors come from one CLIP model (one shared space),
    else the concatenation (two encoders' spaces cannot be averaged)."""
    if fusion != "auto":
        return fusion
    t, i = encoders.get("text", {}), encoders.get("image", {})
    shared = t.get("family") == i.get("family") == "open_clip" and all(
        t.get(k) == i.get(k) for k in ("model", "pretrained"))
    return "mean" if shared else "concat"


FUSIONS = ("auto", "mean", "concat", "balanced")


def _fuse(vecs: dict[str, torch.Tensor], cfg: EmbedConfig) -> torch.Tensor:
    if cfg.modality != "fused":
        return vecs[cfg.modality]
    t, i = (torch.nn.functional.normalize(vecs[m], dim=-1) for m in ("text", "image"))
    if cfg.fusion == "balanced":
        from mgr_cli.encoders.fusion import balanced_fusion

        shares = {"text": cfg.text_share, "image": 1 - cfg.text_share}
        return torch.from_numpy(balanced_fusion({"text": t.numpy(), "image": i.numpy()}, shares,
                                                cfg.fusion_dim))
    if cfg.fusion == "concat":
        return torch.cat([t, i], dim=-1)
    if t.shape[-1] != i.shape[-1]:
        raise MgrError(f"--fusion mean needs both towers in one space, but text is "
                       f"{t.shape[-1]}-d and image {i.shape[-1]}-d; use --fusion concat")
    return (t + i) / 2


def embed(dataset: Path | str, out: Path | str, cfg: EmbedConfig, *, command: str = "python API",
          force: bool = False, log: Callable[[str], None] = lambda s: None,
          progress: Callable[[int], None] = lambda n: None) -> dict | None:
    """Embed every item of `dataset`; rank 0 writes `out` and returns its header."""
    if cfg.problems():
        raise MgrError("; ".join(cfg.problems()))
    out = Path(out)
    dist = distributed.from_env()
    if dist.main:
        check_output(out, force)
    ds, ds_header = load_dataset(dataset)
    need = ["text", "image"] if cfg.modality == "fused" else [cfg.modality]
    if "text" in need and "text" not in ds_header["meta"]["modalities"]:
        raise MgrError(f"{dataset}: its items have no text; embed --modality image instead")
    if "image" in need and not ds.image_root:
        raise MgrError(f"{dataset}: prepared without images; re-run mgr prepare with images")
    device = distributed.pick_device(cfg.device, dist)
    dist = distributed.init(device)
    distributed.check_shardable(len(ds.items), dist, "items")
    dtype = _dtype(cfg.precision, device)
    paths, blank = (image_inputs(ds, cfg.missing_images, cfg.outside_images) if "image" in need
                    else ([], []))
    torch.manual_seed(cfg.seed)
    tw = build_towers(cfg, device)
    mine = list(distributed.shard(len(ds.items), dist))
    vecs: dict[str, torch.Tensor] = {}
    for m in need:
        log(f"embedding {len(mine)} items ({m}) with {tw[m].describe['family']} "
            f"{tw[m].describe['model']} on {device}" + (f", rank {dist.rank}/{dist.world}" if dist.active else ""))
        if m == "text":
            vecs[m] = run_texts(tw[m], [ds.items[k].text for k in mine], cfg, device, dtype, progress)
        else:
            vecs[m] = run_images(tw[m], [paths[k] for k in mine], cfg, device, dtype, progress)
    if cfg.modality == "fused":
        cfg = replace(cfg, fusion=fusion_for(cfg.fusion, {m: tw[m].describe for m in need}))
        log(f"fusing text and image by {cfg.fusion}")
        if cfg.fusion == "balanced" and dist.active:
            raise MgrError("--fusion balanced needs every item at once: embed text and image "
                           "(under torchrun if you like), then join them with "
                           "mgr fuse TEXT_EMB IMAGE_EMB --fusion balanced")
    emb = _fuse(vecs, cfg)
    if cfg.normalize and cfg.fusion != "balanced":
        emb = torch.nn.functional.normalize(emb, dim=-1)
    parts = distributed.gather((mine, emb.numpy()), dist)
    header = None
    if dist.main:
        full = np.zeros((len(ds.items), emb.shape[1]), dtype=np.float32)
        for idx, arr in parts:
            full[idx] = arr
        if not np.isfinite(full).all():
            bad = np.where(~np.isfinite(full).all(1))[0]
            raise MgrError(f"{len(bad)} items got NaN or inf embeddings (e.g. "
                           f"{ds.items[bad[0]].id}); try --precision fp32")
        extra = {"device": str(device), "precision": str(dtype), "world_size": dist.world,
                 **(_balance_meta(full, cfg) if cfg.fusion == "balanced" and cfg.modality == "fused" else {})}
        header = save_embeddings(out, [it.id for it in ds.items], full, modality=cfg.modality,
                                 encoders={m: tw[m].describe for m in need},
                                 normalized=cfg.normalize and cfg.fusion != "balanced",
                                 fusion=cfg.fusion if cfg.modality == "fused" else None,
                                 standin=any(tw[m].describe["standin"] for m in need),
                                 blank_images=blank, meta=extra,
                                 provenance=Provenance(command, asdict(cfg)),
                                 inputs=[Input("dataset", Path(dataset), ds_header)], force=force)
    distributed.barrier(dist)
    distributed.finish(dist)
    return header


def _balance_meta(fused: np.ndarray, cfg: EmbedConfig) -> dict:
    """What balanced fusion did: the shares asked for and measured, the block width."""
    from mgr_cli.encoders.fusion import variance_shares

    w = fused.shape[1] // 2
    got = variance_shares(fused, {"text": w, "image": w})
    return {"text_share": cfg.text_share, "fusion_dim": w,
            "variance_shares": {m: round(v, 6) for m, v in got.items()}}


def fuse_artifacts(text: Path | str, image: Path | str, out: Path | str, *, fusion: str = "auto",
                   normalize: bool = True, text_share: float = 0.5, fusion_dim: int = 128,
                   command: str = "python API", force: bool = False) -> dict:
    """Early fusion of a text and an image embeddings artifact of the same dataset,
    without encoding anything again."""
    from mgr_cli.artifacts import require_agreement

    out = Path(out)
    check_output(out, force)
    (t, th), (i, ih) = load_embeddings(text), load_embeddings(image)
    for path, h, want in ((text, th, "text"), (image, ih, "image")):
        if h["meta"]["modality"] != want:
            raise MgrError(f"{path}: holds {h['meta']['modality']} embeddings, expected {want}")
    require_agreement([(Path(text), th), (Path(image), ih)], "item_ids_hash", "item order")
    fusion = fusion_for(fusion, {**th["meta"]["encoders"], **ih["meta"]["encoders"]})
    cfg = EmbedConfig(modality="fused", fusion=fusion, normalize=normalize, text_share=text_share,
                      fusion_dim=fusion_dim)
    if cfg.problems():
        raise MgrError("; ".join(cfg.problems()))
    emb = _fuse({"text": torch.from_numpy(t), "image": torch.from_numpy(i)}, cfg)
    if normalize and fusion != "balanced":
        emb = torch.nn.functional.normalize(emb, dim=-1)
    balance = _balance_meta(emb.numpy(), cfg) if fusion == "balanced" else {}
    config = {"fusion": fusion, "normalize": normalize,
              **({"text_share": text_share, "fusion_dim": fusion_dim} if balance else {})}
    kept = {k: v for k, v in th["meta"].items() if k in ("device", "precision", "world_size")}
    return save_embeddings(out, None, emb.numpy(), modality="fused", fusion=fusion,
                           normalized=normalize and fusion != "balanced",
                           encoders={**th["meta"]["encoders"], **ih["meta"]["encoders"]},
                           standin=th["meta"]["standin"] or ih["meta"]["standin"],
                           blank_images=ih["meta"]["blank_images"], meta={**kept, **balance},
                           provenance=Provenance(command, config),
                           inputs=[Input("text", Path(text), th), Input("image", Path(image), ih)],
                           force=force)
