"""The semantic-ID stages through the command line: embed -> fuse -> quantize ->
analyze-ami, their one-line errors, and embed under torchrun with two CPU processes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from mgr_cli.cli import app
from mgr_cli.encoders.embed import load_embeddings
from mgr_cli.quantize.stage import load_ids

runner = CliRunner()
TINY = ["--clip-model", "mgr-tiny-clip", "--clip-pretrained", "none", "--workers", "0"]


def mgr(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_embed_quantize_ami(tiny_dataset, tmp_path):
    for m in ("text", "image", "fused"):
        if m == "fused":  # one tiny CLIP made both: auto is the mean of the two
            r = mgr("fuse", tmp_path / "text.st", tmp_path / "image.st", "-o", tmp_path / "fused.st")
        else:
            r = mgr("embed", tiny_dataset, "-o", tmp_path / f"{m}.st", "--modality", m, *TINY)
        assert r.exit_code == 0, r.output
        r = mgr("quantize", tmp_path / f"{m}.st", "-o", tmp_path / f"{m}.ids.st", "--method",
                "rkmeans", "--levels", 2, "--codebook-size", 3, "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["modality"] == m
    assert "collision rate" in r.stderr
    (t, _), (i, _), (f, fh) = (load_embeddings(tmp_path / f"{m}.st") for m in ("text", "image", "fused"))
    mean = (t + i) / 2
    np.testing.assert_allclose(f, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-6)
    assert fh["meta"]["fusion"] == "mean"
    r = mgr("fuse", tmp_path / "image.st", tmp_path / "image.st", "-o", tmp_path / "bad.st")
    assert r.stderr == f"Error: {tmp_path / 'image.st'}: holds image embeddings, expected text\n"
    r = mgr("analyze-ami", "--text", tmp_path / "text.ids.st", "--image", tmp_path / "image.ids.st",
            "--fused", tmp_path / "fused.ids.st", "--field", "category", "--sheet", tmp_path / "f4.png",
            "--pivot", "c")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [row["pair"] for row in out["rows"]][:3] == ["Img vs. Txt", "Img vs. Multimodal",
                                                        "Txt vs. Multimodal"]
    assert out["rows"][3]["pair"] == "text vs. category" and out["sheet"]["pivot"] == "c"
    from PIL import Image

    assert Image.open(tmp_path / "f4.png").size[0] > 500
    r = mgr("inspect", tmp_path / "text.ids.st", "--verify")
    assert r.exit_code == 0, r.output
    lineage = [line.strip().split(":")[0] for line in r.stdout.split("lineage:")[1].splitlines() if line.strip()]
    assert lineage[:3] == ["artifact", "embeddings", "dataset"]
    r = mgr("analyze-ami", tmp_path / "text.ids.st", tmp_path / "image.ids.st", "--format", "markdown")
    assert r.exit_code == 0 and r.stdout.startswith("**AMI of semantic IDs (first level)**")
    r = mgr("ids", "export", tmp_path / "text.ids.st", "-o", tmp_path / "t.json")
    assert r.exit_code == 0 and len(json.loads((tmp_path / "t.json").read_text())) == 6
    r = mgr("ids", "import", tmp_path / "t.json", "--dataset", tiny_dataset, "--modality",
            "text", "-o", tmp_path / "imported.st")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(load_ids(tmp_path / "imported.st")[0], load_ids(tmp_path / "text.ids.st")[0])


def test_one_line_errors(tiny_dataset, tmp_path):
    r = mgr("embed", tiny_dataset, "-o", tmp_path / "x.st", "--modality", "smell", *TINY)
    assert r.exit_code == 2 and "Invalid value for '--modality': 'smell' is not one of 'text', 'image'." in r.stderr
    r = mgr("quantize", tiny_dataset, "-o", tmp_path / "x.st")
    assert r.exit_code == 1
    assert r.stderr == f"Error: {tiny_dataset}: is a 'dataset' artifact, expected 'embeddings'\n"
    r = mgr("ids", "import", tmp_path / "none.json", "-o", tmp_path / "x.st")
    assert r.exit_code == 2 and "Missing option '--dataset'" in r.stderr
    r = mgr("quantize", "--import", tmp_path / "none.json", "-o", tmp_path / "x.st")
    assert r.exit_code == 2 and "No such option: --import" in r.stderr
    r = mgr("analyze-ami", tmp_path / "nothing.st")
    assert r.exit_code == 1 and r.stderr == f"Error: {tmp_path / 'nothing.st'}: no such file\n"


def test_analyze_ami_refuses_ids_of_different_datasets(tiny_dataset, generic_dir, tmp_path):
    from mgr_cli.data import PrepareConfig
    from mgr_cli.data.prepare import prepare

    other = tmp_path / "other.jsonl"
    prepare("generic", generic_dir, other, cfg=PrepareConfig(k_core=3))
    for name, ds in (("a", tiny_dataset), ("b", other)):
        mgr("embed", ds, "-o", tmp_path / f"{name}.st", *TINY)
        mgr("quantize", tmp_path / f"{name}.st", "-o", tmp_path / f"{name}.ids.st", "--method",
            "rkmeans", "--codebook-size", 2, "--levels", 1)
    r = mgr("analyze-ami", "--text", tmp_path / "a.ids.st", "--image", tmp_path / "b.ids.st")
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Error: {tmp_path / 'a.ids.st'} and {tmp_path / 'b.ids.st'} "
                               "disagree on item order (item_ids_hash")


def test_embed_under_torchrun_matches_one_process(tiny_dataset, tmp_path):
    one = tmp_path / "one.st"
    assert mgr("embed", tiny_dataset, "-o", one, "--modality", "image", *TINY).exit_code == 0
    two = tmp_path / "two.st"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", "-m", "mgr_cli", "embed", str(tiny_dataset), "-o",
                        str(two), "--modality", "image", "--device", "cpu", *TINY],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, _ = load_embeddings(one)
    b, hb = load_embeddings(two)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert hb["meta"]["world_size"] == 2
