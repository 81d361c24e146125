"""Shared fixtures: tiny files written by the tests, and the optional shared data."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("MGR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def fast_mgr(tmp_path_factory) -> str:
    """An executable that runs `mgr` like the installed one, in a fork of a process that
    has already imported torch and transformers (`mgr server`): for the tests that drive
    the Makefile and the demo script through ~100 commands."""
    from mgr_cli.cli.server import ForkServer

    with ForkServer(tmp_path_factory.mktemp("forkserver")) as mgr:
        yield mgr


@pytest.fixture
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data not found at {d} (set MGR_SHARED_DATA)")
    return d


def write(path: Path, text: str, *, gz: bool = False, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt", encoding=encoding) as f:
            f.write(text)
    else:
        path.write_text(text, encoding=encoding)
    return path


def make_image(path: Path, colour=(200, 30, 30), size=(12, 16)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def interactions_csv(users: dict[str, list[str]]) -> str:
    """user -> items in time order, as a generic interactions CSV with timestamps."""
    rows = ["user_id,item_id,timestamp"]
    for u, items in users.items():
        rows += [f"{u},{i},{t}" for t, i in enumerate(items)]
    return "\n".join(rows) + "\n"


def items_csv(ids, *, image: bool = False, extra: str = "") -> str:
    head = "item_id,text" + (",image" if image else "") + (",category" if extra else "")
    rows = [head]
    for i in ids:
        row = f"{i},text of {i}" + (f",img/{i}.png" if image else "") + (f",{extra}" if extra else "")
        rows.append(row)
    return "\n".join(rows) + "\n"


@pytest.fixture
def generic_dir(tmp_path: Path) -> Path:
    """A generic-format dataset where every user and item survives a 3-core:
    4 users x 4 items, every user buys every item once in a user-specific order."""
    d = tmp_path / "generic"
    order = {"u1": "abcd", "u2": "bcda", "u3": "cdab", "u4": "dabc"}
    write(d / "interactions.csv", interactions_csv({u: list(s) for u, s in order.items()}))
    write(d / "items.csv", items_csv("abcd"))
    return d


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A prepared dataset of 6 items with texts and images, 6 users (3-core)."""
    from mgr_cli.data import PrepareConfig
    from mgr_cli.data.prepare import prepare

    d = tmp_path / "tiny"
    items = "abcdef"
    users = {f"u{k}": items[k:] + items[:k] for k in range(6)}
    write(d / "interactions.csv", interactions_csv({u: list(s) for u, s in users.items()}))
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (90, 90, 90)]
    rows = ["item_id,text,image,category"]
    for k, c in enumerate(items):
        rows.append(f"{c},a {['red', 'green', 'blue', 'yellow', 'teal', 'grey'][k]} thing number {k},"
                    f"img/{c}.png,{'xy'[k % 2]}")
        make_image(d / "img" / f"{c}.png", colours[k], size=(20 + k, 24))
    write(d / "items.csv", "\n".join(rows) + "\n")
    out = tmp_path / "tiny.dataset.jsonl"
    prepare("generic", d, out, cfg=PrepareConfig(k_core=3))
    return out


TINY_CLIP = {"clip_model": "mgr-tiny-clip", "clip_pretrained": None}


def profile(name: str) -> dict:
    """A shipped budget profile, configs/<name>.toml (the demo, the Makefile and the tests share them)."""
    import tomllib

    return tomllib.loads((REPO / "configs" / f"{name}.toml").read_text())


TINY_T5 = [x for k, v in profile("tiny")["model"].items() for x in (f"--{k}", str(v))]


def hand_ids(tmp_path: Path, dataset: Path, modality: str, codes: list[list[int]], letters="ab") -> Path:
    """Import hand-made codes (one row per item, in item order) as a semantic-ID artifact."""
    import json

    from mgr_cli.quantize.exchange import import_ids

    tmp_path.mkdir(parents=True, exist_ok=True)
    js = tmp_path / f"{modality}.index.json"
    js.write_text(json.dumps({str(i): [f"<{letters[lv]}_{c}>" for lv, c in enumerate(row)]
                              for i, row in enumerate(codes)}))
    out = tmp_path / f"{modality}.ids.safetensors"
    import_ids(js, dataset, out, modality=modality, dedup="never", force=True)
    return out


@pytest.fixture
def tiny_tokenized(tmp_path: Path, tiny_dataset: Path):
    """LF++ tokens of the tiny dataset from hand-made text and image IDs (2 + 2 levels)."""
    from mgr_cli.tokens.stage import tokenize

    text = hand_ids(tmp_path, tiny_dataset, "text", [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]])
    image = hand_ids(tmp_path, tiny_dataset, "image", [[1, 1], [0, 0], [1, 0], [0, 1], [1, 2], [0, 2]],
                     letters="AB")
    out = tmp_path / "lfpp.tok.safetensors"
    tokenize(tiny_dataset, [text, image], out, layout="lfpp")
    return out
