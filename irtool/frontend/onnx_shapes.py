"""Static facts about an ONNX graph for the raiser: producers, constants, and shape arithmetic.

Classic `torch.onnx.export` graphs compute every reshape target at run time from
Shape/Gather/Unsqueeze/Concat/Div chains, slice the rotary tables to `T` the same way, and
build the causal mask from the runtime shape; so the numbers the raiser needs (heads,
head_dim, which rows a table gives, whether a mask is causal) are not literals in the file.

Instead of reasoning symbolically we *evaluate* those data-independent subgraphs with numpy
for two concrete sequence lengths (the probes): a dimension equal at both probes is static, a
dimension equal to the probe at both is the sequence length `T`, anything else is unknown.
Token data is never needed: only shapes flow from the activations into this arithmetic.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from irtool.errors import IrtoolError

PROBES = (3, 5)  # two sequence lengths the shape arithmetic is evaluated at
SEQ = "T"  # marker of a dimension that is the sequence length

Dim = int | str | None  # static size, SEQ, or None (depends on T in some other way)


class UnsupportedNode(Exception):
    """A node the raiser cannot interpret (turned into an IrtoolError by the importer)."""

    def __init__(self, node: onnx.NodeProto, reason: str = ""):
        super().__init__(reason or node.op_type)
        self.node = node
        self.reason = reason


def attr(node: onnx.NodeProto, name: str, default=None):
    """The value of attribute `name` of `node` (numpy array for tensors), or `default`."""
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value
    return default


class OnnxGraph:
    """Index of one (optimized) graph: who produces each value, who reads it, the constants."""

    def __init__(self, graph: onnx.GraphProto, input_name: str, output_name: str,
                 opset: int = 17):
        self.opset = opset  # of the default domain: what the graph's nodes mean
        self.input_name = input_name
        self.output_name = output_name
        self.constants: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.inferred = _inferred_dims(graph, input_name)
        self.nodes: list[onnx.NodeProto] = []
        self.producer: dict[str, tuple[int, int]] = {}  # value -> (node index, output index)
        self.consumers: dict[str, list[int]] = {}
        for node in graph.node:
            if node.op_type == "Constant" and not node.domain:
                self.constants[node.output[0]] = _constant_node_value(node)
                continue
            index = len(self.nodes)
            self.nodes.append(node)
            for k, out in enumerate(node.output):
                self.producer[out] = (index, k)
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(index)

    def node(self, value: str) -> onnx.NodeProto | None:
        """The node producing `value` (None for constants and the graph input)."""
        hit = self.producer.get(value)
        return None if hit is None else self.nodes[hit[0]]

    def index(self, value: str) -> int:
        return self.producer[value][0]

    def output_index(self, value: str) -> int:
        return self.producer[value][1]

    def label(self, index: int) -> str:
        """A node's name for messages (unnamed nodes get a positional label)."""
        node = self.nodes[index]
        return node.name or f"#{index} {node.op_type}"

    def ancestors(self, value: str, through_shape: bool = True) -> list[int]:
        """Indices of every node `value` depends on (including its producer); with
        `through_shape=False` the inputs of Shape nodes (whose data is not read) are skipped."""
        seen: set[int] = set()
        stack = [value]
        while stack:
            hit = self.producer.get(stack.pop())
            if hit is None or hit[0] in seen:
                continue
            seen.add(hit[0])
            node = self.nodes[hit[0]]
            if through_shape or node.op_type != "Shape":
                stack.extend(i for i in node.input if i)
        return sorted(seen)


def _inferred_dims(graph: onnx.GraphProto, input_name: str) -> dict[str, tuple[Dim, ...]]:
    """Dims recorded by ONNX shape inference: static sizes, SEQ for the input's length
    parameter, None for anything symbolic (it loses T after every runtime Reshape)."""
    seq_param = None
    for value in graph.input:
        if value.name == input_name and len(value.type.tensor_type.shape.dim) == 2:
            seq_param = value.type.tensor_type.shape.dim[1].dim_param or None
    out: dict[str, tuple[Dim, ...]] = {}
    for value in list(graph.value_info) + list(graph.output):
        if not value.type.tensor_type.HasField("shape"):
            continue
        out[value.name] = tuple(
            d.dim_value if d.HasField("dim_value") else
            (SEQ if seq_param and d.dim_param == seq_param else None)
            for d in value.type.tensor_type.shape.dim)
    return out


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray:
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, onnx.TensorProto):
            return numpy_helper.to_array(value)
        return np.asarray(value)
    raise UnsupportedNode(node, "a Constant without a value")


