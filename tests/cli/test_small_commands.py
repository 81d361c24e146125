"""The single-purpose commands split from embed and evaluate (mgr fuse, mgr compare,
mgr table): what they compute, and typer's own exit 2 for a missing argument, an option
of a removed mode, or a value outside an option's fixed set."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from typer.testing import CliRunner

from mgr_cli.artifacts import read_header, read_jsonl
from mgr_cli.cli import app
from mgr_cli.encoders import load_embeddings

runner = CliRunner()


def mgr(*args):
    return runner.invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    """typer's error box as one line."""
    return " ".join(text.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


def _imported(tiny_dataset, tmp_path, modality, d, seed):
    x = np.random.default_rng(seed).normal(size=(6, d)).astype(np.float32)
    np.savez(tmp_path / f"{modality}.npz", item_ids=np.array(list("abcdef")), vectors=x)
    out = tmp_path / f"{modality}.st"
    r = mgr("embeddings", "import", tmp_path / f"{modality}.npz", "--dataset", tiny_dataset,
            "--modality", modality, "-o", out)
    assert r.exit_code == 0, r.output
    return out, x


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_fuse_concatenates_or_averages_and_records_what_ran(tiny_dataset, tmp_path):
    (t, tx), (i, ix) = (_imported(tiny_dataset, tmp_path, m, 4, s) for m, s in (("text", 1), ("image", 2)))
    r = mgr("fuse", t, i, "-o", tmp_path / "auto.st")
    assert r.exit_code == 0, r.output
    fused, h = load_embeddings(tmp_path / "auto.st")
    # imported vectors share no CLIP space: auto is concat, of the normalised vectors, normalised
    assert h["meta"]["fusion"] == "concat" and h["meta"]["modality"] == "fused"
    np.testing.assert_allclose(fused, np.concatenate([_unit(tx), _unit(ix)], 1) / np.sqrt(2), atol=1e-6)
    assert [x["role"] for x in h["inputs"]] == ["text", "image"]
    cmd = shlex.split(h["created_by"]["command"])
    assert cmd[:5] == ["mgr", "fuse", str(t), str(i), "--out"] and "--text-share" not in cmd
    r = mgr("fuse", t, i, "-o", tmp_path / "mean.st", "--fusion", "mean")
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(load_embeddings(tmp_path / "mean.st")[0],
                               _unit(_unit(tx) + _unit(ix)), atol=1e-6)
    r = mgr("fuse", t, i, "-o", tmp_path / "bal.st", "--fusion", "balanced", "--fusion-dim", 2,
            "--text-share", 0.7)
    assert r.exit_code == 0, r.output
    bal = read_header(tmp_path / "bal.st")
    assert bal["meta"]["text_share"] == 0.7 and bal["meta"]["fusion_dim"] == 2
    assert "--text-share 0.7" in bal["created_by"]["command"]


def test_fuse_refuses_swapped_inputs_and_an_existing_output(tiny_dataset, tmp_path):
    (t, _), (i, _) = (_imported(tiny_dataset, tmp_path, m, 4, s) for m, s in (("text", 1), ("image", 2)))
    r = mgr("fuse", i, t, "-o", tmp_path / "f.st")
    assert r.exit_code == 1 and r.stderr == f"Error: {i}: holds image embeddings, expected text\n"
    assert mgr("fuse", t, i, "-o", tmp_path / "f.st").exit_code == 0
    r = mgr("fuse", t, i, "-o", tmp_path / "f.st")
    assert r.exit_code == 1 and r.stderr == f"Error: {tmp_path / 'f.st'} already exists; pass --force to overwrite it\n"


@pytest.fixture
def two_evals(tiny_dataset, tmp_path):
    for name in ("popular", "random"):
        r = mgr(name, tiny_dataset, "-o", tmp_path / name, "--top-k", 5)
        assert r.exit_code == 0, r.output
    return tmp_path / "popular", tmp_path / "random"


def test_compare_prints_the_overlap(two_evals):
    from mgr_cli.evaluation.compare import hit_overlap, predictions_by_user

    pop, rnd = (d / "predictions.jsonl" for d in two_evals)
    r = mgr("compare", pop, pop, "--top-k", 3)
    assert r.exit_code == 0, r.output
    same = json.loads(r.stdout)
    assert same["users"] == 6 and same["top1_agreement"] == 1.0 and same["top3_overlap"] == 1.0
    r = mgr("compare", pop, rnd)
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    pa, pb = predictions_by_user(pop), predictions_by_user(rnd)
    top1 = sum(pa[u]["items"][0] == pb[u]["items"][0] for u in pa) / len(pa)
    assert got["top1_agreement"] == pytest.approx(top1, abs=1e-6) and got["hit_overlap@5"] == hit_overlap(pa, pb)
    assert set(got) == {"users", "hit_overlap@5", "top1_agreement", "top20_overlap"}
    r = mgr("compare", pop, rnd, "--top-k", 0)
    assert r.exit_code == 1 and r.stderr == "Error: --top-k must be at least 1, got 0\n"


def test_table_prints_one_row_per_metrics_file(two_evals):
    paths = [d / "metrics.jsonl" for d in two_evals]
    r = mgr("table", *paths)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| run | users | MRR |")
    for line, path in zip(lines[2:], paths):
        mrr = read_jsonl(path, "metrics")[0]["meta"]["metrics"]["mrr"]
        assert line.startswith(f"| {path.parent.name} | 6 | {mrr:.4f}")


MISSING = {
    "fuse TEXT": (["fuse", "t.st"], "Missing argument 'IMAGE_EMB'."),
    "fuse -o": (["fuse", "t.st", "i.st"], "Missing option '--out' / '-o'."),
    "compare": (["compare", "a.jsonl"], "Missing argument 'B_PRED'."),
    "table": (["table"], "Missing argument 'METRICS'."),
    "evaluate TOKENIZED": (["evaluate", "run"], "Missing argument 'tokenized'."),
    "evaluate -o": (["evaluate", "run", "tok"], "Missing option '--out' / '-o'."),
    "embed DATASET": (["embed", "-o", "x.st"], "Missing argument 'dataset'."),
    "embed --from-text": (["embed", "d.jsonl", "-o", "x.st", "--from-text", "t.st"],
                          "No such option: --from-text"),
    "evaluate --table": (["evaluate", "--table", "m.jsonl"], "No such option: --table"),
    "evaluate --compare": (["evaluate", "--compare", "a", "b"], "No such option: --compare"),
}


@pytest.mark.parametrize("args,message", MISSING.values(), ids=MISSING.keys())
def test_missing_arguments_and_removed_modes_exit_2(tmp_path, args, message):
    r = mgr(*args)
    assert r.exit_code == 2 and message in flat(r.output), r.output
    assert list(tmp_path.iterdir()) == []


def _names(*names):
    return ", ".join(repr(n) for n in names) + "."


CHOICES = {
    "embed --modality": (["embed", "d.jsonl", "-o", "x.st"], "--modality", "fused", _names("text", "image")),
    "embed --pooling": (["embed", "d.jsonl", "-o", "x.st"], "--pooling", "max", _names("mean", "cls")),
    "embed --precision": (["embed", "d.jsonl", "-o", "x.st"], "--precision", "fp8",
                          _names("auto", "fp32", "bf16", "fp16")),
    "embed --missing-images": (["embed", "d.jsonl", "-o", "x.st"], "--missing-images", "skip",
                               _names("error", "blank")),
    "fuse --fusion": (["fuse", "t.st", "i.st", "-o", "x.st"], "--fusion", "sum",
                      _names("auto", "mean", "concat", "balanced")),
    "evaluate --split": (["evaluate", "r", "t", "-o", "x"], "--split", "train", _names("test", "valid")),
    "evaluate --precision": (["evaluate", "r", "t", "-o", "x"], "--precision", "fp16", _names("auto", "fp32", "bf16")),
    "train --metric": (["train", "t", "-o", "x"], "--metric", "auc",
                       _names("mrr", "ndcg@5", "ndcg@10", "ndcg@20", "hits@1", "hits@5", "hits@10", "hits@20")),
    "quantize --dedup": (["quantize", "e.st", "-o", "x.st"], "--dedup", "maybe", _names("always", "auto", "never")),
    "ids import --dedup": (["ids", "import", "i.csv", "--dataset", "d", "--modality", "text", "-o", "x"],
                           "--dedup", "maybe", _names("auto", "always", "never")),
    "embeddings import --modality": (["embeddings", "import", "v.npy", "--dataset", "d", "-o", "x"],
                                     "--modality", "smell", _names("text", "image", "fused", "collab")),
    "popular --split": (["popular", "d", "-o", "x"], "--split", "train", _names("test", "valid")),
    "sasrec evaluate --split": (["sasrec", "evaluate", "r", "d", "-o", "x"], "--split", "x", _names("test", "valid")),
    "analyze-ami --format": (["analyze-ami", "a.st", "b.st"], "--format", "csv", _names("json", "markdown")),
}


@pytest.mark.parametrize("args,option,value,names", CHOICES.values(), ids=CHOICES.keys())
def test_a_value_outside_a_fixed_set_exits_2_with_typers_message(tmp_path, args, option, value, names):
    r = mgr(*args, option, value)
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{option}': '{value}' is not one of {names}" in flat(r.output)
