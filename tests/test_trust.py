"""Issue 16, trust: image paths confined to their folder, no hub for a run folder, the
recorded model hash checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TINY_CLIP, TINY_T5, items_csv, make_image, write
from mgr_cli.cli import app

runner = CliRunner()
TINY_EMBED = ["--clip-model", TINY_CLIP["clip_model"], "--clip-pretrained", "none", "--workers", "0"]


def mgr(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(r, match: str, *outputs: Path) -> str:
    """Exit 1, exactly one `Error:` line (matching `match`), no traceback, no `outputs`."""
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in r.output, r.output
    assert match in errors[0], errors[0]
    for out in outputs:
        assert not out.exists(), out
        assert not list(out.parent.glob(f".{out.name}.*")), out  # no temporary files either
    return errors[0]


# ------------------------------------------------------------------ image paths confined

@pytest.fixture
def with_images(generic_dir: Path) -> Path:
    """The generic dataset with an image for every item (img/<id>.png)."""
    write(generic_dir / "items.csv", items_csv("abcd", image=True))
    for c in "abcd":
        make_image(generic_dir / "img" / f"{c}.png")
    return generic_dir


def _image_of_a(d: Path, image: str) -> None:
    write(d / "items.csv", items_csv("abcd", image=True).replace("img/a.png", image))


OUTSIDE = "does not resolve inside the image folder"


@pytest.mark.parametrize("image", ["../elsewhere/secret.png", "/etc/hostname",
                                   "../../../../root/.bashrc", "img/link.png"])
def test_prepare_refuses_image_paths_outside_the_folder(tmp_path, with_images, image):
    secret = make_image(tmp_path / "elsewhere" / "secret.png")
    (with_images / "img" / "link.png").symlink_to(secret)
    _image_of_a(with_images, image)
    out = tmp_path / "d.jsonl"
    line = one_line_error(mgr("prepare", "generic", with_images, "-o", out, "--k-core", 3), OUTSIDE, out)
    assert line == (f"Error: image path {image!r} {OUTSIDE} {with_images}; fix the items file or "
                    "pass --allow-outside-images")


def test_the_refusal_does_not_tell_whether_the_outside_file_exists(tmp_path, with_images):
    _image_of_a(with_images, "../elsewhere/secret.png")
    args = ("prepare", "generic", with_images, "-o", tmp_path / "d.jsonl", "--k-core", 3)
    absent = mgr(*args)
    make_image(tmp_path / "elsewhere" / "secret.png")
    present = mgr(*args)
    assert absent.exit_code == present.exit_code == 1
    assert absent.stderr == present.stderr and OUTSIDE in present.stderr


def test_symlinks_inside_the_folder_are_fine(tmp_path, with_images):
    (with_images / "img" / "link.png").symlink_to(with_images / "img" / "b.png")
    _image_of_a(with_images, "img/sub/../link.png")
    r = mgr("prepare", "generic", with_images, "-o", tmp_path / "d.jsonl", "--k-core", 3)
    assert r.exit_code == 0, r.output


def test_outside_images_only_with_the_option_in_prepare_and_embed(tmp_path, with_images):
    make_image(tmp_path / "elsewhere" / "secret.png")
    _image_of_a(with_images, "../elsewhere/secret.png")
    ds = tmp_path / "d.jsonl"
    r = mgr("prepare", "generic", with_images, "-o", ds, "--k-core", 3, "--allow-outside-images")
    assert r.exit_code == 0, r.output
    emb = tmp_path / "img.safetensors"
    base = ("embed", ds, "-o", emb, "--modality", "image", *TINY_EMBED)
    one_line_error(mgr(*base), OUTSIDE, emb)
    r = mgr(*base, "--allow-outside-images")
    assert r.exit_code == 0, r.output


# ------------------------------------------------------------------ run folders: no hub, hashes

def test_importing_mgr_sets_the_hub_offline():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "MGR_ALLOW_DOWNLOAD")}
    r = subprocess.run([sys.executable, "-c", "import os, mgr_cli; print(os.environ.get('HF_HUB_OFFLINE'))"],
                       capture_output=True, text=True, env=env, check=True)
    assert r.stdout.strip() == "1"


TRAIN = ["--steps", 4, "--eval-every", 2, "--batch-size", 4, "--warmup", 1, "--eval-users", 6,
         "--device", "cpu", *TINY_T5]


@pytest.fixture
def tiny_run(tmp_path, tiny_tokenized) -> Path:
    run = tmp_path / "run"
    r = mgr("train", tiny_tokenized, "-o", run, *TRAIN)
    assert r.exit_code == 0, r.output
    return run


def test_a_changed_model_fails_verify_and_evaluate(tmp_path, tiny_run, tiny_tokenized):
    assert mgr("inspect", tiny_run / "run.jsonl", "--verify").exit_code == 0
    model = tiny_run / "model" / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit in the tensor data
    model.write_bytes(bytes(data))
    changed = "the model was changed or damaged; restore it or train again"
    one_line_error(mgr("inspect", tiny_run / "run.jsonl", "--verify"), changed)
    ev = tmp_path / "ev"
    one_line_error(mgr("evaluate", tiny_run, tiny_tokenized, "-o", ev), changed, ev / "metrics.jsonl")
    assert not ev.exists()


def test_a_run_without_model_is_an_error_not_a_download(tmp_path, tiny_run, tiny_tokenized):
    (tiny_run / "model").rename(tmp_path / "elsewhere")
    ev = tmp_path / "ev"
    line = one_line_error(mgr("evaluate", tiny_run, tiny_tokenized, "-o", ev), "no model")
    assert line == f"Error: {tiny_run / 'model'}: no model in this run folder; train it with mgr train"
    one_line_error(mgr("inspect", tiny_run / "run.jsonl", "--verify"), "no model in this run folder")
    assert not ev.exists()


def test_the_run_model_loads_local_files_only(tmp_path, tiny_run, tiny_tokenized, monkeypatch):
    from transformers import T5ForConditionalGeneration

    seen = {}

    def fake(cls, path, **kwargs):
        seen.update(kwargs, path=path)
        raise OSError("stop here\nsecond line")

    monkeypatch.setattr(T5ForConditionalGeneration, "from_pretrained", classmethod(fake))
    r = mgr("evaluate", tiny_run, tiny_tokenized, "-o", tmp_path / "ev")
    one_line_error(r, "model: not a loadable model (stop here); train it again with mgr train")
    assert seen["local_files_only"] is True and seen["path"] == tiny_run / "model"


def test_a_damaged_model_config_is_one_line(tmp_path, tiny_run, tiny_tokenized):
    (tiny_run / "model" / "config.json").write_text("{not json")
    ev = tmp_path / "ev"
    one_line_error(mgr("evaluate", tiny_run, tiny_tokenized, "-o", ev), "not a loadable model")
    assert not ev.exists()
