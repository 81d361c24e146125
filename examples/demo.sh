#!/usr/bin/env bash
# The whole pipeline on the generated demo catalogue: what `make demo` runs.
#   prepare -> embed (text, image, fused) -> quantize -> analyze-ami
#   -> tokenize / align / train / evaluate for TIGER(text), TIGER(image), MGR-EF, MGR-LF, MGR-LF++
# Encoders: the offline stand-ins (MiniLM text, EfficientNet-Lite0 image), NOT CLIP.
set -euo pipefail
OUT=${1:-build/demo}
export MGR=${MGR:-mgr}
export MODEL=${MODEL:---layers 2 --decoder-layers 2 --d-model 64 --heads 4 --d-kv 16 --d-ff 256}
export TRAIN=${TRAIN:---steps 1000 --batch-size 128 --lr 3e-3 --warmup 100 --eval-every 500 --eval-users 300}
export EVAL=${EVAL:-}
mkdir -p "$OUT"
[ -f "$OUT/raw/items.csv" ] || $MGR demo-data "$OUT/raw"
$MGR prepare generic "$OUT/raw" -o "$OUT/dataset.jsonl" --name demo --force
examples/semantic_ids.sh "$OUT/dataset.jsonl" "$OUT/ids" category
export DATASET=$OUT/dataset.jsonl OUT
export TEXT_IDS=$OUT/ids/text.ids.safetensors IMAGE_IDS=$OUT/ids/image.ids.safetensors
export FUSED_IDS=$OUT/ids/fused.ids.safetensors
source examples/rows.sh
for row in tiger_text tiger_image mgr_ef mgr_lf mgr_lfpp; do
  echo "== $row" >&2
  "row_$row"
done
TABLE=()
for r in tiger-text tiger-image mgr-ef mgr-lf mgr-lfpp; do TABLE+=(--table "$OUT/eval/$r/metrics.jsonl"); done
$MGR evaluate "${TABLE[@]}" | tee "$OUT/table5.md"
