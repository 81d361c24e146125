"""Provenance tells the truth: a recorded command replays to the same artifact, and an
option set to 0 is recorded as 0, not dropped (which replays as the default)."""

from __future__ import annotations

import shlex

from typer.testing import CliRunner

from conftest import TINY_T5
from mgr_cli.artifacts import read_header
from mgr_cli.cli import app

runner = CliRunner()


def mgr(*args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


def recorded(path, kind) -> list[str]:
    return shlex.split(read_header(path, kind)["created_by"]["command"])


def test_a_recorded_command_replays_to_the_same_artifact(tiny_tokenized, tmp_path):
    from mgr_cli.tokens.stage import Tokenized

    tok = Tokenized.load(tiny_tokenized)
    dataset = tok.path.parent / "tiny.dataset.jsonl"
    mgr("popular", dataset, "-o", tmp_path / "a", "--top-k", 3, "--sample", 4, "--seed", 0)
    cmd = recorded(tmp_path / "a" / "metrics.jsonl", "metrics")
    assert cmd[:2] == ["mgr", "popular"] and "--seed" in cmd and cmd[cmd.index("--seed") + 1] == "0"
    cmd[cmd.index("--out") + 1] = str(tmp_path / "b")
    mgr(*cmd[1:])
    for name in ("metrics.jsonl", "predictions.jsonl"):
        a = read_header(tmp_path / "a" / name, None)["content_hash"]
        assert a == read_header(tmp_path / "b" / name, None)["content_hash"]


def test_options_set_to_zero_are_recorded(tiny_tokenized, tmp_path):
    mgr("train", tiny_tokenized, "-o", tmp_path / "r", "--steps", 2, "--eval-every", 2,
        "--eval-users", 2, "--batch-size", 4, "--device", "cpu", "--warmup", 0, "--dropout", 0,
        "--weight-decay", 0, *TINY_T5)
    cmd = recorded(tmp_path / "r" / "run.jsonl", "run")
    for flag in ("--warmup", "--dropout", "--weight-decay"):
        assert float(cmd[cmd.index(flag) + 1]) == 0, flag


def test_a_subcommand_group_is_recorded_whole(tiny_dataset, tmp_path):
    mgr("sasrec", "train", tiny_dataset, "-o", tmp_path / "s", "--epochs", 1, "--eval-every", 1,
        "--hidden", 8, "--heads", 1, "--layers", 1, "--device", "cpu")
    cmd = recorded(tmp_path / "s" / "run.jsonl", "run")
    assert cmd[:3] == ["mgr", "sasrec", "train"]


def test_prepare_records_the_source_as_given(generic_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(generic_dir.parent)
    mgr("prepare", "generic", generic_dir.name, "-o", tmp_path / "d.jsonl", "--k-core", 3)
    config = read_header(tmp_path / "d.jsonl", "dataset")["config"]
    assert config["source"] == generic_dir.name


def test_embed_records_only_the_options_that_ran(tiny_dataset, tmp_path):
    mgr("embed", tiny_dataset, "-o", tmp_path / "t.st", "--modality", "text",
        "--clip-model", "mgr-tiny-clip", "--clip-pretrained", "none")
    cmd = recorded(tmp_path / "t.st", "embeddings")
    assert "--clip-model" in cmd and "--image-model" not in cmd and "--fusion" not in cmd
    assert "--workers" not in cmd and "--pooling" not in cmd


def test_embed_with_stand_ins_is_not_made_by_clip():
    from mgr_cli.cli.embed import _not_used

    skip = _not_used("image", None, "standin:efficientnet-lite0")
    assert {"clip_model", "clip_pretrained", "text_model", "pooling"} <= skip
    assert "image_model" not in skip and "image_weights" not in skip
    skip = _not_used("text", "standin:minilm", None)
    assert {"clip_model", "clip_pretrained", "image_model", "workers"} <= skip
    assert {"text_model", "pooling"} & skip == set()
