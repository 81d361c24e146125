"""`prepare`: raw data of a known format in, a dataset artifact out.

The formats are a registry, `FORMATS`, of `Format`s; a plugin file adds one with
`register_format` (docs/extending.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from mgr_cli.artifacts import Provenance, check_output, source_entry
from mgr_cli.data.dataset import save_dataset
from mgr_cli.data.protocol import PrepareConfig, apply_protocol
from mgr_cli.data.readers import amazon, generic, hm, lcrec, movielens
from mgr_cli.data.readers.common import RawData
from mgr_cli.errors import MgrError
from mgr_cli.registry import Registry


@dataclass(frozen=True)
class Format:
    """A raw data format `mgr prepare FORMAT` reads.

    read(source, *, interactions, items, images) -> RawData: `source` is the folder;
        `interactions`/`items` the files --interactions/--items name (None: the
        format's own names); `images` the image folder to use, or None for no images.
    images: the format's own image folder inside SOURCE (None: it has none; "": the
        items name their image paths themselves).
    The protocol (PrepareConfig: k-core, history length, ...) is applied afterwards,
    the same for every format.
    """

    name: str
    help: str
    read: Callable[..., RawData]
    images: str | None = None


FORMATS: Registry[Format] = Registry("data format", "FORMAT", [
    Format("hm", "H&M Kaggle: transactions_train.csv[.gz], articles.csv, images/", hm.read, "images"),
    Format("movielens", "MovieLens-100K: u.data, u.item, [items_tmdb.csv], [posters/]",
           movielens.read, "posters"),
    Format("amazon-p5", "Amazon (P5): user_sequence.txt + RecBole *.item or item_text_ids.txt",
           amazon.read_p5),
    Format("amazon-raw", "Amazon review dumps: reviews (2014 or 2018 JSON lines) + meta_*.json.gz",
           amazon.read_raw),
    Format("lcrec", "LC-Rec/MQL4GRec: *.inter.json, [*.item.json], [*.item2id]", lcrec.read),
    Format("generic", "interactions.csv|jsonl + items.csv|jsonl (see README)", generic.read, ""),
])


def register_format(fmt: Format) -> Format:
    """Add a data format (from a plugin file); a name already taken is an error."""
    if not isinstance(fmt, Format):
        raise MgrError("register_format takes a mgr_cli.data.prepare.Format")
    return FORMATS.register(fmt)


def resolve_images(fmt: str, source: Path, images: Path | None, no_images: bool) -> Path | None:
    """The image folder to use: --images, else the format's own folder if present."""
    if no_images:
        return None
    if images is not None:
        if not images.is_dir():
            raise MgrError(f"{images}: image folder not found")
        return images
    default = FORMATS[fmt].images
    if default:
        candidate = source / default
        return candidate if candidate.is_dir() else None
    return None


def given_file(source: Path, path: Path | None, option: str) -> Path | None:
    """A file named by --interactions/--items: as given (absolute, or from the working
    directory), else inside SOURCE, where a file name alone most likely means it."""
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return path
    inside = source / path
    if not path.is_absolute() and inside.is_file():
        return inside
    tried = str(path.resolve()) + ("" if path.is_absolute() else f" nor {inside.resolve()}")
    raise MgrError(f"{option} {path}: no such file ({tried}); give a path from the working "
                   "directory or a file name inside SOURCE")


def prepare(fmt: str, source: Path | str, out: Path | str, *, cfg: PrepareConfig | None = None,
            interactions: Path | None = None, items: Path | None = None,
            images: Path | None = None, no_images: bool = False, name: str | None = None,
            command: str = "python API", force: bool = False,
            log: Callable[[str], None] = lambda s: None) -> dict:
    """Read `source` in format `fmt`, apply the protocol, write the dataset to `out`."""
    if fmt not in FORMATS:
        raise MgrError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    cfg = cfg or PrepareConfig()
    if cfg.problems():
        raise MgrError("; ".join(cfg.problems()))
    source, out = Path(source), Path(out)
    check_output(out, force)
    if not source.is_dir():
        raise MgrError(f"{source}: source folder not found")
    interactions = given_file(source, interactions, "--interactions")
    items = given_file(source, items, "--items")
    image_dir = resolve_images(fmt, source, images, no_images)
    log(f"reading {fmt} data from {source}" + (f" with images from {image_dir}" if image_dir else ""))
    raw = FORMATS[fmt].read(source, interactions=interactions, items=items, images=image_dir)
    if no_images:  # a format whose items name their own image paths still has none
        raw.image_root = None
    ds, report = apply_protocol(raw, cfg, name or source.resolve().name, log)
    # paths as the user gave them (the dataset's meta keeps the resolved image folder it needs)
    config = {"format": fmt, "source": str(source),
              "images": str(images) if images else None, **asdict(cfg)}
    return save_dataset(ds, out, provenance=Provenance(command, config),
                        sources=[source_entry(p) for p in raw.sources], report=report, force=force)
