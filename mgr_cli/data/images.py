"""Item images: confined to their folder, checked to exist and decode before any is used."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mgr_cli.errors import MgrError


def image_file(root: Path | str, rel: str, allow_outside: bool = False) -> Path:
    """`root/rel`, refused unless it resolves inside `root` (symlinks followed) or
    `allow_outside`. Decided before the file is touched: the error never tells whether
    a file outside exists."""
    path = Path(root) / rel
    if allow_outside:
        return path
    try:
        inside = path.resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise MgrError(f"image path {rel!r} does not resolve inside the image folder {root}; "
                       "fix the items file or pass --allow-outside-images")
    return path


def _decode_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    # a decompression bomb (more pixels than PIL allows) is refused, like a broken file
    return (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


DECODE_ERRORS = _decode_errors()


def decode_problem(path: Path) -> str | None:
    """None if the image decodes, else a short reason."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads every byte
                im.load()
    except FileNotFoundError:
        return "missing"
    except Image.DecompressionBombWarning as e:
        return f"too large to decode safely ({e})"
    except DECODE_ERRORS as e:
        return f"does not decode ({e})"
    return None


def find_bad_images(paths: list[Path], workers: int = 4) -> list[tuple[Path, str]]:
    """(path, reason) for every image that does not decode, in input order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(decode_problem, paths))
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]
