"""Amazon review data: the P5 sequence files and the raw review/metadata dumps.

P5 (`amazon-p5`), as in the 2014 Beauty/Toys/Sports sets:
    SOURCE/user_sequence.txt     reviewerID ASIN ASIN ...   (time order, left to right)
    SOURCE/*.item                RecBole atomic item file (title, categories, brand, ...)
    or SOURCE/item_text_ids.txt  ASIN short text
Item order is first appearance along the file (users top to bottom, items left to
right), which is the index LC-Rec/LETTER semantic-ID files use.

Raw dumps (`amazon-raw`), which a user downloads themselves:
    2014: reviews_<Cat>_5.json.gz (JSON lines) + meta_<Cat>.json.gz (Python dict literals)
    2018: <Cat>_5.json.gz or <Cat>.json.gz (JSON lines) + meta_<Cat>.json.gz (JSON lines)
Reviews are ordered by unixReviewTime; ties keep the file's order. Images, if the user
has them, are `<ASIN>.jpg` in the folder given with --images.
"""

from __future__ import annotations

import re
from pathlib import Path

from mgr_cli.data.dataset import Item
from mgr_cli.data.readers.common import (RawData, add_item, as_text, as_time, find_file,
                                         join_text, open_text, read_csv, read_json_lines)
from mgr_cli.errors import MgrError


def _recbole_items(path: Path) -> dict[str, Item]:
    with open_text(path) as f:
        first = f.readline().rstrip("\n").split("\t")
    header = [h.split(":")[0] for h in first]
    if "item_id" not in header:
        raise MgrError(f"{path}: missing column(s) item_id (found: {', '.join(header)})")
    table: dict[str, Item] = {}
    rows = read_csv(path, ["item_id"], delimiter="\t", header=header)
    for lineno, row in rows:
        if lineno == 1:
            continue  # the typed header line itself
        cats = [c.strip().strip("'\"") for c in row.get("categories", "").split(",")]
        cats = [c for c in cats if c]
        text = join_text(row.get("title", ""), f"Brand: {row['brand']}" if row.get("brand") else "",
                         "Categories: " + ", ".join(cats) if cats else "", _price(row.get("price")))
        fields = {"category": cats[-1] if cats else "", "top_category": cats[1] if len(cats) > 1 else "",
                  "brand": row.get("brand", "")}
        add_item(table, Item(row["item_id"], text, None, fields), path, lineno)
    return table


def _price(value: str | None) -> str:
    """`Price: $5.04` from a RecBole price field (TIGER's item text has the price too)."""
    try:
        price = float(value or "")
    except ValueError:
        return ""
    return f"Price: ${price:.2f}" if price > 0 and price == price and price != float("inf") else ""


def _short_texts(path: Path) -> dict[str, Item]:
    table: dict[str, Item] = {}
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            asin, _, text = line.partition(" ")
            add_item(table, Item(asin, text.strip()), path, lineno)
    return table


def read_p5(source: Path, *, interactions: Path | None = None, items: Path | None = None,
            images: Path | None = None) -> RawData:
    seq_file = interactions or find_file(source, "user_sequence.txt", what="P5 user_sequence.txt")
    item_file = items or find_file(source, "*.item", "item_text_ids.txt",
                                   what="item file (RecBole *.item or item_text_ids.txt)")
    table = _recbole_items(item_file) if item_file.suffix == ".item" else _short_texts(item_file)
    if images is not None:
        for it in table.values():
            it.image = f"{it.id}.jpg"
    inter: list[tuple[str, str, float]] = []
    users: set[str] = set()
    with open_text(seq_file) as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise MgrError(f"{seq_file}:{lineno}: a user without items")
            if parts[0] in users:
                raise MgrError(f"{seq_file}:{lineno}: user {parts[0]!r} appears twice")
            users.add(parts[0])
            inter.extend((parts[0], asin, float(t)) for t, asin in enumerate(parts[1:]))
    return RawData("amazon-p5", table, inter, [seq_file, item_file], image_root=images)


def _meta_item(obj: dict, path: Path, lineno: int, images: Path | None) -> Item:
    if "asin" not in obj:
        raise MgrError(f"{path}:{lineno}: metadata without 'asin'")
    cats = obj.get("categories") or obj.get("category") or []
    if cats and isinstance(cats[0], list):  # 2014: a list of category paths
        cats = cats[0]
    cats = [as_text(c) for c in cats if as_text(c)]
    desc = as_text(obj.get("description"))
    text = join_text(as_text(obj.get("title")),
                     f"Brand: {as_text(obj['brand'])}" if obj.get("brand") else "",
                     "Categories: " + ", ".join(cats) if cats else "", desc)
    fields = {"category": cats[-1] if cats else "", "brand": as_text(obj.get("brand"))}
    return Item(obj["asin"], text, f"{obj['asin']}.jpg" if images else None, fields)


def read_raw(source: Path, *, interactions: Path | None = None, items: Path | None = None,
             images: Path | None = None) -> RawData:
    reviews = interactions or find_file(source, "reviews_*.json*", "*_5.json*", what="review file")
    meta = items or find_file(source, "meta_*.json*", what="metadata file (meta_*.json.gz)")
    table: dict[str, Item] = {}
    for lineno, obj in read_json_lines(meta, python_literals=True):
        add_item(table, _meta_item(obj, meta, lineno, images), meta, lineno)
    inter: list[tuple[str, str, float]] = []
    for lineno, obj in read_json_lines(reviews):
        try:
            user, asin, t = obj["reviewerID"], obj["asin"], obj["unixReviewTime"]
        except KeyError as e:
            raise MgrError(f"{reviews}:{lineno}: review without {e}") from None
        inter.append((user, asin, as_time(t, reviews, lineno, "unixReviewTime")))
    name = re.sub(r"\.json(\.gz)?$", "", reviews.name)
    return RawData("amazon-raw", table, inter, [reviews, meta], image_root=images,
                   notes={"reviews_file": name})
