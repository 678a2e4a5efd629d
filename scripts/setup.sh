#!/usr/bin/env bash
# Creates .venv beside this checkout and installs irtool with its test extras into it.
# Idempotent: a second run only re-checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import irtool, xdsl, onnxruntime, ortools; print('irtool set up with xdsl', xdsl.__version__ if hasattr(xdsl, '__version__') else '0.74.0')"
