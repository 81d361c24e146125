#!/usr/bin/env bash
# Three modalities: text, image and behaviour (collab). SASRec's item table is the third
# modality's embedding; quantized, its IDs join the text and image IDs in MGR-LF and
# MGR-LF++ (a separator per transition, alignment on all six ordered pairs).
#   examples/three_modalities.sh [OUT] [DATASET]
# Without DATASET it generates the demo catalogue (mgr demo-data) and prepares it.
#
# The collaborative IDs come from the training split only: `sasrec train --select last`
# keeps the last epoch and never reads a validation item (and no SASRec reads a test
# item); tests/unit/test_three_modalities.py checks that changing every user's held-out
# items leaves the collab embeddings bit-identical.
#
# Rows: mgr-lf3 (lf: text image collab), mgr-lfpp3+align (lfpp, aligned, then trained),
# the two-modality mgr-lf (text image) for the gap, and Table 3-style partial decoding of
# mgr-lf3 and mgr-lfpp3+align: each modality, each pair, all three.
# Budget: $CONFIG (e.g. CONFIG=configs/tiny.toml for a smoke run of a minute or two).
set -euo pipefail
OUT=${1:-build/three}
DATASET=${2:-}
CONFIG=${CONFIG:-configs/demo.toml}
MGR=${MGR:-mgr}
C=(--config "$CONFIG")
mkdir -p "$OUT/ids" "$OUT/tok" "$OUT/runs" "$OUT/eval"
I=$OUT/ids

if [ -z "$DATASET" ]; then
  DATASET=$OUT/dataset.jsonl
  [ -e "$OUT/raw/items.csv" ] || $MGR demo-data "$OUT/raw" "${C[@]}" --force
  [ -e "$DATASET" ] || $MGR prepare generic "$OUT/raw" -o "$DATASET" --name demo --force
fi

for m in text image; do
  $MGR embed "$DATASET" -o "$I/$m.emb.safetensors" --modality $m "${C[@]}" --force
  $MGR quantize "$I/$m.emb.safetensors" -o "$I/$m.ids.safetensors" "${C[@]}" --force
done
# behaviour: SASRec on the training split, its item table as modality collab
$MGR sasrec train "$DATASET" -o "$OUT/runs/collab-sasrec" --select last "${C[@]}" --force
$MGR sasrec embed "$OUT/runs/collab-sasrec" "$DATASET" -o "$I/collab.emb.safetensors" --force
$MGR quantize "$I/collab.emb.safetensors" -o "$I/collab.ids.safetensors" "${C[@]}" --force

T=$I/text.ids.safetensors; V=$I/image.ids.safetensors; B=$I/collab.ids.safetensors
$MGR tokenize "$DATASET" "$T" "$V" -o "$OUT/tok/mgr-lf.safetensors" --layout lf --force
$MGR tokenize "$DATASET" "$T" "$V" "$B" -o "$OUT/tok/mgr-lf3.safetensors" --layout lf --force
$MGR tokenize "$DATASET" "$T" "$V" "$B" -o "$OUT/tok/mgr-lfpp3.safetensors" --layout lfpp --force

$MGR train "$OUT/tok/mgr-lf.safetensors" -o "$OUT/runs/mgr-lf" "${C[@]}" --force
$MGR train "$OUT/tok/mgr-lf3.safetensors" -o "$OUT/runs/mgr-lf3" "${C[@]}" --force
$MGR align "$OUT/tok/mgr-lfpp3.safetensors" -o "$OUT/runs/mgr-lfpp3-align" "${C[@]}" --force
$MGR train "$OUT/tok/mgr-lfpp3.safetensors" -o "$OUT/runs/mgr-lfpp3+align" \
  --init "$OUT/runs/mgr-lfpp3-align" "${C[@]}" --force

evaluate() {  # RUN TOK EVAL [--modalities SUBSET]
  $MGR evaluate "$OUT/runs/$1" "$OUT/tok/$2.safetensors" -o "$OUT/eval/$3" "${@:4}" "${C[@]}" --force >/dev/null
}
evaluate mgr-lf mgr-lf mgr-lf
SUBSETS="text image collab text,image text,collab image,collab"
for row in mgr-lf3:mgr-lf3 mgr-lfpp3+align:mgr-lfpp3; do
  run=${row%%:*} tok=${row##*:}
  evaluate "$run" "$tok" "$run"
  for s in $SUBSETS; do evaluate "$run" "$tok" "$run.${s/,/+}" --modalities "$s"; done
done

TABLE=()
for r in mgr-lf mgr-lf3 mgr-lfpp3+align; do TABLE+=("$OUT/eval/$r/metrics.jsonl"); done
$MGR table "${TABLE[@]}" > "$OUT/table5-three.md"
PARTIAL=()
for run in mgr-lf3 mgr-lfpp3+align; do
  for s in $SUBSETS; do PARTIAL+=("$OUT/eval/$run.${s/,/+}/metrics.jsonl"); done
  PARTIAL+=("$OUT/eval/$run/metrics.jsonl")
done
$MGR table "${PARTIAL[@]}" > "$OUT/table3-three.md"
echo "Next-item ranking: text + image vs text + image + collab"
cat "$OUT/table5-three.md"
echo
echo "Partial decoding (Table 3 style): each modality, each pair, all three"
cat "$OUT/table3-three.md"
