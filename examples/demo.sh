#!/usr/bin/env bash
# The whole pipeline on the generated demo catalogue: what `make demo` runs.
#   demo-data -> prepare -> embed (text, image) -> fuse -> quantize -> analyze-ami
#   -> tokenize / [align] / train / evaluate: TIGER(text), TIGER(image), MGR-EF, MGR-LF, MGR-LF++
#   -> random, most popular, and the oracle (the simulation's own rules: the ceiling)
# The same commands a user runs on real data, with the budget of one profile ($CONFIG).
# Encoders: the profile's [embed] table; configs/demo.toml names the offline stand-ins
# (MiniLM text, EfficientNet-Lite0 image), which are NOT CLIP.
# Independent steps run in two lanes, one core each. A step is skipped when its output
# exists, so a second run only reprints the tables. Each step's output goes to
# OUT/logs/<step>.log; the terminal gets one line per step and the tables.
set -euo pipefail
OUT=${1:-build/demo}
CONFIG=${CONFIG:-configs/demo.toml}
MGR=${MGR:-mgr}
LOGS=$OUT/logs
mkdir -p "$LOGS" "$OUT/ids" "$OUT/tok" "$OUT/runs" "$OUT/eval"
C=(--config "$CONFIG")
D=$OUT/dataset.jsonl
I=$OUT/ids
START=$SECONDS

step() {  # NAME OUTPUT COMMAND...: run COMMAND unless OUTPUT exists
  local name=$1 output=$2 t0=$SECONDS
  shift 2
  [ -e "$output" ] && return 0
  if ! MGR_LOG="$LOGS/$name.log" "$@" >>"$LOGS/$name.log" 2>&1; then
    echo "demo: step $name failed; the end of $LOGS/$name.log:" >&2
    tail -n 3 "$LOGS/$name.log" >&2
    return 1
  fi
  printf '  %-20s %4ds\n' "$name" $((SECONDS - t0)) >&2
}

lanes() {  # "STEPS A" "STEPS B": run two lists of functions side by side, one core each
  local a b
  (export OMP_NUM_THREADS=1; for f in $1; do "$f"; done) & a=$!
  (export OMP_NUM_THREADS=1; for f in $2; do "$f"; done) & b=$!
  wait $a && wait $b
}

ids() {  # MODALITY: embed and quantize one modality
  step "embed-$1" "$I/$1.emb.safetensors" \
    $MGR embed "$D" -o "$I/$1.emb.safetensors" --modality "$1" "${C[@]}"
  step "quantize-$1" "$I/$1.ids.safetensors" \
    $MGR quantize "$I/$1.emb.safetensors" -o "$I/$1.ids.safetensors" "${C[@]}"
}
text_ids() { ids text; }
image_ids() { ids image; }
fused_ids() {  # --fusion auto: concatenation, as the stand-ins do not share one space
  step fuse "$I/fused.emb.safetensors" $MGR fuse "$I/text.emb.safetensors" \
    "$I/image.emb.safetensors" -o "$I/fused.emb.safetensors" --fusion auto
  step quantize-fused "$I/fused.ids.safetensors" \
    $MGR quantize "$I/fused.emb.safetensors" -o "$I/fused.ids.safetensors" "${C[@]}"
}
ami() {  # Table 1 comes on stdout: into a temporary file, renamed when complete
  $MGR analyze-ami --text "$I/text.ids.safetensors" --image "$I/image.ids.safetensors" \
    --fused "$I/fused.ids.safetensors" --format markdown > "$OUT/.table1.md"
  mv "$OUT/.table1.md" "$OUT/table1.md"
}
table1() { step analyze-ami "$OUT/table1.md" ami; }

