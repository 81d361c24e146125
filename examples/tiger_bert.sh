#!/usr/bin/env bash
# TIGER(BERT), the paper's text-LM baseline: any transformers encoder from a local
# directory embeds the item texts; the rest is the TIGER pipeline unchanged.
# Usage: examples/tiger_bert.sh DATASET BERT_DIR OUT     (BERT_DIR: e.g. a local bert-base-uncased;
#        standin:minilm works too, offline)
set -euo pipefail
DATASET=$1
BERT=$2
OUT=${3:-build/tiger-bert}
MGR=${MGR:-mgr}
$MGR embed "$DATASET" -o "$OUT/text.emb.safetensors" --modality text --text-model "$BERT" \
  --pooling ${POOLING:-cls} --force
$MGR quantize "$OUT/text.emb.safetensors" -o "$OUT/text.ids.safetensors" --force
$MGR tokenize "$DATASET" "$OUT/text.ids.safetensors" -o "$OUT/tiger.tok.safetensors" --layout tiger --force
$MGR train "$OUT/tiger.tok.safetensors" -o "$OUT/run" ${TRAIN:-} --force
$MGR evaluate "$OUT/run" "$OUT/tiger.tok.safetensors" -o "$OUT/eval" --force
