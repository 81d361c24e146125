"""Results of the paper's tables and figures from the artifacts the Makefile builds.

    python -m mgr_cli.reproduce table5 --build build/paper/small --profile small \
        --sets "hm movielens" --out results

Each target reads the artifacts of every dataset folder it is given (fixed names, see
`ROWS` and the Makefile), and writes `OUT/<target>.md` (the table next to the paper's,
the findings checked, the data, the machine, the budget and the exact commands, taken
from the artifacts' own provenance) and `OUT/<target>.json`; figures also a PNG.
`reproduction` gathers the JSON files into REPRODUCTION.md.
"""

from __future__ import annotations

from mgr_cli.reproduce.report import build_target, reproduction

__all__ = ["build_target", "reproduction"]
