"""What a test needs from the machine, and what happens when it is missing.

    need("cc")              # in a test or fixture: the host C compiler and make
    need("riscv", "qemu")   # the RISC-V cross toolchain with picolibc, and qemu
    torch = need_module("torch")   # at module level: the module, imported

A missing requirement skips the test on a developer's machine, with the reason and how to get
it. Under CI (environment variable CI=true) it FAILS instead: `scripts/setup.sh` installs all
of these there, so a missing one means the set-up is broken, and a suite that silently skips
what it cannot run would stay green while checking nothing (a transposed weights.c once
survived that way). Only a missing requirement is turned into a skip, never an error of the
code under test.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

SETUP = "bash scripts/setup.sh installs it"
RV_TOOLS = tuple(f"riscv64-unknown-elf-{t}" for t in ("gcc", "size", "readelf", "nm",
                                                      "objdump")) + ("make",)
SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _which(*tools: str) -> str | None:
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} not found"
    return None


def _riscv() -> str | None:
    missing = _which(*RV_TOOLS)
    if missing:
        return missing
    specs = subprocess.run([RV_TOOLS[0], "-print-file-name=picolibc.specs"],
                           capture_output=True, text=True).stdout.strip()
    if not Path(specs).is_file():
        return "picolibc for riscv64-unknown-elf not found (picolibc-riscv64-unknown-elf)"
    return None


def _module(name: str) -> str | None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:  # the package is there but broken: not a missing requirement
            raise
        return f"python module {name} not installed"
    return None


def _optimum() -> str | None:
    """optimum's ONNX exporter in the side environment scripts/setup.sh makes (.venv-optimum:
    no released exporter runs with transformers 5)."""
    python = Path(__file__).resolve().parents[1] / ".venv-optimum" / "bin" / "python"
    if not python.is_file():
        return f"{python} not found (optimum-onnx with transformers 4.57 beside .venv)"
    probe = subprocess.run([str(python), "-c", "import optimum.exporters.onnx"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"optimum.exporters.onnx does not import in {python}"
    return None


def _arm() -> str | None:
    missing = _which("arm-none-eabi-gcc", "arm-none-eabi-size", "make")
    if missing:
        return missing
    specs = subprocess.run(["arm-none-eabi-gcc", "-print-file-name=picolibc.specs"],
                           capture_output=True, text=True).stdout.strip()
    if not Path(specs).is_file():
        return "picolibc for arm-none-eabi not found (picolibc-arm-none-eabi)"
    return None


CHECKS = {
    "cc": lambda: _which("cc", "gcc", "make"),  # the host C compiler (cc for make, gcc too)
    "riscv": _riscv,
    "qemu": lambda: _which("qemu-system-riscv32"),
    "arm": _arm,  # the Cortex-M cross toolchain with picolibc
    "qemu-arm": lambda: _which("qemu-system-arm"),
    "torch": lambda: _module("torch"),
    "optimum": _optimum,  # optimum's ONNX exporter, in its side environment
    "onnxruntime": lambda: _module("onnxruntime"),
    "importlinter": lambda: _module("importlinter"),
    "tomli": lambda: _module("tomli"),
    "ruff": lambda: None if importlib.util.find_spec("ruff") or shutil.which("ruff")
    else "ruff not installed (neither the python package nor a ruff executable)",
    "models": lambda: None if SHARED_MODELS.is_dir() else f"{SHARED_MODELS} not found",
}


@functools.cache
def missing(name: str) -> str | None:
    """Why requirement `name` is not met on this machine, or None."""
    if name not in CHECKS:
        raise KeyError(f"unknown requirement {name!r} (known: {', '.join(CHECKS)})")
    return CHECKS[name]()


def need(*names: str) -> None:
    """Skip the calling test (fail it under CI) unless every requirement is met."""
    for name in names:
        why = missing(name)
        if why is not None:
            message = f"needs {name}: {why} ({SETUP})"
            if under_ci():
                pytest.fail(f"CI=true and {message}", pytrace=False)
            pytest.skip(message)


def need_module(name: str) -> ModuleType:
    """The imported module, at a test module's top level: skips the whole module when it is
    missing (fails the collection under CI)."""
    why = missing(name) if name in CHECKS else _module(name)
    if why is not None:
        message = f"needs {name}: {why} ({SETUP})"
        if under_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message, allow_module_level=True)
    return importlib.import_module(name)
