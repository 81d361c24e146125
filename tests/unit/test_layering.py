"""The packages form one-way layers: no module imports a package later in the order, so
any stage can be used (or replaced) without the ones after it, and the library imports
without the command line."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

# earlier packages never import later ones (evaluation, the metrics and the predictions
# artifacts, comes before decoding and training: both rank users and write or validate
# with the same metrics; decoding comes before training: training validates by
# decoding, decoding never needs a trainer)
ORDER = ["errors", "registry", "distributed", "artifacts", "data", "encoders", "quantize", "analysis",
         "tokens", "models", "evaluation", "decoding", "training", "reproduce", "cli"]


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mgr_cli."):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("mgr_cli."))


def test_no_package_imports_a_later_one():
    rank = {p: i for i, p in enumerate(ORDER)}
    root = REPO / "mgr_cli"
    packages = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {p.stem for p in root.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert packages == set(ORDER), f"place new packages in ORDER: {packages ^ set(ORDER)}"
    bad = []
    for f in root.rglob("*.py"):
        parts = f.relative_to(root).parts
        if parts[0] in ("__init__.py", "__main__.py"):
            continue
        here = parts[0].removesuffix(".py")
        for mod in _imports(f):
            dep = mod.split(".")[1]
            if dep in rank and rank[dep] > rank[here]:
                bad.append(f"{f.relative_to(REPO)} imports {mod}")
    assert not bad, bad


def test_importing_the_library_pulls_in_no_command_line():
    code = ("import sys, mgr_cli, mgr_cli.data, mgr_cli.artifacts; "
            "print(sorted(m for m in sys.modules if m.startswith(('mgr_cli.cli', 'typer', 'rich'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_evaluation_and_reports_import_no_torch():
    """Reports and comparisons read artifacts only: no torch, no decoders."""
    code = ("import sys, mgr_cli.evaluation, mgr_cli.reproduce.tables; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('mgr_cli.decoding')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
