"""The tile plan solved in the allocation model (`allocate{tile=true}`, passes/stream_plan.py).

stories260K on cortex-m7-256k with its weights in the external Flash: one CP-SAT model places
every buffer and chooses the windows (size, offsets in SRAM) and each linear's rows per tile.
Checked here against independent recomputations: the windows overlap no buffer of SRAM and fit
its capacity; the plan's modelled time per token is recomputed from the liveness counts, the
description's costs and link, and the chosen tiles; the tile pass applies exactly that plan and
the interpreter gives the untiled logits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from irtool.dialects import memory
from tests.test_tile import TARGET, logits, streamed_weights

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTION = json.loads((ROOT / "targets" / "cortex_m7_256k" / "description.json").read_text())
MAC_CYCLES = 5.0


def _bufferized(models):
    from irtool.compile import CompileOptions, _run, prepare_for_target
    from irtool.frontend.load import import_model

    opts = CompileOptions(target=TARGET, capacity=128)
    module, store = import_model(models / "stories260K" / "stories260K.bin")
    module, store = prepare_for_target(module, store, opts)
    _run(f'bufferize{{target="{TARGET}"}}', module)
    return module, store


@pytest.fixture(scope="module")
def joint(shared_models):
    from irtool.compile import _run
    from irtool.liveness import analyze

    module, store = _bufferized(shared_models)
    before = analyze(module)
    counts = {b.name: (b.reads, b.writes, b.size) for b in before.buffers}
    _run(f'allocate{{target="{TARGET}" copy_weights=false tile=true max_tiles=40}}', module)
    return module, store, counts


def linear_weights(module) -> dict[str, tuple[int, int]]:
    """Every weight a linear reads, wherever it is: name -> (rows, row bytes)."""
    from irtool.passes.tile import LINEARS

    out = {}
    for op in module.walk():
        if isinstance(op, memory.KernelOp) and isinstance(op.computation[0], LINEARS):
            w = dict(zip(op.body.block.args, op.ins, strict=True))[op.computation[0].weight]
            rows, cols = w.type.get_shape()
            out[w.owner.global_name.string_value()] = (rows, cols * 4)
    return out


def _plan(module):
    from irtool.passes.stream_plan import read_window_plan

    plan = read_window_plan(module)
    assert plan is not None
    return plan


def test_windows_sit_in_sram_beside_every_buffer(joint):
    module, _, _ = joint
    plan = _plan(module)
    assert plan.space == "sram" and plan.window > 0 and plan.rows_per_tile
    lo, hi = plan.offsets[0], plan.offsets[1] + plan.window
    assert plan.offsets[1] - plan.offsets[0] >= plan.window
    sram = next(m for m in DESCRIPTION["memories"] if m["name"] == "sram")
    assert hi <= sram["size"] - sram.get("reserved", 0)
    for op in module.walk():
        if isinstance(op, (memory.GlobalOp, memory.AllocOp)):
            space, offset = op.placement
            if space != "sram":
                continue
            t = op.type if isinstance(op, memory.GlobalOp) else op.results[0].type
            size = t.element_type.bitwidth // 8 * math.prod(t.get_shape())
            assert offset + size <= lo or offset >= hi, (op, offset, size, lo, hi)


def test_modelled_time_per_token_recomputes(joint):
    """Accesses at the description's costs per byte, the compute of every linear (5 cycles
    per MAC), and for each linear of the external Flash: streamed,
    max(compute, tiles * set-up + bytes / bytes-per-cycle) + reading the window; read in
    place, compute + bytes * read cost."""
    module, _, counts = joint
    plan = _plan(module)
    assert plan.status in ("OPTIMAL", "FEASIBLE")
    assert plan.bound <= plan.cycles + 1e-6
    cost = {m["name"]: (m["read_cost"], m["write_cost"]) for m in DESCRIPTION["memories"]}
    link = DESCRIPTION["links"][0]
    weights = streamed_weights(module)  # every linear weight in xflash, name -> (rows, row)
    assert set(plan.rows_per_tile) <= set(weights)
    assert len(plan.rows_per_tile) < len(weights)  # 40 tiles cannot stream them all
    placed = {}
    for op in module.walk():
        if isinstance(op, memory.GlobalOp):
            placed[f"@{op.sym_name.data}"] = op.placement[0]
    want = sum(MAC_CYCLES * (row // 4) * rows for name, (rows, row)
               in linear_weights(module).items() if name not in weights)
    for name, (reads, writes, size) in counts.items():
        if name[1:] in weights:
            continue
        if name in placed:
            r, w = cost[placed[name]]
            want += size * (reads * r + writes * w)
        else:  # activations: in SRAM on this target (the only writable memory)
            want += size * (reads * cost["sram"][0] + writes * cost["sram"][1])
    for name, (rows, row) in weights.items():
        compute = MAC_CYCLES * (row // 4) * rows
        nbytes = rows * row
        reads = counts[f"@{name}"][0]  # the linear's read, and a tied embedding's lookup
        want += (reads - 1) * nbytes * cost["xflash"][0]
        if name in plan.rows_per_tile:
            tiles = math.ceil(rows / plan.rows_per_tile[name])
            want += max(compute, tiles * link["setup_cycles"] + nbytes / link["bytes_per_cycle"])
            want += nbytes * cost["sram"][0]
        else:
            want += compute + nbytes * cost["xflash"][0]
    assert plan.cycles == pytest.approx(want, rel=1e-4)


def test_tile_applies_the_joint_plan_and_keeps_the_logits(joint):
    from irtool.compile import _run

    module, store, _ = joint
    plan = _plan(module)
    out = module.clone()
    _run(f'tile{{target="{TARGET}"}}', out)
    out.verify()
    starts = [op for op in out.walk() if isinstance(op, memory.DmaStartOp)]
    tiles: dict[str, int] = {}
    for op in starts:
        name = op.source.owner.source.owner.global_name.string_value()
        tiles[name] = tiles.get(name, 0) + 1
    weights = streamed_weights(module)
    assert tiles == {n: math.ceil(weights[n][0] / r) for n, r in plan.rows_per_tile.items()}
    assert {op.dest.owner.placement for op in starts} == {("sram", o) for o in plan.offsets}
    np.testing.assert_allclose(logits(out, store), logits(module, store), atol=2e-5, rtol=0)
