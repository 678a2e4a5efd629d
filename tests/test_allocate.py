"""`allocate` (CP-SAT memory planning), its target descriptions and the liveness analysis.

Every plan is checked by `plan_checker`, which recomputes live ranges from the IR on its own;
the tests of the objective use cases whose optimum is known by hand.
"""

from __future__ import annotations

import json
import random
import re
from itertools import pairwise
from pathlib import Path

import pytest
from xdsl.passes import PassPipeline

from irtool.context import make_context
from irtool.errors import IrtoolError
from irtool.ir_names import MEMORY_PLAN_ATTR
from irtool.liveness import analyze, peak_live_bytes
from irtool.passes import get_all_passes
from irtool.passes.allocate import AllocatePass, first_fit_offsets
from irtool.targets.description import load_description, parse_target
from irtool.targets.registry import known_targets
from irtool.targets.registry import load_target as load_plugin
from tests.plan_checker import (
    assert_valid_plan,
    layered_module_text,
    parse_module,
    target_memories,
)

TARGETS = Path(__file__).resolve().parents[1] / "targets"


def load_target(name_or_path):
    """The description of a registered target or of a description file."""
    return load_plugin(name_or_path).description


TIME = 3.0  # seconds of CP-SAT per test case: every case here is solved well within it


def allocate(text_or_module, target: str = "riscv-ulp", **options):
    module = parse_module(text_or_module) if isinstance(text_or_module, str) else text_or_module
    AllocatePass(target=target, time_limit=options.pop("time_limit", TIME), **options).apply(
        make_context(), module)
    return module


def plan_of(module) -> dict:
    return {k: v for k, v in module.attributes[MEMORY_PLAN_ATTR].data.items()}


def space_peak(module, space: str) -> tuple[int, int]:
    entry = plan_of(module)[space].data
    return entry["peak"].value.data, entry["lower_bound"].value.data


def placements(module) -> dict[str, tuple[str, int]]:
    """name -> (space, offset) of every global (`@g`) and named alloc (`%x`)."""
    out = {}
    for op in module.walk():
        if op.name == "memory.global":
            t, name = op.properties["type"], "@" + op.properties["sym_name"].data
        elif op.name == "memory.alloc":
            t, name = op.results[0].type, "%" + op.results[0].name_hint
        else:
            continue
        out[name] = (t.memory_space.space.data, op.properties["offset"].value.data)
    return out


def write_target(tmp_path: Path, memories: list[dict], name: str = "tiny") -> str:
    path = tmp_path / f"{name}.json"
    full = [{"alignment": 4, "read_cost": 1, "write_cost": 1,
             "read_only": False, "description": "", **m} for m in memories]
    path.write_text(json.dumps({"name": name, "memories": full}))
    return str(path)


def kernel(ins: list[tuple[str, str]], outs: list[tuple[str, str]]) -> str:
    """A kernel that reads `ins` and writes `outs`; its body yields fresh tensors."""
    args = ", ".join(f"%a{i}: {t.replace('memref', 'tensor')}" for i, (_, t) in enumerate(ins))
    empties = "".join(f"      %e{i} = tensor.empty() : {t.replace('memref', 'tensor')}\n"
                      for i, (_, t) in enumerate(outs))
    yields = ", ".join(f"%e{i}" for i in range(len(outs)))
    ytypes = ", ".join(t.replace("memref", "tensor") for _, t in outs)
    return (f"    memory.kernel ins({', '.join(n for n, _ in ins)} : "
            f"{', '.join(t for _, t in ins)}) outs({', '.join(n for n, _ in outs)} : "
            f"{', '.join(t for _, t in outs)}) {{\n    ^bb0({args}):\n{empties}"
            f"      memory.yield {yields} : {ytypes}\n    }}\n")


# --- target descriptions ----------------------------------------------------------------------

def test_shipped_targets():
    assert {"host", "riscv-ulp"} <= set(known_targets())
    ulp = load_target("riscv-ulp")
    sizes = {m.name: (m.size, m.read_only) for m in ulp.memories}
    assert sizes == {"flash": (2 << 20, True), "sram": (256 << 10, False),
                     "dtim": (64 << 10, False)}
    cost = {m.name: m.read_cost for m in ulp.memories}
    assert cost["dtim"] < cost["sram"] < cost["flash"]
    assert all(m.description for m in ulp.memories)
    host = load_target("host")
    assert [(m.name, m.size, m.read_only) for m in host.memories] == [("ram", 1 << 40, False)]


