"""mgr recommend: histories in, the same ranked items as mgr evaluate out; its input
formats, --exclude-history, unknown ids, bad lines, streaming and broken pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from typer.testing import CliRunner

from conftest import REPO, TINY_T5, hand_ids, interactions_csv, items_csv, write
from mgr_cli.artifacts import read_jsonl
from mgr_cli.cli import app

runner = CliRunner()
TRAIN = ["--steps", 4, "--eval-every", 4, "--batch-size", 8, "--warmup", 1, "--eval-users", 4,
         "--eval-beams", 4, "--device", "cpu", *TINY_T5]
ITEMS = "abcdefgh"
CODES = {"text": [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1], [3, 0], [3, 1]],
         "image": [[1, 1], [0, 0], [1, 0], [0, 1], [1, 2], [0, 2], [2, 0], [2, 1]]}


def mgr(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def said(r) -> str:
    """stderr with the console's line wrapping undone."""
    return " ".join(r.stderr.split())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A dataset of 8 items and 10 users with 3-8 interactions, tokenized (LF++ and LF) with
    --max-history 3, so most test histories are cut; a tiny run of each, and evaluations."""
    from mgr_cli.data import PrepareConfig, load_dataset
    from mgr_cli.data.prepare import prepare
    from mgr_cli.tokens.stage import tokenize

    d = tmp_path_factory.mktemp("rec")
    users = {f"u{k}": [ITEMS[(k + j) % 8] for j in range(3 + k % 6)] for k in range(10)}
    write(d / "raw" / "interactions.csv", interactions_csv(users))
    write(d / "raw" / "items.csv", items_csv(ITEMS))
    ds_path = d / "ds.jsonl"
    prepare("generic", d / "raw", ds_path, cfg=PrepareConfig(k_core=3))
    ds, _ = load_dataset(ds_path)
    assert len(ds.items) == 8 and len(ds.user_ids) == 10
    ids = [hand_ids(d, ds_path, m, CODES[m], letters="ab" if m == "text" else "AB") for m in CODES]
    out = {"d": d, "ds": ds, "ds_path": ds_path}
    for layout in ("lfpp", "lf"):
        tok = d / f"{layout}.tok"
        tokenize(ds_path, ids, tok, layout=layout, max_history=3)
        r = mgr("train", tok, "-o", d / f"run-{layout}", *TRAIN)
        assert r.exit_code == 0, r.output
        out[layout] = (d / f"run-{layout}", tok)
    return out


def test_source_tokens_are_tokenize_s(built):
    """The history row recommend builds from item ids is the tokenized artifact's own."""
    import torch

    from mgr_cli.decoding.recommend import Recommender
    from mgr_cli.models.t5 import ModelConfig, build_model
    from mgr_cli.tokens.stage import Tokenized

    ds, (_, tok_path) = built["ds"], built["lfpp"]
    tok = Tokenized.load(tok_path)
    model = build_model(tok.header["meta"]["vocab_size"], ModelConfig(1, 1, 16, 2, 8, 32))
    rec = Recommender(model, tok, device=torch.device("cpu"))
    assert rec.item_ids == [it.id for it in ds.items] and rec.max_history == 3
    for r, u in enumerate(tok.tensors["test_user"]):
        full = ds.sequences[u][:-1]  # the whole history: recommend keeps the last 3 itself
        assert rec.source(full).tolist() == tok.source(tok.tensors["test_history"][r]).tolist()


@pytest.mark.parametrize("beams", [20, 2])
def test_test_histories_give_evaluate_s_predictions(built, beams):
    ds, (run, tok) = built["ds"], built["lfpp"]
    ev = built["d"] / f"ev-{beams}"
    r = mgr("evaluate", run, tok, "-o", ev, "--beams", beams, "--top-k", 20)
    assert r.exit_code == 0, r.output
    _, preds = read_jsonl(ev / "predictions.jsonl", "predictions")
    lines = [json.dumps({"user": uid, "history": [ds.items[i].id for i in seq[:-1]]})
             for uid, seq in zip(ds.user_ids, ds.sequences)]
    r = mgr("recommend", run, tok, "--top-k", 20, "--beams", beams, input="\n".join(lines) + "\n")
    assert r.exit_code == 0, r.output
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    assert [a["user"] for a in answers] == [p["user"] for p in preds] == ds.user_ids
    assert [a["items"] for a in answers] == [p["items"] for p in preds]
    for a, p in zip(answers, preds):
        assert a["scores"] == pytest.approx(p["scores"], abs=2e-5)
    assert len(answers[0]["items"]) == (8 if beams == 20 else 2)
    if beams == 20:
        assert len({tuple(a["items"]) for a in answers}) > 1  # the lists depend on the history
    assert "10 users answered" in said(r)


