"""Self-describing, strict artifacts: safetensors for tensors, JSONL for records.

Every artifact carries one header (a JSON object) that says what it is and where it
came from:

    format          "mgr-artifact"
    kind            e.g. "dataset"; readers refuse any other kind
    schema_version  an integer per kind; readers refuse versions they do not know
    created_by      command line, mgr version, python version, UTC time
    config          the configuration that made it
    inputs          parent artifacts: role, path (relative to this file), kind, content_hash
    sources         raw files it was made from: path, bytes, sha256
    meta            kind-specific facts (counts, item order hash, ...)
    content_hash    "sha256:<hex>" of the payload and of every other header field but
                    created_by (descriptive only), so an edited config or meta is caught
    n_records       number of records (JSONL) or tensors (safetensors)

Where the header lives:
  * JSONL: the first line is `{"mgr_artifact": <header>}`; one record per line follows.
    The payload is the bytes after the first newline.
  * safetensors: `__metadata__["mgr_artifact"]` holds the header as a JSON string.
    The payload is the tensor index (names, dtypes, shapes, offsets) and the data section.

Writes are atomic (temporary file in the same folder, fsync, then a hard link that fails
if the output exists, or a rename with `force=True`), so of two writers of one new output
exactly one succeeds. Reads verify the content hash, so a truncated or edited file stops
with a one-line error that names it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import secrets
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from mgr_cli import __version__
from mgr_cli.errors import MgrError

FORMAT = "mgr-artifact"
JSONL_KEY = "mgr_artifact"
_JSONL_PREFIX = b'{"' + JSONL_KEY.encode() + b'"'

# kind -> schema versions this code reads. The last one is the version it writes.
# Version 2: the content hash covers the header (version 1 hashed the payload only).
SCHEMAS: dict[str, tuple[int, ...]] = {
    "dataset": (2,),            # mgr prepare
    "embeddings": (2,),         # mgr embed
    "semantic-ids": (2,),       # mgr quantize
    "semantic-ids-view": (2,),  # mgr quantize: the readable JSONL beside the IDs
    "tokenized": (2,),          # mgr tokenize
    "run": (2,),                # mgr align / mgr train: run.jsonl in the run folder
    "predictions": (2,),        # mgr evaluate
    "metrics": (2,),            # mgr evaluate
}
# Header fields the content hash leaves out: itself, and created_by (command line,
# versions, time, timings), which says what made the artifact, not what it means.
DESCRIPTIVE = ("created_by", "content_hash")


class ArtifactError(MgrError):
    """An artifact is missing, of the wrong kind or version, damaged, or inconsistent."""


@dataclass
class Provenance:
    """Who made an artifact: the command line (if any), its configuration, and timings
    (descriptive, like the command line: kept in created_by, out of the content hash)."""

    command: str = "python API"
    config: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)


@dataclass
class Input:
    """A parent artifact, as recorded in a child's header."""

    role: str
    path: Path
    header: dict[str, Any]


def register_kind(kind: str, versions: tuple[int, ...]) -> None:
    """Let later stages declare the artifact kinds they read and write."""
    SCHEMAS[kind] = versions


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()


def source_entry(path: Path) -> dict[str, Any]:
    """Record a raw input file (not an artifact): its path, size and hash."""
    path = Path(path)
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def check_output(path: Path | str, force: bool) -> Path:
    """Refuse to overwrite an existing output unless forced. Call before expensive work."""
    path = Path(path)
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ArtifactError(f"{path}: {parent} is a file, not a folder; give another output path")
    if path.exists() and not force:
        raise ArtifactError(f"{path} already exists; pass --force to overwrite it")
    if path.exists() and path.is_dir():
        raise ArtifactError(f"{path} is a directory; give a file path for the output")
    return path


def content_hash(header: dict, payload_digest: str) -> str:
    """The hash of a payload (its digest) with every header field but the descriptive ones."""
    meaning = {k: v for k, v in header.items() if k not in DESCRIPTIVE}
    h = hashlib.sha256(json.dumps(meaning, sort_keys=True, ensure_ascii=False,
                                  separators=(",", ":")).encode())
    h.update(payload_digest.encode())
    return "sha256:" + h.hexdigest()


