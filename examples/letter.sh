#!/usr/bin/env bash
# LETTER (Wang et al. 2024) as a row of Table 5: SASRec's item embeddings are the
# collaborative side of the tokenizer; the rest is the TIGER pipeline unchanged.
# Usage: examples/letter.sh DATASET TEXT_EMBEDDINGS OUT
#   e.g. examples/letter.sh build/hm/dataset.jsonl build/hm/text.emb.safetensors build/letter
set -euo pipefail
DATASET=$1
TEXT=$2
OUT=${3:-build/letter}
MGR=${MGR:-mgr}
mkdir -p "$OUT"
$MGR sasrec train "$DATASET" -o "$OUT/sasrec" ${SASREC:-} --force
$MGR sasrec evaluate "$OUT/sasrec" "$DATASET" -o "$OUT/eval-sasrec" --force   # the SASRec row
$MGR sasrec embed "$OUT/sasrec" "$DATASET" -o "$OUT/sasrec.emb.safetensors" --force
$MGR quantize "$TEXT" -o "$OUT/letter.ids.safetensors" --method letter \
  --collab "$OUT/sasrec.emb.safetensors" --alpha ${ALPHA:-0.02} --gamma ${GAMMA:-1e-4} --force
$MGR tokenize "$DATASET" "$OUT/letter.ids.safetensors" -o "$OUT/letter.tok.safetensors" --layout tiger --force
$MGR train "$OUT/letter.tok.safetensors" -o "$OUT/run" ${MODEL:-} ${TRAIN:-} --force
$MGR evaluate "$OUT/run" "$OUT/letter.tok.safetensors" -o "$OUT/eval" --force
