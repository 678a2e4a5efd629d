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


def compile_driver(cc: str, flags: list[str], source: Path, exe: Path,
                   link: tuple[str, ...] = ()) -> Path:
    """Compile a test driver with every runtime source; returns the executable."""
    cmd = [cc, *flags, f"-I{RUNTIME}", str(source), *map(str, runtime_sources()), *link,
           "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building {exe.name} failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return exe


def build_driver(out_dir: Path) -> Path:
    """Compile the driver and the runtime for the host; returns the executable."""
    return compile_driver(HOST_CC, HOST_FLAGS, DRIVER_SOURCE, out_dir / "irt_test_driver")


def have_tool(name: str) -> bool:
    return shutil.which(name) is not None


class KernelRunner:
    """Runs one kernel per call of the driver, in a fresh directory under `work`."""

    def __init__(self, exe: Path, work: Path):
        self.exe = exe
        self.work = work

    def command(self, kernel: str, folder: Path) -> list[str]:
        return [str(self.exe), kernel, str(folder)]

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
        proc = subprocess.run(self.command(kernel, d), capture_output=True, text=True, cwd=d)
        if proc.returncode != 0:
            raise AssertionError(f"driver failed on {kernel} {params}:\n{proc.stderr}")
        out = np.fromfile(d / "out.bin", dtype=out_dtype)
        shutil.rmtree(d)
        return out


# The driver on the target: rv32imafc with picolibc, files and arguments through semihosting,
# run on qemu (the kernels' RV32F assembly, which the host build does not contain).
TARGET_LINK = ["--oslib=semihost", "--crt0=semihost",
               "-Wl,--defsym=__flash=0x80000000,--defsym=__flash_size=0x400000",
               "-Wl,--defsym=__ram=0x80400000,--defsym=__ram_size=0x1000000,"
               "--defsym=__stack_size=0x10000", "-Tpicolibc.ld"]


def build_target_driver(out_dir: Path) -> Path:
    return compile_driver(TARGET_CC, TARGET_FLAGS, DRIVER_SOURCE,
                          out_dir / "irt_test_driver.elf", tuple(TARGET_LINK))


class TargetKernelRunner(KernelRunner):
    """The same calls, the driver run by qemu-system-riscv32 (exit status passed through);
    the kernel and folder go in the run folder's irt_test_args.txt (qemu passes no
    arguments to picolibc's start-up code)."""

    def command(self, kernel: str, folder: Path) -> list[str]:
        (folder / "irt_test_args.txt").write_text(f"{kernel} {folder}\n")
        return ["timeout", "120", "qemu-system-riscv32", "-M", "virt", "-nographic", "-bios",
                "none", "-semihosting-config", "enable=on,target=native", "-kernel",
                str(self.exe)]
