#!/usr/bin/env bash
# The SASRec baseline on a prepared dataset: same split, history length and metrics as
# the generative rows. Usage: examples/sasrec.sh DATASET OUT
set -euo pipefail
DATASET=$1
OUT=${2:-build/sasrec}
MGR=${MGR:-mgr}
$MGR sasrec train "$DATASET" -o "$OUT/run" ${SASREC_FLAGS:-} --force
$MGR sasrec evaluate "$OUT/run" "$DATASET" -o "$OUT/eval" --force
