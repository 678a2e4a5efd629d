"""Interpreter implementations of the `memory` dialect: buffers are numpy arrays.

The point of this level is to check where data lives, so buffers are modelled as the hardware
sees them. A buffer with a placement (a `#memory.space<name>` in its type and an `offset`) is a
numpy view into ONE bytearray per memory space, at exactly that byte offset: two buffers the
allocator overlaps share bytes and corrupt each other here as they would on the chip, so a
wrong allocation plan breaks the numbers instead of passing silently. Unplaced buffers are
ordinary arrays.

Because numpy computes a kernel's whole result before storing it, an out buffer placed on top
of one of its own ins would still give the right numbers here, where the C kernel, writing
while it reads, gives garbage. So before a kernel runs, the bytes of each out buffer that
overlap an in buffer of the same kernel that is another buffer (another SSA value, looking
through `memory.subview`) are poisoned: NaN for floats, the byte pattern 0xA5 for integers
(`poison_overlapping_outs`, used by the hw level too). An out that IS one of its ins (the same
value, updated in place on purpose, e.g. a KV cache) is left alone.

Like a loader, the first time a module runs in an interpreter its weight globals are copied
from the store (into their arena bytes when placed) and its state globals are zeroed; state
then persists across calls of that interpreter (a KV cache between decode steps).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.interpreter import (
    Interpreter,
    InterpreterFunctions,
    ReturnedValues,
    impl,
    impl_terminator,
    register_impls,
)
from xdsl.ir import SSAValue

from irtool.adapter_guard import runs_compiled
from irtool.dialects import memory as mem
from irtool.errors import IrtoolError
from irtool.weights import WeightStore, numpy_dtype


def buffer_nbytes(t: MemRefType) -> int:
    """Bytes of a static buffer of type `t`."""
    return math.prod(t.get_shape()) * numpy_dtype(t).itemsize


def _placed_ops(module: ModuleOp):
    """Every op of `module` that creates storage at a fixed (space, offset)."""
    for op in module.walk():
        if isinstance(op, (mem.GlobalOp, mem.AllocOp)):
            space, offset = op.placement
            if space is not None and offset is not None:
                yield op, space, offset


def _storage_type(op: mem.GlobalOp | mem.AllocOp) -> MemRefType:
    return op.type if isinstance(op, mem.GlobalOp) else op.result.type


def arena_sizes(module: ModuleOp) -> dict[str, int]:
    """Bytes each memory space needs: the furthest end of a buffer placed in it."""
    sizes: dict[str, int] = {}
    for op, space, offset in _placed_ops(module):
        end = offset + buffer_nbytes(_storage_type(op))
        sizes[space] = max(sizes.get(space, 0), end)
    return sizes


@dataclass
class DmaToken:
    """The handle `memory.dma_start` returns; transfers complete at once in the interpreter."""

    source: np.ndarray
    dest: np.ndarray
    waited: bool = False
    skipped: bool = False
    """Not started: a task adapter's transfer while the base model alone runs."""


@dataclass
class MemoryState:
    """The memories of one running module: an arena per space and the globals' buffers."""

    arenas: dict[str, bytearray]
    globals: dict[str, np.ndarray] = field(default_factory=dict)

    def view(self, t: MemRefType, space: str, offset: int) -> np.ndarray:
        """The buffer of type `t` at byte `offset` of `space`'s arena (shares its bytes)."""
        dtype = numpy_dtype(t)
        shape = tuple(t.get_shape())
        return np.frombuffer(self.arenas[space], dtype=dtype, count=math.prod(shape),
                             offset=offset).reshape(shape)

    def buffer(self, t: MemRefType, placement: tuple[str | None, int | None]) -> np.ndarray:
        """A placed buffer is an arena view; an unplaced one is a fresh zeroed array."""
        space, offset = placement
        if space is not None and offset is not None:
            return self.view(t, space, offset)
        return np.zeros(tuple(t.get_shape()), dtype=numpy_dtype(t))

    @classmethod
    def load(cls, module: ModuleOp, store: WeightStore) -> MemoryState:
        """Size the arenas from the placements, then copy weights in and zero the state."""
        state = cls({space: bytearray(n) for space, n in arena_sizes(module).items()})
        for op in module.ops:
            if isinstance(op, mem.GlobalOp):
                state.globals[op.sym_name.data] = state._init_global(op, store)
        return state

    def _init_global(self, op: mem.GlobalOp, store: WeightStore) -> np.ndarray:
        buf = self.buffer(op.type, op.placement)
        if op.kind.data == "state":
            buf[...] = 0
            return buf
        name = op.weight.data
        if name not in store:
            raise IrtoolError(f"memory.global @{op.sym_name.data}: the weight store has no "
                              f"weight \"{name}\" (the store does not belong to this module)")
        data = store[name]
        if tuple(data.shape) != buf.shape or data.dtype != buf.dtype:
            raise IrtoolError(f"memory.global @{op.sym_name.data}: weight \"{name}\" is "
                              f"{data.dtype}{list(data.shape)} in the store but {op.type} in "
                              "the IR")
        buf[...] = data  # a copy: the running program may never write into the store
        return buf


