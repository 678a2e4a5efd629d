"""Target descriptions: what a target is, as data (memories, links, engines, clock, toolchain).

Passes never name a target; they ask a `TargetDescription` for the memories it offers, the
links that move data between them and the engines that compute. Each target folder holds its
`description.json`; a description file alone (a path to a `.json`) is also a target. The
dataclasses are frozen so that a description can be shared between passes without copies.

A description file looks like::

    {"name": "riscv-ulp", "description": "...", "clock_hz": 32000000,
     "memories": [{"name": "sram", "size": 262144, "alignment": 4, "read_cost": 2,
                   "write_cost": 2, "read_only": false, "reserved": 16384,
                   "description": "..."}, ...],
     "engines": [{"name": "core", "kind": "core", "cores": 1, "reads": ["flash", "sram"],
                  "cpi": 1.0, "description": "..."}],
     "links": [{"from": "xflash", "to": "sram", "bytes_per_cycle": 0.08,
                "setup_cycles": 60, "description": "..."}],
     "toolchain": {"compiler": "riscv64-unknown-elf-gcc", ...}}

`size` is in bytes, `alignment` a power of two in bytes, and the costs are per byte accessed,
relative to each other (only their ratios matter to the allocator). Every field that is parsed
is used: memories by the allocator and the emitters, `engines[].reads` by the allocator (a
buffer goes only where the core reads it directly), links by the tiling of streamed weights,
`clock_hz` and `cpi` by the modelled times a program prints, a cluster's `fork_join_cycles`
(optional) by the tile planner (one fork/join per tile), the toolchain by the generated
Makefile, linker script and counter header. Unknown fields are refused (a typo must not be
silently ignored). Names that reach generated code (memories, engines, the target) must be
identifiers.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irtool.errors import IrtoolError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TARGET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class MemorySpec:
    """One memory of a target: a space the allocator may place buffers in."""

    name: str
    size: int
    alignment: int
    read_cost: float
    write_cost: float
    read_only: bool
    description: str = ""
    reserved: int = 0
    """Bytes kept for the core's stack and C library data, which the allocator leaves alone."""

    @property
    def capacity(self) -> int:
        """Bytes the allocator may plan."""
        return self.size - self.reserved

    def access_cost(self, reads: int, writes: int, nbytes: int) -> float:
        """Cost of `reads` full reads and `writes` full writes of a buffer of `nbytes`."""
        return nbytes * (reads * self.read_cost + writes * self.write_cost)


@dataclass(frozen=True)
class EngineSpec:
    """Something that computes: a core, a cluster of `cores` cores, or an accelerator."""

    name: str
    kind: str  # "core", "cluster" or "accelerator"
    reads: tuple[str, ...]
    """Memories this engine reads and writes directly (load/store, no DMA)."""
    cores: int = 1
    cpi: float = 1.0
    """Cycles per instruction assumed when a program turns instruction counts into time."""
    ops: tuple[str, ...] = ()
    """For an accelerator: the kernels it runs."""
    cost: dict = field(default_factory=dict, hash=False, compare=False)
    """For an accelerator: its cost formula's coefficients, stated with their source."""
    description: str = ""
    fork_join_cycles: int = 0
    """For a cluster: the cycles one parallel phase costs beyond its work (waking the cores
    and the barrier); the tile planner charges it once per tile."""


@dataclass(frozen=True)
class LinkSpec:
    """A DMA path from one memory to another: `setup_cycles + bytes / bytes_per_cycle`."""

    source: str
    dest: str
    bytes_per_cycle: float
    setup_cycles: int = 0
    description: str = ""

    def cycles(self, nbytes: int) -> float:
        return self.setup_cycles + nbytes / self.bytes_per_cycle


@dataclass(frozen=True)
class Toolchain:
    """How a C project for the target is built, run and measured."""

    compiler: str = "cc"
    cflags: str = ""
    ldflags: str = ""
    size: str = "size"
    run: str = "./{elf}"
    """The command that runs the program; `{elf}` is the executable's file name."""
    counter: str = "none"
    """How the program counts instructions: "minstret" (RISC-V CSR), "systick" (Cortex-M
    SysTick under qemu -icount; the target's runtime provides irt_systick.h) or "none"."""
    layout: str = "native"
    """"native" (the host's own linker script) or "picolibc" (picolibc.ld with the memories
    placed from `base`, one linker region per writable memory)."""
    base: int = 0
    stack: int = 8192
    program: int = 0
    """Bytes the program takes in its read-only memory besides main.c's token table (code, C
    library, constants; measured with `make size`), for targets/c/program_fit.py; 0: only the
    table and the weights are checked."""


COUNTERS = ("minstret", "systick", "none")
LAYOUTS = ("native", "picolibc")


