"""Plain files at the stage boundaries: item-id lists, CSV tables of `item_id, x0, x1, ...`,
and joining their rows to a dataset's items. The importers of embeddings and of semantic
IDs share these, so both say the same thing about the same mistake."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mgr_cli.artifacts.core import atomic_write
from mgr_cli.errors import MgrError


def _text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MgrError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MgrError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError:
        raise MgrError(f"{path}: not UTF-8 text") from None


def read_id_list(path: Path | str, column: str = "item_id") -> list[str]:
    """Item ids, one per line of a text file, or the `column` of a CSV file (`.csv`)."""
    path = Path(path)
    text = _text(path)
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or column not in rows[0]:
            raise MgrError(f"{path}: no column {column!r} in its header line "
                           f"({', '.join(rows[0]) if rows else 'empty file'}); name it with --ids-column")
        k = rows[0].index(column)
        ids = []
        for lineno, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if k >= len(row) or not row[k].strip():
                raise MgrError(f"{path}:{lineno}: no item id in column {column!r}")
            ids.append(row[k].strip())
        return ids
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise MgrError(f"{path}:{lineno}: empty line; give one item id per line")
    return [line.strip() for line in lines]


def read_csv_rows(path: Path | str, parse: Callable[[str], float | int], what: str,
                  dtype: type) -> tuple[list[str], np.ndarray, list[int]]:
    """A CSV of `item_id, x0, x1, ...`: (ids, values [rows, columns], line of each row).
    A first line whose values are not all numbers is a header. `what` names a value in
    errors ("a number", "an integer code")."""
    path = Path(path)
    rows = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(_text(path))), start=1) if r]
    if rows and not _all_parse(rows[0][1][1:], parse):
        rows = rows[1:]
    if not rows:
        raise MgrError(f"{path}: no rows; expected item_id,x0,x1,... one item per line")
    width = len(rows[0][1])
    if width < 2:
        raise MgrError(f"{path}:{rows[0][0]}: only one column; expected item_id,x0,x1,...")
    values = np.empty((len(rows), width - 1), dtype=dtype)
    for r, (lineno, row) in enumerate(rows):
        if len(row) != width:
            raise MgrError(f"{path}:{lineno}: {len(row)} columns, line {rows[0][0]} has {width}; "
                           "every row needs the same number of values")
        for c, cell in enumerate(row[1:]):
            try:
                values[r, c] = parse(cell)
            except (ValueError, OverflowError):
                raise MgrError(f"{path}:{lineno}: column {c + 2}: {cell!r} is not {what}") from None
    return [row[0].strip() for _, row in rows], values, [n for n, _ in rows]


def _all_parse(cells: list[str], parse: Callable) -> bool:
    try:
        for c in cells:
            parse(c)
    except (ValueError, OverflowError):
        return False
    return bool(cells)


def join_to_dataset(ids: Sequence[str], item_ids: Sequence[str], source: Path | str, what: str,
                    *, where: Callable[[int], str] = lambda r: f"row {r + 1}",
                    drop_extra: bool = False) -> tuple[np.ndarray, int]:
    """For each dataset item (in its order), the source row that holds it; and how many
    source rows name no dataset item (an error unless `drop_extra`). `what` names a row's
    content in errors ("vector", "ID")."""
    first: dict[str, int] = {}
    for r, i in enumerate(ids):
        if i in first:
            raise MgrError(f"{source}: item {i!r} appears twice ({where(first[i])} and {where(r)}); "
                           "keep one row per item")
        first[i] = r
    known = set(item_ids)
    extra = [i for i in ids if i not in known]
    if extra and not drop_extra:
        raise MgrError(f"{source}: {len(extra)} item ids are not in the dataset (e.g. {extra[0]!r}); "
                       "give the dataset they were made for, or pass --drop-extra to leave them out")
    missing = [i for i in item_ids if i not in first]
    if missing:
        raise MgrError(f"{source}: {len(missing)} of the dataset's {len(item_ids)} items have no "
                       f"{what} (e.g. {missing[0]!r}); give one for every item of the dataset")
    return np.array([first[i] for i in item_ids], dtype=np.int64), len(extra)


def write_csv_rows(path: Path, header: list[str], ids: Sequence[str], rows: np.ndarray,
                   fmt: Callable, force: bool) -> None:
    """`header`, then `id, fmt(v), ...` per row; written atomically."""
    def write(f) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        w = csv.writer(text, lineterminator="\n")
        w.writerow(header)
        for i, row in zip(ids, rows.tolist()):
            w.writerow([i, *map(fmt, row)])
        text.flush()
        text.detach()

    atomic_write(Path(path), write, force)


def item_ids_of(path: Path | str, header: dict, dataset: Path | str | None = None) -> list[str]:
    """The item ids of a per-item artifact's rows, from `dataset` or the one in its lineage,
    checked against the artifact's item order."""
    from mgr_cli.artifacts import find_ancestor
    from mgr_cli.data.dataset import load_dataset

    ds_path = Path(dataset) if dataset is not None else find_ancestor(path, "dataset", header)
    ds, dh = load_dataset(ds_path)
    if dh["meta"]["item_ids_hash"] != header["meta"].get("item_ids_hash"):
        raise MgrError(f"{path} and {ds_path} disagree on item order (item_ids_hash); give "
                       "the dataset it was made from with --dataset")
    return [it.id for it in ds.items]
