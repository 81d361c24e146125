"""What prepare reads: decompression bombs are refused like broken files; --items and
--interactions are found as given or inside SOURCE, or named clearly."""

from __future__ import annotations

import pytest
from PIL import Image

from conftest import interactions_csv, items_csv, make_image, write
from mgr_cli.data import PrepareConfig
from mgr_cli.data.images import decode_problem
from mgr_cli.data.prepare import prepare
from mgr_cli.errors import MgrError


@pytest.fixture
def small_bomb_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a 20x20 image is now a "bomb"


def test_a_decompression_bomb_is_a_decode_problem(tmp_path, small_bomb_limit):
    assert "too large" in decode_problem(make_image(tmp_path / "warn.png", size=(12, 12)))  # 144 > 100
    assert "does not decode" in decode_problem(make_image(tmp_path / "bomb.png", size=(20, 20)))
    assert decode_problem(make_image(tmp_path / "ok.png", size=(8, 8))) is None


def test_prepare_refuses_or_drops_a_bomb(tmp_path, small_bomb_limit):
    d = tmp_path / "raw"
    users = {f"u{k}": list("abcd"[k:] + "abcd"[:k]) for k in range(4)}
    write(d / "interactions.csv", interactions_csv(users))
    write(d / "items.csv", items_csv("abcd", image=True))
    for c in "abc":
        make_image(d / "img" / f"{c}.png", size=(8, 8))
    make_image(d / "img" / "d.png", size=(20, 20))
    with pytest.raises(MgrError, match=r"d\.png.*does not decode"):
        prepare("generic", d, tmp_path / "a.jsonl", cfg=PrepareConfig(k_core=3))
    assert not (tmp_path / "a.jsonl").exists()
    ds_header = prepare("generic", d, tmp_path / "b.jsonl", cfg=PrepareConfig(k_core=2, bad_images="drop"))
    assert ds_header["meta"]["stats"]["items"] == 3


def test_items_and_interactions_are_found_inside_source_or_named_clearly(generic_dir, tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    (generic_dir / "items.csv").rename(generic_dir / "catalogue.csv")
    h = prepare("generic", generic_dir, tmp_path / "a.jsonl", items="catalogue.csv",
                cfg=PrepareConfig(k_core=3))
    assert h["meta"]["stats"]["items"] == 4
    with pytest.raises(MgrError, match=r"^--items nothing\.csv: no such file \(.*nothing\.csv nor "
                       r".*generic/nothing\.csv\); give a path from the working directory or a "
                       r"file name inside SOURCE$"):
        prepare("generic", generic_dir, tmp_path / "b.jsonl", items="nothing.csv")
