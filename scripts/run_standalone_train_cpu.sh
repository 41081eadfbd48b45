#!/usr/bin/env bash
# Trains PointRend on the CPU: scripts/run_standalone_train_gpu.sh with DEVICE_TARGET=CPU.
# Usage: bash scripts/run_standalone_train_cpu.sh DATA_PATH MINDRECORD_PATH PRETRAINED_PATH [--key=value ...]
#   e.g. bash scripts/run_standalone_train_cpu.sh /data/coco /data/mindrecord/train2017 r50.ckpt --output_dir=out
set -euo pipefail
source "$(dirname "$0")/args.sh"
require_args 3 "" "$@"
DEVICE_TARGET=CPU exec bash "$(dirname "$0")/run_standalone_train_gpu.sh" 0 "$@"
