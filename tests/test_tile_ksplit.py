"""The `tile` pass cuts weight rows along the reduction dimension when a row does not fit
the window: pieces `[1, C]` of the row-major weight (C < K) streamed through the two
windows, the first piece of each row writing its output (with the bias), the others adding
to it (the linears' `acc` operand). The interpreter at the tiled memory level (and one level
down, at hw) gives the logits of the untiled level.

stories260K on cortex-m7-256k: fp32 rows are 256 bytes (64 inputs) and 688 bytes (the FFN
down-projections, 172 inputs); w4g32 rows 32 and 86 bytes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irtool.dialects import hw, memory, quant
from irtool.dialects import transformer as tf
from tests.test_tile import TARGET, _allocated, logits, streamed_weights


def _source(op: memory.DmaStartOp) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """(weight global, offsets, shape) of what a transfer moves."""
    view = op.source.owner
    return (view.source.owner.global_name.string_value(), view.static_offsets,
            tuple(view.result.type.get_shape()))


def _accumulating(module) -> list:
    return [op for op in module.walk()
            if isinstance(op, (tf.LinearOp, quant.WLinearOp)) and op.acc is not None]


@pytest.fixture(scope="module")
def fp32(shared_models):
    return _allocated(shared_models)


def test_a_window_smaller_than_every_row_streams_pieces_of_rows(fp32):
    """A 192-byte window: no row fits, so a streamed weight goes in pieces of one row; the
    planner's modelled time recomputes from the pieces (5 cycles per MAC, the link's
    12.6 cycles per byte and 200 per transfer) and the logits are the untiled ones."""
    from irtool.compile import _run
    from irtool.ir_names import STREAM_ATTR

    module, store = fp32
    weights = streamed_weights(module)
    out = module.clone()
    _run(f'tile{{target="{TARGET}" window=192}}', out)
    out.verify()
    starts = [op for op in out.walk() if isinstance(op, memory.DmaStartOp)]
    assert starts
    pieces: dict[str, dict[int, list[tuple[int, int]]]] = {}
    for op in starts:
        name, (row, col), (one, cols) = _source(op)
        assert one == 1 and cols * 4 <= 192
        assert tuple(op.dest.type.get_shape()) == (1, cols)
        pieces.setdefault(name, {}).setdefault(row, []).append((col, cols))
    for name, rows in pieces.items():  # every row of a streamed weight, covered exactly
        n, row_bytes = weights[name]
        assert sorted(rows) == list(range(n))
        for spans in rows.values():
            assert len(spans) > 1
            assert [c for c, _ in spans] == list(np.cumsum([0] + [k for _, k in spans[:-1]]))
            assert sum(k for _, k in spans) * 4 == row_bytes
    # one accumulating linear per piece after a row's first
    assert len(_accumulating(out)) == sum(len(s) - 1 for r in pieces.values()
                                          for s in r.values())
    cpb = 1 / 0.0792
    want = 0.0
    for name, (rows, row) in weights.items():
        compute, transfer = 5 * (row // 4) * rows, rows * row * cpb
        tiles = sum(len(s) for s in pieces.get(name, {}).values())
        want += max(compute, 200 * tiles + transfer) if tiles else compute + transfer
    plan = out.attributes[STREAM_ATTR].data
    assert plan["solver"].data == "OPTIMAL"
    assert plan["cycles"].value.data == pytest.approx(want, rel=1e-4)
    assert plan["window"].value.data <= 192
    np.testing.assert_allclose(logits(out, store), logits(module, store), atol=2e-5, rtol=0)


def test_the_joint_plan_cuts_4_bit_rows_on_their_groups(shared_models):
    """w4g32 with the int8 KV cache, windows capped at 48 bytes in the allocation's CP-SAT
    model: the 86-byte rows of the down-projections (172 inputs, 6 groups of 32) stream in
    pieces of 96 and 76 inputs (48 and 38 bytes), each with the scales of its own groups;
    the tiled level, and the hw level below it, give the untiled logits."""
    from irtool.compile import _run
    from irtool.passes.stream_plan import read_window_plan

    module, store = _allocated(shared_models, "w4g32", "int8", "tile=true window=48")
    plan = read_window_plan(module)
    assert plan is not None and plan.status in ("OPTIMAL", "FEASIBLE")
    assert plan.cols_per_tile and set(plan.cols_per_tile.values()) == {96}
    assert plan.window <= 48
    out = module.clone()
    _run(f'tile{{target="{TARGET}"}}', out)
    out.verify()
    chunked = {}
    for op in out.walk():
        if isinstance(op, memory.DmaStartOp):
            name, (row, col), shape = _source(op)
            if name in plan.cols_per_tile:
                assert col % 16 == 0  # a piece starts on a group of 32 4-bit inputs
                chunked.setdefault(name, []).append(shape)
    assert set(chunked) == set(plan.cols_per_tile)
    for shapes in chunked.values():
        assert shapes == [(1, 48), (1, 38)] * 64
    scales = [op for op in out.walk() if isinstance(op, memory.SubviewOp)
              and tuple(op.result.type.get_shape()) == (1, 3) and op.static_offsets[1] == 3]
    assert len(scales) == 64 * len(chunked)  # the second piece's scales: groups 3, 4, 5
    tiled = logits(out, store)
    np.testing.assert_allclose(tiled, logits(module, store), atol=2e-5, rtol=0)
    _run(f'lower-to-hw{{target="{TARGET}"}}', out)
    kernels = {op.kernel for op in out.walk() if isinstance(op, hw.CallOp)}
    assert "irt_linear_w4g_acc" in kernels
    np.testing.assert_array_equal(logits(out, store), tiled)
    assert math.isfinite(float(tiled.sum()))


def test_the_tile_planner_cuts_rows_only_when_they_do_not_fit():
    """One linear of 4 rows of 100 floats (400 bytes), 1,000 compute cycles per row, a link
    of 8 bytes per cycle with 400 cycles of set-up, room for windows of 200 bytes: whole rows
    cannot stream; in 2 pieces per row (8 tiles) the transfer, 8 x 400 + 1,600 / 8 = 3,400,
    hides behind the 4,000 of compute, while 3 pieces (5,000) or reading in place (4,200)
    cost more. Without a way to cut its rows the linear has no plan; with room for whole rows
    it streams them."""
    from irtool.passes.tile_plan import Candidate, Chunking, solve_tile_plan

    def plan(chunking, free=400):
        return solve_tile_plan([Candidate(4, 400, 1000.0, chunking)], free=free, alignment=4,
                               setup_cycles=400, cycles_per_byte=1 / 8, max_tiles=64)

    p = plan(Chunking(100, 1, 32))
    assert p.status == "OPTIMAL" and p.cycles == 4000 and p.bound == 4000
    assert p.rows_per_tile == (1,) and p.cols_per_tile == (50,) and p.window == 200
    assert plan(None) is None
    whole = plan(Chunking(100, 1, 32), free=800)  # one row per window: 4 tiles, no pieces
    assert whole.rows_per_tile == (1,) and whole.cols_per_tile == (0,) and whole.window == 400
