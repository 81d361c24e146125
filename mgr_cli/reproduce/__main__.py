"""python -m mgr_cli.reproduce TARGET ...: what the Makefile's paper targets run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mgr_cli.errors import MgrError
from mgr_cli.reproduce import __doc__ as package_doc
from mgr_cli.reproduce.paper import TARGETS
from mgr_cli.reproduce.report import build_target, reproduction
from mgr_cli.reproduce.three import THREE_TARGETS, build_three


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mgr_cli.reproduce", description=package_doc.split("\n")[0])
    ap.add_argument("target", choices=[*TARGETS, *THREE_TARGETS, "reproduction"])
    ap.add_argument("--build", type=Path, default=Path("build/paper/small"))
    ap.add_argument("--sets", default="", help="space-separated dataset folders under --build")
    ap.add_argument("--out", type=Path, default=Path("results"))
    ap.add_argument("--profile", default="small")
    ap.add_argument("--budget", default="")
    ap.add_argument("--levels", default="", help="fig6: ID lengths swept")
    ap.add_argument("--sizes", default="", help="fig6: codebook sizes swept")
    ap.add_argument("--main-levels", type=int, default=3)
    ap.add_argument("--main-size", type=int, default=256)
    ap.add_argument("--reproduction", type=Path, default=Path("REPRODUCTION.md"))
    a = ap.parse_args(argv)
    try:
        if a.target == "reproduction":
            reproduction(a.out, a.reproduction)
            print(f"wrote {a.reproduction}", file=sys.stderr)
            return 0
        sets = a.sets.split()
        if not sets:
            raise MgrError("--sets names no dataset")
        if a.target in THREE_TARGETS:
            build_three(a.target, a.build, sets, a.out, a.profile, a.budget)
        else:
            build_target(a.target, a.build, sets, a.out, a.profile, a.budget,
                         [int(v) for v in a.levels.split()], [int(v) for v in a.sizes.split()],
                         a.main_levels, a.main_size)
        print(f"wrote {a.out / (a.target + '.md')}", file=sys.stderr)
    except (MgrError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
