#!/usr/bin/env bash
# Stage 1 of the paper by hand: text, image and fused (early fusion) semantic IDs of a
# prepared dataset, then Table 1 (AMI of first-level IDs) and Figure 4's contact sheet.
#
#   examples/semantic_ids.sh build/hm/dataset.jsonl build/hm product_type_name
#
# Encoders: CLIP ViT-B-32 when CLIP_PRETRAINED names a local checkpoint; otherwise the
# offline stand-ins (MiniLM text, EfficientNet-Lite0 image), which are NOT CLIP.
set -euo pipefail
DATASET=$1
OUT=${2:-build/ids}
FIELD=${3:-}
MGR=${MGR:-mgr}
mkdir -p "$OUT"
if [ -n "${CLIP_PRETRAINED:-}" ]; then
  ENC=(--clip-model "${CLIP_MODEL:-ViT-B-32}" --clip-pretrained "$CLIP_PRETRAINED")
  FUSION=mean
else
  ENC=(--text-model standin:minilm --image-model standin:efficientnet-lite0)
  FUSION=concat   # the stand-ins do not share one space (384-d vs 1280-d)
fi
$MGR embed "$DATASET" -o "$OUT/text.emb.safetensors" --modality text "${ENC[@]}" --force
$MGR embed "$DATASET" -o "$OUT/image.emb.safetensors" --modality image "${ENC[@]}" --force
$MGR fuse "$OUT/text.emb.safetensors" "$OUT/image.emb.safetensors" \
  -o "$OUT/fused.emb.safetensors" --fusion $FUSION --force
for m in text image fused; do
  $MGR quantize "$OUT/$m.emb.safetensors" -o "$OUT/$m.ids.safetensors" --seed 0 --force
done
FIELDS=()
[ -n "$FIELD" ] && FIELDS=(--field "$FIELD")
$MGR analyze-ami --text "$OUT/text.ids.safetensors" --image "$OUT/image.ids.safetensors" \
  --fused "$OUT/fused.ids.safetensors" "${FIELDS[@]}" --format markdown \
  --sheet "$OUT/figure4.png" --force > "$OUT/table1.md"
cat "$OUT/table1.md"
