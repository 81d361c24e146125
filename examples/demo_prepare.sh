#!/usr/bin/env bash
# The demo catalogue, generated and prepared by hand: the first two stages of `make demo`.
set -euo pipefail
OUT=${1:-build/demo}
MGR=${MGR:-mgr}
$MGR demo-data "$OUT/raw" --force
$MGR prepare generic "$OUT/raw" -o "$OUT/dataset.jsonl" --force
$MGR inspect "$OUT/dataset.jsonl" --verify
