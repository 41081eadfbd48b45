# Sourced by the other scripts: makes sure .venv exists at the repo root with the pinned requirements,
# then activates it. Re-installs only when requirements.txt changed since the last install.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[venv] creating $VENV with $($PYTHON_BIN --version 2>&1)"
    "$PYTHON_BIN" -m venv "$VENV" || { echo "[venv] could not create $VENV" >&2; exit 1; }
fi
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$REPO_ROOT/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "[venv] installing requirements.txt (mindspore 2.8.0 is ~770 MB; the first install takes a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip || exit 1
    "$VENV/bin/python" -m pip install --quiet -r "$REPO_ROOT/requirements.txt" || { echo "[venv] pip install failed" >&2; exit 1; }
    echo "$WANT" > "$STAMP"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export GLOG_v="${GLOG_v:-3}"   # MindSpore: errors only
