#!/usr/bin/env bash
# Set up (or update) .venv, then run the test suite. Extra arguments go to pytest,
# e.g. `scripts/test.sh -m "not slow"` for the quick subset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. scripts/env.sh
echo "[test] python -m pytest $*"
exec python -m pytest "$@"
