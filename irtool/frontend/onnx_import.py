"""Importing an ONNX decoder-only LM as `transformer` ops.

Input: a model exported by `torch.onnx.export` (classic exporter, opset 17) with one input,
int64 token ids `[1, T]` (T dynamic), and float `logits [1, T, vocab]`. The graph is first
cleaned with well-kept tools (onnxscript's optimizer folds the constant subgraphs, onnx shape
inference validates the result), then *raised*: starting from `logits` we ask, value by
value, which transformer op computes it, recognising the subgraphs torch emits for each
building block (`onnx_patterns`) and memoizing the answer per ONNX value. Sizes that the
export computes at run time (heads, head_dim, table rows) come from evaluating the shape
arithmetic at probe lengths (`onnx_shapes`). The raised ops are shape-generic, so the module
is valid for every T up to the model's maximum.

Every data-dependent node that feeds `logits` must be consumed by some pattern; anything
else is reported as an unsupported op with its name.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable

import numpy as np
import onnx
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.frontend import onnx_patterns as pat
from irtool.frontend.builder import ModelBuilder
from irtool.frontend.onnx_shapes import OnnxGraph, ShapeEvaluator, UnsupportedNode, attr
from irtool.frontend.onnx_wiring import check_wiring
from irtool.weights import WeightStore

# Without RoPE tables or a learned position table the graph sets no length limit; the module
# still needs one (it sizes buffers downstream), so we assume a generous default.
DEFAULT_MAX_SEQ_LEN = 2048

SUPPORTED = (
    "Gather of a constant table by input_ids (token embedding) or by 0..T-1 (position "
    "embedding), MatMul by a constant [+ Add of a constant bias] (linear), Split of a linear, "
    "LayerNormalization, RMSNorm (Pow/ReduceMean/Add/Sqrt/Div/Mul), GELU (Div/Erf/Add/Mul or "
    "Mul/Add/Tanh), SiLU (Mul by Sigmoid), Add/Mul of two activations, and attention "
    "(MatMul/Softmax with a constant scale, a causal mask, and Reshape/Transpose/Slice/Gather/"
    "Concat/Neg/Mul/Add/Sub/Unsqueeze/Tile/Expand nodes for head layout, RoPE and grouped KV "
    "heads)")

PASSTHROUGH = {"Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast", "Dropout"}


def import_onnx(path: str | os.PathLike[str]) -> tuple[ModuleOp, WeightStore]:
    """Load the ONNX LM at `path` and raise it to a `transformer` module and its weights."""
    model = _load(path)
    input_name, output_name, vocab = _interface(model, path)
    model = _clean(model, path)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # demand-driven raising recurses per layer
    try:
        graph = OnnxGraph(model.graph, input_name, output_name)
        return _Raiser(graph, vocab).run()
    except UnsupportedNode as e:
        raise IrtoolError(unsupported_message(e.node, e.reason)) from None
    except (ValueError, IndexError, KeyError, TypeError) as e:  # numpy on a malformed graph
        raise IrtoolError(f"'{path}': irtool cannot follow this ONNX graph ({type(e).__name__}: "
                          f"{e}); is it a valid model? (onnx.checker.check_model tells)") from None
    finally:
        sys.setrecursionlimit(limit)


def unsupported_message(node: onnx.NodeProto, reason: str = "") -> str:
    """The message for a node no pattern covers: its op type, its name, what is supported."""
    detail = f", {reason}" if reason else ""
    return (f"unsupported ONNX op '{node.op_type}' (node '{node.name or '<unnamed>'}'{detail}):"
            f" irtool raises {SUPPORTED}")


# ---------------------------------------------------------------------------------------------
# loading and checking the interface


def _load(path: str | os.PathLike[str]) -> onnx.ModelProto:
    if not os.path.isfile(path):
        raise IrtoolError(f"ONNX file '{path}' not found")
    try:
        model = onnx.load(os.fspath(path))
    except Exception as e:  # protobuf and onnx raise many types for a bad file
        raise IrtoolError(f"'{path}' is not a readable ONNX model ({type(e).__name__}: "
                          f"{e})") from None
    if not model.graph.node or not model.graph.output:
        raise IrtoolError(f"'{path}' is not an ONNX model (it contains no graph); export one "
                          "with torch.onnx.export")
    check_wiring(model, path)
    return model


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value.type.tensor_type.shape.dim]


def _interface(model: onnx.ModelProto, path) -> tuple[str, str, int]:
    """The token-id input, the logits output and the vocabulary size; clear errors else."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise IrtoolError(f"'{path}' has {len(inputs)} inputs "
                          f"({', '.join(i.name for i in inputs)}); irtool imports models with "
                          "one input, the token ids [1, T]")
    x = inputs[0]
    elem = x.type.tensor_type.elem_type
    dims = _dims(x)
    if elem not in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) or len(dims) != 2:
        raise IrtoolError(f"input '{x.name}' of '{path}' is {_describe(x)}; irtool needs token "
                          "ids: an int64 tensor [1, T]")
    if isinstance(dims[0], int) and dims[0] != 1:
        raise IrtoolError(f"input '{x.name}' of '{path}' has a fixed batch of {dims[0]}; "
                          "irtool runs one sequence at a time: export with batch 1")
    if isinstance(dims[1], int):
        raise IrtoolError(f"input '{x.name}' of '{path}' has a fixed length of {dims[1]} tokens;"
                          " export with a dynamic sequence axis (dynamic_axes={'"
                          f"{x.name}': {{1: 'T'}}}})")
    outputs = [o for o in g.output if o.name == "logits"] or list(g.output)
    if len(outputs) != 1:
        raise IrtoolError(f"'{path}' has {len(g.output)} outputs and none is named 'logits'")
    out = outputs[0]
    odims = _dims(out)
    if len(odims) not in (2, 3) or not isinstance(odims[-1], int) or not odims[-1]:
        raise IrtoolError(f"output '{out.name}' of '{path}' is {_describe(out)}; irtool needs "
                          "logits [1, T, vocab] with a fixed vocab")
    return x.name, out.name, odims[-1]


