#!/usr/bin/env bash
# The main job: set up, then compile the bundled stories260K model (llama2.c checkpoint shipped
# inside the package) for the riscv-ulp target and run it bare metal on qemu-system-riscv32:
# the "Once upon a time" story, the generated token ids, instructions per token.
# Without the RISC-V toolchain it generates the same story with irtool's interpreter instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PROMPT=${PROMPT:-Once upon a time}
STEPS=${STEPS:-64}
OUT=${OUT:-out/riscv-ulp}
if command -v riscv64-unknown-elf-gcc >/dev/null && command -v qemu-system-riscv32 >/dev/null; then
  .venv/bin/irtool compile --target riscv-ulp --capacity 128 --prompt "$PROMPT" --steps "$STEPS" \
    -o "$OUT" "$@"
  make -s -C "$OUT" run
else
  echo "(no RISC-V toolchain: running the interpreter instead of qemu)"
  .venv/bin/irtool generate --prompt "$PROMPT" --steps "$STEPS" "$@"
fi