def test_unknown_target_lists_known_ones():
    with pytest.raises(IrtoolError, match=r"unknown target 'nope'.*host.*riscv-ulp"):
        load_target("nope")
    with pytest.raises(IrtoolError, match="unknown target 'nope'"):
        allocate(layered_module_text(1), target="nope")


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("memories"), "memories"),
    (lambda d: d["memories"][0].pop("size"), "memories[0].size"),
    (lambda d: d["memories"][0].update(size="big"), "memories[0].size"),
    (lambda d: d["memories"][0].update(alignment=3), "memories[0].ram.alignment"),
    (lambda d: d["memories"][0].update(read_only="no"), "memories[0].read_only"),
    (lambda d: d.update(name=5), "name"),
])
def test_malformed_description_names_the_field(tmp_path, change, field):
    data = json.loads((TARGETS / "host" / "description.json").read_text())
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(IrtoolError, match=rf"malformed target description .* field "
                                          rf"'{re.escape(field)}'"):
        load_description(path)


def test_description_that_is_not_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{name: ")
    with pytest.raises(IrtoolError, match="not valid JSON"):
        load_target(path)
    with pytest.raises(IrtoolError, match="must be a JSON object"):
        parse_target([1, 2])


# --- liveness -----------------------------------------------------------------------------------

LIVENESS = """
builtin.module {
  memory.global @w {kind = "weight", weight = "w"} : memref<4x4xf32>
  memory.global @mask {kind = "state"} : memref<10xi1>
  func.func @f(%in: memref<1x4xf32>) -> memref<1x4xf32> {
    %a = memory.alloc : memref<1x4xf32>
    %w = memory.get_global @w : memref<4x4xf32>
""" + kernel([("%in", "memref<1x4xf32>"), ("%w", "memref<4x4xf32>")],
             [("%a", "memref<1x4xf32>")]) + """
    %b = memory.alloc : memref<1x4xf32>
    %t = memory.dma_start %a, %b : memref<1x4xf32>, memref<1x4xf32>
    %c = memory.alloc : memref<2xi64>
    memory.dma_wait %t
    %v = memory.subview %b {offsets = array<i64: 0, 0>} : memref<1x4xf32> -> memref<1x2xf32>
    memory.dealloc %v : memref<1x2xf32>
    func.return %a : memref<1x4xf32>
  }
  func.func @g() {
    %d = memory.alloc : memref<3xf16>
    func.return
  }
}
"""


def test_liveness_sizes_ranges_and_counts():
    live = analyze(parse_module(LIVENESS))
    bufs = live.by_name()
    assert {n: (b.kind, b.size) for n, b in bufs.items()} == {
        "@w": ("weight", 64), "@mask": ("state", 10), "f/%a": ("activation", 16),
        "f/%b": ("activation", 16), "f/%c": ("activation", 16), "g/%d": ("activation", 6)}
    # @f: 0 alloc a, 1 get_global, 2 kernel, 3 alloc b, 4 dma_start, 5 alloc c, 6 dma_wait,
    # 7 subview, 8 dealloc, 9 return; @g follows on the timeline.
    assert live.functions == {"f": (0, 10), "g": (10, 12)}
    assert (bufs["f/%a"].start, bufs["f/%a"].end) == (2, 10)  # first write .. returned
    assert (bufs["f/%b"].start, bufs["f/%b"].end) == (4, 9)  # DMA .. dealloc of its view
    assert (bufs["f/%c"].start, bufs["f/%c"].end) == (5, 6)  # never used: just its definition
    assert (bufs["@w"].start, bufs["@w"].end) == (0, 12)  # globals: the whole program
    assert (bufs["@w"].reads, bufs["@w"].writes) == (1, 0)
    assert (bufs["f/%a"].reads, bufs["f/%a"].writes) == (1, 1)  # kernel out, DMA source
    assert (bufs["f/%b"].reads, bufs["f/%b"].writes) == (0, 1)
    assert not bufs["f/%a"].overlaps(bufs["g/%d"])  # functions never run at the same time
    # At op 5 (alloc c): @w, @mask, a, b and c are live.
    assert peak_live_bytes(live.buffers) == 64 + 10 + 16 + 16 + 16
    assert live.lower_bounds({n: "x" for n in bufs}) == {"x": 122}
    graph = live.graphs["f"]
    assert graph.number_of_nodes() > 0 and graph.is_directed()


def test_liveness_plan_of_hand_written_module_is_valid():
    for target in ("riscv-ulp", "host"):
        module = allocate(LIVENESS, target)
        assert_valid_plan(module, target_memories(target))


# --- the objective ------------------------------------------------------------------------------

def knapsack_module() -> str:
    """%a (640 B, 4 accesses), %b and %c (512 B, 3 accesses each), all live at once. A 1 KiB
    fast memory holds %a alone or %b and %c: the latter saves more (3072 vs 2560 byte
    accesses), although %a is the hottest per byte, so a greedy by heat gets it wrong."""
    a, b, c = ("%a", "memref<160xf32>"), ("%b", "memref<128xf32>"), ("%c", "memref<128xf32>")
    body = "".join(f"    {n} = memory.alloc : {t}\n" for n, t in (a, b, c))
    body += kernel([], [a, b, c])
    body += kernel([a], [("%o1", "memref<1xf32>")])
    body += kernel([a, b, c], [("%o1", "memref<1xf32>")])
    body += kernel([a, b, c], [("%o1", "memref<1xf32>")])
    return ("builtin.module {\n  func.func @f() -> memref<1xf32> {\n"
            "    %o1 = memory.alloc : memref<1xf32>\n" + body
            + "    func.return %o1 : memref<1xf32>\n  }\n}\n")


def test_objective_puts_the_most_accessed_bytes_in_the_cheap_memory(tmp_path):
    target = write_target(tmp_path, [
        {"name": "fast", "size": 1024 + 64, "read_cost": 1, "write_cost": 1},
        {"name": "slow", "size": 65536, "read_cost": 3, "write_cost": 3}])
    module = allocate(knapsack_module(), target)
    assert_valid_plan(module, target_memories(target))
    where = {n: s for n, (s, _) in placements(module).items()}
    assert where["%b"] == where["%c"] == "fast"
    assert where["%a"] == "slow"
    assert plan_of(module)["status"].data == "OPTIMAL"
    # the greedy warm start puts the hottest bytes (%a) in fast: CP-SAT had to do better
    assert plan_of(module)["solver"].data == "CP-SAT"


def test_weights_go_to_flash_only_when_read_only_and_writable_never():
    text = ("builtin.module {\n"
            '  memory.global @big {kind = "weight", weight = "big"} : memref<1024x256xf32>\n'
            '  memory.global @cache {kind = "state"} : memref<64x256xf32>\n'
            "  func.func @f() {\n"
            "    %w = memory.get_global @big : memref<1024x256xf32>\n"
            "    %k = memory.get_global @cache : memref<64x256xf32>\n"
            + kernel([("%w", "memref<1024x256xf32>")], [("%k", "memref<64x256xf32>")])
            + "    func.return\n  }\n}\n")
    module = allocate(text, "riscv-ulp")
    assert_valid_plan(module, target_memories("riscv-ulp"))
    where = placements(module)
    assert where["@big"] == ("flash", 0)  # 1 MiB: fits nowhere else
    assert where["@cache"][0] in ("sram", "dtim") and where["@cache"][0] != "flash"


# --- peaks against the lower bound --------------------------------------------------------------

def chain_module(sizes: list[int]) -> str:
    """x0 -> x1 -> ... : each buffer lives from its producer to its consumer."""
    lines, prev = [], None
    for i, n in enumerate(sizes):
        cur = (f"%x{i}", f"memref<{n}xf32>")
        lines.append(f"    {cur[0]} = memory.alloc : {cur[1]}\n")
        lines.append(kernel([prev] if prev else [], [cur]))
        prev = cur
    return ("builtin.module {\n  func.func @f() -> " + prev[1] + " {\n" + "".join(lines)
            + f"    func.return {prev[0]} : {prev[1]}\n  }}\n}}\n")


def test_cpsat_peak_equals_the_lower_bound_and_beats_greedy_by_size():
    rng = random.Random(7)
    sizes = [16 * rng.randint(1, 40) for _ in range(24)]
    module = allocate(chain_module(sizes), "host")
    assert_valid_plan(module, target_memories("host"))
    peak, bound = space_peak(module, "ram")
    assert peak == bound == max(4 * (a + b) for a, b in pairwise(sizes))
    live = analyze(parse_module(chain_module(sizes)))
    by_size = sorted(live.buffers, key=lambda b: -b.size)
    greedy = first_fit_offsets(by_size, lambda b: 64)
    greedy_peak = max(greedy[b.name] + b.size for b in live.buffers)
    assert peak <= greedy_peak


def test_a_greedy_plan_at_the_lower_bound_skips_the_solver(capsys):
    """A chain on one flat memory: first fit by size meets the bytes live at once, so the plan
    is optimal by the bound alone; it is reported so, and OR-Tools is not run."""
    sizes = [64, 32, 64, 16, 64]
    module = allocate(chain_module(sizes), "host", report=True)
    assert_valid_plan(module, target_memories("host"))
    plan = plan_of(module)
    assert plan["status"].data == "OPTIMAL"
    assert plan["solver"].data == "greedy = lower bound"
    peak, bound = space_peak(module, "ram")
    assert peak == bound
    assert "greedy = lower bound: CP-SAT not run" in capsys.readouterr().err


def test_layered_graph_plans_are_valid_and_tight():
    text = layered_module_text(10, width=3, seed=3)
    for target in ("host", "riscv-ulp"):
        module = allocate(text, target)
        assert_valid_plan(module, target_memories(target))
    peak, bound = space_peak(allocate(text, "host"), "ram")
    assert peak == bound


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_layered_graphs_small_time_limit(seed):
    """Even with a tiny time limit the pass returns a valid plan (the greedy hint)."""
    module = allocate(layered_module_text(20, width=4, seed=seed), "riscv-ulp", time_limit=0.2)
    assert_valid_plan(module, target_memories("riscv-ulp"))
    assert plan_of(module)["status"].data in ("OPTIMAL", "FEASIBLE", "GREEDY")


# --- the IR after allocate ----------------------------------------------------------------------

def test_types_of_uses_and_signatures_follow_the_placement():
    module = allocate(LIVENESS, "riscv-ulp")
    module.verify()
    f = next(op for op in module.walk() if op.name == "func.func")
    out = f.function_type.outputs.data[0]
    assert out.memory_space.space.data in ("sram", "dtim")
    views = [op for op in module.walk() if op.name == "memory.subview"]
    assert views[0].result.type.memory_space == views[0].source.type.memory_space


def test_report_attribute_and_stderr(capsys):
    module = allocate(LIVENESS, "riscv-ulp", report=True)
    plan = plan_of(module)
    assert plan["target"].data == "riscv-ulp"
    assert plan["status"].data == "OPTIMAL"
    assert set(plan) >= {"flash", "sram", "dtim", "solve_time_ms"}
    for space in ("flash", "sram", "dtim"):
        peak, bound = space_peak(module, space)
        assert peak >= bound
    err = capsys.readouterr().err
    assert "allocate: target 'riscv-ulp'" in err and "lower bound" in err and "OPTIMAL" in err


def test_pipeline_options_parse():
    passes = get_all_passes()
    spec = "allocate{target=riscv-ulp time-limit=2 report=false}"
    pipeline = PassPipeline.parse_spec(passes, spec)
    (p,) = pipeline.passes
    assert (p.target, p.time_limit, p.report) == ("riscv-ulp", 2, False)


# --- models that do not fit ---------------------------------------------------------------------

def kv_module(capacity: int, dim: int = 64) -> str:
    """A decode step with K/V caches of `capacity` positions ([capacity, dim] f32 each)."""
    cache = f"memref<{capacity}x{dim}xf32>"
    row = f"memref<1x{dim}xf32>"
    return (f"builtin.module attributes {{irtool.kv_capacity = {capacity} : i64}} {{\n"
            f'  memory.global @wq {{kind = "weight", weight = "wq"}} : memref<{dim}x{dim}xf32>\n'
            f'  memory.global @state.kcache {{kind = "state"}} : {cache}\n'
            f'  memory.global @state.vcache {{kind = "state"}} : {cache}\n'
            f"  func.func @decode(%x: {row}) -> {row} {{\n"
            f"    %wq = memory.get_global @wq : memref<{dim}x{dim}xf32>\n"
            f"    %k = memory.get_global @state.kcache : {cache}\n"
            f"    %v = memory.get_global @state.vcache : {cache}\n"
            f"    %q = memory.alloc : {row}\n"
            + kernel([("%x", row), ("%wq", f"memref<{dim}x{dim}xf32>")], [("%q", row)])
            + kernel([("%k", cache), ("%q", row)], [("%k", cache)])
            + kernel([("%v", cache), ("%q", row)], [("%v", cache)])
            + f"    %o = memory.alloc : {row}\n"
            + kernel([("%q", row), ("%k", cache), ("%v", cache)], [("%o", row)])
            + f"    func.return %o : {row}\n  }}\n}}\n")


def test_over_budget_names_buffers_bytes_over_and_window(tmp_path):
    target = write_target(tmp_path, [
        {"name": "flash", "size": 1 << 20, "read_only": True, "read_cost": 4, "write_cost": 4},
        {"name": "sram", "size": 16 << 10, "read_cost": 2, "write_cost": 2}])
    with pytest.raises(IrtoolError) as err:
        allocate(kv_module(64), target)
    msg = str(err.value)
    assert "does not fit target 'tiny'" in msg
    assert "@state.kcache (state, 16384 bytes)" in msg
    assert "@state.vcache (state, 16384 bytes)" in msg
    # writable: two caches + q and o (256 bytes each, live together at the attention kernel)
    need = 2 * 16384 + 2 * 256
    assert f"need {need} bytes live at once" in msg
    assert f"hold {16 << 10} bytes: {need - (16 << 10)} bytes over" in msg
    # 512 bytes per position; 31 positions leave room for q and o
    assert "at most 31 positions instead of 64" in msg
    assert ("irtool compile --capacity 31 (irtool-opt: extract-kv-cache{capacity=31})"
            in msg)  # the user's own flag first (it said the pass's option alone)
    # as int8 (4,096 bytes and 64 float scales a cache) the 64 positions fit
    assert msg.count("; or keep the capacity with an int8 KV cache: irtool compile --kv int8") == 1
    assert f"at least {need} bytes of writable memory" in msg
    fits = allocate(kv_module(31), target)
    assert_valid_plan(fits, target_memories(target))


def test_over_budget_weights_suggest_int8(tmp_path):
    target = write_target(tmp_path, [
        {"name": "flash", "size": 64 << 10, "read_only": True},
        {"name": "sram", "size": 16 << 10}])
    text = ("builtin.module {\n"
            + "".join(f'  memory.global @w{i} {{kind = "weight", weight = "w{i}"}} : '
                      "memref<128x128xf32>\n" for i in range(4))
            + "  func.func @f(%x: memref<1x128xf32>) {\n"
            + "".join(f"    %w{i} = memory.get_global @w{i} : memref<128x128xf32>\n"
                      for i in range(4))
            + "    %y = memory.alloc : memref<1x128xf32>\n"
            + kernel([("%x", "memref<1x128xf32>")]
                     + [(f"%w{i}", "memref<128x128xf32>") for i in range(4)],
                     [("%y", "memref<1x128xf32>")])
            + "    func.return\n  }\n}\n")
    with pytest.raises(IrtoolError) as err:
        allocate(text, target)
    msg = str(err.value)
    assert "weights (262144 bytes)" in msg
    assert "all memories hold 81920 bytes" in msg and "bytes over" in msg
    assert "int8 weights (irtool compile --quant w8; quantize{scheme=w8})" in msg
    assert "65536 bytes instead of 262144" in msg
    assert "@w0 (weight, 65536 bytes)" in msg


def test_over_budget_with_quantized_weights_suggests_the_classifier(tmp_path):
    """With the linears already int8, the float weight left is the classifier: the advice
    was `--quant w8` again, which the user had given; it is --quantize-lm-head."""
    target = write_target(tmp_path, [
        {"name": "flash", "size": 56 << 10, "read_only": True},
        {"name": "sram", "size": 16 << 10}])
    shapes = {"w0": "memref<128x128xi8>", "w1": "memref<128x128xi8>",
              "head": "memref<128x128xf32>"}
    text = ("builtin.module {\n"
            + "".join(f'  memory.global @{n} {{kind = "weight", weight = "{n}"}} : {t}\n'
                      for n, t in shapes.items())
            + "  func.func @f(%x: memref<1x128xf32>) {\n"
            + "".join(f"    %{n} = memory.get_global @{n} : {t}\n" for n, t in shapes.items())
            + "    %y = memory.alloc : memref<1x128xf32>\n"
            + kernel([("%x", "memref<1x128xf32>")] + [(f"%{n}", t) for n, t in shapes.items()],
                     [("%y", "memref<1x128xf32>")])
            + "    func.return\n  }\n}\n")
    with pytest.raises(IrtoolError) as err:
        allocate(text, target)
    msg = str(err.value)
    assert ("the classifier (and a token table tied to it) quantized too: irtool compile "
            "--quantize-lm-head") in msg
    assert "about 16384 bytes instead of 65536, and the model would fit" in msg
    assert "--quant w8" not in msg


def test_a_buffer_too_large_is_compared_with_the_memories_its_core_reads(tmp_path):
    """siracusa's cluster reads L1 and L2, not L3: a 2 MiB token table was said to be
    "larger than any memory it may live in: the largest memory it may use is l3 (16777216
    bytes)", a memory ten times its size; the largest it may use is L2."""
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({
        "name": "cluster",
        "memories": [{"name": n, "size": size, "alignment": 4, "read_cost": 1,
                      "write_cost": 1, "read_only": False, "description": ""}
                     for n, size in (("l3", 1 << 20), ("l2", 8 << 10), ("l1", 4 << 10))],
        "engines": [{"name": "core", "kind": "cluster", "cores": 1, "reads": ["l1", "l2"],
                     "cpi": 1.0, "description": ""}]}))
    with pytest.raises(IrtoolError, match=r"f/%x0 \(activation, 16384 bytes\) is larger than "
                                          r"any memory it may live in: the largest memory it "
                                          r"may use is l2 \(8192 bytes\)"):
        allocate(chain_module([4096]), str(path))


