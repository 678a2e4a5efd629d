"""Builds and runs the C kernel runtime's test driver (targets/c/runtime/tests).

`build_driver` compiles the driver with every runtime source under AddressSanitizer and
UBSan; `KernelRunner.run` calls one kernel with numpy inputs (written as raw binary files)
and returns its output.  Used by tests/test_c_runtime.py.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "targets" / "c" / "runtime"
DRIVER_SOURCE = RUNTIME / "tests" / "irt_test_driver.c"

HOST_CC = "gcc"
HOST_FLAGS = ["-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
              "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]

TARGET_CC = "riscv64-unknown-elf-gcc"
TARGET_FLAGS = ["--specs=picolibc.specs", "-march=rv32imafc", "-mabi=ilp32f", "-O2",
                "-std=c99", "-Wall", "-Wextra", "-Werror"]


def runtime_sources() -> list[Path]:
    return sorted(RUNTIME.glob("irt_*.c"))


def build_driver(out_dir: Path) -> Path:
    """Compile the driver and the runtime for the host; returns the executable."""
    exe = out_dir / "irt_test_driver"
    cmd = [HOST_CC, *HOST_FLAGS, f"-I{RUNTIME}", str(DRIVER_SOURCE),
           *map(str, runtime_sources()), "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the test driver failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return exe


def have_tool(name: str) -> bool:
    return shutil.which(name) is not None


class KernelRunner:
    """Runs one kernel per call of the driver, in a fresh directory under `work`."""

    def __init__(self, exe: Path, work: Path):
        self.exe = exe
        self.work = work

    def run(self, kernel: str, params: dict, arrays: dict[str, np.ndarray],
            out_dtype=np.float32) -> np.ndarray:
        d = Path(tempfile.mkdtemp(prefix=kernel + "-", dir=self.work))
        lines = []
        for key, value in params.items():
            if isinstance(value, (float, np.floating)):
                # repr of the float32 value read back by strtof is the same float32
                value = repr(float(np.float32(value)))
            lines.append(f"{key} {int(value) if isinstance(value, (bool, np.bool_)) else value}")
        (d / "params.txt").write_text("\n".join(lines) + "\n")
        for name, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            if arr.dtype not in (np.float32, np.int32):
                raise TypeError(f"{name}: {arr.dtype} (want float32 or int32)")
            arr.tofile(d / f"{name}.bin")
        proc = subprocess.run([str(self.exe), kernel, str(d)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"driver failed on {kernel} {params}:\n{proc.stderr}")
        out = np.fromfile(d / "out.bin", dtype=out_dtype)
        shutil.rmtree(d)
        return out