def test_plain_lines_json_lines_batches_and_python_api(built):
    from mgr_cli.decoding.evaluate import load_run_model
    from mgr_cli.decoding.recommend import recommend
    from mgr_cli.tokens.stage import Tokenized

    ds, (run, tok) = built["ds"], built["lfpp"]
    hists = [[ds.items[i].id for i in seq[:-1]] for seq in ds.sequences]
    jsonl = "".join(json.dumps({"history": h}) + "\n" for h in hists)
    plain = "".join(" ".join(h) + "\n" for h in hists)
    a = mgr("recommend", run, tok, "--top-k", 5, input=jsonl)
    b = mgr("recommend", run, tok, "--top-k", 5, "--batch-size", 1, input=plain)
    c = mgr("recommend", run, tok, "--top-k", 5, "--batch-size", 3, input="\n" + plain.replace("\n", "\n\n"))
    assert a.exit_code == b.exit_code == c.exit_code == 0, a.output + b.output + c.output
    ja, jb, jc = ([json.loads(x) for x in r.stdout.splitlines()] for r in (a, b, c))
    assert [x["user"] for x in ja] == [x["user"] for x in jb] == list(range(10))  # 0-based line numbers
    assert [x["user"] for x in jc] == list(range(1, 20, 2))  # blank lines are skipped, but counted
    assert [x["items"] for x in ja] == [x["items"] for x in jb] == [x["items"] for x in jc]
    assert all(len(x["items"]) == 5 for x in ja)
    # the library function gives the same lists
    t = Tokenized.load(tok)
    model, _ = load_run_model(run, t, __import__("torch").device("cpu"))
    out = list(recommend(model, t, hists, k=5))
    assert [o["items"] for o in out] == [x["items"] for x in ja] and out[3]["user"] == 3
    # a file, and a BOM on its first line
    f = write(built["d"] / "h.txt", "\ufeff" + plain)
    r = mgr("recommend", run, tok, "--top-k", 5, "-i", f)
    assert r.exit_code == 0 and r.stdout == a.stdout
    r = mgr("recommend", run, tok, "-i", built["d"] / "none.txt")
    assert r.exit_code == 1 and r.stderr == f"Error: {built['d'] / 'none.txt'}: no such file\n"


def test_exclude_history(built):
    ds, (run, tok) = built["ds"], built["lfpp"]
    hist = [ds.items[i].id for i in ds.sequences[4][:-1]]  # 6 of the 8 items
    line = json.dumps({"user": "x", "history": hist}) + "\n"
    full = json.loads(mgr("recommend", run, tok, "--top-k", 20, input=line).stdout)
    r = mgr("recommend", run, tok, "--top-k", 20, "--exclude-history", input=line)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["items"] == [i for i in full["items"] if i not in hist] and len(out["items"]) == 2
    assert "23 beams (top-k 20 + max history 3)" in said(r)
    assert "1 users got fewer than 20 items" in said(r)  # only 2 items are left
    r = mgr("recommend", run, tok, "--top-k", 1, "--beams", 1, "--exclude-history", input=line)
    assert "4 beams (top-k 1 + max history 3)" in said(r)
    one = json.loads(r.stdout)["items"]
    assert len(one) == 1 and one[0] not in hist


