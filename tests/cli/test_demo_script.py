"""examples/demo.sh (what `make demo` runs) end to end at the tiny profile: every row, the
reference rows, quiet output, and a second run that only reprints the tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

ROWS = ["random", "popular", "tiger-text", "tiger-image", "mgr-ef", "mgr-lf", "mgr-lfpp", "oracle"]


def run_demo(out: Path, mgr: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MGR": mgr, "CONFIG": "configs/tiny.toml"}
    env.pop("MGR_LOG", None)
    return subprocess.run(["bash", "examples/demo.sh", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, fast_mgr):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, fast_mgr)


def test_demo_runs_every_row_with_errors_and_references(demo_run):
    out, r = demo_run
    assert r.returncode == 0, r.stderr[-2000:]
    table = (out / "table5.md").read_text().splitlines()
    names = [line.split("|")[1].strip() for line in table[2:]]
    assert names == ROWS
    for line in table[2:]:
        assert line.count("±") == 5  # every metric with its standard error
    assert "Table 5" in r.stdout and "Done in" in r.stdout and str(out) in r.stdout
    assert (out / "table1.md").exists() and (out / "raw" / "truth.json").exists()


def test_demo_output_is_quiet_and_logged(demo_run):
    out, r = demo_run
    assert "mgr:" not in r.stderr  # log lines went to the step logs
    steps = [line.split()[0] for line in r.stderr.splitlines() if re.match(r"^  \S+\s+\d+s$", line)]
    assert "train-mgr-lfpp" in steps and "embed-image" in steps and len(steps) == len(set(steps))
    assert "mgr:" in (out / "logs" / "train-tiger-text.log").read_text()


def test_second_demo_run_only_reprints(demo_run):
    out, first = demo_run
    again = run_demo(out, f"{sys.executable} -m mgr_cli")  # the real thing, once
    assert again.returncode == 0
    assert not re.search(r"^  \S+\s+\d+s$", again.stderr, re.M)  # no step ran
    assert again.stdout.split("Done in")[0] == first.stdout.split("Done in")[0]
