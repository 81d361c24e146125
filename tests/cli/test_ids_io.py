"""mgr ids import / export: LC-Rec JSON and CSV round trip, imported IDs tokenize, and
each mistake is one exact line with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mgr_cli.cli import app
from mgr_cli.quantize import load_ids, save_ids, view_path

runner = CliRunner()
ITEMS = list("abcdef")  # the tiny dataset's item order
CODES = [[0, 1], [1, 0], [2, 2], [0, 0], [1, 1], [2, 0]]


def mgr(*args):
    return runner.invoke(app, [str(a) for a in args])


def imp(src, dataset, out, *extra, modality="text"):
    return mgr("ids", "import", src, "--dataset", dataset, "--modality", modality, "-o", out, *extra)


def test_csv_import_in_any_order_then_json_and_csv_round_trip(tiny_dataset, tmp_path):
    order = [4, 2, 0, 5, 3, 1]
    (tmp_path / "c.csv").write_text("item_id,c0,c1\n" + "".join(
        f"{ITEMS[k]},{CODES[k][0]},{CODES[k][1]}\n" for k in order))
    out = tmp_path / "c.ids.safetensors"
    r = imp(tmp_path / "c.csv", tiny_dataset, out, "--codebook-sizes", "3,4", "--json")
    assert r.exit_code == 0, r.output
    codes, h = load_ids(out)
    assert codes.tolist() == CODES  # no collisions: no uniqueness level under --dedup auto
    m = json.loads(r.stdout)
    assert m["codebook_sizes"] == [3, 4] and m["method"] == "import" and m["dedup_level"] is False
    assert view_path(out).exists() and [i["kind"] for i in h["inputs"]] == ["dataset"]
    for suffix in (".json", ".csv"):
        r = mgr("ids", "export", out, "-o", tmp_path / f"x{suffix}")
        assert r.exit_code == 0, r.output
        r = imp(tmp_path / f"x{suffix}", tiny_dataset, tmp_path / f"back{suffix}.st")
        assert r.exit_code == 0, r.output
        np.testing.assert_array_equal(load_ids(tmp_path / f"back{suffix}.st")[0], codes)
    assert json.loads((tmp_path / "x.json").read_text())["2"] == ["<a_2>", "<b_2>"]
    assert (tmp_path / "x.csv").read_text().splitlines()[:2] == ["item_id,c0,c1", "a,0,1"]
    r = mgr("tokenize", tiny_dataset, tmp_path / "back.csv.st", "-o", tmp_path / "t.st", "--layout", "tiger")
    assert r.exit_code == 0, r.output


def test_collisions_get_a_uniqueness_level_unless_never(tiny_dataset, tmp_path):
    (tmp_path / "c.csv").write_text("".join(f"{i},0\n" for i in ITEMS))
    assert imp(tmp_path / "c.csv", tiny_dataset, tmp_path / "a.st").exit_code == 0
    codes, h = load_ids(tmp_path / "a.st")
    assert codes[:, 1].tolist() == [0, 1, 2, 3, 4, 5] and h["meta"]["collision_rate_before"] == 1.0
    assert imp(tmp_path / "c.csv", tiny_dataset, tmp_path / "b.st", "--dedup", "never").exit_code == 0
    assert load_ids(tmp_path / "b.st")[0].shape == (6, 1)


def _rows(rows):
    return "".join(",".join(map(str, r)) + "\n" for r in rows)


GOOD = [[i, *c] for i, c in zip(ITEMS, CODES)]
CASES = [
    ("dup.csv", _rows(GOOD + [["a", 0, 0]]), [],
     "{p}: item 'a' appears twice (line 1 and line 7); keep one row per item"),
    ("extra.csv", _rows(GOOD + [["zz", 0, 0]]), [],
     "{p}: 1 item ids are not in the dataset (e.g. 'zz'); give the dataset they were made for, "
     "or pass --drop-extra to leave them out"),
    ("missing.csv", _rows(GOOD[:5]), [],
     "{p}: 1 of the dataset's 6 items have no ID (e.g. 'f'); give one for every item of the dataset"),
    ("ragged.csv", _rows(GOOD[:3] + [["d", 1]] + GOOD[4:]), [],
     "{p}:4: 2 columns, line 1 has 3; every row needs the same number of values"),
    ("float.csv", _rows(GOOD[:2] + [["c", 1.5, 0]] + GOOD[3:]), [],
     "{p}:3: column 2: '1.5' is not an integer code"),
    ("negative.csv", _rows(GOOD[:2] + [["c", -1, 0]] + GOOD[3:]), [],
     "{p}: 1 codes are out of range (e.g. item 'c', level 1: -1, not in 0..2)"),
    ("range.csv", _rows(GOOD), ["--codebook-sizes", "2,4"],
     "{p}: 2 codes are out of range (e.g. item 'c', level 1: 2, not in 0..1) (--codebook-sizes)"),
    ("levels.csv", _rows(GOOD), ["--codebook-sizes", "3"],
     "{p}: 1 codebook sizes for 2 levels; give one positive size per level (--codebook-sizes)"),
    ("dupkey.json", '{"0": ["<a_1>"], "0": ["<a_2>"]}', [],
     "{p}: key '0' appears twice; keep one entry per item"),
    ("dupindex.json", json.dumps({k: ["<a_1>"] for k in ("0", "00", "1", "2", "3", "4")}), [],
     "{p}: item index 0 appears twice; keep one entry per item"),
    ("lengths.json", json.dumps({str(k): ["<a_1>"] * (1 + (k == 3)) for k in range(6)}), [],
     "{p}: every entry must be a list of the same length (found lengths [1, 2])"),
    ("ids.txt", "a 1", [], "{p}: cannot import .txt; use LC-Rec JSON (.json) or CSV of item_id,c0,c1,... (.csv)"),
    ("sizes.csv", _rows(GOOD), ["--codebook-sizes", "3,x"],
     "--codebook-sizes must be positive integers, one per level (e.g. 256,256,256), got '3,x'"),
]


@pytest.mark.parametrize("name,text,flags,message", CASES, ids=[c[0] for c in CASES])
def test_each_mistake_is_one_line_and_writes_nothing(tiny_dataset, tmp_path, name, text, flags, message):
    p = tmp_path / name
    p.write_text(text)
    out = tmp_path / "out.ids.safetensors"
    r = imp(p, tiny_dataset, out, *flags)
    assert r.exit_code == 1
    assert r.stderr == f"Error: {message.format(p=p)}\n"
    assert not out.exists() and not view_path(out).exists()


def test_export_errors(tiny_dataset, tmp_path):
    (tmp_path / "c.csv").write_text(_rows(GOOD))
    assert imp(tmp_path / "c.csv", tiny_dataset, tmp_path / "a.st").exit_code == 0
    r = mgr("ids", "export", tmp_path / "a.st", "-o", tmp_path / "a.txt")
    assert r.stderr == (f"Error: {tmp_path / 'a.txt'}: cannot export to .txt; use LC-Rec JSON (.json) "
                        "or CSV of item_id,c0,c1,... (.csv)\n")
    (tmp_path / "a.json").write_text("keep")
    r = mgr("ids", "export", tmp_path / "a.st", "-o", tmp_path / "a.json")
    assert r.stderr == f"Error: {tmp_path / 'a.json'} already exists; pass --force to overwrite it\n"
    assert (tmp_path / "a.json").read_text() == "keep"
    r = mgr("ids", "export", tmp_path / "a.st")
    assert r.exit_code == 2 and "Missing option '--out'" in r.stderr


def test_save_ids_owns_the_header(tiny_dataset, tmp_path):
    from mgr_cli.artifacts import ArtifactError, Input, read_header

    dh = read_header(tiny_dataset)
    h = save_ids(tmp_path / "a.st", ITEMS, np.array(CODES), modality="image", method="mine",
                 codebook_sizes=[4, 4], inputs=[Input("dataset", tiny_dataset, dh)])
    m = h["meta"]
    assert (m["levels"], m["codebook_sizes"], m["n_items"], m["method"]) == (2, [4, 4], 6, "mine")
    assert m["item_ids_hash"] == dh["meta"]["item_ids_hash"] and m["level_stats"][0]["used"] == 3
    rows = [json.loads(line) for line in view_path(tmp_path / "a.st").read_text().splitlines()[1:]]
    assert rows[2] == {"item": 2, "id": "c", "codes": [2, 2], "tokens": ["<a_2>", "<b_2>"]}
    with pytest.raises(ArtifactError, match="codes have dtype float64; expected integers"):
        save_ids(tmp_path / "b.st", ITEMS, np.array(CODES, dtype=float), modality="text")
    with pytest.raises(ArtifactError, match=r"the item ids are not those of .* in its order"):
        save_ids(tmp_path / "b.st", ITEMS[::-1], np.array(CODES), modality="text",
                 inputs=[Input("dataset", tiny_dataset, dh)])
    with pytest.raises(ArtifactError, match="5 item ids for 6 rows of codes"):
        save_ids(tmp_path / "b.st", ITEMS[:5], np.array(CODES), modality="text")
    assert not (tmp_path / "b.st").exists() and not view_path(tmp_path / "b.st").exists()


def test_as_a_subprocess(tiny_dataset, tmp_path):
    import subprocess
    import sys

    (tmp_path / "c.csv").write_text(_rows(GOOD))
    cmd = [sys.executable, "-m", "mgr_cli", "ids", "import", str(tmp_path / "c.csv"), "--dataset",
           str(tiny_dataset), "--modality", "text", "-o", str(tmp_path / "a.st")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr == f"Error: {tmp_path / 'a.st'} already exists; pass --force to overwrite it\n"
