"""Task adapters streamed through the `tile` pass's windows (issue 10, item 5).

A `transformer.lora` kernel (`--lora`: `y + B_s (A_s x)` with the adapter `s` chosen at run
time) reads the stacks `down [n, R, K]` and `up [n, N, R]` of every adapter. When a stack
sits in a memory the core should not read in place (one with a DMA link to the windows' fast
memory, as `tile` decides for the linears' weights), the kernel is split in two:

* `t = A_s x`: a `transformer.linear` of the input and the slab `A_s [R, K]` of the down
  stack, writing the rank-sized scratch `t [T, R]` (the kernel's second out, planned by the
  allocator: the only SRAM an adapter adds);
* `out = y + B_s t`: a `transformer.lora_up` of `t`, the linear's output and the slab
  `B_s [N, R]`.

The slab is a `memory.adapter_slab` view of the stack: the selected adapter's bytes, its index
read at run time (`irt_lora_slab` in C: the DMA source depends on the adapter the user chose,
and only that adapter's bytes move). Each half then streams like a linear's weight: row tiles
of its slab, DMA'd into the same two windows in program order (after the linear's tiles),
`t`'s rows computed per tile of `A_s`, `out`'s rows per tile of `B_s`. The tile sizes are the
fewest tiles that fit the window the plan chose (rows balanced over them); a slab whose row
does not fit the window stays read in place.

Selecting the base model alone (-1) at run time moves no adapter bytes and runs no adapter
kernel: both halves, and each adapter tile's `memory.dma_start` and `memory.dma_wait`, carry
the run-time guard `adapter_only` (irtool/adapter_guard.py; the half `out = y + B_s t` only
when `out` is `y`, else it runs to copy `y`, reading no slab). The other tiles' queue is the
same either way: a skipped tile's window stays unused until the tile two later fills it.

The plan (`irtool.stream`) counts them: their bytes and tiles, and in its modelled cycles the
adapters' stacks (which the allocation's CP-SAT model charged as read whole in place from the
slow memory) re-counted as streamed: per tile the DMA set-up, the transfer (not assumed hidden:
an upper bound) and the window reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, MemRefType, i64
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from irtool.adapter_guard import guard_by_adapter
from irtool.dialects import memory
from irtool.dialects import transformer as tf
from irtool.passes.stream_plan import memref_bytes, window_link
from irtool.passes.tile import Streamed, _rows
from irtool.targets.description import MemorySpec, TargetDescription


@dataclass(frozen=True)
class AdapterStreamed(Streamed):
    """One half of a split adapter kernel whose slab streams: `weight` is the slab view."""

    @property
    def slab(self) -> memory.AdapterSlabOp:
        owner = self.weight.owner
        assert isinstance(owner, memory.AdapterSlabOp)
        return owner

    def guarded(self, transfer: Operation) -> Operation:
        """Only the selected adapter's bytes move, none for the base model alone."""
        return guard_by_adapter(transfer, self.slab.compiled.value.data)

    def source_rows(self, row: int, rows: int) -> list[Operation]:
        """The stack fetched again where the DMA starts, the selected slab, its rows."""
        stack = self.slab.source
        assert isinstance(stack.owner, memory.GetGlobalOp)
        fetch = memory.GetGlobalOp(stack.owner.global_name.string_value(), stack.type)
        slab = memory.AdapterSlabOp(fetch.result, self.slab.compiled.value.data)
        return [fetch, slab, _rows(slab.result, row, rows)]

    def tile_kernel(self, window: SSAValue, row: int, rows: int, out: SSAValue
                    ) -> tuple[list[Operation], memory.KernelOp]:
        if isinstance(self.linear, tf.LinearOp):  # t[rows of A_s] = A_s[rows] x
            return super().tile_kernel(window, row, rows, out)
        up = self.linear
        assert isinstance(up, tf.LoraUpOp)
        y = memory.SubviewOp(self.operand(up.base), [0, row], [1, rows])
        kernel, body = memory.KernelOp.build([self.operand(up.rank), y.result, window], [out])
        add = tf.LoraUpOp(*body.args, selected=up.selected.value.data)
        body.add_ops([add, memory.YieldOp(add.result)])
        return [y], kernel


def _single(kernel: memory.KernelOp) -> Operation | None:
    body = kernel.computation
    return body[0] if len(body) == 1 else None


