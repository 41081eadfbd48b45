#!/usr/bin/env bash
# COCO evaluation of a checkpoint on the CPU: scripts/run_eval.sh with DEVICE_TARGET=CPU.
# Usage: bash scripts/run_eval_cpu.sh DATA_PATH MINDRECORD_PATH CHECKPOINT_PATH [--key=value ...]
#   e.g. bash scripts/run_eval_cpu.sh /data/coco "" model.ckpt --output_dir=eval_out --visualize 10
set -euo pipefail
source "$(dirname "$0")/args.sh"
require_args 3 "" "$@"
DEVICE_TARGET=CPU exec bash "$(dirname "$0")/run_eval.sh" 0 "$@"
