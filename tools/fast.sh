#!/usr/bin/env bash
# The fast lane: what a contributor runs before pushing, and what CI runs first.
#
#   bash tools/fast.sh [pytest args...]
#
# Stops at the first failing step:
#   1. forktool check   patches/ applies to the pinned wheel and re-exports byte-identically,
#                       and every generated doc region was produced from the current series
#   2. forktool lint    every patch has its header, stays a hook, and has a behaviour test
#   3. format           black/isort with upstream's settings on the fork's own files
#   4. tests            every test that starts no FLARE system (pytest -m "not system"),
#                       against the fork built and installed as pip does (tools/test.sh)
# The system tests (real server and client processes) are the rest of the suite:
# bash tools/test.sh runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== fast lane: %s\n' "$*"; }
start=$SECONDS

step "forktool check"
python3 tools/forktool.py check
step "forktool lint"
python3 tools/forktool.py lint

step "format (black + isort, line length 120)"
bash tools/format.sh --check

step "tests that start no FLARE system"
bash tools/test.sh -m "not system" -x -q "$@"
echo "fast lane passed in $((SECONDS - start)) s"
