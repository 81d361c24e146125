#!/usr/bin/env bash
# One function per multimodal row of the paper's Table 5, chaining the subcommands by
# hand. Source it, then call a row:   source examples/rows.sh; row_mgr_lfpp OUT
# Inputs (set before calling): DATASET, TEXT_IDS, IMAGE_IDS, FUSED_IDS; optional MGR,
# MODEL (model-size flags), TRAIN (training flags), EVAL (evaluate flags).
MGR=${MGR:-mgr}
MODEL=${MODEL:-}
TRAIN=${TRAIN:-}
EVAL=${EVAL:-}

_train_eval() {  # name tokenized [extra train flags]
  local name=$1 tok=$2; shift 2
  $MGR train "$tok" -o "$OUT/runs/$name" $MODEL $TRAIN "$@" --force
  $MGR evaluate "$OUT/runs/$name" "$tok" -o "$OUT/eval/$name" $EVAL --force
}

row_tiger_text() {   # TIGER(CLIP-text): text IDs only
  $MGR tokenize "$DATASET" "$TEXT_IDS" -o "$OUT/tok/tiger-text.safetensors" --layout tiger --force
  _train_eval tiger-text "$OUT/tok/tiger-text.safetensors"
}

row_tiger_image() {  # TIGER(CLIP-image): image IDs only
  $MGR tokenize "$DATASET" "$IMAGE_IDS" -o "$OUT/tok/tiger-image.safetensors" --layout tiger --force
  _train_eval tiger-image "$OUT/tok/tiger-image.safetensors"
}

row_mgr_ef() {       # MGR-EF: one ID from the fused embedding
  $MGR tokenize "$DATASET" "$FUSED_IDS" -o "$OUT/tok/mgr-ef.safetensors" --layout ef --force
  _train_eval mgr-ef "$OUT/tok/mgr-ef.safetensors"
}

row_mgr_lf() {       # MGR-LF: text ID then image ID, concatenated
  $MGR tokenize "$DATASET" "$TEXT_IDS" "$IMAGE_IDS" -o "$OUT/tok/mgr-lf.safetensors" --layout lf --force
  _train_eval mgr-lf "$OUT/tok/mgr-lf.safetensors"
}

row_mgr_lfpp() {     # MGR-LF++: modality tokens + alignment pre-training, then next-item training
  $MGR tokenize "$DATASET" "$TEXT_IDS" "$IMAGE_IDS" -o "$OUT/tok/mgr-lfpp.safetensors" --layout lfpp --force
  $MGR align "$OUT/tok/mgr-lfpp.safetensors" -o "$OUT/runs/mgr-lfpp-align" $MODEL $TRAIN --force
  _train_eval mgr-lfpp "$OUT/tok/mgr-lfpp.safetensors" --init "$OUT/runs/mgr-lfpp-align"
}
