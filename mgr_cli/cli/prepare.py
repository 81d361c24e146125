"""mgr prepare: raw data in, a dataset artifact out.

    mgr prepare hm ../shared/data/hm -o hm.dataset.jsonl
    mgr prepare movielens ../shared/data/movielens-100k -o ml.dataset.jsonl
    mgr prepare amazon-p5 ../shared/data/amazon2014/Beauty -o beauty.dataset.jsonl
    mgr prepare lcrec ../shared/data/amazon2018-instruments -o instruments.dataset.jsonl
    mgr prepare generic my_data/ -o mine.dataset.jsonl
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from mgr_cli.cli.common import choice, command_line, console, handle_errors, log, plugin_option
from mgr_cli.data.prepare import FORMATS


class OnError(str, Enum):
    error = "error"
    drop = "drop"


class OnEmpty(str, Enum):
    error = "error"
    drop = "drop"
    keep = "keep"


class Repeats(str, Enum):
    keep = "keep"
    drop = "drop"


@handle_errors
def prepare_cmd(
    ctx: typer.Context,
    fmt: str = typer.Argument(..., metavar="FORMAT", callback=choice(FORMATS),
                              help=f"Raw data format: {', '.join(FORMATS)}, or a --plugin's (see docs/cli.md)."),
    source: Path = typer.Argument(..., help="Folder with the raw files."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset artifact to write (.jsonl)."),
    interactions: Optional[Path] = typer.Option(None, help="Interactions file, if not the format's default name."),
    items: Optional[Path] = typer.Option(None, help="Item file, if not the format's default name."),
    images: Optional[Path] = typer.Option(None, help="Image folder (default: the format's own, if present)."),
    no_images: bool = typer.Option(False, "--no-images", help="Ignore images entirely."),
    keep_items_without_image: bool = typer.Option(
        False, "--keep-items-without-image", help="Keep items whose image is missing (default: drop them when images are used)."),
    k_core: int = typer.Option(5, help="Iterative k-core on users and items."),
    max_history: int = typer.Option(20, help="Histories keep the last N items."),
    repeats: Repeats = typer.Option(Repeats.keep, help="Repeated (user, item) interactions."),
    empty_text: OnEmpty = typer.Option(OnEmpty.error, help="Items with empty text."),
    unknown_items: OnError = typer.Option(OnError.error, help="Interactions with item ids not in the item file."),
    bad_images: OnError = typer.Option(OnError.error, help="Images that do not decode."),
    allow_outside_images: bool = typer.Option(
        False, "--allow-outside-images", help="Accept image paths that resolve outside the image folder (refused by default)."),
    name: Optional[str] = typer.Option(None, help="Dataset name (default: the source folder's name)."),
    json_out: bool = typer.Option(False, "--json", help="Print the counts as JSON on stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    plugin: Optional[List[Path]] = plugin_option(),
) -> None:
    """Apply the paper's protocol (image filter, 5-core, leave-one-out) to raw data."""
    from mgr_cli.data.prepare import prepare
    from mgr_cli.data.protocol import PrepareConfig

    cfg = PrepareConfig(k_core=k_core, max_history=max_history,
                        drop_missing_images=not keep_items_without_image,
                        unknown_items=unknown_items.value, empty_text=empty_text.value,
                        bad_images=bad_images.value, repeats=repeats.value,
                        outside_images=allow_outside_images)
    header = prepare(fmt, source, out, cfg=cfg, interactions=interactions, items=items,
                     images=images, no_images=no_images, name=name, command=command_line(ctx),
                     force=force, log=log)
    meta = header["meta"]
    show_counts(meta, out)
    if json_out:
        print(json.dumps({"path": str(out), "stats": meta["stats"], "report": meta["report"]}))


def show_counts(meta: dict, out: Path) -> None:
    from rich.table import Table

    s, r = meta["stats"], meta["report"]
    t = Table(title=f"{meta['name']} -> {out}", show_header=True)
    t.add_column("")
    t.add_column("raw", justify="right")
    t.add_column("prepared", justify="right")
    for key in ("users", "items", "interactions"):
        t.add_row(key, str(r["raw"][key]), str(s[key]))
    t.add_row("mean length", "", f"{s['mean_length']:.2f}")
    t.add_row("items with image", "", str(s["items_with_image"]))
    t.add_row("examples train/valid/test", "",
              "/".join(str(s["examples"][k]) for k in ("train", "valid", "test")))
    for key, value in r.items():
        if key.startswith("dropped") and value:
            t.add_row(key.replace("_", " "), "", str(value))
    kc = r["k_core"]
    t.add_row(f"{kc['k']}-core removed", "",
              f"{kc['removed_users']} users, {kc['removed_items']} items")
    console().print(t)