def test_weights_read_in_place_over_the_reserved_flash(tmp_path):
    """Weights read in place (copy_weights=false) may live only in the Flash, less its
    reserve for the program: over it, the error says so with the bytes (it once blamed the
    packing, or suggested a KV capacity, though the totals with the RAM fit); copied, they
    fit the SRAM."""
    target = write_target(tmp_path, [
        {"name": "flash", "size": 80 << 10, "reserved": 32 << 10, "read_only": True,
         "read_cost": 4, "write_cost": 4},
        {"name": "sram", "size": 128 << 10, "read_cost": 2, "write_cost": 2}])
    text = ("builtin.module {\n"
            + "".join(f'  memory.global @w{i} {{kind = "weight", weight = "w{i}"}} : '
                      "memref<64x64xf32>\n" for i in range(4))
            + "  func.func @f(%x: memref<1x64xf32>) {\n"
            + "".join(f"    %w{i} = memory.get_global @w{i} : memref<64x64xf32>\n"
                      for i in range(4))
            + "    %y = memory.alloc : memref<1x64xf32>\n"
            + kernel([("%x", "memref<1x64xf32>")]
                     + [(f"%w{i}", "memref<64x64xf32>") for i in range(4)],
                     [("%y", "memref<1x64xf32>")])
            + "    func.return\n  }\n}\n")
    with pytest.raises(IrtoolError) as err:
        allocate(text, target, copy_weights=False)
    msg = str(err.value)
    assert ("weights that must stay in read-only memory (65536 bytes): flash holds 49152 "
            "bytes (81920 less 32768 reserved for the program: code, C library, constants): "
            "16384 bytes over") in msg
    assert "CP-SAT" not in msg and "positions" not in msg
    assert "65536 bytes of read-only memory for the weights that must stay there (has 49152)" \
        in msg
    assert_valid_plan(allocate(text, target), target_memories(target))


