"""Recognisers for the subgraphs `torch.onnx.export` emits for transformer building blocks.

Each matcher looks at the node producing one value and, if the subgraph is one it knows,
returns what the raiser needs (the data inputs, the constants, the parameters) and the
data-dependent nodes it covers; otherwise None. Matchers never build IR: the raiser in
`onnx_import` does, so one analysis can feed several ops (a fused qkv linear feeds three).

The matchers work on *values*, not on exact node sequences: products are flattened (so the
order torch happened to multiply in does not matter), constants are told apart from
activations by data dependence, and anything that depends on the sequence length is
evaluated at probe lengths (see `onnx_shapes`). The attention matcher, which walks the most
varied code, additionally re-runs each q/k/v head path with onnx's reference evaluator and
checks it against the raised interpretation, so a layout it misreads fails loudly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from irtool.errors import IrtoolError
from irtool.frontend.onnx_shapes import (
    PROBES,
    SEQ,
    ShapeEvaluator,
    UnsupportedNode,
    _slices,
    attr,
    split_sizes,
)

MASKED = -1e4  # additive mask entries at or below this hide a key


# ---------------------------------------------------------------------------------------------
# small helpers


def producer(ev: ShapeEvaluator, value: str, *ops: str) -> onnx.NodeProto | None:
    """The node producing `value` if it is one of `ops` (any op when none are given)."""
    node = ev.g.node(value) if value else None
    return node if node is not None and (not ops or node.op_type in ops) else None


def node_ids(ev: ShapeEvaluator, *values: str) -> list[int]:
    return [ev.g.index(v) for v in values if v in ev.g.producer]


def constant(ev: ShapeEvaluator, value: str) -> np.ndarray | None:
    """The value of `value` if it is a constant (static and the same at every length)."""
    if value in ev.g.constants:
        return ev.g.constants[value]
    if not value or not ev.is_static(value):
        return None
    a, b = ev.values(value)
    return a if a.shape == b.shape and np.array_equal(a, b) else None


def scalar(ev: ShapeEvaluator, value: str) -> float | None:
    c = constant(ev, value)
    return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None


def close(value: float | None, want: float, rel: float = 1e-3) -> bool:
    return value is not None and abs(value - want) <= rel * abs(want)


def single_use(ev: ShapeEvaluator, value: str) -> bool:
    """One node reads the data of `value`; nodes that read only its shape (a Shape feeding a
    mask, as optimum's Gemma export does with the unscaled embedding) do not count: they
    are evaluated, never computed on the data."""
    data_uses = [i for i in ev.g.consumers.get(value, [])
                 if not all(ev.is_static(o) for o in ev.g.nodes[i].output if o)]
    return len(data_uses) == 1 and value != ev.g.output_name


def is_activation(ev: ShapeEvaluator, value: str) -> bool:
    """A data value laid out like irtool activations: [1, T, F] or [T, F], F static."""
    if not ev.is_data(value):
        return False
    dims = ev.dims(value)
    return dims[-2:-1] == (SEQ,) and isinstance(dims[-1], int) and dims[:-2] in ((), (1,))


def scope_name(node_name: str) -> str | None:
    """'/blocks.0/wq/MatMul' -> 'blocks.0.wq': the module path torch wrote into the name."""
    parts = [p for p in node_name.split("/") if p]
    if parts and re.fullmatch(r"[A-Z][A-Za-z]*(_\d+)?", parts[-1]):
        parts = parts[:-1]
    name = ".".join(parts)
    return name if name and re.fullmatch(r"[A-Za-z_][\w.]*", name) \
        and not name.startswith("node_") else None


@dataclass
class Product:
    """A flattened product: coefficient * prod(factors) * prod(arrays), with its Mul nodes."""

    coefficient: float = 1.0
    factors: list[str] = field(default_factory=list)  # data values
    arrays: list[str] = field(default_factory=list)  # non-scalar constants
    nodes: list[int] = field(default_factory=list)


def flatten_product(ev: ShapeEvaluator, value: str) -> Product:
    """Flatten nested Muls below `value`; inner Muls are opened only if used once."""
    out = Product()

    def visit(v: str, top: bool) -> None:
        node = producer(ev, v, "Mul")
        if node is not None and ev.is_data(v) and (top or single_use(ev, v)):
            out.nodes.append(ev.g.index(v))
            for i in node.input:
                visit(i, False)
        elif (s := scalar(ev, v)) is not None:
            out.coefficient *= s
        elif ev.is_data(v):
            out.factors.append(v)
        else:
            out.arrays.append(v)

    visit(value, True)
    return out


def split_static(ev: ShapeEvaluator, node: onnx.NodeProto) -> tuple[str, str] | None:
    """(constant input, data input) of a binary node with exactly one of each."""
    a, b = node.input[0], node.input[1]
    if ev.is_static(a) and ev.is_data(b):
        return a, b
    if ev.is_data(a) and ev.is_static(b):
        return b, a
    return None


# ---------------------------------------------------------------------------------------------
# linear layers


@dataclass
class Linear:
    """`x @ weight (+ bias)` with weight in ONNX's [in, out] layout."""

    x: str
    weight: np.ndarray
    bias: np.ndarray | None
    name: str | None  # module path from the node name, e.g. 'blocks.0.wq'
    weight_source: str
    bias_source: str | None
    nodes: list[int]


def match_linear(ev: ShapeEvaluator, value: str) -> Linear | None:
    """MatMul(x, W) or Add(MatMul(x, W), b) with constant W [in, out] and b [out]."""
    add = producer(ev, value, "Add")
    if add is not None and (pair := split_static(ev, add)) is not None:
        bias_name, inner = pair
        bias = constant(ev, bias_name)
        core = _matmul(ev, inner) if single_use(ev, inner) else None
        if core is None or bias is None or bias.shape != (core.weight.shape[1],):
            return None
        core.bias, core.bias_source = bias, bias_name
        core.nodes.append(ev.g.index(value))
        return core
    return _matmul(ev, value)


def _matmul(ev: ShapeEvaluator, value: str) -> Linear | None:
    gemm = _gemm(ev, value)
    if gemm is not None:
        return gemm
    node = producer(ev, value, "MatMul")
    if node is None or not ev.is_data(node.input[0]):
        return None
    w = constant(ev, node.input[1])
    if w is None or w.ndim != 2:
        return None
    return Linear(node.input[0], w, None, scope_name(node.name), node.input[1], None,
                  [ev.g.index(value)])


def _gemm(ev: ShapeEvaluator, value: str) -> Linear | None:
    """Gemm(x, W, C) on a [T, in] activation, W and C constant: `alpha * x @ op(W) + beta * C`
    (the exporters' addmm / nn.Linear; onnxscript's Gemm rewrite only covers a Reshape-wrapped
    Gemm without transB)."""
    node = producer(ev, value, "Gemm")
    if node is None or attr(node, "transA", 0) or not ev.is_data(node.input[0]):
        return None
    w = constant(ev, node.input[1])
    if w is None or w.ndim != 2:
        return None
    w = (w.T if attr(node, "transB", 0) else w) * np.float32(attr(node, "alpha", 1.0))
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = constant(ev, node.input[2])
        if c is None or c.size not in (1, w.shape[1]):
            return None
        bias = np.broadcast_to(c.reshape(-1) * np.float32(attr(node, "beta", 1.0)),
                               (w.shape[1],)).astype(np.float32)
    return Linear(node.input[0], np.ascontiguousarray(w, dtype=np.float32), bias,
                  scope_name(node.name), node.input[1], node.input[2] if bias is not None
                  else None, [ev.g.index(value)])


def match_split_linear(ev: ShapeEvaluator, value: str) -> tuple[Linear, int] | None:
    """One output of a Split (along the features) of a linear: a linear of its own."""
    node = producer(ev, value, "Split")
    if node is None:
        return None
    source, layout = through_layout(ev, node.input[0])
    lin = match_linear(ev, source) if single_use(ev, source) else None
    rank = len(ev.shape(node.input[0], PROBES[0]))
    if lin is None or attr(node, "axis", 0) % rank != rank - 1:
        return None
    part = ev.g.output_index(value)
    sizes = split_sizes(ev, node, PROBES[0])
    lo, hi = sum(sizes[:part]), sum(sizes[:part + 1])
    bias = None if lin.bias is None else lin.bias[lo:hi]
    return Linear(lin.x, lin.weight[:, lo:hi], bias, lin.name, lin.weight_source,
                  lin.bias_source, lin.nodes + layout + [ev.g.index(value)]), part


def match_slice_linear(ev: ShapeEvaluator, value: str) -> tuple[Linear, str] | None:
    """A Slice along the features of a linear (a fused QKV or gate/up projection sliced
    apart): a linear of its own, returned with a label of its columns."""
    node = producer(ev, value, "Slice")
    if node is None or not is_activation(ev, value):
        return None
    source, layout = through_layout(ev, node.input[0])
    lin = match_linear(ev, source) if is_activation(ev, source) else None
    if lin is None:
        return None
    width = lin.weight.shape[1]
    cols = np.arange(width)
    rank = len(ev.shape(node.input[0], PROBES[0]))
    picked = np.zeros((1,) * (rank - 1) + (width,), np.float32) + cols.astype(np.float32)
    inputs = [picked] + [ev.value(i, PROBES[0]) if i else None for i in node.input[1:]]
    try:
        # which columns survive, Slice read as the evaluator reads it
        kept = picked[_slices(node, inputs, rank)].reshape(-1).astype(np.int64)
    except (IndexError, ValueError):
        return None
    if kept.size == 0 or \
            ev.shape(value, PROBES[0])[:-1] != ev.shape(node.input[0], PROBES[0])[:-1]:
        return None
    bias = None if lin.bias is None else lin.bias[kept]
    label = f"{kept[0]}_{kept[-1] + 1}"
    return Linear(lin.x, lin.weight[:, kept], bias, lin.name, lin.weight_source,
                  lin.bias_source, lin.nodes + layout + [ev.g.index(value)]), label


def through_layout(ev: ShapeEvaluator, value: str) -> tuple[str, list[int]]:
    """Past single-use reshapes between [T, F] and [1, T, F] (exporters flatten the batch
    around Gemm): (the value before them, their nodes)."""
    nodes = []
    while (node := producer(ev, value, "Reshape", "Squeeze", "Unsqueeze", "Identity")) \
            is not None and is_activation(ev, value) and is_activation(ev, node.input[0]) \
            and ev.dims(value)[-1] == ev.dims(node.input[0])[-1] \
            and single_use(ev, node.input[0]):
        nodes.append(ev.g.index(value))
        value = node.input[0]
    return value, nodes


def match_scaled(ev: ShapeEvaluator, value: str) -> tuple[str, float] | None:
    """Mul(x, c) or Div(x, c) with a scalar constant c (embedding scales, q scaling, logit
    scales, residual multipliers): (x, the factor)."""
    node = producer(ev, value, "Mul", "Div")
    pair = split_static(ev, node) if node is not None else None
    if pair is None or (c := scalar(ev, pair[0])) is None:
        return None
    if node.op_type == "Div":
        if pair[0] != node.input[1] or c == 0.0:
            return None
        return pair[1], 1.0 / c
    return pair[1], c


# ---------------------------------------------------------------------------------------------
# norms and activations


@dataclass
class Norm:
    x: str
    eps: float
    gamma: str | None  # constant value names
    beta: str | None
    name: str | None
    nodes: list[int]


def match_rms_norm(ev: ShapeEvaluator, value: str) -> Norm | None:
    """x * 1/sqrt(mean(x^2) + eps) [* gamma] in its Mul/Div/Reciprocal spellings."""
    node = producer(ev, value, "Mul", "Div")
    if node is None:
        return None
    if node.op_type == "Div":  # x / sqrt(...) without gamma
        core = _rms_denominator(ev, node.input[1], "Sqrt")
        if core is None or core[0] != node.input[0]:
            return None
        return Norm(core[0], core[1], None, None, scope_name(node.name),
                    core[2] + [ev.g.index(value)])
    prod = flatten_product(ev, value)
    if prod.coefficient != 1.0 or len(prod.arrays) > 1 or len(prod.factors) not in (1, 2):
        return None
    core = None
    if len(prod.factors) == 2:  # x * rsqrt(...)
        for x, r in (prod.factors, prod.factors[::-1]):
            core = _rms_denominator(ev, r, "Reciprocal")
            if core is not None and core[0] == x:
                break
            core = None
    elif (div := producer(ev, prod.factors[0], "Div")) is not None:  # (x / sqrt(...)) * g
        core = _rms_denominator(ev, div.input[1], "Sqrt")
        if core is not None and core[0] == div.input[0] and single_use(ev, prod.factors[0]):
            core = (core[0], core[1], core[2] + [ev.g.index(prod.factors[0])])
        else:
            core = None
    if core is None:
        return None
    gamma = prod.arrays[0] if prod.arrays else None
    if gamma is not None and constant(ev, gamma) is None:
        return None
    return Norm(core[0], core[1], gamma, None, scope_name(node.name), core[2] + prod.nodes)


def _rms_denominator(ev: ShapeEvaluator, value: str, form: str):
    """Match 1/sqrt(mean(x^2)+eps) (form 'Reciprocal') or sqrt(mean(x^2)+eps) ('Sqrt')."""
    nodes = []
    if form == "Reciprocal":
        node = producer(ev, value, "Div", "Reciprocal")
        if node is None:
            return None
        if node.op_type == "Div" and scalar(ev, node.input[0]) != 1.0:
            return None
        value = node.input[-1]
        nodes.append(ev.g.index(node.output[0]))
    sqrt = producer(ev, value, "Sqrt")
    add = producer(ev, sqrt.input[0], "Add") if sqrt is not None else None
    pair = split_static(ev, add) if add is not None else None
    if pair is None or (eps := scalar(ev, pair[0])) is None:
        return None
    mean = producer(ev, pair[1], "ReduceMean")
    if mean is None or not _last_axis_keepdims(ev, mean):
        return None
    x = _square_of(ev, mean.input[0])
    if x is None:
        return None
    nodes += node_ids(ev, sqrt.output[0], add.output[0], mean.output[0], mean.input[0])
    return x, eps, nodes


def _last_axis_keepdims(ev: ShapeEvaluator, node: onnx.NodeProto) -> bool:
    rank = len(ev.shape(node.input[0], PROBES[0]))
    axes = list(attr(node, "axes", []) or [])
    if len(node.input) > 1 and node.input[1]:
        axes = [int(a) for a in constant(ev, node.input[1]).reshape(-1)]
    return [a % rank for a in axes] == [rank - 1] and attr(node, "keepdims", 1) == 1


def _square_of(ev: ShapeEvaluator, value: str) -> str | None:
    node = producer(ev, value, "Pow", "Mul")
    if node is None:
        return None
    if node.op_type == "Pow":
        return node.input[0] if scalar(ev, node.input[1]) == 2.0 else None
    return node.input[0] if node.input[0] == node.input[1] else None


def match_layer_norm(ev: ShapeEvaluator, value: str) -> Norm | None:
    """LayerNormalization over the last axis (opset 17), scale and optional bias constant."""
    node = producer(ev, value, "LayerNormalization")
    if node is None or ev.g.output_index(value) != 0:
        return None
    rank = len(ev.shape(node.input[0], PROBES[0]))
    if attr(node, "axis", -1) % rank != rank - 1:
        return None
    beta = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if constant(ev, node.input[1]) is None or (beta and constant(ev, beta) is None):
        return None
    return Norm(node.input[0], float(attr(node, "epsilon", 1e-5)), node.input[1], beta,
                scope_name(node.name), [ev.g.index(value)])


@dataclass
class Activation:
    x: str
    kind: str  # 'silu', 'gelu' or 'gelu_tanh'
    nodes: list[int]


def match_silu(ev: ShapeEvaluator, value: str) -> Activation | None:
    """x * sigmoid(x)."""
    prod = flatten_product(ev, value)
    if prod.coefficient != 1.0 or prod.arrays or len(prod.factors) != 2:
        return None
    for x, s in (prod.factors, prod.factors[::-1]):
        sig = producer(ev, s, "Sigmoid")
        if sig is not None and sig.input[0] == x and single_use(ev, s):
            return Activation(x, "silu", prod.nodes + [ev.g.index(s)])
    return None


def match_gelu(ev: ShapeEvaluator, value: str) -> Activation | None:
    """0.5 * x * (1 + erf(x / sqrt 2)) or 0.5 * x * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
    or the opset-20 Gelu op itself (dynamo exports)."""
    op = producer(ev, value, "Gelu")
    if op is not None and ev.is_data(op.input[0]):
        approximate = attr(op, "approximate", b"none")
        kind = {b"none": "gelu", b"tanh": "gelu_tanh"}.get(approximate)
        return Activation(op.input[0], kind, [ev.g.index(value)]) if kind else None
    prod = flatten_product(ev, value)
    if not close(prod.coefficient, 0.5) or prod.arrays or len(prod.factors) != 2:
        return None
    for x, s in (prod.factors, prod.factors[::-1]):
        add = producer(ev, s, "Add")
        pair = split_static(ev, add) if add is not None else None
        if pair is None or scalar(ev, pair[0]) != 1.0:
            continue
        inner = _gelu_inner(ev, pair[1], x)
        if inner is not None:
            kind, nodes = inner
            return Activation(x, kind, prod.nodes + nodes + [ev.g.index(s)])
    return None


def _gelu_inner(ev: ShapeEvaluator, value: str, x: str) -> tuple[str, list[int]] | None:
    node = producer(ev, value, "Erf", "Tanh")
    if node is None:
        return None
    arg = node.input[0]
    if node.op_type == "Erf":
        div = producer(ev, arg, "Div")
        if div is not None and div.input[0] == x and close(scalar(ev, div.input[1]),
                                                           math.sqrt(2.0)):
            return "gelu", node_ids(ev, value, arg)
        prod = flatten_product(ev, arg)
        if prod.factors == [x] and not prod.arrays and close(prod.coefficient, 0.5 ** 0.5):
            return "gelu", node_ids(ev, value) + prod.nodes
        return None
    outer = flatten_product(ev, arg)  # sqrt(2/pi) * (x + 0.044715 x^3)
    if not close(outer.coefficient, math.sqrt(2.0 / math.pi)) or len(outer.factors) != 1 \
            or outer.arrays:
        return None
    add = producer(ev, outer.factors[0], "Add")
    if add is None:
        return None
    for a, b in (add.input, add.input[::-1]):
        cube = flatten_product(ev, b)
        if a == x and close(cube.coefficient, 0.044715) and not cube.arrays \
                and _is_cube(ev, cube.factors, x):
            extra = [ev.g.index(f) for f in cube.factors if f != x]
            return "gelu_tanh", (node_ids(ev, value, outer.factors[0]) + outer.nodes
                                 + cube.nodes + extra)
    return None


def _is_cube(ev: ShapeEvaluator, factors: list[str], x: str) -> bool:
    if factors == [x] * 3:
        return True
    if len(factors) == 1 and (pow_ := producer(ev, factors[0], "Pow")) is not None:
        return pow_.input[0] == x and scalar(ev, pow_.input[1]) == 3.0
    return False


# ---------------------------------------------------------------------------------------------
# embeddings


def match_embedding(ev: ShapeEvaluator, value: str) -> tuple[str, list[int]] | None:
    """Gather(table, input_ids): the token embedding (returns the table's name)."""
    node = producer(ev, value, "Gather")
    if node is None or attr(node, "axis", 0) != 0:
        return None
    ids = node.input[1]
    # through Casts and reshapes of the ids (GPT-2 gathers by input_ids.view(-1, T))
    while (op := producer(ev, ids, "Cast", "Reshape", "Squeeze", "Unsqueeze", "Identity")) \
            is not None and ev.dims(op.input[0])[-1:] == (SEQ,) \
            and ev.dims(ids)[-1:] == (SEQ,):
        ids = op.input[0]
    table = constant(ev, node.input[0])
    if ids != ev.g.input_name or table is None or table.ndim != 2:
        return None
    return node.input[0], node_ids(ev, value, node.input[1])


def match_position_table(ev: ShapeEvaluator, value: str) -> tuple[str, np.ndarray] | None:
    """A token-independent [1, T, D] value: a function of the positions only, so a table.

    Returns (a name for the table, the table). Rows 0..T-1 of a constant table keep that
    table (and its name); anything else (OPT's offset positions computed by CumSum, sinusoids)
    is evaluated at the full context length. Matching on values, not nodes, accepts
    Gather(wpe, Range), Slice(wpe, 0, T) and the like.
    """
    if not ev.is_static(value) or constant(ev, value) is not None:
        return None
    dims = ev.dims(value)
    if dims[-2:-1] != (SEQ,) or not isinstance(dims[-1], int) or dims[:-2] not in ((), (1,)):
        return None
    name = find_row_table(ev, value, dims[-1])
    if name is not None:
        return name, ev.g.constants[name]
    return value, evaluated_table(ev, value, dims[-1], "position table")


def find_row_table(ev: ShapeEvaluator, value: str, width: int) -> str | None:
    """The constant [R, width] table whose first T rows `value` holds at every probe."""
    rows = [v.reshape(t, width) for v, t in zip(ev.values(value), PROBES, strict=True)]
    for index in ev.g.ancestors(value, through_shape=False):
        for name in ev.g.nodes[index].input:
            table = ev.g.constants.get(name)
            if table is not None and table.ndim == 2 and table.shape[1] == width \
                    and table.shape[0] >= PROBES[-1] \
                    and all(np.array_equal(table[:t], r)
                            for r, t in zip(rows, PROBES, strict=True)):
                return name
    return None


# ---------------------------------------------------------------------------------------------
# attention


@dataclass
class Rope:
    cos: np.ndarray  # [max_positions, rotary_dim / 2]
    sin: np.ndarray
    rotary_dim: int
    style: str


@dataclass
class HeadPath:
    """The layout (and RoPE) nodes between a projection and one operand of the score MatMuls."""

    source: str  # the [1, T, n * head_dim] projection value
    nodes: list[int]
    tables: list[str]  # constant non-scalar operands of Muls: the RoPE tables
    negated: bool  # a Neg is on the path: HF's rotate_half
    factor: float  # scalar constants multiplied in (folded into the attention scale)
    heads: int = 0
    rope: Rope | None = None
    # the source columns the path reads, head after head (a fused projection: GPT-NeoX's
    # per-head [q | k | v], Phi-3's [q | k | v]); None when it reads all of them in order
    columns: np.ndarray | None = None
    norm: Norm | None = None  # a per-head RMSNorm before the RoPE (Qwen3)


@dataclass
class Attention:
    q: HeadPath
    k: HeadPath
    v: HeadPath
    heads: int
    kv_heads: int
    head_dim: int
    scale: float
    causal: bool
    window: int | None  # sliding window of the last `window` keys (with causal)
    nodes: list[int]


PATH_OPS = {"Reshape", "Transpose", "Unsqueeze", "Squeeze", "Tile", "Expand", "Slice", "Gather",
            "Concat", "Split", "Neg", "Mul", "Add", "Sub", "Identity"}

# Every op type some matcher reads on data values (the raiser adds the ops it dispatches on).
# An op outside them is unsupported wherever it stands, so when a pattern fails above it the
# importer names that op, not the node where matching happened to stop.
MATCHED_OPS = PATH_OPS | {
    "Cast", "Div", "Erf", "Gelu", "Gemm", "IsNaN", "LayerNormalization", "MatMul", "Pow",
    "Reciprocal", "ReduceMean", "Sigmoid", "Softmax", "Sqrt", "Tanh", "Where"}


def match_attention(ev: ShapeEvaluator, value: str) -> Attention | None:
    """Reshape(Transpose(MatMul(Softmax(scores), V))) -> [1, T, heads * head_dim]."""
    reshape = producer(ev, value, "Reshape")
    if reshape is None or not is_activation(ev, value):
        return None
    tr = producer(ev, reshape.input[0], "Transpose")
    pv_value, same = (_through_identity_reshapes(ev, tr.input[0]) if tr is not None
                      else (None, []))
    pv = producer(ev, pv_value, "MatMul") if tr is not None else None
    probs, guard = (pv.input[0], []) if pv is not None else (None, [])
    if pv is not None and (g := _nan_guard(ev, probs)) is not None:
        probs, guard = g
    sm = producer(ev, probs, "Softmax") if pv is not None else None
    if sm is None or not all(ev.is_data(i) for i in pv.input):
        return None
    rank = len(ev.shape(pv.output[0], PROBES[0]))
    if list(attr(tr, "perm", [])) != ([0, 2, 1, 3] if rank == 4 else [1, 0, 2]) \
            or attr(sm, "axis", -1) % rank != rank - 1:
        return None
    qk, scale, causal, window, nodes = _scores(ev, sm.input[0])
    qh, kt = qk.input
    shape = _head_dims(ev, qh, transposed=False)
    if shape is None or _head_dims(ev, kt, transposed=True) != shape \
            or _head_dims(ev, pv.input[1], transposed=False) != shape \
            or ev.dims(value)[-1] != shape[0] * shape[1]:
        raise _layout_error(ev, sm, "the per-head query/key/value operands are not "
                                    "[1, heads, T, head_dim] (key: [1, heads, head_dim, T])")
    heads, head_dim = shape
    paths = [_head_path(ev, v, role, head_dim) for v, role in
             ((qh, "query"), (kt, "key"), (pv.input[1], "value"))]
    q, k, v = paths
    for path, start, transposed in ((q, qh, False), (k, kt, True), (v, pv.input[1], False)):
        _select_columns(ev, path, start, transposed, head_dim, sm)
    if q.heads != heads or k.heads != v.heads or heads % k.heads or v.factor != 1.0 \
            or v.rope is not None:
        raise _layout_error(ev, sm, "the query/key/value head counts do not fit together")
    for path, start, transposed in ((q, qh, False), (k, kt, True), (v, pv.input[1], False)):
        _verify_path(ev, path, start, heads, head_dim, transposed, sm)
    nodes += node_ids(ev, value, tr.output[0], pv.output[0], sm.output[0], qk.output[0])
    nodes += guard + same
    nodes += q.nodes + k.nodes + v.nodes
    return Attention(q, k, v, heads, k.heads, head_dim, scale * q.factor * k.factor, causal,
                     window, nodes)


def _through_identity_reshapes(ev: ShapeEvaluator, value: str) -> tuple[str, list[int]]:
    """Past Reshapes that keep the shape (the legacy SDPA export reshapes its output to
    itself): (the value before them, their nodes)."""
    nodes = []
    while (node := producer(ev, value, "Reshape")) is not None and all(
            ev.shape(node.input[0], t) == ev.shape(value, t) for t in PROBES):
        nodes.append(ev.g.index(value))
        value = node.input[0]
    return value, nodes


def _nan_guard(ev: ShapeEvaluator, value: str) -> tuple[str, list[int]] | None:
    """Where(IsNaN(p), 0, p): the guard torch's SDPA export puts after the Softmax for rows
    whose keys are all masked. With the causal (or sliding-window) masks irtool accepts every
    query sees at least its own key, so no row is all masked and the guard is the identity:
    (p, the guard's nodes), else None."""
    where = producer(ev, value, "Where")
    if where is None:
        return None
    cond, fill, p = where.input
    isnan = producer(ev, cond, "IsNaN")
    if isnan is None or isnan.input[0] != p or scalar(ev, fill) != 0.0:
        return None
    return p, node_ids(ev, value, cond)


def _layout_error(ev: ShapeEvaluator, softmax: onnx.NodeProto, why: str) -> IrtoolError:
    name = softmax.name or ev.g.label(ev.g.index(softmax.output[0]))
    return IrtoolError(f"cannot raise the attention around node '{name}': {why}; "
                       "irtool raises multi-head attention whose q/k/v come from projections "
                       "through Reshape/Transpose (optionally RoPE, Tile/Expand for grouped "
                       "KV heads), scaled by a constant and with a causal mask or none")


def _head_dims(ev: ShapeEvaluator, value: str, transposed: bool) -> tuple[int, int] | None:
    """(heads, head_dim) of a per-head operand [1, H, T, hd] or [H, T, hd] (T and hd
    swapped if `transposed`), else None."""
    dims = ev.dims(value)
    lead, rest = dims[:-3], dims[-3:]
    heads, a, b = rest if len(rest) == 3 else (None, None, None)
    seq, hd = (b, a) if transposed else (a, b)
    if lead not in ((), (1,)) or seq != SEQ or not isinstance(heads, int) \
            or not isinstance(hd, int):
        return None
    return heads, hd


def _scores(ev: ShapeEvaluator, value: str):
    """Walk from the Softmax input back to MatMul(Q, K^T): scale factors and the mask."""
    scale, visible, nodes, mask_nodes = 1.0, None, [], []
    while True:
        node = producer(ev, value)
        if node is None:
            raise IrtoolError(f"the attention scores '{value}' are not computed by a MatMul")
        if node.op_type == "MatMul" and all(ev.is_data(i) for i in node.input):
            break
        nodes.append(ev.g.index(value))
        if node.op_type == "Where" and ev.is_static(node.input[0]):
            value, masked = _where_mask(ev, node)
        elif node.op_type == "Add" and (pair := split_static(ev, node)) is not None:
            value, masked = pair[1], _additive_mask(ev, pair[0], node)
        elif node.op_type in ("Div", "Mul") and (pair := split_static(ev, node)) is not None \
                and (c := scalar(ev, pair[0])) is not None \
                and (node.op_type == "Mul" or pair[0] == node.input[1]):
            value, masked = pair[1], None
            scale = scale * c if node.op_type == "Mul" else scale / c
        else:
            raise UnsupportedNode(node, "between the attention scores and their Softmax")
        if masked is not None:
            mask_nodes.append(ev.g.index(node.output[0]))
            vis = [_key_visibility(~m, t, node)
                   for m, t in zip(masked, _mask_lengths(ev), strict=True)]
            visible = vis if visible is None else [a & b for a, b in zip(visible, vis,
                                                                          strict=True)]
    causal = visible is not None
    window = classify_mask(visible, ev.g.label(mask_nodes[0]), ev.mask_length) if causal \
        else None
    if causal and window is None and ev.mask_unchecked:
        raise IrtoolError(f"the attention mask applied by node '{ev.g.label(mask_nodes[0])}' "
                          f"is causal up to {ev.mask_length} tokens, but "
                          f"{ev.mask_unchecked}")
    return node, scale, causal, window, nodes


def _mask_lengths(ev: ShapeEvaluator) -> tuple[int, ...]:
    """Where masks are evaluated: the probes and the full context, or as much of it as
    `mask_length` allows (a sliding window shows only at lengths beyond it)."""
    return (*PROBES, ev.mask_length)


def sliding_window_mask(t: int, window: int | None) -> np.ndarray:
    """[t, t] keys visible to each query: causal, and the last `window` keys if given."""
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    visible = j <= i
    return visible & (j > i - window) if window is not None else visible


def classify_mask(visible: list[np.ndarray], node: str, context: int) -> int | None:
    """None for a causal mask, W for a causal sliding window of W keys (both exactly, at
    every evaluated length including the full context); anything else is refused."""
    full = visible[-1]
    window = int(full[-1].sum())
    window = None if window >= full.shape[0] else window
    if all(np.array_equal(v, sliding_window_mask(v.shape[0], window)) for v in visible):
        return window
    raise IrtoolError(f"the attention mask applied by node '{node}' is neither causal nor a "
                      f"causal sliding window (evaluated at {context} tokens); irtool raises "
                      "causal, sliding-window or unmasked self-attention")


def _where_mask(ev: ShapeEvaluator, node: onnx.NodeProto):
    """Where(cond, fill, scores) or Where(cond, scores, fill): (scores, masked per length)."""
    cond, a, b = node.input
    for fill, data, hide_when in ((a, b, True), (b, a, False)):
        f = scalar(ev, fill)
        if f is not None and f <= MASKED and ev.is_data(data):
            return data, [ev.value(cond, t).astype(bool) == hide_when for t in _mask_lengths(ev)]
    raise UnsupportedNode(node, "a Where that is not a -inf attention mask")


def _additive_mask(ev: ShapeEvaluator, value: str, node: onnx.NodeProto) -> list[np.ndarray]:
    """An added mask must be 0 (visible) or very negative (hidden): no biases like ALiBi."""
    values = [ev.value(value, t) for t in _mask_lengths(ev)]
    if not all(((m == 0) | (m <= MASKED)).all() for m in values):
        raise UnsupportedNode(node, "adding a bias to the attention scores")
    return [m <= MASKED for m in values]


def _key_visibility(visible: np.ndarray, t: int, node: onnx.NodeProto) -> np.ndarray:
    """Reduce a broadcastable mask to [T, T]; it must not differ between heads."""
    full = np.broadcast_to(visible, visible.shape[:-2] + (t, t)).reshape(-1, t, t)
    if not (full == full[0]).all():
        raise UnsupportedNode(node, "an attention mask that differs between heads")
    return full[0]


def _head_path(ev: ShapeEvaluator, start: str, role: str, head_dim: int) -> HeadPath:
    """Collect the nodes between `start` and its projection, stopping at [1, T, F] values."""
    sources, nodes, tables, negated, factor = [], [], [], False, 1.0
    norms: list[Norm] = []
    stack, seen = [start], set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if is_activation(ev, v):
            sources.append(v)
            continue
        if ev.dims(v)[-1] == head_dim and (norm := match_rms_norm(ev, v)) is not None:
            norms.append(norm)  # a per-head RMSNorm (Qwen3's q_norm / k_norm)
            nodes += [i for i in norm.nodes if i not in nodes]
            stack.append(norm.x)
            continue
        node = producer(ev, v)
        if node is None or node.op_type not in PATH_OPS:
            raise UnsupportedNode(node, f"in the attention {role} path") if node is not None \
                else IrtoolError(f"the attention {role} does not come from a projection")
        index = ev.g.index(v)
        if index in nodes:
            continue
        nodes.append(index)
        if node.op_type == "Neg":
            negated = True
        elif node.op_type == "Mul" and (pair := split_static(ev, node)) is not None:
            c = scalar(ev, pair[0])
            if c == -1.0:
                negated = True
            elif c is not None:
                factor *= c
            else:
                tables.append(pair[0])
        elif node.op_type in ("Add", "Sub") and split_static(ev, node) is not None:
            raise UnsupportedNode(node, f"adding a constant in the attention {role} path")
        stack.extend(i for i in node.input if ev.is_data(i))
    if len(set(sources)) != 1:
        raise IrtoolError(f"the attention {role} at '{start}' does not come from exactly one "
                          f"[1, T, features] projection (found {len(set(sources))})")
    if len(norms) > 1:
        raise IrtoolError(f"the attention {role} path holds {len(norms)} RMSNorms")
    path = HeadPath(sources[0], nodes, list(dict.fromkeys(tables)), negated, factor)
    path.norm = norms[0] if norms else None
    features = ev.dims(path.source)[-1]
    if features % head_dim:
        raise IrtoolError(f"the attention {role} projection has {features} features, not a "
                          f"multiple of head_dim {head_dim}")
    path.heads = features // head_dim
    path.rope = _rope(ev, path, role, head_dim) if path.tables else None
    return path


def _rope(ev: ShapeEvaluator, path: HeadPath, role: str, head_dim: int) -> Rope:
    """RoPE from the tables a head path multiplies by: cos has row 0 = 1, sin row 0 = 0."""
    found: dict[str, np.ndarray] = {}
    for name in path.tables:
        dims = ev.dims(name)
        width = dims[-1]
        if SEQ not in dims or not isinstance(width, int) \
                or any(d != 1 for d in dims[:-1] if d != SEQ):
            raise IrtoolError(f"the attention {role} path multiplies by '{name}' (dims "
                              f"{dims}), which is not a [T, width] rotary table")
        table_name = find_row_table(ev, name, width)
        table = ev.g.constants[table_name] if table_name is not None \
            else evaluated_table(ev, name, width, f"rotary table of the attention {role}")
        kind = "cos" if np.allclose(table[0], 1.0) else "sin" if np.allclose(table[0], 0.0) \
            else None
        if kind is None:
            raise IrtoolError(f"cannot tell cos from sin in the rotary tables of the attention "
                              f"{role} ('{table_name}' row 0 is neither all 1 nor all 0)")
        if kind in found and not np.array_equal(found[kind], table):
            raise IrtoolError(f"the attention {role} path multiplies by two different {kind} "
                              "tables")
        found[kind] = table
    if set(found) != {"cos", "sin"}:
        raise IrtoolError(f"the attention {role} path has RoPE tables {sorted(found)}, "
                          "expected one cos and one sin table")
    cos, sin = found["cos"], found["sin"]
    # The tables' layout tells the pairing: one angle per pair, repeated for both halves
    # (HF rotate_half), repeated for each pair of neighbours (GPT-J's rotate_every_two), or
    # not repeated (llama2.c: the path picks even/odd dims itself). _verify_path then checks
    # the whole path against this reading.
    width = cos.shape[1]

    def repeats(split) -> bool:
        return width % 2 == 0 and all(np.array_equal(*split(a)) for a in (cos, sin))

    halves = repeats(lambda a: (a[:, :width // 2], a[:, width // 2:]))
    pairs = repeats(lambda a: (a[:, 0::2], a[:, 1::2]))
    if halves and (path.negated or not pairs):
        rope = Rope(cos[:, :width // 2], sin[:, :width // 2], width, "rotate_half")
    elif pairs:
        rope = Rope(cos[:, 0::2], sin[:, 0::2], width, "interleaved")
    elif not path.negated:
        rope = Rope(cos, sin, 2 * width, "interleaved")
    else:
        raise IrtoolError(f"the rotate_half RoPE tables of the attention {role} do not "
                          "repeat their first half")
    if rope.rotary_dim > head_dim:
        raise IrtoolError(f"the RoPE tables of the attention {role} rotate {rope.rotary_dim} "
                          f"dims but a head has {head_dim}")
    return rope


def evaluated_table(ev: ShapeEvaluator, name: str, width: int, what: str) -> np.ndarray:
    """A [T, width] value that depends on the length only (cos/sin computed at run time from
    the positions, any RoPE variant or scaling), evaluated at the full context length: row p
    is position p's. It must be a table: its rows at a short length are the same rows."""
    full = np.asarray(ev.value(name, ev.context)).reshape(ev.context, width)
    for t in PROBES:
        short = np.asarray(ev.value(name, t)).reshape(t, width)
        if not np.allclose(short, full[:t], rtol=1e-6, atol=1e-7):
            raise IrtoolError(f"the {what} '{name}' changes with the sequence length (its "
                              f"first {t} rows differ at lengths {t} and {ev.context}): "
                              "a length-dependent RoPE scaling irtool cannot precompute")
    return full.astype(np.float32)


def _select_columns(ev: ShapeEvaluator, path: HeadPath, start: str, transposed: bool,
                    head_dim: int, softmax: onnx.NodeProto) -> None:
    """Which source columns land in which head, found by evaluation: the path's nodes run on
    a source whose every column holds its own index, read at position 0 (where RoPE is the
    identity: cos 1, sin 0). Heads repeated for grouped KV count once."""
    if path.norm is not None:  # normalised indices are no longer indices: whole heads in
        return                    # order (_verify_path checks it)
    t = PROBES[0]
    features = ev.dims(path.source)[-1]
    x = np.broadcast_to(np.arange(1, features + 1, dtype=np.float32), (1, t, features))
    out = _run_nodes(ev, sorted(path.nodes), path.source, start,
                     np.ascontiguousarray(x).reshape(ev.shape(path.source, t)), t)
    out = out.reshape((-1,) + out.shape[-2:])
    rows = (out[:, :, 0] if transposed else out[:, 0, :]) / np.float32(path.factor)
    cols = np.rint(rows) - 1
    if not np.allclose(rows - 1, cols, atol=1e-2) or cols.min() < 0 or cols.max() >= features \
            or rows.shape[-1] != head_dim:
        raise _layout_error(ev, softmax, f"the nodes from '{path.source}' to '{start}' do not "
                                         "pick whole heads out of their projection")
    heads: list[tuple] = []
    for r in cols.astype(np.int64):
        if tuple(r) not in heads:
            heads.append(tuple(r))
    selected = np.array([c for h in heads for c in h], dtype=np.int64)
    if np.array_equal(selected, np.arange(features)):
        return
    path.columns = selected
    path.heads = len(heads)


def _verify_path(ev: ShapeEvaluator, path: HeadPath, start: str, heads: int, head_dim: int,
                 transposed: bool, softmax: onnx.NodeProto) -> None:
    """Run the path's nodes with onnx's reference evaluator on random data and compare it
    with what the raised ops compute; a layout the matcher misread fails here."""
    t = PROBES[-1]
    x = np.random.default_rng(0).standard_normal((1, t, ev.dims(path.source)[-1]))
    x = x.astype(np.float32).reshape(ev.shape(path.source, t))
    got = _run_nodes(ev, sorted(path.nodes), path.source, start, x, t)
    want = _expected_heads(ev, x.reshape(t, -1), path, heads, head_dim, t)
    want = want.transpose(0, 2, 1) if transposed else want
    if got.shape != tuple(ev.shape(start, t)) or not np.allclose(
            got.reshape(want.shape), want, rtol=1e-4, atol=1e-5):
        what = f"RoPE ({path.rope.style})" if path.rope else "a plain head split"
        raise _layout_error(ev, softmax, f"the nodes from '{path.source}' to '{start}' do not "
                                         f"compute {what} as irtool understands it")


def _run_nodes(ev: ShapeEvaluator, nodes: list[int], source: str, output: str,
               x: np.ndarray, t: int) -> np.ndarray:
    """Evaluate `nodes` (in graph order) with onnx.reference; constants evaluated at `t`."""
    protos = [ev.g.nodes[i] for i in nodes]
    produced = {o for n in protos for o in n.output}
    statics = {i for n in protos for i in n.input if i and i not in produced and i != source}
    inits = [numpy_helper.from_array(np.asarray(ev.value(s, t)), s) for s in sorted(statics)]
    graph = helper.make_graph(
        protos, "head_path", [helper.make_tensor_value_info(source, onnx.TensorProto.FLOAT,
                                                            None)],
        [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ev.g.opset)])
    return ReferenceEvaluator(model).run(None, {source: x})[0]


def _expected_heads(ev: ShapeEvaluator, x: np.ndarray, path: HeadPath, heads: int,
                    head_dim: int, t: int) -> np.ndarray:
    """[heads, T, head_dim]: rope per source head, then KV heads repeated (head h uses h//g)."""
    if path.columns is not None:
        x = x[:, path.columns]
    y = x.reshape(t, path.heads, head_dim).astype(np.float64)
    if path.norm is not None:
        n = path.norm
        gamma = 1.0 if n.gamma is None else constant(ev, n.gamma).reshape(-1)
        y = y / np.sqrt((y * y).mean(-1, keepdims=True) + n.eps) * gamma
    if path.rope is not None:
        r = path.rope
        c, s = r.cos[:t, None, :], r.sin[:t, None, :]
        rot = y[..., :r.rotary_dim]
        if r.style == "interleaved":
            a, b = rot[..., 0::2], rot[..., 1::2]
            out = np.stack([a * c - b * s, a * s + b * c], axis=-1).reshape(rot.shape)
        else:
            half = r.rotary_dim // 2
            a, b = rot[..., :half], rot[..., half:]
            out = np.concatenate([a * c - b * s, b * c + a * s], axis=-1)
        y = np.concatenate([out, y[..., r.rotary_dim:]], axis=-1)
    y = np.repeat(y, heads // path.heads, axis=1) * path.factor
    return y.transpose(1, 0, 2)
