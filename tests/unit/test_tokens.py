"""Token layouts: golden sequences on a hand-made case, and the examples built from them."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import hand_ids
from mgr_cli.artifacts import ArtifactError
from mgr_cli.errors import MgrError
from mgr_cli.tokens.layout import Vocab, item_tokens
from mgr_cli.tokens.stage import Tokenized, tokenize

SIZES = {"text": [3, 2], "image": [2, 2]}
CODES = {"text": np.array([[2, 1], [0, 0]]), "image": np.array([[0, 1], [1, 0]])}


def test_golden_lfpp():
    v = Vocab("lfpp", ["text", "image"], SIZES)
    assert v.specials == ["<pad>", "</s>", "<sep_1>", "<to_text>", "<to_image>"]
    assert v.size == 5 + 3 + 2 + 2 + 2
    seq = item_tokens(v, CODES)
    assert [[v.names()[t] for t in row] for row in seq] == [
        ["<text_1_2>", "<text_2_1>", "<sep_1>", "<image_1_0>", "<image_2_1>"],
        ["<text_1_0>", "<text_2_0>", "<sep_1>", "<image_1_1>", "<image_2_0>"]]
    assert seq[0].tolist() == [7, 9, 2, 10, 13]
    assert v.spans() == {"text": (0, 2), "image": (3, 5)}


def test_golden_lf_order_and_tiger():
    v = Vocab("lf", ["image", "text"], SIZES)
    assert v.specials == ["<pad>", "</s>", "<to_image>", "<to_text>"]
    assert [v.names()[t] for t in item_tokens(v, CODES)[0]] == [
        "<image_1_0>", "<image_2_1>", "<text_1_2>", "<text_2_1>"]
    t = Vocab("tiger", ["text"], {"text": [3, 2]})
    assert item_tokens(t, {"text": CODES["text"]})[0].tolist() == [4, 6] and t.size == 7


def test_three_modalities_get_two_separators():
    sizes = {"text": [2], "image": [2], "audio": [2]}
    v = Vocab("lfpp", ["text", "image", "audio"], sizes)
    seq = item_tokens(v, {m: np.array([[1]]) for m in sizes})[0]
    assert [v.names()[t] for t in seq] == ["<text_1_1>", "<sep_1>", "<image_1_1>", "<sep_2>", "<audio_1_1>"]


def test_layout_errors():
    with pytest.raises(MgrError, match="layout lf needs two or more ID artifacts, got 1"):
        Vocab("lf", ["text"], SIZES)
    with pytest.raises(MgrError, match="layout tiger takes one ID artifact, got 2"):
        Vocab("tiger", ["text", "image"], SIZES)
    with pytest.raises(MgrError, match="--layout must be one of tiger, ef, lf, lfpp"):
        Vocab("xx", ["text"], SIZES)
    with pytest.raises(MgrError, match=r"text codes do not fit their codebook sizes \[3, 2\]"):
        item_tokens(Vocab("tiger", ["text"], SIZES), {"text": np.array([[3, 0]])})


def test_examples_and_alignment(tiny_tokenized, tiny_dataset):
    from mgr_cli.data import load_dataset

    tok = Tokenized.load(tiny_tokenized)
    ds, _ = load_dataset(tiny_dataset)
    v = tok.vocab
    meta = tok.header["meta"]
    assert meta["layout"] == "lfpp" and meta["item_length"] == 5
    assert meta["examples"] == {"train": 18, "valid": 6, "test": 6}
    assert [e["role"] for e in tok.header["inputs"]] == ["dataset", "ids:text", "ids:image"]
    src, tgt = tok.rec_examples("test")
    seq = ds.sequences[0]
    expected = np.concatenate([tok.items[i] for i in seq[:-1]] + [[1]])
    assert src[0].tolist() == expected.tolist()
    assert tgt[0].tolist() == tok.items[seq[-1]].tolist() + [1]
    asrc, atgt = tok.align_examples()
    assert len(asrc) == 12
    # text -> image for item 0 (text 0,0; image 1,1), then image -> text
    to_image, to_text = v.token("<to_image>"), v.token("<to_text>")
    assert asrc[0].tolist() == [to_image] + tok.items[0, :2].tolist() + [1]
    assert atgt[0].tolist() == tok.items[0, 3:].tolist() + [1]
    assert asrc[6].tolist() == [to_text] + tok.items[0, 3:].tolist() + [1]


def test_tokenize_checks_its_inputs(tiny_dataset, tmp_path, generic_dir):
    text = hand_ids(tmp_path, tiny_dataset, "text", [[k] for k in range(6)])
    with pytest.raises(MgrError, match="layout ef takes early-fusion IDs"):
        tokenize(tiny_dataset, [text], tmp_path / "x.st", layout="ef")
    from mgr_cli.data import PrepareConfig
    from mgr_cli.data.prepare import prepare

    other = tmp_path / "other.jsonl"
    prepare("generic", generic_dir, other, cfg=PrepareConfig(k_core=3))
    with pytest.raises(ArtifactError, match="disagree on item order"):
        tokenize(other, [text], tmp_path / "x.st", layout="tiger")
    assert not (tmp_path / "x.st").exists()
