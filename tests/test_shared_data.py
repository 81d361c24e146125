"""Every set in ../shared/data prepares with the right counts (skipped, with the reason,
where the data is absent). The counts are the published ones where those exist:
Amazon 2014 P5 files (already 5-core), MQL4GRec Instruments, Scientific; H&M: the
images that ship are exactly those of the articles that survive image filter + 5-core."""

from __future__ import annotations

import json

import pytest

from mgr_cli.data import PrepareConfig, load_dataset
from mgr_cli.data.prepare import prepare

CASES = [
    # name, format, folder, users, items, interactions
    ("hm", "hm", "hm", 11972, 3944, 95140),
    ("movielens", "movielens", "movielens-100k", 943, 1342, 99126),
    ("beauty", "amazon-p5", "amazon2014/Beauty", 22363, 12101, 198502),
    ("toys", "amazon-p5", "amazon2014/Toys", 19412, 11924, 167597),
    ("sports", "amazon-p5", "amazon2014/Sports", 35598, 18357, 296337),
    ("instruments", "lcrec", "amazon2018-instruments", 17112, 6250, 136226),
    ("scientific", "lcrec", "amazon-scientific", 8317, 4344, 58492),
]


@pytest.mark.parametrize("name,fmt,folder,users,items,interactions", CASES, ids=[c[0] for c in CASES])
def test_shared_set_prepares(shared_data, tmp_path, name, fmt, folder, users, items, interactions):
    src = shared_data / folder
    if not src.is_dir():
        pytest.skip(f"{src} not present")
    out = tmp_path / f"{name}.jsonl"
    header = prepare(fmt, src, out)
    s = header["meta"]["stats"]
    assert (s["users"], s["items"], s["interactions"]) == (users, items, interactions)
    assert s["min_length"] >= 5
    if fmt in ("hm", "movielens"):
        assert s["items_with_image"] == items and header["meta"]["modalities"] == ["text", "image"]


def test_hm_images_are_exactly_the_survivors(shared_data, tmp_path):
    src = shared_data / "hm"
    if not src.is_dir():
        pytest.skip(f"{src} not present")
    prepare("hm", src, tmp_path / "hm.jsonl")
    ds, _ = load_dataset(tmp_path / "hm.jsonl")
    on_disk = {p.stem.lstrip("0") for p in (src / "images").rglob("*.jpg")}
    assert {it.id for it in ds.items} == on_disk


def test_beauty_item_order_is_letters_index(shared_data, tmp_path):
    src = shared_data / "amazon2014" / "Beauty"
    if not (src / "letter.index.json").exists():
        pytest.skip(f"{src}/letter.index.json not present")
    prepare("amazon-p5", src, tmp_path / "b.jsonl")
    ds, _ = load_dataset(tmp_path / "b.jsonl")
    seen: dict[str, None] = {}
    for line in open(src / "user_sequence.txt"):
        seen.update(dict.fromkeys(line.split()[1:]))
    assert [it.id for it in ds.items] == list(seen)
    assert len(json.loads((src / "letter.index.json").read_text())) == len(ds.items)


def test_instruments_split_matches_mql4grec(shared_data, tmp_path):
    src = shared_data / "amazon2018-instruments"
    if not src.is_dir():
        pytest.skip(f"{src} not present")
    prepare("lcrec", src, tmp_path / "i.jsonl", cfg=PrepareConfig(max_history=50))
    ds, _ = load_dataset(tmp_path / "i.jsonl")
    for split, name in (("test", "test"), ("valid", "valid")):
        ours = {(ds.user_ids[e.user], " ".join(ds.items[i].id for i in e.history),
                 ds.items[e.target].id) for e in ds.examples(split)}
        lines = (src / f"Instruments.{name}.inter").read_text().splitlines()[1:]
        theirs = {tuple(line.split("\t")) for line in lines}
        assert ours == theirs
