#!/usr/bin/env bash
# Sets this checkout up for NVIDIA GPUs, once: .venv with requirements-gpu.txt (MindSpore 2.8.0 and the CUDA 11
# libraries its GPU plugin loads, ~3 GB), the environment of scripts/gpu_env.sh (LD_LIBRARY_PATH, CUDA_HOME), then a
# self-check: MindSpore's run_check on the GPU, and the custom CUDA kernels compiled for the GPU present.
# Needs an NVIDIA driver for CUDA 11.8 or newer and g++; no CUDA toolkit. The run_*_gpu.sh and run_eval.sh scripts
# set the same environment themselves.
# Usage: bash scripts/setup_gpu.sh   (PYTHON=python3.X chooses the interpreter that creates .venv)
set -euo pipefail
DEVICE_TARGET=GPU
source "$(dirname "$0")/venv.sh"
echo "[setup_gpu] environment (in a shell of your own: DEVICE_TARGET=GPU source scripts/venv.sh):"
echo "  LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
echo "  CUDA_HOME=$CUDA_HOME"
echo "[setup_gpu] self-check: MindSpore on the GPU"
python -c 'import mindspore as ms; ms.set_context(device_target="GPU"); ms.run_check()'
echo "[setup_gpu] self-check: the custom CUDA kernels, compiled for this GPU"
python -m maskrcnn.layers.build --device_target GPU
echo "[setup_gpu] ready: e.g. bash scripts/run_standalone_train_gpu.sh 0 /data/coco /data/mindrecord/train2017 \"\""
