"""The paper's protocol on hand-made data: k-core, order, leave-one-out, policies."""

from __future__ import annotations

import pytest

from mgr_cli.data import Dataset, Item, PrepareConfig, apply_protocol, load_dataset, save_dataset
from mgr_cli.data.protocol import k_core
from mgr_cli.data.readers.common import RawData
from mgr_cli.errors import MgrError


def raw(inter, items=None, **kw) -> RawData:
    ids = items if items is not None else sorted({i for _, i, _ in inter})
    return RawData("test", {i: Item(i, f"text {i}") for i in ids}, inter, [], **kw)


def seqs(users: dict[str, str], t0: float = 0) -> list:
    return [(u, i, t0 + t) for u, s in users.items() for t, i in enumerate(s)]


def test_k_core_is_iterative():
    # z has one buyer: it goes first; then u3 holds one item and goes in the next round.
    inter = [("u1", "a", 0), ("u1", "b", 0), ("u2", "a", 0), ("u2", "b", 0),
             ("u3", "a", 0), ("u3", "z", 0)]
    kept, rounds = k_core(inter, 2)
    assert kept == inter[:4] and rounds == 2
    assert k_core(inter[:4], 2) == (inter[:4], 0)


def test_chronological_with_ties_in_file_order():
    inter = [("u", "c", 5.0), ("u", "a", 1.0), ("u", "b", 1.0), ("u", "d", 9.0)]
    ds, _ = apply_protocol(raw(inter), PrepareConfig(k_core=1), "t")
    assert [ds.items[i].id for i in ds.sequences[0]] == ["a", "b", "c", "d"]


def test_items_indexed_by_first_appearance_and_counts():
    inter = seqs({"u1": "bcad", "u2": "dabc", "u3": "abcd"}) + [("u4", "x", 0), ("u4", "y", 1)]
    ds, report = apply_protocol(raw(inter), PrepareConfig(k_core=3), "t")
    assert [it.id for it in ds.items] == ["b", "c", "a", "d"]
    assert ds.user_ids == ["u1", "u2", "u3"]
    assert report["k_core"]["removed_users"] == 1 and report["k_core"]["removed_items"] == 2
    assert ds.stats()["interactions"] == 12 and ds.stats()["mean_length"] == 4.0


def test_leave_one_out_and_history_truncation():
    ds = Dataset("t", [Item(str(i)) for i in range(6)], ["u"], [[0, 1, 2, 3, 4, 5]], max_history=2)
    test = list(ds.examples("test"))
    valid = list(ds.examples("valid"))
    train = list(ds.examples("train"))
    assert [(e.history, e.target) for e in test] == [([3, 4], 5)]
    assert [(e.history, e.target) for e in valid] == [([2, 3], 4)]
    assert [(e.history, e.target) for e in train] == [([0], 1), ([0, 1], 2), ([1, 2], 3)]
    assert ds.stats()["examples"] == {"train": 3, "valid": 1, "test": 1}
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        list(ds.examples("dev"))


def test_unknown_items_error_or_drop():
    inter = seqs({"u1": "abcq", "u2": "abc", "u3": "abc"})
    with pytest.raises(MgrError, match=r"^1 interactions refer to 1 item ids missing from the "
                       r"item file \(e\.g\. 'q'\); fix the files or pass --unknown-items drop$"):
        apply_protocol(raw(inter, items=list("abc")), PrepareConfig(k_core=3), "t")
    ds, rep = apply_protocol(raw(inter, items=list("abc")),
                             PrepareConfig(k_core=3, unknown_items="drop"), "t")
    assert rep["dropped_unknown_item_interactions"] == 1 and len(ds.items) == 3


def test_empty_text_policies():
    inter = seqs({"u1": "abcd", "u2": "abcd", "u3": "abcd"})
    r = raw(inter)
    r.items["b"].text = "  "
    with pytest.raises(MgrError, match=r"^1 items have empty text \(e\.g\. 'b'\); pass "
                       "--empty-text drop"):
        apply_protocol(r, PrepareConfig(k_core=1), "t")
    ds, rep = apply_protocol(r, PrepareConfig(k_core=1, empty_text="drop"), "t")
    assert rep["dropped_empty_text_items"] == 1 and [it.id for it in ds.items] == ["a", "c", "d"]
    ds, _ = apply_protocol(r, PrepareConfig(k_core=1, empty_text="keep"), "t")
    assert len(ds.items) == 4


def test_repeats_kept_by_default_or_dropped():
    inter = seqs({"u1": "abacb", "u2": "abc", "u3": "bac"})
    ds, _ = apply_protocol(raw(inter), PrepareConfig(k_core=1), "t")
    assert ds.n_interactions == 11
    ds, rep = apply_protocol(raw(inter), PrepareConfig(k_core=1, repeats="drop"), "t")
    assert rep["dropped_repeated_interactions"] == 2 and ds.n_interactions == 9
    assert [ds.items[i].id for i in ds.sequences[0]] == ["a", "b", "c"]


def test_everything_vanishing_is_an_error():
    inter = seqs({"u1": "abc", "u2": "def"})
    with pytest.raises(MgrError, match=r"no user keeps 3 or more interactions after the "
                       r"5-core \(of 2 users and 6 items\); lower --k-core"):
        apply_protocol(raw(inter), PrepareConfig(), "t")


def test_config_errors_are_listed_together():
    with pytest.raises(MgrError, match=r"--repeats must be one of keep, drop, got 'x'; "
                       r"--k-core must be at least 1, got 0"):
        apply_protocol(raw(seqs({"u": "abc"})), PrepareConfig(repeats="x", k_core=0), "t")


def test_dataset_artifact_round_trip(tmp_path):
    ds = Dataset("t", [Item("a", "A", "a.png", {"cat": "x"}), Item("b", "B")], ["u1", "u2"],
                 [[0, 1, 0], [1, 0, 1]], max_history=7, image_root="/img")
    h = save_dataset(ds, tmp_path / "d.jsonl")
    back, header = load_dataset(tmp_path / "d.jsonl")
    assert header == h
    assert back.items == ds.items and back.sequences == ds.sequences
    assert back.user_ids == ds.user_ids and back.max_history == 7
    assert h["meta"]["modalities"] == ["text", "image"] and h["meta"]["fields"] == ["cat"]
    assert h["meta"]["item_ids_hash"] != h["meta"]["user_ids_hash"]


def test_the_leave_one_out_rule_lives_in_one_place(tiny_dataset):
    from mgr_cli.data import load_dataset

    ds, _ = load_dataset(tiny_dataset)
    seq = ds.sequences[0]
    assert ds.held_out(0, "test") == (seq[:-1], seq[-1])
    assert ds.held_out(0, "valid") == (seq[:-2], seq[-2])
    test = next(ex for ex in ds.examples("test") if ex.user == 0)
    assert (test.history, test.target) == (seq[:-1][-ds.max_history:], seq[-1])
    with pytest.raises(ValueError, match="no held-out item in split 'train'"):
        ds.held_out(0, "train")