# ---------------------------------------------------------------------------------------------
# numpy semantics of the ops that appear in shape arithmetic, masks and table slicing


def _ints(a: np.ndarray | None) -> list[int]:
    return [] if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


def _reshape_target(in_shape: Sequence[int], target: Sequence[int], allowzero: int) -> tuple:
    """ONNX Reshape's target with its 0 (copy) and -1 (infer) entries resolved."""
    out = [in_shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(in_shape) // known if known else 0
    return tuple(out)


def _axes(node: onnx.NodeProto, inputs: list, rank: int, position: int = 1) -> list[int]:
    """Axes given as input `position` (opset >= 13/18) or as the `axes` attribute."""
    raw = _ints(inputs[position]) if len(inputs) > position and inputs[position] is not None \
        else list(attr(node, "axes", []) or [])
    return [a + rank if a < 0 else a for a in raw]


def _slices(node: onnx.NodeProto, inputs: list, rank: int) -> tuple[slice, ...]:
    starts, ends = _ints(inputs[1]), _ints(inputs[2])
    axes = _axes(node, inputs, rank, 3) if len(inputs) > 3 and inputs[3] is not None \
        else list(range(len(starts)))
    steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    if not len(axes) == len(starts) == len(ends) == len(steps):
        raise UnsupportedNode(node, f"{len(starts)} starts, {len(ends)} ends, {len(axes)} axes "
                                    f"and {len(steps)} steps (the ONNX Slice needs one of each "
                                    "per sliced axis)")
    index = [slice(None)] * rank
    for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
        index[a] = slice(s, e, st)
    return tuple(index)


def _unsqueeze(node, x: np.ndarray, inputs: list) -> np.ndarray:
    count = len(_axes(node, inputs, 0))
    axes = sorted(_axes(node, inputs, x.ndim + count))  # negative axes count in the output
    for a in axes:
        x = np.expand_dims(x, a)
    return x


def _squeeze(node, x: np.ndarray, inputs: list) -> np.ndarray:
    axes = _axes(node, inputs, x.ndim)
    return np.squeeze(x, axis=tuple(axes)) if axes else np.squeeze(x)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(np.result_type(a, b), np.integer):
        return np.trunc(a / b).astype(np.result_type(a, b))  # C-style integer division
    return a / b


def _trilu(node, inputs: list) -> np.ndarray:
    k = _ints(inputs[1])[0] if len(inputs) > 1 and inputs[1] is not None else 0
    return np.triu(inputs[0], k) if attr(node, "upper", 1) else np.tril(inputs[0], k)


def _constant_of_shape(node, inputs: list) -> np.ndarray:
    fill = attr(node, "value")
    fill = np.zeros(1, np.float32) if fill is None else fill
    return np.full(tuple(_ints(inputs[0])), fill.reshape(-1)[0], dtype=fill.dtype)


def _cast(node, x: np.ndarray) -> np.ndarray:
    return x.astype(onnx.helper.tensor_dtype_to_np_dtype(attr(node, "to")))


def _reshape(node, inputs: list) -> np.ndarray:
    target = _reshape_target(inputs[0].shape, _ints(inputs[1]), attr(node, "allowzero", 0))
    return inputs[0].reshape(target)


def _expand(x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(_ints(shape)))).copy()


def _gather_elements(node: onnx.NodeProto, data: np.ndarray, index: np.ndarray) -> np.ndarray:
    axis = attr(node, "axis", 0) % data.ndim
    index = np.where(index < 0, index + data.shape[axis], index)
    return np.take_along_axis(data, index.astype(np.int64), axis=axis)


ValueFn = Callable[[onnx.NodeProto, list], list[np.ndarray]]

