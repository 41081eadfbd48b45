#!/usr/bin/env bash
# Data-parallel training of PointRend on DEVICE_NUM GPUs of this machine, one process each (msrun).
# Usage: bash scripts/run_distribute_train_gpu.sh DEVICE_NUM DATA_PATH MINDRECORD_PATH PRETRAINED_PATH [--key=value ...]
#   Arguments as in run_standalone_train_gpu.sh; every process trains solver.images_per_device images per
#   iteration and the LR follows the whole batch. Several machines: run this on each with
#   --worker_num=TOTAL_PROCESSES --node_rank=MACHINE_INDEX --master_addr=IP_OF_MACHINE_0 [--master_port=PORT];
#   those (and --master_port, default 8118) go to msrun, all other extra arguments to train.py.
#   MS_LAUNCHER=mpirun launches with OpenMPI's mpirun instead (add hosts with MPIRUN_ARGS="--hostfile F").
#   Logs: <output_dir>/train_rank<r>.log per rank, each process's console output in <output_dir>/launcher_log/.
#   The job exits non-zero, ending every process, as soon as one of them fails; resume it with --resume.
#   On GPU it uses .venv with requirements-gpu.txt and the environment of scripts/gpu_env.sh (set up once with
#   bash scripts/setup_gpu.sh). DEVICE_TARGET=CPU runs on the CPU, with OMP_NUM_THREADS (unless set) the cores per
#   process.
set -euo pipefail
source "$(dirname "$0")/args.sh"
require_args 4 "^[1-9][0-9]*$" "$@"
DEVICE_NUM="$1"; DATA_PATH="$2"; MINDRECORD_PATH="$3"; PRETRAINED_PATH="$4"; shift 4
WORKER_NUM="$DEVICE_NUM"; MASTER_PORT=8118; LAUNCH_ARGS=(); TRAIN_ARGS=(); OUTPUT_DIR="$(output_dir_of "$@")"
for ARG in "$@"; do
    case "$ARG" in
        --worker_num=*) WORKER_NUM="${ARG#--worker_num=}" ;;
        --master_port=*) MASTER_PORT="${ARG#--master_port=}" ;;
        --node_rank=*|--master_addr=*) LAUNCH_ARGS+=("$ARG") ;;
        *) TRAIN_ARGS+=("$ARG") ;;
    esac
done
DEVICE_TARGET="${DEVICE_TARGET:-GPU}"
source "$(dirname "$0")/venv.sh"
if [ "$DEVICE_TARGET" = CPU ]; then
    CORES="$(nproc)"
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( CORES / DEVICE_NUM > 0 ? CORES / DEVICE_NUM : 1 ))}"
fi
LOG_DIR="$OUTPUT_DIR/launcher_log"
mkdir -p "$LOG_DIR"
TRAIN=("$REPO_ROOT/train.py" --run_distribute=True --device_target="$DEVICE_TARGET" --coco_root="$DATA_PATH"
       --mindrecord_dir="$MINDRECORD_PATH" --pre_trained="$PRETRAINED_PATH" "${TRAIN_ARGS[@]}")
echo "[run_distribute_train] $WORKER_NUM processes ($DEVICE_NUM here) on $DEVICE_TARGET; logs in $OUTPUT_DIR"
if [ "${MS_LAUNCHER:-msrun}" = mpirun ]; then
    # shellcheck disable=SC2086
    mpirun ${MPIRUN_ARGS:-} -n "$WORKER_NUM" --output-filename "$LOG_DIR" --merge-stderr-to-stdout python "${TRAIN[@]}"
else
    msrun --worker_num="$WORKER_NUM" --local_worker_num="$DEVICE_NUM" --master_port="$MASTER_PORT" \
        "${LAUNCH_ARGS[@]}" --log_dir="$LOG_DIR" --join=True "${TRAIN[@]}"
fi