@dataclass(frozen=True)
class TargetDescription:
    """A target as the passes see it: memories, links, engines, clock and toolchain."""

    name: str
    memories: tuple[MemorySpec, ...]
    description: str = ""
    engines: tuple[EngineSpec, ...] = ()
    links: tuple[LinkSpec, ...] = ()
    clock_hz: int | None = None
    toolchain: Toolchain = Toolchain()

    @property
    def core(self) -> EngineSpec:
        """The engine that runs the program (the first core or cluster)."""
        for e in self.engines:
            if e.kind in ("core", "cluster"):
                return e
        return EngineSpec("core", "core", tuple(m.name for m in self.memories))

    def engine(self, name: str) -> EngineSpec:
        for e in self.engines:
            if e.name == name:
                return e
        raise IrtoolError(f"target '{self.name}' has no engine '{name}' (it has "
                          f"{', '.join(e.name for e in self.engines) or 'none'})")

    def link(self, source: str, dest: str) -> LinkSpec | None:
        for link in self.links:
            if link.source == source and link.dest == dest:
                return link
        return None

    def memory(self, name: str) -> MemorySpec:
        for m in self.memories:
            if m.name == name:
                return m
        raise IrtoolError(f"target '{self.name}' has no memory '{name}' (it has "
                          f"{', '.join(m.name for m in self.memories)})")

    @property
    def writable(self) -> tuple[MemorySpec, ...]:
        return tuple(m for m in self.memories if not m.read_only)


