"""Encoder families: the registry `mgr embed` builds its towers from.

An `Encoder` builds the towers (mgr_cli.encoders.towers.Tower) of the modalities asked of it:

    build(specs, cfg, device) -> {modality: Tower}
        specs   {modality: spec}: what --text-model / --image-model said after the
                family's prefix ("standin:minilm" -> "minilm"), or None for the default
                family (open_clip, which reads cfg.clip_model and cfg.clip_pretrained)
        cfg     the EmbedConfig (the fields the family lists in `reads`)
        device  the torch device the towers run on

Which family builds a tower: `--text-model NAME:SPEC` / `--image-model NAME:SPEC` with a
registered NAME picks that family; a spec without one is a transformers directory
(text) or a timm model (image); no option at all is open_clip (both towers from one
CLIP model, one shared space). All of a family's towers are built in one call, so a
two-tower model is loaded once. A plugin file adds a family with `register_encoder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mgr_cli.encoders import standins, towers
from mgr_cli.errors import MgrError
from mgr_cli.registry import Registry


@dataclass(frozen=True)
class Encoder:
    name: str
    help: str
    modalities: tuple[str, ...]  # the towers it can build
    build: Callable[[dict, Any, Any], dict]
    reads: tuple[str, ...] = ()  # EmbedConfig fields
    standin: bool = False  # not the paper's encoder: artifacts say `standin: true`


def _clip(specs, cfg, device):
    both = towers.clip_towers(cfg.clip_model, cfg.clip_pretrained, device)
    return {m: both[m] for m in specs}


def _transformers(specs, cfg, device, label=None):
    return {"text": towers.hf_text_tower(str(specs["text"]), cfg.pooling, device, label=label)}


def _timm(specs, cfg, device):
    return {"image": towers.timm_image_tower(specs["image"], cfg.image_weights, device)}


def _standin(specs, cfg, device):
    out = {}
    if "text" in specs:
        spec = standins.PREFIX + specs["text"]
        out["text"] = towers.hf_text_tower(str(standins.text_model_dir(spec)), cfg.pooling,
                                           device, label=spec)
    if "image" in specs:
        spec = standins.PREFIX + specs["image"]
        name, weights = standins.image_model(spec)
        out["image"] = towers.timm_image_tower(name, weights, device, label=spec)
    return out


ENCODERS: Registry[Encoder] = Registry("encoder family", "--text-model/--image-model", [
    Encoder("open_clip", "CLIP, both towers in one space (--clip-model, --clip-pretrained); "
            "the default", ("text", "image"), _clip, ("clip_model", "clip_pretrained")),
    Encoder("transformers", "a local transformers directory (text; the default for "
            "--text-model PATH)", ("text",), _transformers, ("text_model", "pooling")),
    Encoder("timm", "a timm model with local weights (image; the default for --image-model "
            "NAME)", ("image",), _timm, ("image_model", "image_weights")),
    Encoder("standin", "offline stand-ins, not CLIP: minilm (text), efficientnet-lite0 "
            "(image)", ("text", "image"), _standin, ("text_model", "image_model", "pooling"),
            standin=True),
])
DEFAULT = {"text": "transformers", "image": "timm"}


def register_encoder(encoder: Encoder) -> Encoder:
    """Add an encoder family (from a plugin file); a name already taken is an error."""
    if not isinstance(encoder, Encoder):
        raise MgrError("register_encoder takes a mgr_cli.encoders.families.Encoder")
    return ENCODERS.register(encoder)


def resolve(modality: str, spec: str | None) -> tuple[Encoder, str | None]:
    """The family that builds `modality`'s tower for this --text-model/--image-model."""
    if not spec:
        family, rest = ENCODERS["open_clip"], None
    else:
        prefix, sep, rest = spec.partition(":")
        if sep and prefix in ENCODERS:
            family = ENCODERS[prefix]
        else:
            family, rest = ENCODERS[DEFAULT[modality]], spec
    if modality not in family.modalities:
        raise MgrError(f"encoder family {family.name} has no {modality} tower (it has "
                       f"{', '.join(family.modalities)})")
    return family, rest


def build_towers(specs: dict[str, str | None], cfg, device) -> dict[str, towers.Tower]:
    """One tower per modality in `specs` ({modality: --text-model/--image-model}), each
    family called once for all of its towers; each tower's describe says `standin`."""
    groups: dict[str, dict[str, str | None]] = {}
    for m, spec in specs.items():
        family, rest = resolve(m, spec)
        groups.setdefault(family.name, {})[m] = rest
    out: dict[str, towers.Tower] = {}
    # open_clip last, as before the registry: random-init towers draw from one seeded stream
    for name, asked in sorted(groups.items(), key=lambda kv: kv[0] == "open_clip"):
        family = ENCODERS[name]
        built = family.build(asked, cfg, device)
        missing = [m for m in asked if m not in built]
        if missing:
            raise MgrError(f"encoder family {name} built no {', '.join(missing)} tower")
        for m in asked:
            built[m].describe["standin"] = family.standin or bool(built[m].describe.get("standin"))
            out[m] = built[m]
    return {m: out[m] for m in specs}
