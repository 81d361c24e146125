"""mgr ids: semantic IDs made by other tokenizers, in and out, checked against the dataset.

    mgr ids import letter.index.json --dataset beauty.dataset.jsonl --modality text -o letter.ids.safetensors
    mgr ids import codes.csv --dataset beauty.dataset.jsonl --modality image -o img.ids.safetensors
    mgr ids export text.ids.safetensors -o text.index.json      # LC-Rec JSON; or .csv
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from mgr_cli.cli.common import choice, command_line, handle_errors, log
from mgr_cli.errors import MgrError

app = typer.Typer(help="Semantic IDs made elsewhere, in and out: LC-Rec JSON (LC-Rec, LETTER, "
                       "MQL4GRec) or CSV of integer codes.", no_args_is_help=True)


def _sizes(text: Optional[str]) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(s < 1 for s in sizes):
        raise MgrError(f"--codebook-sizes must be positive integers, one per level "
                       f"(e.g. 256,256,256), got {text!r}")
    return sizes


@app.command("import")
@handle_errors
def ids_import(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="IDs: LC-Rec JSON (.json: {item index or id: [\"<a_12>\", ...]}) or CSV (.csv: item_id,c0,c1,...)."),
    dataset: Path = typer.Option(..., help="The prepared dataset (mgr prepare) whose items the IDs are for."),
    modality: str = typer.Option(..., help="Modality of the IDs (text, image, fused, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Semantic-ID artifact to write (.safetensors); a .ids.jsonl view goes beside it."),
    codebook_sizes: Optional[str] = typer.Option(None, help="Codes per level, e.g. 256,256,256 (default: the largest code of each level + 1); codes outside are refused."),
    dedup: str = typer.Option("auto", callback=choice(("auto", "always", "never")), help="Append a level making IDs unique: auto (only on collisions), always, never."),
    json_out: bool = typer.Option(False, "--json", help="Print the ID statistics as JSON on stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Import semantic IDs made elsewhere: every dataset item needs exactly one ID of the same length."""
    from mgr_cli.cli.quantize import show
    from mgr_cli.quantize.exchange import import_ids
    from mgr_cli.quantize.ids import DEDUP

    if dedup not in DEDUP:
        raise MgrError(f"--dedup must be one of {', '.join(DEDUP)}, got {dedup!r}")
    header = import_ids(source, dataset, out, modality=modality, dedup=dedup,
                        codebook_sizes=_sizes(codebook_sizes), command=command_line(ctx),
                        force=force)
    show(header, out)
    if json_out:
        print(json.dumps({"path": str(out), **header["meta"]}))


@app.command("export")
@handle_errors
def ids_export(
    source: Path = typer.Argument(..., help="Semantic-ID artifact."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write; its suffix picks the format: .json (LC-Rec, keyed by item index) or .csv (item_id,c0,c1,...)."),
    dataset: Optional[Path] = typer.Option(None, help="Dataset for the item ids of a CSV (default: the one in SOURCE's lineage)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
) -> None:
    """Export semantic IDs as LC-Rec JSON or CSV, in the dataset's item order."""
    from mgr_cli.quantize.exchange import export_ids

    n = export_ids(source, out, dataset=dataset, force=force)
    log(f"wrote {n} IDs to {out}")
