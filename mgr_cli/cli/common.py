"""What every command shares: the stderr console, one-line errors, the command line."""

from __future__ import annotations

import functools
import os
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from mgr_cli.errors import MgrError

DEBUG_ENV = "MGR_DEBUG"


def console():
    """Rich console on stderr: logs and progress never mix with data on stdout."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


LOG_ENV = "MGR_LOG"


def log(msg: str) -> None:
    """A log line on stderr, or appended to the file $MGR_LOG names (the demo keeps the
    terminal for progress bars and one-line summaries that way). Off a terminal every
    record stays on one line, so `grep` and `jq` can read a redirected log."""
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a") as f:
            f.write(f"mgr: {msg}\n")
        return
    if not sys.stderr.isatty():  # a log file or a pipe: whole lines, never wrapped at 80
        sys.stderr.write(f"mgr: {msg}\n")
        sys.stderr.flush()
        return
    from rich.text import Text

    # the message is plain text (a JSON record's [..] is not markup); the terminal wraps it
    console().print(Text.assemble(("mgr:", "dim"), " ", msg), soft_wrap=True)


# --config FILE: a TOML profile (configs/*.toml) whose tables set a command's defaults.
# A command reads the table named after it (a sub-command its nested table: `mgr sasrec
# train` reads [sasrec.train]); train and align also read [model], the T5 size they
# share. Options given on the command line override the file.
PROFILE_TABLES = {"train": ("model", "train"), "align": ("model", "align")}


def command_name(ctx: typer.Context) -> str:
    """`train`, `sasrec.train`: the command's path below `mgr`, dotted."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return ".".join(reversed(names))


def profile_tables(profile: dict, name: str) -> list[tuple[str, object]]:
    """The (table name, table) pairs of `profile` that command `name` reads (absent: {})."""
    out = []
    for table in PROFILE_TABLES.get(name, (name,)):
        entries = profile
        for part in table.split("."):
            entries = entries.get(part, {}) if isinstance(entries, dict) else None
        out.append((table, entries))
    return out


def _apply_profile(ctx: typer.Context, param: typer.CallbackParam, value: Optional[Path]):
    if value is None:
        return value
    import tomllib

    try:
        profile = tomllib.loads(Path(value).read_text())
    except OSError as e:
        raise typer.BadParameter(f"cannot read {value}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise typer.BadParameter(f"{value} is not valid TOML: {e}") from None
    name = command_name(ctx)
    shown = name.replace(".", " ")
    options = {p.name: p for p in ctx.command.params if p.param_type_name == "option"}
    defaults = {}
    for table, entries in profile_tables(profile, name):
        if not isinstance(entries, dict):
            raise typer.BadParameter(f"{value}: [{table}] must be a table of options")
        for key, v in entries.items():
            opt = key.replace("-", "_")
            if opt not in options or opt in ("config", "out", "force", "resume"):
                raise typer.BadParameter(f"{value} [{table}]: mgr {shown} has no option --{key.replace('_', '-')}")
            defaults[opt] = v
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def config_option():
    return typer.Option(None, "--config", is_eager=True, callback=_apply_profile,
                        help="A TOML profile (configs/*.toml): its tables set this command's "
                             "defaults; options given here override them.")


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




def _load_plugins(ctx: typer.Context, param: typer.CallbackParam, value):
    """--plugin FILE.py (and $MGR_PLUGINS): run the files before any choice is checked."""
    from mgr_cli.registry import load_plugins

    try:
        load_plugins(value or ())
    except MgrError as e:
        if os.environ.get(DEBUG_ENV):
            raise
        fail(str(e))
    return value


def plugin_option():
    """`--plugin FILE.py`, repeatable and eager: the file registers its own quantize
    method, token layout, encoder family or data format (docs/extending.md)."""
    return typer.Option(None, "--plugin", is_eager=True, callback=_load_plugins,
                        help="A Python file that registers a method, layout, encoder or format "
                             "(repeatable; also $MGR_PLUGINS, colon-separated).")


def choice(registry):
    """A callback checking a str option against a registry's keys after the plugins are
    loaded, or against a fixed tuple of names (`choice(("test", "valid"))`): an unknown
    name exits 2 with typer's `Invalid value` line listing them. The value stays a plain
    str, so a --config profile can set it and the library needs no Enum."""

    def check(value):
        if value is not None and value not in registry:
            raise typer.BadParameter(f"{value!r} is not one of "
                                     + ", ".join(repr(k) for k in registry) + ".")
        return value

    return check
