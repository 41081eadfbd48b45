#!/usr/bin/env bash
# COCO evaluation (box, mask and Boundary AP) of a checkpoint on one GPU; see python eval.py --help.
# Usage: bash scripts/run_eval.sh DEVICE_ID DATA_PATH MINDRECORD_PATH CHECKPOINT_PATH [--key=value ...]
#   DATA_PATH: COCO root (annotations/instances_<val_split>.json, <val_split>/*.jpg); MINDRECORD_PATH: the
#   val split converted by convert_coco.py, or "" to read the image files; extra arguments go to eval.py,
#   e.g. --output_dir=eval_out --ann_file=F --visualize 10 --save_raw raw/. The log is written to
#   <output_dir>/eval_<date>.log (output_dir "output" unless given). On GPU it uses .venv with
#   requirements-gpu.txt and the environment of scripts/gpu_env.sh (set up once with bash scripts/setup_gpu.sh).
#   DEVICE_TARGET=CPU runs on the CPU.
set -euo pipefail
source "$(dirname "$0")/args.sh"
require_args 4 "^[0-9]+$" "$@"
DEVICE_ID="$1"; DATA_PATH="$2"; MINDRECORD_PATH="$3"; CHECKPOINT_PATH="$4"; shift 4
OUTPUT_DIR="$(output_dir_of "$@")"
DEVICE_TARGET="${DEVICE_TARGET:-GPU}"
source "$(dirname "$0")/venv.sh"
mkdir -p "$OUTPUT_DIR"
LOG="$OUTPUT_DIR/eval_$(date +%Y%m%d_%H%M%S).log"
echo "[run_eval] logging to $LOG"
python "$REPO_ROOT/eval.py" --device_target="$DEVICE_TARGET" --device_id="$DEVICE_ID" \
    --coco_root="$DATA_PATH" --mindrecord_dir="$MINDRECORD_PATH" --checkpoint_path="$CHECKPOINT_PATH" \
    --output_dir="$OUTPUT_DIR" "$@" 2>&1 | tee "$LOG"
