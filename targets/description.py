"""Target descriptions: a target is data (its memories, cores, FPU, clock), read from JSON.

Passes never name a target; they ask a `TargetDescription` (loaded with `load_target`) for the
memories it offers, so adding a target means writing one `descriptions/<name>.json`. The
dataclasses are frozen so that a description can be shared between passes without copies.

A description file looks like::

    {"name": "riscv-ulp", "description": "...", "cores": 1, "fpu": "...", "clock_hz": 32000000,
     "memories": [{"name": "sram", "size": 262144, "alignment": 4, "read_cost": 2,
                   "write_cost": 2, "executable": true, "read_only": false,
                   "description": "..."}, ...]}

`size` is in bytes, `alignment` a power of two in bytes, and the costs are per byte accessed,
relative to each other (only their ratios matter to the allocator).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irtool.errors import IrtoolError

DESCRIPTIONS = Path(__file__).resolve().parent / "descriptions"


@dataclass(frozen=True)
class MemorySpec:
    """One memory of a target: a space the allocator may place buffers in."""

    name: str
    size: int
    alignment: int
    read_cost: float
    write_cost: float
    executable: bool
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
class TargetDescription:
    """A target as the passes see it: memories plus plain information on the compute."""

    name: str
    memories: tuple[MemorySpec, ...]
    description: str = ""
    cores: int = 1
    fpu: str | None = None
    clock_hz: int | None = None

    def memory(self, name: str) -> MemorySpec:
        for m in self.memories:
            if m.name == name:
                return m
        raise IrtoolError(f"target '{self.name}' has no memory '{name}' (it has "
                          f"{', '.join(m.name for m in self.memories)})")

    @property
    def writable(self) -> tuple[MemorySpec, ...]:
        return tuple(m for m in self.memories if not m.read_only)


def known_targets() -> list[str]:
    """Names of the descriptions shipped with irtool."""
    return sorted(p.stem for p in DESCRIPTIONS.glob("*.json"))


def load_target(name_or_path: str | os.PathLike[str]) -> TargetDescription:
    """The description of a shipped target (by name) or of a JSON file (by path)."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".json") or os.sep in text or path.is_file()):
        path = DESCRIPTIONS / f"{text}.json"
        if not path.is_file():
            raise IrtoolError(f"unknown target '{text}'; known targets: "
                              f"{', '.join(known_targets())} (or give the path of a .json "
                              "description)")
    if not path.is_file():
        raise IrtoolError(f"target description '{text}' not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IrtoolError(f"target description '{path}' is not valid JSON: {e}") from None
    return parse_target(data, str(path))


def parse_target(data: Any, where: str = "<target>") -> TargetDescription:
    """Check and convert the JSON object of a description; errors name the bad field."""
    _expect(isinstance(data, dict), where, "", "must be a JSON object")
    name = _field(data, "name", str, where)
    memories = _field(data, "memories", list, where)
    _expect(len(memories) > 0, where, "memories", "must list at least one memory")
    specs = tuple(_parse_memory(m, f"memories[{i}]", where) for i, m in enumerate(memories))
    names = [m.name for m in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    _expect(not dup, where, "memories", f"names must be unique, repeated: {', '.join(dup)}")
    return TargetDescription(
        name=name, memories=specs,
        description=_field(data, "description", str, where, default=""),
        cores=_field(data, "cores", int, where, default=1),
        fpu=_field(data, "fpu", str, where, default=None),
        clock_hz=_field(data, "clock_hz", int, where, default=None))


def _parse_memory(m: Any, path: str, where: str) -> MemorySpec:
    _expect(isinstance(m, dict), where, path, "must be a JSON object")
    spec = MemorySpec(
        name=_field(m, "name", str, where, path),
        size=_field(m, "size", int, where, path),
        alignment=_field(m, "alignment", int, where, path),
        read_cost=float(_field(m, "read_cost", (int, float), where, path)),
        write_cost=float(_field(m, "write_cost", (int, float), where, path)),
        executable=_field(m, "executable", bool, where, path),
        read_only=_field(m, "read_only", bool, where, path),
        description=_field(m, "description", str, where, path, default=""),
        reserved=_field(m, "reserved", int, where, path, default=0))
    at = f"{path}.{spec.name}" if spec.name else path
    _expect(spec.size > 0, where, f"{at}.size", f"must be a positive number of bytes, got {spec.size}")
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
                         bool: "true/false", list: "a list"}[k] for k in kinds)
    _expect(ok, where, full, f"must be {names}, got {json.dumps(value)}")
    return value


def _expect(cond: bool, where: str, field: str, what: str) -> None:
    if not cond:
        at = f" field '{field}'" if field else ""
        raise IrtoolError(f"malformed target description '{where}':{at} {what}")
