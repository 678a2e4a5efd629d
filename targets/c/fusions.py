"""Call fusions: two kernel calls in a row that one kernel runs, chosen after lower-to-hw.

A fusion is a lowering rule over a pattern of calls rather than one op: after every
`memory.kernel` became a `hw.call`, the calls name the buffers that pass between them, so a
pair is fused when the buffer the first call writes is read by the second and touched by
nothing else (in between, or afterwards unless the second call overwrites it), and the
inputs of the first call are not written in between.  The fused call takes the second
call's place; the first is erased, and so is a buffer that nothing uses any more.  Anything
less plain (a buffer used inside a nested region, a view of it) is left unfused.

* `silu_mul`: y = silu(a) * b (SwiGLU's gate and up) as one pass, `irt_silu_mul_f32`, instead
  of a SiLU pass and a product pass over the hidden vector.
* `residual_linear`: r + W x (a residual add after a linear layer) as the linear layer's own
  store, `irt_linear_packed_residual_f32`, when the linear reads packed weights.

* `kv_linear`, `kv_rope`: the new rows of a KV cache written by the kernel that makes them
  (the packed linear of the values, `irt_linear_packed_kv_f32`; the keys' rotation,
  `irt_rope_hd8_kv_f32`) straight into their cache slot, instead of into a buffer that
  `irt_kv_write_f32` then copies: for head_dim 8, the width those kernels store in groups of.

All compute the same float operations in the same order as the calls they replace.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.traits import SymbolTable

from irtool.adapter_guard import adapter_guard
from irtool.dialects import hw, memory
from irtool.kernels import kernel_signature

Fusion = Callable[[ModuleOp], None]


def _positions(value: SSAValue, block: Block, index: dict[Operation, int]) -> list[int] | None:
    """Where in `block` the value is used, or None if some use is elsewhere (nested)."""
    out = []
    for use in value.uses:
        if use.operation.parent_block() is not block:
            return None
        out.append(index[use.operation])
    return out


def _written(op: Operation) -> list[SSAValue]:
    if not isinstance(op, hw.CallOp):
        return list(op.operands)  # anything else: assume it may write what it uses
    sig = kernel_signature(op.kernel)
    return [v for name, v in zip(sig.operands, op.args, strict=False) if name in sig.writes]


def _extent(value: SSAValue) -> tuple[str | None, int, int] | None:
    """(memory space, first byte, end) of a placed buffer; None when not known."""
    owner = value.owner
    if isinstance(owner, memory.GetGlobalOp):
        owner = SymbolTable.lookup_symbol(owner, owner.global_name)
        if owner is None:
            return None
    if not isinstance(owner, memory.AllocOp | memory.GlobalOp) or owner.offset is None:
        return None
    t = value.type
    size = t.element_type.bitwidth // 8
    for d in t.get_shape():
        size *= d
    start = owner.offset.value.data
    return memory.space_of(t), start, start + size


def _may_overlap(a: SSAValue, b: SSAValue) -> bool:
    if a is b:
        return True
    if all(isinstance(v.owner, memory.AllocOp) and v.owner.offset is None for v in (a, b)):
        return False  # two buffers not placed yet
    ea, eb = _extent(a), _extent(b)
    if ea is None or eb is None:
        return True
    return ea[0] == eb[0] and ea[1] < eb[2] and eb[1] < ea[2]


def _fuse_pairs(module: ModuleOp, second: str, first: str, carried: tuple[tuple[int, int], ...],
                build: Callable) -> None:
    """Fuse each call of `second` with the call of `first` that wrote one of its operands:
    `carried` lists (operand index in the second call, index of that buffer among the first
    call's args); `build(first_call, second_call, operand index)` makes the fused call (or
    returns None: not this pair)."""
    blocks = [b for op in module.walk() for r in op.regions for b in r.blocks]
    for block in blocks:
        while _fuse_one(block, second, first, carried, build):
            pass


def _fuse_one(block: Block, second: str, first: str, carried, build) -> bool:
    ops = list(block.ops)
    index = {op: i for i, op in enumerate(ops)}
    for b_pos, b_call in enumerate(ops):
        if not (isinstance(b_call, hw.CallOp) and b_call.kernel == second) or (
                adapter_guard(b_call) is not None):
            continue  # (a call run only with a task adapter is left as it is)
        for arg_pos, out_pos in carried:
            t = b_call.args[arg_pos]
            where = _positions(t, block, index)
            before = [i for i in where or () if i < b_pos]
            if not before:
                continue
            a_pos = max(before)
            a_call = ops[a_pos]
            if not (isinstance(a_call, hw.CallOp) and a_call.kernel == first
                    and a_call.args[out_pos] is t) or adapter_guard(a_call) is not None:
                continue
            if any(i > b_pos for i in where) and t not in _written(b_call):
                continue  # the intermediate is read again: it must stay
            # the first call's inputs are now read at the second's place: nothing in between
            # may write them (or a buffer placed over them)
            inputs = [v for i, v in enumerate(a_call.args) if i != out_pos]
            if any(_may_overlap(w, v) for op in ops[a_pos + 1:b_pos] for w in _written(op)
                   for v in inputs):
                continue
            fused = build(a_call, b_call, arg_pos)
            if fused is None:
                continue
            block.insert_op_before(fused, b_call)
            for op in (b_call, a_call):
                op.detach()
                op.erase()
            owner = t.owner
            if isinstance(owner, memory.AllocOp) and not owner.result.uses:
                owner.detach()
                owner.erase()
            return True
    return False


def silu_mul(module: ModuleOp) -> None:
    """irt_silu_f32(x -> s); irt_mul_f32(s, u -> y)  =>  irt_silu_mul_f32(x, u -> y)."""
    def build(silu: hw.CallOp, mul: hw.CallOp, arg_pos: int):
        x, s = silu.args
        u = mul.args[1 - arg_pos]
        if u is s:
            return None
        return hw.CallOp("irt_silu_mul_f32", (x, u, mul.args[2]), {"n": mul.param("n")})
    _fuse_pairs(module, "irt_mul_f32", "irt_silu_f32", ((0, 1), (1, 1)), build)


def residual_linear(module: ModuleOp) -> None:
    """irt_linear_packed_f32(x, w -> t); irt_add_f32(r, t -> y)  =>
    irt_linear_packed_residual_f32(x, w, r -> y) (y may be r, not x)."""
    def build(linear: hw.CallOp, add: hw.CallOp, arg_pos: int):
        x, w, t = linear.args
        r, y = add.args[1 - arg_pos], add.args[2]
        if r is t or y is x or y is w:
            return None
        return hw.CallOp("irt_linear_packed_residual_f32", (x, w, r, y),
                         {k: linear.param(k) for k in ("T", "K", "N")})
    _fuse_pairs(module, "irt_add_f32", "irt_linear_packed_f32", ((0, 2), (1, 2)), build)


_KV_PARAMS = ("layer", "kv_heads", "capacity", "head_dim", "ring")


def _kv_write_pair(write: hw.CallOp, new: SSAValue) -> bool:
    """Does irt_kv_write_f32 call `write` store rows of 8-wide heads from `new` (not from a
    buffer that is also the cache)?"""
    return write.param("head_dim") == 8 and write.args[0] is not new


def kv_linear(module: ModuleOp) -> None:
    """irt_linear_packed_f32(x, w -> t); irt_kv_write_f32(cache, t, pos)  =>
    irt_linear_packed_kv_f32(x, w, cache, pos), head_dim 8."""
    def build(linear: hw.CallOp, write: hw.CallOp, arg_pos: int):
        x, w, t = linear.args
        cache, pos = write.args[0], write.args[2]
        if not _kv_write_pair(write, t) or cache is x or cache is w:
            return None
        return hw.CallOp("irt_linear_packed_kv_f32", (x, w, cache, pos),
                         {**{k: linear.param(k) for k in ("T", "K", "N")},
                          **{k: write.param(k) for k in _KV_PARAMS}})
    _fuse_pairs(module, "irt_kv_write_f32", "irt_linear_packed_f32", ((1, 2),), build)


def kv_rope(module: ModuleOp) -> None:
    """irt_rope_hd8_f32(x, cos, sin, start -> y); irt_kv_write_f32(cache, y, pos)  =>
    irt_rope_hd8_kv_f32(x, cos, sin, start, cache, pos) (x may be y: rotated in place)."""
    def build(rope: hw.CallOp, write: hw.CallOp, arg_pos: int):
        x, cos, sin, start, y = rope.args
        cache, pos = write.args[0], write.args[2]
        if not _kv_write_pair(write, y) or any(cache is v for v in (x, cos, sin)):
            return None
        if rope.param("heads") != write.param("kv_heads"):
            return None
        return hw.CallOp("irt_rope_hd8_kv_f32", (x, cos, sin, start, cache, pos),
                         {**{k: rope.param(k) for k in ("T", "heads", "rotary_dim", "style")},
                          **{k: write.param(k) for k in _KV_PARAMS}})
    _fuse_pairs(module, "irt_kv_write_f32", "irt_rope_hd8_f32", ((1, 4),), build)
