"""A progress bar on stderr, drawn only on a terminal and only on rank 0."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from mgr_cli import distributed


@contextlib.contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    if not sys.stderr.isatty() or not distributed.from_env().main:
        yield lambda n: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    from mgr_cli.cli.common import console

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.1f}/s" if task.speed else "", style="progress.data.speed")

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  Rate(), TimeRemainingColumn(), console=console(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
