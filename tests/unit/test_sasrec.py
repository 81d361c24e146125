"""SASRec: learns on the tiny dataset; its full-ranking metrics against brute force."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from mgr_cli.artifacts import read_jsonl
from mgr_cli.cli import app
from mgr_cli.data import load_dataset
from mgr_cli.decoding.metrics import Mean, user_metrics
from mgr_cli.models.sasrec import SASRec, SASRecConfig

runner = CliRunner()
FLAGS = ["--epochs", "6", "--eval-every", "3", "--hidden", "16", "--heads", "2", "--layers", "1",
         "--device", "cpu", "--batch-size", "4"]


def test_sasrec_train_and_evaluate_against_brute_force(tiny_dataset, tmp_path):
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(tmp_path / "run"), *FLAGS])
    assert r.exit_code == 0, r.output
    h, log = read_jsonl(tmp_path / "run" / "run.jsonl", "run")
    assert [e["epoch"] for e in log] == [3, 6] and h["meta"]["task"] == "sasrec"
    r = runner.invoke(app, ["sasrec", "evaluate", str(tmp_path / "run"), str(tiny_dataset), "-o",
                            str(tmp_path / "ev"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    # brute force: score every item for every user with the saved model, rank, average
    ds, _ = load_dataset(tiny_dataset)
    model = SASRec(len(ds.items), SASRecConfig(**h["meta"]["model_config"])).eval()
    model.load_state_dict(load_file(tmp_path / "run" / "model.safetensors"))
    mean = Mean()
    with torch.no_grad():
        for seq in ds.sequences:
            hist = torch.tensor([[0] * (20 - len(seq[:-1])) + [i + 1 for i in seq[:-1]]])
            ranked = model.scores(hist)[0].argsort(descending=True).tolist()
            mean.add(user_metrics(ranked[:20], seq[-1]))
    for key, value in mean.result().items():
        assert got[key] == pytest.approx(value, abs=1e-6)
    _, preds = read_jsonl(tmp_path / "ev" / "predictions.jsonl", "predictions")
    assert len(preds) == 6 and len(preds[0]["items"]) == 6  # all six items ranked


def test_sasrec_errors(tiny_dataset, tmp_path, tiny_tokenized):
    r = runner.invoke(app, ["sasrec", "evaluate", str(tmp_path), str(tiny_dataset), "-o", str(tmp_path / "e")])
    assert r.exit_code == 1 and "run.jsonl: no such file" in r.stderr


def test_sasrec_torchrun_two_processes(tiny_dataset, tmp_path):
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", "-m", "mgr_cli", "sasrec", "train", str(tiny_dataset),
                        "-o", str(tmp_path / "run"), *FLAGS], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_sasrec_embed_feeds_letter(tiny_dataset, tmp_path):
    from conftest import TINY_CLIP

    from mgr_cli.artifacts import read_header
    from mgr_cli.encoders.embed import EmbedConfig, embed

    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(tmp_path / "run"), *FLAGS])
    assert r.exit_code == 0, r.output
    collab = tmp_path / "collab.safetensors"
    r = runner.invoke(app, ["sasrec", "embed", str(tmp_path / "run"), str(tiny_dataset), "-o", str(collab)])
    assert r.exit_code == 0, r.output
    h = read_header(collab)
    ds, dh = load_dataset(tiny_dataset)
    weights = load_file(tmp_path / "run" / "model.safetensors")["items.weight"]
    from mgr_cli.encoders.embed import load_embeddings

    emb, _ = load_embeddings(collab)
    assert h["meta"]["modality"] == "collab" and h["meta"]["item_ids_hash"] == dh["meta"]["item_ids_hash"]
    assert torch.equal(torch.from_numpy(emb), weights[1:])  # padding row dropped, item order kept
    text = tmp_path / "text.safetensors"
    embed(tiny_dataset, text, EmbedConfig(**TINY_CLIP, modality="text", workers=0))
    flags = ["--levels", "2", "--codebook-size", "3", "--latent-dim", "4", "--hidden", "8",
             "--epochs", "5", "--batch-size", "6", "--clusters", "2"]
    r = runner.invoke(app, ["quantize", str(text), "-o", str(tmp_path / "l.safetensors"), "--method",
                            "letter", "--collab", str(collab), *flags])
    assert r.exit_code == 0, r.output
    ids = read_header(tmp_path / "l.safetensors")
    assert ids["meta"]["method"] == "letter" and [i["kind"] for i in ids["inputs"]] == ["embeddings", "embeddings"]
    assert set(ids["meta"]["training"]["final_regularisers"]) == {"collaborative", "diversity"}
    assert ids["config"]["alpha"] == 0.02
    r = runner.invoke(app, ["quantize", str(text), "-o", str(tmp_path / "m.safetensors"), "--method",
                            "letter", *flags])
    assert r.exit_code == 1 and "--method letter needs --collab" in r.stderr
    assert not (tmp_path / "m.safetensors").exists()
