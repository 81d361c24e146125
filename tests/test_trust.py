"""Issue 16, trust: image paths confined to their folder, no hub for a run folder, the
recorded model hash checked, headers covered by the content hash, evaluate checks lineage,
one winner of two writers, and bad input stopped up front with one line and nothing
written."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TINY_CLIP, TINY_T5, interactions_csv, items_csv, make_image, write
from mgr_cli import __version__
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


# ------------------------------------------------------------------ artifacts edited by hand

def edit_header(path: Path, edit) -> None:
    """Change an artifact's header in place with `edit(header)`, keeping its payload."""
    if path.suffix == ".jsonl":
        first, rest = path.read_bytes().split(b"\n", 1)
        h = json.loads(first)
        edit(h["mgr_artifact"])
        path.write_bytes(json.dumps(h).encode() + b"\n" + rest)
        return

    def in_metadata(index: dict) -> None:
        h = json.loads(index["__metadata__"]["mgr_artifact"])
        edit(h)
        index["__metadata__"]["mgr_artifact"] = json.dumps(h)

    edit_index(path, in_metadata)


def edit_index(path: Path, edit) -> None:
    """Change a safetensors file's JSON index in place with `edit(index)`."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    index = json.loads(data[8:8 + n])
    edit(index)
    head = json.dumps(index).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + data[8 + n:])


# ------------------------------------------------------------------ headers are hashed too

def _max_history(h: dict, n: int) -> None:
    """The header as if the artifact had been made with --max-history n."""
    h["config"]["max_history"] = n
    (h["meta"]["split"] if h["kind"] == "dataset" else h["meta"])["max_history"] = n


CORRUPTED = "corrupted: content hash"


def test_a_dataset_header_edit_fails_verify_and_tokenize(tmp_path, tiny_tokenized, tiny_dataset):
    assert mgr("inspect", tiny_dataset, "--verify").exit_code == 0
    edit_header(tiny_dataset, lambda h: _max_history(h, 2))  # was 20: histories cut to 2
    assert mgr("inspect", tiny_dataset).exit_code == 0  # still readable, not verified
    one_line_error(mgr("inspect", tiny_dataset, "--verify"), CORRUPTED)
    out = tmp_path / "again.tok.safetensors"
    ids = [tmp_path / "text.ids.safetensors", tmp_path / "image.ids.safetensors"]
    line = one_line_error(mgr("tokenize", tiny_dataset, *ids, "-o", out, "--layout", "lfpp"),
                          CORRUPTED, out)
    assert line.startswith(f"Error: {tiny_dataset}: corrupted") and line.endswith(
        "(its data or header was changed); re-create it")


def test_a_tokenized_header_edit_fails_verify_and_evaluate(tmp_path, tiny_run, tiny_tokenized):
    edit_header(tiny_tokenized, lambda h: _max_history(h, 2))
    one_line_error(mgr("inspect", tiny_tokenized, "--verify"), CORRUPTED)
    one_line_error(mgr("inspect", tiny_run / "run.jsonl", "--verify"), CORRUPTED)  # its parent
    ev = tmp_path / "ev"
    one_line_error(mgr("evaluate", tiny_run, tiny_tokenized, "-o", ev), CORRUPTED)
    assert not ev.exists()


def test_descriptive_fields_are_not_hashed(tiny_dataset):
    def edit(h):
        h["created_by"] |= {"command": "mgr prepare elsewhere", "time": "2020-01-01T00:00:00+00:00",
                            "mgr_version": "0.0.1", "python": "3.0"}
    edit_header(tiny_dataset, edit)
    assert mgr("inspect", tiny_dataset, "--verify").exit_code == 0


EDITS = {"config": lambda h: h["config"].update(layout="lf"),
         "meta": lambda h: h["meta"].update(n_items=5),
         "inputs": lambda h: h["inputs"].pop(),
         "sources": lambda h: h["sources"].append({"path": "x.csv", "bytes": 1, "sha256": "x"}),
         "n_records": lambda h: h.update(n_records=h["n_records"] - 1)}


@pytest.mark.parametrize("field", list(EDITS))
def test_every_meaningful_header_field_is_hashed(tiny_tokenized, field):
    edit_header(tiny_tokenized, EDITS[field])
    one_line_error(mgr("inspect", tiny_tokenized, "--verify"), CORRUPTED)


def test_an_artifact_of_the_old_schema_is_refused_with_one_line(tiny_dataset, tmp_path):
    edit_header(tiny_dataset, lambda h: h.update(schema_version=1))
    line = one_line_error(mgr("inspect", tiny_dataset), "schema version 1")
    assert line.endswith("was written by an older mgr (its content hash does not cover its "
                         f"header); re-create it with mgr {__version__}")


# ------------------------------------------------------------------ evaluate checks lineage

@pytest.fixture
def other_tokenized(tmp_path, tiny_dataset, tiny_tokenized) -> Path:
    """The same items, IDs and vocabulary as tiny_tokenized, other examples (2 items of history)."""
    from mgr_cli.tokens.stage import tokenize

    out = tmp_path / "other.tok.safetensors"
    tokenize(tiny_dataset, [tmp_path / "text.ids.safetensors", tmp_path / "image.ids.safetensors"],
             out, layout="lfpp", max_history=2)
    return out


def test_evaluate_refuses_a_run_trained_on_other_tokenized_data(tmp_path, tiny_run, tiny_tokenized,
                                                                 other_tokenized):
    from mgr_cli.artifacts import read_header

    ev = tmp_path / "ev"
    line = one_line_error(mgr("evaluate", tiny_run, other_tokenized, "-o", ev),
                          "evaluate with the tokenized data the model was trained on")
    trained, given = read_header(tiny_tokenized), read_header(other_tokenized)
    assert line == (f"Error: {tiny_run}: trained on {tiny_tokenized.resolve()} "
                    f"({trained['content_hash'][:19]}...), not on {other_tokenized} "
                    f"({given['content_hash'][:19]}...); evaluate with the tokenized data the "
                    "model was trained on")
    assert not ev.exists()
    assert mgr("evaluate", tiny_run, tiny_tokenized, "-o", ev).exit_code == 0


def test_evaluate_refuses_an_edited_run_header(tmp_path, tiny_run, other_tokenized):
    from mgr_cli.artifacts import read_header

    other = read_header(other_tokenized)["content_hash"]
    edit_header(tiny_run / "run.jsonl", lambda h: h["inputs"][0].update(content_hash=other))
    ev = tmp_path / "ev"
    one_line_error(mgr("evaluate", tiny_run, other_tokenized, "-o", ev), CORRUPTED)
    assert not ev.exists()


# ------------------------------------------------------------------ two writers, one winner

@pytest.mark.parametrize("links", [True, False], ids=["hard links", "no hard links"])
def test_two_writers_of_one_new_output_one_succeeds(tmp_path, monkeypatch, links):
    from mgr_cli.artifacts import ArtifactError, core, read_jsonl, write_jsonl

    out = tmp_path / "d.jsonl"
    both_written = threading.Barrier(2, timeout=20)
    fsync = os.fsync

    def fsync_then_wait(fd):  # both writers are past the exists-check, their files written
        fsync(fd)
        both_written.wait()

    def no_link(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(core.os, "fsync", fsync_then_wait)
    if not links:
        monkeypatch.setattr(core.os, "link", no_link)
    results = {}

    def writer(n: int) -> None:
        try:
            write_jsonl(out, "predictions", [{"writer": n}])
            results[n] = "ok"
        except ArtifactError as e:
            results[n] = str(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 2] and list(results.values()).count("ok") == 1, results
    winner = next(n for n, r in results.items() if r == "ok")
    assert results[3 - winner] == (f"{out} already exists (written meanwhile by another command); "
                                   "pass --force to overwrite it")
    assert read_jsonl(out)[1] == [{"writer": winner}]
    assert [p.name for p in tmp_path.iterdir()] == ["d.jsonl"]  # no temporary files left


# ------------------------------------------------------------------ bad input, one line

@pytest.fixture
def tiny_embeddings(tmp_path, tiny_dataset) -> Path:
    out = tmp_path / "text.safetensors"
    assert mgr("embed", tiny_dataset, "-o", out, *TINY_EMBED).exit_code == 0
    return out


def _quantize(get, tmp, *flags):
    out = tmp / "ids.safetensors"
    return ["quantize", get("tiny_embeddings"), "-o", out, *flags], out


def _inter(tmp, data: bytes, name: str = "interactions.csv"):
    """The generic dataset with its interactions file replaced by `data` (raw bytes)."""
    d = tmp / "generic"
    (d / "interactions.csv").unlink()
    (d / name).write_bytes(data)
    out = tmp / "d.jsonl"
    return ["prepare", "generic", d, "-o", out, "--k-core", 3], out


GOOD = interactions_csv({"u1": list("abcd"), "u2": list("bcda"), "u3": list("cdab"), "u4": list("dabc")})


def _with_line(line: str, at: int = 3) -> bytes:
    lines = GOOD.splitlines()
    return ("\n".join(lines[:at - 1] + [line] + lines[at - 1:]) + "\n").encode()


CASES = {
    "quantize --batch-size -1": (lambda get, tmp: _quantize(get, tmp, "--batch-size", -1),
                                 "--batch-size must be at least 1 (or 0: automatic)"),
    "quantize --hidden 0": (lambda get, tmp: _quantize(get, tmp, "--hidden", "0"),
                            "--hidden sizes must be at least 1"),
    "quantize --hidden 8,-2": (lambda get, tmp: _quantize(get, tmp, "--hidden", "8,-2"),
                               "--hidden sizes must be at least 1"),
    "quantize --epochs 0": (lambda get, tmp: _quantize(get, tmp, "--epochs", 0), "--epochs must be at least 1"),
    "quantize --lr nan": (lambda get, tmp: _quantize(get, tmp, "--lr", "nan"), "--lr must be a positive number"),
    "sasrec train --epochs 0": (
        lambda get, tmp: (["sasrec", "train", get("tiny_dataset"), "-o", tmp / "sr", "--epochs", 0],
                          tmp / "sr" / "run.jsonl"), "--epochs must be at least 1"),
    "sasrec train --heads 3": (
        lambda get, tmp: (["sasrec", "train", get("tiny_dataset"), "-o", tmp / "sr", "--hidden", 16,
                           "--heads", 3], tmp / "sr" / "run.jsonl"),
        "--heads must be at least 1 and divide --hidden"),
    "sasrec train --dropout 1.5": (
        lambda get, tmp: (["sasrec", "train", get("tiny_dataset"), "-o", tmp / "sr", "--dropout", 1.5],
                          tmp / "sr" / "run.jsonl"), "--dropout must be at least 0 and below 1"),
    "evaluate --batch-size -4": (
        lambda get, tmp: (["evaluate", get("tiny_run"), get("tiny_tokenized"), "-o", tmp / "ev",
                           "--batch-size", -4], tmp / "ev" / "metrics.jsonl"),
        "--batch-size must be at least 1, got -4"),
    "non-UTF-8 bytes": (lambda get, tmp: _inter(tmp, _with_line("u9,a,1").replace(b"u9", b"u\xff")),
                        "interactions.csv:3: not valid utf-8 text; re-save the file as utf-8"),
    "NaN timestamp": (lambda get, tmp: _inter(tmp, _with_line("u1,a,nan")),
                      "interactions.csv:3: timestamp 'nan' is not a finite number"),
    "inf timestamp": (lambda get, tmp: _inter(tmp, _with_line("u1,a,-inf", at=5)),
                      "interactions.csv:5: timestamp '-inf' is not a finite number"),
    "plain file named .gz": (lambda get, tmp: _inter(tmp, GOOD.encode(), "interactions.csv.gz"),
                             "interactions.csv.gz: damaged or not gzip-compressed"),
    "truncated gzip": (lambda get, tmp: _inter(tmp, gzip.compress(GOOD.encode() + GOOD.partition("\n")[2].encode() * 50)[:-30],
                                               "interactions.csv.gz"),
                       "interactions.csv.gz: damaged or not gzip-compressed"),
    "safetensors header of 2^62 bytes": (lambda get, tmp: (["inspect", _huge_header(tmp)], tmp / "none"),
                                         "not a safetensors file, or its header is truncated"),
    "prepare output under a file": (
        lambda get, tmp: (["prepare", "generic", tmp / "generic", "-o", _file(tmp) / "d.jsonl",
                           "--k-core", 3], tmp / "f" / "d.jsonl"), "f is a file, not a folder"),
    "sasrec run folder is a file": (
        lambda get, tmp: (["sasrec", "train", get("tiny_dataset"), "-o", _file(tmp), "--epochs", 1],
                          tmp / "f" / "run.jsonl"), "f is a file, not a folder"),
    # found by tests/test_fuzz_readers.py
    "JSON lines nested too deep": (
        lambda get, tmp: _inter(tmp, b'{"user_id": ' + b"[" * 100_000 + b"\n", "interactions.jsonl"),
        "interactions.jsonl:1: invalid JSON (maximum recursion depth exceeded"),
    "timestamp beyond the float range": (
        lambda get, tmp: _inter(tmp, b'{"user_id": "u1", "item_id": "a", "timestamp": 1%s}\n'
                                % (b"0" * 400), "interactions.jsonl"),
        "interactions.jsonl:1: timestamp 1000"),
    "artifact header not an object": (
        lambda get, tmp: _inspect(get("tiny_dataset"), lambda p: p.write_bytes(
            b'{"mgr_artifact": 5}\n' + p.read_bytes().split(b"\n", 1)[1])),
        "not an mgr artifact (format None)"),
    "artifact header nested too deep": (
        lambda get, tmp: _inspect(get("tiny_dataset"), lambda p: p.write_bytes(
            b'{"mgr_artifact": ' + b"[" * 100_000 + b"\n" + p.read_bytes().split(b"\n", 1)[1])),
        "dataset.jsonl: damaged header line (maximum recursion depth exceeded"),
    "artifact header without created_by": (
        lambda get, tmp: _inspect(get("tiny_dataset"),
                                  lambda p: edit_header(p, lambda h: h.pop("created_by"))),
        "damaged header (missing or malformed: created_by); re-create it"),
    "safetensors metadata without a header string": (
        lambda get, tmp: _inspect(get("tiny_tokenized"), lambda p: edit_index(
            p, lambda ix: ix.update(__metadata__={"mgr_artifact": 5}))),
        "a safetensors file without an mgr header"),
    "safetensors tensor offsets damaged": (
        lambda get, tmp: _inspect(get("tiny_tokenized"), lambda p: edit_index(
            p, lambda ix: ix["item_tokens"].update(data_offsets="x")), "--verify"),
        "damaged safetensors header (tensor offsets)"),
}


def _inspect(path: Path, damage, *flags) -> tuple[list, Path]:
    """`mgr inspect` of an artifact damaged by `damage(path)` (it writes nothing)."""
    damage(path)
    return ["inspect", path, *flags], path.parent / "none"


def _huge_header(tmp: Path) -> Path:
    path = tmp / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 2 ** 62) + b'{"a": 1}')
    return path


def _file(tmp: Path) -> Path:
    return write(tmp / "f", "a plain file")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(case, request, tmp_path, generic_dir):
    build, message = CASES[case]
    args, out = build(request.getfixturevalue, tmp_path)
    one_line_error(mgr(*args), message, out)


def test_a_utf8_bom_in_a_csv_header_is_dropped(tmp_path, generic_dir):
    for name in ("items.csv", "interactions.csv"):
        p = generic_dir / name
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    r = mgr("prepare", "generic", generic_dir, "-o", tmp_path / "d.jsonl", "--k-core", 3)
    assert r.exit_code == 0, r.output
