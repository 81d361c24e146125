"""The frozen quantizer stored in a semantic-ID artifact: applied to the vectors the IDs
were made from it gives their codes exactly; new items get free uniqueness codes."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import interactions_csv, items_csv, write
from mgr_cli.errors import MgrError
from mgr_cli.quantize.frozen import assign, free_codes, load_quantizer
from mgr_cli.quantize.stage import QuantizeConfig, load_ids, quantize

ITEMS = [f"i{k:02d}" for k in range(60)]
SMALL = dict(levels=2, codebook_size=8, latent_dim=4, hidden=[16], max_epochs=4, patience=2)


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    """60 items (every one bought by 3 of 20 users) with random clustered 12-d vectors,
    and 8-d collaborative ones for LETTER."""
    from mgr_cli.artifacts import Input
    from mgr_cli.data import PrepareConfig, load_dataset
    from mgr_cli.data.prepare import prepare
    from mgr_cli.encoders import save_embeddings

    d = tmp_path_factory.mktemp("frozen")
    users = {f"u{u}": [ITEMS[(u * 9 + j) % 60] for j in range(9)] for u in range(20)}
    write(d / "raw" / "interactions.csv", interactions_csv(users))
    write(d / "raw" / "items.csv", items_csv(ITEMS))
    ds_path = d / "ds.jsonl"
    prepare("generic", d / "raw", ds_path, cfg=PrepareConfig(k_core=3))
    ds, dh = load_dataset(ds_path)
    assert len(ds.items) == 60
    g = np.random.default_rng(0)
    x = (g.normal(size=(6, 12)) * 3)[g.integers(6, size=60)] + g.normal(size=(60, 12))
    out = {"ds": ds_path, "dir": d}
    for name, v in (("text", x), ("collab", g.normal(size=(60, 8)))):
        p = d / f"{name}.emb.safetensors"
        save_embeddings(p, [it.id for it in ds.items], v.astype(np.float32), modality="text",
                        inputs=[Input("dataset", ds_path, dh)])
        out[name] = p
    return out


@pytest.mark.parametrize("method,extra", [("rqvae", {}), ("letter", {}), ("rkmeans", {}),
                                          ("rqvae", {"standardize": False})])
def test_frozen_quantizer_reproduces_the_original_codes(emb, method, extra):
    from mgr_cli.encoders import load_embeddings

    out = emb["dir"] / f"{method}{len(extra)}.ids.safetensors"
    quantize(emb["text"], out, QuantizeConfig(method=method, **SMALL, **extra),
             collab=emb["collab"] if method == "letter" else None, force=True)
    fz, codes, header = load_quantizer(out)
    assert header["meta"]["quantizer"]["kind"] == ("rkmeans" if method == "rkmeans" else "rqvae")
    assert fz.standardize == extra.get("standardize", True)
    assert ("mean" in fz.tensors) == fz.standardize
    x, _ = load_embeddings(emb["text"])
    base = codes[:, :-1]  # the uniqueness level (dedup always) is not the quantizer's
    assert len(np.unique(base, axis=0)) > 3  # the codes are not all one
    assert np.array_equal(assign(fz, x), base)
    assert np.array_equal(assign(fz, x[7:19]), base[7:19])  # row by row, whatever the batch
    assert np.array_equal(load_ids(out)[0], codes)  # readers of codes are not disturbed
    perm = np.random.default_rng(1).permutation(60)
    assert np.array_equal(assign(fz, x[perm]), base[perm])


def test_no_quantizer_hierarchical_and_imported_are_refused(emb, tmp_path):
    from mgr_cli.quantize.ids import save_ids

    hc = tmp_path / "hc.ids.safetensors"
    quantize(emb["text"], hc, QuantizeConfig(method="hierarchical", levels=2, codebook_size=8))
    with pytest.raises(MgrError, match="hierarchical IDs cannot place new items"):
        load_quantizer(hc)
    old = tmp_path / "old.ids.safetensors"  # as quantize wrote before quantizers were stored
    save_ids(old, ITEMS, np.zeros((60, 2), dtype=np.int64), modality="text", method="rqvae",
             codebook_sizes=[8, 8], dedup="always")
    with pytest.raises(MgrError, match=r"stores no quantizer .*re-run mgr quantize"):
        load_quantizer(old)
    assert load_ids(old)[0].shape == (60, 3)  # and it still loads as before


def test_free_codes_keep_old_ids_and_fill_the_gaps():
    old = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 0], [2, 1, 1]])  # (2, 1) has no code 0
    new = np.array([[0, 0], [2, 1], [3, 3], [0, 0], [2, 1]])
    full, shared = free_codes(old, new, unique_level=True)
    assert full.tolist() == [[0, 0, 2], [2, 1, 0], [3, 3, 0], [0, 0, 3], [2, 1, 2]]
    assert shared == 0
    plain, shared = free_codes(old[:, :2], new, unique_level=False)
    assert plain.tolist() == new.tolist() and shared == 4  # (3, 3) alone is unique