def test_buffer_larger_than_every_memory(tmp_path):
    target = write_target(tmp_path, [{"name": "sram", "size": 1024}])
    with pytest.raises(IrtoolError, match=r"f/%x0 \(activation, 4096 bytes\) is larger than "
                                          r"any memory it may live in"):
        allocate(chain_module([1024]), target)


# --- real models ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stories_memory_level(shared_models):
    """stories260K at the memory level, with a KV capacity that fits riscv-ulp."""
    from irtool.frontend.load import import_model

    module, _ = import_model(shared_models / "stories260K" / "stories260K.bin")
    spec = "extract-kv-cache{prefill=token-by-token capacity=64},bufferize"
    PassPipeline.parse_spec(get_all_passes(), spec).apply(make_context(), module)
    return module


@pytest.mark.parametrize("target", ["host", "riscv-ulp"])
def test_stories260k_plan_is_valid(stories_memory_level, target):
    module = allocate(stories_memory_level.clone(), target)
    assert_valid_plan(module, target_memories(target))
    if target == "host":
        peak, bound = space_peak(module, "ram")
        assert peak == bound


def test_stories260k_full_cache_does_not_fit_riscv_ulp(shared_models):
    from irtool.frontend.load import import_model

    module, _ = import_model(shared_models / "stories260K" / "stories260K.bin")
    spec = "extract-kv-cache{prefill=token-by-token},bufferize"
    PassPipeline.parse_spec(get_all_passes(), spec).apply(make_context(), module)
    with pytest.raises(IrtoolError) as err:
        allocate(module, "riscv-ulp")
    msg = str(err.value)
    assert "@state.kcache0 (state, 65536 bytes)" in msg
    # the RAM is what is over: the list shows writable buffers, not the 128 KiB token table
    # that stays in Flash (it led the list)
    listed = msg.split("largest writable buffers:\n")[1].split("  what would fit:")[0]
    assert "(weight," not in listed and listed.count("(state, 65536 bytes)") == 5
    assert "irtool compile --capacity " in msg and "extract-kv-cache{capacity=" in msg
    # all 512 positions fit as int8 (`irtool compile --kv int8` builds it: 640 KiB of f32
    # caches become 160 KiB and 80 KiB of scales)
    assert "; or keep the capacity with an int8 KV cache: irtool compile --kv int8" in msg


