"""The `transformer` dialect: the tensor-level graph of a decoder-only language model.

This is the first level of irtool. Values are tensors with value semantics; activations are
2-D `[tokens, features]` (the batch of one is implicit, the token count may be dynamic `?`),
and attention heads are folded into the feature axis (`[T, heads * head_dim]`) so that every
op has one obvious kernel. Weights are never constants in the text: `transformer.weight`
names an entry of the module's weight store (see `irtool.weights`).

Conventions shared by all ops:
* `linear` computes `x @ w^T (+ b)` with `w` in the PyTorch `[out, in]` layout.
* `rope` and `position_embedding` take an optional `start` position (an `index`): the row of
  the first token. The whole-sequence forward leaves it out (start 0); a decode step passes it.
* `attention` with `causal` aligns the *ends* of the query and key sequences: query `i` of `T`
  sees keys `j <= i + (S - T)`, so a one-token decode step over a cache of `S` keys sees all.
  An optional `window = W` restricts query `i` further to the last `W` keys up to its own.
* A KV cache is a tensor `[layers, kv_heads, capacity, head_dim]` threaded through the decode
  step as a value: `kv_write` returns the updated cache and `cached_attention` reads it. Position
  `p` lives in slot `p` (linear cache) or slot `p % capacity` (`ring`, for window mode).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    AnyFloat,
    BoolAttr,
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

DYNAMIC = DYNAMIC_INDEX  # xDSL's marker for a `?` dimension

ROPE_STYLES = ("interleaved", "rotate_half")
GELU_APPROXIMATIONS = ("none", "tanh")


def _shape(op: IRDLOperation, what: str, value: SSAValue) -> tuple[int, ...]:
    t = value.type
    if not isinstance(t, TensorType):
        raise VerifyException(f"{op.name}: {what} must be a tensor, got {t}")
    return tuple(t.get_shape())


def _dims_agree(a: int, b: int) -> bool:
    return a == DYNAMIC or b == DYNAMIC or a == b


def _fmt(shape: Sequence[int]) -> str:
    return "x".join("?" if d == DYNAMIC else str(d) for d in shape) or "scalar"


def _expect_rank(op: IRDLOperation, what: str, value: SSAValue, rank: int) -> tuple[int, ...]:
    shape = _shape(op, what, value)
    if len(shape) != rank:
        raise VerifyException(f"{op.name}: {what} must have rank {rank}, got {_fmt(shape)}")
    return shape


def _expect_same(op: IRDLOperation, what: str, got: Sequence[int], want: Sequence[int]) -> None:
    if len(got) != len(want) or not all(_dims_agree(a, b) for a, b in zip(got, want, strict=True)):
        raise VerifyException(f"{op.name}: {what} is {_fmt(got)}, expected {_fmt(want)}")


def _f32(value: float) -> FloatAttr:
    return FloatAttr(value, Float32Type())


def _i64(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


def verify_heads(op: IRDLOperation, query: SSAValue) -> tuple[int, int, int, int, int]:
    """The head attributes of an attention op against its `[T, heads * head_dim]` query;
    returns (T, query features, heads, kv_heads, head_dim)."""
    h, kvh, hd = (op.heads.value.data, op.kv_heads.value.data, op.head_dim.value.data)
    if h <= 0 or kvh <= 0 or hd <= 0:
        raise VerifyException(f"{op.name}: heads, kv_heads and head_dim must be positive")
    if h % kvh:
        raise VerifyException(f"{op.name}: heads ({h}) must be a multiple of kv_heads ({kvh})")
    t, dq = _expect_rank(op, "query", query, 2)
    if dq != DYNAMIC and dq != h * hd:
        raise VerifyException(f"{op.name}: query has {dq} features, expected heads * "
                              f"head_dim = {h * hd}")
    return t, dq, h, kvh, hd


def _check_positions(op: IRDLOperation, t: int, rows: int) -> None:
    """`t` tokens read `t` consecutive rows of a position table of `rows` rows, from row 0 or
    from `start >= 0`: when both are static they must fit, whatever `start` is. Past the table
    there is no row to read, and the result could not have the `t` rows it declares."""
    if DYNAMIC not in (t, rows) and t > rows:
        raise VerifyException(f"{op.name}: {t} tokens need {t} consecutive rows of the "
                              f"position table, which has {rows}")


def _expect_float(op: IRDLOperation, what: str, value: SSAValue) -> None:
    """Activations are floats: an integer tensor was accepted, and lower-to-hw then ran the
    f32 kernel (irt_silu_f32, ...) on its integer bytes."""
    et = value.type.element_type if isinstance(value.type, TensorType) else value.type
    if not isinstance(et, AnyFloat):
        raise VerifyException(f"{op.name}: {what} must be a float tensor, got {value.type}")


class _ActivationOp(IRDLOperation):
    """Base of the ops whose output is shaped like their first operand."""

    def _check_result_like(self, operand: SSAValue) -> None:
        _expect_float(self, "input", operand)
        _expect_same(self, "result", _shape(self, "result", self.results[0]),
                     _shape(self, "input", operand))


@irdl_op_definition
class WeightOp(IRDLOperation):
    """A named tensor of the module's weight store (the data lives outside the IR text)."""

    name = "transformer.weight"
    weight_name = prop_def(StringAttr, prop_name="name")
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$name attr-dict `:` type($result)"

    def __init__(self, name: str, result_type: TensorType):
        super().__init__(result_types=[result_type], properties={"name": StringAttr(name)})

    def verify_(self) -> None:
        if not self.weight_name.data:
            raise VerifyException(f"{self.name}: the weight name is empty")
        if DYNAMIC in self.result.type.get_shape():
            raise VerifyException(
                f"{self.name} \"{self.weight_name.data}\": weights must have a static shape")