@register_impls
class MemoryFunctions(InterpreterFunctions):
    """Runs `memory` ops on numpy buffers; weights come from the module's store.

    The memories live in the interpreter (`interpreter.get_data`), so one MemoryFunctions can
    serve several interpreters, each with its own arenas and state.
    """

    def __init__(self, store: WeightStore):
        self.store = store

    def memory(self, interpreter: Interpreter) -> MemoryState:
        """This interpreter's memories, loaded on first use."""
        return interpreter.get_data(MemoryFunctions, "memory",
                                    lambda: MemoryState.load(interpreter.module, self.store))

    @impl(mem.GlobalOp)
    def run_global(self, interpreter: Interpreter, op: mem.GlobalOp, args):
        return ()  # a declaration: its buffer is made when the module is loaded

    @impl(mem.GetGlobalOp)
    def run_get_global(self, interpreter: Interpreter, op: mem.GetGlobalOp, args):
        name = op.global_name.root_reference.data
        globals_ = self.memory(interpreter).globals
        if name not in globals_:
            raise IrtoolError(f"memory.get_global: no memory.global @{name} in the module")
        return (globals_[name],)

    @impl(mem.AllocOp)
    def run_alloc(self, interpreter: Interpreter, op: mem.AllocOp, args):
        return (self.memory(interpreter).buffer(op.result.type, op.placement),)

    @impl(mem.DeallocOp)
    def run_dealloc(self, interpreter: Interpreter, op: mem.DeallocOp, args):
        return ()  # arena bytes are reused by the plan, plain arrays by the garbage collector

    @impl(mem.KernelOp)
    def run_kernel(self, interpreter: Interpreter, op: mem.KernelOp, args):
        if not runs_compiled(op):  # a task adapter's kernel, the base model alone chosen
            return ()
        n_ins = len(op.ins)
        ins = tuple(_read_only(v) for v in args[:n_ins])
        outs = args[n_ins:]
        poison_overlapping_outs(zip(op.outs, outs, strict=True),
                                zip(op.ins, args[:n_ins], strict=True))
        values = interpreter.run_ssacfg_region(op.body, ins, "memory.kernel")
        for i, (out, value) in enumerate(zip(outs, values, strict=True)):
            value = np.asarray(value)
            if value.shape != out.shape:
                raise IrtoolError(f"memory.kernel: yielded value {i} has shape "
                                  f"{list(value.shape)}, its out buffer {list(out.shape)}")
            out[...] = value  # numpy copes with overlap, so in-place outs are safe
        return ()

    @impl_terminator(mem.YieldOp)
    def run_yield(self, interpreter: Interpreter, op: mem.YieldOp, args):
        return ReturnedValues(args), ()

    @impl(mem.CopyOp)
    def run_copy(self, interpreter: Interpreter, op: mem.CopyOp, args):
        source, dest = args
        if not runs_compiled(op):
            return ()
        dest[...] = source
        return ()

    @impl(mem.SubviewOp)
    def run_subview(self, interpreter: Interpreter, op: mem.SubviewOp, args):
        (source,) = args
        window = tuple(slice(o, o + n) for o, n in zip(op.static_offsets,
                                                       op.result.type.get_shape(), strict=True))
        return (source[window],)

    @impl(mem.AdapterSlabOp)
    def run_adapter_slab(self, interpreter: Interpreter, op: mem.AdapterSlabOp, args):
        (source,) = args
        return (source[op.slab],)

    @impl(mem.DmaStartOp)
    def run_dma_start(self, interpreter: Interpreter, op: mem.DmaStartOp, args):
        source, dest = args
        if not runs_compiled(op):  # an adapter's bytes, the base model alone chosen: the
            return (DmaToken(source, dest, skipped=True),)  # wait skips it as well
        dest[...] = source
        return (DmaToken(source, dest),)

    @impl(mem.DmaWaitOp)
    def run_dma_wait(self, interpreter: Interpreter, op: mem.DmaWaitOp, args):
        (token,) = args
        if not isinstance(token, DmaToken):
            raise IrtoolError(f"memory.dma_wait: {token!r} is not a DMA token")
        if token.skipped != (not runs_compiled(op)):
            raise IrtoolError("memory.dma_wait: the transfer and its wait must carry the same "
                              f"adapter_only guard ({op})")
        if token.skipped:
            return ()
        token.waited = True
        return ()


