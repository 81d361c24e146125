"""What every reader shares: the raw-data container, strict CSV/JSON-lines parsing with
file:line errors, and text helpers."""

from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import io
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, TextIO

from mgr_cli.data.dataset import Item
from mgr_cli.errors import MgrError

csv.field_size_limit(1 << 24)


@dataclass
class RawData:
    """What a reader hands to the protocol: items, interactions in file order, images.

    `interactions` holds (user id, item id, time); time is any sortable number, and ties
    keep file order. `item_order` is "appearance" (first appearance along the users'
    sequences) or "given" (the order of `items`, e.g. an existing item index).
    """

    format: str
    items: dict[str, Item]
    interactions: list[tuple[str, str, float]]
    sources: list[Path]
    image_root: Path | None = None
    has_text: bool = True
    item_order: str = "appearance"
    notes: dict[str, Any] = field(default_factory=dict)


def _open_bytes(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _undecodable_line(path: Path, encoding: str) -> int:
    """The number of the first line that does not decode (for the error message only)."""
    lineno = 0
    try:
        with _open_bytes(path) as f:
            for lineno, line in enumerate(f, start=1):
                line.decode(encoding)
    except UnicodeDecodeError:
        return lineno
    except (EOFError, OSError, zlib.error):
        pass
    return lineno + 1


@contextlib.contextmanager
def open_text(path: Path, encoding: str = "utf-8") -> Iterator[TextIO]:
    """A text file (gzipped if named .gz; a UTF-8 byte order mark dropped). Undecodable
    bytes and damaged gzip streams stop with a one-line error naming the file."""
    if not path.exists():
        raise MgrError(f"{path}: no such file")
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        with io.TextIOWrapper(_open_bytes(path), encoding=codec, newline="") as f:
            yield f
    except UnicodeDecodeError:
        raise MgrError(f"{path}:{_undecodable_line(path, codec)}: not valid {encoding} text; "
                       f"re-save the file as {encoding}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise MgrError(f"{path}: damaged or not gzip-compressed ({e}); re-download it, or "
                       "drop .gz from the name of a plain text file") from None
    except OSError as e:
        raise MgrError(f"{path}: cannot be read ({e.strerror or e})") from None


def find_file(source: Path, *names: str, what: str) -> Path:
    """The first of `names` (globs allowed) that exists in `source`, else a clear error."""
    for name in names:
        hits = sorted(source.glob(name))
        if hits:
            return hits[0]
    raise MgrError(f"{source}: no {what} found (looked for {', '.join(names)}); "
                   "pass the file explicitly")


def read_csv(path: Path, required: list[str], *, delimiter: str = ",",
             encoding: str = "utf-8", header: list[str] | None = None, quoting: bool = True
             ) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) from a CSV file; wrong field counts and missing columns
    stop with `file:line` errors. `quoting=False` reads quote characters as text (for
    tab- or bar-separated files whose titles hold quotes)."""
    with open_text(path, encoding) as f:
        reader = csv.reader(f, delimiter=delimiter,
                            quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
        if header is None:
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise MgrError(f"{path}: empty file") from None
            except csv.Error as e:
                raise MgrError(f"{path}:1: malformed header ({e})") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise MgrError(f"{path}: missing column(s) {', '.join(missing)} "
                           f"(found: {', '.join(header)})")
        start = reader.line_num
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise MgrError(f"{path}:{reader.line_num}: expected {len(header)} fields, "
                                   f"got {len(row)}")
                yield reader.line_num, dict(zip(header, row))
        except csv.Error as e:
            raise MgrError(f"{path}:{reader.line_num or start}: malformed CSV ({e})") from None


def read_json_lines(path: Path, *, python_literals: bool = False
                    ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) from a JSON-lines file (optionally gzipped).

    `python_literals` also accepts Python dict literals, the format of the 2014 Amazon
    metadata files (`{'asin': ...}`).
    """
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError) as e:  # RecursionError: nested too deep
                if not python_literals:
                    raise MgrError(f"{path}:{lineno}: invalid JSON ({e})") from None
                try:
                    obj = ast.literal_eval(line)
                except (ValueError, SyntaxError, RecursionError, MemoryError):
                    raise MgrError(f"{path}:{lineno}: neither JSON nor a Python literal") from None
            if not isinstance(obj, dict):
                raise MgrError(f"{path}:{lineno}: expected an object, got {type(obj).__name__}")
            yield lineno, obj


def load_json(path: Path) -> Any:
    if not path.exists():
        raise MgrError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (ValueError, RecursionError) as e:
        raise MgrError(f"{path}: invalid JSON ({e})") from None


def as_time(value: Any, path: Path, lineno: int, column: str) -> float:
    """A timestamp as a finite float, else a `file:line` error naming the column."""
    try:
        t = float(value)
    except OverflowError:  # an integer beyond the float range
        t = math.inf
    except (TypeError, ValueError):
        raise MgrError(f"{path}:{lineno}: {column} {value!r} is not a number") from None
    if not math.isfinite(t):
        raise MgrError(f"{path}:{lineno}: {column} {value!r} is not a finite number")
    return t


def add_item(items: dict[str, Item], item: Item, path: Path, lineno: int | str) -> None:
    if item.id in items:
        raise MgrError(f"{path}:{lineno}: duplicate item id {item.id!r}; "
                       "each item must appear once")
    items[item.id] = item


def join_text(*parts: str | None, sep: str = ". ") -> str:
    """Join non-empty text parts, without doubling their final full stops."""
    out = [" ".join(str(p).split()).rstrip(".").strip() for p in parts if p and str(p).strip()]
    text = sep.join(o for o in out if o)
    return text + "." if text else ""


def as_text(value: Any) -> str:
    """Flatten the list-or-string fields of Amazon metadata into one string."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(x for x in (as_text(v) for v in value) if x)
    return " ".join(str(value).split())
