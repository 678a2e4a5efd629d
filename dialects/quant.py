"""The `quant` dialect: integer tensors with explicit scales, and the kernels that use them.

Quantized values are plain integer tensors (`i8`, `ui8`, `i32`, ...) and their scales and zero
points are ordinary tensor operands (`f32` scales, `i32` zero points), read from the weight
store with `transformer.weight` like any other weight. So every later level (bufferize, the
memory planner, the C emitter) sees quantized data as buffers of a known element type, and the
IR text never holds weight values. The real value of an integer `q` is `(q - zero_point) * scale`.

Granularity, given by the shape of the scale operand of `quantize`/`dequantize`/`requantize`:
* per tensor: `tensor<1xf32>`;
* per channel: `tensor<Dxf32>`, one scale per index of axis `axis` (default 0: the output
  channel of an `[N, K]` weight);
* per group: with `group = G`, one scale per run of `G` consecutive elements along the last
  axis: the input's shape with the last dimension `K` replaced by `ceil(K / G)` (the last group
  is shorter when `G` does not divide `K`).
A zero point, when given, has the shape of the scale; without one it is 0 (symmetric).

Integer ranges: `bits = b` values of a signed type lie in `[-2^(b-1), 2^(b-1) - 1]`, or in the
symmetric `[-(2^(b-1) - 1), 2^(b-1) - 1]` with `narrow`; unsigned ones in `[0, 2^b - 1]`.
Sub-byte weights are stored packed in `ui8` rows (see `wlinear`).

The arithmetic of every op is fixed by the quantization contract shared with the C kernels;
the numpy reference is `irtool.numerics.quant`, which spells it out operation by operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    AnyFloat,
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    Signedness,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
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

from irtool.dialects import transformer as tf
from irtool.dialects.transformer import verify_heads

DYNAMIC = DYNAMIC_INDEX

WEIGHT_BITS = (8, 4, 1)
ACT_BITS = (4,)


# Helpers -------------------------------------------------------------------------------------

def _fmt(shape: Sequence[int]) -> str:
    return "x".join("?" if d == DYNAMIC else str(d) for d in shape) or "scalar"


def _tensor(op: IRDLOperation, what: str, value: SSAValue) -> TensorType:
    t = value.type
    if not isinstance(t, TensorType):
        raise VerifyException(f"{op.name}: {what} must be a tensor, got {t}")
    return t


def _shape(op: IRDLOperation, what: str, value: SSAValue, rank: int | None = None
           ) -> tuple[int, ...]:
    shape = tuple(_tensor(op, what, value).get_shape())
    if rank is not None and len(shape) != rank:
        raise VerifyException(f"{op.name}: {what} must have rank {rank}, got {_fmt(shape)}")
    return shape


def _agree(a: int, b: int) -> bool:
    return a == DYNAMIC or b == DYNAMIC or a == b


def _expect_shape(op: IRDLOperation, what: str, got: Sequence[int], want: Sequence[int]) -> None:
    if len(got) != len(want) or not all(_agree(a, b) for a, b in zip(got, want, strict=True)):
        raise VerifyException(f"{op.name}: {what} is {_fmt(got)}, expected {_fmt(want)}")


def _expect_f32(op: IRDLOperation, what: str, value: SSAValue) -> None:
    et = _tensor(op, what, value).element_type
    if not isinstance(et, Float32Type):
        raise VerifyException(f"{op.name}: {what} must be a tensor of f32, got {et}")


def _int_type(op: IRDLOperation, what: str, value: SSAValue) -> IntegerType:
    et = _tensor(op, what, value).element_type
    if not isinstance(et, IntegerType):
        raise VerifyException(f"{op.name}: {what} must be a tensor of integers, got {et}")
    return et


def _expect_int(op: IRDLOperation, what: str, value: SSAValue, width: int,
                unsigned: bool = False) -> None:
    et = _tensor(op, what, value).element_type
    if (not isinstance(et, IntegerType) or et.width.data != width
            or is_unsigned(et) != unsigned):
        want = f"ui{width}" if unsigned else f"i{width}"
        raise VerifyException(f"{op.name}: {what} must be a tensor of {want}, got {et}")


def is_unsigned(t: IntegerType) -> bool:
    return t.signedness.data == Signedness.UNSIGNED


def int_range(bits: int, unsigned: bool, narrow: bool) -> tuple[int, int]:
    """The integers a `bits`-bit value may take (see the module docstring)."""
    if unsigned:
        return 0, (1 << bits) - 1
    hi = (1 << (bits - 1)) - 1
    return (-hi if narrow else -hi - 1), hi


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def packed_row_bytes(k: int, bits: int) -> int:
    """Bytes of one packed weight row of `k` values of `bits` bits (8, 4 or 1)."""
    return ceil_div(k * bits, 8)


def _i64(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


def _f32(value: float) -> FloatAttr:
    return FloatAttr(value, Float32Type())


def _int(attr: IntegerAttr | None) -> int | None:
    return None if attr is None else attr.value.data


def _positive(op: IRDLOperation, what: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise VerifyException(f"{op.name}: {what} must be positive, got {value}")


def _check_granularity(op: IRDLOperation, data_shape: Sequence[int], scale: SSAValue,
                       zero_point: SSAValue | None, group: int | None, axis: int) -> None:
    """The scale (and zero point) shape must say per tensor, per channel or per group."""
    _expect_f32(op, "scale", scale)
    s = _shape(op, "scale", scale)
    rank = len(data_shape)
    _positive(op, "group", group)
    if group is not None:
        if rank == 0:
            raise VerifyException(f"{op.name}: group = {group} needs a tensor of rank >= 1")
        k = data_shape[-1]
        want = list(data_shape[:-1]) + [DYNAMIC if k == DYNAMIC else ceil_div(k, group)]
        _expect_shape(op, f"scale (one per group of {group} along the last axis)", s, want)
    elif len(s) != 1:
        raise VerifyException(f"{op.name}: scale must be tensor<1xf32> (per tensor) or one "
                              f"scale per channel along axis {axis}, got {_fmt(s)} (per-group "
                              "scales need the group property)")
    elif s[0] != 1:
        if not 0 <= axis < rank:
            raise VerifyException(f"{op.name}: axis {axis} is outside the rank {rank} of the "
                                  "input")
        _expect_shape(op, f"scale (one per channel along axis {axis})", s, (data_shape[axis],))
    if zero_point is not None:
        _expect_int(op, "zero_point", zero_point, 32)
        _expect_shape(op, "zero_point (shaped like the scale)", _shape(op, "zero_point",
                                                                       zero_point), s)


def _check_bits(op: IRDLOperation, bits: int, et: IntegerType, narrow: bool) -> None:
    width = et.width.data
    if not 2 <= bits <= width:
        raise VerifyException(f"{op.name}: bits = {bits} must be in 2..{width} (the width of "
                              f"{et})")
    if narrow and is_unsigned(et):
        raise VerifyException(f"{op.name}: narrow (a symmetric range) needs a signed result, "
                              f"got {et}")


# Element-wise conversions ---------------------------------------------------------------------

class _ScaledOp(IRDLOperation):
    """What quantize / dequantize / requantize share: `input`, `scale` and an optional
    `zero_point` to one result, their properties and their syntax (xDSL collects the fields of
    an undecorated base class)."""

    input = operand_def(TensorType)
    scale = operand_def(TensorType)
    zero_point = opt_operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$input `,` $scale (`zero_point` $zero_point^)? attr-dict `:` "
                       "type($input) `,` type($scale) (`,` type($zero_point)^)? `->` "
                       "type($result)")

    group = opt_prop_def(IntegerAttr)
    axis = opt_prop_def(IntegerAttr)

    @property
    def group_size(self) -> int | None:
        return _int(self.group)

    @property
    def channel_axis(self) -> int:
        return _int(self.axis) or 0

    def _check_scales(self, data: SSAValue, scale: SSAValue, zp: SSAValue | None) -> None:
        if self.axis is not None and self.group is not None:
            raise VerifyException(f"{self.name}: give either axis (per channel) or group (per "
                                  "group), not both")
        _check_granularity(self, _shape(self, "input", data), scale, zp, self.group_size,
                           self.channel_axis)


class _ToIntegerOp(_ScaledOp):
    """quantize / requantize: an integer result of `bits` bits (default: its width), the
    symmetric range with `narrow`."""

    bits = opt_prop_def(IntegerAttr)
    narrow = opt_prop_def(UnitAttr)

    @property
    def range(self) -> tuple[int, int]:
        et = self.results[0].type.element_type
        bits = _int(self.bits) or et.width.data
        return int_range(bits, is_unsigned(et), self.narrow is not None)

    def _verify_integer_result(self) -> None:
        data, result = self.operands[0], self.results[0]
        et = _int_type(self, "result", result)
        _expect_shape(self, "result", _shape(self, "result", result), _shape(self, "input", data))
        _check_bits(self, _int(self.bits) or et.width.data, et, self.narrow is not None)
        self._check_scales(data, self.operands[1], self.zero_point)


def _scaled_props(bits: int | None = None, narrow: bool = False, group: int | None = None,
                  axis: int | None = None) -> dict[str, Attribute]:
    props: dict[str, Attribute] = {}
    if bits is not None:
        props["bits"] = _i64(bits)
    if narrow:
        props["narrow"] = UnitAttr()
    if group is not None:
        props["group"] = _i64(group)
    if axis is not None:
        props["axis"] = _i64(axis)
    return props


@irdl_op_definition
class QuantizeOp(_ToIntegerOp):
    """`q = clip(round(x / scale) + zero_point, lo, hi)`: floats to integers.

    `x / scale` is one float32 division, round is half-to-even; `[lo, hi]` is the range of
    `bits` (default: the result's width) with `narrow`/signedness as in the module docstring.
    """

    name = "quant.quantize"

    def __init__(self, x: SSAValue, scale: SSAValue, result_type: TensorType,
                 zero_point: SSAValue | None = None, *, bits: int | None = None,
                 narrow: bool = False, group: int | None = None, axis: int | None = None):
        super().__init__(operands=[x, scale, [zero_point] if zero_point else []],
                         result_types=[result_type],
                         properties=_scaled_props(bits, narrow, group, axis))

    def verify_(self) -> None:
        _expect_f32(self, "input", self.input)
        self._verify_integer_result()


@irdl_op_definition
class DequantizeOp(_ScaledOp):
    """`x = float32(q - zero_point) * scale`: integers back to floats (exact integer subtract,
    then one float32 multiply)."""

    name = "quant.dequantize"

    def __init__(self, q: SSAValue, scale: SSAValue, zero_point: SSAValue | None = None, *,
                 group: int | None = None, axis: int | None = None):
        shape = q.type.get_shape()
        super().__init__(operands=[q, scale, [zero_point] if zero_point else []],
                         result_types=[TensorType(Float32Type(), shape)],
                         properties=_scaled_props(group=group, axis=axis))

    def verify_(self) -> None:
        _int_type(self, "input", self.input)
        _expect_f32(self, "result", self.result)
        _expect_shape(self, "result", _shape(self, "result", self.result),
                      _shape(self, "input", self.input))
        self._check_scales(self.input, self.scale, self.zero_point)


@irdl_op_definition
class RequantizeOp(_ToIntegerOp):
    """`out = clip(round(float32(q) * multiplier) + zero_point, lo, hi)`: an integer tensor
    (typically int32 accumulators, whose input zero point is already removed) to a narrower
    one; `multiplier = in_scale / out_scale`, float32, per tensor, channel or group."""

    name = "quant.requantize"

    def __init__(self, q: SSAValue, multiplier: SSAValue, result_type: TensorType,
                 zero_point: SSAValue | None = None, *, bits: int | None = None,
                 narrow: bool = False, group: int | None = None, axis: int | None = None):
        super().__init__(operands=[q, multiplier, [zero_point] if zero_point else []],
                         result_types=[result_type],
                         properties=_scaled_props(bits, narrow, group, axis))

    def verify_(self) -> None:
        _int_type(self, "input", self.input)
        self._verify_integer_result()


@irdl_op_definition
class DynamicQuantizeOp(IRDLOperation):
    """Symmetric absmax quantization with scales computed from the data, per group of `group`
    along the last axis: `s = max|x_group| / hi` (1.0 when 0), `q = clip(round(x / s), -hi, hi)`
    with `hi = 2^(bits-1) - 1`. Returns the integers and the scales `[..., ceil(K / group)]`.

    This is what one row of an int8 KV cache goes through (group = head_dim): the prefill
    attends over `dequantize(dynamic_quantize(k))`, the very values decode reads back.
    """

    name = "quant.dynamic_quantize"
    input = operand_def(TensorType)
    group = prop_def(IntegerAttr)
    bits = opt_prop_def(IntegerAttr)
    result = result_def(TensorType)
    scales = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$input attr-dict `:` type($input) `->` type($result) `,` "
                       "type($scales)")

    def __init__(self, x: SSAValue, *, group: int, bits: int = 8):
        shape = list(x.type.get_shape())
        k = shape[-1]
        groups = DYNAMIC if k == DYNAMIC else ceil_div(k, group)
        props: dict[str, Attribute] = {"group": _i64(group)}
        if bits != 8:
            props["bits"] = _i64(bits)
        super().__init__(operands=[x], properties=props,
                         result_types=[TensorType(IntegerType(8), shape),
                                       TensorType(Float32Type(), shape[:-1] + [groups])])

    @property
    def hi(self) -> int:
        return int_range(_int(self.bits) or 8, False, True)[1]

    def verify_(self) -> None:
        _expect_f32(self, "input", self.input)
        shape = _shape(self, "input", self.input)
        if not shape:
            raise VerifyException(f"{self.name}: input must have rank >= 1")
        et = _int_type(self, "result", self.result)
        if is_unsigned(et):
            raise VerifyException(f"{self.name}: result must be signed (symmetric), got {et}")
        _check_bits(self, _int(self.bits) or 8, et, True)
        _expect_shape(self, "result", _shape(self, "result", self.result), shape)
        g = self.group.value.data
        _positive(self, "group", g)
        k = shape[-1]
        want = list(shape[:-1]) + [DYNAMIC if k == DYNAMIC else ceil_div(k, g)]
        _expect_f32(self, "scales", self.scales)
        _expect_shape(self, f"scales (one per group of {g} along the last axis)",
                      _shape(self, "scales", self.scales), want)


# Linear layers --------------------------------------------------------------------------------

def _linear_shapes(op: IRDLOperation, x: SSAValue, result: SSAValue, bias: SSAValue | None,
                   n: int) -> int:
    """Checks `[T, K] -> [T, N]` and the bias `[N]`; returns K."""
    t, k = _shape(op, "input", x, 2)
    _expect_f32(op, "result", result)
    _expect_shape(op, "result", _shape(op, "result", result, 2), (t, n))
    if bias is not None:
        _expect_f32(op, "bias", bias)
        _expect_shape(op, "bias", _shape(op, "bias", bias), (n,))
    return k


@irdl_op_definition
class QLinearOp(IRDLOperation):
    """Integer-only linear layer (W8A8): int8 activations times int8 weights, int32 sums.

    `input: [T, K] i8` (quantized with scale `sx` and zero point `zx`), `weight: [N, K] i8`,
    `multiplier: [N]` (or `[1]`) f32 with `m[n] = float32(sx * s[n])`, `input_zero_point:
    tensor<1xi32>`; `acc[t, n] = sum_k (xq[t, k] - zx) * w[n, k]` exactly in int32, then
    `y = float32(acc) * m[n] (+ bias[n])`: one float32 multiply and one float32 add.
    """

    name = "quant.qlinear"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    multiplier = operand_def(TensorType)
    input_zero_point = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = ("$input `,` $weight `,` $multiplier `,` $input_zero_point "
                       "(`bias` $bias^)? attr-dict `:` type($input) `,` type($weight) `,` "
                       "type($multiplier) `,` type($input_zero_point) (`,` type($bias)^)? `->` "
                       "type($result)")

    def __init__(self, xq: SSAValue, w: SSAValue, multiplier: SSAValue, zx: SSAValue,
                 bias: SSAValue | None = None):
        t = xq.type.get_shape()[0]
        n = w.type.get_shape()[0]
        super().__init__(operands=[xq, w, multiplier, zx, [bias] if bias else []],
                         result_types=[TensorType(Float32Type(), [t, n])])

    def verify_(self) -> None:
        _expect_int(self, "input", self.input, 8)
        _expect_int(self, "weight", self.weight, 8)
        n, wk = _shape(self, "weight", self.weight, 2)
        k = _linear_shapes(self, self.input, self.result, self.bias, n)
        if not _agree(k, wk):
            raise VerifyException(f"{self.name}: input has {k} features but the weight "
                                  f"[{n}, {wk}] expects {wk}")
        _expect_f32(self, "multiplier", self.multiplier)
        m = _shape(self, "multiplier", self.multiplier, 1)
        if m != (1,):
            _expect_shape(self, "multiplier (one per output channel, or [1])", m, (n,))
        _expect_int(self, "input_zero_point", self.input_zero_point, 32)
        _expect_shape(self, "input_zero_point", _shape(self, "input_zero_point",
                                                       self.input_zero_point), (1,))


class _PackedWeights:
    """`bits` and the optional `group` of an op reading weights stored as wlinear stores them."""

    @property
    def weight_bits(self) -> int:
        return self.bits.value.data  # type: ignore[attr-defined]

    @property
    def group_size(self) -> int | None:
        return _int(self.group)  # type: ignore[attr-defined]


@irdl_op_definition
class WLinearOp(_PackedWeights, IRDLOperation):
    """Weight-only quantized linear layer with float activations: `x @ dequant(W)^T (+ b)`.

    `input: [T, K] f32` (K static), N output channels; by `bits`:
    * 8: `weight: [N, K] i8`; `scale` per tensor `[1]`, per channel `[N]`, or per group
      `[N, ceil(K / group)]`. `y = sum_g s[n, g] * dot_g(x, w) (+ b)`, float accumulation.
    * 4: `weight: [N, ceil(K / 2)] ui8`, two 4-bit two's complement values per byte (element
      `2j` in the low nibble, `2j + 1` in the high one, an odd row padded with 0); scales as
      for 8 bits (per group is the usual case, `group = 32`).
    * 1: `weight: [N, ceil(K / 8)] ui8`, eight signs per byte, least significant bit first
      (bit 1 = +1, 0 = -1, padding bits ignored); `scale: [N]` is alpha (mean |W| per row).
      `y = alpha[n] * sum_k (+/-) x[t, k] (+ b)`. With `act_bits = 4` the activations are
      quantized per group of `act_group` with power-of-two scales and the sums are exact int32:
      `y = alpha[n] * sum_g float32(acc[t, n, g]) * 2^e_g` (g increasing).

    With `acc [T, N]` the product is added to it: `y = acc + (x @ dequant(W)^T (+ b))`, one
    float32 add per element after the product is complete (the `tile` pass streams a row too
    long for its window in pieces along K that start on a group, so every piece's scales and
    4-bit activation groups are those of the whole row).
    """

    name = "quant.wlinear"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    scale = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    acc = opt_operand_def(TensorType)
    bits = prop_def(IntegerAttr)
    group = opt_prop_def(IntegerAttr)
    act_bits = opt_prop_def(IntegerAttr)
    act_group = opt_prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(), AttrSizedOperandSegments(as_property=True))
    assembly_format = ("$input `,` $weight `,` $scale (`bias` $bias^)? (`acc` $acc^)? "
                       "attr-dict `:` type($input) `,` type($weight) `,` type($scale) "
                       "(`,` type($bias)^)? (`acc` type($acc)^)? `->` type($result)")

    def __init__(self, x: SSAValue, w: SSAValue, scale: SSAValue, bias: SSAValue | None = None,
                 *, bits: int, group: int | None = None, act_bits: int | None = None,
                 act_group: int | None = None, acc: SSAValue | None = None):
        t = x.type.get_shape()[0]
        n = w.type.get_shape()[0]
        props: dict[str, Attribute] = {"bits": _i64(bits)}
        for key, value in (("group", group), ("act_bits", act_bits), ("act_group", act_group)):
            if value is not None:
                props[key] = _i64(value)
        super().__init__(operands=[x, w, scale, [bias] if bias else [], [acc] if acc else []],
                         properties=props, result_types=[TensorType(Float32Type(), [t, n])])

    @property
    def activation_bits(self) -> int | None:
        return _int(self.act_bits)

    @property
    def activation_group(self) -> int | None:
        return _int(self.act_group)

    def verify_(self) -> None:
        bits = self.weight_bits
        if bits not in WEIGHT_BITS:
            raise VerifyException(f"{self.name}: bits = {bits} is not supported (expected one "
                                  f"of {', '.join(map(str, WEIGHT_BITS))})")
        _expect_f32(self, "input", self.input)
        n, wcols = _shape(self, "weight", self.weight, 2)
        k = _linear_shapes(self, self.input, self.result, self.bias, n)
        if k == DYNAMIC:
            raise VerifyException(f"{self.name}: input features must be static (the packed "
                                  "weight rows are sized from them)")
        _expect_int(self, "weight", self.weight, 8, unsigned=bits < 8)
        row = packed_row_bytes(k, bits)
        if wcols != row:
            what = {8: "K", 4: "ceil(K / 2) bytes (two 4-bit values per byte)",
                    1: "ceil(K / 8) bytes (eight signs per byte)"}[bits]
            raise VerifyException(f"{self.name}: weight rows have {wcols} columns; {bits}-bit "
                                  f"weights for K = {k} inputs need {what} = {row}")
        group = self.group_size
        _positive(self, "group", group)
        _expect_f32(self, "scale", self.scale)
        s = _shape(self, "scale", self.scale)
        if bits == 1:
            if group is not None:
                raise VerifyException(f"{self.name}: 1-bit weights have one alpha per output "
                                      f"channel; group = {group} is not supported")
            _expect_shape(self, "scale (alpha, one per output channel)", s, (n,))
        elif group is not None:
            _expect_shape(self, f"scale (one per group of {group} inputs)", s,
                          (n, ceil_div(k, group)))
        elif s != (1,):
            _expect_shape(self, "scale (per channel, or [1] per tensor)", s, (n,))
        if self.acc is not None and self.acc.type != self.result.type:
            raise VerifyException(f"{self.name}: the accumulator {self.acc.type} differs from "
                                  f"the result {self.result.type}")
        ab, ag = self.activation_bits, self.activation_group
        if ab is None:
            if ag is not None:
                raise VerifyException(f"{self.name}: act_group = {ag} needs act_bits")
            return
        if ab not in ACT_BITS or bits != 1:
            raise VerifyException(f"{self.name}: act_bits = {ab} is supported only as 4-bit "
                                  f"activations with 1-bit weights (bits = 1), got bits = {bits}")
        if ag is None:
            raise VerifyException(f"{self.name}: act_bits = {ab} needs act_group (activation "
                                  "scales are per group of act_group inputs)")
        _positive(self, "act_group", ag)


@irdl_op_definition
class WEmbeddingOp(_PackedWeights, IRDLOperation):
    """Rows of a weight-quantized table: `dequant(W)[tokens]` as float32 `[T, D]`.

    The table is stored as `quant.wlinear` stores its weights (bits 8, 4 or 1, the same
    scales), so a token embedding tied to a quantized classifier reads the classifier's own
    packed rows: row `i` element `k` is `float32(q[i, k]) * s[i, k // group]` (per channel
    `s[i]`, per tensor `s[0]`); for 1 bit `+/-alpha[i]`. `D` is the result's width (the packed
    rows do not say it for 4 and 1 bits).
    """

    name = "quant.wembedding"
    tokens = operand_def(TensorType)
    weight = operand_def(TensorType)
    scale = operand_def(TensorType)
    bits = prop_def(IntegerAttr)
    group = opt_prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$tokens `,` $weight `,` $scale attr-dict `:` functional-type(operands, "
                       "results)")

    def __init__(self, tokens: SSAValue, w: SSAValue, scale: SSAValue, *, dim: int, bits: int,
                 group: int | None = None):
        props: dict[str, Attribute] = {"bits": _i64(bits)}
        if group is not None:
            props["group"] = _i64(group)
        t = tokens.type.get_shape()[0]
        super().__init__(operands=[tokens, w, scale], properties=props,
                         result_types=[TensorType(Float32Type(), [t, dim])])

    def verify_(self) -> None:
        bits = self.weight_bits
        if bits not in WEIGHT_BITS:
            raise VerifyException(f"{self.name}: bits = {bits} is not supported (expected one "
                                  f"of {', '.join(map(str, WEIGHT_BITS))})")
        (t,) = _shape(self, "tokens", self.tokens, 1)
        _expect_int(self, "tokens", self.tokens, 32)
        n, wcols = _shape(self, "weight", self.weight, 2)
        _expect_int(self, "weight", self.weight, 8, unsigned=bits < 8)
        rt, d = _shape(self, "result", self.result, 2)
        _expect_f32(self, "result", self.result)
        if d == DYNAMIC or wcols != packed_row_bytes(d, bits):
            raise VerifyException(f"{self.name}: weight rows have {_fmt((wcols,))} columns, not "
                                  f"the {bits}-bit packing of the result's {_fmt((d,))} "
                                  "features")
        if not _agree(rt, t):  # a `?` agrees with any count, as in transformer.embedding
            raise VerifyException(f"{self.name}: {_fmt((t,))} tokens give {_fmt((rt,))} rows")
        _expect_f32(self, "scale", self.scale)
        s, group = _shape(self, "scale", self.scale), self.group_size
        _positive(self, "group", group)
        if group is not None:
            _expect_shape(self, f"scale (one per group of {group})", s, (n, ceil_div(d, group)))
        elif s != (1,) or bits == 1:
            _expect_shape(self, "scale (one per row)", s, (n,))


# The int8 KV cache ----------------------------------------------------------------------------

def _cache_shape(op: IRDLOperation, what: str, value: SSAValue) -> tuple[int, int, int, int]:
    shape = _shape(op, what, value, 4)
    if DYNAMIC in shape:
        raise VerifyException(f"{op.name}: {what} must have a static shape [layers, kv_heads, "
                              f"capacity, head_dim], got {_fmt(shape)}")
    if min(shape) <= 0:
        raise VerifyException(f"{op.name}: {what} has an empty dimension: {_fmt(shape)}")
    _expect_int(op, what, value, 8)
    return shape  # type: ignore[return-value]


def _check_scales_of(op: IRDLOperation, what: str, cache: tuple[int, int, int, int],
                     scales: SSAValue) -> None:
    _expect_f32(op, what, scales)
    s = _shape(op, what, scales)
    if s != cache[:3]:
        raise VerifyException(f"{op.name}: {what} is {_fmt(s)}, expected one scale per cached "
                              f"row [layers, kv_heads, capacity] = {_fmt(cache[:3])}")


def _check_layer(op: IRDLOperation, layer: int, layers: int) -> None:
    if not 0 <= layer < layers:
        raise VerifyException(f"{op.name}: layer {layer} is outside the cache's {layers} layers")


@irdl_op_definition
class KVWriteOp(IRDLOperation):
    """`transformer.kv_write` into an int8 cache: each new row of one (position, kv head) is
    quantized with its own scale `s = max|row| / 127` (1.0 when 0), `q = clip(round(row / s),
    -127, 127)`, stored in slot `pos + t` (or `(pos + t) % C` with `ring`) of layer `layer`.

    `cache: [L, KV, C, hd] i8`, `scales: [L, KV, C] f32`, `new: [T, KV * hd] f32`; returns the
    updated cache and scales (value semantics, like the float op).
    """

    name = "quant.kv_write"
    cache = operand_def(TensorType)
    scales = operand_def(TensorType)
    new = operand_def(TensorType)
    pos = operand_def(IndexType)
    layer = prop_def(IntegerAttr)
    ring = opt_prop_def(UnitAttr)
    result = result_def(TensorType)
    result_scales = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$cache `,` $scales `,` $new `,` $pos attr-dict `:` type($cache) `,` "
                       "type($scales) `,` type($new) `->` type($result) `,` "
                       "type($result_scales)")

    def __init__(self, cache: SSAValue, scales: SSAValue, new: SSAValue, pos: SSAValue, *,
                 layer: int, ring: bool = False):
        props: dict[str, Attribute] = {"layer": _i64(layer)}
        if ring:
            props["ring"] = UnitAttr()
        super().__init__(operands=[cache, scales, new, pos], properties=props,
                         result_types=[cache.type, scales.type])

    @property
    def is_ring(self) -> bool:
        return self.ring is not None

    def verify_(self) -> None:
        shape = _cache_shape(self, "cache", self.cache)
        layers, kvh, _, hd = shape
        _check_scales_of(self, "scales", shape, self.scales)
        _check_layer(self, self.layer.value.data, layers)
        _expect_f32(self, "new", self.new)
        _, d = _shape(self, "new", self.new, 2)
        if d != DYNAMIC and d != kvh * hd:
            raise VerifyException(f"{self.name}: new rows have {d} features, the cache holds "
                                  f"kv_heads * head_dim = {kvh} * {hd} = {kvh * hd}")
        if self.result.type != self.cache.type or self.result_scales.type != self.scales.type:
            raise VerifyException(f"{self.name}: results must have the types of the cache and "
                                  "scales operands")


@irdl_op_definition
class CachedAttentionOp(IRDLOperation):
    """`transformer.cached_attention` over int8 caches: every cached row is read back as
    `float32(q) * s` with its scale, then attention proceeds in float32 as the float op does
    (with `integer_softmax`: the softmax is `irtool.numerics.intops.int_softmax`).
    """

    name = "quant.cached_attention"
    query = operand_def(TensorType)
    kcache = operand_def(TensorType)
    kscales = operand_def(TensorType)
    vcache = operand_def(TensorType)
    vscales = operand_def(TensorType)
    end = operand_def(IndexType)
    layer = prop_def(IntegerAttr)
    heads = prop_def(IntegerAttr)
    kv_heads = prop_def(IntegerAttr)
    head_dim = prop_def(IntegerAttr)
    scale = prop_def(FloatAttr[AnyFloat])
    ring = opt_prop_def(UnitAttr)
    integer_softmax = opt_prop_def(UnitAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$query `,` $kcache `,` $kscales `,` $vcache `,` $vscales `,` $end "
                       "attr-dict `:` type($query) `,` type($kcache) `,` type($kscales) `,` "
                       "type($vcache) `,` type($vscales) `->` type($result)")

    def __init__(self, q: SSAValue, kcache: SSAValue, kscales: SSAValue, vcache: SSAValue,
                 vscales: SSAValue, end: SSAValue, *, layer: int, heads: int, kv_heads: int,
                 head_dim: int, scale: float, ring: bool = False,
                 integer_softmax: bool = False):
        props: dict[str, Attribute] = {"layer": _i64(layer), "heads": _i64(heads),
                                       "kv_heads": _i64(kv_heads), "head_dim": _i64(head_dim),
                                       "scale": _f32(scale)}
        if ring:
            props["ring"] = UnitAttr()
        if integer_softmax:
            props["integer_softmax"] = UnitAttr()
        super().__init__(operands=[q, kcache, kscales, vcache, vscales, end], properties=props,
                         result_types=[q.type])

    @property
    def is_ring(self) -> bool:
        return self.ring is not None

    @property
    def has_integer_softmax(self) -> bool:
        return self.integer_softmax is not None

    def verify_(self) -> None:
        _expect_f32(self, "query", self.query)
        t, dq, _, kvh, hd = verify_heads(self, self.query)
        shape = _cache_shape(self, "kcache", self.kcache)
        if shape[1] != kvh or shape[3] != hd:
            raise VerifyException(f"{self.name}: kcache has {shape[1]} kv heads of {shape[3]} "
                                  f"dims, expected kv_heads = {kvh} and head_dim = {hd}")
        if self.vcache.type != self.kcache.type:
            raise VerifyException(f"{self.name}: vcache type {self.vcache.type} differs from "
                                  f"kcache type {self.kcache.type}")
        _check_scales_of(self, "kscales", shape, self.kscales)
        _check_scales_of(self, "vscales", shape, self.vscales)
        _check_layer(self, self.layer.value.data, shape[0])
        _expect_shape(self, "result", _shape(self, "result", self.result, 2), (t, dq))


# Integer approximations of the non-linear ops (--integer-only) ---------------------------------
# Float32 tensors in and out, integer arithmetic inside; the contract (grids, polynomial, integer
# square root) is `irtool.numerics.intops`. Each op has the operands, properties and checks of
# the transformer op it stands for.

class _IntVersionOf:
    """Verification borrowed from the transformer op this op stands for (same operands and
    properties), so the integer version accepts exactly what the float one does."""

    FLOAT_OP: ClassVar[type[IRDLOperation]]

    def verify_(self) -> None:
        self.FLOAT_OP.verify_(self)  # type: ignore[arg-type]


@irdl_op_definition
class IntRMSNormOp(_IntVersionOf, tf.RMSNormFields):
    """`transformer.rms_norm` with an integer mean of squares and integer square root; only the
    gain multiplies in float32 (`irtool.numerics.intops.int_rms_norm`)."""

    name = "quant.int_rms_norm"
    FLOAT_OP: ClassVar = tf.RMSNormOp


@irdl_op_definition
class IntSiluOp(_IntVersionOf, IRDLOperation):
    """`transformer.silu` with an I-BERT-style integer sigmoid
    (`irtool.numerics.intops.int_silu`)."""

    name = "quant.int_silu"
    FLOAT_OP: ClassVar = tf.SiluOp
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, x: SSAValue):
        super().__init__(operands=[x], result_types=[x.type])

    def _check_result_like(self, operand: SSAValue) -> None:
        tf._ActivationOp._check_result_like(self, operand)  # type: ignore[arg-type]


@irdl_op_definition
class IntAttentionOp(_IntVersionOf, tf.AttentionFields):
    """`transformer.attention` whose softmax is the integer one
    (`irtool.numerics.intops.int_softmax`); the dot products stay float32."""

    name = "quant.int_attention"
    FLOAT_OP: ClassVar = tf.AttentionOp

    def __init__(self, like: tf.AttentionOp):
        super().__init__(operands=list(like.operands), properties=dict(like.properties),
                         result_types=[like.result.type])


Quant = Dialect(
    "quant",
    [QuantizeOp, DequantizeOp, RequantizeOp, DynamicQuantizeOp, QLinearOp, WLinearOp,
     WEmbeddingOp,
     KVWriteOp, CachedAttentionOp, IntRMSNormOp, IntSiluOp, IntAttentionOp],
    [],
)
