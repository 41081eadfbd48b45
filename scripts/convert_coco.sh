#!/usr/bin/env bash
# Converts one split of a COCO-layout dataset to MindRecord (see convert_coco.py --help).
# Usage: bash scripts/convert_coco.sh COCO_ROOT SPLIT OUTPUT_DIR [--ann_file F] [--shards N] [--workers W] [--overwrite]
#   e.g. bash scripts/convert_coco.sh /data/coco train2017 /data/mindrecord/train2017 --workers 8
set -euo pipefail
source "$(dirname "$0")/args.sh"
require_args 3 "" "$@"
source "$(dirname "$0")/venv.sh"
COCO_ROOT="$1"; SPLIT="$2"; OUTPUT="$3"; shift 3
python "$REPO_ROOT/convert_coco.py" --coco_root "$COCO_ROOT" --split "$SPLIT" --output "$OUTPUT" "$@"