def _describe(value: onnx.ValueInfoProto) -> str:
    elem = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type).lower()
    dims = ", ".join("?" if d is None else str(d) for d in _dims(value))
    return f"{elem} [{dims}]"


def _clean(model: onnx.ModelProto, path) -> onnx.ModelProto:
    """Fold constant subgraphs (onnxscript) and validate shapes (onnx shape inference)."""
    import onnxscript.optimizer  # here, not at the top: importing onnxscript takes ~1 s

    try:
        model = onnxscript.optimizer.optimize(model)
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # both libraries raise assorted types for malformed graphs
        detail = (str(e).strip().splitlines() or [""])[0]
        raise IrtoolError(f"'{path}' is not a valid ONNX model ({type(e).__name__}: "
                          f"{detail})") from None


# ---------------------------------------------------------------------------------------------
# weights


def _readable(name: str | None) -> str | None:
    """An initializer name fit for the weight store ('h.0.ln_1.bias' yes, 'onnx::MatMul_1' no)."""
    if name and re.fullmatch(r"[A-Za-z_][\w.]*", name) and not re.fullmatch(r"val_\d+", name):
        return name
    return None


def _digest(array: np.ndarray) -> tuple:
    array = np.ascontiguousarray(array, dtype=np.float32)
    return array.shape, hashlib.sha1(array.tobytes()).hexdigest()


class _Weights:
    """Emits each weight once, under a unique readable name.

    Keys name where a weight comes from (an initializer and a transformation), so one
    initializer used twice is stored once; 2-D arrays are also shared by content, which
    ties a classifier to an identical embedding table and RoPE tables across layers.
    """

    def __init__(self, builder: ModelBuilder):
        self.builder = builder
        self.by_key: dict[tuple, SSAValue] = {}
        self.by_content: dict[tuple, SSAValue] = {}
        self.names: set[str] = set()

    def get(self, key: tuple, name: str, make: Callable[[], np.ndarray]) -> SSAValue:
        if key in self.by_key:
            return self.by_key[key]
        array = np.ascontiguousarray(make(), dtype=np.float32)
        digest = _digest(array)
        value = self.by_content.get(digest) if array.ndim == 2 else None
        if value is None:
            value = self.builder.weight(self._unique(name), array)
            if array.ndim == 2:
                self.by_content[digest] = value
        self.by_key[key] = value
        return value

    def _unique(self, name: str) -> str:
        candidate, n = name, 0
        while candidate in self.names:
            n += 1
            candidate = f"{name}_{n}"
        self.names.add(candidate)
        return candidate


# ---------------------------------------------------------------------------------------------
# raising


