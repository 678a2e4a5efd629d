"""riscv-ulp's own lowering rules: kernels chosen from shapes for a single-issue RV32F core.

Put in front of the portable C rules (`PORTABLE_RULES.extended(RULES)`); each returns None
where it does not apply, and the portable rule runs instead.

* fp32 linear layers whose weight is a constant run `irt_linear_packed_f32`: the weight is
  stored in 24-row panels (lower-to-hw marks the global, the emitter packs it), ~2.1
  instructions per multiply-accumulate against ~2.5. An embedding table tied to the
  classifier is then read from the panels too (`irt_embedding_packed_f32`); a weight that
  anything else reads keeps its row-major layout and kernels.
* cached attention with head_dim 8 runs `irt_cached_attention_hd8_f32` (each cached row loaded
  once per pair of query heads, max tracked while scoring, exp without range checks): about
  half the instructions per cached position of the generic kernel.
* rotary embedding with 8-wide heads runs `irt_rope_hd8_f32` (cos/sin in registers across
  the heads, a head per loop turn): under half the instructions of `irt_rope_f32`.
* fusions (`FUSIONS`, after every op has its call): SiLU and the product after it run as
  `irt_silu_mul_f32`; a residual add after a packed linear layer is done on its accumulators
  (`irt_linear_packed_residual_f32`); with head_dim 8 the values' packed linear and the keys'
  rotation write their rows straight into the KV cache (`irt_linear_packed_kv_f32`,
  `irt_rope_hd8_kv_f32`: no copy through `irt_kv_write_f32`).  `LOWERING` is the composed
  rule set.
"""

from __future__ import annotations

import weakref

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from irtool.dialects import hw, memory
from irtool.dialects import transformer as tf
from irtool.kernels import kernel_signature
from irtool.lowering import ArgMap, KernelCall
from irtool.targets.c import fusions
from irtool.targets.c import rules as portable

PANELS = "row_panels24"


def _module(op: Operation) -> ModuleOp | None:
    top = op
    while top.parent_op() is not None:
        top = top.parent_op()
    return top if isinstance(top, ModuleOp) else None


_READS: weakref.WeakKeyDictionary[ModuleOp, dict[str, list[memory.GetGlobalOp]]] = \
    weakref.WeakKeyDictionary()
"""Per module: its memory.get_global ops by global name, found in one scan (lower-to-hw asks
`packable` once per linear layer: a scan per question made it quadratic in the layers)."""


def _global_reads(module: ModuleOp, get: memory.GetGlobalOp) -> list[memory.GetGlobalOp]:
    """The memory.get_global ops of the module that read the global `get` reads (at the top
    level of its functions, where bufferize puts them; a reader missed elsewhere would be
    caught by lower-to-hw's layout check, never emitted).  The index is rebuilt when `get` is
    not in it or one of its ops left the module (a module changed since)."""
    name = get.global_name.root_reference.data
    index = _READS.get(module)
    if index is not None:
        reads = index.get(name, [])
        if any(r is get for r in reads) and all(r.parent is not None for r in reads):
            return reads
    index = {}
    for f in module.ops:
        for region in f.regions:
            for block in region.blocks:
                for op in block.ops:
                    if isinstance(op, memory.GetGlobalOp):
                        index.setdefault(op.global_name.root_reference.data, []).append(op)
    _READS[module] = index
    return index.get(name, [])


def global_reads(buffer: SSAValue) -> list[memory.GetGlobalOp] | None:
    """The memory.get_global ops of the module that read the global `buffer` is read from
    (`buffer` among them), or None when `buffer` is not such a read."""
    owner = buffer.owner
    module = _module(owner) if isinstance(owner, memory.GetGlobalOp) else None
    return None if module is None else _global_reads(module, owner)


def packable(buffer: SSAValue) -> bool:
    """Is `buffer` a memory.global read by linear layers (as their weight) and otherwise only
    by embeddings (as their table)? Then all of them can read it in row panels."""
    gets = global_reads(buffer)
    if gets is None:
        return False
    linears = 0
    for get in gets:
        for use in get.result.uses:
            kernel = use.operation
            if isinstance(kernel, hw.CallOp):  # lowered already: by a kernel reading panels?
                sig = kernel_signature(kernel.kernel)
                if dict(sig.layouts).get(sig.operands[use.index]) != PANELS:
                    return False
                linears += 1  # a panel reader was only chosen for a weight linears read
                continue
            if not isinstance(kernel, memory.KernelOp) or use.index >= len(kernel.ins):
                return False
            inner = kernel.computation[0] if len(kernel.computation) == 1 else None
            arg = kernel.body.block.args[use.index]
            if isinstance(inner, tf.LinearOp) and inner.weight is arg:
                linears += 1
            elif not (isinstance(inner, tf.EmbeddingOp) and inner.table is arg):
                return False
    return linears > 0


def packed_linear(op: tf.LinearOp, arg: ArgMap, outs) -> KernelCall | None:
    f32 = all(str(v.type.element_type) == "f32" for v in (op.input, op.weight))
    if not outs or not f32 or op.acc is not None or not packable(arg(op.weight)):
        return None
    call = portable.linear(op, arg, outs)
    kernel = ("irt_linear_packed_bias_f32" if op.bias is not None
              else "irt_linear_packed_f32")
    return KernelCall(kernel, call.args, call.params)


def packed_embedding(op: tf.EmbeddingOp, arg: ArgMap, outs) -> KernelCall | None:
    """The table of a tied embedding + classifier: read from the panels the classifier uses."""
    if not outs or str(op.table.type.element_type) != "f32" or not packable(arg(op.table)):
        return None
    call = portable.embedding(op, arg, outs)
    return KernelCall("irt_embedding_packed_f32", call.args,
                      {**call.params, "vocab": op.table.type.get_shape()[0]})


def cached_attention_hd8(op: tf.CachedAttentionOp, arg: ArgMap, outs) -> KernelCall | None:
    if op.head_dim.value.data != 8:
        return None
    call = portable.cached_attention(op, arg, outs)
    return KernelCall("irt_cached_attention_hd8_f32", call.args, call.params)


def rope_hd8(op: tf.RopeOp, arg: ArgMap, outs) -> KernelCall | None:
    if op.head_dim.value.data != 8 or op.rotary_dim.value.data != 8:
        return None
    call = portable.rope(op, arg, outs)
    return KernelCall("irt_rope_hd8_f32", call.args, call.params)


RULES = [(tf.LinearOp, packed_linear), (tf.EmbeddingOp, packed_embedding),
         (tf.CachedAttentionOp, cached_attention_hd8), (tf.RopeOp, rope_hd8)]
FUSIONS = [fusions.silu_mul, fusions.residual_linear, fusions.kv_linear, fusions.kv_rope]
LOWERING = portable.PORTABLE_RULES.extended(RULES, FUSIONS)