def _read_only(value):
    """A kernel reads its ins: give them as read-only views, so only `outs` can change."""
    if isinstance(value, np.ndarray):
        view = value.view()
        view.flags.writeable = False
        return view
    return value


# --- poisoning outs that overlap another in of the same kernel ----------------------------------

POISON_BYTE = 0xA5
"""Fills the overlapping elements of an integer out buffer (floats get NaN)."""


def root_buffer(value: SSAValue) -> SSAValue:
    """The buffer a value is a view of (through `memory.subview`), or the value itself."""
    while (source := mem.view_source(value.owner)) is not None:
        value = source
    return value


def poison_overlapping_outs(outs: Iterable[tuple[SSAValue, Any]],
                            ins: Iterable[tuple[SSAValue, Any]]) -> None:
    """Poison the elements of each out array whose bytes overlap an in array of another buffer
    (see the module docstring). Arrays only; scalars and tokens are skipped."""
    ins = [(root_buffer(v), a) for v, a in ins if isinstance(a, np.ndarray) and a.size]
    for value, out in outs:
        if not isinstance(out, np.ndarray) or not out.size:
            continue
        root = root_buffer(value)
        for in_root, a in ins:
            if in_root is not root and np.may_share_memory(out, a):
                _poison(out, _overlapping_elements(out, a))


def _address_range(a: np.ndarray) -> tuple[int, int]:
    """[first byte, one past the last byte) spanned by an array (non-negative strides)."""
    start = a.__array_interface__["data"][0]
    span = sum((n - 1) * s for n, s in zip(a.shape, a.strides, strict=True))
    return start, start + span + a.itemsize


def _byte_view(mask: np.ndarray, base: int, a: np.ndarray) -> np.ndarray:
    """`a`'s bytes as a [*a.shape, itemsize] view of a byte mask starting at address `base`."""
    offset = a.__array_interface__["data"][0] - base
    return np.lib.stride_tricks.as_strided(mask[offset:], a.shape + (a.itemsize,),
                                           a.strides + (1,), writeable=True)


def _overlapping_elements(out: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Boolean mask of the elements of `out` that share a byte with `a`."""
    (o_lo, o_hi), (a_lo, a_hi) = _address_range(out), _address_range(a)
    base = min(o_lo, a_lo)
    mask = np.zeros(max(o_hi, a_hi) - base, bool)
    _byte_view(mask, base, a)[...] = True
    return _byte_view(mask, base, out).any(axis=-1)


def _poison(out: np.ndarray, where: np.ndarray) -> None:
    if np.issubdtype(out.dtype, np.floating):
        out[where] = np.nan
    else:
        out[where] = np.frombuffer(bytes([POISON_BYTE]) * out.itemsize, out.dtype)[0]
