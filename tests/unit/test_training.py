"""The trainer: it learns, resumes exactly, starts from an align run, refuses a
mismatched vocabulary."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from mgr_cli.artifacts import read_jsonl
from mgr_cli.errors import MgrError
from mgr_cli.models.t5 import ModelConfig
from mgr_cli.training import data as data_mod
from mgr_cli.training.trainer import TrainConfig, train

TINY = ModelConfig(layers=1, decoder_layers=1, d_model=16, heads=2, d_kv=8, d_ff=32, dropout=0.1)


def cfg(**kw):
    base = dict(steps=8, batch_size=4, eval_every=4, eval_users=6, eval_beams=6, warmup=2,
                lr=5e-3, model=TINY, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_align_then_train(tiny_tokenized, tmp_path):
    h = train(tiny_tokenized, tmp_path / "align", cfg(task="align", steps=30, eval_every=10, lr=1e-2))
    _, log = read_jsonl(tmp_path / "align" / "run.jsonl", "run")
    assert [r["step"] for r in log] == [10, 20, 30] and log[-1]["loss"] < log[0]["loss"]
    assert h["meta"]["task"] == "align" and h["meta"]["metric"] == "loss"
    h2 = train(tiny_tokenized, tmp_path / "rec", cfg(init=str(tmp_path / "align")))
    assert h2["meta"]["init_run"]["content_hash"] == h["content_hash"]
    _, log = read_jsonl(tmp_path / "rec" / "run.jsonl", "run")
    assert {"mrr", "ndcg@10", "hits@5"} <= set(log[0])
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(tmp_path / "rec" / "model")
    assert model.config.vocab_size == h2["meta"]["vocab_size"]


def test_existing_run_needs_force_or_resume(tiny_tokenized, tmp_path):
    train(tiny_tokenized, tmp_path / "r", cfg(steps=2, eval_every=2))
    with pytest.raises(MgrError, match="already holds a finished run; pass --force to overwrite it "
                       "or --resume to continue it"):
        train(tiny_tokenized, tmp_path / "r", cfg(steps=2, eval_every=2))
    with pytest.raises(MgrError, match="no checkpoint to resume from"):
        train(tiny_tokenized, tmp_path / "none", cfg(), resume=True)


def test_interrupt_then_resume_equals_uninterrupted(tiny_tokenized, tmp_path, monkeypatch):
    train(tiny_tokenized, tmp_path / "a", cfg())
    calls = {"n": 0}
    real = data_mod.Batches.collate

    def flaky(self, idx, device):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(self, idx, device)

    monkeypatch.setattr(data_mod.Batches, "collate", flaky)
    with pytest.raises(MgrError, match=r"^interrupted at step 5; a resumable checkpoint is in .*"
                       r"checkpoint: continue with --resume$"):
        train(tiny_tokenized, tmp_path / "b", cfg())
    monkeypatch.setattr(data_mod.Batches, "collate", real)
    train(tiny_tokenized, tmp_path / "b", cfg(), resume=True)
    a = load_file(tmp_path / "a" / "checkpoint" / "model.safetensors")
    b = load_file(tmp_path / "b" / "checkpoint" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    _, la = read_jsonl(tmp_path / "a" / "run.jsonl")
    _, lb = read_jsonl(tmp_path / "b" / "run.jsonl")
    assert [r["train_loss"] for r in la] == [r["train_loss"] for r in lb]


def test_init_from_a_run_with_another_vocabulary(tiny_tokenized, tiny_dataset, tmp_path):
    from conftest import hand_ids
    from mgr_cli.tokens.stage import tokenize

    train(tiny_tokenized, tmp_path / "lfpp", cfg(task="align", steps=2, eval_every=2))
    text = hand_ids(tmp_path / "t", tiny_dataset, "text", [[k] for k in range(6)])
    tiger = tmp_path / "tiger.tok"
    tokenize(tiny_dataset, [text], tiger, layout="tiger")
    with pytest.raises(MgrError, match=r"lfpp: its vocabulary does not match .*tiger\.tok"):
        train(tiger, tmp_path / "x", cfg(init=str(tmp_path / "lfpp")))
    with pytest.raises(MgrError, match="alignment needs two or more modalities"):
        train(tiger, tmp_path / "y", cfg(task="align"))


def test_batches_are_length_sorted_and_cover_everything():
    import numpy as np

    src = [np.arange(n % 7 + 1) for n in range(100)]
    b = data_mod.Batches(src, src, 8, seed=1)
    batches = b.epoch(0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(100))
    assert b.epoch(0)[0].tolist() == batches[0].tolist() and b.epoch(1)[0].tolist() != batches[0].tolist()
    two = [data_mod.Batches(src, src, 8, seed=1, rank=r, world=2).epoch(0) for r in (0, 1)]
    assert len(two[0]) == len(two[1]) == 6


def test_fast_dropout_statistics_and_reproducibility():
    from mgr_cli.models.dropout import FastDropout, use_fast_dropout

    torch.manual_seed(3)
    x = torch.ones(200, 500)
    d = FastDropout(0.1).train()
    y = d(x)
    assert abs(float((y == 0).float().mean()) - 0.1) < 0.005
    assert abs(float(y.mean()) - 1.0) < 0.01 and float(y.max()) == pytest.approx(1 / 0.9)
    torch.manual_seed(3)
    assert torch.equal(d(x), y)
    assert torch.equal(d.eval()(x), x)
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.2), torch.nn.Sequential(torch.nn.Dropout(0.3)))
    assert use_fast_dropout(net) == 2 and isinstance(net[2][0], FastDropout)


def test_init_from_a_local_pretrained_t5(tiny_tokenized, tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    pre = tmp_path / "t5-local"
    T5ForConditionalGeneration(T5Config(vocab_size=100, d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                        num_decoder_layers=1, num_heads=2)).save_pretrained(pre)
    h = train(tiny_tokenized, tmp_path / "r", cfg(init=str(pre), steps=2, eval_every=2))
    model = T5ForConditionalGeneration.from_pretrained(tmp_path / "r" / "model")
    assert model.config.vocab_size == h["meta"]["vocab_size"] != 100
    with pytest.raises(MgrError, match="not a T5 model directory"):
        train(tiny_tokenized, tmp_path / "x", cfg(init=str(tmp_path)))
