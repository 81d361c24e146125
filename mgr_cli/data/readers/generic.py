"""The generic format: bring your own data as CSV or JSON lines.

    SOURCE/interactions.csv | .jsonl   columns: user_id, item_id, [timestamp]
    SOURCE/items.csv | .jsonl          columns: item_id, text, [image], [any other field]

`timestamp` is any number (e.g. unix seconds); without it, the file's order is the time
order. Equal timestamps keep the file's order. `image` is a path relative to the folder
given with --images (default: the items file's folder) that must resolve inside it
(unless --allow-outside-images). Every other item column is kept as a category field
(usable by `mgr analyze-ami`). Both files may be gzipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from mgr_cli.data.dataset import Item
from mgr_cli.data.readers.common import (RawData, add_item, as_time, find_file, read_csv,
                                         read_json_lines)
from mgr_cli.errors import MgrError

ITEM_COLUMNS = ["item_id", "text"]
INTER_COLUMNS = ["user_id", "item_id"]


def _rows(path: Path, required: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    if ".jsonl" in path.suffixes or ".json" in path.suffixes:
        for lineno, obj in read_json_lines(path):
            missing = [c for c in required if c not in obj]
            if missing:
                raise MgrError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
            yield lineno, obj
    else:
        yield from read_csv(path, required)


def read_items(item_file: Path) -> dict[str, Item]:
    """The items of a generic items file (item_id, text, [image], [fields]), by id in file
    order; image paths as written (relative to their image folder)."""
    table: dict[str, Item] = {}
    for lineno, row in _rows(item_file, ITEM_COLUMNS):
        image = str(row.get("image") or "") or None
        fields = {k: str(v) for k, v in row.items() if k not in ("item_id", "text", "image")}
        add_item(table, Item(str(row["item_id"]), str(row["text"] or ""), image, fields),
                 item_file, lineno)
    return table


def read(source: Path, *, interactions: Path | None = None, items: Path | None = None,
         images: Path | None = None) -> RawData:
    inter_file = interactions or find_file(source, "interactions.csv*", "interactions.jsonl*",
                                           what="interactions file")
    item_file = items or find_file(source, "items.csv*", "items.jsonl*", what="items file")
    table = read_items(item_file)
    has_images = any(it.image is not None for it in table.values())
    inter: list[tuple[str, str, float]] = []
    for lineno, row in _rows(inter_file, INTER_COLUMNS):
        ts = row.get("timestamp")
        t = as_time(ts, inter_file, lineno, "timestamp") if ts not in (None, "") else 0.0
        inter.append((str(row["user_id"]), str(row["item_id"]), t))
    root = images or (item_file.parent if has_images else None)
    return RawData("generic", table, inter, [inter_file, item_file], image_root=root)
