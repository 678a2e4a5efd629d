"""The make variables of a generated Makefile rebuild what they change (no stale builds).

`make host SAN=1` after `make host`, `make run ADAPTER=1` after `make run` and `make lib-host
LIB_CFLAGS=...` after `make lib-host` once reused the build of the other value: the program
ran without ASan, with the first adapter, the library kept its own arenas. Each variable now
has a stamp (build/VAR.stamp, rewritten only when its value differs) that the builds it
changes depend on, so a change rebuilds them and the same value again rebuilds nothing.
Native builds of the host target (needs `cc` only); cortex-m7-256k's `DSP=0` is checked in
tests/test_cortex_m7.py, siracusa's `CORES` in tests/test_siracusa.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.requirements import need
from tests.test_cortex_m7_lora import ADAPTERS, write_adapter

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = ROOT.parent / "shared" / "models" / "stories260K" / "stories260K.bin"


def irtool(*args) -> None:
    proc = subprocess.run([str(BIN / "irtool"), *map(str, args)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def make(project: Path, *args: str) -> str:
    proc = subprocess.run(["make", "-s", "-C", str(project), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


def symbols(path: Path) -> str:
    return subprocess.run(["nm", str(path)], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def host_project(tmp_path_factory) -> Path:
    need("cc", "models")
    out = tmp_path_factory.mktemp("make") / "host"
    irtool("compile", "--target", "host", "-o", out, "--capacity", 64, "--steps", 8)
    return out


def test_san_rebuilds_the_native_program(host_project):
    binary = host_project / "model_host"
    make(host_project, "host")
    assert "__asan_init" not in symbols(binary)
    output = make(host_project, "host", "SAN=1")
    assert "__asan_init" in symbols(binary) and "__ubsan_handle" in symbols(binary)
    assert re.search(r"^tokens: \d", output, re.M)
    built = mtime(binary)
    make(host_project, "host", "SAN=1")  # the same value: nothing to rebuild
    assert mtime(binary) == built
    assert (host_project / "build" / "SAN.stamp").read_text() == "1\n"
    make(host_project, "host")
    assert "__asan_init" not in symbols(binary)


def test_lib_cflags_rebuild_the_library_objects(host_project):
    lib = host_project / "lib" / "host" / "libirtmodel.a"
    defined = re.compile(r"^[0-9a-f]+ [BbDd] irt_arena_ram_words$", re.M)
    make(host_project, "lib-host")
    assert defined.search(symbols(lib))
    make(host_project, "lib-host", "LIB_CFLAGS=-DIRT_EXTERNAL_ARENAS")
    # the caller defines the writable arena: the library only refers to it
    assert not defined.search(symbols(lib))
    assert re.search(r"^ +U irt_arena_ram_words$", symbols(lib), re.M)
    objects = {p: mtime(p) for p in (host_project / "build" / "host").rglob("*.o")}
    built = mtime(lib)
    make(host_project, "lib-host", "LIB_CFLAGS=-DIRT_EXTERNAL_ARENAS")
    assert mtime(lib) == built
    assert {p: mtime(p) for p in objects} == objects
    # any value reaches the stamp as given, quotes and spaces included
    value = "-DIRT_EXTERNAL_ARENAS -DX='a b' -DY=\"it's\""
    make(host_project, "lib-host", f"LIB_CFLAGS={value}")
    assert (host_project / "build" / "LIB_CFLAGS.stamp").read_text() == value + "\n"
    assert mtime(lib) != built
    # the native program does not use LIB_CFLAGS: a change leaves it alone
    make(host_project, "model_host")
    program = mtime(host_project / "model_host")
    make(host_project, "model_host", "LIB_CFLAGS=-DIRT_EXTERNAL_ARENAS")
    assert mtime(host_project / "model_host") == program


def chosen_adapter(output: str) -> int:
    m = re.search(r"^adapter: (-?\d+) of 2$", output, re.M)
    assert m, output[-3000:]
    return int(m.group(1))


def test_adapter_rebuilds_the_program(host_project, tmp_path):
    """The README's `make run ADAPTER=1` after `make run`, with two adapters on a w1 base."""
    folder = tmp_path / "lora"
    folder.mkdir()
    specs = [write_adapter(folder, name, seed)[0] for seed, name in enumerate(ADAPTERS)]
    out = tmp_path / "lora_host"
    irtool("compile", MODEL, "--target", "host", "-o", out, "--capacity", 32, "--steps", 4,
           "--quant", "w1", *(a for spec in specs for a in ("--lora", spec)))
    assert chosen_adapter(make(out, "run")) == 0
    assert chosen_adapter(make(out, "run", "ADAPTER=1")) == 1
    assert chosen_adapter(make(out, "run", "ADAPTER=-1")) == -1
    assert chosen_adapter(make(out, "host", "ADAPTER=1")) == 1
    assert chosen_adapter(make(out, "host")) == 0
    assert chosen_adapter(make(out, "run")) == 0
