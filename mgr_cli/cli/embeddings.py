"""mgr embeddings: vectors made by any encoder, in and out, checked against the dataset.

    mgr embeddings import vectors.npy --ids item_ids.txt --dataset beauty.dataset.jsonl \
        --modality text -o beauty.text.safetensors
    mgr embeddings import vectors.npz --dataset beauty.dataset.jsonl --modality image -o img.safetensors
    mgr embeddings import vectors.csv --dataset beauty.dataset.jsonl --modality text -o t.safetensors
    mgr embeddings export beauty.text.safetensors -o text.npz     # or .npy (+ .ids.txt), .csv, .safetensors
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mgr_cli.cli.common import choice, command_line, handle_errors, log

app = typer.Typer(help="Embeddings made elsewhere, in and out: .npy (+ item ids), .npz, "
                       ".safetensors, CSV.", no_args_is_help=True)


@app.command("import")
@handle_errors
def embeddings_import(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Vectors: .npy (with --ids), .npz, .safetensors or .csv (item_id,v0,v1,...)."),
    dataset: Path = typer.Option(..., help="The prepared dataset (mgr prepare) whose items the vectors are for."),
    modality: str = typer.Option(..., callback=choice(("text", "image", "fused", "collab")), help="text, image, fused, or collab (collaborative, for quantize --method letter --collab)."),
    out: Path = typer.Option(..., "--out", "-o", help="Embeddings artifact to write (.safetensors)."),
    ids: Optional[Path] = typer.Option(None, help="Item ids of SOURCE's rows: a text file (one per line) or a CSV (column --ids-column)."),
    ids_column: str = typer.Option("item_id", help="The column of a CSV --ids file that holds the item ids."),
    drop_extra: bool = typer.Option(False, "--drop-extra", help="Leave out rows of items that are not in the dataset (e.g. dropped by its k-core), instead of stopping."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
) -> None:
    """Import vectors made elsewhere as an embeddings artifact: every dataset item needs
    exactly one finite row; rows are put in the dataset's item order."""
    from mgr_cli.encoders.exchange import import_embeddings

    header = import_embeddings(source, dataset, out, modality=modality, ids=ids,
                               ids_column=ids_column, drop_extra=drop_extra,
                               command=command_line(ctx), force=force)
    m = header["meta"]
    log(f"imported {m['n_items']} x {m['dim']} {m['modality']} embeddings to {out}"
        + (f" ({m['dropped_extra']} rows of items not in the dataset left out)" if m["dropped_extra"] else ""))


@app.command("export")
@handle_errors
def embeddings_export(
    source: Path = typer.Argument(..., help="Embeddings artifact."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write; its suffix picks the format: .npy (item ids beside it, X.ids.txt), .npz, .csv, .safetensors."),
    dataset: Optional[Path] = typer.Option(None, help="Dataset for the item ids (default: the one in SOURCE's lineage)."),
    ids: Optional[Path] = typer.Option(None, help="With .npy: where the item ids go (default: beside OUT, X.ids.txt)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Export an embeddings artifact as plain arrays with their item ids, in the dataset's order."""
    from mgr_cli.encoders.exchange import export_embeddings

    written = export_embeddings(source, out, dataset=dataset, ids_out=ids, force=force)
    log(f"wrote {', '.join(map(str, written))}")