def test_called_function_arguments_and_results_take_the_placed_types():
    """A function called by another runs while its caller's buffers live: its buffers are kept
    apart from everything, and its signature follows what the call passes."""
    text = """
builtin.module {
  func.func @inner(%b: memref<4xf32>) -> memref<4xf32> {
    %c = memory.alloc : memref<4xf32>
    memory.copy %b, %c : memref<4xf32>, memref<4xf32>
    func.return %c : memref<4xf32>
  }
  func.func @outer() -> memref<4xf32> {
    %a = memory.alloc : memref<4xf32>
    %r = func.call @inner(%a) : (memref<4xf32>) -> memref<4xf32>
    func.return %r : memref<4xf32>
  }
}
"""
    module = allocate(text, "riscv-ulp")
    assert_valid_plan(module, target_memories("riscv-ulp"))
    where = placements(module)
    (sa, oa), (sc, oc) = where["%a"], where["%c"]
    assert sa != sc or abs(oa - oc) >= 16  # %a is live while @inner runs
    inner = next(op for op in module.walk() if op.name == "func.func")
    assert inner.function_type.inputs.data[0] == inner.body.blocks[0].args[0].type
    assert inner.function_type.inputs.data[0].memory_space is not None


def test_checker_catches_broken_plans():
    """The checker is only worth something if it fails on bad plans."""
    from xdsl.dialects.builtin import IntegerAttr, MemRefType, i64

    from irtool.dialects.memory import SpaceAttr
    from tests.plan_checker import check_plan

    memories = target_memories("riscv-ulp")
    module = allocate(LIVENESS, "riscv-ulp")
    allocs = {op.results[0].name_hint: op for op in module.walk() if op.name == "memory.alloc"}
    a, b = allocs["a"], allocs["b"]
    assert placements(module)["%a"][0] == placements(module)["%b"][0] == "dtim"  # hot, small
    assert check_plan(module, memories) == []
    b.properties["offset"] = a.properties["offset"]  # a and b are live together
    assert any("overlap" in e for e in check_plan(module, memories))
    a.properties["offset"] = IntegerAttr(a.properties["offset"].value.data + 2, i64)
    assert any("not aligned" in e for e in check_plan(module, memories))
    a.properties["offset"] = IntegerAttr(70000, i64)
    assert any("beyond dtim" in e for e in check_plan(module, memories))
    t = a.results[0].type
    a.results[0]._type = MemRefType(t.element_type, t.get_shape(), t.layout, SpaceAttr("flash"))
    assert any("read-only" in e for e in check_plan(module, memories))