_VALUE_OPS: dict[str, ValueFn] = {
    "Identity": lambda n, x: [x[0]],
    "Gather": lambda n, x: [np.take(x[0], x[1], axis=attr(n, "axis", 0))],
    # onnx's reference GatherElements uses np.choose, limited to 64 choices (GPT-J's sin/cos
    # table picked by position over a longer context)
    "GatherElements": lambda n, x: [_gather_elements(n, x[0], x[1])],
    "Unsqueeze": lambda n, x: [_unsqueeze(n, x[0], x)],
    "Squeeze": lambda n, x: [_squeeze(n, x[0], x)],
    "Concat": lambda n, x: [np.concatenate(x, axis=attr(n, "axis"))],
    "Slice": lambda n, x: [x[0][_slices(n, x, x[0].ndim)]],
    "Add": lambda n, x: [x[0] + x[1]],
    "Sub": lambda n, x: [x[0] - x[1]],
    "Mul": lambda n, x: [x[0] * x[1]],
    "Div": lambda n, x: [_div(x[0], x[1])],
    "Neg": lambda n, x: [-x[0]],
    "Sqrt": lambda n, x: [np.sqrt(x[0])],
    "Pow": lambda n, x: [np.power(x[0], x[1])],
    "Max": lambda n, x: [functools.reduce(np.maximum, x)],  # broadcasting, any arity
    "Min": lambda n, x: [functools.reduce(np.minimum, x)],
    "Cast": lambda n, x: [_cast(n, x[0])],
    "Range": lambda n, x: [np.arange(x[0].item(), x[1].item(), x[2].item(), dtype=x[0].dtype)],
    "ConstantOfShape": lambda n, x: [_constant_of_shape(n, x)],
    "Trilu": lambda n, x: [_trilu(n, x)],
    "Equal": lambda n, x: [np.equal(x[0], x[1])],
    "Less": lambda n, x: [np.less(x[0], x[1])],
    "LessOrEqual": lambda n, x: [np.less_equal(x[0], x[1])],
    "Greater": lambda n, x: [np.greater(x[0], x[1])],
    "GreaterOrEqual": lambda n, x: [np.greater_equal(x[0], x[1])],
    "Not": lambda n, x: [np.logical_not(x[0])],
    "And": lambda n, x: [np.logical_and(x[0], x[1])],
    "Or": lambda n, x: [np.logical_or(x[0], x[1])],
    "Where": lambda n, x: [np.where(x[0], x[1], x[2])],
    "Expand": lambda n, x: [_expand(x[0], x[1])],
    "Reshape": lambda n, x: [_reshape(n, x)],
    "Transpose": lambda n, x: [np.transpose(x[0], attr(n, "perm"))],
    "Tile": lambda n, x: [np.tile(x[0], tuple(_ints(x[1])))],
}

# Ops whose (first) output is shaped like the broadcast of all their inputs.
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Where", "Equal", "Less", "Greater", "Max",
                "Min", "And", "Or", "LessOrEqual", "GreaterOrEqual", "Neg", "Sqrt", "Erf",
                "Tanh", "Sigmoid", "Exp", "Log", "Relu", "Reciprocal", "Abs", "Softmax", "IsNaN",
                "IsInf", "Cos", "Sin", "Gelu",
                "LogSoftmax", "Cast", "Identity", "Not", "LayerNormalization", "Dropout"}
_LIKE_FIRST = {"LayerNormalization", "Dropout"}  # extra inputs are parameters, not operands


