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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    AnyFloat,
    DYNAMIC_INDEX,
    BoolAttr,
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
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
    if len(got) != len(want) or not all(_dims_agree(a, b) for a, b in zip(got, want)):
        raise VerifyException(f"{op.name}: {what} is {_fmt(got)}, expected {_fmt(want)}")


def _f32(value: float) -> FloatAttr:
    return FloatAttr(value, Float32Type())


def _i64(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


class _ActivationOp(IRDLOperation):
    """Base of the ops whose output is shaped like their first operand."""

    def _check_result_like(self, operand: SSAValue) -> None:
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
        _, d = _expect_rank(self, "table", self.table, 2)
        _expect_same(self, "result", _expect_rank(self, "result", self.result, 2), (t, d))


@irdl_op_definition
class LinearOp(IRDLOperation):
    """`x @ w^T (+ b)`: `[T, K] x [N, K] (x [N]) -> [T, N]`."""

    name = "transformer.linear"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = ("$input `,` $weight (`bias` $bias^)? attr-dict `:` "
                       "type($input) `,` type($weight) (`,` type($bias)^)? `->` type($result)")

    def __init__(self, x: SSAValue, w: SSAValue, b: SSAValue | None = None):
        t = x.type.get_shape()[0]
        n = w.type.get_shape()[0]
        super().__init__(operands=[x, w, [b] if b else []],
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


@irdl_op_definition
class RMSNormOp(_ActivationOp):
    """`x / sqrt(mean(x^2) + eps) * g` over the last axis."""

    name = "transformer.rms_norm"
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
        _, d = _expect_rank(self, "input", self.input, 2)
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
            if half != rd // 2:
                raise VerifyException(f"{self.name}: {what} table has {half} columns, "
                                      f"expected rotary_dim / 2 = {rd // 2}")
        _expect_same(self, "sin", _shape(self, "sin", self.sin), _shape(self, "cos", self.cos))
        self._check_result_like(self.input)


@irdl_op_definition
class AttentionOp(IRDLOperation):
    """Scaled dot-product attention with grouped-query heads.

    `q: [T, heads * head_dim]`, `k, v: [S, kv_heads * head_dim]` -> `[T, heads * head_dim]`.
    Query head `h` reads key/value head `h // (heads / kv_heads)`. `causal` masks keys after
    each query, aligning the ends of the two sequences (see the module docstring).
    """

    name = "transformer.attention"
    query = operand_def(TensorType)
    key = operand_def(TensorType)
    value = operand_def(TensorType)
    heads = prop_def(IntegerAttr)
    kv_heads = prop_def(IntegerAttr)
    head_dim = prop_def(IntegerAttr)
    scale = prop_def(FloatAttr[AnyFloat])
    causal = opt_prop_def(BoolAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$query `,` $key `,` $value attr-dict `:` functional-type(operands, results)"

    def __init__(self, q: SSAValue, k: SSAValue, v: SSAValue, *, heads: int, kv_heads: int,
                 head_dim: int, scale: float, causal: bool = True):
        props: dict[str, Attribute] = {"heads": _i64(heads), "kv_heads": _i64(kv_heads),
                                       "head_dim": _i64(head_dim), "scale": _f32(scale)}
        if causal:
            props["causal"] = BoolAttr.from_bool(True)
        super().__init__(operands=[q, k, v], properties=props, result_types=[q.type])

    @property
    def is_causal(self) -> bool:
        return self.causal is not None and bool(self.causal.value.data)

    def verify_(self) -> None:
        t, dq = _expect_rank(self, "query", self.query, 2)
        s, dk = _expect_rank(self, "key", self.key, 2)
        h, kvh, hd = (self.heads.value.data, self.kv_heads.value.data,
                      self.head_dim.value.data)
        if h <= 0 or kvh <= 0 or hd <= 0:
            raise VerifyException(f"{self.name}: heads, kv_heads and head_dim must be positive")
        if h % kvh:
            raise VerifyException(f"{self.name}: heads ({h}) must be a multiple of kv_heads "
                                  f"({kvh})")
        if dq != DYNAMIC and dq != h * hd:
            raise VerifyException(f"{self.name}: query has {dq} features, expected heads * "
                                  f"head_dim = {h * hd}")
        if dk != DYNAMIC and dk != kvh * hd:
            raise VerifyException(f"{self.name}: key has {dk} features, expected kv_heads * "
                                  f"head_dim = {kvh * hd}")
        _expect_same(self, "value", _shape(self, "value", self.value), (s, dk))
        _expect_same(self, "result", _expect_rank(self, "result", self.result, 2), (t, dq))


@irdl_op_definition
class SoftmaxOp(_ActivationOp):
    """Softmax over the last axis."""

    name = "transformer.softmax"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($result)"

    def __init__(self, x: SSAValue):
        super().__init__(operands=[x], result_types=[x.type])

    def verify_(self) -> None:
        self._check_result_like(self.input)


@irdl_op_definition
class GeluOp(_ActivationOp):
    """GELU, exact (`erf`) or with the tanh approximation (GPT-2 `gelu_new`)."""

    name = "transformer.gelu"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    approximate = prop_def(StringAttr)
    result = result_def(T)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($result)"

    def __init__(self, x: SSAValue, approximate: str = "none"):
        super().__init__(operands=[x], result_types=[x.type],
                         properties={"approximate": StringAttr(approximate)})

    def verify_(self) -> None:
        if self.approximate.data not in GELU_APPROXIMATIONS:
            raise VerifyException(f"{self.name}: approximate must be one of "
                                  f"{', '.join(GELU_APPROXIMATIONS)}, got "
                                  f"\"{self.approximate.data}\"")
        self._check_result_like(self.input)


@irdl_op_definition
class SiluOp(_ActivationOp):
    """SiLU (swish): `x * sigmoid(x)`."""

    name = "transformer.silu"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($result)"

    def __init__(self, x: SSAValue):
        super().__init__(operands=[x], result_types=[x.type])

    def verify_(self) -> None:
        self._check_result_like(self.input)


Transformer = Dialect(
    "transformer",
    [WeightOp, EmbeddingOp, PositionEmbeddingOp, LinearOp, MatmulOp, AddOp, MulOp, RMSNormOp,
     LayerNormOp, RopeOp, AttentionOp, SoftmaxOp, GeluOp, SiluOp],
    [],
)
