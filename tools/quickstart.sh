#!/usr/bin/env bash
# The fork in one command: a real local FLARE system trains a small PyTorch model, and
# the admin console downloads just its MODEL_global_model.
#
#   bash tools/quickstart.sh [--keep] [--dir DIR]
#
# Creates (or reuses) the venv .venv-demo, installs the fork from this checkout and
# torch 2.13.0 (CPU), then runs tools/quickstart.py. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${NVFLARE_QUICKSTART_VENV:-.venv-demo}"
PY="$VENV/bin/python"

echo "== nvflare model fork quickstart"
if [ ! -x "$PY" ]; then
  echo "== creating the environment $VENV"
  python3 -m venv "$VENV"
fi
echo "== installing torch 2.13.0 (CPU) and the fork (pip install .)"
"$PY" -m pip install -q --disable-pip-version-check torch==2.13.0
"$PY" -m pip install -q --disable-pip-version-check .
"$VENV/bin/nvflare" -V
exec "$PY" tools/quickstart.py "$@"