@irdl_op_definition
class EmbeddingOp(IRDLOperation):
    """Rows of `table` selected by integer token ids: `[T] x [V, D] -> [T, D]`."""

    name = "transformer.embedding"
    tokens = operand_def(TensorType)
    table = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$tokens `,` $table attr-dict `:` functional-type(operands, results)"

    def __init__(self, tokens: SSAValue, table: SSAValue):
        t = tokens.type.get_shape()[0]
        d = table.type.get_shape()[1]
        super().__init__(operands=[tokens, table],
                         result_types=[TensorType(table.type.element_type, [t, d])])

    def verify_(self) -> None:
        (t,) = _expect_rank(self, "tokens", self.tokens, 1)
        if not isinstance(self.tokens.type.element_type, IntegerType):
            raise VerifyException(f"{self.name}: token ids must be integers, got "
                                  f"{self.tokens.type.element_type}")
        _, d = _expect_rank(self, "table", self.table, 2)
        _expect_same(self, "result", _expect_rank(self, "result", self.result, 2), (t, d))


@irdl_op_definition
class PositionEmbeddingOp(IRDLOperation):
    """Rows `start .. start+T-1` of a learned position table, one per token of `tokens`."""

    name = "transformer.position_embedding"
    tokens = operand_def(TensorType)
    table = operand_def(TensorType)
    start = opt_operand_def(IndexType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = ("$tokens `,` $table (`start` $start^)? attr-dict `:` "
                       "type($tokens) `,` type($table) `->` type($result)")

    def __init__(self, tokens: SSAValue, table: SSAValue, start: SSAValue | None = None):
        t = tokens.type.get_shape()[0]
        d = table.type.get_shape()[1]
        super().__init__(operands=[tokens, table, [start] if start else []],
                         result_types=[TensorType(table.type.element_type, [t, d])])

    def verify_(self) -> None:
        (t,) = _expect_rank(self, "tokens", self.tokens, 1)
        rows, d = _expect_rank(self, "table", self.table, 2)
        _check_positions(self, t, rows)
        _expect_same(self, "result", _expect_rank(self, "result", self.result, 2), (t, d))


@irdl_op_definition
class LinearOp(IRDLOperation):
    """`x @ w^T (+ b) (+ acc)`: `[T, K] x [N, K] (x [N]) (x [T, N]) -> [T, N]`.

    `acc` is a partial result the product is added to (`y = acc + (x @ w^T (+ b))`): the
    `tile` pass splits a weight row that does not fit its window into pieces along K, and
    each piece after the first accumulates into the output of the ones before.
    """

    name = "transformer.linear"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    acc = opt_operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = ("$input `,` $weight (`bias` $bias^)? (`acc` $acc^)? attr-dict `:` "
                       "type($input) `,` type($weight) (`,` type($bias)^)? "
                       "(`acc` type($acc)^)? `->` type($result)")

    def __init__(self, x: SSAValue, w: SSAValue, b: SSAValue | None = None,
                 acc: SSAValue | None = None):
        t = x.type.get_shape()[0]
        n = w.type.get_shape()[0]
        super().__init__(operands=[x, w, [b] if b else [], [acc] if acc else []],
                         result_types=[TensorType(x.type.element_type, [t, n])])

    def verify_(self) -> None:
        t, k = _expect_rank(self, "input", self.input, 2)
        n, wk = _expect_rank(self, "weight", self.weight, 2)
        if not _dims_agree(k, wk):
            raise VerifyException(f"{self.name}: input has {k} features but the weight "
                                  f"[{n}, {wk}] expects {wk}")
        if self.bias is not None:
            _expect_same(self, "bias", _shape(self, "bias", self.bias), (n,))
        _expect_same(self, "result", _expect_rank(self, "result", self.result, 2), (t, n))
        if self.acc is not None and self.acc.type != self.result.type:
            raise VerifyException(f"{self.name}: the accumulator {self.acc.type} differs from "
                                  f"the result {self.result.type}")


@irdl_op_definition
class LoraOp(IRDLOperation):
    """A low-rank task adapter added to a linear's output: `y + B_s (A_s x)`.

    `x: [T, K]` is the linear's input and `y: [T, N]` its output; `a: [n, R, K]` and
    `b: [n, N, R]` stack the down and up matrices of `n` adapters (the scale alpha/r folded
    into `b`, ranks below `R` padded with zeros). `selected` is the adapter chosen when the
    program is built; a program may choose another at run time (the C runtime's
    `irt_select_adapter`), or none (-1: the base model). The second result is the rank-sized
    scratch `A_s x: [T, R]`, a buffer of its own so the memory plan accounts for it.
    """

    name = "transformer.lora"
    input = operand_def(TensorType)
    base = operand_def(TensorType)
    down = operand_def(TensorType)
    up = operand_def(TensorType)
    selected = prop_def(IntegerAttr)
    result = result_def(TensorType)
    rank_scratch = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$input `,` $base `,` $down `,` $up attr-dict `:` "
                       "functional-type(operands, results)")

    def __init__(self, x: SSAValue, y: SSAValue, down: SSAValue, up: SSAValue, *,
                 selected: int):
        t = x.type.get_shape()[0]
        r = down.type.get_shape()[1]
        super().__init__(operands=[x, y, down, up], properties={"selected": _i64(selected)},
                         result_types=[y.type, TensorType(x.type.element_type, [t, r])])

    def verify_(self) -> None:
        t, k = _expect_rank(self, "input", self.input, 2)
        bt, n = _expect_rank(self, "base", self.base, 2)
        if not _dims_agree(t, bt):  # else the delta of T rows lands on other rows
            raise VerifyException(f"{self.name}: input has {_fmt((t,))} rows but the base "
                                  f"output has {_fmt((bt,))}")
        count, r, dk = _expect_rank(self, "down", self.down, 3)
        _expect_same(self, "up", _shape(self, "up", self.up), (count, n, r))
        if not _dims_agree(k, dk):
            raise VerifyException(f"{self.name}: input has {k} features but the down "
                                  f"matrices [{count}, {r}, {dk}] expect {dk}")
        if not -1 <= self.selected.value.data < count:
            raise VerifyException(f"{self.name}: selected = {self.selected.value.data} is not "
                                  f"an adapter (-1..{count - 1})")
        if self.result.type != self.base.type:
            raise VerifyException(f"{self.name}: result type {self.result.type} differs from "
                                  f"the base output {self.base.type}")
        _expect_same(self, "rank_scratch",
                     _expect_rank(self, "rank_scratch", self.rank_scratch, 2), (t, r))


