"""The `tile` pass: linears whose weights sit in a slow memory with a DMA link are split into
row tiles streamed through two SRAM windows; the interpreter runs the tiled memory level and
gives the logits of the untiled one.

The target is cortex-m7-256k (its external Flash has a link to SRAM); the tile counts and
window offsets are recomputed here from the weights' shapes and the pass's stated rule.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp

from irtool.dialects import memory

TARGET = "cortex-m7-256k"
TOKENS = [1, 403, 407, 261, 376]


def _allocated(models, quant: str = "none", kv: str = "none", allocate: str = ""):
    """stories260K after bufferize and allocate (with `allocate`'s extra options) for the
    target (before tile)."""
    from irtool.compile import CompileOptions, _run, prepare_for_target
    from irtool.frontend.load import import_model

    opts = CompileOptions(target=TARGET, capacity=128, quant=quant, kv=kv)
    module, store = import_model(models / "stories260K" / "stories260K.bin")
    module, store = prepare_for_target(module, store, opts)
    _run(f'bufferize{{target="{TARGET}"}},'
         f'allocate{{target="{TARGET}" copy_weights=false {allocate}}}', module)
    return module, store


@pytest.fixture(scope="module")
def allocated(shared_models):
    return _allocated(shared_models)


def tiled(module: ModuleOp, window: int) -> ModuleOp:
    from irtool.compile import _run

    out = module.clone()
    _run(f'tile{{target="{TARGET}" window={window}}}', out)
    out.verify()
    return out


def streamed_weights(module: ModuleOp) -> dict[str, tuple[int, int]]:
    """Weight globals in xflash that a linear reads: name -> (rows, row bytes)."""
    from irtool.passes.tile import LINEARS

    out = {}
    for op in module.walk():
        if isinstance(op, memory.KernelOp) and isinstance(op.computation[0], LINEARS):
            w = dict(zip(op.body.block.args, op.ins, strict=True))[op.computation[0].weight]
            if memory.space_of(w.type) == "xflash":
                rows, cols = w.type.get_shape()
                out[w.owner.global_name.string_value()] = (
                    rows, cols * w.type.element_type.bitwidth // 8)
    return out


def logits(module: ModuleOp, store) -> np.ndarray:
    from irtool.interpreter.runner import ModelRunner

    runner = ModelRunner(module, store)
    state, rows = runner.initial_state(), []
    for pos, tok in enumerate(TOKENS):
        row, state = runner.decode_step(tok, pos, state)
        rows.append(row)
    return np.concatenate(rows)


@pytest.mark.parametrize("window", [4096, 0])
def test_tiled_memory_level_gives_the_same_logits(allocated, window):
    module, store = allocated
    weights = streamed_weights(module)
    assert len(weights) > 20  # most linears of the 5 layers and the classifier
    out = tiled(module, window)
    starts = [op for op in out.walk() if isinstance(op, memory.DmaStartOp)]
    waits = [op for op in out.walk() if isinstance(op, memory.DmaWaitOp)]
    if window:
        want = sum(math.ceil(rows / (window // row)) for rows, row in weights.values())
        assert len(starts) == want
    assert len(starts) == len(waits) >= len(weights)
    # no linear reads the external Flash any more: every one reads a window in SRAM
    assert streamed_weights(out) == {}
    # two windows, alternating, above everything the allocator placed in SRAM
    offsets = [op.dest.owner.placement for op in starts]
    assert {space for space, _ in offsets} == {"sram"}
    assert [o for _, o in offsets[:4]] == [offsets[0][1], offsets[1][1]] * 2
    assert offsets[0][1] != offsets[1][1]
    np.testing.assert_allclose(logits(out, store), logits(module, store), atol=2e-5, rtol=0)


def test_without_a_link_the_weights_are_read_in_place(allocated, tmp_path):
    """The same memories without the DMA link: nothing can stream, nothing is tiled."""
    import json
    from pathlib import Path

    from irtool.compile import _run

    root = Path(__file__).resolve().parents[1]
    desc = json.loads((root / "targets" / "cortex_m7_256k" / "description.json").read_text())
    desc["links"] = []
    path = tmp_path / "no-link.json"
    path.write_text(json.dumps(desc))
    module, _ = allocated
    out = module.clone()
    _run(f'tile{{target="{path}"}}', out)
    assert not any(isinstance(op, memory.DmaStartOp) for op in out.walk())
    assert len(streamed_weights(out)) == len(streamed_weights(module))


@pytest.mark.parametrize("quant", ["w8", "w4g32"])
def test_quantized_linears_stream_with_their_row_scales(shared_models, quant):
    """Weight-quantized linears: the packed rows go through the windows, their per-row (or
    per-row-and-group) scales are read in place through views of the same rows."""
    module, store = _allocated(shared_models, quant, "int8")
    weights = streamed_weights(module)
    assert weights
    out = tiled(module, 4096)
    starts = [op for op in out.walk() if isinstance(op, memory.DmaStartOp)]
    assert len(starts) == sum(math.ceil(rows / (4096 // row)) for rows, row in weights.values())
    assert streamed_weights(out) == {}
    tiled_logits = logits(out, store)
    np.testing.assert_allclose(tiled_logits, logits(module, store), atol=2e-5, rtol=0)
    # one level down: the hw calls on the windows and views give the same numbers
    from irtool.compile import _run

    _run(f'lower-to-hw{{target="{TARGET}"}}', out)
    assert not any(isinstance(op, memory.KernelOp) for op in out.walk())
    np.testing.assert_array_equal(logits(out, store), tiled_logits)


def test_the_tile_plan_is_solved_and_its_modelled_time_recomputes(allocated):
    """With 1 KiB windows and a budget of 20 tiles not every linear can stream: CP-SAT picks
    which (and their tiles); its objective is the modelled time recomputed here from the
    tiled module (5 cycles per MAC, the description's link: 1 / 0.0792 cycles per byte, about
    480/38, and 200 per transfer)."""
    from irtool.compile import _run
    from irtool.ir_names import STREAM_ATTR

    module, store = allocated
    weights = streamed_weights(module)
    out = module.clone()
    _run(f'tile{{target="{TARGET}" window=1024 max_tiles=20}}', out)
    starts = [op for op in out.walk() if isinstance(op, memory.DmaStartOp)]
    assert 0 < len(starts) <= 20
    tiles: dict[str, int] = {}
    for op in starts:
        name = op.source.owner.source.owner.global_name.string_value()
        tiles[name] = tiles.get(name, 0) + 1
    left = streamed_weights(out)
    assert set(tiles) == set(weights) - set(left)
    cpb = 1 / 0.0792
    want = 0.0
    for name, (rows, row) in weights.items():
        compute, transfer = 5 * (row // 4) * rows, rows * row * cpb
        want += (max(compute, 200 * tiles[name] + transfer) if name in tiles
                 else compute + transfer)
    plan = out.attributes[STREAM_ATTR].data
    assert plan["solver"].data == "OPTIMAL"
    assert plan["cycles"].value.data == pytest.approx(want, rel=1e-4)
    assert plan["bound"].value.data <= plan["cycles"].value.data
    np.testing.assert_allclose(logits(out, store), logits(module, store), atol=2e-5, rtol=0)
