"""Embeddings made elsewhere, in and out (`mgr embeddings import`, `mgr embeddings export`).

Formats, by suffix (nothing is ever unpickled):
  .npy          a float array [items, dim]; the item ids in a separate file (`ids`): one
                per line, or a column of a CSV (`ids_column`, default item_id)
  .npz          arrays `item_ids` (strings or integers) and `vectors` (or `ids` and
                `embeddings`)
  .safetensors  a tensor `vectors` (or `embeddings`); the item ids as a JSON list in the
                metadata entry `item_ids`, or in a separate file
  .csv          item_id,v0,v1,... one item per line (a header line is optional)
Import checks the ids against the dataset's items (none missing, none unknown unless
`drop_extra`, none twice), refuses NaN, inf, ragged rows and non-float arrays, and puts
the rows in the dataset's item order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from mgr_cli.artifacts import ArtifactError, Input, Provenance, check_output, source_entry
from mgr_cli.artifacts.core import atomic_write
from mgr_cli.data import load_dataset
from mgr_cli.data.exchange import (item_ids_of, join_to_dataset, read_csv_rows, read_id_list,
                                   write_csv_rows)
from mgr_cli.encoders.artifact import as_vectors, load_embeddings, save_embeddings
from mgr_cli.errors import MgrError

MODALITIES = ("text", "image", "fused", "collab")
SUFFIXES = (".npy", ".npz", ".safetensors", ".csv")
_NAMES = {"vectors": ("vectors", "embeddings"), "ids": ("item_ids", "ids")}


def _suffix(path: Path, verb: str) -> str:
    s = path.suffix.lower()
    if s == ".parquet":
        raise MgrError(f"{path}: reading Parquet needs pyarrow, which is not installed; save "
                       "the vectors as .npz, .safetensors or CSV instead")
    if s not in SUFFIXES:
        raise MgrError(f"{path}: cannot {verb} {s or 'a file without a suffix'}; use "
                       f"{', '.join(SUFFIXES)}")
    return s


def _pick(names, kind: str, path: Path) -> str | None:
    found = [n for n in _NAMES[kind] if n in names]
    if len(found) > 1:
        raise MgrError(f"{path}: holds both {' and '.join(found)}; keep one")
    return found[0] if found else None


def _ids_array(a: np.ndarray, path: Path) -> list[str]:
    if a.ndim != 1 or a.dtype.kind not in "USiu":
        raise MgrError(f"{path}: item_ids must be a 1-d array of strings or integers, got "
                       f"{a.dtype} of shape {tuple(a.shape)}")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in a.tolist()]


def _load_numpy(path: Path, suffix: str):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise MgrError(f"{path}: no such file") from None
    except ValueError as e:
        if "pickle" in str(e):
            raise MgrError(f"{path}: holds Python objects (pickled), which mgr never loads; "
                           "save plain float and string arrays") from None
        raise MgrError(f"{path}: not a {suffix} file ({e})") from None
    except (OSError, EOFError) as e:
        raise MgrError(f"{path}: not a {suffix} file ({e})") from None


def _read_safetensors(path: Path) -> tuple[np.ndarray, list[str] | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta, names = f.metadata() or {}, list(f.keys())
            if "mgr_artifact" in meta:
                raise MgrError(f"{path}: already an mgr artifact; use it as it is, or turn it "
                               "into plain files with mgr embeddings export")
            name = _pick(names, "vectors", path)
            if name is None:
                raise MgrError(f"{path}: no tensor 'vectors' (it holds {', '.join(names) or 'none'})")
            x = f.get_tensor(name)
    except MgrError:
        raise
    except FileNotFoundError:
        raise MgrError(f"{path}: no such file") from None
    except Exception as e:  # safetensors' own errors: a damaged file, bfloat16 in numpy
        raise MgrError(f"{path}: cannot read its tensors ({e}); save float32 or float16") from None
    if "item_ids" not in meta:
        return x, None
    try:
        ids = json.loads(meta["item_ids"])
        assert isinstance(ids, list) and all(isinstance(i, (str, int)) for i in ids)
    except (ValueError, AssertionError):
        raise MgrError(f"{path}: metadata item_ids must be a JSON list of item ids") from None
    return x, [str(i) for i in ids]


def read_vectors(path: Path, ids_file: Path | None = None, ids_column: str = "item_id"
                 ) -> tuple[list[str], np.ndarray, Callable[[int], str]]:
    """(item ids, vectors as stored, where row r is for errors) from a file of any format."""
    s = _suffix(path, "import")
    where: Callable[[int], str] = lambda r: f"row {r + 1}"
    ids = None
    if s == ".csv":
        if ids_file is not None:
            raise MgrError(f"{path}: a CSV holds its item ids in its first column; drop --ids")
        ids, x, lines = read_csv_rows(path, float, "a number", np.float64)
        return ids, x, lambda r: f"line {lines[r]}"
    if s == ".npy":
        x = _load_numpy(path, s)
    elif s == ".npz":
        with _load_numpy(path, s) as z:
            vname, iname = _pick(z.files, "vectors", path), _pick(z.files, "ids", path)
            if vname is None:
                raise MgrError(f"{path}: no array 'vectors' (it holds {', '.join(z.files) or 'none'})")
            x = _load_array(z, vname, path)
            ids = _ids_array(_load_array(z, iname, path), path) if iname else None
    else:
        x, ids = _read_safetensors(path)
    if ids is not None and ids_file is not None:
        raise MgrError(f"{path}: holds its item ids already; drop --ids")
    if ids is None:
        if ids_file is None:
            raise MgrError(f"{path}: holds no item ids; give them with --ids FILE (one per "
                           "line, or a CSV column named by --ids-column)")
        ids = read_id_list(ids_file, ids_column)
    return ids, x, where


def _load_array(z, name: str, path: Path) -> np.ndarray:
    try:
        return z[name]
    except ValueError:
        raise MgrError(f"{path}: array {name!r} holds Python objects (pickled), which mgr "
                       "never loads; save plain float and string arrays") from None


def import_embeddings(source: Path | str, dataset: Path | str, out: Path | str, *,
                      modality: str, ids: Path | str | None = None, ids_column: str = "item_id",
                      drop_extra: bool = False, command: str = "python API",
                      force: bool = False) -> dict:
    """Vectors made by any encoder as an embeddings artifact of `dataset`'s items (rows put
    in its item order); returns the header."""
    if modality not in MODALITIES:
        raise MgrError(f"--modality must be one of {', '.join(MODALITIES)}")
    source, dataset, out = Path(source), Path(dataset), Path(out)
    ids_file = Path(ids) if ids is not None else None
    _suffix(source, "import")
    check_output(out, force)
    ds, dh = load_dataset(dataset)
    item_ids, raw, where = read_vectors(source, ids_file, ids_column)
    try:
        x = as_vectors(raw)
    except ArtifactError as e:
        raise MgrError(f"{source}: {e}") from None
    if len(item_ids) != len(x):
        raise MgrError(f"{source}: {len(x)} vectors but {len(item_ids)} item ids"
                       + (f" in {ids_file}" if ids_file else "") + "; give one id per row")
    order, extra = join_to_dataset(item_ids, [it.id for it in ds.items], source, "vector",
                                   where=where, drop_extra=drop_extra)
    bad = [r for r in order.tolist() if not np.isfinite(x[r]).all()]
    if bad:
        kind = "NaN" if np.isnan(x[bad[0]]).any() else "inf"
        raise MgrError(f"{source}: {len(bad)} vectors hold NaN or inf (e.g. item "
                       f"{item_ids[bad[0]]!r}, {where(bad[0])}: {kind}); fix or drop them")
    sources = [source_entry(source)] + ([source_entry(ids_file)] if ids_file else [])
    meta = {"imported_from": str(source.resolve()), "format": source.suffix.lower().lstrip("."),
            "reordered": bool((order != np.arange(len(order))).any()) or extra > 0,
            "dropped_extra": extra}
    config = {"import": str(source), "ids": str(ids_file) if ids_file else None,
              "ids_column": ids_column, "modality": modality, "drop_extra": drop_extra}
    return save_embeddings(out, [it.id for it in ds.items], x[order], modality=modality,
                           encoders={modality: {"family": "import", "model": source.name,
                                                "standin": False}},
                           meta=meta, provenance=Provenance(command, config),
                           inputs=[Input("dataset", dataset, dh)], sources=sources, force=force)


def export_embeddings(path: Path | str, out: Path | str, *, dataset: Path | str | None = None,
                      ids_out: Path | str | None = None, force: bool = False) -> list[Path]:
    """An embeddings artifact as plain files (format by `out`'s suffix; a .npy gets its
    item ids beside it, `X.ids.txt`, or at `ids_out`); returns the paths written."""
    path, out = Path(path), Path(out)
    s = _suffix(out, "export to")
    ids_path = (Path(ids_out) if ids_out else out.with_suffix(".ids.txt")) if s == ".npy" else None
    if ids_out is not None and s != ".npy":
        raise MgrError("--ids is for .npy exports (the other formats hold their item ids)")
    check_output(out, force)
    if ids_path is not None:
        check_output(ids_path, force)
    x, header = load_embeddings(path)
    ids = item_ids_of(path, header, dataset)
    if s == ".csv":
        write_csv_rows(out, ["item_id"] + [f"v{k}" for k in range(x.shape[1])], ids, x,
                       lambda v: f"{v:.9g}", force)  # 9 digits: every float32 exactly
    elif s == ".npz":
        atomic_write(out, lambda f: np.savez(f, item_ids=np.array(ids, dtype=str), vectors=x), force)
    elif s == ".safetensors":
        from safetensors.numpy import save

        blob = save({"vectors": x}, metadata={"item_ids": json.dumps(ids, ensure_ascii=False)})
        atomic_write(out, lambda f: f.write(blob), force)
    else:
        if any("\n" in i or "\r" in i or i != i.strip() for i in ids):
            raise MgrError("some item ids hold line breaks or edge spaces, which a list of ids "
                           "one per line cannot keep; export to .npz or .csv instead")
        text = ("\n".join(ids) + "\n").encode()
        atomic_write(out, lambda f: np.save(f, x, allow_pickle=False), force)
        atomic_write(ids_path, lambda f: f.write(text), force)
    return [out] + ([ids_path] if ids_path else [])
