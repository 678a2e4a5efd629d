"""The independent plan checker (tests/plan_checker.py) fails on every kind of bad plan.

A checker that cannot fail proves nothing, so each rule is tested on both sides with small
hand-placed modules: live ranges that touch (see the convention in plan_checker's docstring,
which agrees with irtool.liveness), a kernel reading and writing one buffer, alignment, sizes
and read-only memories.
"""

from __future__ import annotations

import pytest

from irtool.liveness import analyze
from tests.plan_checker import Memory, check_plan, parse_module

MEMORIES = {"fast": Memory(size=256, alignment=4, read_only=False),
            "rom": Memory(size=1024, alignment=8, read_only=True)}
T = "memref<4xf32, #memory.space<fast>>"


def alloc(name: str, offset: int, t: str = T, alignment: int = 4) -> str:
    return (f"    %{name} = memory.alloc {{offset = {offset} : i64, alignment = {alignment} : "
            f"i64}} : {t}\n")


def kernel(ins: list[str], out: str, t: str = T) -> str:
    """A kernel reading `ins` and writing `out`, all of type `t`."""
    tensor = t.split(",")[0].replace("memref", "tensor") + (">" if "," in t else "")
    args = ", ".join(f"%a{i}: {tensor}" for i in range(len(ins)))
    return (f"    memory.kernel ins({', '.join('%' + n for n in ins)} : "
            f"{', '.join([t] * len(ins))}) outs(%{out} : {t}) {{\n"
            f"    ^bb0({args}):\n      %e = tensor.empty() : {tensor}\n"
            f"      memory.yield %e : {tensor}\n    }}\n")


def module(body: str, globals_: str = "", result: str = "c") -> str:
    return (f"builtin.module {{\n{globals_}  func.func @f() -> {T} {{\n{body}"
            f"    func.return %{result} : {T}\n  }}\n}}\n")


def overlaps(errors: list[str]) -> list[str]:
    return [e for e in errors if "overlap" in e]


def chain(offset_b: int, offset_c: int) -> str:
    """op 0-2: allocs; op 3: a := ...; op 4: b := f(a) (a's last use); op 5: c := g(b)."""
    return module(alloc("a", 0) + alloc("b", offset_b) + alloc("c", offset_c)
                  + kernel([], "a") + kernel(["a"], "b") + kernel(["b"], "c"))


def test_touching_at_one_kernel_is_an_overlap():
    """%a dies at the kernel that first writes %b: both are live at that kernel (the kernel
    reads one while it writes the other), so they may not share bytes. liveness says the same:
    half-open [start, end) ranges, a.end = 5 > b.start = 4."""
    text = chain(offset_b=0, offset_c=16)
    bufs = analyze(parse_module(text)).by_name()
    a, b = bufs["f/%a"], bufs["f/%b"]
    assert (a.start, a.end, b.start, b.end) == (3, 5, 4, 6) and a.overlaps(b)
    errors = check_plan(parse_module(text), MEMORIES)
    assert len(overlaps(errors)) == 1 and "f/%a" in errors[0] and "f/%b" in errors[0], errors


def test_ranges_that_end_where_the_next_starts_may_share_bytes():
    """%a's last use is op 4 and %c's first is op 5: in liveness' half-open ranges
    a.end == c.start == 5, disjoint, and the checker accepts the shared bytes."""
    text = chain(offset_b=16, offset_c=0)
    bufs = analyze(parse_module(text)).by_name()
    a, c = bufs["f/%a"], bufs["f/%c"]
    assert a.end == c.start == 5 and not a.overlaps(c)
    assert check_plan(parse_module(text), MEMORIES) == []


def test_partial_overlap_of_live_buffers():
    text = chain(offset_b=12, offset_c=32)  # b's first element is a's last
    assert len(overlaps(check_plan(parse_module(text), MEMORIES))) == 1
    text = chain(offset_b=16, offset_c=32)
    assert check_plan(parse_module(text), MEMORIES) == []


def test_a_kernel_updating_its_own_buffer_is_not_an_overlap():
    """The same buffer in ins and outs (an in-place update) is one buffer, not two."""
    body = alloc("a", 0) + alloc("c", 16) + kernel([], "a") + kernel(["a"], "a") + kernel(
        ["a"], "c")
    assert check_plan(parse_module(module(body)), MEMORIES) == []
    body = alloc("a", 0) + alloc("c", 0) + kernel([], "a") + kernel(["a"], "a") + kernel(
        ["a"], "c")  # but a different buffer on it is caught
    assert len(overlaps(check_plan(parse_module(module(body)), MEMORIES))) == 1


def test_buffers_of_different_functions_may_share_bytes_but_globals_never():
    g = '  memory.global @s {kind = "state", offset = 0 : i64, alignment = 4 : i64} : ' + T + "\n"
    second = ("  func.func @g() -> " + T + " {\n" + alloc("d", 0) + kernel([], "d")
              + f"    func.return %d : {T}\n  }}\n")
    body = alloc("c", 0) + kernel([], "c")
    text = module(body).replace("builtin.module {\n", "builtin.module {\n" + second)
    assert check_plan(parse_module(text), MEMORIES) == []
    errors = check_plan(parse_module(module(body, g).replace("builtin.module {\n",
                                                             "builtin.module {\n" + second)),
                        MEMORIES)
    assert sorted(errors) == ["g/%d [0, 16) and s [0, 16) overlap in fast while both are live",
                              "s [0, 16) and f/%c [0, 16) overlap in fast while both are live"]


@pytest.mark.parametrize("offset,alignment,message", [
    (6, 4, "not aligned"),  # neither the buffer's 4 nor the memory's 4
    (4, 8, "not aligned"),  # the memory's 4 but not the buffer's own 8
    (252, 4, "beyond fast"),  # [252, 268) past 256 bytes
    (240, 4, None),  # [240, 256): the last bytes, fine
])
def test_alignment_and_size(offset, alignment, message):
    errors = check_plan(parse_module(module(alloc("c", offset, alignment=alignment)
                                            + kernel([], "c"))), MEMORIES)
    assert (errors == []) if message is None else any(message in e for e in errors), errors


def test_memory_alignment_is_checked_too():
    rom_weight = ('  memory.global @w {kind = "weight", weight = "w", offset = 4 : i64, '
                  'alignment = 4 : i64} : memref<4xf32, #memory.space<rom>>\n')
    errors = check_plan(parse_module(module(alloc("c", 0) + kernel([], "c"), rom_weight)),
                        MEMORIES)
    assert errors == ["w: offset 4 not aligned to 4/8"]


@pytest.mark.parametrize("kind,ok", [("weight", True), ("state", False)])
def test_read_only_memory_holds_weights_only(kind, ok):
    weight = ' weight = "w",' if kind == "weight" else ""
    g = (f'  memory.global @w {{kind = "{kind}",{weight} offset = 0 : i64, alignment = 8 : '
         f'i64}} : memref<4xf32, #memory.space<rom>>\n')
    errors = check_plan(parse_module(module(alloc("c", 0) + kernel([], "c"), g)), MEMORIES)
    assert (errors == []) if ok else any("writable buffer in read-only rom" in e
                                         for e in errors), errors


def test_writable_alloc_in_read_only_memory():
    t = "memref<4xf32, #memory.space<rom>>"
    text = ("builtin.module {\n  func.func @f() -> " + t + " {\n"
            + alloc("c", 0, t, 8) + kernel([], "c", t) + f"    func.return %c : {t}\n  }}\n}}\n")
    errors = check_plan(parse_module(text), MEMORIES)
    assert errors == ["f/%c: writable buffer in read-only rom"], errors