class ShapeEvaluator:
    """Values of data-independent tensors and shapes of all tensors, at a probe length `t`."""

    def __init__(self, graph: OnnxGraph):
        self.g = graph
        self._static: dict[str, bool] = {}
        self._values: dict[tuple[str, int], np.ndarray] = {}
        self._shapes: dict[tuple[str, int], tuple[int, ...]] = {}
        self._reference_runners: dict[int, object] = {}
        # the longest sequence the model is imported for: masks and rotary tables are
        # evaluated (and classified) at this length, not only at the probes
        self.context = max(PROBES)
        self.mask_length = max(PROBES)  # where attention masks are classified
        # why a mask causal up to mask_length may still be a window beyond it (None: it cannot)
        self.mask_unchecked: str | None = None

    # -- classification ------------------------------------------------------------------

    def is_static(self, name: str) -> bool:
        """True if `name` does not depend on token data (only on constants and shapes)."""
        stack = [name]
        while stack:  # iterative post-order: a model is one long dependency chain
            v = stack[-1]
            if v in self._static:
                stack.pop()
                continue
            node = self.g.node(v)
            if node is None or node.op_type == "Shape":  # Shape reads no data
                self._static[v] = v != self.g.input_name
                stack.pop()
                continue
            pending = [i for i in node.input if i and i not in self._static]
            if pending:
                stack.extend(pending)
                continue
            self._static[v] = all(self._static[i] for i in node.input if i)
            stack.pop()
        return self._static[name]

    def is_data(self, name: str) -> bool:
        return bool(name) and not self.is_static(name)

    # -- values --------------------------------------------------------------------------

    def value(self, name: str, t: int) -> np.ndarray:
        """The value of a data-independent tensor when the sequence has `t` tokens."""
        key = (name, t)
        if key not in self._values:
            self._values[key] = self._compute_value(name, t)
        return self._values[key]

    def values(self, name: str) -> tuple[np.ndarray, ...]:
        return tuple(self.value(name, t) for t in PROBES)

    def _compute_value(self, name: str, t: int) -> np.ndarray:
        if name in self.g.constants:
            return self.g.constants[name]
        node = self.g.node(name)
        if node is None or not self.is_static(name):
            raise ValueError(f"'{name}' depends on the token data")
        if node.op_type == "Shape":
            shape = np.array(self.shape(node.input[0], t), dtype=np.int64)
            return shape[attr(node, "start", 0):attr(node, "end", None)]
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedNode(node, "in the length-dependent subgraph (masks, positions, "
                                        "rotary tables): not a standard ONNX op")
        inputs = [self.value(i, t) if i else None for i in node.input]
        fn = _VALUE_OPS.get(node.op_type)
        if fn is None:
            return self._reference(node, inputs)[self.g.output_index(name)]
        return fn(node, inputs)[self.g.output_index(name)]

    def _reference(self, node: onnx.NodeProto, inputs: list) -> list[np.ndarray]:
        """Any other standard op (CumSum, GatherND, ScatterND, Cos, Sin, IsNaN, ...) through
        onnx's reference evaluator: the subgraph is evaluated, whatever ops it uses."""
        from onnx.reference import ReferenceEvaluator

        index = self.g.index(node.output[0])
        runner = self._reference_runners.get(index)
        try:
            if runner is None:  # a one-node model at the graph's opset
                h = onnx.helper
                one = h.make_model(h.make_graph(
                    [node], "node", [h.make_tensor_value_info(n, 0, None) for n in node.input
                                     if n],
                    [h.make_tensor_value_info(n, 0, None) for n in node.output]),
                    opset_imports=[h.make_opsetid("", self.g.opset)])
                runner = self._reference_runners[index] = ReferenceEvaluator(one)
            feeds = {n: v for n, v in zip(node.input, inputs, strict=True) if n}
            return list(runner.run(None, feeds))
        except Exception as e:  # the reference ops raise assorted types on bad input
            detail = (str(e).strip().splitlines() or [""])[0][:200]
            raise UnsupportedNode(node, "in the length-dependent subgraph (masks, positions, "
                                        f"rotary tables): onnx's reference evaluator failed "
                                        f"({type(e).__name__}: {detail})") from None

    # -- shapes --------------------------------------------------------------------------

    def shape(self, name: str, t: int) -> tuple[int, ...]:
        """The shape of any tensor when the sequence has `t` tokens (batch 1)."""
        key = (name, t)
        if key not in self._shapes:
            self._shapes[key] = self._compute_shape(name, t)
        return self._shapes[key]

    def dims(self, name: str) -> tuple[Dim, ...]:
        """Per dimension: a static size, SEQ, or None (see the module docstring)."""
        a, b = (self.shape(name, t) for t in PROBES)
        if len(a) != len(b):
            return tuple(None for _ in a)
        dims = tuple(x if x == y else (SEQ if (x, y) == PROBES else None)
                     for x, y in zip(a, b, strict=True))
        self._cross_check(name, dims)
        return dims

    def _cross_check(self, name: str, dims: tuple[Dim, ...]) -> None:
        """Our dims must agree with whatever ONNX shape inference knew (a bug guard)."""
        known = self.g.inferred.get(name)
        if known is None:
            return
        if len(known) != len(dims) or any(k is not None and k != d
                                          for k, d in zip(known, dims, strict=True)):
            raise IrtoolError(f"internal error: irtool evaluates the shape of '{name}' as "
                              f"{list(dims)} but ONNX shape inference says {list(known)}; "
                              "please report this model")

    def _compute_shape(self, name: str, t: int) -> tuple[int, ...]:
        if name == self.g.input_name:
            return (1, t)
        if name in self.g.constants or self.is_static(name):
            return tuple(self.value(name, t).shape)
        node = self.g.node(name)
        rule = _SHAPE_RULES.get(node.op_type)
        if node.op_type in _ELEMENTWISE:
            inputs = node.input[:1] if node.op_type in _LIKE_FIRST else node.input
            return tuple(np.broadcast_shapes(*(self.shape(i, t) for i in inputs if i)))
        if rule is None or node.domain not in ("", "ai.onnx"):
            raise UnsupportedNode(node)
        return rule(self, node, name, t)

    def _input_values(self, node: onnx.NodeProto, t: int, start: int = 1) -> list:
        """Shapes-related inputs (targets, axes, ...) as values; the data input as None."""
        return [None] * start + [self.value(i, t) if i else None for i in node.input[start:]]


