#!/usr/bin/env bash
# The whole test suite, against the fork as pip builds and installs it.
#
#   bash tools/test.sh [pytest args...]
#
# Creates (or reuses) the venv .venv-test, builds the wheel through the PEP 517 backend
# exactly as `pip install .` does, installs it, and runs pytest from the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${NVFLARE_FORK_VENV:-.venv-test}"
PY="$VENV/bin/python"

step() { printf '\n== %s\n' "$*"; }

if [ ! -x "$PY" ]; then
  step "creating $VENV"
  python3 -m venv "$VENV"
fi
step "installing test requirements"
"$PY" -m pip install -q --disable-pip-version-check -r tests/requirements.txt

step "building the fork wheel (PEP 517, isolated)"
rm -rf dist/test
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w dist/test .
WHEEL="$(ls "$PWD"/dist/test/nvflare-*.whl)"

step "installing $(basename "$WHEEL")"
"$PY" -m pip install -q --disable-pip-version-check "$WHEEL"
"$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"

step "running the tests"
export NVFLARE_FORK_TEST_WHEEL="$WHEEL"
exec "$VENV/bin/pytest" "$@"
