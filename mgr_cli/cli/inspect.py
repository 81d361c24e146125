"""mgr inspect: an artifact's header and lineage; --verify re-hashes it and its parents.

    mgr inspect hm.dataset.jsonl
    mgr inspect hm.dataset.jsonl --verify
    mgr inspect hm.dataset.jsonl --json | jq .meta.stats
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mgr_cli.cli.common import fail, handle_errors


def _lines(node, depth: int = 0) -> list[str]:
    pad = "  " * depth
    h = node.header
    if h is None:
        return [f"{pad}{node.role}: {node.path}  [{node.status}]"]
    status = "" if node.status == "unchecked" else f"  [{node.status}]"
    out = [f"{pad}{node.role}: {node.path}  ({h['kind']} v{h['schema_version']}, "
           f"{h['content_hash'][:19]}...){status}"]
    for path, st in node.sources:
        out.append(f"{pad}  source: {path}" + ("" if st == "unchecked" else f"  [{st}]"))
    for parent in node.parents:
        out += _lines(parent, depth + 1)
    return out


@handle_errors
def inspect_cmd(
    path: Path = typer.Argument(..., help="An mgr artifact (.jsonl or .safetensors)."),
    verify: bool = typer.Option(False, "--verify", help="Re-hash it, its parents and sources."),
    json_out: bool = typer.Option(False, "--json", help="Print the header as JSON."),
) -> None:
    """Show what an artifact is, what made it, and what it was made from."""
    from mgr_cli.artifacts import lineage, problems, read_header

    header = read_header(path)
    tree = lineage(path, check=verify)
    if json_out:
        print(json.dumps(header, indent=1, ensure_ascii=False))
    else:
        cb = header["created_by"]
        print(f"{path}: {header['kind']} artifact, schema v{header['schema_version']}, "
              f"{header['n_records']} records")
        print(f"made by:  {cb['command']}")
        print(f"          mgr {cb['mgr_version']}, python {cb['python']}, {cb['time']}")
        print(f"content:  {header['content_hash']}")
        print("config:   " + json.dumps(header["config"], ensure_ascii=False))
        for key, value in header["meta"].items():
            print(f"{key + ':':<10}{json.dumps(value, ensure_ascii=False)}")
        print("lineage:")
        for line in _lines(tree, 1):
            print(line)
    if verify:
        bad = problems(tree)
        if bad:
            fail(bad[0] + (f" (and {len(bad) - 1} more problems)" if len(bad) > 1 else ""))
        print("verified: the artifact, its parents and sources match their recorded hashes",
              file=__import__("sys").stderr)