def _matmul_shape(ev: ShapeEvaluator, node, name, t):
    a, b = (ev.shape(i, t) for i in node.input)
    return tuple(np.broadcast_shapes(a[:-2], b[:-2])) + (a[-2], b[-1])


def _gemm_shape(ev: ShapeEvaluator, node, name, t):
    a, b = (ev.shape(i, t) for i in node.input[:2])
    return (a[1] if attr(node, "transA", 0) else a[0], b[0] if attr(node, "transB", 0) else b[1])


def _gather_shape(ev: ShapeEvaluator, node, name, t):
    data, idx = ev.shape(node.input[0], t), ev.shape(node.input[1], t)
    axis = attr(node, "axis", 0) % len(data)
    return data[:axis] + idx + data[axis + 1:]


def _reshape_shape(ev: ShapeEvaluator, node, name, t):
    return _reshape_target(ev.shape(node.input[0], t), _ints(ev.value(node.input[1], t)),
                           attr(node, "allowzero", 0))


def _transpose_shape(ev: ShapeEvaluator, node, name, t):
    shape = ev.shape(node.input[0], t)
    perm = attr(node, "perm") or list(reversed(range(len(shape))))
    return tuple(shape[p] for p in perm)


def _via_dummy(fn: Callable) -> Callable:
    """A shape rule that applies the value semantics to an empty-data array of that shape."""
    def rule(ev: ShapeEvaluator, node, name, t):
        dummy = np.broadcast_to(np.zeros((), np.float32), ev.shape(node.input[0], t))
        return tuple(fn(node, dummy, ev._input_values(node, t)).shape)
    return rule


def _concat_shape(ev: ShapeEvaluator, node, name, t):
    shapes = [ev.shape(i, t) for i in node.input]
    axis = attr(node, "axis") % len(shapes[0])
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return tuple(out)


def _split_shape(ev: ShapeEvaluator, node, name, t):
    shape = ev.shape(node.input[0], t)
    axis = attr(node, "axis", 0) % len(shape)
    out = list(shape)
    out[axis] = split_sizes(ev, node, t)[ev.g.output_index(name)]
    return tuple(out)


def split_sizes(ev: ShapeEvaluator, node: onnx.NodeProto, t: int) -> list[int]:
    """The sizes of a Split's outputs along its axis."""
    shape = ev.shape(node.input[0], t)
    axis = attr(node, "axis", 0) % len(shape)
    if len(node.input) > 1 and node.input[1]:
        return _ints(ev.value(node.input[1], t))
    explicit = attr(node, "split")
    if explicit:
        return list(explicit)
    n = len(node.output)
    return [shape[axis] // n] * n


def _reduce_shape(ev: ShapeEvaluator, node, name, t):
    shape = ev.shape(node.input[0], t)
    axes = _axes(node, ev._input_values(node, t), len(shape)) or list(range(len(shape)))
    keep = attr(node, "keepdims", 1)
    return tuple(1 if i in axes else d for i, d in enumerate(shape) if keep or i not in axes)


def _expand_shape(ev: ShapeEvaluator, node, name, t):
    return tuple(np.broadcast_shapes(ev.shape(node.input[0], t),
                                     tuple(_ints(ev.value(node.input[1], t)))))


def _tile_shape(ev: ShapeEvaluator, node, name, t):
    reps = _ints(ev.value(node.input[1], t))
    return tuple(d * r for d, r in zip(ev.shape(node.input[0], t), reps, strict=True))


def _shape_of_shape(ev: ShapeEvaluator, node, name, t):
    return tuple(ev.value(name, t).shape)


_SHAPE_RULES: dict[str, Callable] = {
    "MatMul": _matmul_shape,
    "Gemm": _gemm_shape,
    "Gather": _gather_shape,
    "Reshape": _reshape_shape,
    "Transpose": _transpose_shape,
    "Unsqueeze": _via_dummy(lambda n, x, inputs: _unsqueeze(n, x, inputs)),
    "Squeeze": _via_dummy(lambda n, x, inputs: _squeeze(n, x, inputs)),
    "Slice": _via_dummy(lambda n, x, inputs: x[_slices(n, inputs, x.ndim)]),
    "Concat": _concat_shape,
    "Split": _split_shape,
    "ReduceMean": _reduce_shape,
    "ReduceSum": _reduce_shape,
    "Expand": _expand_shape,
    "Tile": _tile_shape,
    "Shape": _shape_of_shape,
}
