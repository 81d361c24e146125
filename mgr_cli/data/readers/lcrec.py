"""LC-Rec / MQL4GRec processed data (e.g. Amazon 2018 Instruments, Scientific).

    SOURCE/<Name>.inter.json   {"user idx": [item idx, ...]} in time order
    SOURCE/<Name>.item.json    optional: {"item idx": {"title", "description", "brand", "categories"}}
    SOURCE/<Name>.item2id      optional: ASIN \\t item idx  (kept as the field "asin")

Items keep their given index order, so semantic-ID files keyed by that index
(`<Name>.index*.json`) join one to one. Without an item file the items have no text:
such a dataset can take semantic IDs made elsewhere, but cannot be embedded.
"""

from __future__ import annotations

from pathlib import Path

from mgr_cli.data.dataset import Item
from mgr_cli.data.readers.common import (RawData, as_text, find_file, join_text, load_json,
                                         open_text)
from mgr_cli.errors import MgrError


def _int_key(k: str, path: Path) -> int:
    try:
        return int(k)
    except ValueError:
        raise MgrError(f"{path}: key {k!r} is not an integer index") from None


def _asins(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise MgrError(f"{path}:{lineno}: expected 'ASIN<TAB>index', got {line.strip()!r}")
            if parts[1] in out:
                raise MgrError(f"{path}:{lineno}: duplicate item index {parts[1]}")
            out[parts[1]] = parts[0]
    return out


def read(source: Path, *, interactions: Path | None = None, items: Path | None = None,
         images: Path | None = None) -> RawData:
    inter_file = interactions or find_file(source, "*.inter.json", what="LC-Rec *.inter.json")
    stem = inter_file.name[: -len(".inter.json")]
    item_file = items or next(iter(sorted(source.glob(f"{stem}.item.json"))), None)
    id_file = next(iter(sorted(source.glob(f"{stem}.item2id"))), None)
    seqs = load_json(inter_file)
    if not isinstance(seqs, dict):
        raise MgrError(f"{inter_file}: expected an object {{user: [items]}}")
    sources = [inter_file]
    meta: dict = {}
    if item_file is not None:
        meta = load_json(item_file)
        sources.append(item_file)
    asins = _asins(id_file) if id_file else {}
    if id_file:
        sources.append(id_file)
    inter: list[tuple[str, str, float]] = []
    for user in sorted(seqs, key=lambda k: _int_key(k, inter_file)):
        if not isinstance(seqs[user], list):
            raise MgrError(f"{inter_file}: user {user}: expected a list of item indices")
        inter.extend((user, str(i), float(t)) for t, i in enumerate(seqs[user]))
    ids = set(meta) | set(asins) | {i for _, i, _ in inter}
    table: dict[str, Item] = {}
    for k in sorted(ids, key=lambda k: _int_key(k, item_file or inter_file)):
        m = meta.get(k, {})
        text = join_text(as_text(m.get("title")), as_text(m.get("description"))) if m else ""
        fields = {"category": as_text(m.get("categories")).split(",")[-1].strip() if m else "",
                  "brand": as_text(m.get("brand"))}
        if k in asins:
            fields["asin"] = asins[k]
        table[k] = Item(k, text, f"{k}.jpg" if images else None, fields)
    return RawData("lcrec", table, inter, sources, image_root=images,
                   has_text=item_file is not None, item_order="given")