def split_adapters(fn: func.FuncOp, target: TargetDescription) -> list[memory.KernelOp]:
    """Split every adapter kernel of `fn` with a stack in a linked (slow) memory into its
    two halves on slabs; returns the new kernels in program order."""
    out = []
    for kernel in list(fn.body.block.ops):
        if not isinstance(kernel, memory.KernelOp):
            continue
        lora = _single(kernel)
        if not isinstance(lora, tf.LoraOp) or len(kernel.outs) != 2:
            continue
        arg = dict(zip(kernel.body.block.args, kernel.ins, strict=True))
        x, y, down, up = (arg[v] for v in (lora.input, lora.base, lora.down, lora.up))
        stacks = (down, up)
        if not all(isinstance(s.owner, memory.GetGlobalOp) for s in stacks):
            continue
        if not any(window_link(target, target.memory(memory.space_of(s.type))) is not None
                   for s in stacks):
            continue
        selected = lora.selected.value.data
        slab_a = memory.AdapterSlabOp(down, selected)
        slab_b = memory.AdapterSlabOp(up, selected)
        result, rank = kernel.outs
        first, body = memory.KernelOp.build([x, slab_a.result], [rank])
        lin = tf.LinearOp(*body.args)
        body.add_ops([lin, memory.YieldOp(lin.result)])
        second, body = memory.KernelOp.build([rank, y, slab_b.result], [result])
        add = tf.LoraUpOp(*body.args, selected=selected)
        body.add_ops([add, memory.YieldOp(add.result)])
        # the base model alone runs neither half: `t` is read by the second alone, which
        # leaves `y` as it is (run it when it must copy `y` into an out buffer of its own)
        guard_by_adapter(first, selected)
        if result is y:
            guard_by_adapter(second, selected)
        Rewriter.insert_op([slab_a, slab_b, first, second], InsertPoint.before(kernel))
        Rewriter.erase_op(kernel)
        out += [first, second]
    return out


def tile_rows(rows: int, row_bytes: int, window: int) -> int:
    """Rows per tile: the fewest tiles that fit `window`, rows balanced over them (0: not
    even one row fits)."""
    most = window // row_bytes if row_bytes else rows
    if most < 1:
        return 0
    tiles = -(-rows // most)
    return -(-rows // tiles)


def adapter_streams(fn: func.FuncOp, target: TargetDescription, fast: MemorySpec,
                    window: int) -> list[tuple[AdapterStreamed, int]]:
    """Split the adapter kernels of `fn` (`split_adapters`) and return the halves whose slab
    streams into `fast`'s windows of `window` bytes, with their rows per tile."""
    out = []
    for kernel in split_adapters(fn, target):
        op = _single(kernel)
        arg = dict(zip(kernel.body.block.args, kernel.ins, strict=True))
        slab = arg[op.weight if isinstance(op, tf.LinearOp) else op.up]
        source = target.memory(memory.space_of(slab.type))
        link = window_link(target, source)
        if link is None or target.memory(link.dest) is not fast:
            continue  # read in place (a fast memory, or one without a link to the windows)
        s = AdapterStreamed(kernel, op, slab, source, fast)
        rows = tile_rows(slab.type.get_shape()[0], s.row_bytes, window)
        if rows:
            out.append((s, rows))
    return out


def in_program_order(fn: func.FuncOp, streams: list[Streamed]) -> list[Streamed]:
    at = {op: i for i, op in enumerate(fn.body.block.ops)}
    return sorted(streams, key=lambda s: at[s.kernel])


def adapter_facts(streams: list[tuple[AdapterStreamed, int]], target: TargetDescription
                  ) -> tuple[dict[str, IntegerAttr], float]:
    """The `irtool.stream` entries of the streamed adapter slabs (bytes and tiles per token)
    and the change of the modelled cycles: their streamed cost instead of the in-place read
    of the whole stacks the allocation charged."""
    tiles = nbytes = 0
    change = 0.0
    for s, rows in streams:
        n = -(-s.weight.type.get_shape()[0] // rows)
        size = memref_bytes(s.weight.type)
        link = target.link(s.source.name, s.window_space.name)
        stack = s.slab.source.type
        assert isinstance(stack, MemRefType)
        change += (n * link.setup_cycles + size / link.bytes_per_cycle
                   + size * s.window_space.read_cost - memref_bytes(stack) * s.source.read_cost)
        tiles += n
        nbytes += size
    if not streams:
        return {}, 0.0
    return {"adapter_tiles": IntegerAttr(tiles, i64),
            "adapter_bytes": IntegerAttr(nbytes, i64)}, change
