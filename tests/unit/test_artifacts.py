"""The artifact rules: round trip, provenance, tamper detection, strict readers,
atomic writes, lineage and agreement checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mgr_cli import __version__
from mgr_cli.artifacts import (SCHEMAS, ArtifactError, Input, Provenance, artifact_format,
                               lineage, problems, read_header, read_jsonl, read_tensors,
                               register_kind, require_agreement, write_jsonl, write_tensors)
from mgr_cli.artifacts import core

register_kind("test-records", (1,))
register_kind("test-tensors", (1, 2))


def _records(n=5):
    return [{"i": i, "text": f"item {i} ü"} for i in range(n)]


def test_jsonl_round_trip_and_header(tmp_path):
    p = tmp_path / "a.jsonl"
    prov = Provenance("mgr test --x 1", {"x": 1})
    h = write_jsonl(p, "test-records", _records(), provenance=prov, meta={"n": 5})
    header, recs = read_jsonl(p, "test-records")
    assert recs == _records()
    assert header == h
    assert header["kind"] == "test-records" and header["schema_version"] == 1
    assert header["created_by"]["command"] == "mgr test --x 1"
    assert header["created_by"]["mgr_version"] == __version__
    assert header["config"] == {"x": 1} and header["meta"] == {"n": 5}
    assert header["content_hash"].startswith("sha256:") and header["n_records"] == 5
    assert artifact_format(p) == "jsonl"
    assert read_header(p) == header


def test_tensors_round_trip_and_inputs(tmp_path):
    parent = tmp_path / "a.jsonl"
    write_jsonl(parent, "test-records", _records())
    p = tmp_path / "sub" / "t.safetensors"
    arrays = {"codes": np.arange(12, dtype=np.int64).reshape(4, 3),
              "emb": np.linspace(0, 1, 8, dtype=np.float32).reshape(2, 4)}
    h = write_tensors(p, "test-tensors", arrays,
                      inputs=[Input("dataset", parent, read_header(parent))])
    header, got = read_tensors(p, "test-tensors")
    assert header == h and header["schema_version"] == 2
    for k in arrays:
        np.testing.assert_array_equal(got[k], arrays[k])
    assert header["inputs"] == [{"role": "dataset", "path": "../a.jsonl", "kind": "test-records",
                                 "content_hash": read_header(parent)["content_hash"]}]
    assert artifact_format(p) == "safetensors"


def test_torch_tensors_are_accepted(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "t.safetensors"
    write_tensors(p, "test-tensors", {"x": torch.ones(2, 3, dtype=torch.bfloat16)})
    _, got = read_tensors(p)
    assert got["x"].dtype == np.float32 and got["x"].sum() == 6


def test_same_content_same_hash(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", "test-records", _records(), provenance=Provenance("x"))
    b = write_jsonl(tmp_path / "b.jsonl", "test-records", _records(), provenance=Provenance("y"))
    c = write_jsonl(tmp_path / "c.jsonl", "test-records", _records(4))
    assert a["content_hash"] == b["content_hash"] != c["content_hash"]


def test_jsonl_edit_is_detected(tmp_path):
    p = tmp_path / "a.jsonl"
    write_jsonl(p, "test-records", _records())
    p.write_text(p.read_text().replace("item 3", "item 9"))
    with pytest.raises(ArtifactError, match=r"a\.jsonl: corrupted: content hash .* does not match"):
        read_jsonl(p)


def test_jsonl_truncation_is_detected(tmp_path):
    p = tmp_path / "a.jsonl"
    write_jsonl(p, "test-records", _records(50))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"truncated: \d+ of 50 records"):
        read_jsonl(p)


def test_tensor_edit_and_truncation_are_detected(tmp_path):
    p = tmp_path / "t.safetensors"
    write_tensors(p, "test-tensors", {"x": np.arange(100, dtype=np.float32)})
    data = bytearray(p.read_bytes())
    data[-5] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupted"):
        read_tensors(p)
    p.write_bytes(bytes(data[:-40]))
    with pytest.raises(ArtifactError, match="truncated"):
        read_tensors(p)


def test_wrong_kind_and_unknown_version(tmp_path):
    p = tmp_path / "a.jsonl"
    write_jsonl(p, "test-records", _records())
    with pytest.raises(ArtifactError, match=r"is a 'test-records' artifact, expected 'dataset'"):
        read_jsonl(p, "dataset")
    header, body = p.read_text().split("\n", 1)
    h = json.loads(header)
    h["mgr_artifact"]["schema_version"] = 99
    p.write_text(json.dumps(h) + "\n" + body)
    with pytest.raises(ArtifactError, match="test-records schema version 99 is not supported"):
        read_jsonl(p)


def test_not_an_artifact(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n')
    with pytest.raises(ArtifactError, match="not an mgr artifact"):
        read_header(p)
    with pytest.raises(ArtifactError, match="no such file"):
        read_header(tmp_path / "missing.jsonl")


def test_existing_output_is_kept_without_force(tmp_path):
    p = tmp_path / "a.jsonl"
    write_jsonl(p, "test-records", _records(3))
    before = p.read_bytes()
    with pytest.raises(ArtifactError, match="already exists; pass --force to overwrite it"):
        write_jsonl(p, "test-records", _records(4))
    assert p.read_bytes() == before
    write_jsonl(p, "test-records", _records(4), force=True)
    assert len(read_jsonl(p)[1]) == 4


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    p = tmp_path / "a.jsonl"

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(core.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_jsonl(p, "test-records", _records())
    assert list(tmp_path.iterdir()) == []


def test_lineage_verify_finds_a_replaced_parent(tmp_path):
    parent = tmp_path / "a.jsonl"
    write_jsonl(parent, "test-records", _records())
    child = tmp_path / "t.safetensors"
    write_tensors(child, "test-tensors", {"x": np.zeros(3)},
                  inputs=[Input("dataset", parent, read_header(parent))])
    tree = lineage(child, check=True)
    assert problems(tree) == [] and tree.parents[0].status == "ok"
    write_jsonl(parent, "test-records", _records(2), force=True)
    bad = problems(lineage(child, check=True))
    assert len(bad) == 1 and "is not the one its child recorded" in bad[0]
    parent.unlink()
    assert "no such file" in problems(lineage(child, check=True))[0]


def test_require_agreement_names_both_files(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", "test-records", [], meta={"item_ids_hash": "sha256:1"})
    b = write_jsonl(tmp_path / "b.jsonl", "test-records", [], meta={"item_ids_hash": "sha256:2"})
    require_agreement([(Path("a"), a), (Path("a2"), a)], "item_ids_hash", "item order")
    with pytest.raises(ArtifactError, match=r"^a and b disagree on item order \(item_ids_hash "
                       r"sha256:1 vs sha256:2\); make both from the same dataset$"):
        require_agreement([(Path("a"), a), (Path("b"), b)], "item_ids_hash", "item order")


def test_unknown_kind_cannot_be_written(tmp_path):
    assert "dataset" in SCHEMAS
    with pytest.raises(ArtifactError, match="unknown artifact kind 'nope'"):
        write_jsonl(tmp_path / "x.jsonl", "nope", [])
