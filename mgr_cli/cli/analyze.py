"""mgr analyze-ami: modality dominance as adjusted mutual information of semantic IDs.

    mgr analyze-ami --text t.ids.safetensors --image i.ids.safetensors --fused f.ids.safetensors
    mgr analyze-ami t.ids.safetensors i.ids.safetensors --prefix 2 --format markdown
    mgr analyze-ami --text t.ids.safetensors --field product_type_name
    mgr analyze-ami --text t.ids.safetensors --image i.ids.safetensors --sheet fig4.png --pivot 0706016001
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import List, Optional

import typer

from mgr_cli.cli.common import choice, console, handle_errors, log
from mgr_cli.errors import MgrError


def _named(ids: list[Path], text, image, fused) -> dict[str, Path]:
    from mgr_cli.artifacts import read_header

    named: dict[str, Path] = {}
    for path in ids or []:
        name = read_header(path, "semantic-ids")["meta"]["modality"]
        named[name if name not in named else f"{name}:{path.name}"] = path
    for name, path in (("text", text), ("image", image), ("fused", fused)):
        if path is not None:
            if name in named:
                raise MgrError(f"two {name} ID artifacts given ({named[name]} and {path})")
            named[name] = path
    return named


@handle_errors
def ami_cmd(
    ids: Optional[List[Path]] = typer.Argument(None, help="Semantic-ID artifacts, named by their modality."),
    text: Optional[Path] = typer.Option(None, help="Text semantic IDs."),
    image: Optional[Path] = typer.Option(None, help="Image semantic IDs."),
    fused: Optional[Path] = typer.Option(None, help="Early-fusion (multimodal) semantic IDs."),
    dataset: Optional[Path] = typer.Option(None, help="Dataset (default: the one the IDs name)."),
    field: Optional[List[str]] = typer.Option(None, "--field", help="Dataset category field to compare with (repeatable)."),
    level: Optional[int] = typer.Option(None, help="Compare the code at this level (1 = first)."),
    prefix: Optional[int] = typer.Option(None, help="Compare the first N levels together."),
    fmt: str = typer.Option("json", "--format", callback=choice(("json", "markdown")), help="stdout format: json or markdown."),
    sheet: Optional[Path] = typer.Option(None, help="Write Figure 4's contact sheet (PNG); needs --text and --image."),
    pivot: Optional[str] = typer.Option(None, help="Pivot item id for --sheet (default: drawn with --seed)."),
    seed: int = typer.Option(0, help="Seed for the default pivot."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --sheet."),
) -> None:
    """Adjusted mutual information between semantic IDs (the paper's Table 1), or against a
    category field; optionally the Figure 4 contact sheet."""
    from mgr_cli.analysis import ami as A
    from mgr_cli.artifacts import check_output, require_agreement
    from mgr_cli.data import load_dataset
    from mgr_cli.quantize.stage import dataset_of, load_ids

    named = _named(ids, text, image, fused)
    if not named:
        raise MgrError("give semantic-ID artifacts (positional, or --text/--image/--fused)")
    if len(named) < 2 and not field and sheet is None:
        raise MgrError("AMI needs two ID artifacts, or one and --field")
    if sheet is not None:
        check_output(sheet, force)
    loaded = {name: load_ids(p) for name, p in named.items()}
    require_agreement([(named[n], h) for n, (_, h) in loaded.items()], "item_ids_hash", "item order")
    labels = {n: A.cluster_labels(c, level, prefix) for n, (c, _) in loaded.items()}
    rows = A.pairwise(labels)
    ds = None
    if field or sheet is not None:
        first = next(iter(named))
        ds, _ = load_dataset(dataset_of(named[first], loaded[first][1], dataset))
    for f in field or []:
        values = [it.fields.get(f) for it in ds.items]
        if any(v is None for v in values):
            raise MgrError(f"field {f!r} is not in the dataset; it has: {', '.join(ds.meta['fields'])}")
        truth = A.field_labels(values)
        rows += [{"pair": f"{n} vs. {f}", "a": n, "b": f, "ami": A.ami(lab, truth)} for n, lab in labels.items()]
    what = f"level {level}" if level else ("first level" if (prefix or 1) == 1 else f"prefix {prefix}")
    _show(rows, what)
    result = {"compared": what, "rows": rows, "artifacts": {n: str(p) for n, p in named.items()}}
    if sheet is not None:
        if "text" not in loaded or "image" not in loaded:
            raise MgrError("--sheet needs --text and --image IDs")
        index = {it.id: k for k, it in enumerate(ds.items)}
        if pivot is not None and pivot not in index:
            raise MgrError(f"pivot {pivot!r} is not an item of the dataset")
        k = index[pivot] if pivot is not None else random.Random(seed).randrange(len(ds.items))
        from mgr_cli.analysis.sheet import contact_sheet

        result["sheet"] = {"path": str(sheet), **contact_sheet(ds, loaded["text"][0], loaded["image"][0], k, sheet)}
        log(f"wrote the contact sheet for item {ds.items[k].id} to {sheet}")
    print(json.dumps(result) if fmt == "json" else A.to_markdown(rows, f"AMI of semantic IDs ({what})"))


def _show(rows: list[dict], what: str) -> None:
    from rich.table import Table

    t = Table(title=f"Adjusted mutual information ({what})")
    t.add_column("pair")
    t.add_column("AMI", justify="right")
    for r in rows:
        t.add_row(r["pair"], f"{r['ami']:.4f}")
    console().print(t)