def _header(kind: str, out: Path, prov: Provenance, inputs: Iterable[Input],
            sources: Iterable[dict], meta: dict, payload_digest: str, n: int) -> dict:
    if kind not in SCHEMAS:
        raise ArtifactError(f"unknown artifact kind {kind!r}; known: {', '.join(sorted(SCHEMAS))}")
    out_dir = out.resolve().parent
    header = {
        "format": FORMAT,
        "kind": kind,
        "schema_version": SCHEMAS[kind][-1],
        "created_by": {
            "command": prov.command,
            "mgr_version": __version__,
            "python": platform.python_version(),
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **prov.timing,
        },
        "config": prov.config,
        "inputs": [
            {
                "role": i.role,
                "path": os.path.relpath(Path(i.path).resolve(), out_dir),
                "kind": i.header["kind"],
                "content_hash": i.header["content_hash"],
            }
            for i in inputs
        ],
        "sources": list(sources),
        "meta": meta,
        "content_hash": "",
        "n_records": n,
    }
    header = json.loads(_dumps(header))  # hashed as readers will see it (e.g. keys as text)
    header["content_hash"] = content_hash(header, payload_digest)
    return header


def _temp(path: Path, what: str) -> Path:
    """A hidden name beside `path`, unique to one writer (threads included)."""
    return path.parent / f".{path.name}.{what}-{os.getpid()}-{secrets.token_hex(4)}"