def load_description(path: str | os.PathLike[str]) -> TargetDescription:
    """The description in a JSON file."""
    path = Path(path)
    if not path.is_file():
        raise IrtoolError(f"target description '{path}' not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IrtoolError(f"target description '{path}' is not valid JSON: {e}") from None
    return parse_target(data, str(path))


_TOP = {"name", "description", "memories", "engines", "links", "clock_hz", "toolchain"}
_MEMORY = {"name", "size", "alignment", "read_cost", "write_cost", "read_only", "reserved",
           "description"}
_ENGINE = {"name", "kind", "cores", "reads", "cpi", "ops", "cost", "description",
           "fork_join_cycles"}
_LINK = {"from", "to", "bytes_per_cycle", "setup_cycles", "description"}
_TOOLCHAIN = {"compiler", "cflags", "ldflags", "size", "run", "counter", "layout", "base",
              "stack", "program"}


def parse_target(data: Any, where: str = "<target>") -> TargetDescription:
    """Check and convert the JSON object of a description; errors name the bad field."""
    _expect(isinstance(data, dict), where, "", "must be a JSON object")
    _known_fields(data, _TOP, where, "")
    name = _field(data, "name", str, where)
    _expect(bool(TARGET_NAME.match(name)), where, "name",
            f"must be letters, digits, '_', '-' or '.', got {json.dumps(name)}")
    memories = _field(data, "memories", list, where)
    _expect(len(memories) > 0, where, "memories", "must list at least one memory")
    specs = tuple(_parse_memory(m, f"memories[{i}]", where) for i, m in enumerate(memories))
    names = [m.name for m in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    _expect(not dup, where, "memories", f"names must be unique, repeated: {', '.join(dup)}")
    engines = tuple(_parse_engine(e, f"engines[{i}]", where, names)
                    for i, e in enumerate(_field(data, "engines", list, where, default=[])))
    links = tuple(_parse_link(k, f"links[{i}]", where, names)
                  for i, k in enumerate(_field(data, "links", list, where, default=[])))
    clock = _field(data, "clock_hz", int, where, default=None)
    _expect(clock is None or clock > 0, where, "clock_hz", f"must be positive, got {clock}")
    return TargetDescription(
        name=name, memories=specs,
        description=_field(data, "description", str, where, default=""),
        engines=engines, links=links, clock_hz=clock,
        toolchain=_parse_toolchain(_field(data, "toolchain", dict, where, default={}), where))


def _known_fields(obj: dict, known: set[str], where: str, path: str) -> None:
    unknown = sorted(set(obj) - known)
    _expect(not unknown, where, path or "", f"unknown field(s) {', '.join(unknown)} (known: "
            f"{', '.join(sorted(known))})")


def _parse_engine(e: Any, path: str, where: str, memories: list[str]) -> EngineSpec:
    _expect(isinstance(e, dict), where, path, "must be a JSON object")
    _known_fields(e, _ENGINE, where, path)
    name = _field(e, "name", str, where, path)
    _expect(bool(IDENTIFIER.match(name)), where, f"{path}.name",
            f"must be an identifier, got {json.dumps(name)}")
    kind = _field(e, "kind", str, where, path)
    _expect(kind in ("core", "cluster", "accelerator"), where, f"{path}.kind",
            f"must be core, cluster or accelerator, got {json.dumps(kind)}")
    reads = _field(e, "reads", list, where, path)
    bad = [r for r in reads if r not in memories]
    _expect(not bad, where, f"{path}.reads", f"names unknown memories {bad} (known: "
            f"{', '.join(memories)})")
    cores = _field(e, "cores", int, where, path, default=1)
    _expect(cores > 0, where, f"{path}.cores", f"must be positive, got {cores}")
    cpi = float(_field(e, "cpi", (int, float), where, path, default=1.0))
    _expect(cpi > 0, where, f"{path}.cpi", f"must be positive, got {cpi}")
    fork_join = _field(e, "fork_join_cycles", int, where, path, default=0)
    _expect(fork_join >= 0, where, f"{path}.fork_join_cycles", f"must be >= 0, got {fork_join}")
    return EngineSpec(name, kind, tuple(reads), cores, cpi,
                      tuple(_field(e, "ops", list, where, path, default=[])),
                      dict(_field(e, "cost", dict, where, path, default={})),
                      _field(e, "description", str, where, path, default=""), fork_join)


def _parse_link(k: Any, path: str, where: str, memories: list[str]) -> LinkSpec:
    _expect(isinstance(k, dict), where, path, "must be a JSON object")
    _known_fields(k, _LINK, where, path)
    src, dst = _field(k, "from", str, where, path), _field(k, "to", str, where, path)
    for end, label in ((src, "from"), (dst, "to")):
        _expect(end in memories, where, f"{path}.{label}",
                f"names unknown memory {json.dumps(end)} (known: {', '.join(memories)})")
    bpc = float(_field(k, "bytes_per_cycle", (int, float), where, path))
    _expect(bpc > 0, where, f"{path}.bytes_per_cycle", f"must be positive, got {bpc}")
    setup = _field(k, "setup_cycles", int, where, path, default=0)
    _expect(setup >= 0, where, f"{path}.setup_cycles", f"must be >= 0, got {setup}")
    return LinkSpec(src, dst, bpc, setup, _field(k, "description", str, where, path, default=""))


def _parse_toolchain(t: dict, where: str) -> Toolchain:
    _known_fields(t, _TOOLCHAIN, where, "toolchain")
    d = Toolchain()
    tc = Toolchain(**{k: _field(t, k, type(getattr(d, k)), where, "toolchain",
                                default=getattr(d, k)) for k in _TOOLCHAIN})
    _expect(tc.counter in COUNTERS, where, "toolchain.counter",
            f"must be one of {', '.join(COUNTERS)}, got {json.dumps(tc.counter)}")
    _expect(tc.layout in LAYOUTS, where, "toolchain.layout",
            f"must be one of {', '.join(LAYOUTS)}, got {json.dumps(tc.layout)}")
    _expect("{elf}" in tc.run, where, "toolchain.run",
            "must contain {elf} where the executable's name goes")
    _expect(tc.base >= 0 and tc.stack > 0 and tc.program >= 0, where, "toolchain",
            "base and program must be >= 0 and stack > 0")
    return tc


def _parse_memory(m: Any, path: str, where: str) -> MemorySpec:
    _expect(isinstance(m, dict), where, path, "must be a JSON object")
    _known_fields(m, _MEMORY, where, path)
    spec = MemorySpec(
        name=_field(m, "name", str, where, path),
        size=_field(m, "size", int, where, path),
        alignment=_field(m, "alignment", int, where, path),
        read_cost=float(_field(m, "read_cost", (int, float), where, path)),
        write_cost=float(_field(m, "write_cost", (int, float), where, path)),
        read_only=_field(m, "read_only", bool, where, path),
        description=_field(m, "description", str, where, path, default=""),
        reserved=_field(m, "reserved", int, where, path, default=0))
    at = f"{path}.{spec.name}" if spec.name else path
    _expect(bool(IDENTIFIER.match(spec.name)), where, f"{path}.name",
            f"must be an identifier (it names C sections and symbols), got "
            f"{json.dumps(spec.name)}")
    _expect(spec.size > 0, where, f"{at}.size",
            f"must be a positive number of bytes, got {spec.size}")
    _expect(0 <= spec.reserved < spec.size, where, f"{at}.reserved",
            f"must be in [0, size), got {spec.reserved}")
    a = spec.alignment
    _expect(a > 0 and a & (a - 1) == 0, where, f"{at}.alignment",
            f"must be a power of two, got {a}")
    _expect(spec.read_cost >= 0 and spec.write_cost >= 0, where, at,
            "read_cost and write_cost must be >= 0")
    return spec


_MISSING = object()


def _field(obj: dict, key: str, kind, where: str, path: str = "", default: Any = _MISSING):
    """obj[key] checked against `kind` (bool is not accepted as a number)."""
    full = f"{path}.{key}" if path else key
    if key not in obj or obj[key] is None:
        _expect(default is not _MISSING, where, full, "is missing")
        return default
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    names = " or ".join({int: "an integer", float: "a number", str: "a string",
                         bool: "true/false", list: "a list", dict: "an object"}[k]
                        for k in kinds)
    _expect(ok, where, full, f"must be {names}, got {json.dumps(value)}")
    return value


def _expect(cond: bool, where: str, field: str, what: str) -> None:
    if not cond:
        at = f" field '{field}'" if field else ""
        raise IrtoolError(f"malformed target description '{where}':{at} {what}")
