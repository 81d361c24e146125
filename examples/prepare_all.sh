#!/usr/bin/env bash
# Prepare every shared data set (or the ones whose folders exist) into datasets/.
# Usage: examples/prepare_all.sh [DATA_DIR] [OUT_DIR]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-build/datasets}
MGR=${MGR:-mgr}
mkdir -p "$OUT"
run() {  # name format folder
  if [ -d "$DATA/$3" ]; then
    $MGR prepare "$2" "$DATA/$3" -o "$OUT/$1.dataset.jsonl" --force
  else
    echo "skip $1: $DATA/$3 not found" >&2
  fi
}
run hm hm hm
run movielens movielens movielens-100k
run beauty amazon-p5 amazon2014/Beauty
run toys amazon-p5 amazon2014/Toys
run sports amazon-p5 amazon2014/Sports
run instruments lcrec amazon2018-instruments
run scientific lcrec amazon-scientific
for f in "$OUT"/*.dataset.jsonl; do $MGR inspect "$f" --json | python3 -c \
  'import json,sys; h=json.load(sys.stdin); s=h["meta"]["stats"]; print(h["meta"]["name"], s["users"], s["items"], s["interactions"])'; done
