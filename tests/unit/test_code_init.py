"""`mgr train --init-codes`: semantic-ID tokens start from their codebook vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import interactions_csv, items_csv, write
from mgr_cli.artifacts import read_jsonl
from mgr_cli.errors import MgrError
from mgr_cli.models.t5 import ModelConfig, build_model
from mgr_cli.training.code_init import init_code_embeddings

ITEMS = [f"i{k:02d}" for k in range(40)]
TINY = ModelConfig(layers=1, decoder_layers=1, d_model=16, heads=2, d_kv=8, d_ff=32, dropout=0.0)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """40 items with clustered 12-d vectors, RQ-VAE IDs (2 x 8, latent 4, + uniqueness
    level) and their TIGER tokens."""
    from mgr_cli.artifacts import Input
    from mgr_cli.data import PrepareConfig, load_dataset
    from mgr_cli.data.prepare import prepare
    from mgr_cli.encoders import save_embeddings
    from mgr_cli.quantize.stage import QuantizeConfig, quantize
    from mgr_cli.tokens.stage import tokenize

    d = tmp_path_factory.mktemp("codes")
    users = {f"u{u}": [ITEMS[(u * 7 + j) % 40] for j in range(6)] for u in range(20)}
    write(d / "raw" / "interactions.csv", interactions_csv(users))
    write(d / "raw" / "items.csv", items_csv(ITEMS))
    ds_path = d / "ds.jsonl"
    prepare("generic", d / "raw", ds_path, cfg=PrepareConfig(k_core=3))
    ds, dh = load_dataset(ds_path)
    g = np.random.default_rng(0)
    x = (g.normal(size=(5, 12)) * 3)[g.integers(5, size=len(ds.items))] + g.normal(size=(len(ds.items), 12))
    emb = d / "text.emb.safetensors"
    save_embeddings(emb, [it.id for it in ds.items], x.astype(np.float32), modality="text",
                    inputs=[Input("dataset", ds_path, dh)])
    small = dict(levels=2, codebook_size=8, latent_dim=4, hidden=[16], max_epochs=4, patience=2)
    out = {"ds": ds_path, "dir": d}
    for name, seed in (("ids", 0), ("other", 1)):
        out[name] = d / f"{name}.ids.safetensors"
        quantize(emb, out[name], QuantizeConfig(method="rqvae", seed=seed, **small))
    out["tok"] = d / "tiger.tok.safetensors"
    tokenize(ds_path, [out["ids"]], out["tok"], layout="tiger")
    return out


def test_code_tokens_start_from_their_codebook_vectors(stages):
    from mgr_cli.artifacts import read_tensors
    from mgr_cli.tokens.stage import Tokenized

    tok = Tokenized.load(stages["tok"])
    torch.manual_seed(0)
    model = build_model(tok.header["meta"]["vocab_size"], TINY)
    before = model.get_input_embeddings().weight.detach().clone()
    done = init_code_embeddings(model, tok, [str(stages["ids"])], seed=0)
    assert [(m, levels) for m, levels, _, _ in done] == [("text", 2)]
    after = model.get_input_embeddings().weight.detach()
    books = torch.as_tensor(read_tensors(stages["ids"], "semantic-ids")[1]["quantizer.codebooks"]).double()
    offsets, sizes = tok.vocab.offsets["text"], tok.vocab.codebook_sizes["text"]
    for level in range(2):
        rows = after[offsets[level]:offsets[level] + 8].double()
        cos = torch.nn.functional.cosine_similarity
        # the latent (4) is narrower than the model (16): the inner products carry over exactly
        torch.testing.assert_close(cos(rows[:, None], rows[None], dim=-1),
                                   cos(books[level][:, None], books[level][None], dim=-1),
                                   rtol=1e-4, atol=1e-4)
        assert rows.norm(dim=1).mean() == pytest.approx(float(before.norm(dim=1).mean()), rel=1e-3)
    # the special tokens and the uniqueness level (no codebook) keep their random start
    assert torch.equal(after[:offsets[0]], before[:offsets[0]])
    assert torch.equal(after[offsets[2]:offsets[2] + sizes[2]], before[offsets[2]:offsets[2] + sizes[2]])


def test_init_codes_in_a_run_and_its_refusals(stages, tmp_path):
    from mgr_cli.training.trainer import TrainConfig, train

    def cfg(**kw):
        return TrainConfig(**{**dict(steps=2, batch_size=8, eval_every=2, eval_users=4, eval_beams=4,
                                     warmup=1, model=TINY, device="cpu"), **kw})

    h = train(stages["tok"], tmp_path / "r", cfg(init_codes=[str(stages["ids"])]))
    assert h["meta"]["init_codes"] == {"text": 2}
    header, _ = read_jsonl(tmp_path / "r" / "run.jsonl", "run")
    assert [i["role"] for i in header["inputs"]] == ["tokenized", "codes:text"]
    with pytest.raises(MgrError, match="not the text IDs that .* was tokenized from"):
        train(stages["tok"], tmp_path / "x", cfg(init_codes=[str(stages["other"])]))
    with pytest.raises(MgrError, match="--init-codes starts the code embeddings afresh"):
        train(stages["tok"], tmp_path / "y", cfg(init=str(tmp_path / "r"), init_codes=[str(stages["ids"])]))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
