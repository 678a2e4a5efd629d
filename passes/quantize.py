"""quantize: float linear layers (and optionally the KV cache) to the `quant` dialect.

    irtool-opt m.mlir -p 'quantize{scheme=w8a8 kv=int8 per-tensor=false quantize-lm-head=false
                                   integer-only=false}'
    irtool-opt m.mlir -p 'quantize{scheme=w4g32 quantize-lm-head=true tied-embedding=true}'

Schemes (the arithmetic is the contract in `irtool.numerics.quant`):
* `w8`: int8 weights, one scale per output channel (`per-tensor=true`: one per matrix), float
  activations -> `quant.wlinear {bits = 8}`;
* `w8a8`: int8 weights and int8 activations with calibrated per-tensor ranges (run
  `calibrate` first) -> `quant.quantize` of each distinct linear input + `quant.qlinear`;
* `w4g32`: 4-bit weights with a scale per group of 32 inputs, packed two per byte ->
  `quant.wlinear {bits = 4, group = 32}`;
* `w1`: sign weights packed eight per byte with alpha per output channel ->
  `quant.wlinear {bits = 1}`; `w1a4` also quantizes activations to 4 bits per group of 32
  with power-of-two scales (`act_bits = 4, act_group = 32`);
* `none`: weights stay float (with `kv=int8`: only the cache is quantized).
The linear producing the logits (lm_head) stays float unless `quantize-lm-head=true`; a linear
whose weight is not a stored `transformer.weight` stays float as well. With
`tied-embedding=true` too (schemes w8, w4g32, w1, w1a4), a token embedding whose table is the
quantized classifier's weight becomes `quant.wembedding` over the same packed rows and scales
(1-bit rows for w1a4), so no float copy of the table stays.

`integer-only=true` (with w8a8) also replaces the non-linear ops by integer approximations
(I-BERT style, `irtool.numerics.intops`): `transformer.rms_norm` -> `quant.int_rms_norm`,
`transformer.silu` -> `quant.int_silu`, `transformer.attention` -> `quant.int_attention` and
`quant.cached_attention {integer_softmax}` (needs kv=int8 when the model has a KV cache).

`kv=int8` (spec 5): after extract-kv-cache, every cache argument becomes
`tensor<LxKVxCxhdxi8>` and gets a scale argument `tensor<LxKVxCxf32>` (appended after the
caches, in the same order, in @prefill and @decode alike, and returned the same way);
`kv_write`/`cached_attention` become `quant.kv_write`/`quant.cached_attention`. Batched
attention (in @prefill, or in @forward before extract-kv-cache) attends over the keys and
values rounded through int8 exactly as the cache stores them (`quant.dynamic_quantize` +
`quant.dequantize` per row of head_dim), so every entry point computes the same thing.

Weights: quantized arrays go to the store as new entries beside the scales
(`<w>.q8` i8, `<w>.q4` / `<w>.q1` packed ui8, `<w>.scale`, `<w>.alpha`, `<w>.m` and
`<w>.in_scale` / `<w>.in_zero_point` for w8a8); float entries no op uses any more are dropped.
The pass reads the store named by the module's `irtool.weights`, writes the new one and points
the module at it. Under a command it goes beside the output the command was asked for, named as
`irtool import` names stores (`irtool-opt -o out/q.mlir` -> `out/q.weights.npz`; a later module
of `--split-input-file` gets one named by its content beside it), or, when the
module goes to stdout, to `<name>.<tag>.<12 hex>.weights.npz` in the current directory, named by
its content (irtool-opt: two runs with other data never share one store; the same weights give
the same file); it is renamed into place only when the whole command succeeded
(irtool.output_safety). Outside a command (the Python API) it goes beside the store it read.
`quantize_module(module, store, options)` does the same in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    BoolAttr,
    DictionaryAttr,
    Float32Type,
    FunctionType,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
    UnitAttr,
)
from xdsl.ir import Block, BlockArgument, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from irtool.dialects import quant as q
from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.ir_names import ACT_RANGE_ATTR, QUANT_ATTR
from irtool.numerics import quant as ref
from irtool.passes.calibrate import act_range
from irtool.weights import STORE_SUFFIX, WeightStore

SCHEMES = ("none", "w8", "w8a8", "w4g32", "w1", "w1a4")
KV_MODES = ("none", "int8")
W4_GROUP = 32
A4_GROUP = 32


@dataclass(frozen=True)
class QuantOptions:
    scheme: str = "w8"
    kv: str = "none"
    per_tensor: bool = False
    quantize_lm_head: bool = False
    tied_embedding: bool = False
    """With quantize_lm_head: a token embedding tied to the classifier reads its quantized rows
    (`quant.wembedding`) instead of keeping the float table."""
    integer_only: bool = False

    def check(self) -> None:
        if self.scheme not in SCHEMES:
            raise IrtoolError(f"quantize: unknown scheme \"{self.scheme}\" (expected one of "
                              f"{', '.join(SCHEMES)})")
        if self.kv not in KV_MODES:
            raise IrtoolError(f"quantize: unknown kv \"{self.kv}\" (expected one of "
                              f"{', '.join(KV_MODES)})")
        if self.per_tensor and self.scheme not in ("w8", "w8a8"):
            raise IrtoolError(f"quantize: per-tensor applies to the int8 schemes w8 and w8a8, "
                              f"not to {self.scheme} (its scales are per group or channel)")
        if self.scheme == "none" and self.kv == "none":
            raise IrtoolError("quantize: scheme=none and kv=none leave nothing to quantize")
        if self.tied_embedding and not self.quantize_lm_head:
            raise IrtoolError("quantize: tied-embedding=true reads the quantized classifier's "
                              "rows, so it needs quantize-lm-head=true")
        if self.integer_only and self.scheme != "w8a8":
            raise IrtoolError(f"quantize: integer-only needs the integer linears of scheme "
                              f"w8a8, not {self.scheme}")

    @property
    def tag(self) -> str:
        """A short name of the options, used in the new store's file name."""
        parts = [] if self.scheme == "none" else [self.scheme]
        if self.kv == "int8":
            parts.append("kv8")
        if self.per_tensor:
            parts.append("pt")
        if self.quantize_lm_head:
            parts.append("lmq")
        if self.tied_embedding:
            parts.append("emb")
        if self.integer_only:
            parts.append("int")
        return "-".join(parts)


