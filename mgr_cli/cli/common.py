"""What every command shares: the stderr console, one-line errors, the command line."""

from __future__ import annotations

import functools
import os
import shlex
import sys
from enum import Enum
from typing import Any, Callable

import typer

from mgr_cli.errors import MgrError

DEBUG_ENV = "MGR_DEBUG"


def console():
    """Rich console on stderr: logs and progress never mix with data on stdout."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def log(msg: str) -> None:
    console().print(f"[dim]mgr:[/dim] {msg}", markup=True)


def fail(msg: str) -> None:
    """Print one unwrapped `Error: ...` line on stderr and exit 1."""
    sys.stderr.write(f"Error: {msg}\n")
    raise typer.Exit(1)


def handle_errors(fn: Callable) -> Callable:
    """Turn MgrError into a one-line error (set MGR_DEBUG=1 for the traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MgrError as e:
            if os.environ.get(DEBUG_ENV):
                raise
            fail(str(e))
        except KeyboardInterrupt:
            sys.stderr.write("Error: interrupted; no output was written\n")
            raise typer.Exit(130) from None

    return wrapper


def command_line(ctx: typer.Context, skip: frozenset[str] | set[str] = frozenset()) -> str:
    """The command as parsed: arguments in place, every option spelled out (defaults too),
    but for the options in `skip` (parameter names), which did not take part in this run."""
    # the whole command path: `mgr sasrec train`, not `mgr train` (which is another command)
    parents, c = [], ctx
    while c.parent is not None:
        parents.insert(0, c.info_name or "")
        c = c.parent
    parts = ["mgr", *parents]
    for param in ctx.command.params:
        if param.name in skip:
            continue
        value = ctx.params.get(param.name)
        if isinstance(value, Enum):
            value = value.value
        values = [v.value if isinstance(v, Enum) else v for v in value] \
            if isinstance(value, (list, tuple)) else [value]
        if param.param_type_name == "argument":
            parts += [str(v) for v in values if v is not None]
        elif isinstance(value, (list, tuple)):
            for v in values:
                parts += [max(param.opts, key=len), str(v)]
        elif value is not None and value is not False:  # 0 and 0.0 are values, not "unset"
            flag = max(param.opts, key=len)
            parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


