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
# pip's and setuptools' chatter goes to a log, shown only when the install fails.
if ! .venv/bin/python -m pip install --quiet -e '.[test]' > .venv/install.log 2>&1; then
  cat .venv/install.log >&2
  echo "error: installing irtool failed (log above, also in .venv/install.log)" >&2
  exit 1
fi

# The riscv-ulp target's toolchain (cross gcc, picolibc, qemu) from Debian's packages, for
# `irtool compile --target riscv-ulp` projects and tests/test_riscv_ulp.py. Installed only
# when missing; without root (or passwordless sudo) the qemu tests are skipped.
riscv_tools_present() {
  command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 &&
    command -v qemu-system-riscv32 >/dev/null 2>&1 &&
    [ -f "$(riscv64-unknown-elf-gcc -print-file-name=picolibc.specs 2>/dev/null)" ]
}
if ! riscv_tools_present; then
  RISCV_PACKAGES="gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
  fi
  if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; }; then
    echo "warning: the RISC-V toolchain is missing and cannot be installed here (needs root" \
         "and apt-get: $RISCV_PACKAGES); the riscv-ulp qemu tests will be skipped" >&2
  else
    echo "installing the RISC-V toolchain and qemu ($RISCV_PACKAGES)"
    if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
           $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $RISCV_PACKAGES \
             >/dev/null; } || ! riscv_tools_present; then
      echo "warning: installing $RISCV_PACKAGES failed; the riscv-ulp qemu tests will be" \
           "skipped" >&2
    fi
  fi
fi
# PyTorch, only for tests/test_torch_exports.py (models of other shapes exported with
# torch.onnx.export), and only when a CPU build lies on this machine (pip's find-links): a
# download from the index would be a multi-GB CUDA build. Otherwise that test is skipped.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  probe=$(mktemp -d)
  if .venv/bin/python -m pip download --quiet --no-deps --no-index -d "$probe" "torch==2.13.0" \
       >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet "torch==2.13.0" >> .venv/install.log 2>&1 ||
      echo "note: installing torch failed; the torch-export tests will be skipped"
  else
    echo "note: no local CPU build of torch; the torch-export tests will be skipped"
  fi
  rm -rf "$probe"
fi
.venv/bin/python -c "import irtool, xdsl, onnxruntime, ortools; print('irtool set up with xdsl', xdsl.__version__ if hasattr(xdsl, '__version__') else '0.74.0')"
