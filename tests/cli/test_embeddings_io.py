"""mgr embeddings import / export: every format round trips, imported vectors quantize and
fuse, and each mistake is one exact line with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mgr_cli.cli import app
from mgr_cli.encoders import load_embeddings, save_embeddings
from mgr_cli.errors import MgrError

runner = CliRunner()
ITEMS = list("abcdef")  # the tiny dataset's item order


def mgr(*args):
    return runner.invoke(app, [str(a) for a in args])


def vectors(n=6, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def imp(src, dataset, out, *extra, modality="text"):
    return mgr("embeddings", "import", src, "--dataset", dataset, "--modality", modality,
               "-o", out, *extra)


def test_npy_with_ids_reordered_to_the_dataset_then_every_export_round_trips(tiny_dataset, tmp_path):
    x = vectors()
    order = [3, 0, 5, 1, 4, 2]  # the file lists the items shuffled
    np.save(tmp_path / "v.npy", x[order])
    (tmp_path / "ids.txt").write_text("\n".join(ITEMS[k] for k in order) + "\n")
    out = tmp_path / "e.st"
    r = imp(tmp_path / "v.npy", tiny_dataset, out, "--ids", tmp_path / "ids.txt")
    assert r.exit_code == 0, r.output
    got, h = load_embeddings(out)
    np.testing.assert_array_equal(got, x)  # back in the dataset's order
    assert h["meta"]["modality"] == "text" and h["meta"]["reordered"] is True
    assert [i["kind"] for i in h["inputs"]] == ["dataset"] and len(h["sources"]) == 2
    for suffix in (".npz", ".csv", ".safetensors", ".npy"):
        plain = tmp_path / f"plain{suffix}"
        r = mgr("embeddings", "export", out, "-o", plain)
        assert r.exit_code == 0, r.output
        back = tmp_path / f"back{suffix}.st"
        ids = ["--ids", tmp_path / "plain.ids.txt"] if suffix == ".npy" else []
        r = imp(plain, tiny_dataset, back, *ids)
        assert r.exit_code == 0, (suffix, r.output)
        np.testing.assert_array_equal(load_embeddings(back)[0], x)
    assert (tmp_path / "plain.ids.txt").read_text() == "a\nb\nc\nd\ne\nf\n"
    assert (tmp_path / "plain.csv").read_text().splitlines()[0] == "item_id,v0,v1,v2,v3"


def test_ids_from_a_csv_column_and_extra_rows_dropped(tiny_dataset, tmp_path):
    x = vectors(7)
    np.save(tmp_path / "v.npy", x)
    (tmp_path / "ids.csv").write_text("asin,title\n" + "".join(f"{i},t\n" for i in "abcdefz"))
    r = imp(tmp_path / "v.npy", tiny_dataset, tmp_path / "e.st", "--ids", tmp_path / "ids.csv",
            "--ids-column", "asin")
    assert r.exit_code == 1
    assert r.stderr == (f"Error: {tmp_path / 'v.npy'}: 1 item ids are not in the dataset (e.g. 'z'); "
                        "give the dataset they were made for, or pass --drop-extra to leave them out\n")
    r = imp(tmp_path / "v.npy", tiny_dataset, tmp_path / "e.st", "--ids", tmp_path / "ids.csv",
            "--ids-column", "asin", "--drop-extra")
    assert r.exit_code == 0, r.output
    got, h = load_embeddings(tmp_path / "e.st")
    np.testing.assert_array_equal(got, x[:6])
    assert h["meta"]["dropped_extra"] == 1


def test_imported_vectors_quantize_tokenize_and_fuse(tiny_dataset, tmp_path):
    for m, seed in (("text", 1), ("image", 2)):
        np.savez(tmp_path / f"{m}.npz", item_ids=np.array(ITEMS), vectors=vectors(d=8, seed=seed))
        assert imp(tmp_path / f"{m}.npz", tiny_dataset, tmp_path / f"{m}.st", modality=m).exit_code == 0
        r = mgr("quantize", tmp_path / f"{m}.st", "-o", tmp_path / f"{m}.ids.st", "--method",
                "rkmeans", "--levels", 2, "--codebook-size", 3)
        assert r.exit_code == 0, r.output
    r = mgr("tokenize", tiny_dataset, tmp_path / "text.ids.st", tmp_path / "image.ids.st",
            "-o", tmp_path / "tok.st", "--layout", "lfpp")
    assert r.exit_code == 0, r.output
    r = mgr("fuse", tmp_path / "text.st", tmp_path / "image.st", "-o", tmp_path / "fused.st")
    assert r.exit_code == 0, r.output
    fused, h = load_embeddings(tmp_path / "fused.st")
    assert fused.shape == (6, 16) and h["meta"]["fusion"] == "concat"


def _bad(tmp_path, name, content):
    p = tmp_path / name
    if isinstance(content, str):
        p.write_text(content)
    else:
        content(p)
    return p


CASES = [
    ("dup.csv", "a,1,2\nb,1,2\na,3,4\n",
     "{p}: item 'a' appears twice (line 1 and line 3); keep one row per item"),
    ("missing.csv", "a,1,2\nb,1,2\n",
     "{p}: 4 of the dataset's 6 items have no vector (e.g. 'c'); give one for every item of the dataset"),
    ("ragged.csv", "item_id,v0,v1\na,1,2\nb,1\n",
     "{p}:3: 2 columns, line 2 has 3; every row needs the same number of values"),
    ("word.csv", "item_id,v0,v1\na,1,2\nb,1,x\n",
     "{p}:3: column 3: 'x' is not a number"),
    ("nan.csv", "".join(f"{i},1,{'nan' if i == 'c' else 2}\n" for i in ITEMS),
     "{p}: 1 vectors hold NaN or inf (e.g. item 'c', line 3: NaN); fix or drop them"),
    ("int.npz", lambda p: np.savez(p, item_ids=np.array(ITEMS), vectors=np.ones((6, 2), dtype=np.int64)),
     "{p}: vectors have dtype int64; expected floating point (float16, float32 or float64): "
     "convert them with .astype('float32')"),
    ("pickled.npz", lambda p: np.savez(p, item_ids=np.array(ITEMS, dtype=object), vectors=np.ones((6, 2))),
     "{p}: array 'item_ids' holds Python objects (pickled), which mgr never loads; save plain float and string arrays"),
    ("noids.npy", lambda p: np.save(p, np.ones((6, 2))),
     "{p}: holds no item ids; give them with --ids FILE (one per line, or a CSV column named by --ids-column)"),
    ("v.parquet", "x",
     "{p}: reading Parquet needs pyarrow, which is not installed; save the vectors as .npz, .safetensors or CSV instead"),
    ("v.txt", "x", "{p}: cannot import .txt; use .npy, .npz, .safetensors, .csv"),
]


@pytest.mark.parametrize("name,content,message", CASES, ids=[c[0] for c in CASES])
def test_each_mistake_is_one_line_and_writes_nothing(tiny_dataset, tmp_path, name, content, message):
    p = _bad(tmp_path, name, content)
    out = tmp_path / "out.st"
    r = imp(p, tiny_dataset, out)
    assert r.exit_code == 1
    assert r.stderr == f"Error: {message.format(p=p)}\n"
    assert not out.exists() and not [f for f in tmp_path.iterdir() if f.name.startswith(".out")]


def test_usage_errors(tiny_dataset, tmp_path):
    np.save(tmp_path / "v.npy", vectors())
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    r = imp(tmp_path / "v.npy", tiny_dataset, tmp_path / "o.st", "--ids", tmp_path / "ids.txt")
    assert r.stderr == (f"Error: {tmp_path / 'v.npy'}: 6 vectors but 3 item ids in "
                        f"{tmp_path / 'ids.txt'}; give one id per row\n")
    r = imp(tmp_path / "v.npy", tiny_dataset, tmp_path / "o.st", modality="smell")
    assert r.exit_code == 2 and "Invalid value for '--modality': 'smell' is not one of" in r.stderr
    r = mgr("embeddings", "import", tmp_path / "v.npy", "-o", tmp_path / "o.st", "--modality", "text")
    assert r.exit_code == 2 and "Missing option '--dataset'" in r.stderr
    r = mgr("embeddings", "export", tiny_dataset, "-o", tmp_path / "x.npz")
    assert r.stderr == f"Error: {tiny_dataset}: is a 'dataset' artifact, expected 'embeddings'\n"
    assert not (tmp_path / "o.st").exists() and not (tmp_path / "x.npz").exists()


def test_export_refuses_an_existing_output_and_a_foreign_dataset(tiny_dataset, generic_dir, tmp_path):
    from mgr_cli.data import PrepareConfig
    from mgr_cli.data.prepare import prepare

    np.savez(tmp_path / "v.npz", item_ids=np.array(ITEMS), vectors=vectors())
    assert imp(tmp_path / "v.npz", tiny_dataset, tmp_path / "e.st").exit_code == 0
    (tmp_path / "x.ids.txt").write_text("keep me")
    r = mgr("embeddings", "export", tmp_path / "e.st", "-o", tmp_path / "x.npy")
    assert r.stderr == f"Error: {tmp_path / 'x.ids.txt'} already exists; pass --force to overwrite it\n"
    assert not (tmp_path / "x.npy").exists() and (tmp_path / "x.ids.txt").read_text() == "keep me"
    other = tmp_path / "other.jsonl"
    prepare("generic", generic_dir, other, cfg=PrepareConfig(k_core=3))
    r = mgr("embeddings", "export", tmp_path / "e.st", "-o", tmp_path / "y.csv", "--dataset", other)
    assert r.stderr == (f"Error: {tmp_path / 'e.st'} and {other} disagree on item order (item_ids_hash); "
                        "give the dataset it was made from with --dataset\n")


def test_save_embeddings_owns_the_header(tiny_dataset, tmp_path):
    from mgr_cli.artifacts import ArtifactError, Input, read_header

    dh = read_header(tiny_dataset)
    ds_in = [Input("dataset", tiny_dataset, dh)]
    h = save_embeddings(tmp_path / "a.st", ITEMS, vectors(), modality="text", inputs=ds_in,
                        meta={"note": "mine"})
    m = h["meta"]
    assert (m["n_items"], m["dim"], m["dataset"], m["note"]) == (6, 4, dh["meta"]["name"], "mine")
    assert m["item_ids_hash"] == dh["meta"]["item_ids_hash"] and m["normalized"] is False
    with pytest.raises(ArtifactError, match=r"the item ids are not those of .* \(dataset\), in its order"):
        save_embeddings(tmp_path / "b.st", ITEMS[::-1], vectors(), modality="text", inputs=ds_in)
    with pytest.raises(ArtifactError, match="meta may not set dim"):
        save_embeddings(tmp_path / "b.st", ITEMS, vectors(), modality="text", meta={"dim": 3})
    with pytest.raises(ArtifactError, match=r"item id 'a' appears more than once"):
        save_embeddings(tmp_path / "b.st", ["a"] * 6, vectors(), modality="text")
    with pytest.raises(MgrError, match=r"1 vectors hold NaN or inf \(e\.g\. item 'b'\)"):
        save_embeddings(tmp_path / "b.st", ITEMS, np.where(np.arange(6)[:, None] == 1, np.inf, vectors()),
                        modality="text")
    assert not (tmp_path / "b.st").exists()
    x = vectors()
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert save_embeddings(tmp_path / "u.st", ITEMS, x, modality="image")["meta"]["normalized"] is True
    assert json.loads(json.dumps(load_embeddings(tmp_path / "u.st")[1]["meta"]))["modality"] == "image"