def _element_type(dtype: np.dtype):
    kind = np.dtype(dtype)
    if kind == np.float32:
        return Float32Type()
    if kind == np.uint8:
        return IntegerType(8, Signedness.UNSIGNED)
    if kind.kind == "i":
        return IntegerType(8 * kind.itemsize)
    raise IrtoolError(f"quantize: no element type for numpy {kind}")


def lm_head(fn: func.FuncOp) -> tf.LinearOp | None:
    """The linear whose result the function returns first (the logits), if any."""
    ret = fn.body.block.last_op
    if isinstance(ret, func.ReturnOp) and ret.operands:
        owner = ret.operands[0].owner
        if isinstance(owner, tf.LinearOp):
            return owner
    return None


class _Quantizer:
    def __init__(self, module: ModuleOp, store: WeightStore, options: QuantOptions):
        self.module = module
        self.store = store
        self.options = options
        self.arrays: dict[str, np.ndarray] = {}   # new store entries
        self.derived: dict[str, dict[str, str]] = {}   # float weight -> its quantized entries
        self.quantized = 0
        self.kept_float: list[str] = []

    # Store entries ----------------------------------------------------------------------------

    def add_array(self, name: str, array: np.ndarray) -> str:
        """Register a new store entry; a different array under a taken name gets a suffix."""
        candidate, i = name, 1
        while True:
            if candidate in self.store and candidate not in self.arrays:
                pass  # a name of the original store: never overwrite it
            elif candidate not in self.arrays:
                self.arrays[candidate] = np.ascontiguousarray(array)
                return candidate
            elif (self.arrays[candidate].dtype == array.dtype
                  and np.array_equal(self.arrays[candidate], array)):
                return candidate
            candidate, i = f"{name}.{i}", i + 1

    def weight_value(self, cache: dict[str, SSAValue], name: str, before: Operation) -> SSAValue:
        """A `transformer.weight` of entry `name` in this function (one per name)."""
        if name not in cache:
            arr = self.arrays[name]
            op = tf.WeightOp(name, TensorType(_element_type(arr.dtype), list(arr.shape)))
            op.result.name_hint = name.replace(".", "_")
            Rewriter.insert_op(op, _before(before))
            cache[name] = op.result
        return cache[name]

    def weight_entries(self, name: str) -> dict[str, str]:
        """Quantize float weight `name` once: {role: store entry}."""
        if name in self.derived:
            return self.derived[name]
        w = np.asarray(self.store[name], np.float32)
        if w.ndim != 2:
            raise IrtoolError(f"quantize: weight \"{name}\" of a linear is not 2-D: "
                              f"{list(w.shape)}")
        scheme = self.options.scheme
        if scheme in ("w8", "w8a8"):
            qw, s = ref.quantize_weights_w8(w, self.options.per_tensor)
            out = {"q": self.add_array(f"{name}.q8", qw), "scale": s}
        elif scheme == "w4g32":
            qw, s = ref.quantize_weights_w4(w, W4_GROUP)
            out = {"q": self.add_array(f"{name}.q4", ref.pack_int4(qw)),
                   "scale": self.add_array(f"{name}.scale", s)}
        else:
            bits, alpha = ref.quantize_weights_w1(w)
            out = {"q": self.add_array(f"{name}.q1", ref.pack_bits(bits)),
                   "scale": self.add_array(f"{name}.alpha", alpha)}
        if scheme == "w8":
            out["scale"] = self.add_array(f"{name}.scale", out["scale"])
        self.derived[name] = out  # type: ignore[assignment]
        return out  # type: ignore[return-value]

    # Linear layers ----------------------------------------------------------------------------

    def quantize_linears(self, fn: func.FuncOp) -> None:
        head = None if self.options.quantize_lm_head else lm_head(fn)
        targets = []
        for op in [o for o in fn.body.block.ops if isinstance(o, tf.LinearOp)]:
            owner = op.weight.owner
            if op is head:
                continue
            if not isinstance(owner, tf.WeightOp):
                self.kept_float.append(f"a linear in @{fn.sym_name.data} whose weight is "
                                       "computed, not stored")
                continue
            targets.append(op)
        if self.options.scheme == "w8a8":
            for op in targets:
                if act_range(op) is None:
                    raise IrtoolError(
                        f"quantize: scheme w8a8 needs the activation range of every linear "
                        f"input, but the transformer.linear of weight "
                        f"\"{op.weight.owner.weight_name.data}\" in @{fn.sym_name.data} has no "
                        f"{ACT_RANGE_ATTR}: run the calibrate pass first (-p 'calibrate"
                        "{calibration=FILE},quantize{scheme=w8a8}') or pass --calibration FILE "
                        "to irtool quantize")
        weights: dict[str, SSAValue] = {}
        acts: dict[SSAValue, tuple[SSAValue, SSAValue, np.float32]] = {}
        for op in targets:
            self._replace_linear(op, weights, acts)
            self.quantized += 1
        if self.options.tied_embedding and self.options.scheme != "w8a8":
            self._tie_embeddings(fn)

    def _tie_embeddings(self, fn: func.FuncOp) -> None:
        """A token embedding whose table is the weight of a linear just quantized (a classifier
        tied to the embedding, quantized with quantize-lm-head) reads the same quantized rows
        (`quant.wembedding`): the float table would otherwise stay, as large as the classifier
        was."""
        for op in [o for o in fn.body.block.ops if isinstance(o, tf.EmbeddingOp)]:
            owner = op.table.owner
            if not isinstance(owner, tf.WeightOp) or owner.weight_name.data not in self.derived:
                continue
            entries = self.derived[owner.weight_name.data]
            weights: dict[str, SSAValue] = {}  # its own: the classifier's come after it
            wq = self.weight_value(weights, entries["q"], op)
            s_val = self.weight_value(weights, entries["scale"], op)
            bits = {"w8": 8, "w4g32": 4}.get(self.options.scheme, 1)
            new = q.WEmbeddingOp(op.tokens, wq, s_val, dim=op.table.type.get_shape()[1],
                                 bits=bits, group=W4_GROUP if bits == 4 else None)
            Rewriter.replace_op(op, new)

    def _replace_linear(self, op: tf.LinearOp, weights: dict[str, SSAValue],
                        acts: dict) -> None:
        name = op.weight.owner.weight_name.data
        entries = self.weight_entries(name)
        scheme = self.options.scheme
        bias = op.bias
        wq = self.weight_value(weights, entries["q"], op)
        if scheme == "w8a8":
            if op.input not in acts:
                lo, hi = act_range(op)  # type: ignore[misc]
                sx, zx = ref.activation_params(lo, hi)
                s_name = self.add_array(f"{name}.in_scale", np.array([sx], np.float32))
                z_name = self.add_array(f"{name}.in_zero_point", np.array([zx], np.int32))
                s_val = self.weight_value(weights, s_name, op)
                z_val = self.weight_value(weights, z_name, op)
                x_type = op.input.type
                xq = q.QuantizeOp(op.input, s_val, TensorType(IntegerType(8), x_type.get_shape()),
                                  z_val)
                xq.result.name_hint = (op.input.name_hint or "x") + "_q"
                Rewriter.insert_op(xq, _before(op))
                acts[op.input] = (xq.result, z_val, sx)
            xq_val, z_val, sx = acts[op.input]
            # one multiplier per output channel even with a per-tensor weight scale: the
            # integer kernel (irt_linear_w8a8) reads m[n] for every n
            n_out = op.weight.type.get_shape()[0]
            m = np.broadcast_to(ref.w8a8_multiplier(sx, entries["scale"]), (n_out,)).copy()
            m_val = self.weight_value(weights, self.add_array(f"{name}.m", m), op)
            new: Operation = q.QLinearOp(xq_val, wq, m_val, z_val, bias)
        else:
            s_val = self.weight_value(weights, entries["scale"], op)
            if scheme == "w8":
                new = q.WLinearOp(op.input, wq, s_val, bias, bits=8)
            elif scheme == "w4g32":
                new = q.WLinearOp(op.input, wq, s_val, bias, bits=4, group=W4_GROUP)
            elif scheme == "w1":
                new = q.WLinearOp(op.input, wq, s_val, bias, bits=1)
            else:
                new = q.WLinearOp(op.input, wq, s_val, bias, bits=1, act_bits=4,
                                  act_group=A4_GROUP)
        attrs = {k: v for k, v in op.attributes.items() if k != ACT_RANGE_ATTR}
        new.attributes.update(attrs)
        Rewriter.replace_op(op, new)

    # The KV cache -----------------------------------------------------------------------------

    def quantize_kv(self, fn: func.FuncOp) -> None:
        block = fn.body.block
        for op in [o for o in block.ops if isinstance(o, tf.AttentionOp)]:
            hd = op.head_dim.value.data
            for index in (1, 2):  # key, value: rounded through int8 as the cache stores them
                dq = q.DynamicQuantizeOp(op.operands[index], group=hd)
                deq = q.DequantizeOp(dq.result, dq.scales, group=hd)
                hint = op.operands[index].name_hint or ("k" if index == 1 else "v")
                dq.result.name_hint, dq.scales.name_hint = f"{hint}_q", f"{hint}_s"
                deq.result.name_hint = f"{hint}_int8"
                Rewriter.insert_op([dq, deq], _before(op))
                op.operands[index] = deq.result
        cache_ops = [o for o in block.ops if isinstance(o, tf.KVWriteOp | tf.CachedAttentionOp)]
        if not cache_ops:
            return
        roots: list[BlockArgument] = []
        for op in cache_ops:
            caches = [op.cache] if isinstance(op, tf.KVWriteOp) else [op.kcache, op.vcache]
            for c in caches:
                root = _cache_root(c, fn)
                if root not in roots:
                    roots.append(root)
        roots.sort(key=lambda a: a.index)
        scale_of: dict[SSAValue, SSAValue] = {}
        last = roots[-1].index
        for i, root in enumerate(list(roots)):
            t = root.type
            if not isinstance(t.element_type, Float32Type):
                raise IrtoolError(f"quantize: kv=int8 needs f32 KV caches, but argument "
                                  f"#{root.index} of @{fn.sym_name.data} is {t}")
            shape = list(t.get_shape())
            scales = block.insert_arg(TensorType(Float32Type(), shape[:3]), last + 1 + i)
            hint = root.name_hint or f"cache{i}"
            scales.name_hint = hint.replace("cache", "scales") if "cache" in hint else hint + "_s"
            new_root = Rewriter.replace_value_with_new_type(root, TensorType(IntegerType(8),
                                                                             shape))
            scale_of[new_root] = scales
        for op in cache_ops:
            if isinstance(op, tf.KVWriteOp):
                new = q.KVWriteOp(op.cache, scale_of[op.cache], op.new, op.pos,
                                  layer=op.layer.value.data, ring=op.is_ring)
                new.result.name_hint = op.result.name_hint
                if op.result.name_hint:
                    new.result_scales.name_hint = op.result.name_hint.replace("cache", "scales")
                Rewriter.insert_op(new, _before(op))
                op.result.replace_all_uses_with(new.result)
                scale_of[new.result] = new.result_scales
            else:
                new = q.CachedAttentionOp(
                    op.query, op.kcache, scale_of[op.kcache], op.vcache, scale_of[op.vcache],
                    op.end, layer=op.layer.value.data, heads=op.heads.value.data,
                    kv_heads=op.kv_heads.value.data, head_dim=op.head_dim.value.data,
                    scale=op.scale.value.data, ring=op.is_ring)
                new.result.name_hint = op.result.name_hint
                Rewriter.insert_op(new, _before(op))
                op.result.replace_all_uses_with(new.result)
            Rewriter.erase_op(op)
        ret = block.last_op
        assert isinstance(ret, func.ReturnOp)
        outs = list(ret.operands)
        extra = [scale_of[v] for v in outs if v in scale_of]
        Rewriter.replace_op(ret, func.ReturnOp(*outs, *extra))
        fn.function_type = FunctionType.from_lists([a.type for a in block.args],
                                                   [v.type for v in outs + extra])

    # Driver -----------------------------------------------------------------------------------

    def run(self) -> WeightStore:
        fns = [op for op in self.module.body.block.ops if isinstance(op, func.FuncOp)]
        if not fns:
            raise IrtoolError("quantize: the module has no function")
        if self.options.scheme != "none":
            for fn in fns:
                self.quantize_linears(fn)
            if not self.quantized:
                raise IrtoolError("quantize: no transformer.linear with a stored weight to "
                                  "quantize (is the module at the transformer level?)")
        if self.options.kv == "int8":
            kv_ops = [op for op in self.module.walk()
                      if isinstance(op, tf.AttentionOp | tf.KVWriteOp | tf.CachedAttentionOp)]
            if not kv_ops:
                raise IrtoolError("quantize: kv=int8 but the module has no attention or KV "
                                  "cache ops")
            for fn in fns:
                self.quantize_kv(fn)
        if self.options.integer_only:
            integer_nonlinear_ops(self.module)
        for op in list(self.module.walk()):
            if isinstance(op, tf.WeightOp) and not op.result.uses:
                Rewriter.erase_op(op)
        o = self.options
        self.module.attributes[QUANT_ATTR] = DictionaryAttr({
            "scheme": StringAttr(o.scheme), "kv": StringAttr(o.kv),
            "per_tensor": BoolAttr.from_bool(o.per_tensor),
            "lm_head": StringAttr("quantized" if o.quantize_lm_head else "float"),
            **({"integer_only": BoolAttr.from_bool(True)} if o.integer_only else {})})
        return self.new_store()

    def new_store(self) -> WeightStore:
        from irtool.weights import weight_ops

        out = WeightStore()
        for op in weight_ops(self.module):
            name = op.weight_name.data
            if name in out:
                continue
            out.add(name, self.arrays[name] if name in self.arrays else self.store[name])
        return out


