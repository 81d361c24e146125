"""Semantic IDs made elsewhere, in and out: LC-Rec JSON (the format LC-Rec, LETTER and
MQL4GRec write: `{"<item index or id>": ["<a_12>", "<b_3>", ...]}`) and CSV
(`item_id,c0,c1,...`, integer codes). `mgr ids import` and `mgr ids export` call these."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from mgr_cli.artifacts import ArtifactError, Input, Provenance, check_output, source_entry
from mgr_cli.artifacts.core import atomic_write
from mgr_cli.data import load_dataset
from mgr_cli.data.exchange import item_ids_of, join_to_dataset, read_csv_rows, write_csv_rows
from mgr_cli.errors import MgrError
from mgr_cli.quantize.ids import LETTERS, as_codes, load_ids, save_ids, tokens, view_path

FORMATS = {".json": "LC-Rec JSON", ".csv": "CSV"}
_TOKEN = re.compile(r"^<([A-Za-z]+)_(\d+)>$")


def _format(path: Path, verb: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MgrError(f"{path}: cannot {verb} {path.suffix or 'a file without a suffix'}; "
                       "use LC-Rec JSON (.json) or CSV of item_id,c0,c1,... (.csv)")
    return fmt


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise MgrError(f"key {k!r} appears twice; keep one entry per item")
        seen[k] = v
    return seen


def read_lcrec(path: Path, item_ids: list[str]) -> tuple[np.ndarray, dict]:
    """Codes [n_items, L] from an LC-Rec style JSON, in the dataset's item order.

    Keys are matched to item ids when they all are item ids, otherwise read as item
    indices in the dataset's order (the LC-Rec convention)."""
    try:
        data = json.loads(Path(path).read_text(), object_pairs_hook=_unique_keys)
    except FileNotFoundError:
        raise MgrError(f"{path}: no such file") from None
    except MgrError as e:
        raise MgrError(f"{path}: {e}") from None
    except ValueError as e:
        raise MgrError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict) or not data:
        raise MgrError(f"{path}: expected a non-empty object {{item: [tokens]}}")
    index = {iid: k for k, iid in enumerate(item_ids)}
    by_id = all(key in index for key in data)
    if not by_id and not all(key.isdigit() for key in data):
        stray = next(k for k in data if k not in index)
        raise MgrError(f"{path}: key {stray!r} is neither an item id of the dataset nor an index")
    bad = next((k for k, v in data.items() if not isinstance(v, list) or not v), None)
    if bad is not None:
        raise MgrError(f"{path}: item {bad}: expected a non-empty list of tokens")
    lengths = {len(v) for v in data.values()}
    if len(lengths) != 1:
        raise MgrError(f"{path}: every entry must be a list of the same length "
                       f"(found lengths {sorted(lengths)})")
    n_levels = lengths.pop()
    codes = np.full((len(item_ids), n_levels), -1, dtype=np.int64)
    prefixes: list[str] = [""] * n_levels
    for key, toks in data.items():
        row = index[key] if by_id else int(key)
        if row >= len(item_ids):
            raise MgrError(f"{path}: index {key} is beyond the dataset's {len(item_ids)} items; "
                           "was it made for another dataset?")
        if codes[row, 0] >= 0:
            raise MgrError(f"{path}: item index {int(key)} appears twice; keep one entry per item")
        for level, tok in enumerate(toks):
            m = _TOKEN.match(str(tok))
            if not m:
                raise MgrError(f"{path}: item {key}: token {tok!r} is not of the form <x_N>")
            prefixes[level] = prefixes[level] or m.group(1)
            codes[row, level] = int(m.group(2))
    missing = np.where(codes[:, 0] < 0)[0]
    if len(missing):
        raise MgrError(f"{path}: {len(missing)} of the dataset's {len(item_ids)} items have no "
                       f"ID (e.g. {item_ids[missing[0]]!r}); was it made for another dataset?")
    return codes, {"joined_by": "item id" if by_id else "item index", "token_prefixes": prefixes}


def read_codes_csv(path: Path, item_ids: list[str]) -> tuple[np.ndarray, dict]:
    """Codes [n_items, L] from a CSV of `item_id,c0,c1,...`, in the dataset's item order."""
    ids, codes, lines = read_csv_rows(path, int, "an integer code", np.int64)
    order, _ = join_to_dataset(ids, item_ids, path, "ID", where=lambda r: f"line {lines[r]}")
    return codes[order], {"joined_by": "item id"}


def import_ids(source: Path | str, dataset: Path | str, out: Path | str, *, modality: str,
               dedup: str = "auto", codebook_sizes: Sequence[int] | None = None,
               command: str = "python API", force: bool = False) -> dict:
    """Semantic IDs made elsewhere (LC-Rec JSON or CSV, by suffix) as an mgr artifact of
    `dataset`'s items; returns its header."""
    source, dataset, out = Path(source), Path(dataset), Path(out)
    fmt = _format(source, "import")
    check_output(out, force)
    check_output(view_path(out), force)
    ds, dh = load_dataset(dataset)
    item_ids = [it.id for it in ds.items]
    read = read_lcrec if fmt == "LC-Rec JSON" else read_codes_csv
    codes, how = read(source, item_ids)
    try:
        as_codes(codes, codebook_sizes, item_ids)
    except ArtifactError as e:
        hint = "" if codebook_sizes is None else " (--codebook-sizes)"
        raise MgrError(f"{source}: {e}{hint}") from None
    meta = {"imported_from": str(source.resolve()), "format": fmt, **how}
    config = {"import": str(source), "modality": modality, "dedup": dedup,
              "codebook_sizes": list(codebook_sizes) if codebook_sizes else None}
    return save_ids(out, item_ids, codes, modality=modality, method="import",
                    codebook_sizes=codebook_sizes, dedup=dedup, meta=meta,
                    provenance=Provenance(command, config), inputs=[Input("dataset", dataset, dh)],
                    sources=[source_entry(source)], force=force)


def export_ids(path: Path | str, out: Path | str, *, dataset: Path | str | None = None,
               force: bool = False) -> int:
    """Write a semantic-ID artifact's codes as LC-Rec JSON (keyed by item index, in the
    dataset's order) or CSV (`item_id,c0,c1,...`), by `out`'s suffix; returns the count."""
    path, out = Path(path), Path(out)
    fmt = _format(out, "export to")
    check_output(out, force)
    codes, header = load_ids(path)
    if fmt == "CSV":
        ids = item_ids_of(path, header, dataset)
        write_csv_rows(out, ["item_id"] + [f"c{lv}" for lv in range(codes.shape[1])], ids,
                       codes, str, force)
    else:
        data = {str(i): row for i, row in enumerate(tokens(codes, LETTERS))}
        blob = json.dumps(data).encode()
        atomic_write(out, lambda f: f.write(blob), force)
    return len(codes)
