"""An independent checker of memory plans, and a generator of synthetic memory-level modules.

The checker must not share code with what it checks, so it imports neither
`irtool.passes.allocate` nor `irtool.liveness`: it reads the target JSON itself, sizes buffers
with its own table, and recomputes live ranges from the IR in the plainest way (the span of the
top-level ops that touch a buffer, its views or its DMA tokens; a returned buffer to the end of
its function; globals always; buffers of different functions never at the same time, except
that a function called by another may run during any of its caller's buffers: its buffers
count as live always).

Touching ranges: a buffer is live at every top-level op from its first to its last use,
both included (`first`/`last` below), so two buffers conflict when `a.first <= b.last and
b.first <= a.last`. A kernel that reads `a` for the last time while it writes `b` for the first
time has them both live (a kernel reads while it writes): they may not share bytes. A buffer
whose last use is op i and one whose first use is op i + 1 may. This is irtool.liveness's
convention in other words: its ranges are half-open, `[first, last + 1)`, and `a.end == b.start`
means disjoint. tests/test_plan_checker.py tests both sides.

`layered_module_text` writes a random layered dataflow graph at the memory level (weights,
state, activations read by the next one or two layers), for tests and the benchmark.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from xdsl.dialects.builtin import IndexType, IntegerType, MemRefType, ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.parser import Parser

from irtool.context import make_context

TARGETS = Path(__file__).resolve().parents[1] / "targets"


@dataclass(frozen=True)
class Memory:
    size: int
    alignment: int
    read_only: bool


def target_memories(name_or_path: str | Path) -> dict[str, Memory]:
    """The memories of a target description, read straight from its JSON."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "description.json"
    if not path.is_file():
        path = TARGETS / str(name_or_path).replace("-", "_") / "description.json"
    data = json.loads(path.read_text())
    return {m["name"]: Memory(m["size"] - m.get("reserved", 0), m["alignment"], m["read_only"])
            for m in data["memories"]}


def parse_module(text: str) -> ModuleOp:
    return Parser(make_context(), text).parse_module()


# --- the buffers of a placed module -----------------------------------------------------------

@dataclass
class Placed:
    name: str
    writable: bool
    space: str | None
    offset: int | None
    alignment: int | None
    size: int
    function: str | None  # None for globals: live always
    first: int = 0
    last: int = 0

    def live_with(self, other: Placed) -> bool:
        if self.function is None or other.function is None:
            return True
        return (self.function == other.function
                and self.first <= other.last and other.first <= self.last)


def _bytes(t: MemRefType) -> int:
    el = t.element_type
    if isinstance(el, IndexType):
        width = 8
    elif isinstance(el, IntegerType):
        width = (el.width.data + 7) // 8
    else:
        width = {16: 2, 32: 4, 64: 8}[el.bitwidth]
    n = 1
    for d in t.get_shape():
        n *= d
    return n * width


def _space(t) -> str | None:
    ms = getattr(t, "memory_space", None)
    return getattr(getattr(ms, "space", None), "data", None)


def _int_prop(op: Operation, name: str) -> int | None:
    a = op.properties.get(name)
    return None if a is None else a.value.data


def _span(value: SSAValue, top: dict[Operation, int], n: int) -> list[int]:
    """Indices of the top-level ops touching a buffer, through views and DMA tokens."""
    out: list[int] = []
    work = [value]
    while work:
        v = work.pop()
        for use in v.uses:
            user = use.operation
            anc = user
            while anc not in top:
                anc = anc.parent_op()
            out.append(n - 1 if user.name == "func.return" else top[anc])
            if user.name in ("memory.subview", "memory.dma_start"):
                work.append(user.results[0])
    return out


def placed_buffers(module: ModuleOp) -> list[Placed]:
    called = {op.properties["callee"].string_value() for op in module.walk()
              if op.name == "func.call"}
    out: list[Placed] = []
    for op in module.ops:
        if op.name == "memory.global":
            t = op.properties["type"]
            out.append(Placed(op.properties["sym_name"].data,
                              op.properties["kind"].data != "weight", _space(t),
                              _int_prop(op, "offset"), _int_prop(op, "alignment"), _bytes(t),
                              None))
        elif op.name == "func.func" and op.regions[0].blocks:
            bufs = _function_buffers(op)
            if op.properties["sym_name"].data in called:  # runs inside its caller
                for b in bufs:
                    b.function = None
            out += bufs
    return out


def _function_buffers(f: Operation) -> list[Placed]:
    top = {op: i for i, op in enumerate(o for b in f.regions[0].blocks for o in b.ops)}
    out = []
    for op in f.walk():
        if op.name != "memory.alloc":
            continue
        r = op.results[0]
        anc = op
        while anc not in top:
            anc = anc.parent_op()
        span = _span(r, top, len(top)) or [top[anc]]
        out.append(Placed(f"{f.properties['sym_name'].data}/%{r.name_hint}", True,
                          _space(r.type), _int_prop(op, "offset"),
                          _int_prop(op, "alignment"), _bytes(r.type),
                          f.properties["sym_name"].data, min(span), max(span)))
    return out


# --- the checks -------------------------------------------------------------------------------

