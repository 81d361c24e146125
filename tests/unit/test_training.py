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


@pytest.mark.parametrize("at", [1, 3, 4, 6])
def test_sigint_then_resume_equals_uninterrupted(tiny_tokenized, tmp_path, monkeypatch, at):
    """Ctrl-C lands inside a step (here: while its batch is built; step 4 validates too);
    the run stops after that whole step, and --resume ends byte-identical to a run
    that was never interrupted."""
    import signal

    # a known handler to restore: a job started in the background by a non-interactive
    # shell (`cmd &`) inherits SIGINT ignored
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_then_resume(tiny_tokenized, tmp_path, monkeypatch, at)
    finally:
        signal.signal(signal.SIGINT, before)


def _interrupt_then_resume(tiny_tokenized, tmp_path, monkeypatch, at):
    import os
    import signal

    train(tiny_tokenized, tmp_path / "a", cfg())
    calls = {"n": 0}
    real = data_mod.Batches.collate

    def interrupting(self, idx, device):
        calls["n"] += 1
        if calls["n"] == at:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, idx, device)

    monkeypatch.setattr(data_mod.Batches, "collate", interrupting)
    with pytest.raises(MgrError, match=rf"^interrupted at step {at}; a resumable checkpoint is in .*"
                       r"checkpoint: continue with --resume$"):
        train(tiny_tokenized, tmp_path / "b", cfg())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.setattr(data_mod.Batches, "collate", real)
    train(tiny_tokenized, tmp_path / "b", cfg(), resume=True)
    for name in ("model.safetensors", "state.safetensors"):
        a = (tmp_path / "a" / "checkpoint" / name).read_bytes()
        assert a == (tmp_path / "b" / "checkpoint" / name).read_bytes(), name
    _, la = read_jsonl(tmp_path / "a" / "run.jsonl")
    _, lb = read_jsonl(tmp_path / "b" / "run.jsonl")
    assert [r["train_loss"] for r in la] == [r["train_loss"] for r in lb]
    assert [r["ndcg@10"] for r in la] == [r["ndcg@10"] for r in lb]


def test_a_pickled_checkpoint_is_never_loaded(tiny_tokenized, tmp_path):
    """A crafted state.pt (a pickle that runs a command when loaded) is refused."""
    import pickle

    marker = tmp_path / "owned"

    class Exploit:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    (tmp_path / "r" / "checkpoint").mkdir(parents=True)
    (tmp_path / "r" / "checkpoint" / "state.pt").write_bytes(pickle.dumps({"state": Exploit()}))
    with pytest.raises(MgrError, match="old pickle format .* no longer loads"):
        train(tiny_tokenized, tmp_path / "r", cfg(), resume=True)
    assert not marker.exists()
    train(tiny_tokenized, tmp_path / "ok", cfg(steps=2, eval_every=2))
    state = tmp_path / "ok" / "checkpoint" / "state.json"
    state.write_text('{"format": "something else"}')
    with pytest.raises(MgrError, match="not an mgr checkpoint"):
        train(tiny_tokenized, tmp_path / "ok", cfg(steps=4, eval_every=2), resume=True)


def test_resume_refuses_changed_options_and_an_unfinished_run_is_kept(tiny_tokenized, tmp_path,
                                                                        monkeypatch):
    import os
    import signal

    real = data_mod.Batches.collate
    calls = {"n": 0}

    def interrupting(self, idx, device):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, idx, device)

    monkeypatch.setattr(data_mod.Batches, "collate", interrupting)
    with pytest.raises(MgrError, match="interrupted at step 3"):
        train(tiny_tokenized, tmp_path / "r", cfg())
    monkeypatch.setattr(data_mod.Batches, "collate", real)
    with pytest.raises(MgrError, match=r"holds an unfinished run; pass --resume to continue it or "
                       r"--force to start over"):
        train(tiny_tokenized, tmp_path / "r", cfg())
    with pytest.raises(MgrError, match=r"changed: --lr 0.005 -> 0.001, --seed 0 -> 1 \(start a new run"):
        train(tiny_tokenized, tmp_path / "r", cfg(lr=1e-3, seed=1), resume=True)
    with pytest.raises(MgrError, match=r"changed: --d-model 16 -> 32"):
        train(tiny_tokenized, tmp_path / "r", cfg(model=ModelConfig(**{**TINY.to_dict(), "d_model": 32})),
              resume=True)
    assert train(tiny_tokenized, tmp_path / "r", cfg(), resume=True)["meta"]["steps"] == 8