def atomic_write(path: Path, write: Callable[[Any], None], force: bool) -> None:
    """Write through `write(fileobj)` to a temporary file, then put it at `path`: with
    `force` by a rename; else by a hard link, which fails if `path` exists by then (so of
    two writers of one new output only one succeeds)."""
    check_output(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp(path, "tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _link_new(tmp: Path, path: Path) -> None:
    """Give `tmp` the name `path` unless that exists; exclusive even between processes."""
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: claim the name, then rename
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            os.replace(tmp, path)
    except FileExistsError:
        raise ArtifactError(f"{path} already exists (written meanwhile by another command); "
                            "pass --force to overwrite it") from None


# ----------------------------------------------------------------------------- JSONL

def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def write_jsonl(path: Path | str, kind: str, records: Iterable[dict], *,
                provenance: Provenance | None = None, inputs: Iterable[Input] = (),
                sources: Iterable[dict] = (), meta: dict | None = None,
                force: bool = False) -> dict:
    """Write records as a JSONL artifact; returns its header.

    Records are streamed (any iterable, consumed once) to a temporary body file while
    hashing, so memory does not grow with their number; `meta` may be filled in by
    the producer while the records are consumed (it is read after the last one).
    """
    path = Path(path)
    check_output(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = _temp(path, "body")
    h, n = hashlib.sha256(), 0
    try:
        with open(body, "wb") as f:
            for r in records:
                line = _dumps(r) + b"\n"
                h.update(line)
                f.write(line)
                n += 1
        header = _header(kind, path, provenance or Provenance(), inputs, sources, meta or {},
                         "sha256:" + h.hexdigest(), n)
        first = _dumps({JSONL_KEY: header}) + b"\n"

        def write(f) -> None:
            f.write(first)
            with open(body, "rb") as src:
                while block := src.read(1 << 20):
                    f.write(block)

        atomic_write(path, write, force)
    finally:
        body.unlink(missing_ok=True)
    return header


def _split_jsonl(path: Path, data: bytes) -> tuple[dict, bytes]:
    nl = data.find(b"\n")
    if not data.startswith(_JSONL_PREFIX) or nl < 0:
        raise ArtifactError(f"{path}: not an mgr JSONL artifact (no header line)")
    try:
        header = json.loads(data[:nl])[JSONL_KEY]
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise ArtifactError(f"{path}: damaged header line ({e})") from None
    return header, data[nl + 1:]


def _check_payload(path: Path, header: dict, payload_digest: str, n: int) -> None:
    if n < header["n_records"]:
        raise ArtifactError(
            f"{path}: truncated: {n} of {header['n_records']} records; re-create it")
    digest = content_hash(header, payload_digest)
    if digest != header["content_hash"]:
        raise ArtifactError(
            f"{path}: corrupted: content hash {digest[:19]}... does not match the header's "
            f"{header['content_hash'][:19]}... (its data or header was changed); re-create it")


def read_jsonl(path: Path | str, kind: str | None = None) -> tuple[dict, list[dict]]:
    """Read a JSONL artifact, verify it, and return (header, records)."""
    path = _existing(path)
    _expect_format(path, "jsonl", kind)
    header, body = _split_jsonl(path, path.read_bytes())
    _check_kind(path, header, kind)
    n = body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)
    _check_payload(path, header, "sha256:" + hashlib.sha256(body).hexdigest(), n)
    records = []
    for lineno, line in enumerate(body.splitlines(), start=2):
        try:
            records.append(json.loads(line))
        except (ValueError, RecursionError) as e:
            raise ArtifactError(f"{path}:{lineno}: invalid JSON ({e})") from None
    return header, records


# ----------------------------------------------------------------------- safetensors

def _st_parse(path: Path, data: bytes) -> tuple[dict, int]:
    if len(data) < 8:
        raise ArtifactError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or data[8:9] != b"{":
        raise ArtifactError(f"{path}: not a safetensors file, or its header is truncated")
    try:
        index = json.loads(data[8:8 + n])
    except (ValueError, RecursionError):
        raise ArtifactError(f"{path}: damaged safetensors header") from None
    return index, 8 + n


def _st_digest(index: dict, payload: bytes) -> str:
    tensors = {k: v for k, v in index.items() if k != "__metadata__"}
    h = hashlib.sha256(json.dumps(tensors, sort_keys=True).encode())
    h.update(payload)
    return "sha256:" + h.hexdigest()


def write_tensors(path: Path | str, kind: str, tensors: dict[str, Any], *,
                  provenance: Provenance | None = None, inputs: Iterable[Input] = (),
                  sources: Iterable[dict] = (), meta: dict | None = None,
                  force: bool = False) -> dict:
    """Write named arrays (numpy or torch) as a safetensors artifact; returns its header."""
    from safetensors.numpy import save

    path = Path(path)
    check_output(path, force)
    arrays = {k: np.ascontiguousarray(_to_numpy(v)) for k, v in tensors.items()}
    plain = save(arrays)
    index, start = _st_parse(path, plain)
    header = _header(kind, path, provenance or Provenance(), inputs, sources, meta or {},
                     _st_digest(index, plain[start:]), len(arrays))
    blob = save(arrays, metadata={JSONL_KEY: json.dumps(header, ensure_ascii=False)})
    atomic_write(path, lambda f: f.write(blob), force)
    return header


def _to_numpy(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):  # torch tensor, without importing torch here
        v = v.detach().cpu()
        if str(v.dtype) == "torch.bfloat16":
            v = v.float()
        return v.numpy()
    return np.asarray(v)


def _st_header(path: Path, data: bytes) -> tuple[dict, dict, int]:
    index, start = _st_parse(path, data)
    meta = index.get("__metadata__") or {}
    if not isinstance(meta, dict) or not isinstance(meta.get(JSONL_KEY), str):
        raise ArtifactError(f"{path}: a safetensors file without an mgr header "
                            "(not made by mgr); import it with the matching command")
    try:
        header = json.loads(meta[JSONL_KEY])
    except (ValueError, RecursionError):
        raise ArtifactError(f"{path}: damaged mgr header in safetensors metadata") from None
    return header, index, start


def read_tensors(path: Path | str, kind: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a safetensors artifact, verify it, and return (header, name -> numpy array)."""
    from safetensors.numpy import load

    path = _existing(path)
    _expect_format(path, "safetensors", kind)
    data = path.read_bytes()
    header, index, start = _st_header(path, data)
    _check_kind(path, header, kind)
    try:
        ends = [int(v["data_offsets"][1]) for k, v in index.items() if k != "__metadata__"]
    except (TypeError, KeyError, IndexError, ValueError):
        raise ArtifactError(f"{path}: damaged safetensors header (tensor offsets)") from None
    if start + max(ends, default=0) > len(data):
        raise ArtifactError(f"{path}: truncated: {len(data)} bytes, the header promises "
                            f"{start + max(ends)}; re-create it")
    _check_payload(path, header, _st_digest(index, data[start:]), header.get("n_records", 0))
    try:
        return header, load(data)
    except Exception as e:  # safetensors raises its own error types
        raise ArtifactError(f"{path}: unreadable tensors ({e})") from None


# ---------------------------------------------------------------------------- common

def _existing(path: Path | str) -> Path:
    path = Path(path)
    try:
        if not path.exists():
            raise ArtifactError(f"{path}: no such file")
        if path.is_dir():
            raise ArtifactError(f"{path}: is a directory, expected an artifact file")
    except (OSError, ValueError) as e:  # e.g. a name too long, or with a NUL byte
        raise ArtifactError(f"{path}: cannot be read ({e})") from None
    return path


# The header fields every reader relies on, with their types.
_FIELDS = {"format": str, "kind": str, "schema_version": int, "created_by": dict,
           "config": dict, "inputs": list, "sources": list, "meta": dict,
           "content_hash": str, "n_records": int}
_INPUT_FIELDS = ("role", "path", "kind", "content_hash")
_CREATED_FIELDS = ("command", "mgr_version", "python", "time")


def _check_kind(path: Path, header: dict, kind: str | None) -> None:
    fmt = header.get("format") if isinstance(header, dict) else None
    if fmt != FORMAT:
        raise ArtifactError(f"{path}: not an mgr artifact (format {fmt!r})")
    got = header.get("kind")
    if kind is not None and got != kind:
        raise ArtifactError(f"{path}: is a {got!r} artifact, expected {kind!r}")
    version = header.get("schema_version")
    known = SCHEMAS.get(got) if isinstance(got, str) else None
    if known is None:
        raise ArtifactError(f"{path}: unknown artifact kind {got!r} (mgr {__version__}); "
                            "upgrade mgr or re-create the file")
    if isinstance(version, int) and version < min(known):
        raise ArtifactError(f"{path}: {got} schema version {version} was written by an older "
                            f"mgr (its content hash does not cover its header); re-create it "
                            f"with mgr {__version__}")
    if version not in known:
        raise ArtifactError(f"{path}: {got} schema version {version} is not supported by "
                            f"mgr {__version__} (reads {', '.join(map(str, known))}); "
                            "upgrade mgr or re-create the file")
    _check_fields(path, header)


def _check_fields(path: Path, header: dict) -> None:
    """Every field readers use, of the right type (a hand-edited header can lack any)."""
    bad = [k for k, t in _FIELDS.items() if not isinstance(header.get(k), t)]
    if not bad:
        bad += [f"created_by.{k}" for k in _CREATED_FIELDS if k not in header["created_by"]]
        bad += [f"inputs[{i}]" for i, e in enumerate(header["inputs"]) if not (
            isinstance(e, dict) and all(isinstance(e.get(k), str) for k in _INPUT_FIELDS))]
        bad += [f"sources[{i}]" for i, s in enumerate(header["sources"])
                if not (isinstance(s, dict) and isinstance(s.get("path"), str))]
    if bad:
        raise ArtifactError(f"{path}: damaged header (missing or malformed: {', '.join(bad[:3])}"
                            f"{', ...' if len(bad) > 3 else ''}); re-create it")


def artifact_format(path: Path | str) -> str:
    """'jsonl' or 'safetensors', from the file's first bytes."""
    path = _existing(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(_JSONL_PREFIX[: len(head)]) and head:
        return "jsonl"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    raise ArtifactError(f"{path}: not an mgr artifact (neither mgr JSONL nor safetensors)")


def _expect_format(path: Path, fmt: str, kind: str | None) -> None:
    """A file of the other format: name its kind if it has one, else say what it is."""
    got = artifact_format(path)
    if got != fmt:
        read_header(path, kind)  # raises "is a 'x' artifact, expected 'y'" when kinds differ
        raise ArtifactError(f"{path}: is an mgr {got} artifact, expected {fmt}")


def read_header(path: Path | str, kind: str | None = None) -> dict:
    """Read only the header (cheap): for inspection and consistency checks."""
    path = _existing(path)
    fmt = artifact_format(path)
    if fmt == "jsonl":
        with open(path, "rb") as f:
            first = f.readline()
        header, _ = _split_jsonl(path, first if first.endswith(b"\n") else first + b"\n")
    else:
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            data = head + f.read(min(n, path.stat().st_size))  # a huge length is a damaged file
        header = _st_header(path, data)[0]
    _check_kind(path, header, kind)
    return header


def verify(path: Path | str) -> dict:
    """Re-hash an artifact's payload against its header; returns the header."""
    fmt = artifact_format(path)
    return (read_jsonl if fmt == "jsonl" else read_tensors)(path)[0]
