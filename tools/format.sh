#!/usr/bin/env bash
# black + isort with upstream FLARE's settings (pyproject.toml: line length 120, isort's
# black profile), on the fork's own Python files only; upstream's code is never touched.
#
#   bash tools/format.sh          reformat them
#   bash tools/format.sh --check  change nothing; list what would change, exit 1 if anything would
#
# The tools run from the test venv (.venv-test, or $NVFLARE_FORK_VENV) at the versions
# upstream pins, taken from tests/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${NVFLARE_FORK_VENV:-.venv-test}"
PY="$VENV/bin/python"
FILES=(nvflare tools tests bench setup.py editable_finder.py)

[ -x "$PY" ] || python3 -m venv "$VENV"
if ! "$PY" -m black --version >/dev/null 2>&1 || ! "$PY" -m isort --version >/dev/null 2>&1; then
  "$PY" -m pip install -q --disable-pip-version-check $(grep -E '^(black|isort)==' tests/requirements.txt)
fi

if [ "${1:-}" = "--check" ]; then
  rc=0
  "$PY" -m isort --check-only --settings-path pyproject.toml "${FILES[@]}" || rc=1
  "$PY" -m black --check --config pyproject.toml "${FILES[@]}" || rc=1
  [ $rc -eq 0 ] || echo "format: the files above need 'bash tools/format.sh'" >&2
  exit $rc
fi
"$PY" -m isort -q --settings-path pyproject.toml "${FILES[@]}"
"$PY" -m black -q --config pyproject.toml "${FILES[@]}"
echo "format: done (isort + black, line length 120)"