def integer_nonlinear_ops(module: ModuleOp) -> None:
    """`integer-only`: RMSNorm, SiLU and the softmax of attention by their integer versions
    (`irtool.numerics.intops`); an op without one is refused rather than left in float."""
    for op in list(module.walk()):
        if isinstance(op, tf.RMSNormOp):
            new: Operation = q.IntRMSNormOp(op.input, op.gamma, op.eps.value.data)
        elif isinstance(op, tf.SiluOp):
            new = q.IntSiluOp(op.input)
        elif isinstance(op, tf.AttentionOp):
            new = q.IntAttentionOp(op)
        elif isinstance(op, q.CachedAttentionOp):
            op.properties["integer_softmax"] = UnitAttr()
            continue
        elif isinstance(op, tf.CachedAttentionOp):
            raise IrtoolError("quantize: integer-only attention reads an int8 KV cache: add "
                              "kv=int8 (--kv int8)")
        elif isinstance(op, tf.GeluOp | tf.SoftmaxOp | tf.LayerNormOp):
            raise IrtoolError(f"quantize: integer-only has no integer version of {op.name} yet "
                              "(RMSNorm, SiLU and attention's softmax have one)")
        else:
            continue
        new.result.name_hint = op.results[0].name_hint
        Rewriter.replace_op(op, new)


