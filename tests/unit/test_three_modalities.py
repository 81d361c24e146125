"""Three modalities (text, image, collab): golden token sequences of LF and LF++, the six
alignment pairs, and partial decoding of every subset on a tiny trained run."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import REPO, hand_ids
from mgr_cli.artifacts import read_jsonl
from mgr_cli.cli import app
from mgr_cli.data import load_dataset
from mgr_cli.decoding.beam import PrefixTree
from mgr_cli.decoding.rank import decode_sequences
from mgr_cli.errors import MgrError
from mgr_cli.tokens.layout import Vocab, alignment_pairs
from mgr_cli.tokens.stage import Tokenized, tokenize

runner = CliRunner()
MODS = ["text", "image", "collab"]
CODES = {"text": [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]],      # sizes 3, 2
         "image": [[1, 1], [0, 0], [1, 0], [0, 1], [1, 2], [0, 2]],     # sizes 2, 3
         "collab": [[0, 1], [1, 0], [1, 1], [0, 0], [2, 1], [2, 0]]}    # sizes 3, 2
# LF++: <pad> </s> <sep_1> <sep_2> <to_text> <to_image> <to_collab>, then
# text 7-9 | 10-11, image 12-13 | 14-16, collab 17-19 | 20-21
LFPP_ITEMS = [[7, 10, 2, 13, 15, 3, 17, 21], [7, 11, 2, 12, 14, 3, 18, 20],
              [8, 10, 2, 13, 14, 3, 18, 21], [8, 11, 2, 12, 15, 3, 17, 20],
              [9, 10, 2, 13, 16, 3, 19, 21], [9, 11, 2, 12, 16, 3, 19, 20]]
# LF: <pad> </s> <to_text> <to_image> <to_collab>, then text 5-7 | 8-9, image 10-11 | 12-14,
# collab 15-17 | 18-19
LF_ITEMS = [[5, 8, 11, 13, 15, 19], [5, 9, 10, 12, 16, 18], [6, 8, 11, 12, 16, 19],
            [6, 9, 10, 13, 15, 18], [7, 8, 11, 14, 17, 19], [7, 9, 10, 14, 17, 18]]
SUBSETS = [list(c) for n in (1, 2, 3) for c in combinations(MODS, n)]


def three_ids(tmp_path, dataset):
    return [hand_ids(tmp_path / m, dataset, m, CODES[m], letters=lt)
            for m, lt in zip(MODS, ("ab", "AB", "xy"))]


@pytest.fixture
def three(tmp_path, tiny_dataset):
    ids = three_ids(tmp_path, tiny_dataset)
    out = {}
    for layout in ("lf", "lfpp"):
        out[layout] = tmp_path / f"{layout}3.tok.safetensors"
        tokenize(tiny_dataset, ids, out[layout], layout=layout)
    return out


def test_golden_three_modality_vocabularies(three):
    pp, lf = Tokenized.load(three["lfpp"]), Tokenized.load(three["lf"])
    v = pp.vocab
    assert v.specials == ["<pad>", "</s>", "<sep_1>", "<sep_2>", "<to_text>", "<to_image>", "<to_collab>"]
    assert v.offsets == {"text": [7, 10], "image": [12, 14], "collab": [17, 20]} and v.size == 22
    assert v.spans() == {"text": (0, 2), "image": (3, 5), "collab": (6, 8)}
    assert pp.items.tolist() == LFPP_ITEMS
    assert [v.names()[t] for t in pp.items[0]] == [
        "<text_1_0>", "<text_2_0>", "<sep_1>", "<image_1_1>", "<image_2_1>", "<sep_2>",
        "<collab_1_0>", "<collab_2_1>"]
    w = lf.vocab
    assert w.specials == ["<pad>", "</s>", "<to_text>", "<to_image>", "<to_collab>"]
    assert w.offsets == {"text": [5, 8], "image": [10, 12], "collab": [15, 18]} and w.size == 20
    assert lf.items.tolist() == LF_ITEMS
    assert lf.header["meta"]["spans"] == {"text": [0, 2], "image": [2, 4], "collab": [4, 6]}
    assert [e["role"] for e in pp.header["inputs"]] == ["dataset", "ids:text", "ids:image", "ids:collab"]


def test_golden_three_modality_history(three, tiny_dataset):
    ds, _ = load_dataset(tiny_dataset)
    for path, table in ((three["lfpp"], LFPP_ITEMS), (three["lf"], LF_ITEMS)):
        tok = Tokenized.load(path)
        src, tgt = tok.rec_examples("test")
        seq = ds.sequences[0]
        assert src[0].tolist() == [t for i in seq[:-1] for t in table[i]] + [1]
        assert tgt[0].tolist() == table[seq[-1]] + [1]
    vsrc, _ = Tokenized.load(three["lfpp"]).rec_examples("valid")  # item 0 ... 3 of user 0
    assert vsrc[0].tolist()[:16] == LFPP_ITEMS[ds.sequences[0][0]] + LFPP_ITEMS[ds.sequences[0][1]]


def test_the_six_alignment_pairs(three):
    tok = Tokenized.load(three["lfpp"])
    pairs = [("text", "image"), ("text", "collab"), ("image", "text"), ("image", "collab"),
             ("collab", "text"), ("collab", "image")]
    assert alignment_pairs(tok.vocab) == pairs
    assert tok.header["meta"]["alignment_pairs"] == [list(p) for p in pairs]
    src, tgt = tok.align_examples()
    assert len(src) == len(tgt) == 6 * 6 == tok.header["meta"]["alignment_examples"]
    # item 0: text 7 10, image 13 15, collab 17 21; <to_text> 4, <to_image> 5, <to_collab> 6
    golden = [([5, 7, 10, 1], [13, 15, 1]), ([6, 7, 10, 1], [17, 21, 1]),
              ([4, 13, 15, 1], [7, 10, 1]), ([6, 13, 15, 1], [17, 21, 1]),
              ([4, 17, 21, 1], [7, 10, 1]), ([5, 17, 21, 1], [13, 15, 1])]
    assert [(src[p * 6].tolist(), tgt[p * 6].tolist()) for p in range(6)] == golden
    # item 5 of image -> collab: no separator inside an ID, none in the target
    assert (src[3 * 6 + 5].tolist(), tgt[3 * 6 + 5].tolist()) == ([6, 12, 16, 1], [19, 20, 1])
    lf_src, _ = Tokenized.load(three["lf"]).align_examples()
    assert lf_src[0].tolist() == [3, 5, 8, 1]  # LF: <to_image> is 3, text 5 8


@pytest.mark.parametrize("layout, subset, cols", [
    ("lfpp", ["text"], [0, 1]), ("lfpp", ["image"], [3, 4]), ("lfpp", ["collab"], [6, 7]),
    ("lfpp", ["text", "image"], [0, 1, 2, 3, 4]), ("lfpp", ["collab", "text"], [0, 1, 5, 6, 7]),
    ("lfpp", ["image", "collab"], [3, 4, 5, 6, 7]), ("lfpp", MODS, list(range(8))),
    ("lf", ["collab"], [4, 5]), ("lf", ["text", "collab"], [0, 1, 4, 5]), ("lf", ["image", "text"], [0, 1, 2, 3])])
def test_subset_sequences(three, layout, subset, cols):
    """A subset is decoded in layout order; LF++ keeps the separator before each later
    kept modality (text,collab: text <sep_2> collab)."""
    tok = Tokenized.load(three[layout])
    seqs, kept = decode_sequences(tok, subset)
    assert kept == [m for m in MODS if m in subset]
    assert seqs.tolist() == tok.items[:, cols].tolist()


def test_subset_errors(three):
    tok = Tokenized.load(three["lfpp"])
    with pytest.raises(MgrError, match="--modalities audio: the layout has only text, image, collab"):
        decode_sequences(tok, ["text", "audio"])
    with pytest.raises(MgrError, match="layout lfpp needs two or more ID artifacts, got 1"):
        Vocab("lfpp", ["collab"], {"collab": [2]})


def allowed_tokens(vocab: Vocab, subset: list[str]) -> set[int]:
    names = vocab.names()
    return {t for t, n in enumerate(names)
            if any(n.startswith(f"<{m}_") for m in subset) or n.startswith("<sep_")}


@pytest.mark.parametrize("layout", ["lf", "lfpp"])
def test_partial_decoding_of_every_subset(three, tiny_dataset, tmp_path, layout):
    cfg = ["--config", str(REPO / "configs" / "tiny.toml")]
    tok_path = three[layout]
    run = tmp_path / f"{layout}.run"
    init = []
    if layout == "lfpp":
        r = runner.invoke(app, ["align", str(tok_path), "-o", str(tmp_path / "align"), *cfg])
        assert r.exit_code == 0, r.output
        init = ["--init", str(tmp_path / "align")]
    r = runner.invoke(app, ["train", str(tok_path), "-o", str(run), *init, *cfg])
    assert r.exit_code == 0, r.output
    tok = Tokenized.load(tok_path)
    ds, _ = load_dataset(tiny_dataset)
    items = {it.id for it in ds.items}
    for subset in SUBSETS:
        out = tmp_path / ("eval-" + "+".join(subset))
        r = runner.invoke(app, ["evaluate", str(run), str(tok_path), "-o", str(out), "--modalities",
                                ",".join(subset), *cfg])
        assert r.exit_code == 0, r.output
        metrics, _ = read_jsonl(out / "metrics.jsonl", "metrics")
        assert metrics["config"]["modalities"] == subset and metrics["meta"]["layout"] == layout
        assert 0 <= metrics["meta"]["metrics"]["hits@5"] <= 1
        _, preds = read_jsonl(out / "predictions.jsonl", "predictions")
        assert len(preds) == len(ds.sequences)
        for p in preds:
            assert p["items"] and set(p["items"]) <= items and len(set(p["items"])) == len(p["items"])
        # what decoding emits: only the subset's tokens (and LF++'s separators between them)
        seqs, _ = decode_sequences(tok, subset)
        tree = PrefixTree.build(seqs)
        emitted = {int(t) for table in tree.child_tokens for t in table.ravel() if t >= 0}
        assert emitted <= allowed_tokens(tok.vocab, subset)
        assert {m for m in MODS if any(tok.vocab.names()[t].startswith(f"<{m}_") for t in emitted)} == set(subset)
        seps = {tok.vocab.names()[t] for t in emitted} & {"<sep_1>", "<sep_2>"}
        expected = {"<sep_1>"} if subset == ["text", "image"] else {"<sep_2>"} if len(subset) == 2 else set()
        assert seps == (expected if layout == "lfpp" and len(subset) < 3 else
                        {"<sep_1>", "<sep_2>"} if layout == "lfpp" else set())


# ---- the collaborative IDs come from the training split only
SASREC = ["--epochs", "4", "--eval-every", "2", "--hidden", "16", "--heads", "2", "--layers", "1",
          "--device", "cpu", "--batch-size", "4"]


def changed_copy(dataset, out, positions):
    """The dataset with every user's items at `positions` (-1: test, -2: validation)
    replaced by other items of the catalogue; nothing else changes."""
    from mgr_cli.data.dataset import save_dataset

    ds, _ = load_dataset(dataset)
    n = len(ds.items)
    for seq in ds.sequences:
        for p in positions:
            seq[p] = (seq[p] + 1 + p % 3) % n
    save_dataset(ds, out)
    return out


def collab_embeddings(dataset, run, out, *flags):
    from mgr_cli.encoders.embed import load_embeddings

    r = runner.invoke(app, ["sasrec", "train", str(dataset), "-o", str(run), *SASREC, *flags])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["sasrec", "embed", str(run), str(dataset), "-o", str(out)])
    assert r.exit_code == 0, r.output
    return load_embeddings(out)[0]


def test_collab_ids_never_see_validation_or_test_items(tiny_dataset, tmp_path, monkeypatch):
    import mgr_cli.training.sasrec as sasrec

    def no_validation(*a, **k):
        raise AssertionError("--select last read the validation split")

    monkeypatch.setattr(sasrec, "_validate", no_validation)
    base = collab_embeddings(tiny_dataset, tmp_path / "a", tmp_path / "a.emb", "--select", "last")
    held = changed_copy(tiny_dataset, tmp_path / "held.dataset.jsonl", [-2, -1])
    assert load_dataset(held)[0].sequences != load_dataset(tiny_dataset)[0].sequences
    same = collab_embeddings(held, tmp_path / "b", tmp_path / "b.emb", "--select", "last")
    assert np.array_equal(base, same)  # bit-identical: validation and test items never reach it
    log = read_jsonl(tmp_path / "a" / "run.jsonl", "run")[1]
    assert [e["epoch"] for e in log] == [2, 4] and not any("ndcg@10" in e for e in log)
    # the control: a training item does reach it
    train = changed_copy(tiny_dataset, tmp_path / "train.dataset.jsonl", [0])
    assert not np.array_equal(base, collab_embeddings(train, tmp_path / "c", tmp_path / "c.emb",
                                                      "--select", "last"))


def test_sasrec_best_epoch_never_sees_test_items(tiny_dataset, tmp_path):
    """The default (--select best) reads validation items to pick its epoch, never test items."""
    base = collab_embeddings(tiny_dataset, tmp_path / "a", tmp_path / "a.emb")
    test = changed_copy(tiny_dataset, tmp_path / "test.dataset.jsonl", [-1])
    assert np.array_equal(base, collab_embeddings(test, tmp_path / "b", tmp_path / "b.emb"))


def test_sasrec_select_must_be_best_or_last(tiny_dataset, tmp_path):
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(tmp_path / "r"), "--select", "x"])
    assert r.exit_code == 1 and "Error: --select must be best or last" in r.output
