#!/usr/bin/env bash
# Trains PointRend on one GPU (see python train.py --help).
# Usage: bash scripts/run_standalone_train_gpu.sh DEVICE_ID DATA_PATH MINDRECORD_PATH PRETRAINED_PATH [--key=value ...]
#   DATA_PATH: COCO root (annotations/instances_<train_split>.json, <train_split>/*.jpg), converted to
#   MINDRECORD_PATH when that holds no conversion yet; PRETRAINED_PATH: a checkpoint from convert_checkpoint.py,
#   or "" to start from scratch. Extra arguments go to train.py, e.g. --output_dir=out --resume
#   --solver.base_lr=0.01. The log is <output_dir>/train_rank0.log (output_dir "output" unless given).
#   On GPU it uses .venv with requirements-gpu.txt and the environment of scripts/gpu_env.sh (set up once with
#   bash scripts/setup_gpu.sh). DEVICE_TARGET=CPU runs on the CPU.
set -euo pipefail
source "$(dirname "$0")/args.sh"
require_args 4 "^[0-9]+$" "$@"
DEVICE_ID="$1"; DATA_PATH="$2"; MINDRECORD_PATH="$3"; PRETRAINED_PATH="$4"; shift 4
DEVICE_TARGET="${DEVICE_TARGET:-GPU}"
source "$(dirname "$0")/venv.sh"
python "$REPO_ROOT/train.py" --device_target="$DEVICE_TARGET" --device_id="$DEVICE_ID" \
    --coco_root="$DATA_PATH" --mindrecord_dir="$MINDRECORD_PATH" --pre_trained="$PRETRAINED_PATH" "$@"
