"""mgr demo-data: write the generated demo catalogue (items with images and texts, users).

    mgr demo-data build/demo/raw
    mgr prepare generic build/demo/raw -o build/demo/dataset.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from mgr_cli.cli.common import config_option, handle_errors, log


@handle_errors
def demo_cmd(
    out_dir: Path = typer.Argument(..., help="Folder to write the catalogue into."),
    items: int = typer.Option(3000, help="Number of items."),
    users: int = typer.Option(3000, help="Number of simulated users."),
    mean_length: float = typer.Option(10.0, help="Mean number of interactions per user."),
    image_size: int = typer.Option(64, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed (the output is a function of it)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing catalogue."),
    config: Optional[Path] = config_option(),
) -> None:
    """Generate the demo catalogue in the generic format, deterministically."""
    from mgr_cli.data.demo import DemoConfig, generate

    cfg = DemoConfig(n_items=items, n_users=users, mean_length=mean_length,
                     image_size=image_size, seed=seed)
    summary = generate(out_dir, cfg, force=force, log=log)
    log(f"wrote {summary['items']} items and {summary['interactions']} interactions of "
        f"{summary['users']} users to {out_dir}")
    print(json.dumps(summary))
