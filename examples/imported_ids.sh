#!/usr/bin/env bash
# Semantic IDs made elsewhere, through `mgr ids import`, and their AMI:
#  * Amazon 2018 Instruments: MQL4GRec's image-derived (CLIP ViT-L/14) and text-derived IDs
#  * Amazon 2014 Beauty: LETTER's IDs, against the category fields and our own text IDs
# Usage: examples/imported_ids.sh [DATA_DIR] [OUT_DIR]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-build/imported}
MGR=${MGR:-mgr}
mkdir -p "$OUT"
I=$DATA/amazon2018-instruments
$MGR prepare lcrec "$I" -o "$OUT/instruments.dataset.jsonl" --force
$MGR ids import "$I/Instruments.index_vitemb.json" --dataset "$OUT/instruments.dataset.jsonl" \
  --modality image -o "$OUT/instruments.image.ids.safetensors" --force
$MGR ids import "$I/Instruments.index_lemb.json" --dataset "$OUT/instruments.dataset.jsonl" \
  --modality text -o "$OUT/instruments.text.ids.safetensors" --force
for p in 1 2 3; do
  $MGR analyze-ami --text "$OUT/instruments.text.ids.safetensors" \
    --image "$OUT/instruments.image.ids.safetensors" --prefix $p --format markdown
done > "$OUT/instruments_ami.md"

B=$DATA/amazon2014/Beauty
$MGR prepare amazon-p5 "$B" -o "$OUT/beauty.dataset.jsonl" --force
$MGR ids import "$B/letter.index.json" --dataset "$OUT/beauty.dataset.jsonl" \
  --modality text -o "$OUT/beauty.letter.ids.safetensors" --force
$MGR embed "$OUT/beauty.dataset.jsonl" -o "$OUT/beauty.text.emb.safetensors" --modality text \
  --text-model standin:minilm --force
$MGR quantize "$OUT/beauty.text.emb.safetensors" -o "$OUT/beauty.text.ids.safetensors" --force
$MGR analyze-ami "$OUT/beauty.letter.ids.safetensors" --field category --field top_category \
  --field brand --format markdown > "$OUT/beauty_ami.md"
$MGR analyze-ami "$OUT/beauty.text.ids.safetensors" --field category --field top_category \
  --field brand --format markdown >> "$OUT/beauty_ami.md"
$MGR analyze-ami "$OUT/beauty.letter.ids.safetensors" "$OUT/beauty.text.ids.safetensors" \
  --format markdown >> "$OUT/beauty_ami.md"
cat "$OUT/instruments_ami.md" "$OUT/beauty_ami.md"
