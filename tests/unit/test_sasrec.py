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
from mgr_cli.evaluation.metrics import Mean, user_metrics
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


# ---- the trainer skeleton under SASRec: resume, option checks, atomic write-out

def sas_cfg(**kw):
    from mgr_cli.training.sasrec import SASRecTrainConfig

    base = dict(epochs=6, eval_every=3, batch_size=4, device="cpu",
                model=SASRecConfig(hidden=16, heads=2, layers=1))
    return SASRecTrainConfig(**{**base, **kw})


def _same_runs(a, b):
    for name in ("model.safetensors", "checkpoint/model.safetensors", "checkpoint/state.safetensors"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    _, la = read_jsonl(a / "run.jsonl", "run")
    _, lb = read_jsonl(b / "run.jsonl", "run")
    assert [(r["step"], r["epoch"], r["train_loss"], r["ndcg@10"], r["mrr"]) for r in la] == \
           [(r["step"], r["epoch"], r["train_loss"], r["ndcg@10"], r["mrr"]) for r in lb]


@pytest.mark.parametrize("at", [3, 6, 7])
def test_sasrec_sigint_then_resume_equals_uninterrupted(tiny_dataset, tmp_path, monkeypatch, at):
    """6 users in batches of 4: 2 steps an epoch, validation after steps 6 and 12. Ctrl-C
    during step `at` stops after it; --resume ends byte-identical to one uninterrupted run."""
    import os
    import signal

    from mgr_cli.errors import MgrError
    from mgr_cli.training.sasrec import SASRecLoop, train_sasrec

    train_sasrec(tiny_dataset, tmp_path / "a", sas_cfg())
    real, calls = SASRecLoop.train_step, {"n": 0}

    def interrupting(self, net, state):
        calls["n"] += 1
        if calls["n"] == at:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, net, state)

    monkeypatch.setattr(SASRecLoop, "train_step", interrupting)
    with pytest.raises(MgrError, match=rf"^interrupted at step {at}; a resumable checkpoint is in "):
        train_sasrec(tiny_dataset, tmp_path / "b", sas_cfg())
    assert not (tmp_path / "b" / "run.jsonl").exists()
    monkeypatch.setattr(SASRecLoop, "train_step", real)
    h = train_sasrec(tiny_dataset, tmp_path / "b", sas_cfg(), resume=True)
    assert h["meta"]["steps"] == 12 and h["meta"]["epochs"] == 6
    _same_runs(tmp_path / "a", tmp_path / "b")


def test_sasrec_crash_then_resume_from_the_half_way_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    """A crash in epoch 4 loses nothing that the epoch-3 checkpoint holds: 3 epochs, then
    `mgr sasrec train --resume` for the other 3, equal 6 epochs in one go."""
    from mgr_cli.training.sasrec import SASRecLoop

    flags = [*FLAGS, "--dropout", "0.3"]
    assert runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(tmp_path / "a"),
                               *flags]).exit_code == 0
    real = SASRecLoop.train_step

    def crashing(self, net, state):
        if state["step"] == 7:
            raise RuntimeError("the machine went away")
        return real(self, net, state)

    monkeypatch.setattr(SASRecLoop, "train_step", crashing)
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(tmp_path / "b"), *flags])
    assert isinstance(r.exception, RuntimeError) and not (tmp_path / "b" / "run.jsonl").exists()
    monkeypatch.setattr(SASRecLoop, "train_step", real)
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(tmp_path / "b"), *flags])
    assert r.exit_code == 1 and "holds an unfinished run; pass --resume to continue it" in r.stderr
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(tmp_path / "b"), *flags,
                            "--resume"])
    assert r.exit_code == 0, r.output
    assert "resuming at step 6" in r.stderr
    _same_runs(tmp_path / "a", tmp_path / "b")


def test_sasrec_resume_refuses_changed_options(tiny_dataset, tmp_path):
    run = str(tmp_path / "run")
    assert runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", run, *FLAGS]).exit_code == 0
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", run, *FLAGS])
    assert r.exit_code == 1 and r.stderr == (f"Error: {run} already holds a finished run; pass --force "
                                             "to overwrite it or --resume to continue it\n")
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", run, *FLAGS, "--hidden", "32",
                            "--lr", "0.01", "--resume"])
    assert r.exit_code == 1 and r.stderr == (
        f"Error: {run}/checkpoint: --resume continues the run as it was configured; changed: "
        "--lr 0.001 -> 0.01, --hidden 16 -> 32 (start a new run in another folder, or --force "
        "to start this one over)\n")
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", run, *FLAGS, "--resume",
                            "--device", "auto"])  # the device may change
    assert r.exit_code == 0, r.output


def test_a_sasrec_checkpoint_is_not_resumed_by_the_t5_trainer(tiny_dataset, tiny_tokenized, tmp_path):
    from mgr_cli.errors import MgrError
    from mgr_cli.training.sasrec import train_sasrec
    from mgr_cli.training.trainer import TrainConfig, train

    train_sasrec(tiny_dataset, tmp_path / "run", sas_cfg(epochs=3))
    with pytest.raises(MgrError, match=r"checkpoint: a sasrec checkpoint, not a t5 one"):
        train(tiny_tokenized, tmp_path / "run", TrainConfig(device="cpu"), resume=True)


@pytest.mark.parametrize("flags, message", [
    (["--hidden", "0"], "--hidden must be at least 1"),
    (["--dropout", "1"], "--dropout must be at least 0 and below 1"),
    (["--dropout", "-0.1"], "--dropout must be at least 0 and below 1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--epochs", "0", "--heads", "3"], "--epochs must be at least 1; --heads must be at least 1 "
                                        "and divide --hidden"),
])
def test_sasrec_bad_options_fail_before_any_work(tiny_dataset, tmp_path, flags, message):
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(tmp_path / "run"),
                            *FLAGS, *flags])
    assert r.exit_code == 1 and r.stderr == f"Error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_sasrec_write_out_is_atomic(tiny_dataset, tmp_path, monkeypatch):
    """A failure while the best model or run.jsonl is written leaves the previous file
    whole (or none), never part of one; no temporary file is left behind."""
    import safetensors.torch

    run = tmp_path / "run"
    assert runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(run), *FLAGS]).exit_code == 0
    before = {name: (run / name).read_bytes() for name in ("model.safetensors", "run.jsonl")}
    real = safetensors.torch.save_file

    def half_then_fail(tensors, path, *a, **kw):
        real(tensors, path, *a, **kw)
        if not str(path).endswith("state.safetensors") and "checkpoint" not in str(path):
            data = open(path, "rb").read()
            open(path, "wb").write(data[: len(data) // 2])  # the disk filled up half way
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_fail)
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(run), *FLAGS, "--force",
                            "--seed", "1"])
    assert isinstance(r.exception, OSError)
    assert {name: (run / name).read_bytes() for name in before} == before
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    import mgr_cli.artifacts.core as core

    def fsync_fails(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(core.os, "fsync", fsync_fails)
    r = runner.invoke(app, ["sasrec", "train", str(tiny_dataset), "-o", str(run), *FLAGS, "--force",
                            "--seed", "1"])
    assert isinstance(r.exception, OSError)
    assert (run / "run.jsonl").read_bytes() == before["run.jsonl"]
    assert (run / "model.safetensors").read_bytes() != before["model.safetensors"]  # the new best, whole
    load_file(run / "model.safetensors")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint", "model.safetensors", "run.jsonl"]
    assert not [p for p in run.rglob(".*")]
