"""Checking that item images exist and decode, before any of them is used."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def decode_problem(path: Path) -> str | None:
    """None if the image decodes, else a short reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads every byte
            im.load()
    except FileNotFoundError:
        return "missing"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return f"does not decode ({e})"
    return None


def find_bad_images(paths: list[Path], workers: int = 4) -> list[tuple[Path, str]]:
    """(path, reason) for every image that does not decode, in input order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(decode_problem, paths))
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]