def _before(op: Operation):
    from xdsl.rewriter import InsertPoint

    return InsertPoint.before(op)


def _cache_root(value: SSAValue, fn: func.FuncOp) -> BlockArgument:
    """The function argument a cache value comes from through kv_write ops."""
    v = value
    while not isinstance(v, BlockArgument):
        owner = v.owner
        if not isinstance(owner, tf.KVWriteOp):
            raise IrtoolError(f"quantize: a KV cache in @{fn.sym_name.data} is produced by "
                              f"{owner.name}, not by kv_write from a function argument; "
                              "kv=int8 supports caches threaded as extract-kv-cache makes them")
        v = owner.cache
    if not isinstance(v.owner, Block) or v.owner is not fn.body.block:
        raise IrtoolError(f"quantize: a KV cache in @{fn.sym_name.data} is not an argument of "
                          "the function")
    return v


def quantize_module(module: ModuleOp, store: WeightStore,
                    options: QuantOptions) -> tuple[ModuleOp, WeightStore]:
    """Quantize `module` in place; returns it with a new store (the old one is not changed)."""
    options.check()
    if QUANT_ATTR in module.attributes:
        raise IrtoolError(f"quantize: the module is already quantized ({QUANT_ATTR} = "
                          f"{module.attributes[QUANT_ATTR]})")
    new_store = _Quantizer(module, store, options).run()
    module.verify()
    return module, new_store


