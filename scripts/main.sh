#!/usr/bin/env bash
# The main job: set up, then generate the "Once upon a time" story with the bundled
# stories260K model (llama2.c checkpoint shipped inside the package), through irtool's IR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/irtool generate --prompt "${PROMPT:-Once upon a time}" --steps "${STEPS:-64}" "$@"