@pytest.mark.parametrize("change, message", [
    ({"eval_beams": 0}, "--eval-beams must be at least 1"),
    ({"lr": -1.0}, "--lr must be above 0"),
    ({"lr": float("nan")}, "--lr, --weight-decay, --clip and --dropout must be finite numbers"),
    ({"steps": 0}, "--steps must be at least 1"),
    ({"eval_users": 0}, "--eval-users must be at least 1"),
    ({"model": ModelConfig(**{**TINY.to_dict(), "dropout": 1.5})}, r"--dropout must be in \[0, 1\)"),
    ({"model": ModelConfig(**{**TINY.to_dict(), "heads": 0})}, "--heads must be at least 1"),
    ({"model": ModelConfig(**{**TINY.to_dict(), "d_model": 0})}, "--d-model must be at least 1"),
    ({"model": ModelConfig(**{**TINY.to_dict(), "layers": 0})}, "--layers must be at least 1"),
    ({"decay_over": "minutes"}, "--decay-over minutes needs a time budget: add --max-minutes M"),
    ({"model": ModelConfig(**{**TINY.to_dict(), "encoder_input": "words"})},
     "--encoder-input must be tokens or items"),
    ({"task": "align", "model": ModelConfig(**{**TINY.to_dict(), "encoder_input": "items"})},
     "--encoder-input items is for next-item training"),
])
def test_bad_training_options_fail_before_any_work(tiny_tokenized, tmp_path, change, message):
    with pytest.raises(MgrError, match=message):
        train(tiny_tokenized, tmp_path / "r", cfg(**change))
    assert not (tmp_path / "r").exists()


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


def test_max_minutes_stops_after_a_validated_step(tiny_tokenized, tmp_path):
    h = train(tiny_tokenized, tmp_path / "r", cfg(steps=50, eval_every=25, max_minutes=1e-9))
    assert h["meta"]["steps"] == 1 and h["meta"]["stopped"] == "--max-minutes 1e-09"
    _, log = read_jsonl(tmp_path / "r" / "run.jsonl", "run")
    assert [r["step"] for r in log] == [1] and log[0]["minutes"] >= 0
    assert (tmp_path / "r" / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("decay_over, expected", [
    ("steps", [1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]),
    # half of --max-minutes gone after the first step: from the step after next (the clock
    # is read after each step) the rate is at most half the peak
    ("minutes", [1, 5 / 6, 1 / 2, 1 / 2, 2 / 6, 1 / 6]),
])
def test_decay_over_minutes_follows_the_time_budget(tiny_tokenized, tmp_path, monkeypatch,
                                                    decay_over, expected):
    from mgr_cli.training import loop as loop_mod

    monkeypatch.setattr(loop_mod.distributed, "rank0_value", lambda value, dist, device: 300.0)
    lrs = []
    step = torch.optim.AdamW.step

    def spy(self, *a, **kw):
        lrs.append(self.param_groups[0]["lr"])
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    train(tiny_tokenized, tmp_path / "r", cfg(steps=6, eval_every=6, warmup=0, lr=1e-3,
                                              max_minutes=10, decay_over=decay_over))
    assert lrs == pytest.approx([1e-3 * f for f in expected])


def test_mgr_train_matches_a_plain_reference_loop(tiny_tokenized, tmp_path):
    """At dropout 0, `mgr train` is a plain loop over the same batches: AdamW, warm-up and
    linear decay, clipping, labels padded with -100, decoder started from <pad>. The loss
    is the mean cross-entropy of the target tokens (item codes and </s>) only."""
    import torch.nn.functional as F

    from mgr_cli.models.t5 import build_model
    from mgr_cli.tokens.stage import Tokenized

    c = cfg(steps=6, eval_every=6, weight_decay=0.0, precision="fp32",  # the reference runs fp32
            model=ModelConfig(**{**TINY.to_dict(), "dropout": 0.0}))
    train(tiny_tokenized, tmp_path / "r", c)
    tok = Tokenized.load(tiny_tokenized)
    src, tgt = tok.rec_examples("train")
    torch.manual_seed(c.seed)
    model = build_model(tok.header["meta"]["vocab_size"], c.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / c.warmup if s < c.warmup else (c.steps - s) / (c.steps - c.warmup))
    batches = data_mod.Batches(src, tgt, c.batch_size, c.seed)
    order = [b for e in range(10) for b in batches.epoch(e)][:c.steps]
    for idx in order:
        b = batches.collate(idx, torch.device("cpu"))
        labels = b["labels"]
        start = torch.zeros_like(labels[:, :1])  # <pad> starts the decoder
        dec_in = torch.cat([start, labels[:, :-1].clamp(min=0)], dim=1)
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                       decoder_input_ids=dec_in).logits
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        assert torch.allclose(loss, model(**b).loss)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip)
        opt.step()
        sched.step()
    ours = load_file(tmp_path / "r" / "checkpoint" / "model.safetensors")
    for k, v in model.state_dict().items():
        if k in ours:
            torch.testing.assert_close(ours[k], v, rtol=1e-5, atol=1e-6)