def quantized_store_path(store_path: str | os.PathLike[str], options: QuantOptions) -> Path:
    """`dir/m.weights.npz` -> `dir/m.<tag>.weights.npz`."""
    p = Path(store_path)
    stem = p.name.removesuffix(STORE_SUFFIX).removesuffix(".npz")
    return p.with_name(f"{stem}.{options.tag}{STORE_SUFFIX}")


@dataclass(frozen=True)
class QuantizePass(ModulePass):
    """Quantize linear layers and/or the KV cache (see the module docstring)."""

    name = "quantize"

    scheme: str = "w8"
    kv: str = "none"
    per_tensor: bool = False
    quantize_lm_head: bool = False
    tied_embedding: bool = False
    integer_only: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from irtool.module_io import load_store
        from irtool.output_safety import current, output_file
        from irtool.weights import set_store_reference, store_path_for, store_reference

        options = QuantOptions(self.scheme, self.kv, self.per_tensor, self.quantize_lm_head,
                               self.tied_embedding,
                               self.integer_only)
        options.check()
        ref_path = store_reference(op)
        if ref_path is None:
            raise IrtoolError("quantize: the module has no irtool.weights store to quantize "
                              "(quantize a module written by 'irtool import')")
        store = load_store(op, "the module")
        _, new_store = quantize_module(op, store, options)
        outputs = current()
        if outputs is None:  # the Python API, no command around: beside the store it read
            out = quantized_store_path(os.path.abspath(ref_path), options)
            with output_file(out, "quantized weight store") as tmp:
                new_store.save(tmp)
        else:  # beside the command's requested output (the current directory for stdout)
            name = (quantized_store_path(ref_path, options).name if outputs.primary is None
                    else store_path_for(outputs.primary).name)
            if outputs.primary is not None and outputs.pending(store_path_for(outputs.primary)):
                # a later module of --split-input-file: OUT.weights.npz is the first one's;
                # this one's store is named by its content when the module is printed
                name = quantized_store_path(ref_path, options).name
            tmp, out = outputs.side_file(name, "quantized weight store")
            new_store.save(tmp)
        set_store_reference(op, os.path.abspath(out))
