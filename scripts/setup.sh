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

# The cross toolchains (gcc, picolibc, qemu) of the targets that run on qemu, from Debian's
# packages, for `irtool compile --target riscv-ulp|cortex-m7-256k` projects and their tests
# (tests/test_riscv_ulp*.py, tests/test_cortex_m7.py). Installed only when missing; without
# root (or passwordless sudo) those qemu tests are skipped locally and fail under CI=true
# (tests/requirements.py).
tools_present() {  # compiler qemu
  command -v "$1" >/dev/null 2>&1 && command -v "$2" >/dev/null 2>&1 &&
    [ -f "$("$1" -print-file-name=picolibc.specs 2>/dev/null)" ]
}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
APT_UPDATED=""
ensure_tools() {  # label compiler qemu packages...
  local label=$1 cc=$2 qemu=$3
  shift 3
  tools_present "$cc" "$qemu" && return 0
  if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; }; then
    echo "warning: the $label toolchain is missing and cannot be installed here (needs root" \
         "and apt-get: $*); the $label qemu tests will be skipped (and fail under CI=true)" >&2
    return 0
  fi
  echo "installing the $label toolchain and qemu ($*)"
  if [ -z "$APT_UPDATED" ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
    APT_UPDATED=1
  fi
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
     ! tools_present "$cc" "$qemu"; then
    echo "warning: installing $* failed; the $label qemu tests will be skipped (and fail" \
         "under CI=true)" >&2
  fi
}
ensure_tools riscv-ulp riscv64-unknown-elf-gcc qemu-system-riscv32 \
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc
ensure_tools cortex-m7-256k arm-none-eabi-gcc qemu-system-arm \
  gcc-arm-none-eabi picolibc-arm-none-eabi qemu-system-arm
# PyTorch, only for tests/test_torch_exports.py (models of other shapes exported with
# torch.onnx.export), and only when a CPU build lies on this machine (pip's find-links): a
# download from the index would be a multi-GB CUDA build. Otherwise those tests are skipped
# (and fail under CI=true).
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  probe=$(mktemp -d)
  if .venv/bin/python -m pip download --quiet --no-deps --no-index -d "$probe" "torch==2.13.0" \
       >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet "torch==2.13.0" >> .venv/install.log 2>&1 ||
      echo "note: installing torch failed; the torch tests will be skipped (fail under CI=true)"
  else
    echo "note: no local CPU build of torch; the torch tests will be skipped (fail under CI=true)"
  fi
  rm -rf "$probe"
fi
# optimum's ONNX exporter, only for tests/test_optimum_exports.py. No released one runs with
# transformers 5 (optimum-onnx 0.1.0 requires transformers < 4.58), so it goes into a side
# environment .venv-optimum that sees .venv's packages (torch, onnx, numpy: a .pth file) under
# its own pinned transformers 4.57 and huggingface_hub 0.36. Installed from the index when it
# is reachable and torch is in .venv; otherwise those tests are skipped (fail under CI=true).
OPTIMUM_PINS="transformers==4.57.1 huggingface_hub==0.36.0 tokenizers==0.22.1 optimum==2.1.0
  optimum-onnx==0.1.0 requests==2.34.2 urllib3==2.8.0 certifi==2026.10.19.post1
  charset-normalizer==3.5.3"
if .venv/bin/python -c "import torch" >/dev/null 2>&1 &&
   ! .venv-optimum/bin/python -c "import optimum.exporters.onnx" >/dev/null 2>&1; then
  rm -rf .venv-optimum
  "$PYTHON" -m venv .venv-optimum
  .venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > \
    "$(.venv-optimum/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/zz_irtool_venv.pth"
  # shellcheck disable=SC2086  # the pins are words
  if ! .venv-optimum/bin/python -m pip install --quiet --no-deps $OPTIMUM_PINS \
       >> .venv/install.log 2>&1 ||
     ! .venv-optimum/bin/python -c "import optimum.exporters.onnx" >/dev/null 2>&1; then
    echo "note: installing optimum's exporter into .venv-optimum failed; the optimum tests" \
         "will be skipped (fail under CI=true)"
    rm -rf .venv-optimum
  fi
fi
.venv/bin/python -c "import irtool, xdsl, onnxruntime, ortools; print('irtool set up with xdsl', xdsl.__version__ if hasattr(xdsl, '__version__') else '0.74.0')"
