"""mgr items: grow a catalogue without retraining.

    mgr items add new-items.csv -o grown/ --tokenized lfpp.tok.safetensors      # IDs, embeddings, dataset from its lineage
    mgr items add new-items.csv -o grown/ --ids text.ids.safetensors --ids image.ids.safetensors
    mgr recommend runs/lfpp grown/tok.safetensors                               # can return the new items
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from mgr_cli.cli.common import command_line, handle_errors, log, plugin_option

app = typer.Typer(help="Add items to a catalogue: embedded with the recorded encoders, given "
                       "IDs by the stored (frozen) quantizers.", no_args_is_help=True)


@app.command("add")
@handle_errors
def items_add(
    ctx: typer.Context,
    items: Path = typer.Argument(..., help="New items: a generic items file (.csv or .jsonl: item_id, text, optionally image and other fields), as mgr prepare generic reads."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the extended artifacts (dataset.jsonl, MOD.emb/.ids.safetensors, tok.safetensors)."),
    ids: Optional[List[Path]] = typer.Option(None, "--ids", help="Semantic-ID artifact to extend (one per modality; default: those the --tokenized was made from)."),
    emb: Optional[List[Path]] = typer.Option(None, "--emb", help="Embeddings the IDs were quantized from (default: from the IDs' lineage)."),
    tokenized: Optional[Path] = typer.Option(None, "--tokenized", help="Tokenized artifact to extend (in its vocabulary: a run trained on it can return the new items)."),
    dataset: Optional[Path] = typer.Option(None, help="Dataset (default: the one the IDs name)."),
    images: Optional[Path] = typer.Option(None, help="Folder the new items' image paths are relative to; inside the dataset's image folder (default: that folder)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda: where the encoders run."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary (new IDs, reachability) as JSON on stdout."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
    plugin: Optional[List[Path]] = plugin_option(),
) -> None:
    """Add new items to a catalogue: embed them, assign semantic IDs with the frozen quantizer, extend the artifacts."""
    from mgr_cli.tokens.extend import add_items

    s = add_items(items, out, ids=ids or [], emb=emb or [], tokenized=tokenized, dataset=dataset,
                  images=images, device=device, command=command_line(ctx), force=force, log=log)
    log(f"added {s['items_added']} items to {s['items_before']} -> {out}"
        + (f"; {s['reachable']} of them reachable by decoding" if "reachable" in s else ""))
    if json_out:
        print(json.dumps(s))