@irdl_op_definition
class LoraUpOp(IRDLOperation):
    """The second half of a task adapter's delta, for rows of the output: `y + B_s t` with
    `t = A_s x` (the rank-sized product, `[T, R]`), `up: [N, R]` the selected adapter's up
    matrix (or rows of it) and `y: [T, N]` the linear's output (or the same rows). What a
    `transformer.lora` becomes when its matrices stream through a window (passes/lora_stream.py:
    `A_s x` is a `transformer.linear`); `selected = -1` (the base model) leaves `y`."""

    name = "transformer.lora_up"
    rank = operand_def(TensorType)
    base = operand_def(TensorType)
    up = operand_def(TensorType)
    selected = prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$rank `,` $base `,` $up attr-dict `:` "
                       "functional-type(operands, results)")

    def __init__(self, rank: SSAValue, y: SSAValue, up: SSAValue, *, selected: int):
        super().__init__(operands=[rank, y, up], properties={"selected": _i64(selected)},
                         result_types=[y.type])

    def verify_(self) -> None:
        t, r = _expect_rank(self, "rank", self.rank, 2)
        bt, n = _expect_rank(self, "base", self.base, 2)
        if not _dims_agree(t, bt):
            raise VerifyException(f"{self.name}: rank has {_fmt((t,))} rows but the base "
                                  f"output has {_fmt((bt,))}")
        _expect_same(self, "up", _expect_rank(self, "up", self.up, 2), (n, r))
        if self.selected.value.data < -1:  # `up` holds one adapter: only its sign is checkable
            raise VerifyException(f"{self.name}: selected = {self.selected.value.data} is not "
                                  "an adapter index nor -1 (the base model)")
        if self.result.type != self.base.type:
            raise VerifyException(f"{self.name}: result type {self.result.type} differs from "
                                  f"the base output {self.base.type}")