def test_a_failed_model_write_keeps_the_previous_best_model(tiny_tokenized, tmp_path, monkeypatch):
    """model/ is written under a temporary name and renamed: a failure half way through
    (here: after the config, before the weights) leaves the previous model/ whole."""
    from transformers import T5ForConditionalGeneration

    train(tiny_tokenized, tmp_path / "r", cfg(steps=2, eval_every=2))
    before = {p.name: p.read_bytes() for p in (tmp_path / "r" / "model").iterdir()}

    def half_then_fail(self, path, **kw):
        path.mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(path)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(T5ForConditionalGeneration, "save_pretrained", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        train(tiny_tokenized, tmp_path / "r", cfg(steps=2, eval_every=2, seed=3), force=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "r" / "model").iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoint", "model", "run.jsonl"]


def test_precision_auto_takes_bf16_only_where_it_is_fast(monkeypatch):
    """bf16 autocast on a CPU without AMX-BF16 is emulated (10x slower than fp32 on an AVX2
    EPYC): `auto` must not pick it there, and asking for it explicitly warns."""
    from mgr_cli.training import trainer

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(trainer, "has_amx_bf16", lambda: False)
    assert not trainer._use_bf16("auto", cpu) and trainer._use_bf16("auto", cuda)
    assert trainer._use_bf16("bf16", cpu) and not trainer._use_bf16("fp32", cuda)
    assert "10x slower" in trainer.slow_bf16_warning("bf16", cpu)
    assert trainer.slow_bf16_warning("auto", cpu) is None
    assert trainer.slow_bf16_warning("bf16", cuda) is None
    monkeypatch.setattr(trainer, "has_amx_bf16", lambda: True)
    assert trainer._use_bf16("auto", cpu) and trainer.slow_bf16_warning("bf16", cpu) is None


def test_item_encoder_input_trains_saves_and_decodes(tiny_tokenized, tmp_path):
    """--encoder-input items: the width lands in the saved model's config, validation and
    evaluation decode through it, and an align run cannot start from such a model."""
    from transformers import T5ForConditionalGeneration

    from mgr_cli.decoding.evaluate import evaluate
    from mgr_cli.models.t5 import item_width
    from mgr_cli.tokens.stage import Tokenized

    items = ModelConfig(**{**TINY.to_dict(), "encoder_input": "items"})
    h = train(tiny_tokenized, tmp_path / "r", cfg(model=items, steps=12, eval_every=6))
    width = Tokenized.load(tiny_tokenized).items.shape[1]
    assert width == 5  # LF++: 2 text codes, <sep_1>, 2 image codes
    model = T5ForConditionalGeneration.from_pretrained(tmp_path / "r" / "model")
    assert item_width(model) == width
    _, log = read_jsonl(tmp_path / "r" / "run.jsonl", "run")
    assert [r["step"] for r in log] == [6, 12] and all(0 <= r["mrr"] <= 1 for r in log)
    assert h["config"]["model"]["encoder_input"] == "items"
    result = evaluate(tmp_path / "r", tiny_tokenized, tmp_path / "eval", split="test", beams=6)
    assert 0 <= result["metrics"]["mrr"] <= 1
    with pytest.raises(MgrError, match="one encoder position per item"):
        train(tiny_tokenized, tmp_path / "a", cfg(task="align", init=str(tmp_path / "r")))
