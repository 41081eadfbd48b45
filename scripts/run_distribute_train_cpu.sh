#!/usr/bin/env bash
# Data-parallel training with 2 processes on the CPU of this machine (DEVICE_NUM=N for another number), e.g.
# to test a distributed job: scripts/run_distribute_train_gpu.sh with DEVICE_TARGET=CPU.
# Usage: bash scripts/run_distribute_train_cpu.sh DATA_PATH MINDRECORD_PATH PRETRAINED_PATH [--key=value ...]
set -euo pipefail
source "$(dirname "$0")/args.sh"
require_args 3 "" "$@"
DEVICE_TARGET=CPU exec bash "$(dirname "$0")/run_distribute_train_gpu.sh" "${DEVICE_NUM:-2}" "$@"