@irdl_op_definition
class MatmulOp(IRDLOperation):
    """A plain 2-D matrix product `a @ b` (`a @ b^T` with `transpose_b`)."""

    name = "transformer.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    transpose_b = opt_prop_def(BoolAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def __init__(self, a: SSAValue, b: SSAValue, transpose_b: bool = False):
        m = a.type.get_shape()[0]
        n = b.type.get_shape()[0 if transpose_b else 1]
        props = {"transpose_b": BoolAttr.from_bool(True)} if transpose_b else {}
        super().__init__(operands=[a, b], properties=props,
                         result_types=[TensorType(a.type.element_type, [m, n])])

    @property
    def is_transposed(self) -> bool:
        return self.transpose_b is not None and bool(self.transpose_b.value.data)

    def verify_(self) -> None:
        m, k = _expect_rank(self, "lhs", self.lhs, 2)
        b0, b1 = _expect_rank(self, "rhs", self.rhs, 2)
        bk, n = (b1, b0) if self.is_transposed else (b0, b1)
        if not _dims_agree(k, bk):
            raise VerifyException(f"{self.name}: contraction sizes differ: lhs has {k}, "
                                  f"rhs has {bk}")
        _expect_same(self, "result", _expect_rank(self, "result", self.result, 2), (m, n))


