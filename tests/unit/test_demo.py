"""The demo catalogue: deterministic, real images, and both modalities matter."""

from __future__ import annotations

import csv
import hashlib
import random
from collections import Counter, defaultdict

import pytest

from mgr_cli.data.demo import COLOURS, SHAPES, DemoConfig, generate
from mgr_cli.errors import MgrError

CFG = DemoConfig(n_items=300, n_users=300, seed=7)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    generate(d, CFG)
    return d


def _digest(d):
    h = hashlib.sha256()
    for name in ["items.csv", "interactions.csv"] + [f"images/d{i:05d}.png" for i in (0, 99, 299)]:
        h.update((d / name).read_bytes())
    return h.hexdigest()


def test_deterministic(demo, tmp_path):
    generate(tmp_path, CFG)
    assert _digest(tmp_path) == _digest(demo)
    generate(tmp_path, DemoConfig(n_items=300, n_users=300, seed=8), force=True)
    assert _digest(tmp_path) != _digest(demo)


def test_refuses_to_overwrite_and_bad_sizes(demo, tmp_path):
    with pytest.raises(MgrError, match="already holds a demo catalogue; pass --force"):
        generate(demo, CFG)
    with pytest.raises(MgrError, match="the demo needs --items >= 100"):
        generate(tmp_path, DemoConfig(n_items=5))


def _rows(d):
    items = {r["item_id"]: r for r in csv.DictReader(open(d / "items.csv"))}
    seqs = defaultdict(list)
    for r in csv.DictReader(open(d / "interactions.csv")):
        seqs[r["user_id"]].append((int(r["timestamp"]), r["item_id"]))
    return items, {u: [i for _, i in sorted(s)] for u, s in seqs.items()}


def test_text_and_image_carry_different_attributes(demo):
    from PIL import Image

    items, _ = _rows(demo)
    first = items["d00000"]
    assert first["category"] in first["text"] and first["material"] in first["text"]
    assert all(s not in r["text"] for r in items.values() for s in SHAPES + list(COLOURS))
    img = Image.open(demo / first["image"]).convert("RGB")
    assert img.size == (64, 64)
    # the item's colour is in the picture
    assert COLOURS[first["colour"]] in {c for _, c in img.getcolors(4096)}


def _predictability(seqs, items, attr):
    """Mean over previous values of the most likely next value's share."""
    nxt = defaultdict(Counter)
    for s in seqs.values():
        for a, b in zip(s, s[1:]):
            nxt[items[a][attr]][items[b][attr]] += 1
    return sum(c.most_common(1)[0][1] / sum(c.values()) for c in nxt.values()) / len(nxt)


def _favourite_share(seqs, items, attr):
    shares = [Counter(items[i][attr] for i in s).most_common(1)[0][1] / len(s) for s in seqs.values()]
    return sum(shares) / len(shares)


def test_next_choice_depends_on_both_modalities(demo):
    items, seqs = _rows(demo)
    rng = random.Random(0)
    ids = list(items)
    chance = {u: [rng.choice(ids) for _ in s] for u, s in seqs.items()}  # same lengths
    for attr in ("category", "shape"):  # a text-only and an image-only transition
        assert _predictability(seqs, items, attr) > _predictability(chance, items, attr) + 0.2
    # a user's favourite colour (image only) and material (text only) show in the history
    for attr in ("colour", "material"):
        assert _favourite_share(seqs, items, attr) > _favourite_share(chance, items, attr) + 0.1
