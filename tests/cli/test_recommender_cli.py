"""Stage 2 through the command line: every layout end to end on the tiny dataset,
evaluate against brute force, the overlap table, and torchrun with two CPU processes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY_T5
from mgr_cli.artifacts import read_jsonl
from mgr_cli.cli import app

runner = CliRunner()
TRAIN = ["--steps", 6, "--eval-every", 3, "--batch-size", 4, "--warmup", 1, "--eval-users", 6,
         "--device", "cpu", *TINY_T5]


def mgr(*args):
    r = runner.invoke(app, [str(a) for a in args])
    return r


@pytest.fixture
def ids(tiny_dataset, tmp_path):
    tiny = ["--clip-model", "mgr-tiny-clip", "--clip-pretrained", "none", "--workers", "0"]
    out = {}
    for m in ("text", "image", "fused"):
        if m == "fused":
            assert mgr("fuse", tmp_path / "text.st", tmp_path / "image.st", "-o", tmp_path / "fused.st").exit_code == 0
        else:
            assert mgr("embed", tiny_dataset, "-o", tmp_path / f"{m}.st", "--modality", m, *tiny).exit_code == 0
        r = mgr("quantize", tmp_path / f"{m}.st", "-o", tmp_path / f"{m}.ids.st", "--method", "rkmeans",
                "--levels", 2, "--codebook-size", 2)
        assert r.exit_code == 0, r.output
        out[m] = tmp_path / f"{m}.ids.st"
    return out


def test_every_layout_end_to_end(tiny_dataset, ids, tmp_path):
    rows = {"tiger": [ids["text"]], "ef": [ids["fused"]], "lf": [ids["text"], ids["image"]],
            "lfpp": [ids["text"], ids["image"]]}
    for layout, paths in rows.items():
        tok = tmp_path / f"{layout}.tok"
        r = mgr("tokenize", tiny_dataset, *paths, "-o", tok, "--layout", layout)
        assert r.exit_code == 0, r.output
        init = []
        if layout == "lfpp":
            r = mgr("align", tok, "-o", tmp_path / "align", *TRAIN)
            assert r.exit_code == 0, r.output
            init = ["--init", tmp_path / "align"]
        r = mgr("train", tok, "-o", tmp_path / f"run-{layout}", *TRAIN, *init)
        assert r.exit_code == 0, r.output
        r = mgr("evaluate", tmp_path / f"run-{layout}", tok, "-o", tmp_path / f"eval-{layout}")
        assert r.exit_code == 0, r.output
        m = json.loads(r.stdout)
        assert m["users"] == 6 and 0 <= m["mrr"] <= 1
        # 20 beams over 6 items is exhaustive: every user's target is somewhere in the list
        assert m["hits@20"] == 1.0
    r = mgr("evaluate", tmp_path / "run-lfpp", tmp_path / "lfpp.tok", "-o", tmp_path / "eval-bf16",
            "--precision", "bf16")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["hits@20"] == 1.0  # still every item, ranked in bf16
    r = mgr("evaluate", tmp_path / "run-lf", tmp_path / "lf.tok", "-o", tmp_path / "eval-lf-text",
            "--modalities", "text")
    assert r.exit_code == 0, r.output
    _, preds = read_jsonl(tmp_path / "eval-lf-text" / "predictions.jsonl", "predictions")
    assert len(preds) == 6 and preds[0]["items"]
    r = mgr("compare", tmp_path / "eval-tiger" / "predictions.jsonl",
            tmp_path / "eval-ef" / "predictions.jsonl")
    assert r.exit_code == 0
    cmp = json.loads(r.stdout)
    assert cmp["users"] == 6 and 0 <= cmp["top1_agreement"] <= 1 and cmp["top20_overlap"] == pytest.approx(6 / 20)
    # one definition of Table 2's overlap: the command and the report agree
    from mgr_cli.evaluation.compare import hit_overlap, predictions_by_user

    pa, pb = (predictions_by_user(tmp_path / f"eval-{m}" / "predictions.jsonl") for m in ("tiger", "ef"))
    assert cmp["hit_overlap@5"] == hit_overlap(pa, pb)
    r = mgr("evaluate", tmp_path / "run-tiger", tmp_path / "lf.tok", "-o", tmp_path / "bad")
    assert r.exit_code == 1
    assert "the model's vocabulary does not match" in r.stderr


def test_evaluate_ranks_match_brute_force(tiny_dataset, ids, tmp_path):
    from transformers import T5ForConditionalGeneration

    from mgr_cli.tokens.stage import Tokenized

    tok = tmp_path / "lfpp.tok"
    mgr("tokenize", tiny_dataset, ids["text"], ids["image"], "-o", tok, "--layout", "lfpp")
    assert mgr("train", tok, "-o", tmp_path / "run", *TRAIN).exit_code == 0
    assert mgr("evaluate", tmp_path / "run", tok, "-o", tmp_path / "ev").exit_code == 0
    _, preds = read_jsonl(tmp_path / "ev" / "predictions.jsonl")
    t = Tokenized.load(tok)
    model = T5ForConditionalGeneration.from_pretrained(tmp_path / "run" / "model").eval()
    full = torch.tensor([t.target(i).tolist() for i in range(len(t.items))])
    from mgr_cli.data import load_dataset

    ds, _ = load_dataset(tiny_dataset)
    for r, p in enumerate(preds):
        src = torch.tensor(t.source(t.tensors["test_history"][r]))[None].expand(len(full), -1)
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=src, labels=full).logits, -1)
        scores = lp.gather(-1, full[..., None]).squeeze(-1).sum(-1)
        assert p["items"] == [ds.items[i].id for i in scores.argsort(descending=True).tolist()]
    # --sample: a seeded subset of the same users, with the same per-user results
    r = mgr("evaluate", tmp_path / "run", tok, "-o", tmp_path / "ev3", "--sample", 3, "--seed", 1)
    assert r.exit_code == 0, r.output
    h, sub = read_jsonl(tmp_path / "ev3" / "predictions.jsonl")
    by_user = {p["user"]: p["items"] for p in preds}
    assert len(sub) == 3 and all(by_user[p["user"]] == p["items"] for p in sub)
    assert h["meta"]["sample"] == 3 and h["meta"]["seed"] == 1
    r = mgr("evaluate", tmp_path / "run", tok, "-o", tmp_path / "ev4", "--sample", 3, "--seed", 1, "--limit", 2)
    assert r.exit_code == 1 and "give --limit or --sample, not both" in r.stderr
    # one decoding thread (the default above cuts the batch between the CPU's cores)
    r = mgr("evaluate", tmp_path / "run", tok, "-o", tmp_path / "ev5", "--workers", 1)
    assert r.exit_code == 0, r.output
    _, one = read_jsonl(tmp_path / "ev5" / "predictions.jsonl")
    assert [p["items"] for p in one] == [p["items"] for p in preds]
    r = mgr("evaluate", tmp_path / "run", tok, "-o", tmp_path / "ev6", "--workers", -1)
    assert r.exit_code == 1 and "--workers must be positive" in r.stderr
    assert not (tmp_path / "ev6").exists()


def test_torchrun_two_processes_train_and_evaluate(tiny_dataset, ids, tmp_path):
    tok = tmp_path / "lf.tok"
    mgr("tokenize", tiny_dataset, ids["text"], ids["image"], "-o", tok, "--layout", "lf")
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "mgr_cli"]
    r = subprocess.run(base + ["train", str(tok), "-o", str(tmp_path / "run"), *map(str, TRAIN)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    h, log = read_jsonl(tmp_path / "run" / "run.jsonl", "run")
    assert [e["step"] for e in log] == [3, 6]
    r = subprocess.run(base + ["evaluate", str(tmp_path / "run"), str(tok), "-o", str(tmp_path / "ev2"),
                               "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert mgr("evaluate", tmp_path / "run", tok, "-o", tmp_path / "ev1").exit_code == 0
    h2, p2 = read_jsonl(tmp_path / "ev2" / "predictions.jsonl")
    h1, p1 = read_jsonl(tmp_path / "ev1" / "predictions.jsonl")
    assert [p["user"] for p in p2] == [p["user"] for p in p1]  # each user once, in order
    assert [p["items"] for p in p2] == [p["items"] for p in p1]
    assert h2["meta"]["metrics"] == h1["meta"]["metrics"] and h2["meta"]["world_size"] == 2
    r = subprocess.run(base[:4] + ["--nproc_per_node=8"] + base[5:] +
                       ["evaluate", str(tmp_path / "run"), str(tok), "-o", str(tmp_path / "ev8"),
                        "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "8 processes for 6 users" in r.stderr
