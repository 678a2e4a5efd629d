#!/usr/bin/env bash
# Set up, then run the whole test suite: pytest (which also runs the lit/FileCheck suite).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q tests "$@"
