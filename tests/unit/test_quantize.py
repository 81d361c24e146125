"""Semantic IDs: k-means, RQ-VAE, residual k-means, collisions, statistics, import and
export, and the quantize stage's artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TINY_CLIP
from mgr_cli.artifacts import ArtifactError, read_header, read_jsonl
from mgr_cli.encoders.embed import EmbedConfig, embed
from mgr_cli.errors import MgrError
from mgr_cli.quantize import ids as sid
from mgr_cli.quantize.kmeans import kmeans
from mgr_cli.quantize.rqvae import RQVAEConfig, train_rqvae
from mgr_cli.quantize.exchange import export_ids, import_ids
from mgr_cli.quantize.stage import QuantizeConfig, load_ids, quantize, view_path


def blobs(n=600, d=32, k=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 4
    label = torch.randint(k, (n,), generator=g)
    return centres[label] + 0.3 * torch.randn(n, d, generator=g), label


def test_kmeans_recovers_blobs_deterministically():
    x, label = blobs()
    c1, a1 = kmeans(x, 8, seed=3)
    c2, a2 = kmeans(x, 8, seed=3)
    assert torch.equal(a1, a2) and torch.equal(c1, c2)
    # every found cluster is pure
    for k in range(8):
        assert len(torch.unique(label[a1 == k])) <= 1


def test_kmeans_with_more_centres_than_points():
    c, a = kmeans(torch.eye(3), 5)
    assert c.shape == (5, 3) and sorted(a.tolist()) == [0, 1, 2]


def test_rqvae_trains_uses_codes_and_is_deterministic():
    x, _ = blobs()
    x = (x - x.mean(0)) / x.std(0)
    cfg = RQVAEConfig(levels=2, codebook_size=16, latent_dim=8, hidden=[32], batch_size=128,
                      max_epochs=40, patience=10, seed=1)
    m1, info = train_rqvae(x, cfg)
    m2, _ = train_rqvae(x, cfg)
    c1, r1 = m1.encode(x)
    c2, _ = m2.encode(x)
    assert torch.equal(c1, c2)
    assert c1.shape == (600, 2) and len(torch.unique(c1[:, 0])) >= 8
    assert float(((r1 - x) ** 2).sum() / (x ** 2).sum()) < 0.5
    assert info["epochs"] <= 40 and info["final_loss"] < 40


def test_collisions_and_dedup_level():
    codes = np.array([[1, 2], [1, 2], [0, 5], [1, 2], [0, 5], [3, 3]])
    assert sid.collision_rate(codes) == pytest.approx(5 / 6)
    out, size = sid.add_dedup_level(codes)
    assert out[:, 2].tolist() == [0, 1, 0, 2, 1, 0] and size == 3
    assert sid.collision_rate(out) == 0


def test_level_stats_by_hand():
    codes = np.array([[0, 1], [0, 1], [1, 1], [1, 1]])
    s = sid.level_stats(codes, [4, 2])
    assert s[0] == {"level": 1, "codebook_size": 4, "used": 2, "usage": 0.5, "entropy_bits": 1.0,
                    "entropy_ratio": 0.5}
    assert s[1]["used"] == 1 and s[1]["entropy_bits"] == 0.0


def _embed(tiny_dataset, tmp_path, modality="text"):
    out = tmp_path / f"{modality}.safetensors"
    embed(tiny_dataset, out, EmbedConfig(**TINY_CLIP, modality=modality, workers=0), force=True)
    return out


@pytest.mark.parametrize("method", ["rqvae", "rkmeans"])
def test_quantize_stage(tiny_dataset, tmp_path, method):
    emb = _embed(tiny_dataset, tmp_path)
    out = tmp_path / "t.ids.safetensors"
    cfg = QuantizeConfig(method=method, levels=2, codebook_size=4, latent_dim=4, hidden=[8],
                         max_epochs=20, batch_size=6)
    header = quantize(emb, out, cfg)
    codes, h = load_ids(out)
    assert codes.shape == (6, 3) and h == header
    assert h["meta"]["codebook_sizes"][:2] == [4, 4] and h["meta"]["collision_rate_after"] == 0
    assert h["meta"]["item_ids_hash"] == read_header(tiny_dataset)["meta"]["item_ids_hash"]
    assert h["inputs"][0]["kind"] == "embeddings"
    vh, rows = read_jsonl(view_path(out), "semantic-ids-view")
    assert [r["id"] for r in rows] == list("abcdef")
    assert rows[0]["tokens"] == [f"<{'abc'[k]}_{c}>" for k, c in enumerate(codes[0])]
    again = quantize(emb, tmp_path / "again.safetensors", cfg)
    assert again["content_hash"] == header["content_hash"]  # deterministic for a seed


def test_quantize_refuses_a_different_dataset(tiny_dataset, tmp_path, generic_dir):
    from mgr_cli.data import PrepareConfig
    from mgr_cli.data.prepare import prepare

    emb = _embed(tiny_dataset, tmp_path)
    other = tmp_path / "other.jsonl"
    prepare("generic", generic_dir, other, cfg=PrepareConfig(k_core=3))
    with pytest.raises(ArtifactError, match=r"text\.safetensors and .*other\.jsonl disagree on item order"):
        quantize(emb, tmp_path / "x.safetensors", QuantizeConfig(method="rkmeans", codebook_size=2),
                 dataset=other)


def test_export_import_round_trip(tiny_dataset, tmp_path):
    emb = _embed(tiny_dataset, tmp_path)
    out = tmp_path / "t.ids.safetensors"
    quantize(emb, out, QuantizeConfig(method="rkmeans", levels=2, codebook_size=3))
    codes, _ = load_ids(out)
    js = tmp_path / "t.index.json"
    assert export_ids(out, js) == 6
    data = json.loads(js.read_text())
    assert data["0"] == [f"<{'abc'[k]}_{c}>" for k, c in enumerate(codes[0])]
    back = tmp_path / "back.safetensors"
    h = import_ids(js, tiny_dataset, back, modality="text")
    np.testing.assert_array_equal(load_ids(back)[0], codes)
    assert h["meta"]["joined_by"] == "item index" and h["meta"]["dedup_level"] is False


def test_import_by_item_id_and_errors(tiny_dataset, tmp_path):
    js = tmp_path / "ids.json"
    js.write_text(json.dumps({c: [f"<A_{k % 2}>", f"<B_{k % 3}>"] for k, c in enumerate("fedcba")}))
    h = import_ids(js, tiny_dataset, tmp_path / "a.safetensors", modality="image")
    codes, _ = load_ids(tmp_path / "a.safetensors")
    assert h["meta"]["joined_by"] == "item id" and h["meta"]["token_prefixes"] == ["A", "B"]
    assert codes[5].tolist() == [0, 0] and codes[0].tolist() == [1, 2]  # f came first in the file
    assert h["meta"]["collision_rate_before"] == 0 and codes.shape == (6, 2)  # no level added
    js.write_text(json.dumps({"0": ["<a_1>"], "1": ["<a_2>"]}))
    with pytest.raises(MgrError, match=r"4 of the dataset's 6 items have no ID \(e\.g\. 'c'\)"):
        import_ids(js, tiny_dataset, tmp_path / "b.safetensors", modality="text")
    js.write_text(json.dumps({str(k): ["a_1"] for k in range(6)}))
    with pytest.raises(MgrError, match=r"item 0: token 'a_1' is not of the form <x_N>"):
        import_ids(js, tiny_dataset, tmp_path / "b.safetensors", modality="text")
    js.write_text(json.dumps({str(k): ["<a_1>"] for k in range(7)}))
    with pytest.raises(MgrError, match="index 6 is beyond the dataset's 6 items"):
        import_ids(js, tiny_dataset, tmp_path / "b.safetensors", modality="text")
    assert not (tmp_path / "b.safetensors").exists()


def test_hierarchical_ids_are_cluster_paths():
    from mgr_cli.quantize.kmeans import hierarchical_kmeans

    x, label = blobs(n=300, k=4)
    codes, recon = hierarchical_kmeans(x, levels=3, k=4, seed=0)
    # level 1 recovers the four blobs
    for c in range(4):
        assert len(torch.unique(label[codes[:, 0] == c])) == 1
    # children are numbered within their parent, at most k of them
    assert int(codes.max()) < 4
    # a cluster of <= k items gives each its own child: small inputs are unique at once
    small, _ = hierarchical_kmeans(x[:3], levels=2, k=4, seed=0)
    assert small[:, 0].tolist() == [0, 1, 2] and small[:, 1].tolist() == [0, 0, 0]
    assert recon.shape == x.shape


def test_quantize_stage_hierarchical(tiny_dataset, tmp_path):
    emb = _embed(tiny_dataset, tmp_path)
    h = quantize(emb, tmp_path / "hc.safetensors", QuantizeConfig(method="hierarchical", levels=2,
                                                                  codebook_size=2))
    assert h["meta"]["method"] == "hierarchical" and h["meta"]["collision_rate_after"] == 0


def test_letter_collaborative_loss_pulls_ids_towards_collaborative_groups():
    """Items with a strong content grouping (12 dims) and a weaker one (4 dims) that the
    collaborative embeddings follow: plain RQ-VAE codes follow the content; LETTER's
    collaborative loss moves them towards the collaborative groups."""
    from sklearn.metrics import adjusted_mutual_info_score as ami

    a, content = blobs(n=512, d=12, k=8, seed=0)
    b, behaviour = blobs(n=512, d=4, k=8, seed=1)
    x = torch.cat([a, b], 1)
    x = (x - x.mean(0)) / x.std(0)
    collab = torch.nn.functional.one_hot(behaviour, 8).float()
    base = dict(levels=1, codebook_size=8, latent_dim=8, hidden=[32], batch_size=64,
                max_epochs=30, patience=30, seed=0)
    plain, _ = train_rqvae(x, RQVAEConfig(**base))
    letter, info = train_rqvae(x, RQVAEConfig(**base, letter_alpha=10.0), collab=collab)
    c_plain, c_letter = plain.encode(x)[0][:, 0], letter.encode(x)[0][:, 0]
    assert ami(content, c_plain) > 0.8 and ami(behaviour, c_plain) < 0.1
    assert ami(behaviour, c_letter) > ami(behaviour, c_plain) + 0.15
    assert ami(content, c_letter) < ami(content, c_plain)
    assert info["final_regularisers"]["collaborative"] > 0
    with pytest.raises(ValueError, match="needs collaborative embeddings"):
        train_rqvae(x, RQVAEConfig(**base, letter_alpha=1.0))


def test_letter_diversity_loss_targets_another_code_of_the_same_group():
    from mgr_cli.quantize.rqvae import RQVAE, diversity_loss

    model = RQVAE(2, RQVAEConfig(levels=1, codebook_size=3, latent_dim=2, hidden=[4]))
    model.codebooks.data[0] = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0]])
    codes, res = torch.tensor([[0]]), [torch.tensor([[0.0, 0.0]])]
    gen = torch.Generator().manual_seed(0)
    near = diversity_loss(model, codes, res, torch.tensor([[0, 0, 1]]), gen)   # positive: code 1
    far = diversity_loss(model, codes, res, torch.tensor([[0, 1, 0]]), gen)    # positive: code 2
    assert near.item() < 1e-3 and far.item() == pytest.approx(199.0, rel=1e-4)
    far.backward()  # the positive code moves towards the item, its own code does not move
    grad = model.codebooks.grad[0]
    assert torch.all(grad[2] > 0) and torch.equal(grad[0], torch.zeros(2))
    alone = diversity_loss(model, codes, res, torch.tensor([[0, 1, 2]]), gen)  # no other code in its group
    assert alone.item() == 0.0


def test_the_readable_view_is_named_once():
    from pathlib import Path

    assert view_path(Path("d/text.ids.safetensors")) == Path("d/text.ids.jsonl")
    assert view_path(Path("d/text.safetensors")) == Path("d/text.ids.jsonl")
