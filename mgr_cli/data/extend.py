"""New items for an existing catalogue (`mgr items add`): read them, check them against the
dataset, and write the extended dataset (old items first, in their order; interactions
unchanged; meta.added and a "base" input say what was added to what)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from mgr_cli.artifacts import Input, Provenance, source_entry
from mgr_cli.data.dataset import BASE, Dataset, Item, ids_hash, save_dataset
from mgr_cli.data.images import image_file
from mgr_cli.errors import MgrError

SHOWN = 3


def read_new_items(items_file: Path | str, ds: Dataset, images: Path | str | None = None
                   ) -> tuple[list[Item], str | None]:
    """The items of a generic items file (item_id, text, [image], [fields]: what `mgr
    prepare generic` reads) and the image folder of the extended dataset. Image paths are
    relative to `images` (default: the dataset's image folder, else the items file's
    folder), must resolve inside it, and are rewritten relative to the dataset's image
    folder, which must hold that folder: a dataset has one image folder."""
    from mgr_cli.data.readers.generic import read_items

    items_file = Path(items_file)
    if not items_file.is_file():
        raise MgrError(f"{items_file}: no such items file")
    new = list(read_items(items_file).values())
    if not new:
        raise MgrError(f"{items_file}: no items in it")
    known = ds.item_index()
    clash = [it.id for it in new if it.id in known]
    if clash:
        shown = ", ".join(repr(i) for i in clash[:SHOWN]) + (", ..." if len(clash) > SHOWN else "")
        raise MgrError(f"{items_file}: {len(clash)} item id{'s are' if len(clash) > 1 else ' is'} "
                       f"already in the catalogue ({shown}); new items need new ids")
    if not any(it.image for it in new):
        return new, ds.image_root
    root = Path(ds.image_root) if ds.image_root else None
    folder = Path(images) if images is not None else (root or items_file.parent)
    if not folder.is_dir():
        raise MgrError(f"{folder}: image folder not found")
    if root is None:  # the old items have no images: the new ones bring the folder
        root = folder
    elif not folder.resolve().is_relative_to(root.resolve()):
        raise MgrError(f"--images {folder} is not inside the dataset's image folder {root}; "
                       "a dataset has one image folder: put the new images inside it")
    sub = folder.resolve().relative_to(root.resolve())
    out = []
    for it in new:
        if it.image:
            image_file(folder, it.image)  # confined to its folder (one-line error otherwise)
            it = replace(it, image=(sub / it.image).as_posix() if str(sub) != "." else it.image)
        out.append(it)
    return out, str(root)


def extended(ds: Dataset, new: list[Item], image_root: str | None) -> Dataset:
    """The dataset with `new` appended to its items; users and sequences as they were."""
    return Dataset(ds.name, ds.items + new, ds.user_ids, ds.sequences, ds.max_history,
                   image_root, ds.meta)


def save_extended(base: Path, base_header: dict, ds: Dataset, new: list[Item], out: Path, *,
                  items_file: Path, command: str = "python API", force: bool = False) -> dict:
    """Write the extended dataset `ds` (made by `extended`) with its lineage."""
    added = {"base": os.path.basename(base), "items_before": len(ds.items) - len(new),
             "items_added": len(new), "added_ids_hash": ids_hash([it.id for it in new])}
    config = {"items": str(items_file), "base": str(base)}
    return save_dataset(ds, out, provenance=Provenance(command, config),
                        sources=[source_entry(items_file)],
                        report=base_header["meta"].get("report"),
                        inputs=[Input(BASE, base, base_header)], added=added, force=force)