def check_plan(module: ModuleOp, memories: dict[str, Memory]) -> list[str]:
    """Every violation of the plan in `module` (empty when the plan is valid)."""
    errors: list[str] = []
    try:
        module.verify()
    except Exception as e:  # noqa: BLE001 - report, do not crash the checker
        errors.append(f"module does not verify: {e}")
    bufs = placed_buffers(module)
    for b in bufs:
        errors += _check_one(b, memories)
    errors += _check_overlaps(bufs)
    errors += _check_get_globals(module)
    return errors


def _check_one(b: Placed, memories: dict[str, Memory]) -> list[str]:
    if b.space is None or b.offset is None or b.alignment is None:
        return [f"{b.name}: not placed (space {b.space}, offset {b.offset})"]
    m = memories.get(b.space)
    if m is None:
        return [f"{b.name}: unknown space {b.space}"]
    errs = []
    if b.offset + b.size > m.size:
        errs.append(f"{b.name}: [{b.offset}, {b.offset + b.size}) beyond {b.space} ({m.size})")
    if b.offset % b.alignment or b.offset % m.alignment:
        errs.append(f"{b.name}: offset {b.offset} not aligned to {b.alignment}/{m.alignment}")
    if b.writable and m.read_only:
        errs.append(f"{b.name}: writable buffer in read-only {b.space}")
    return errs


def _check_overlaps(bufs: list[Placed]) -> list[str]:
    errs = []
    placed = [b for b in bufs if b.space is not None and b.offset is not None and b.size > 0]
    for i, a in enumerate(placed):
        for b in placed[i + 1:]:
            if (a.space == b.space and a.live_with(b)
                    and a.offset < b.offset + b.size and b.offset < a.offset + a.size):
                errs.append(f"{a.name} [{a.offset}, {a.offset + a.size}) and {b.name} "
                            f"[{b.offset}, {b.offset + b.size}) overlap in {a.space} while "
                            "both are live")
    return errs


def _check_get_globals(module: ModuleOp) -> list[str]:
    types = {op.properties["sym_name"].data: op.properties["type"]
             for op in module.ops if op.name == "memory.global"}
    errs = []
    for op in module.walk():
        if op.name == "memory.get_global":
            name = op.properties["name"].string_value()
            if op.results[0].type != types.get(name):
                errs.append(f"get_global @{name}: type {op.results[0].type} differs from the "
                            f"global's {types.get(name)}")
    return errs


def assert_valid_plan(module: ModuleOp, memories: dict[str, Memory]) -> None:
    errors = check_plan(module, memories)
    assert not errors, "invalid memory plan:\n  " + "\n  ".join(errors[:20])


# --- synthetic layered graphs -----------------------------------------------------------------

def _kernel(ins: list[tuple[str, str]], out: tuple[str, str]) -> str:
    """A kernel reading `ins` and writing `out` ((name, memref type) pairs); its body only
    has to produce a value of the right type."""
    names = ", ".join(n for n, _ in ins)
    types = ", ".join(t for _, t in ins)
    args = ", ".join(f"%a{i}: {t.replace('memref', 'tensor')}" for i, (_, t) in enumerate(ins))
    tensor = out[1].replace("memref", "tensor")
    return (f"    memory.kernel ins({names} : {types}) outs({out[0]} : {out[1]}) {{\n"
            f"    ^bb0({args}):\n"
            f"      %e = tensor.empty() : {tensor}\n"
            f"      memory.yield %e : {tensor}\n"
            "    }\n")


def layered_module_text(layers: int, width: int = 3, seed: int = 0,
                        sizes: tuple[int, ...] = (16, 32, 64, 128, 256)) -> str:
    """A random layered DAG: every layer has `width` activations [1, n] f32, each computed from
    one to three activations of the previous two layers and one weight [n, 16]; one state
    buffer is read and updated in place by every layer. Deterministic for a seed."""
    rng = random.Random(seed)
    globals_ = ['  memory.global @state_cache {kind = "state"} : memref<8x16xf32>\n']
    body = ['    %state = memory.get_global @state_cache : memref<8x16xf32>\n']
    prev: list[list[tuple[str, str]]] = [[("%input", "memref<1x16xf32>")]]
    for layer in range(layers):
        current = []
        for j in range(width):
            n = rng.choice(sizes)
            w, x = f"w{layer}_{j}", f"%x{layer}_{j}"
            wt, xt = f"memref<{n}x16xf32>", f"memref<1x{n}xf32>"
            globals_.append(f'  memory.global @{w} {{kind = "weight", weight = "{w}"}} : {wt}\n')
            body.append(f"    %{w} = memory.get_global @{w} : {wt}\n")
            body.append(f"    {x} = memory.alloc : {xt}\n")
            pool = [v for level in prev[-2:] for v in level]
            ins = rng.sample(pool, k=min(len(pool), rng.randint(1, 3)))
            body.append(_kernel(ins + [(f"%{w}", wt)], (x, xt)))
            current.append((x, xt))
        body.append(_kernel([current[0], ("%state", "memref<8x16xf32>")],
                            ("%state", "memref<8x16xf32>")))
        prev.append(current)
    out_name, out_type = prev[-1][0]
    body.append(f"    func.return {out_name} : {out_type}\n")
    return ("builtin.module {\n" + "".join(globals_)
            + f"  func.func @forward(%input: memref<1x16xf32>) -> {out_type} {{\n"
            + "".join(body) + "  }\n}\n")