def test_unknown_ids_and_empty_histories(built):
    ds, (run, tok) = built["ds"], built["lfpp"]
    good = " ".join(ds.items[i].id for i in ds.sequences[0][:-1])
    text = f"{good}\na zz b yy xx ww\n"
    r = mgr("recommend", run, tok, input=text)
    assert r.exit_code == 1
    assert r.stderr == (f"Error: input line 2: 4 unknown item ids ('zz', 'yy', 'xx', ...) not in the "
                        f"catalogue of {tok}; pass --unknown skip to drop them\n")
    assert [json.loads(x)["user"] for x in r.stdout.splitlines()] == [0]  # lines before it: answered
    r = mgr("recommend", run, tok, "--unknown", "skip", input=text)
    assert r.exit_code == 0, r.output
    skipped, clean = r.stdout.splitlines()[1], mgr("recommend", run, tok, input="a b\n").stdout
    assert json.loads(skipped)["items"] == json.loads(clean)["items"]
    assert "4 unknown item ids skipped in 1 histories (e.g. 'zz', 'yy', 'xx')" in said(r)
    # a history with no known item: an error, or answered from the empty source (only EOS)
    r = mgr("recommend", run, tok, input='{"user": "new", "history": []}\n')
    assert r.exit_code == 1
    assert r.stderr == ("Error: input line 1: the history is empty; pass --unknown skip to answer "
                        "it from no history (the model's items for anybody)\n")
    r = mgr("recommend", run, tok, "--unknown", "skip", input='{"user": "new", "history": []}\nzz\n')
    assert r.exit_code == 0, r.output
    a, b = (json.loads(x) for x in r.stdout.splitlines())
    assert a["user"] == "new" and len(a["items"]) == 8 and a["items"] == b["items"]
    assert "2 empty histories answered from no history" in said(r)


def test_bad_lines_and_options(built):
    run, tok = built["lfpp"]
    r = mgr("recommend", run, tok, input='a b\n{"user": 1, "history": ["a"\n')
    assert r.exit_code == 1 and len(r.stdout.splitlines()) == 1
    assert r.stderr.startswith("Error: input line 2: not valid JSON (")
    assert r.stderr.count("\n") == 1
    for line, msg in (('{"history": "a b"}', 'needs "history": a list of item ids'),
                      ('{"history": ["a", null]}', "item ids are strings (or integers), got null")):
        r = mgr("recommend", run, tok, input=line + "\n")
        assert r.exit_code == 1 and r.stderr == f"Error: input line 1: {msg}\n"
    r = mgr("recommend", run, tok, input='{"history": ' + "[" * 100_000 + "\n")
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: input line 1: not valid JSON (maximum recursion depth exceeded")
    r = mgr("recommend", run, tok, input=b"a \xff b\n")
    assert r.exit_code == 1 and r.stderr == "Error: input line 1: not UTF-8 text\n"
    r = mgr("recommend", run, tok, "--top-k", 0, input="a\n")
    assert r.exit_code == 1 and r.stderr == "Error: --top-k must be at least 1, got 0\n"
    r = mgr("recommend", run, tok, "--unknown", "keep", input="a\n")
    assert r.exit_code == 2
    r = mgr("recommend", built["lf"][0], tok, input="a\n")
    assert r.exit_code == 1 and "recommend with the tokenized data the model was trained on" in said(r)


def test_modalities_on_lf(built):
    ds, (run, tok) = built["ds"], built["lf"]
    ev = built["d"] / "ev-lf-text"
    assert mgr("evaluate", run, tok, "-o", ev, "--modalities", "text").exit_code == 0
    _, preds = read_jsonl(ev / "predictions.jsonl", "predictions")
    text = "".join(" ".join(ds.items[i].id for i in seq[:-1]) + "\n" for seq in ds.sequences)
    r = mgr("recommend", run, tok, "--top-k", 20, "--modalities", "text", input=text)
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["items"] for x in r.stdout.splitlines()] == [p["items"] for p in preds]
    r = mgr("recommend", run, tok, "--modalities", "smell", input=text)
    assert r.exit_code == 1 and r.stderr == "Error: --modalities smell: the layout has only text, image\n"


def test_streams_and_stops_quietly_on_a_broken_pipe(built):
    """With --batch-size 1 the first line is answered while stdin is still open; once the
    reader closes the pipe, mgr stops without a traceback."""
    ds, (run, tok) = built["ds"], built["lfpp"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-m", "mgr_cli", "recommend", str(run), str(tok),
                          "--batch-size", "1", "--top-k", "3"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        line = " ".join(ds.items[i].id for i in ds.sequences[0][:-1]) + "\n"
        p.stdin.write(line.encode())
        p.stdin.flush()
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(p.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=120)
        assert got and json.loads(got[0])["user"] == 0, "no answer while stdin was open"
        assert p.poll() is None  # still waiting for more
        p.stdout.close()  # the reader goes away, like `| head -1`
        try:
            for _ in range(50):
                p.stdin.write(line.encode())
                p.stdin.flush()
            p.stdin.close()
        except BrokenPipeError:
            pass  # mgr already stopped
        rc = p.wait(timeout=120)
        err = p.stderr.read().decode()
        assert rc == 0 and "Traceback" not in err and "Error" not in err, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
