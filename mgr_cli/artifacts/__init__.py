"""Reading, writing, checking and hashing mgr artifacts (see `core` for the format)."""

from mgr_cli.artifacts.core import (
    SCHEMAS,
    ArtifactError,
    Input,
    Provenance,
    artifact_format,
    check_output,
    read_header,
    read_jsonl,
    read_tensors,
    register_kind,
    sha256_file,
    source_entry,
    verify,
    write_jsonl,
    write_tensors,
)
from mgr_cli.artifacts.lineage import (Node, find_ancestor, lineage, model_problem, problems,
                                      require_agreement)

__all__ = [
    "SCHEMAS", "ArtifactError", "Input", "Provenance", "artifact_format", "check_output",
    "read_header", "read_jsonl", "read_tensors", "register_kind", "sha256_file",
    "source_entry", "verify", "write_jsonl", "write_tensors", "Node", "lineage", "problems",
    "require_agreement", "find_ancestor", "model_problem",
]
