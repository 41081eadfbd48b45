# Sourced by the other scripts: makes sure .venv exists at the repo root with the pinned requirements, then
# activates it. With DEVICE_TARGET=GPU they are requirements-gpu.txt (requirements.txt plus the CUDA 11 libraries
# of MindSpore's GPU plugin) and gpu_env.sh then sets the environment that plugin needs. Re-installs only when the
# requirements changed since the last install.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3}"
REQUIREMENTS="$REPO_ROOT/requirements.txt"
if [ "${DEVICE_TARGET:-CPU}" = GPU ]; then
    REQUIREMENTS="$REPO_ROOT/requirements-gpu.txt"
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "[venv] creating $VENV with $($PYTHON_BIN --version 2>&1)"
    "$PYTHON_BIN" -m venv "$VENV" || { echo "[venv] could not create $VENV" >&2; exit 1; }
fi
STAMP="$VENV/.$(basename "$REQUIREMENTS").sha256"
WANT="$(cat "$REPO_ROOT/requirements.txt" "$REQUIREMENTS" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "[venv] installing $(basename "$REQUIREMENTS") (mindspore 2.8.0 is ~770 MB, the CUDA 11 libraries of" \
         "requirements-gpu.txt ~2.5 GB more; the first install takes a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip || exit 1
    "$VENV/bin/python" -m pip install --quiet -r "$REQUIREMENTS" || { echo "[venv] pip install failed" >&2; exit 1; }
    echo "$WANT" > "$STAMP"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export GLOG_v="${GLOG_v:-3}"   # MindSpore: errors only
if [ "${DEVICE_TARGET:-CPU}" = GPU ]; then
    # shellcheck source=gpu_env.sh
    source "$REPO_ROOT/scripts/gpu_env.sh" || exit 1
fi
