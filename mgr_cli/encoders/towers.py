"""Text and image towers behind one small interface.

A tower turns a batch of inputs into a float tensor [batch, dim]. Three families:
  * open_clip (the paper's CLIP; both towers share one embedding space),
  * a transformers text encoder from a local directory (mean pooling or CLS),
  * a timm image model with local weights (pooled features).
Nothing is downloaded: a model name with a pretrained tag that is not cached stops
with a message saying to pass a local checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from mgr_cli.errors import MgrError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class Tower:
    """One modality's encoder: `prepare` runs on CPU (in loader workers for images),
    `forward` on the device."""

    modality: str
    describe: dict[str, Any]
    prepare: Callable[[list], Any]
    forward: Callable[[Any], torch.Tensor]
    module: torch.nn.Module
    transform: Callable | None = None  # per-image transform (images only)


def _register_tiny_configs() -> None:
    import open_clip

    for cfg in CONFIG_DIR.glob("*.json"):
        if cfg.stem not in open_clip.list_models():
            open_clip.add_model_config(cfg)


def load_clip(model: str, pretrained: str | None, device: torch.device):
    """An open_clip model, its image transform and tokenizer (cached per process)."""
    key = (model, pretrained, str(device))
    if key in _CLIP_CACHE and pretrained:  # random-init models are re-made under the caller's seed
        return _CLIP_CACHE[key]
    import open_clip

    _register_tiny_configs()
    if not model.startswith(("local-dir:", "hf-hub:")) and model not in open_clip.list_models():
        raise MgrError(f"unknown open_clip model {model!r}; see open_clip.list_models() "
                       "or give local-dir:PATH")
    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=pretrained or None, device=device)
    except Exception as e:  # hub errors, missing files, bad checkpoints
        where = f"pretrained {pretrained!r}" if pretrained else "the model"
        raise MgrError(f"could not load open_clip {model} with {where} ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:160]}); no download is possible here: pass a "
                       "local checkpoint file with --clip-pretrained PATH") from None
    clip.eval()
    tokenizer = open_clip.get_tokenizer(model)
    _CLIP_CACHE[key] = (clip, preprocess, tokenizer)
    return _CLIP_CACHE[key]


_CLIP_CACHE: dict = {}


def clip_towers(model: str, pretrained: str | None, device: torch.device) -> dict[str, Tower]:
    clip, preprocess, tokenizer = load_clip(model, pretrained, device)
    desc = {"family": "open_clip", "model": model, "pretrained": pretrained}
    text = Tower("text", {**desc, "tower": "text"}, lambda texts: tokenizer(texts),
                 lambda batch: clip.encode_text(batch.to(device)), clip)
    image = Tower("image", {**desc, "tower": "image"}, lambda imgs: torch.stack(imgs),
                  lambda batch: clip.encode_image(batch.to(device)), clip, transform=preprocess)
    return {"text": text, "image": image}


def hf_text_tower(path: str, pooling: str, device: torch.device, max_length: int = 256,
                  label: str | None = None) -> Tower:
    """Any transformers encoder from a local directory (e.g. BERT, MiniLM)."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress goes to stderr, once
    p = Path(path)
    if not (p / "config.json").exists():
        raise MgrError(f"{path}: not a transformers model directory (no config.json); "
                       "give the folder that holds config.json and the weights")
    if pooling not in ("mean", "cls"):
        raise MgrError(f"--pooling must be mean or cls, got {pooling!r}")
    tok = AutoTokenizer.from_pretrained(p, local_files_only=True)
    model = AutoModel.from_pretrained(p, local_files_only=True).to(device).eval()

    def prepare(texts: list[str]):
        return tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")

    def forward(batch) -> torch.Tensor:
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = model(**batch).last_hidden_state
        if pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    desc = {"family": "transformers", "model": label or str(p.resolve()), "pooling": pooling}
    return Tower("text", desc, prepare, forward, model)


def _load_timm_weights(model: torch.nn.Module, weights: Path) -> str:
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    if set(state) == set(own):
        model.load_state_dict(state)
        return "by name"
    theirs, ours = list(state.values()), list(own.items())
    if len(theirs) == len(ours) and all(t.shape == o.shape for t, (_, o) in zip(theirs, ours)):
        model.load_state_dict({k: t for (k, _), t in zip(ours, theirs)})
        return "in order"
    raise MgrError(f"{weights}: its {len(theirs)} tensors match {type(model).__name__}'s "
                   f"{len(ours)} neither by name nor one to one in order; wrong model name?")


def timm_image_tower(name: str, weights: str | None, device: torch.device,
                     label: str | None = None) -> Tower:
    """A timm model with local weights; pooled features (the classifier removed)."""
    import timm
    from timm.data import create_transform, resolve_data_config

    if name not in timm.list_models():
        raise MgrError(f"unknown timm model {name!r}; see timm.list_models()")
    model = timm.create_model(name, pretrained=False)
    how = "random init"
    if weights:
        if not Path(weights).exists():
            raise MgrError(f"{weights}: no such weights file")
        how = _load_timm_weights(model, Path(weights))
    model.reset_classifier(0)
    # channels-last runs convolutions about twice as fast on the CPU (and on tensor cores)
    model = model.to(device, memory_format=torch.channels_last).eval()
    transform = create_transform(**resolve_data_config({}, model=model))
    desc = {"family": "timm", "model": name, "weights": label or weights, "loaded": how}
    return Tower("image", desc, lambda imgs: torch.stack(imgs),
                 lambda batch: model(batch.to(device, memory_format=torch.channels_last)), model,
                 transform=transform)
