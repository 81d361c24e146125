#!/usr/bin/env bash
# The CUDA and torchrun checks, as one script for a lent GPU machine (run from the repo
# root after `make install`; the demo catalogue is generated if missing). Prints what it
# ran and the figures; record the output, with the card's name, in bench/RESULTS.md.
#   bash bench/gpu_check.sh 2>&1 | tee gpu_check.log
set -euo pipefail
export MGR=${MGR:-.venv/bin/mgr} PY=${PY:-.venv/bin/python}
OUT=${OUT:-build/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
[ -f build/demo/raw/items.csv ] || $MGR demo-data build/demo/raw
$MGR prepare generic build/demo/raw -o "$OUT/dataset.jsonl" --name demo --force
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
# embed on CUDA (bf16), one process and torchrun, then compare
TINY=(--clip-model ViT-B-32 --clip-pretrained none)
time $MGR embed "$OUT/dataset.jsonl" -o "$OUT/img1.safetensors" --modality image "${TINY[@]}" --device cuda --force
time .venv/bin/torchrun --standalone --nproc_per_node="$NGPU" -m mgr_cli embed "$OUT/dataset.jsonl" \
  -o "$OUT/imgN.safetensors" --modality image "${TINY[@]}" --force
$PY - "$OUT" <<'PYEOF'
import sys, numpy as np
from mgr_cli.encoders.embed import load_embeddings
a, _ = load_embeddings(f"{sys.argv[1]}/img1.safetensors"); b, h = load_embeddings(f"{sys.argv[1]}/imgN.safetensors")
print("torchrun embed world", h["meta"]["world_size"], "max |diff| vs one process:", float(np.abs(a - b).max()))
PYEOF
$MGR embed "$OUT/dataset.jsonl" -o "$OUT/txt.safetensors" --modality text "${TINY[@]}" --device cuda --force
for m in txt img1; do $MGR quantize "$OUT/$m.safetensors" -o "$OUT/$m.ids.safetensors" --method rkmeans --force; done
$MGR tokenize "$OUT/dataset.jsonl" "$OUT/txt.ids.safetensors" "$OUT/img1.ids.safetensors" -o "$OUT/lfpp.tok" --layout lfpp --force
# training on CUDA (bf16 autocast, nccl under torchrun), TIGER size
time $MGR train "$OUT/lfpp.tok" -o "$OUT/run1" --steps 300 --eval-every 300 --eval-users 500 --device cuda --force
time .venv/bin/torchrun --standalone --nproc_per_node="$NGPU" -m mgr_cli train "$OUT/lfpp.tok" -o "$OUT/runN" \
  --steps 300 --eval-every 300 --eval-users 500 --force
# evaluation on CUDA, one process and torchrun: the same metrics
time $MGR evaluate "$OUT/run1" "$OUT/lfpp.tok" -o "$OUT/eval1" --device cuda --force
time .venv/bin/torchrun --standalone --nproc_per_node="$NGPU" -m mgr_cli evaluate "$OUT/run1" "$OUT/lfpp.tok" \
  -o "$OUT/evalN" --force
$MGR table "$OUT/eval1/metrics.jsonl" "$OUT/evalN/metrics.jsonl"
