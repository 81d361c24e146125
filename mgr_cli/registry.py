"""Registries of swappable parts, and plugin files that add to them.

Each family (data formats, encoder families, quantize methods, token layouts) keeps a
`Registry` in its own package: a dict from name to a small frozen dataclass with one
contract (`name`, `help`, the function(s) it provides, the config fields it reads). The
command line builds its choices from the keys, so a new entry needs no edit anywhere
else. A plugin is a Python file that calls the family's `register_*` function; the
commands load it with `--plugin FILE.py` (repeatable) or from `$MGR_PLUGINS`
(os.pathsep-separated files), before they validate their choices:

    # my_quantizer.py
    from mgr_cli.quantize import Method, register_method
    register_method(Method("signs", "random-projection signs", encode=my_encode))

    mgr quantize text.safetensors -o text.ids.safetensors --plugin my_quantizer.py --method signs
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Generic, Iterable, TypeVar

from mgr_cli.errors import MgrError

PLUGINS_ENV = "MGR_PLUGINS"
T = TypeVar("T")


class Registry(dict, Generic[T]):
    """Name -> entry; every entry has `name` and `help`. Registering a name twice is an error."""

    def __init__(self, family: str, option: str, entries: Iterable[T] = ()):
        super().__init__()
        self.family, self.option = family, option  # "quantize method", "--method"
        self.origins: dict[str, Path] = {}  # name -> the plugin file that registered it
        for entry in entries:
            self.register(entry)

    def register(self, entry: T) -> T:
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name or not isinstance(getattr(entry, "help", None), str):
            raise MgrError(f"a {self.family} needs a non-empty name and a one-line help string")
        if name in self:
            raise MgrError(f"{self.family} {name!r} is already registered; pick another name")
        self[name] = entry
        if _LOADING:
            self.origins[name] = _LOADING[-1]
        return entry

    def pick(self, name: str) -> T:
        """The entry called `name`, or a one-line error listing the choices."""
        if name not in self:
            raise MgrError(f"{self.option} must be one of {', '.join(self)}, got {name!r} (a "
                           "plugin's? load its file with --plugin FILE.py or $MGR_PLUGINS)")
        return self[name]

    def describe(self) -> str:
        """`name (help), ...`: the option's help text."""
        return ", ".join(f"{k} ({e.help})" for k, e in self.items())


_LOADED: dict[Path, str] = {}  # plugin file -> module name: each file runs once per process
_LOADING: list[Path] = []  # the plugin file running now (what it registers comes from it)


def plugin_files(given: Iterable[Path | str] = ()) -> list[Path]:
    """$MGR_PLUGINS first, then the files given (each once)."""
    env = [p for p in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for p in [*env, *given]:
        path = Path(p).expanduser()
        if path.resolve() not in [q.resolve() for q in out]:
            out.append(path)
    return out


def load_plugin(path: Path | str) -> str:
    """Run one plugin file (by path, not by module name); its module name."""
    path = Path(path)
    key = path.resolve()
    if key in _LOADED:
        return _LOADED[key]
    if not path.is_file():
        raise MgrError(f"plugin {path}: no such file")
    name = f"mgr_plugin_{path.stem}_{hashlib.sha256(str(key).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise MgrError(f"plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _LOADING.append(key)
    try:
        spec.loader.exec_module(module)
    except MgrError as e:  # e.g. a name registered twice
        del sys.modules[name]
        raise MgrError(f"plugin {path}: {e}") from None
    except Exception as e:  # the plugin's own bug: one line, the traceback under MGR_DEBUG
        del sys.modules[name]
        if os.environ.get("MGR_DEBUG"):
            raise
        detail = str(e).splitlines()[0] if str(e) else ""
        raise MgrError(f"plugin {path} failed to load: {type(e).__name__}"
                       + (f": {detail}" if detail else "")) from None
    finally:
        _LOADING.pop()
    _LOADED[key] = name
    return name


def load_plugins(given: Iterable[Path | str] = ()) -> list[str]:
    """Load $MGR_PLUGINS and the files given; the module names."""
    return [load_plugin(p) for p in plugin_files(given)]