row() {  # NAME LAYOUT IDS...: tokenize, [align,] train and evaluate one row of Table 5
  local name=$1 layout=$2 init=()
  shift 2
  step "tokenize-$name" "$OUT/tok/$name.safetensors" \
    $MGR tokenize "$D" "$@" -o "$OUT/tok/$name.safetensors" --layout "$layout"
  if [ "$layout" = lfpp ]; then
    step "align-$name" "$OUT/runs/$name-align/run.jsonl" \
      $MGR align "$OUT/tok/$name.safetensors" -o "$OUT/runs/$name-align" "${C[@]}" --force
    init=(--init "$OUT/runs/$name-align")
  fi
  step "train-$name" "$OUT/runs/$name/run.jsonl" \
    $MGR train "$OUT/tok/$name.safetensors" -o "$OUT/runs/$name" "${init[@]}" "${C[@]}" --force
  step "evaluate-$name" "$OUT/eval/$name/metrics.jsonl" \
    $MGR evaluate "$OUT/runs/$name" "$OUT/tok/$name.safetensors" -o "$OUT/eval/$name" "${C[@]}"
}
tiger_text() { row tiger-text tiger "$I/text.ids.safetensors"; }
tiger_image() { row tiger-image tiger "$I/image.ids.safetensors"; }
mgr_ef() { row mgr-ef ef "$I/fused.ids.safetensors"; }
mgr_lf() { row mgr-lf lf "$I/text.ids.safetensors" "$I/image.ids.safetensors"; }
mgr_lfpp() { row mgr-lfpp lfpp "$I/text.ids.safetensors" "$I/image.ids.safetensors"; }
references() {
  step random "$OUT/eval/random/metrics.jsonl" $MGR random "$D" -o "$OUT/eval/random"
  step popular "$OUT/eval/popular/metrics.jsonl" $MGR popular "$D" -o "$OUT/eval/popular"
  step oracle "$OUT/eval/oracle/metrics.jsonl" \
    $MGR demo-oracle "$OUT/raw/truth.json" "$D" -o "$OUT/eval/oracle"
}

server() {  # one `mgr server` for the demo's ~30 commands: each skips torch's 3-6 s import
  local final=("$OUT/table1.md" "$OUT"/eval/{random,popular,tiger-text,tiger-image,mgr-ef,mgr-lf,mgr-lfpp,oracle}/metrics.jsonl)
  local f i missing=0
  for f in "${final[@]}"; do [ -e "$f" ] || missing=1; done
  [ "$missing" = 1 ] && [ "${MGR_SERVER:-1}" = 1 ] || return 0  # all cached: nothing to speed up
  "$MGR" server "$OUT/.server" >/dev/null 2>"$LOGS/server.log" &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null' EXIT
  for i in $(seq 600); do  # the client appears once the server listens (a few seconds)
    [ -x "$OUT/.server/mgr" ] && { MGR=$OUT/.server/mgr; return 0; }
    kill -0 $SERVER 2>/dev/null || return 0  # no server here (not Linux): plain commands
    sleep 0.1
  done
}

echo "mgr demo: the MGR-LF++ pipeline on a generated catalogue (budget: $CONFIG; logs: $LOGS/)" >&2
server
step demo-data "$OUT/raw/items.csv" $MGR demo-data "$OUT/raw" "${C[@]}"
step prepare "$D" $MGR prepare generic "$OUT/raw" -o "$D" --name demo
lanes text_ids image_ids
lanes "fused_ids table1" references
lanes "tiger_text mgr_ef mgr_lf" "tiger_image mgr_lfpp"

TABLE=()
for r in random popular tiger-text tiger-image mgr-ef mgr-lf mgr-lfpp oracle; do
  TABLE+=("$OUT/eval/$r/metrics.jsonl")
done
$MGR table "${TABLE[@]}" > "$OUT/table5.md"
echo
echo "Table 1: agreement (AMI) of the first-level IDs of each modality"
cat "$OUT/table1.md"
echo
echo "Table 5: next-item ranking of the test users (± one standard error over users)"
cat "$OUT/table5.md"
echo
echo "Done in $((SECONDS - START)) s; everything is in $OUT/. Next, on real data: make table1 (H&M; see README)."
