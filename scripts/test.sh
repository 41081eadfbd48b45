#!/usr/bin/env bash
# Creates .venv at the repo root when missing, installs the pinned requirements, runs the test suite.
# Extra arguments go to pytest (e.g. bash scripts/test.sh -k config).
set -euo pipefail
source "$(dirname "$0")/venv.sh"
cd "$REPO_ROOT"
python -m pytest -q "$@" tests
