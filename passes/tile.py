"""tile: stream the weights of linears from a slow memory through a double-buffered window.

Target-agnostic: it reads the target's memories, links and core. A linear's weight placed in
a memory M is streamed when the description has a DMA link from M to a writable memory S the
core reads, and reading S costs less per byte than reading M in place (`read_cost`). Each
such weight `[out, in]` is split into row tiles `[R, in]` (contiguous in a row-major weight);
each tile is moved by `memory.dma_start` into one of two windows in S and the linear runs on
the window, writing its rows of the output through a `memory.subview`.

A row that does not fit a window (or whose pieces the plan prefers) is cut along the
reduction dimension: tiles `[1, C]` of one row (`in` cut at multiples of the linear's
`Chunking` unit, passes/stream_plan.py `row_chunking`: a quantization or activation group, a
packed byte), each with the matching view `[1, C]` of x and of per-group scales. The first
piece of a row writes its output element and adds the bias; each later piece is the linear
with an `acc` operand, the output element itself (`y = acc + x W^T`), which the kernel
updates in place. Cut are float and weight-quantized linears (`quant.wlinear`) of one
activation row; W8A8 (`quant.qlinear`) rows are not (their int32 sum is requantized once per
row, bit-exact against the integer reference, and the DSP kernel has no accumulating form).

All streamed tiles of the function form one software pipeline in program order: tile j uses
window j mod 2; tiles 0 and 1 are requested when the function starts, and tile j+2 as soon
as the compute of tile j has freed its window, so every transfer overlaps whatever computes
meanwhile (the tile before it, attention, norms, the next layer's first ops) and the window
being filled is never the one being read. The link serves the requests in order.

Runs after `allocate` (before `lower-to-hw`): the windows take free space of S above the
allocator's plan of what can be live while `@decode` runs (the globals and its own buffers; a
batched `@prefill`'s activations never are, so the windows may share their bytes), both at
fixed offsets; every tile's window buffer is a `memory.alloc` of its
own shape at one of the two offsets. The window size, which linears stream and their rows per
tile are chosen by CP-SAT (passes/tile_plan.py) for the least modelled time per token under
the free space of S (`window` caps it), at most `max_tiles` tiles (each is straight-line code)
and a stated compute estimate (`mac_cycles` per multiply-accumulate); the module attribute
`irtool.stream` keeps the solver's status, objective and lower bound. That is the plan when the
module comes from a plain `allocate` (the windows then use what the allocator left); after
`allocate{tile=true}` the windows, their offsets and every tile size were decided with the
allocation in one CP-SAT model (passes/stream_plan.py) and this pass applies that plan. A
weight none of whose tiles fits a window (a W8A8 row longer than it, or any weight when S has
no room for two pieces) stays where it is, read in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DictionaryAttr,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    i64,
)
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from irtool.adapter_guard import copy_guard
from irtool.dialects import memory, quant
from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.ir_names import STREAM_ATTR
from irtool.liveness import placed_end
from irtool.passes.lower_to_hw import target_for
from irtool.passes.stream_plan import (
    LINEARS,
    WindowPlan,
    check_stream_options,
    linear_kernels,
    read_window_plan,
    row_chunking,
    window_link,
)
from irtool.passes.tile_plan import Candidate, Chunking, TilePlan, solve_tile_plan
from irtool.targets.description import MemorySpec, TargetDescription

__all__ = ["LINEARS", "TilePass", "streamed_linears", "tile_function"]


def element_bytes(t: MemRefType) -> int:
    return t.element_type.bitwidth // 8


def nbytes(t: MemRefType) -> int:
    n = element_bytes(t)
    for d in t.get_shape():
        n *= d
    return n


def _align_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a



@dataclass(frozen=True)
class Streamed:
    """One linear whose weight is streamed: its kernel, weight and where the windows go."""

    kernel: memory.KernelOp
    linear: Operation
    weight: SSAValue
    source: MemorySpec
    window_space: MemorySpec
    chunking: Chunking | None = None
    """How its rows may be cut along K (None: whole rows only)."""

    @property
    def row_bytes(self) -> int:
        t = self.weight.type
        return nbytes(t) // t.get_shape()[0]

    def stored(self, inputs: int) -> int:
        """The weight columns (elements of its storage) holding the first `inputs` inputs
        of a row (a cut is on a whole byte of packed weights, see `row_chunking`)."""
        assert self.chunking is not None
        bits = self.weight.type.element_type.bitwidth
        return min(-(-inputs * self.chunking.bits // bits), self.weight.type.get_shape()[1])

    def guarded(self, transfer: Operation) -> Operation:
        """A DMA op of one of its tiles, as it runs (always: the base model's weights)."""
        return transfer

    def operand(self, inner: SSAValue) -> SSAValue:
        """The kernel's buffer for an operand of the linear."""
        return dict(zip(self.kernel.body.block.args, self.kernel.ins, strict=True))[inner]

    def source_rows(self, row: int, rows: int) -> list[Operation]:
        """Ops ending with the view of rows [row, row+rows) the DMA reads, the weight fetched
        again where the DMA starts (its own get_global may come later in the function)."""
        weight = memory.GetGlobalOp(_global_name(self.weight), self.weight.type)
        return [weight, _rows(weight.result, row, rows)]

    def source_piece(self, row: int, lo: int, hi: int) -> list[Operation]:
        """As `source_rows`, for the stored columns [lo, hi) of one row."""
        weight = memory.GetGlobalOp(_global_name(self.weight), self.weight.type)
        return [weight, memory.SubviewOp(weight.result, [row, lo], [1, hi - lo])]

    def tile_kernel(self, window: SSAValue, row: int, rows: int, out: SSAValue
                    ) -> tuple[list[Operation], memory.KernelOp]:
        """The kernel computing output rows [row, row+rows) from the weight tile in `window`:
        the ops it needs first (views of per-row scales) and the kernel."""
        return self._kernel(window, row, rows, out, None)

    def piece_kernel(self, window: SSAValue, row: int, piece: tuple[int, int],
                     out: SSAValue) -> tuple[list[Operation], memory.KernelOp]:
        """As `tile_kernel` for a `piece` (first input, inputs) of one row cut along K."""
        return self._kernel(window, row, 1, out, piece)

    def _kernel(self, window: SSAValue, row: int, rows: int, out: SSAValue,
                piece: tuple[int, int] | None
                    ) -> tuple[list[Operation], memory.KernelOp]:
        """The kernel of a tile; for a `piece` (first input, inputs) of one row cut along K
        the product of that piece, on the same inputs and scales, added to `out` unless it is
        the first piece (which adds the bias)."""
        pre = []
        col, cols = piece if piece is not None else (0, 0)

        def per_row(inner: SSAValue | None) -> list[SSAValue]:
            """The rows of this tile of a per-output-row operand (bias, scales); of a
            per-group scale `[N, groups]`, the groups of the piece."""
            if inner is None:
                return []
            value = self.operand(inner)
            shape = value.type.get_shape()
            if shape[0] != self.weight.type.get_shape()[0]:
                return [value]  # one for the whole tensor
            if piece is not None and len(shape) == 2:
                group = self.linear.group_size
                view = memory.SubviewOp(value, [row, col // group], [1, -(-cols // group)])
            else:
                view = _rows(value, row, rows)
            pre.append(view)
            return [view.result]

        x = self.operand(self.linear.input)
        bias = per_row(self.linear.bias) if col == 0 else []
        acc: list[SSAValue] = [out] if col > 0 else []
        if piece is not None:
            view = memory.SubviewOp(x, [0, col], [1, cols])
            pre.append(view)
            x = view.result
        if isinstance(self.linear, tf.LinearOp):
            kernel, body = memory.KernelOp.build([x, window, *bias, *acc], [out])
            lin = tf.LinearOp(body.args[0], body.args[1], body.args[2] if bias else None,
                              body.args[-1] if acc else None)
        elif isinstance(self.linear, quant.QLinearOp):  # W8A8: per-row multipliers, one zx
            m = per_row(self.linear.multiplier)
            zx = self.operand(self.linear.input_zero_point)
            kernel, body = memory.KernelOp.build([x, window, *m, zx, *bias], [out])
            lin = quant.QLinearOp(*body.args[:4], *body.args[4:])
        else:
            scale = per_row(self.linear.scale)
            kernel, body = memory.KernelOp.build([x, window, *scale, *bias, *acc], [out])
            q = self.linear
            lin = quant.WLinearOp(*body.args[:3], body.args[3] if bias else None,
                                  bits=q.weight_bits, group=q.group_size,
                                  act_bits=q.activation_bits, act_group=q.activation_group,
                                  acc=body.args[-1] if acc else None)
        body.add_ops([lin, memory.YieldOp(lin.result)])
        return pre, kernel


def streamed_linears(fn: func.FuncOp, target: TargetDescription) -> list[Streamed]:
    """The linears of `fn` whose weight sits in a memory with a cheaper, linked window space."""
    out = []
    for k in linear_kernels(fn):
        space = memory.space_of(k.weight.type)
        if space is None:
            raise IrtoolError("tile: buffers have no memory space; run allocate before tile")
        src = target.memory(space)
        link = window_link(target, src)
        if link is not None:
            out.append(Streamed(k.kernel, k.linear, k.weight, src, target.memory(link.dest),
                                row_chunking(k)))
    return out


def _rows(source: SSAValue, row: int, rows: int) -> memory.SubviewOp:
    """Rows [row, row+rows) of a buffer (its leading dimension: contiguous)."""
    shape = source.type.get_shape()
    return memory.SubviewOp(source, [row, *[0] * (len(shape) - 1)], [rows, *shape[1:]])


def _subview_cols(source: SSAValue, col: int, cols: int) -> memory.SubviewOp:
    """Columns [col, col+cols) of a [1, n] buffer (contiguous: one row)."""
    return memory.SubviewOp(source, [0, col], [1, cols])


@dataclass(frozen=True)
class TilePass(ModulePass):
    """Stream linears' weights through a double-buffered window (see the module docstring)."""

    name = "tile"
    target: str | None = None
    window: int = 0
    """Cap on the window's bytes (0: as large as fits twice in the free fast memory)."""
    max_tiles: int = 256
    """Most tiles per decode step (each is straight-line code: about 60 bytes of Thumb-2)."""
    mac_cycles: float | int = 5.0
    """Modelled compute cycles per multiply-accumulate of a linear (an estimate: the fp32
    matrix-vector loop on the Cortex-M7 is 5 instructions per MAC, at CPI 1). `int` too, so
    that `mac-cycles=5` parses as well as `mac-cycles=5.0`."""
    time_limit: float | int = 5.0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from irtool.run_limits import check_time_limit

        check_stream_options("tile", self.window, self.max_tiles, self.mac_cycles)
        check_time_limit(self.time_limit, "tile: time_limit")
        if not any(isinstance(o, (memory.GlobalOp, memory.AllocOp)) for o in op.walk()):
            # else a transformer-level module would pass through silently, its weights unstreamed
            raise IrtoolError("tile: the module has no memory.global or memory.alloc: it is not "
                              "at the memory level; run bufferize and allocate first (e.g. -p "
                              "'extract-kv-cache{capacity=N prefill=token-by-token},bufferize,"
                              "allocate,tile')")
        target = target_for(self.target, op).description  # allocate's target by default
        for fn in op.body.block.ops:
            if isinstance(fn, func.FuncOp) and fn.sym_name.data == "decode":
                tile_function(op, fn, target, self.window, self.max_tiles, self.mac_cycles,
                              self.time_limit)


def tile_function(module: ModuleOp, fn: func.FuncOp, target: TargetDescription,
                  cap: int, max_tiles: int = 256, mac_cycles: float = 5.0,
                  time_limit: float = 5.0) -> None:
    streams = streamed_linears(fn, target)
    if not streams:
        return
    fast = streams[0].window_space
    streams = [s for s in streams if s.window_space is fast]
    align = max(fast.alignment, 4)
    joint = read_window_plan(module)
    if joint is not None:  # solved with the allocation: apply it
        plan: TilePlan | WindowPlan = joint
        rows_of = {id(s): (joint.rows_per_tile[_global_name(s.weight)],
                           joint.cols_per_tile.get(_global_name(s.weight), 0))
                   for s in streams if _global_name(s.weight) in joint.rows_per_tile}
        base, window, offsets = joint.offsets[0], joint.window, joint.offsets
    else:
        link = target.link(streams[0].source.name, fast.name)
        base = _align_up(placed_end(module, fast.name, fn.sym_name.data), align)
        candidates = [Candidate(s.weight.type.get_shape()[0], s.row_bytes,
                                mac_cycles * s.operand(s.linear.input).type.get_shape()[-1],
                                s.chunking)
                      for s in streams]
        plan = solve_tile_plan(candidates, fast.capacity - base, align, link.setup_cycles,
                               1.0 / link.bytes_per_cycle, max_tiles, cap, time_limit,
                               tile_cycles=target.core.fork_join_cycles)
        if plan is None or not any(plan.rows_per_tile):
            return  # no room for two windows of one tile: the weights are read in place
        rows_of = {id(s): (r, c) for s, r, c in zip(streams, plan.rows_per_tile,
                                                     plan.cols_per_tile, strict=True) if r}
        window = plan.window
        offsets = (base, base + _align_up(window, align))
    streams = [s for s in streams if id(s) in rows_of]
    if not streams:
        return
    # task adapters' matrices stream through the same windows (passes/lora_stream.py)
    from irtool.passes.lora_stream import adapter_facts, adapter_streams, in_program_order

    adapters = adapter_streams(fn, target, fast, window)
    rows_of.update((id(s), (rows, 0)) for s, rows in adapters)
    streams = in_program_order(fn, [*streams, *(s for s, _ in adapters)])
    facts, change = adapter_facts(adapters, target)

    # the tiles in program order: (stream, first row, rows, piece of the row or None)
    tiles = []
    for s in streams:
        out_rows, (per_tile, cols) = s.weight.type.get_shape()[0], rows_of[id(s)]
        if cols:  # pieces of one row along K: (first input, inputs)
            k = s.chunking.elements
            tiles += [(s, r, 1, (c, min(cols, k - c))) for r in range(out_rows)
                      for c in range(0, k, cols)]
        else:
            tiles += [(s, r, min(per_tile, out_rows - r), None)
                      for r in range(0, out_rows, per_tile)]

    block = fn.body.block
    first = block.first_op
    tokens: list[SSAValue | None] = [None] * len(tiles)
    windows: list[SSAValue | None] = [None] * len(tiles)

    def start(j: int, before: Operation) -> None:
        s, row, rows, piece = tiles[j]
        shape = s.weight.type.get_shape()
        lo, hi = (0, shape[1]) if piece is None else (s.stored(piece[0]),
                                                      s.stored(piece[0] + piece[1]))
        win_t = MemRefType(s.weight.type.element_type, [rows, hi - lo],
                           memory_space=memory.SpaceAttr(fast.name))
        win = memory.AllocOp(win_t, offsets[j % 2], align)
        # the window alloc at the function's start, so every use comes after it
        Rewriter.insert_op(win, InsertPoint.before(first))
        src = s.source_rows(row, rows) if piece is None else s.source_piece(row, lo, hi)
        dma = s.guarded(memory.DmaStartOp(src[-1].results[0], win.result))
        Rewriter.insert_op([*src, dma], InsertPoint.before(before))
        tokens[j], windows[j] = dma.token, win.result

    # both windows are empty when the function starts: the first two transfers start there
    for j in range(min(2, len(tiles))):
        start(j, first)
    by_kernel: dict[memory.KernelOp, list[int]] = {}
    for j, (s, _, _, _) in enumerate(tiles):
        by_kernel.setdefault(s.kernel, []).append(j)
    for kernel, js in by_kernel.items():
        s = tiles[js[0]][0]
        y = kernel.outs[0]
        for j in js:
            _, row, rows, piece = tiles[j]
            wait = s.guarded(memory.DmaWaitOp(tokens[j]))
            Rewriter.insert_op(wait, InsertPoint.before(kernel))
            out = _subview_cols(y, row, rows)
            pre, new = (s.tile_kernel(windows[j], row, rows, out.result) if piece is None
                        else s.piece_kernel(windows[j], row, piece, out.result))
            copy_guard(kernel, new)  # a kernel run only with a task adapter: each tile too
            Rewriter.insert_op([out, *pre, new], InsertPoint.before(kernel))
            if j + 2 < len(tiles):  # tile j's window is free again: fetch tile j+2 into it
                start(j + 2, kernel)
        Rewriter.erase_op(kernel)
    streamed = sum(nbytes(s.weight.type) for s in streams)
    used = max(offsets[j % 2] + nbytes(windows[j].type) for j in range(len(tiles)))
    module.attributes[STREAM_ATTR] = DictionaryAttr({
        "space": memory.SpaceAttr(fast.name),
        "window": IntegerAttr(window, i64), "offset": IntegerAttr(base, i64),
        "end": IntegerAttr(used, i64),
        "solver": StringAttr(plan.status),
        # what `cycles` models: the linears alone, or (solved with the allocation) the token
        "scope": StringAttr("time per token" if joint is not None else "linears"),
        "cycles": IntegerAttr(round(plan.cycles + change), i64),
        "bound": IntegerAttr(math.floor(plan.bound + change), i64),
        "tiles": IntegerAttr(len(tiles), i64), "bytes": IntegerAttr(streamed, i64), **facts})


def _global_name(weight: SSAValue) -> str:
    owner = weight.owner
    if not isinstance(owner, memory.GetGlobalOp):
        raise IrtoolError("tile: a streamed weight must be a memory.get_global of a weight "
                          f"global, got {owner}")
    return owner.global_name.string_value()
