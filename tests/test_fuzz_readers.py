"""The readers fuzzed (issue 16): random bytes, truncations, flipped and inserted bytes,
other encodings, deep nesting, edited header fields and huge header lengths, fed to
`mgr inspect [--verify]` (JSONL and safetensors artifacts) and `mgr prepare generic` (CSV
and JSON-lines inputs, plain and gzipped).

Each case either still reads (exit 0, no error) or stops with exit 1 or 2, exactly one
`Error:` line, no traceback and no file written. Seeded, so every run tries the same
cases; FUZZ_CASES per target (a few seconds in all). To search further, set
MGR_FUZZ_CASES (more cases) and MGR_FUZZ_SEED (other cases).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import interactions_csv, items_csv, write
from mgr_cli.cli import app

FUZZ_CASES = int(os.environ.get("MGR_FUZZ_CASES", "20"))
SEED = os.environ.get("MGR_FUZZ_SEED", "0")
runner = CliRunner()

ODD_VALUES = [None, True, 0, -1, 10 ** 400, 1.5, "", "x" * 300, "../../etc/passwd", "\u00e9\u0000",
              [], [1, "a"], {}, {"a": {"b": []}}]
SPECIAL_BYTES = b'\x00\xff\xfe\n\r",{}[]\\:\x80\xc3'


# ---------------------------------------------------------------------------- mutations

def _random_bytes(rng: random.Random, data: bytes) -> bytes:
    return rng.randbytes(rng.randrange(0, 2 * len(data) + 16))


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[:rng.randrange(0, len(data))]


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(out))
        out[i] = rng.choice(SPECIAL_BYTES) if rng.random() < 0.5 else rng.randrange(256)
    return bytes(out)


def _insert(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.randbytes(rng.randint(1, 32)) + data[i:]


def _cut(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 64):]


def _nest(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice([b"[", b'{"a":']) * 100_000 + data[i:]


def _encoding(rng: random.Random, data: bytes) -> bytes:
    text = data.decode("utf-8", "replace").replace("a", "\u00e4", 1)
    return text.encode(rng.choice(["utf-16", "utf-32", "latin-1", "cp1252", "utf-16-be"]),
                       "replace")


BYTE_MUTATIONS = [_random_bytes, _truncate, _flip, _insert, _cut, _nest, _encoding]


def _odd_json(rng: random.Random, obj):
    """`obj` (parsed JSON) with one value somewhere in it replaced, or one key dropped."""
    if isinstance(obj, dict) and obj and rng.random() < 0.7:
        key = rng.choice(list(obj))
        if rng.random() < 0.2:
            return {k: v for k, v in obj.items() if k != key}
        return {**obj, key: _odd_json(rng, obj[key])}
    if isinstance(obj, list) and obj and rng.random() < 0.7:
        i = rng.randrange(len(obj))
        return obj[:i] + [_odd_json(rng, obj[i])] + obj[i + 1:]
    return rng.choice(ODD_VALUES)


def _jsonl_header(rng: random.Random, data: bytes) -> bytes:
    first, rest = data.split(b"\n", 1)
    header = json.loads(first)
    return json.dumps({"mgr_artifact": _odd_json(rng, header["mgr_artifact"])}).encode() + b"\n" + rest


def _st_index(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _st_pack(index, payload: bytes) -> bytes:
    head = json.dumps(index).encode()
    return struct.pack("<Q", len(head)) + head + payload


def _st_header(rng: random.Random, data: bytes) -> bytes:
    """The mgr header in the metadata, or the tensor index itself, with one odd value."""
    index, payload = _st_index(data)
    if rng.random() < 0.5:
        header = json.loads(index["__metadata__"]["mgr_artifact"])
        index["__metadata__"]["mgr_artifact"] = json.dumps(_odd_json(rng, header))
    else:
        index = _odd_json(rng, index)
    return _st_pack(index, payload)


def _st_length(rng: random.Random, data: bytes) -> bytes:
    n = rng.choice([2 ** 62, 2 ** 64 - 1, 2 ** 32, len(data) - 7, len(data), 0, 1, 7])
    return struct.pack("<Q", n) + data[8:]


def _jsonl_records(rng: random.Random, data: bytes) -> bytes:
    """One JSON-lines record (not the header) with one odd value."""
    lines = data.split(b"\n")
    i = rng.randrange(1 if lines[0].startswith(b'{"mgr_artifact"') else 0, len(lines) - 1)
    lines[i] = json.dumps(_odd_json(rng, json.loads(lines[i]))).encode()
    return b"\n".join(lines)


def _gzipped(rng: random.Random, data: bytes) -> bytes:
    """A gzip stream of the file, itself damaged half the time."""
    packed = gzip.compress(data, mtime=0)
    return _flip(rng, packed) if rng.random() < 0.5 else _truncate(rng, packed)


# ---------------------------------------------------------------------------- the harness

def _check(r, outputs: list[Path], folder: Path, before: set[str], what: str) -> str | None:
    """None if the command behaved, else what was wrong."""
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        return f"{what}: {type(r.exception).__name__}: {r.exception}"
    if "Traceback" in r.output:
        return f"{what}: a traceback"
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    if r.exit_code == 0:
        return f"{what}: exit 0 with {errors}" if errors else None
    if r.exit_code not in (1, 2) or len(errors) != 1:
        return f"{what}: exit {r.exit_code}, {len(errors)} error lines: {r.stderr[-300:]!r}"
    written = {p.name for p in folder.iterdir()} - before
    if written or any(p.exists() for p in outputs):
        return f"{what}: failed but wrote {sorted(written) or outputs}"
    return None


def fuzz(seed: str, target: Path, original: bytes, mutations: list[Callable], run: Callable,
         cases: int = FUZZ_CASES) -> tuple[list[str], int]:
    """Run `cases` seeded mutations of `target`; returns (problems, number of errors)."""
    rng = random.Random(f"{SEED}:{seed}")
    problems, errors = [], 0
    for case in range(cases):
        mutate = rng.choice(mutations)
        target.write_bytes(mutate(rng, original))
        before = {p.name for p in target.parent.iterdir()}
        r, outputs = run()
        problem = _check(r, outputs, target.parent, before, f"{seed} case {case} ({mutate.__name__})")
        problems += [problem] if problem else []
        errors += r.exit_code != 0
        for out in outputs:
            if out.exists():
                out.unlink()
    target.write_bytes(original)
    return problems, errors


def mgr(*args):
    return runner.invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------------------- targets

@pytest.fixture
def artifacts(tmp_path, generic_dir) -> dict[str, Path]:
    """A dataset (JSONL) and an embeddings artifact (safetensors) made from it."""
    from mgr_cli.artifacts import Input, read_header, write_tensors

    ds = tmp_path / "art" / "d.jsonl"
    assert mgr("prepare", "generic", generic_dir, "-o", ds, "--k-core", 3).exit_code == 0
    st = ds.parent / "e.safetensors"
    write_tensors(st, "embeddings", {"embeddings": np.arange(16, dtype=np.float32).reshape(4, 4)},
                  inputs=[Input("dataset", ds, read_header(ds))], meta={"modality": "text"})
    return {"jsonl": ds, "safetensors": st}


ARTIFACT_MUTATIONS = {"jsonl": BYTE_MUTATIONS + [_jsonl_header] * 3 + [_jsonl_records],
                      "safetensors": BYTE_MUTATIONS + [_st_header] * 3 + [_st_length] * 2}


@pytest.mark.parametrize("fmt", list(ARTIFACT_MUTATIONS))
@pytest.mark.parametrize("verify", [False, True], ids=["inspect", "inspect --verify"])
def test_inspect_survives_damaged_artifacts(artifacts, fmt, verify):
    path = artifacts[fmt]
    flags = ["--verify"] if verify else []
    problems, errors = fuzz(f"inspect-{fmt}-{verify}", path, path.read_bytes(),
                            ARTIFACT_MUTATIONS[fmt], lambda: (mgr("inspect", path, *flags), []))
    assert not problems, "\n".join(problems)
    assert errors >= FUZZ_CASES // 2  # the cases mostly are damaged files


GOOD_USERS = {"u1": list("abcd"), "u2": list("bcda"), "u3": list("cdab"), "u4": list("dabc")}


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


INPUTS = {  # file name -> its valid content
    "interactions.csv": interactions_csv(GOOD_USERS),
    "items.csv": items_csv("abcd", extra="shoes"),
    "interactions.jsonl": _jsonl([{"user_id": u, "item_id": i, "timestamp": t}
                                  for u, items in GOOD_USERS.items() for t, i in enumerate(items)]),
    "items.jsonl": _jsonl([{"item_id": i, "text": f"text of {i}", "colour": "red"} for i in "abcd"]),
    "interactions.csv.gz": interactions_csv(GOOD_USERS),
}


@pytest.mark.parametrize("name", list(INPUTS))
def test_prepare_generic_survives_damaged_inputs(tmp_path, name):
    src = tmp_path / "src"
    partner = ("items" if name.startswith("interactions") else "interactions") + (
        ".jsonl" if ".jsonl" in name else ".csv")
    write(src / partner, INPUTS[partner])
    text = INPUTS[name].encode()
    mutations = BYTE_MUTATIONS + ([_jsonl_records] * 3 if ".jsonl" in name else [])
    if name.endswith(".gz"):
        mutations, text = [_gzipped, _random_bytes] * 2 + [
            lambda rng, data: gzip.compress(rng.choice(BYTE_MUTATIONS)(rng, data), mtime=0)], text
    out = tmp_path / "out" / "d.jsonl"
    out.parent.mkdir()
    problems, errors = fuzz(f"prepare-{name}", src / name, text, mutations,
                            lambda: (mgr("prepare", "generic", src, "-o", out, "--k-core", 2), [out]))
    leftovers = [p.name for p in out.parent.iterdir() if p.name != "d.jsonl"]
    assert not problems, "\n".join(problems)
    assert not leftovers and errors >= FUZZ_CASES // 4