class _BinaryOp(IRDLOperation):
    T: ClassVar = VarConstraint("T", base(TensorType))
    lhs = operand_def(T)
    rhs = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` type($result)"

    def __init__(self, a: SSAValue, b: SSAValue):
        super().__init__(operands=[a, b], result_types=[a.type])

    def verify_(self) -> None:
        _expect_float(self, "lhs", self.lhs)
        a, b = _shape(self, "lhs", self.lhs), _shape(self, "rhs", self.rhs)
        _expect_same(self, "rhs", b, a)
        _expect_same(self, "result", _shape(self, "result", self.result), a)


@irdl_op_definition
class AddOp(_BinaryOp):
    """Elementwise sum of two tensors of one shape (residual connections)."""

    name = "transformer.add"


@irdl_op_definition
class MulOp(_BinaryOp):
    """Elementwise product of two tensors of one shape (gated MLPs)."""

    name = "transformer.mul"


class RMSNormFields(_ActivationOp):
    """The operands, property, result and syntax of an RMSNorm (`transformer.rms_norm` and
    `quant.int_rms_norm`; xDSL collects an undecorated base class's fields)."""

    input = operand_def(TensorType)
    gamma = operand_def(TensorType)
    eps = prop_def(FloatAttr[AnyFloat])
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input `,` $gamma attr-dict `:` functional-type(operands, results)"

    def __init__(self, x: SSAValue, gamma: SSAValue, eps: float):
        super().__init__(operands=[x, gamma], properties={"eps": _f32(eps)},
                         result_types=[x.type])


@irdl_op_definition
class RMSNormOp(RMSNormFields):
    """`x / sqrt(mean(x^2) + eps) * g` over the last axis."""

    name = "transformer.rms_norm"

    def verify_(self) -> None:
        _, d = _expect_rank(self, "input", self.input, 2)
        _expect_same(self, "gamma", _shape(self, "gamma", self.gamma), (d,))
        if self.eps.value.data < 0:
            raise VerifyException(f"{self.name}: eps must be >= 0, got {self.eps.value.data}")
        self._check_result_like(self.input)


@irdl_op_definition
class LayerNormOp(_ActivationOp):
    """`(x - mean) / sqrt(var + eps) * g + b` over the last axis."""

    name = "transformer.layer_norm"
    input = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    eps = prop_def(FloatAttr[AnyFloat])
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input `,` $gamma `,` $beta attr-dict `:` functional-type(operands, results)"

    def __init__(self, x: SSAValue, gamma: SSAValue, beta: SSAValue, eps: float):
        super().__init__(operands=[x, gamma, beta], properties={"eps": _f32(eps)},
                         result_types=[x.type])

    def verify_(self) -> None:
        _, d = _expect_rank(self, "input", self.input, 2)
        _expect_same(self, "gamma", _shape(self, "gamma", self.gamma), (d,))
        _expect_same(self, "beta", _shape(self, "beta", self.beta), (d,))
        if self.eps.value.data < 0:
            raise VerifyException(f"{self.name}: eps must be >= 0, got {self.eps.value.data}")
        self._check_result_like(self.input)


@irdl_op_definition
class RopeOp(_ActivationOp):
    """Rotary position embedding of every head of `x` (`[T, heads * head_dim]`).

    The first `rotary_dim` dims of each head rotate, the rest pass through. `cos`/`sin` are
    `[max_positions, rotary_dim / 2]` tables (one angle per rotated pair). `style` picks which
    dims pair up: `interleaved` (llama2.c: dims 2i and 2i+1) or `rotate_half` (Hugging Face:
    dims i and i + rotary_dim/2).
    """

    name = "transformer.rope"
    input = operand_def(TensorType)
    cos = operand_def(TensorType)
    sin = operand_def(TensorType)
    start = opt_operand_def(IndexType)
    heads = prop_def(IntegerAttr)
    head_dim = prop_def(IntegerAttr)
    rotary_dim = prop_def(IntegerAttr)
    style = prop_def(StringAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$input `,` $cos `,` $sin (`start` $start^)? attr-dict `:` "
                       "type($input) `,` type($cos) `,` type($sin) `->` type($result)")

    def __init__(self, x: SSAValue, cos: SSAValue, sin: SSAValue, *, heads: int, head_dim: int,
                 rotary_dim: int, style: str, start: SSAValue | None = None):
        super().__init__(
            operands=[x, cos, sin, [start] if start else []], result_types=[x.type],
            properties={"heads": _i64(heads), "head_dim": _i64(head_dim),
                        "rotary_dim": _i64(rotary_dim), "style": StringAttr(style)})

    def verify_(self) -> None:
        t, d = _expect_rank(self, "input", self.input, 2)
        _check_positions(self, t, _expect_rank(self, "cos", self.cos, 2)[0])
        h, hd, rd = (self.heads.value.data, self.head_dim.value.data,
                     self.rotary_dim.value.data)
        if self.style.data not in ROPE_STYLES:
            raise VerifyException(f"{self.name}: unknown style \"{self.style.data}\" "
                                  f"(expected one of {', '.join(ROPE_STYLES)})")
        if h <= 0 or hd <= 0:
            raise VerifyException(f"{self.name}: heads and head_dim must be positive")
        if d != DYNAMIC and d != h * hd:
            raise VerifyException(f"{self.name}: input has {d} features, expected heads * "
                                  f"head_dim = {h} * {hd} = {h * hd}")
        if rd <= 0 or rd > hd or rd % 2:
            raise VerifyException(f"{self.name}: rotary_dim {rd} must be even and in "
                                  f"(0, head_dim = {hd}]")
        for what, table in (("cos", self.cos), ("sin", self.sin)):
            _, half = _expect_rank(self, what, table, 2)
            if not _dims_agree(half, rd // 2):
                raise VerifyException(f"{self.name}: {what} table has {half} columns, "
                                      f"expected rotary_dim / 2 = {rd // 2}")
        _expect_same(self, "sin", _shape(self, "sin", self.sin), _shape(self, "cos", self.cos))
        self._check_result_like(self.input)


class AttentionFields(IRDLOperation):
    """The operands, properties, result and syntax of an attention op (`transformer.attention`
    and the ops that compute it another way, e.g. `quant.int_attention`): xDSL collects the
    fields of an undecorated base class, so each op declares only its name and behaviour."""

    query = operand_def(TensorType)
    key = operand_def(TensorType)
    value = operand_def(TensorType)
    heads = prop_def(IntegerAttr)
    kv_heads = prop_def(IntegerAttr)
    head_dim = prop_def(IntegerAttr)
    scale = prop_def(FloatAttr[AnyFloat])
    causal = opt_prop_def(BoolAttr)
    window = opt_prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$query `,` $key `,` $value attr-dict `:` functional-type(operands, results)"

    @property
    def is_causal(self) -> bool:
        return self.causal is not None and bool(self.causal.value.data)

    @property
    def window_size(self) -> int | None:
        """The sliding-window length `W`, or None for attention over all earlier keys."""
        return None if self.window is None else self.window.value.data


@irdl_op_definition
class AttentionOp(AttentionFields):
    """Scaled dot-product attention with grouped-query heads.

    `q: [T, heads * head_dim]`, `k, v: [S, kv_heads * head_dim]` -> `[T, heads * head_dim]`.
    Query head `h` reads key/value head `h // (heads / kv_heads)`. `causal` masks keys after
    each query, aligning the ends of the two sequences (see the module docstring); `window = W`
    (sliding-window attention, needs `causal`) also masks the keys more than `W - 1` before it.
    """

    name = "transformer.attention"

    def __init__(self, q: SSAValue, k: SSAValue, v: SSAValue, *, heads: int, kv_heads: int,
                 head_dim: int, scale: float, causal: bool = True, window: int | None = None):
        props: dict[str, Attribute] = {"heads": _i64(heads), "kv_heads": _i64(kv_heads),
                                       "head_dim": _i64(head_dim), "scale": _f32(scale)}
        if causal:
            props["causal"] = BoolAttr.from_bool(True)
        if window is not None:
            props["window"] = _i64(window)
        super().__init__(operands=[q, k, v], properties=props, result_types=[q.type])

    def verify_(self) -> None:
        t, dq, _, kvh, hd = verify_heads(self, self.query)
        s, dk = _expect_rank(self, "key", self.key, 2)
        if dk != DYNAMIC and dk != kvh * hd:
            raise VerifyException(f"{self.name}: key has {dk} features, expected kv_heads * "
                                  f"head_dim = {kvh * hd}")
        _expect_same(self, "value", _shape(self, "value", self.value), (s, dk))
        _expect_same(self, "result", _expect_rank(self, "result", self.result, 2), (t, dq))
        if not math.isfinite(self.scale.value.data):
            raise VerifyException(f"{self.name}: scale must be finite, got "
                                  f"{self.scale.value.data}")
        if self.is_causal and DYNAMIC not in (t, s) and t > s:
            # the ends align: query i sees keys up to i - (T - S), so the first T - S see none
            # and their softmax over nothing is NaN
            raise VerifyException(f"{self.name}: causal attention of {t} queries over {s} keys: "
                                  f"the first {t - s} would see no key")
        w = self.window_size
        if w is not None:
            if w <= 0:
                raise VerifyException(f"{self.name}: window must be positive, got {w}")
            if not self.is_causal:
                raise VerifyException(f"{self.name}: window {w} needs causal attention (a "
                                      "sliding window looks back from each query)")


def _cache_shape(op: IRDLOperation, what: str, value: SSAValue) -> tuple[int, int, int, int]:
    """`[layers, kv_heads, capacity, head_dim]` of a KV cache, which must be fully static:
    the cache is a fixed buffer that later levels place in memory."""
    shape = _expect_rank(op, what, value, 4)
    if DYNAMIC in shape:
        raise VerifyException(f"{op.name}: {what} must have a static shape "
                              f"[layers, kv_heads, capacity, head_dim], got {_fmt(shape)}")
    layers, kvh, cap, hd = shape
    if min(shape) <= 0:
        raise VerifyException(f"{op.name}: {what} has an empty dimension: {_fmt(shape)}")
    return layers, kvh, cap, hd


def _check_layer(op: IRDLOperation, layer: int, layers: int) -> None:
    if not 0 <= layer < layers:
        raise VerifyException(f"{op.name}: layer {layer} is outside the cache's {layers} layers")


@irdl_op_definition
class KVWriteOp(IRDLOperation):
    """Stores new key (or value) rows into one layer of a KV cache; returns the updated cache.

    `cache: [L, KV, C, hd]`, `new: [T, KV * hd]`; `pos` is the position of `new`'s first row.
    `L` is the number of layers the buffer holds and `layer` the index inside it (extract-kv-cache
    makes one buffer per model layer, `L = 1` and `layer = 0`, so the allocator can place each
    layer's cache on its own). Row `t` goes to slot `pos + t` of layer `layer` (a linear cache,
    which must not overflow `C`), or to slot `(pos + t) % C` with `ring` (window mode keeps the
    last `C` positions).
    The cache is a value: the op returns a new one, so state is explicit in the IR.
    """

    name = "transformer.kv_write"
    cache = operand_def(TensorType)
    new = operand_def(TensorType)
    pos = operand_def(IndexType)
    layer = prop_def(IntegerAttr)
    ring = opt_prop_def(UnitAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$cache `,` $new `,` $pos attr-dict `:` "
                       "type($cache) `,` type($new) `->` type($result)")

    def __init__(self, cache: SSAValue, new: SSAValue, pos: SSAValue, *, layer: int,
                 ring: bool = False):
        props: dict[str, Attribute] = {"layer": _i64(layer)}
        if ring:
            props["ring"] = UnitAttr()
        super().__init__(operands=[cache, new, pos], properties=props,
                         result_types=[cache.type])

    @property
    def is_ring(self) -> bool:
        return self.ring is not None

    def verify_(self) -> None:
        layers, kvh, _, hd = _cache_shape(self, "cache", self.cache)
        _check_layer(self, self.layer.value.data, layers)
        _, d = _expect_rank(self, "new", self.new, 2)
        if d != DYNAMIC and d != kvh * hd:
            raise VerifyException(f"{self.name}: new rows have {d} features, the cache holds "
                                  f"kv_heads * head_dim = {kvh} * {hd} = {kvh * hd}")
        if self.new.type.element_type != self.cache.type.element_type:
            raise VerifyException(f"{self.name}: new rows are {self.new.type.element_type} but "
                                  f"the cache holds {self.cache.type.element_type}")
        if self.result.type != self.cache.type:
            raise VerifyException(f"{self.name}: result type {self.result.type} differs from "
                                  f"the cache type {self.cache.type}")


@irdl_op_definition
class CachedAttentionOp(IRDLOperation):
    """Attention of new query rows over the keys and values held in a KV cache.

    `q: [T, heads * head_dim]`, `kcache, vcache: [L, kv_heads, C, head_dim]` -> like `q`. The
    `T` query rows are the positions `end - T .. end - 1`; each attends causally to the cached
    positions up to its own, i.e. to what the cache holds: positions `max(0, end - C) .. p`, in
    slot `p` (linear) or `p % C` (`ring`). Heads are grouped as in `attention`.
    """

    name = "transformer.cached_attention"
    query = operand_def(TensorType)
    kcache = operand_def(TensorType)
    vcache = operand_def(TensorType)
    end = operand_def(IndexType)
    layer = prop_def(IntegerAttr)
    heads = prop_def(IntegerAttr)
    kv_heads = prop_def(IntegerAttr)
    head_dim = prop_def(IntegerAttr)
    scale = prop_def(FloatAttr[AnyFloat])
    ring = opt_prop_def(UnitAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$query `,` $kcache `,` $vcache `,` $end attr-dict `:` "
                       "type($query) `,` type($kcache) `,` type($vcache) `->` type($result)")

    def __init__(self, q: SSAValue, kcache: SSAValue, vcache: SSAValue, end: SSAValue, *,
                 layer: int, heads: int, kv_heads: int, head_dim: int, scale: float,
                 ring: bool = False):
        props: dict[str, Attribute] = {"layer": _i64(layer), "heads": _i64(heads),
                                       "kv_heads": _i64(kv_heads), "head_dim": _i64(head_dim),
                                       "scale": _f32(scale)}
        if ring:
            props["ring"] = UnitAttr()
        super().__init__(operands=[q, kcache, vcache, end], properties=props,
                         result_types=[q.type])

    @property
    def is_ring(self) -> bool:
        return self.ring is not None

    def verify_(self) -> None:
        t, dq, h, kvh, hd = verify_heads(self, self.query)
        layers, ckvh, _, chd = _cache_shape(self, "kcache", self.kcache)
        if (ckvh, chd) != (kvh, hd):
            raise VerifyException(f"{self.name}: kcache has {ckvh} kv heads of {chd} dims, "
                                  f"expected kv_heads = {kvh} and head_dim = {hd}")
        if self.vcache.type != self.kcache.type:
            raise VerifyException(f"{self.name}: vcache type {self.vcache.type} differs from "
                                  f"kcache type {self.kcache.type}")
        _check_layer(self, self.layer.value.data, layers)
        _expect_same(self, "result", _expect_rank(self, "result", self.result, 2), (t, dq))


class _UnaryOp(_ActivationOp):
    """Base of the element-wise activations and the softmax: one tensor in, the same type out."""

    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($result)"

    def __init__(self, x: SSAValue, properties: dict[str, Attribute] | None = None):
        super().__init__(operands=[x], result_types=[x.type], properties=properties or {})

    def verify_(self) -> None:
        self._check_result_like(self.input)


@irdl_op_definition
class SoftmaxOp(_UnaryOp):
    """Softmax over the last axis."""

    name = "transformer.softmax"


@irdl_op_definition
class GeluOp(_UnaryOp):
    """GELU, exact (`erf`) or with the tanh approximation (GPT-2 `gelu_new`)."""

    name = "transformer.gelu"
    approximate = prop_def(StringAttr)
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, x: SSAValue, approximate: str = "none"):
        super().__init__(x, {"approximate": StringAttr(approximate)})

    def verify_(self) -> None:
        if self.approximate.data not in GELU_APPROXIMATIONS:
            raise VerifyException(f"{self.name}: approximate must be one of "
                                  f"{', '.join(GELU_APPROXIMATIONS)}, got "
                                  f"\"{self.approximate.data}\"")
        self._check_result_like(self.input)


@irdl_op_definition
class SiluOp(_UnaryOp):
    """SiLU (swish): `x * sigmoid(x)`."""

    name = "transformer.silu"


@irdl_op_definition
class ReluOp(_UnaryOp):
    """ReLU: `max(x, 0)` (OPT's MLP activation)."""

    name = "transformer.relu"


Transformer = Dialect(
    "transformer",
    [WeightOp, EmbeddingOp, PositionEmbeddingOp, LinearOp, LoraOp, LoraUpOp, MatmulOp, AddOp,
     MulOp, RMSNormOp, LayerNormOp, RopeOp, AttentionOp, KVWriteOp, CachedAttentionOp, SoftmaxOp,
     GeluOp, SiluOp, ReluOp],
    [],
)
