"""Registries and plugin files: examples/plugin_quantizer.py through every stage after
quantize, unknown choices (exit 2, listing what is registered), broken plugin files
(one line), a name registered twice, and $MGR_PLUGINS in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conftest import REPO, write
from mgr_cli.artifacts import read_header, read_jsonl
from mgr_cli.cli import app
from mgr_cli.errors import MgrError
from mgr_cli.quantize import METHODS, Method, register_method
from mgr_cli.quantize.stage import load_ids

runner = CliRunner()
PLUGIN = REPO / "examples" / "plugin_quantizer.py"
TINY = REPO / "configs" / "tiny.toml"


def mgr(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def flat(text: str) -> str:
    """typer's error box as one line."""
    return " ".join(text.replace("│", " ").split())


@pytest.fixture
def text_emb(tiny_dataset, tmp_path):
    out = tmp_path / "text.st"
    r = mgr("embed", tiny_dataset, "-o", out, "--modality", "text", "--config", TINY)
    assert r.exit_code == 0, r.output
    return out


def test_plugin_quantizer_through_tokenize_train_evaluate(text_emb, tiny_dataset, tmp_path):
    ids = tmp_path / "rp.ids.st"
    r = mgr("quantize", text_emb, "-o", ids, "--plugin", PLUGIN, "--method", "rp-signs",
            "--config", TINY, "--json")
    assert r.exit_code == 0, r.output
    h = read_header(ids, "semantic-ids")
    assert h["meta"]["method"] == "rp-signs" and json.loads(r.stdout)["method"] == "rp-signs"
    assert h["meta"]["method_plugin"] == str(PLUGIN.resolve())
    assert [s["path"] for s in h["sources"]] == [str(PLUGIN.resolve())]  # hashed with the IDs
    assert h["config"]["method"] == "rp-signs" and "latent_dim" not in h["config"]  # what it read
    assert "--plugin" in h["created_by"]["command"]
    assert h["meta"]["training"]["bits_per_level"] == 3  # codebook 8 (configs/tiny.toml)
    codes, _ = load_ids(ids)
    assert codes.shape == (6, 3) and codes[:, :2].max() < 8  # 2 levels + the uniqueness level
    assert h["meta"]["collision_rate_after"] == 0
    tok = tmp_path / "rp.tok.st"
    r = mgr("tokenize", tiny_dataset, ids, "-o", tok, "--layout", "tiger")
    assert r.exit_code == 0, r.output
    r = mgr("train", tok, "-o", tmp_path / "run", "--config", TINY, "--batch-size", 4)
    assert r.exit_code == 0, r.output
    r = mgr("evaluate", tmp_path / "run", tok, "-o", tmp_path / "eval", "--config", TINY)
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["users"] == 6 and 0 <= m["mrr"] <= 1
    assert 0 <= m["hits@1"] <= m["hits@5"] <= m["hits@10"] <= 1
    header, rows = read_jsonl(tmp_path / "eval" / "metrics.jsonl", "metrics")
    assert rows[0]["split"] == "test" and rows[0]["mrr"] == m["mrr"]
    assert header["meta"]["layout"] == "tiger"


def test_unknown_choice_exits_2_listing_the_registered_ones(tmp_path):
    r = mgr("quantize", tmp_path / "e.st", "-o", tmp_path / "x.st", "--plugin", PLUGIN,
            "--method", "nope")
    assert r.exit_code == 2
    assert ("Invalid value for '--method': 'nope' is not one of 'rqvae', 'letter', 'rkmeans', "
            "'hierarchical', 'rp-signs'.") in flat(r.output)
    r = mgr("tokenize", tmp_path / "d.jsonl", tmp_path / "i.st", "-o", tmp_path / "t.st",
            "--layout", "zigzag")
    assert r.exit_code == 2
    assert "Invalid value for '--layout': 'zigzag' is not one of 'tiger', 'ef', 'lf', 'lfpp'." in flat(r.output)
    r = mgr("prepare", "csv", tmp_path, "-o", tmp_path / "d.jsonl")
    assert r.exit_code == 2 and "Invalid value for 'FORMAT': 'csv' is not one of 'hm'," in flat(r.output)
    assert not (tmp_path / "x.st").exists()


def test_broken_plugin_files_are_one_line_errors(tmp_path):
    args = ["quantize", tmp_path / "e.st", "-o", tmp_path / "x.st", "--method", "rkmeans"]
    r = mgr(*args, "--plugin", tmp_path / "missing.py")
    assert r.exit_code == 1 and r.stderr == f"Error: plugin {tmp_path / 'missing.py'}: no such file\n"
    bad = write(tmp_path / "bad.py", "import numpy\nraise RuntimeError('no GPU here')\n")
    r = mgr(*args, "--plugin", bad)
    assert r.exit_code == 1
    assert r.stderr == f"Error: plugin {bad} failed to load: RuntimeError: no GPU here\n"
    twice = write(tmp_path / "twice.py", "from mgr_cli.quantize import Method, register_method\n"
                  "register_method(Method('rkmeans', 'mine', encode=print))\n")
    r = mgr(*args, "--plugin", twice)
    assert r.exit_code == 1
    assert r.stderr == (f"Error: plugin {twice}: quantize method 'rkmeans' is already "
                        "registered; pick another name\n")
    r = mgr(*args, env={"MGR_PLUGINS": str(tmp_path / "gone.py")})
    assert r.exit_code == 1 and r.stderr == f"Error: plugin {tmp_path / 'gone.py'}: no such file\n"


def test_registering_a_name_twice_and_a_bad_method(text_emb, tmp_path):
    with pytest.raises(MgrError, match="quantize method 'rqvae' is already registered"):
        register_method(Method("rqvae", "again", encode=print))
    from mgr_cli.quantize.stage import QuantizeConfig, quantize

    def wrong(x, cfg, log, collab=None):
        return x[:, :1].astype("int64") * 0 + 99, None, {}

    register_method(Method("test-out-of-range", "codes too big", encode=wrong))
    try:
        with pytest.raises(MgrError, match=r"method test-out-of-range returned codes of shape "
                                           r"\(6, 1\), expected \(6, 2\)"):
            quantize(text_emb, tmp_path / "x.st", QuantizeConfig(method="test-out-of-range",
                                                                 levels=2, codebook_size=4))
    finally:
        del METHODS["test-out-of-range"]
    assert not (tmp_path / "x.st").exists()


def test_mgr_plugins_env_in_a_subprocess(text_emb, tmp_path):
    env = {**os.environ, "MGR_PLUGINS": str(PLUGIN), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "mgr_cli", "quantize", str(text_emb), "-o",
                        str(tmp_path / "env.ids.st"), "--method", "rp-signs", "--levels", "2",
                        "--codebook-size", "4"], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert read_header(tmp_path / "env.ids.st")["meta"]["training"]["bits_per_level"] == 2
