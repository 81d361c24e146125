"""mgr tokenize: a dataset and semantic IDs in, token data for the recommender out.

    mgr tokenize data.jsonl text.ids.safetensors -o tiger-text.tok.safetensors --layout tiger
    mgr tokenize data.jsonl fused.ids.safetensors -o ef.tok.safetensors --layout ef
    mgr tokenize data.jsonl text.ids.safetensors image.ids.safetensors -o lf.tok.safetensors --layout lf
    mgr tokenize data.jsonl text.ids.safetensors image.ids.safetensors -o lfpp.tok.safetensors --layout lfpp
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mgr_cli.cli.common import choice, command_line, handle_errors, log, plugin_option
from mgr_cli.tokens.layout import LAYOUTS


@handle_errors
def tokenize_cmd(
    ctx: typer.Context,
    dataset: Path = typer.Argument(..., help="Dataset artifact."),
    ids: List[Path] = typer.Argument(..., help="Semantic-ID artifacts, in the order their IDs go in an item."),
    out: Path = typer.Option(..., "--out", "-o", help="Tokenized artifact to write (.safetensors)."),
    layout: str = typer.Option("tiger", callback=choice(LAYOUTS), help=f"{LAYOUTS.describe()}; or a --plugin's."),
    max_history: Optional[int] = typer.Option(None, help="Items per history (default: the dataset's)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    plugin: Optional[List[Path]] = plugin_option(),
) -> None:
    """Lay out semantic IDs as tokens and build the next-item and alignment examples."""
    from mgr_cli.tokens.stage import tokenize

    h = tokenize(dataset, ids, out, layout=layout, max_history=max_history,
                 command=command_line(ctx), force=force)
    m = h["meta"]
    log(f"{m['layout']}: {m['vocab_size']} tokens, {m['item_length']} per item; examples "
        + ", ".join(f"{k} {v}" for k, v in m["examples"].items())
        + f", alignment {m['alignment_examples']} -> {out}")
