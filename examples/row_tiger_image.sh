#!/usr/bin/env bash
# Table 5 row: tiger_image. Usage: examples/row_tiger_image.sh DATASET TEXT_IDS IMAGE_IDS FUSED_IDS OUT
# (pass the ID artifacts the row does not use as "-"). The steps are in examples/rows.sh.
set -euo pipefail
export DATASET=$1 TEXT_IDS=$2 IMAGE_IDS=$3 FUSED_IDS=$4 OUT=$5
mkdir -p "$OUT"
source "$(dirname "$0")/rows.sh"
row_tiger_image
