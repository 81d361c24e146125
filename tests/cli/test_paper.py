"""The paper's make targets on the generated demo catalogue with the tiny profile: every
target builds, re-running is a no-op, a changed stage re-runs only its dependents, and
a missing data folder stops with one line naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

TARGETS = ["table1", "table2", "table3", "table5", "fig4", "fig5", "fig6"]


def make(*args, cwd=REPO, check=True, fast_mgr=None):
    """`fast_mgr` (`mgr server`'s client) runs both `mgr` and `python -m mgr_cli.reproduce`."""
    mgr, py = (fast_mgr, fast_mgr) if fast_mgr else (Path(sys.executable).parent / "mgr", sys.executable)
    cmd = ["make", "--no-print-directory", f"MGR={mgr}", f"PY={py}",
           "INSTALLED=", *args]
    # a clean make: `make test` runs us with its own MAKEFLAGS (jobserver, -j), not ours
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1200,
                       env={**env, "PYTHONUNBUFFERED": "1"})
    if check:
        assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return r


@pytest.fixture(scope="module")
def paper(tmp_path_factory, fast_mgr):
    tmp = tmp_path_factory.mktemp("paper")
    args = ["PROFILE=tiny", "MM_SETS=demo", "ID_SETS=demoids", "TEXT_SETS=demotext",
            f"PB={tmp / 'build'}", f"RESULTS={tmp / 'results'}"]
    make("-j2", "paper", *args, fast_mgr=fast_mgr)
    return tmp, args


def test_every_target_writes_markdown_json_and_figures(paper):
    tmp, _ = paper
    res = tmp / "results"
    for t in TARGETS:
        rec = json.loads((res / f"{t}.json").read_text())
        assert rec["target"] == t and rec["profile"] == "tiny"
        md = (res / f"{t}.md").read_text()
        assert "Profile `tiny`" in md and "## Machine" in md and "## Commands" in md
    for png in ("fig4.png", "fig5.png", "fig6.png"):
        assert (res / png).stat().st_size > 1000
    t5 = json.loads((res / "table5.json").read_text())["results"]
    assert list(t5["demo"]) == ["popular", "sasrec", "tiger-textlm", "tiger-text", "tiger-image", "letter", "hc",
                                "mgr-ef", "mgr-lf", "mgr-lfpp+align"]
    assert set(t5["demotext"]) == {"popular", "sasrec", "tiger-textlm", "tiger-text", "letter", "hc"}
    # the IDs exported from demo and imported into demoids give the very same models
    for row in ("tiger-text", "tiger-image", "mgr-lf", "mgr-lfpp+align"):
        assert t5["demoids"][row] == t5["demo"][row]
    md = (res / "table5.md").read_text()
    assert "| Most popular (training split) |" in md and " ± " in md
    assert "every trained row above the most-popular list (Hits@5)" in md
    assert "mgr popular" in md
    assert "mgr train" in md and "mgr tokenize" in md and "mgr prepare generic" in md
    fig6 = json.loads((res / "fig6.json").read_text())["results"]["demo"]
    assert set(fig6["length"]) == {"2", "3"} and set(fig6["codebook"]) == {"4", "8"}
    assert (tmp / "results" / "REPRODUCTION.md").read_text().count("## table") == 4


def test_make_reruns_only_what_changed(paper):
    tmp, args = paper
    again = make("-n", *[f"{tmp / 'results'}/{t}.md" for t in TARGETS], *args).stdout.splitlines()
    assert len(again) == len(TARGETS) and all(line.endswith("is up to date.") for line in again)
    os.utime(tmp / "build" / "demo" / "image.ids.safetensors")  # as if re-made
    plan = make("-n", *[f"{tmp / 'results'}/{t}.md" for t in TARGETS], *args).stdout
    assert "tiger-image.tok" in plan and "table1" in plan
    assert "tiger-text.tok" not in plan and "sasrec train" not in plan
    # a missing stage output (a new dataset, a deleted run) is built again
    import shutil

    shutil.rmtree(tmp / "build" / "demo" / "hc.eval")
    plan = make("-n", f"{tmp / 'results'}/table5.md", *args).stdout
    assert "hc.eval" in plan and "mgr evaluate" in plan
    # ... also one in the middle of a chain (make would call it intermediate and skip it)
    shutil.rmtree(tmp / "build" / "demo" / "tiger-image.run")
    (tmp / "build" / "demo" / "letter.tok.safetensors").unlink()
    plan = make("-n", f"{tmp / 'results'}/table5.md", *args).stdout
    assert "mgr train" in plan and "tiger-image.run" in plan and "tiger-image.eval" in plan
    assert "letter.tok" in plan and "letter.eval" in plan and "tiger-text.run" not in plan


def test_missing_data_is_one_line(tmp_path):
    r = make("table1", "DATA=/nonexistent/data", f"PB={tmp_path}/b", f"RESULTS={tmp_path}/r", check=False)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "/nonexistent/data/hm not found" in lines[0], r.stderr
    assert not (tmp_path / "r").exists()
