"""Putting a whole file or folder in place at once: `replace_atomically`. Used for what
is written by a library call that takes a path (safetensors, transformers'
save_pretrained), and for folders of several artifacts (checkpoints, `mgr items add`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from mgr_cli.artifacts.core import _temp


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` a file or a folder beside `path`, then rename it to `path`. A failure
    (or a crash) before the rename leaves the previous `path` as it was; a folder, which
    cannot be renamed over another, has the old one moved aside first and back on failure."""
    tmp, old = _temp(path, "tmp"), _temp(path, "old")
    try:
        write(tmp)
        if path.is_dir():
            path.replace(old)
            try:
                tmp.replace(path)
            except BaseException:
                old.replace(path)
                raise
        else:
            tmp.replace(path)
    finally:
        for leftover in (tmp, old):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink(missing_ok=True)
