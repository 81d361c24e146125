"""mgr items add: new items embedded with the recorded encoders, placed by the frozen
quantizers; old IDs unchanged; a run trained before can return the new items; errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import TINY_CLIP, TINY_T5, interactions_csv, make_image, write
from mgr_cli.cli import app

runner = CliRunner()
ITEMS = "abcdefgh"
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200),
           (90, 90, 90), (250, 250, 250), (10, 10, 10)]
TRAIN = ["--steps", 4, "--eval-every", 4, "--batch-size", 8, "--warmup", 1, "--eval-users", 4,
         "--eval-beams", 4, "--device", "cpu", *TINY_T5]


def mgr(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def said(r) -> str:
    return " ".join(r.stderr.split())


def text_of(c: str, k: int) -> str:
    return f"item {c} in colour {k}"


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    """8 items with text and images, 10 users; tiny-CLIP embeddings; text IDs by RQ-VAE,
    image IDs by residual k-means (2 levels of 4 codes + the uniqueness level); LF++ tokens
    and a tiny run trained on them."""
    from mgr_cli.data import PrepareConfig
    from mgr_cli.data.prepare import prepare
    from mgr_cli.encoders.embed import EmbedConfig, embed
    from mgr_cli.quantize.stage import QuantizeConfig, quantize
    from mgr_cli.tokens.stage import tokenize

    d = tmp_path_factory.mktemp("items")
    users = {f"u{k}": [ITEMS[(k + j) % 8] for j in range(3 + k % 6)] for k in range(10)}
    write(d / "raw" / "interactions.csv", interactions_csv(users))
    rows = ["item_id,text,image"]
    for k, c in enumerate(ITEMS):
        rows.append(f"{c},{text_of(c, k)},img/{c}.png")
        make_image(d / "raw" / "img" / f"{c}.png", COLOURS[k], size=(20 + k, 24))
    write(d / "raw" / "items.csv", "\n".join(rows) + "\n")
    prepare("generic", d / "raw", d / "ds.jsonl", cfg=PrepareConfig(k_core=3))
    for m in ("text", "image"):
        embed(d / "ds.jsonl", d / f"{m}.emb.safetensors",
              EmbedConfig(modality=m, batch_size=4, workers=0, **TINY_CLIP))
    quantize(d / "text.emb.safetensors", d / "text.ids.safetensors",
             QuantizeConfig(method="rqvae", levels=2, codebook_size=4, latent_dim=4, hidden=[8],
                            max_epochs=3))
    quantize(d / "image.emb.safetensors", d / "image.ids.safetensors",
             QuantizeConfig(method="rkmeans", levels=2, codebook_size=4))
    tokenize(d / "ds.jsonl", [d / "text.ids.safetensors", d / "image.ids.safetensors"],
             d / "tok.safetensors", layout="lfpp", max_history=3)
    r = mgr("train", d / "tok.safetensors", "-o", d / "run", *TRAIN)
    assert r.exit_code == 0, r.output
    make_image(d / "raw" / "img" / "n1.png", (120, 20, 220))
    # n1 is new; n2 and n3 copy items b and c (their codes, the next free last-level code);
    # n4 copies h, whose codes' group is the largest: its last-level code has no token
    new = [("n1", "a brand new thing", "img/n1.png"), ("n2", text_of("b", 1), "img/b.png"),
           ("n3", text_of("c", 2), "img/c.png"), ("n4", text_of("h", 7), "img/h.png")]
    write(d / "new.csv", "item_id,text,image\n" + "".join(f"{i},{t},{p}\n" for i, t, p in new))
    return d


@pytest.fixture(scope="module")
def grown(cat):
    r = mgr("items", "add", cat / "new.csv", "-o", cat / "grown", "--tokenized",
            cat / "tok.safetensors", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_old_items_keep_their_ids_exactly_and_new_items_get_ids(cat, grown):
    from mgr_cli.data import load_dataset
    from mgr_cli.encoders import load_embeddings
    from mgr_cli.quantize.stage import load_ids

    g = cat / "grown"
    old_ds, _ = load_dataset(cat / "ds.jsonl")
    ds, dh = load_dataset(g / "dataset.jsonl")
    assert [it.id for it in ds.items] == [it.id for it in old_ds.items] + ["n1", "n2", "n3", "n4"]
    assert ds.sequences == old_ds.sequences and ds.user_ids == old_ds.user_ids
    assert ds.items[-1].image == "img/h.png" and ds.image_root == old_ds.image_root
    assert dh["meta"]["added"]["items_added"] == 4
    for m in ("text", "image"):
        old, oh = load_ids(cat / f"{m}.ids.safetensors")
        ext, eh = load_ids(g / f"{m}.ids.safetensors")
        assert np.array_equal(ext[:8], old)  # exactly
        assert ext.shape == (12, 3) and ext[8:].tolist() == list(grown["modalities"][m]["new_ids"].values())
        assert ext[9].tolist() == [*old[1, :2], 1] and ext[10].tolist() == [*old[2, :2], 1]
        assert ext[11, :2].tolist() == old[7, :2].tolist()
        assert len(np.unique(ext, axis=0)) == 12  # the uniqueness level still makes IDs unique
        base = next(e for e in eh["inputs"] if e["role"] == "base")
        assert base["content_hash"] == oh["content_hash"] and eh["meta"]["added"]["items_added"] == 4
        x_old, _ = load_embeddings(cat / f"{m}.emb.safetensors")
        x_ext, xh = load_embeddings(g / f"{m}.emb.safetensors")
        assert np.array_equal(x_ext[:8], x_old) and x_ext.shape[0] == 12
        # the copies embed as their originals: the recorded encoder was rebuilt
        assert np.allclose(x_ext[9], x_old[1], atol=1e-5) and np.allclose(x_ext[11], x_old[7], atol=1e-5)
        assert xh["meta"]["encoders"] == load_embeddings(cat / f"{m}.emb.safetensors")[1]["meta"]["encoders"]


def test_the_frozen_quantizer_of_the_pipeline_reproduces_its_codes(cat):
    from mgr_cli.encoders import load_embeddings
    from mgr_cli.quantize.frozen import assign, load_quantizer

    for m in ("text", "image"):
        fz, codes, _ = load_quantizer(cat / f"{m}.ids.safetensors")
        x, _ = load_embeddings(cat / f"{m}.emb.safetensors")
        assert np.array_equal(assign(fz, x), codes[:, :2])


def test_reachability_and_recommend_returns_new_items(cat, grown):
    from mgr_cli.tokens.stage import Tokenized

    assert grown["reachable"] == 3 and grown["unreachable"] == ["n4"]
    tok = Tokenized.load(cat / "grown" / "tok.safetensors")
    base = Tokenized.load(cat / "tok.safetensors")
    assert tok.header["meta"]["vocab_fingerprint"] == base.header["meta"]["vocab_fingerprint"]
    assert np.array_equal(tok.items[:8], base.items) and tok.decodable.tolist() == [True] * 11 + [False]
    lines = "".join(json.dumps({"user": u, "history": ["a", "b", "n1"][: 1 + u % 3]}) + "\n"
                    for u in range(6))
    r = mgr("recommend", cat / "run", cat / "grown" / "tok.safetensors", "--top-k", 12,
            "--beams", 12, input=lines)
    assert r.exit_code == 0, r.output
    answers = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(answers) == 6
    for a in answers:  # every decodable item, and only those, can come back
        assert sorted(a["items"]) == sorted([*ITEMS, "n1", "n2", "n3"])
    r = mgr("recommend", cat / "run", cat / "tok.safetensors", "--top-k", 12, input="n1\n")
    assert r.exit_code == 1 and "unknown item id ('n1')" in said(r)  # the base knows no n1


def test_a_tokenized_artifact_that_does_not_extend_the_run_s_is_refused(cat, grown, tmp_path):
    from mgr_cli.tokens.stage import tokenize

    other = tmp_path / "other.tok.safetensors"
    g = cat / "grown"
    tokenize(g / "dataset.jsonl", [g / "text.ids.safetensors", g / "image.ids.safetensors"], other,
             layout="lfpp", max_history=3)
    r = mgr("recommend", cat / "run", other, input="a\n")
    assert r.exit_code == 1 and "vocabulary does not match" in said(r)  # the last level grew


def _fails(cat, tmp_path, *args, items=None):
    out = tmp_path / "out"
    r = mgr("items", "add", items or cat / "new.csv", "-o", out, *args)
    assert r.exit_code == 1, r.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    lines = r.stderr.strip().splitlines()  # progress lines, then one error line
    assert lines[-1].startswith("Error: ") and r.stderr.count("Error") == 1, r.stderr
    return said(r)


def test_errors_new_id_taken_and_modality_missing(cat, tmp_path):
    taken = write(tmp_path / "taken.csv", "item_id,text,image\nz,new,img/a.png\nc,old,img/c.png\n")
    msg = _fails(cat, tmp_path, "--tokenized", cat / "tok.safetensors", items=taken)
    assert "1 item id is already in the catalogue ('c'); new items need new ids" in msg
    no_image = write(tmp_path / "noimg.csv", "item_id,text\nz,a new thing\n")
    msg = _fails(cat, tmp_path, "--tokenized", cat / "tok.safetensors", items=no_image)
    assert "the new items have no images, but" in msg and "holds image embeddings; give them an image column" in msg
    outside = write(tmp_path / "out.csv", "item_id,text,image\nz,a,../../etc/passwd\n")
    msg = _fails(cat, tmp_path, "--ids", cat / "image.ids.safetensors", items=outside)
    assert "does not resolve inside the image folder" in msg
    text_only = _fails(cat, tmp_path, "--ids", cat / "text.ids.safetensors", "--tokenized",
                       cat / "tok.safetensors")
    assert "holds text, image IDs, got text" in text_only


def test_errors_encoder_mismatch(cat, tmp_path):
    from mgr_cli.artifacts import Input, Provenance
    from mgr_cli.data import load_dataset
    from mgr_cli.encoders import load_embeddings, save_embeddings
    from mgr_cli.quantize.stage import QuantizeConfig, quantize

    x, eh = load_embeddings(cat / "text.emb.safetensors")
    ds, dh = load_dataset(cat / "ds.jsonl")
    fake = tmp_path / "fake.emb.safetensors"  # says tiny CLIP made it; it did not
    save_embeddings(fake, [it.id for it in ds.items], np.random.default_rng(0).normal(size=x.shape),
                    modality="text", encoders=eh["meta"]["encoders"],
                    provenance=Provenance("test", eh["config"]), inputs=[Input("dataset", cat / "ds.jsonl", dh)])
    ids = tmp_path / "fake.ids.safetensors"
    quantize(fake, ids, QuantizeConfig(method="rkmeans", levels=2, codebook_size=4))
    msg = _fails(cat, tmp_path, "--ids", ids)
    assert "does not give their recorded vectors" in msg and "re-embed the catalogue" in msg
    msg = _fails(cat, tmp_path, "--ids", ids, "--emb", cat / "text.emb.safetensors")
    assert "was not quantized from" in msg and "give the embeddings the IDs were made from" in msg
    moved = tmp_path / "moved.emb.safetensors"
    other = {**eh["meta"]["encoders"], "text": {**eh["meta"]["encoders"]["text"], "model": "ViT-B-32"}}
    save_embeddings(moved, [it.id for it in ds.items], x, modality="text", encoders=other,
                    provenance=Provenance("test", eh["config"]), inputs=[Input("dataset", cat / "ds.jsonl", dh)])
    ids2 = tmp_path / "moved.ids.safetensors"
    quantize(moved, ids2, QuantizeConfig(method="rkmeans", levels=2, codebook_size=4))
    msg = _fails(cat, tmp_path, "--ids", ids2)
    assert "its text encoder (open_clip ViT-B-32) is not what its configuration builds here" in msg


def test_errors_no_stored_quantizer_and_hierarchical(cat, tmp_path):
    from mgr_cli.artifacts import Input, read_header
    from mgr_cli.data import load_dataset
    from mgr_cli.quantize.ids import save_ids
    from mgr_cli.quantize.stage import QuantizeConfig, load_ids, quantize

    codes, h = load_ids(cat / "text.ids.safetensors")
    old = tmp_path / "old.ids.safetensors"  # what mgr quantize wrote before it stored quantizers
    emb = cat / "text.emb.safetensors"
    ids = [it.id for it in load_dataset(cat / "ds.jsonl")[0].items]
    save_ids(old, ids, codes[:, :2], modality="text", method="rqvae", codebook_sizes=[4, 4],
             dedup="always", inputs=[Input("embeddings", emb, read_header(emb))])
    msg = _fails(cat, tmp_path, "--ids", old)
    assert "stores no quantizer (made by an older mgr, or by method 'rqvae'); re-run mgr quantize" in msg
    hc = tmp_path / "hc.ids.safetensors"
    quantize(emb, hc, QuantizeConfig(method="hierarchical", levels=2, codebook_size=4))
    assert "hierarchical IDs cannot place new items" in _fails(cat, tmp_path, "--ids", hc)


def test_force_replaces_the_folder_and_a_second_addition_extends_the_first(cat, grown, tmp_path):
    from mgr_cli.quantize.stage import load_ids

    out = tmp_path / "again"
    more = write(tmp_path / "more.csv", "item_id,text,image\nm1,another one,img/n1.png\n")
    shutil.copytree(cat / "grown", out)
    r = mgr("items", "add", more, "-o", out, "--tokenized", cat / "grown" / "tok.safetensors")
    assert r.exit_code == 1 and "already exists; pass --force" in said(r)
    r = mgr("items", "add", more, "-o", out, "--tokenized", cat / "grown" / "tok.safetensors", "--force")
    assert r.exit_code == 0, r.output
    ext, _ = load_ids(out / "image.ids.safetensors")
    assert np.array_equal(ext[:12], load_ids(cat / "grown" / "image.ids.safetensors")[0])
    assert ext[12].tolist() == ext[8].tolist()[:2] + [1]  # the same image as n1: the next code
    r = mgr("recommend", cat / "run", out / "tok.safetensors", "--top-k", 3, input="a m1\n")
    assert r.exit_code == 0, r.output  # the run accepts an extension of an extension


def test_as_a_subprocess_the_error_is_one_line_on_stderr(cat, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO

    taken = write(tmp_path / "taken.csv", "item_id,text,image\na,old,img/a.png\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "mgr_cli", "items", "add", str(taken), "-o",
                        str(tmp_path / "out"), "--tokenized", str(cat / "tok.safetensors")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"Error: {taken}: 1 item id is already in the catalogue ('a'); new items need new ids"]
    assert not (tmp_path / "out").exists()
