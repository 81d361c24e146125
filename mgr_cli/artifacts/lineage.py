"""Lineage of artifacts: finding parents, re-verifying a tree, checking that inputs agree."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgr_cli.artifacts.core import ArtifactError, read_header, sha256_file, verify


@dataclass
class Node:
    """One artifact in a lineage tree, with what verification found."""

    role: str
    path: Path
    header: dict[str, Any] | None
    status: str  # "ok", "unchecked", or a one-line problem
    parents: list["Node"] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)  # (path, status)


def parent_path(child: Path, entry: dict) -> Path:
    p = Path(entry["path"])
    return p if p.is_absolute() else (child.resolve().parent / p)


def lineage(path: Path | str, *, check: bool = False, role: str = "artifact",
            expected_hash: str | None = None, _seen: set | None = None) -> Node:
    """Walk an artifact and its parents. With `check`, re-hash each one (and its sources)."""
    path = Path(path)
    seen = _seen if _seen is not None else set()
    try:
        header = verify(path) if check else read_header(path)
        status = "ok" if check else "unchecked"
    except ArtifactError as e:
        return Node(role, path, None, str(e))
    if expected_hash and header["content_hash"] != expected_hash:
        status = (f"{path}: content hash {header['content_hash'][:19]}... is not the one its "
                  f"child recorded ({expected_hash[:19]}...): it was re-made or replaced")
    elif check and header["kind"] == "run" and "model_sha256" in header["meta"]:
        status = model_problem(path, header) or status
    node = Node(role, path, header, status)
    key = path.resolve()
    if key in seen:
        return node
    seen.add(key)
    for src in header.get("sources", []):
        node.sources.append((src["path"], _source_status(src) if check else "unchecked"))
    for entry in header.get("inputs", []):
        node.parents.append(lineage(parent_path(path, entry), check=check, role=entry["role"],
                                    expected_hash=entry["content_hash"], _seen=seen))
    return node


def model_problem(run_file: Path, header: dict) -> str | None:
    """What is wrong with the model/ beside a run.jsonl: missing, or not the one whose
    model_sha256 the run recorded; None when it is fine."""
    model = Path(run_file).parent / "model" / "model.safetensors"
    if not model.is_file():
        return f"{model.parent}: no model in this run folder; train it with mgr train"
    want = header["meta"].get("model_sha256")
    got = sha256_file(model) if want else None
    if got != want:
        return (f"{model}: sha256 {got[7:19]}... is not the {want[7:19]}... that the run "
                "recorded: the model was changed or damaged; restore it or train again")
    return None


def _source_status(src: dict) -> str:
    p = Path(src["path"])
    if not p.exists():
        return "missing"
    if src.get("sha256") and sha256_file(p) != src["sha256"]:
        return "changed since the artifact was made"
    return "ok"


def problems(node: Node) -> list[str]:
    """Every failed check in a tree, one line each."""
    out = [] if node.status in ("ok", "unchecked") else [node.status]
    out += [f"source {p}: {s}" for p, s in node.sources if s not in ("ok", "unchecked")]
    for parent in node.parents:
        out += problems(parent)
    return out


def require_agreement(artifacts: list[tuple[Path, dict]], key: str, what: str) -> None:
    """Stop unless every artifact's meta[key] is the same (e.g. the item order hash).

    Call it before any expensive work: the error names both files and what disagrees.
    """
    first_path, first = artifacts[0]
    want = first.get("meta", {}).get(key)
    for path, header in artifacts[1:]:
        got = header.get("meta", {}).get(key)
        if got != want:
            raise ArtifactError(
                f"{first_path} and {path} disagree on {what} ({key} {_short(want)} vs "
                f"{_short(got)}); make both from the same dataset")


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 24 else s[:21] + "..."


def find_ancestor(path: Path | str, kind: str, header: dict | None = None) -> Path:
    """The nearest artifact of `kind` in `path`'s lineage (e.g. the dataset an ID artifact
    was made from), following the recorded input paths."""
    path = Path(path)
    header = header or read_header(path)
    for entry in header.get("inputs", []):
        if entry["kind"] == kind:
            return parent_path(path, entry)
    for entry in header.get("inputs", []):
        parent = parent_path(path, entry)
        if parent.exists():
            try:
                return find_ancestor(parent, kind)
            except ArtifactError:
                continue
    raise ArtifactError(f"{path}: no {kind} artifact in its lineage; pass it explicitly")