class _Raiser:
    """Demand-driven raising from the logits backwards, one memoized ONNX value at a time."""

    def __init__(self, graph: OnnxGraph, vocab: int):
        self.g = graph
        self.ev = ShapeEvaluator(graph)
        self.b = ModelBuilder(vocab_size=vocab, max_seq_len=DEFAULT_MAX_SEQ_LEN)
        self.w = _Weights(self.b)
        self.memo: dict[str, SSAValue] = {}
        self.covered: set[int] = set()
        self.roles: dict[str, str] = {}  # projection value -> 'q'/'k'/'v' (weight names)
        self.table_rows: list[int] = []  # rows of position/rotary tables: the length limit
        self.patterns: dict[str, list[Callable[[str], SSAValue | None]]] = {
            "Gather": [self._embedding],
            "MatMul": [self._linear],
            "Add": [self._linear, self._binary],
            "Split": [self._split_linear],
            "Mul": [self._rms_norm, self._gelu, self._silu, self._binary],
            "Div": [self._rms_norm],
            "LayerNormalization": [self._layer_norm],
            "Reshape": [self._attention, self._passthrough],
            **{op: [self._passthrough] for op in PASSTHROUGH - {"Reshape"}},
        }

    def run(self) -> tuple[ModuleOp, WeightStore]:
        logits = self.activation(self.g.output_name)
        self._check_coverage()
        if self.table_rows:
            self.b.max_seq_len = min(self.table_rows)
        return self.b.finish(logits)

    # -- dispatch ------------------------------------------------------------------------

    def activation(self, name: str) -> SSAValue:
        """The IR value ([T, F]) computing ONNX value `name`."""
        if name not in self.memo:
            self.memo[name] = self._raise(name)
        return self.memo[name]

    def _raise(self, name: str) -> SSAValue:
        if name == self.g.input_name:
            raise IrtoolError(f"the token ids '{name}' are used as numbers, not only as indices "
                              "of an embedding table")
        if self.ev.is_static(name):
            return self._position_embedding(name)
        node = self.g.node(name)
        for pattern in self.patterns.get(node.op_type, ()):
            value = pattern(name)
            if value is not None:
                return value
        raise UnsupportedNode(node)

    def _cover(self, nodes: list[int]) -> None:
        self.covered.update(nodes)

    def _check_coverage(self) -> None:
        """Every data-dependent node feeding the logits must belong to a raised pattern."""
        for index in self.g.ancestors(self.g.output_name):
            node = self.g.nodes[index]
            if index not in self.covered and any(self.ev.is_data(o) for o in node.output):
                raise UnsupportedNode(node, "not part of any recognised pattern")

    def _features(self, name: str) -> int | None:
        """F of an activation-shaped value [1, T, F] / [T, F], else None."""
        return self.ev.dims(name)[-1] if pat.is_activation(self.ev, name) else None

    # -- embeddings ----------------------------------------------------------------------

    def _embedding(self, name: str) -> SSAValue | None:
        hit = pat.match_embedding(self.ev, name)
        if hit is None or self._features(name) is None:
            return None
        table, nodes = hit
        self._cover(nodes)
        w = self.w.get(("raw", table), _readable(table) or "tok_embeddings",
                       lambda: self.g.constants[table])
        return self.b.value(tf.EmbeddingOp(self.b.tokens, w))

    def _position_embedding(self, name: str) -> SSAValue:
        table = pat.match_position_table(self.ev, name)
        if table is None:
            raise IrtoolError(f"the constant '{name}' (dims {self.ev.dims(name)}) is used as an "
                              "activation but is not a learned position table sliced to 0..T-1")
        array = self.g.constants[table]
        self.table_rows.append(array.shape[0])
        w = self.w.get(("raw", table), _readable(table) or "pos_embeddings", lambda: array)
        return self.b.value(tf.PositionEmbeddingOp(self.b.tokens, w))

    # -- linear layers -------------------------------------------------------------------

    def _linear(self, name: str) -> SSAValue | None:
        lin = pat.match_linear(self.ev, name)
        return None if lin is None else self._emit_linear(lin, name, "")

    def _split_linear(self, name: str) -> SSAValue | None:
        hit = pat.match_split_linear(self.ev, name)
        if hit is None:
            return None
        lin, part = hit
        return self._emit_linear(lin, name, self.roles.get(name, str(part)))

    def _emit_linear(self, lin: pat.Linear, name: str, part: str) -> SSAValue | None:
        if self._features(lin.x) != lin.weight.shape[0] or self._features(name) is None:
            return None
        self._cover(lin.nodes)
        x = self.activation(lin.x)  # inputs first: the IR then reads in forward order
        base = lin.name or _readable(lin.weight_source) or "linear"
        suffix = f".{part}" if part else ""
        cols = (lin.weight_source, part)
        w = self.w.get(("linear",) + cols, f"{base}{suffix}.weight", lambda: lin.weight.T)
        b = None
        if lin.bias is not None:
            bias_name = (_readable(lin.bias_source) if not part else None) \
                or f"{base}{suffix}.bias"
            b = self.w.get(("bias", lin.bias_source, part), bias_name, lambda: lin.bias)
        return self.b.value(tf.LinearOp(x, w, b))

    # -- norms and activations -----------------------------------------------------------

    def _norm_param(self, source: str | None, norm: pat.Norm, what: str, fill: float,
                    features: int) -> SSAValue:
        name = _readable(source) or f"{norm.name or 'norm'}.{what}"
        if source is None:
            return self.w.get(("fill", fill, features), name,
                              lambda: np.full(features, fill, np.float32))
        array = pat.constant(self.ev, source)
        if array.size not in (1, features):
            raise IrtoolError(f"the {what} '{source}' of norm '{norm.name}' has shape "
                              f"{list(array.shape)}, expected [{features}]")
        return self.w.get(("raw", source), name,
                          lambda: np.broadcast_to(array.reshape(-1), (features,)))

    def _rms_norm(self, name: str) -> SSAValue | None:
        norm = pat.match_rms_norm(self.ev, name)
        features = self._features(norm.x) if norm is not None else None
        if features is None or self._features(name) != features:
            return None
        self._cover(norm.nodes)
        x = self.activation(norm.x)
        gamma = self._norm_param(norm.gamma, norm, "weight", 1.0, features)
        return self.b.value(tf.RMSNormOp(x, gamma, norm.eps))

    def _layer_norm(self, name: str) -> SSAValue | None:
        norm = pat.match_layer_norm(self.ev, name)
        features = self._features(norm.x) if norm is not None else None
        if features is None:
            return None
        self._cover(norm.nodes)
        x = self.activation(norm.x)
        gamma = self._norm_param(norm.gamma, norm, "weight", 1.0, features)
        beta = self._norm_param(norm.beta, norm, "bias", 0.0, features)
        return self.b.value(tf.LayerNormOp(x, gamma, beta, norm.eps))

    def _gelu(self, name: str) -> SSAValue | None:
        act = pat.match_gelu(self.ev, name)
        if act is None or self._features(act.x) is None:
            return None
        self._cover(act.nodes)
        approximate = "tanh" if act.kind == "gelu_tanh" else "none"
        return self.b.value(tf.GeluOp(self.activation(act.x), approximate))

    def _silu(self, name: str) -> SSAValue | None:
        act = pat.match_silu(self.ev, name)
        if act is None or self._features(act.x) is None:
            return None
        self._cover(act.nodes)
        return self.b.value(tf.SiluOp(self.activation(act.x)))

    def _binary(self, name: str) -> SSAValue | None:
        """Add/Mul of two activations of one shape (residuals, gates, wte + wpe)."""
        node = self.g.node(name)
        a, b = node.input
        features = {self._features(v) if self.ev.is_data(v) else
                    (self.ev.dims(v)[-1] if pat.match_position_table(self.ev, v) else None)
                    for v in (a, b)}
        if len(features) != 1 or None in features or self._features(name) is None:
            return None
        self._cover([self.g.index(name)])
        op = tf.AddOp if node.op_type == "Add" else tf.MulOp
        return self.b.value(op(self.activation(a), self.activation(b)))

    def _passthrough(self, name: str) -> SSAValue | None:
        """Layout no-ops on activations: [1, T, F] <-> [T, F], Identity, float Casts."""
        node = self.g.node(name)
        source = node.input[0]
        if node.op_type == "Cast" and attr(node, "to") != onnx.TensorProto.FLOAT:
            return None
        features = self._features(source)
        if features is None or self._features(name) != features:
            return None
        self._cover([self.g.index(name)])
        return self.activation(source)

    # -- attention -----------------------------------------------------------------------

    def _attention(self, name: str) -> SSAValue | None:
        att = pat.match_attention(self.ev, name)
        if att is None:
            return None
        self._cover(att.nodes)
        for path, role in ((att.q, "q"), (att.k, "k"), (att.v, "v")):
            self.roles.setdefault(path.source, role)
        q = self._rope(att.q, att.head_dim, self.activation(att.q.source))
        k = self._rope(att.k, att.head_dim, self.activation(att.k.source))
        v = self.activation(att.v.source)
        return self.b.value(tf.AttentionOp(q, k, v, heads=att.heads, kv_heads=att.kv_heads,
                                           head_dim=att.head_dim, scale=att.scale,
                                           causal=att.causal))

    def _rope(self, path: pat.HeadPath, head_dim: int, x: SSAValue) -> SSAValue:
        rope = path.rope
        if rope is None:
            return x
        self.table_rows.append(rope.cos.shape[0])
        # keyed by content: every layer multiplies by the same tables, stored once
        cos = self.w.get(("rope", _digest(rope.cos)), "rope.cos", lambda: rope.cos)
        sin = self.w.get(("rope", _digest(rope.sin)), "rope.sin", lambda: rope.sin)
        return self.b.value(tf.RopeOp(x, cos, sin, heads=path.heads, head_dim=head_dim,
                                      rotary_dim=rope.rotary_dim, style=rope.style))


__all__ = ["import_onnx", "DEFAULT_MAX_SEQ_LEN", "SUPPORTED"]
