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
from onnx import numpy_helper
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import SSAValue

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.frontend import onnx_patterns as pat
from irtool.frontend.builder import ModelBuilder
from irtool.frontend.onnx_shapes import (
    PROBES,
    OnnxGraph,
    ShapeEvaluator,
    UnsupportedNode,
    attr,
)
from irtool.frontend.onnx_wiring import check_wiring
from irtool.weights import WeightStore

# Without RoPE tables or a learned position table the graph sets no length limit; the module
# still needs one (it sizes buffers downstream), so we assume a generous default.
DEFAULT_MAX_SEQ_LEN = 2048

SUPPORTED = (
    "Gather of a constant table by input_ids (token embedding), MatMul or Gemm by a constant "
    "[+ bias] (linear; Split/Slice of one, a constant factor folded in), LayerNormalization, "
    "RMSNorm (Pow/ReduceMean/Add/Sqrt/Div/Mul), GELU (the Gelu op, Div/Erf/Add/Mul or "
    "Mul/Add/Tanh), SiLU (Mul by Sigmoid), ReLU (the Relu op), Add/Mul of two activations, "
    "and attention (MatMul/Softmax with a constant scale, a causal or sliding-window mask, and "
    "Reshape/Transpose/Slice/Gather/Concat/Neg/Mul/Add/Sub/Unsqueeze/Tile/Expand nodes for "
    "head layout, RoPE and grouped KV heads); any value that depends on the length only "
    "(masks, positions, RoPE tables, position tables) is evaluated, whatever ops compute it")

PASSTHROUGH = {"Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast", "Dropout"}


def import_onnx(path: str | os.PathLike[str]) -> tuple[ModuleOp, WeightStore]:
    """Load the ONNX LM at `path` and raise it to a `transformer` module and its weights."""
    model = _load(path)
    input_name, output_name, vocab, extra = _interface(model, path)
    bound = _bind_inputs(model, input_name, extra) if extra else ""
    bound_model = model
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # demand-driven raising recurses per layer
    try:
        model = _clean(model, path)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
        graph = OnnxGraph(model.graph, input_name, output_name, opset)
        context = _context_length(path, graph)
        raiser = _Raiser(graph, vocab, context, _mask_length(path, context))
        raiser.ev.mask_unchecked = _mask_unchecked(path, context)
        module, store = raiser.run()
        if bound:
            module.attributes[BOUND_INPUTS_ATTR] = StringAttr(bound)
        return module, store
    except Exception as e:
        # a graph that only runs at the length it was traced at fails somewhere in raising;
        # that, not the symptom, is what the user must fix
        fixed = _fixed_length(bound_model, input_name)
        if fixed is not None:
            raise IrtoolError(_fixed_length_message(path, fixed, "its shape arithmetic "
                                                                 "holds constants")) from None
        if isinstance(e, UnsupportedNode):
            raise IrtoolError(unsupported_message(e.node, e.reason)) from None
        if isinstance(e, (ValueError, IndexError, KeyError, TypeError)):  # numpy on a
            raise IrtoolError(                                            # malformed graph
                f"'{path}': irtool cannot follow this ONNX graph ({type(e).__name__}: {e}); "
                "is it a valid model? (onnx.checker.check_model tells)") from None
        raise
    finally:
        sys.setrecursionlimit(limit)


def _fixed_length(model: onnx.ModelProto, input_name: str) -> int | None:
    """The one sequence length the graph runs at, if onnxruntime runs it at neither probe
    length but at a length the graph holds as a constant; else None."""
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 4  # the failures are expected: no log on stderr
        sess = ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime refuses the file: nothing to conclude
        return None
    dtype = np.int32 if model.graph.input[0].type.tensor_type.elem_type == \
        onnx.TensorProto.INT32 else np.int64

    def runs(t: int) -> bool:
        try:
            sess.run(None, {input_name: np.zeros((1, t), dtype=dtype)})
            return True
        except Exception:  # onnxruntime raises its own types for shape mismatches
            return False

    if any(runs(t) for t in PROBES):
        return None
    tensors = list(model.graph.initializer) + [
        a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute
        if a.name == "value"]
    candidates = sorted({int(v) for t in tensors if t.data_type in (
        onnx.TensorProto.INT64, onnx.TensorProto.INT32) and np.prod(t.dims, dtype=int) <= 8
        for v in numpy_helper.to_array(t).reshape(-1) if 1 < v <= 65536})
    return next((n for n in candidates if runs(n)), None)


# What an unsupported node usually is, by op type: the family and exporter it comes from.
HINTS = {
    "IsNaN": "the NaN guard torch's SDPA export (dynamo=True, default attention) puts after "
             "an attention softmax; irtool skips it only right after a causal softmax",
    "Reciprocal": "part of an RMSNorm whose spelling irtool did not recognise (or one over "
                  "another axis than the features or a head's dims)",
    "CumSum": "position ids or a mask computed from token values; irtool binds "
              "attention_mask/position_ids and evaluates only length-dependent values",
    "Gemm": "a linear layer whose weight is not a constant",
    "Clip": "a clamped activation (ReLU6, hardtanh): the transformer dialect has relu but no "
            "clamp",
    "ScatterND": "a packed-sequence mask over token values (export with an attention_mask "
                 "input, or the default dynamo exporter)",
}


def unsupported_message(node: onnx.NodeProto, reason: str = "") -> str:
    """The message for a node no pattern covers: its op type, its name, what it usually is,
    what is supported."""
    detail = f", {reason}" if reason else ""
    hint = f"; this is usually {HINTS[node.op_type]}" if node.op_type in HINTS else ""
    return (f"unsupported ONNX op '{node.op_type}' (node '{node.name or '<unnamed>'}'{detail})"
            f"{hint}. irtool raises {SUPPORTED}")


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


# Inputs a single-sequence, no-cache run gives one obvious value: (description, builder).
BINDABLE = {
    "attention_mask": "ones [1, T]",
    "position_ids": "0..T-1 [1, T]",
    "cache_position": "0..T-1 [T]",
    "token_type_ids": "zeros [1, T]",
}
BOUND_INPUTS_ATTR = "irtool.onnx_bound_inputs"


def _interface(model: onnx.ModelProto, path) -> tuple[str, str, int, list[onnx.ValueInfoProto]]:
    """The token-id input, the logits output, the vocabulary size and the extra inputs to
    bind; clear errors else."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    cached = [i.name for i in inputs if "past" in i.name or "cache" in i.name.split(".")[0]
              and i.name != "cache_position"]
    if cached:
        raise IrtoolError(f"'{path}' takes a KV cache as input ({', '.join(cached[:3])}"
                          f"{', ...' if len(cached) > 3 else ''}); irtool builds its own cache: "
                          "export the model without cache (use_cache=False; optimum: the "
                          "'text-generation' task, not 'text-generation-with-past')")
    ids = [i for i in inputs if i.name == "input_ids"] or inputs[:1]
    if not ids:
        raise IrtoolError(f"'{path}' has no inputs; irtool needs the token ids [1, T]")
    x = ids[0]
    extra = [i for i in inputs if i is not x]
    unknown = [i.name for i in extra if i.name not in BINDABLE]
    if unknown:
        raise IrtoolError(f"'{path}' has inputs irtool cannot bind: {', '.join(unknown)}; "
                          f"besides the token ids it binds {', '.join(BINDABLE)} to their "
                          "values for one unpadded sequence")
    elem = x.type.tensor_type.elem_type
    dims = _dims(x)
    if elem not in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) or len(dims) != 2:
        raise IrtoolError(f"input '{x.name}' of '{path}' is {_describe(x)}; irtool needs token "
                          "ids: an int64 tensor [1, T]")
    if isinstance(dims[0], int) and dims[0] != 1:
        raise IrtoolError(f"input '{x.name}' of '{path}' has a fixed batch of {dims[0]}; "
                          "irtool runs one sequence at a time: export with batch 1")
    for i in [x, *extra]:
        d = _dims(i)
        if d and isinstance(d[-1], int) and d[-1] > 1:
            raise IrtoolError(_fixed_length_message(path, d[-1], f"input '{i.name}'"))
    outputs = [o for o in g.output if o.name == "logits"] or list(g.output)
    if len(outputs) != 1:
        raise IrtoolError(f"'{path}' has {len(g.output)} outputs and none is named 'logits'")
    out = outputs[0]
    half = [t.name for t in g.initializer if len(t.dims) == 2 and t.data_type in _HALF]
    if half or out.type.tensor_type.elem_type in _HALF:
        what = f"weight '{half[0]}'" if half else f"output '{out.name}'"
        raise IrtoolError(f"'{path}' is a half-precision export ({what} is "
                          f"{onnx.TensorProto.DataType.Name(_first_half(g, half, out))}): "
                          "irtool raises float32 graphs; export the model in float32 "
                          "(model.float() before torch.onnx.export)")
    odims = _dims(out)
    if len(odims) not in (2, 3) or not isinstance(odims[-1], int) or not odims[-1]:
        raise IrtoolError(f"output '{out.name}' of '{path}' is {_describe(out)}; irtool needs "
                          "logits [1, T, vocab] with a fixed vocab")
    return x.name, out.name, odims[-1], extra


# float16/bfloat16 graphs interleave Casts around the ops computed in float32 (RMSNorm,
# softmax), which no pattern reads: refused as such, not as "unsupported op 'Mul'".
_HALF = (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)


def _first_half(g: onnx.GraphProto, half: list[str], out: onnx.ValueInfoProto) -> int:
    if not half:
        return out.type.tensor_type.elem_type
    return next(t.data_type for t in g.initializer if t.name == half[0])


def _fixed_length_message(path, length: int, where: str) -> str:
    return (f"'{path}': this graph fixes the sequence length to {length} ({where}); irtool "
            "imports a model for every length up to its context: export with a dynamic axis "
            "(torch.onnx.export(..., dynamic_axes={'input_ids': {1: 'T'}, ...}) or, with "
            "dynamo=True, dynamic_shapes=...)")


def _bind_inputs(model: onnx.ModelProto, ids: str, extra: list[onnx.ValueInfoProto]) -> str:
    """Replace each extra input by nodes computing its single-sequence value from the length
    of the token ids; returns the binding as it is recorded in the IR."""
    from onnx import helper

    g = model.graph
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value) -> str:
        full = f"irtool_bind_{name}"
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), full))
        return full

    shape = "irtool_bind_ids_shape"
    nodes.append(helper.make_node("Shape", [ids], [shape]))
    for x in extra:
        tmp = f"irtool_bind_{x.name}_int64"
        if x.name in ("position_ids", "cache_position"):
            length = "irtool_bind_length"
            if not any(n.output[0] == length for n in nodes):
                nodes.append(helper.make_node("Gather", [shape, const("one_index", 1)],
                                              [length], axis=0))
            rng = f"irtool_bind_{x.name}_range"
            nodes.append(helper.make_node("Range", [const("zero", 0), length, const("step", 1)],
                                          [rng]))
            target = const(f"{x.name}_shape", [1, -1] if x.name == "position_ids" else [-1])
            nodes.append(helper.make_node("Reshape", [rng, target], [tmp]))
        else:
            fill = 1 if x.name == "attention_mask" else 0
            nodes.append(helper.make_node(
                "ConstantOfShape", [shape], [tmp],
                value=numpy_helper.from_array(np.array([fill], dtype=np.int64))))
        nodes.append(helper.make_node("Cast", [tmp], [x.name],
                                      to=x.type.tensor_type.elem_type))
    keep = [i for i in g.input if i not in extra]
    del g.input[:]
    g.input.extend(keep)
    g.initializer.extend(inits)
    old = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old)
    return "; ".join(f"{x.name} = {BINDABLE[x.name]}" for x in extra)


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


def _config_beside(path) -> dict:
    """The config.json an export tool wrote beside the file (optimum, save_pretrained)."""
    import json

    config = os.path.join(os.path.dirname(os.fspath(path)), "config.json")
    try:
        with open(config, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


# Masks are [T, T]: evaluating one at a 32k context would take gigabytes. They are evaluated at
# the context length up to this many tokens, and beyond it only when a config.json beside the
# file declares a sliding window that needs a longer length to show.
MASK_LENGTH_LIMIT = 2048


def _mask_length(path, context: int) -> int:
    window = _config_beside(path).get("sliding_window")
    length = min(context, MASK_LENGTH_LIMIT)
    if isinstance(window, int) and length <= window < context:
        length = window + 1
    return length


def _mask_unchecked(path, context: int) -> str | None:
    """Why a mask that looks causal at the evaluated length may still hide a sliding window,
    or None: the mask is evaluated at the whole context, or a config.json beside the file
    declares the window (or, without the key, that the family has none)."""
    length = _mask_length(path, context)
    if length >= context or _config_beside(path):
        return None
    return (f"the model's context is {context} tokens, where a [T, T] mask is too large to "
            f"evaluate, so a sliding window of {length} keys or more would not show; put the "
            f"model's config.json beside "
            f"'{path}' (export tools write it: its sliding_window, null for none, and "
            "max_position_embeddings are used)")


def _context_length(path, graph: OnnxGraph) -> int:
    """The longest sequence to import the model for: `max_position_embeddings` of a
    config.json beside the file, else the rows of the constant tables the graph indexes by
    position, else DEFAULT_MAX_SEQ_LEN."""
    cfg = _config_beside(path)
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_len"):
        if isinstance(cfg.get(key), int) and cfg[key] > 0:
            return cfg[key]
    ev = ShapeEvaluator(graph)
    rows = []
    for node in graph.nodes:
        table = graph.constants.get(node.input[0]) if node.input else None
        if table is None or table.ndim < 2 or not ev.is_static(node.output[0]):
            continue
        if node.op_type == "Gather" and node.input[1] not in graph.constants:
            rows.append(table.shape[attr(node, "axis", 0)])  # rows picked by position
        elif node.op_type == "Slice":  # rows 0..T-1 of a table
            a, b = (ev.shape(node.output[0], t) for t in PROBES)
            rows += [table.shape[k] for k, (x, y) in enumerate(zip(a, b, strict=True))
                     if (x, y) == PROBES]
    return min(rows) if rows else DEFAULT_MAX_SEQ_LEN


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

    def __init__(self, graph: OnnxGraph, vocab: int, context: int, mask_length: int):
        self.g = graph
        self.ev = ShapeEvaluator(graph)
        self.ev.context = context
        self.ev.mask_length = mask_length
        self.b = ModelBuilder(vocab_size=vocab, max_seq_len=context)
        self.w = _Weights(self.b)
        self.memo: dict[str, SSAValue] = {}
        self.covered: set[int] = set()
        self.roles: dict[str, str] = {}  # projection value -> 'q'/'k'/'v' (weight names)
        self.table_rows: list[int] = []  # rows of position/rotary tables: the length limit
        self.patterns: dict[str, list[Callable[[str], SSAValue | None]]] = {
            "Gather": [self._embedding],
            "MatMul": [self._linear],
            "Gemm": [self._linear],
            "Add": [self._linear, self._binary],
            "Split": [self._split_linear],
            "Slice": [self._slice_linear],
            "Mul": [self._rms_norm, self._gelu, self._silu, self._binary, self._scaled],
            "Div": [self._rms_norm, self._scaled],
            "LayerNormalization": [self._layer_norm],
            "Gelu": [self._gelu],
            "Relu": [self._relu],
            "Reshape": [self._attention, self._passthrough],
            **{op: [self._passthrough] for op in PASSTHROUGH - {"Reshape"}},
        }

    def run(self) -> tuple[ModuleOp, WeightStore]:
        try:
            logits = self.activation(self.g.output_name)
            self._check_coverage()
        except UnsupportedNode as e:
            raise self._culprit(e) from None
        self.b.max_seq_len = min([self.b.max_seq_len, *self.table_rows])
        return self.b.finish(logits)

    def _culprit(self, e: UnsupportedNode) -> UnsupportedNode:
        """The node to report for a failed match. Raising goes from the logits backwards, so
        an op no pattern reads (an `Erf` turned `Sin`) makes a pattern above it fail first
        (the GELU's outer `Mul`, or the `Mul` of its other factor): such an op can never be
        raised, so it is the one to name, the first below the failure or else the first
        feeding the logits; only without one is the node where matching stopped named."""
        known = set(self.patterns) | pat.MATCHED_OPS
        if e.node.op_type not in known:
            return e
        for value in (e.node.output[0], self.g.output_name):
            for index in self.g.ancestors(value, through_shape=False):
                node = self.g.nodes[index]
                if node.op_type not in known and any(self.ev.is_data(o) for o in node.output):
                    return UnsupportedNode(node, "which no irtool pattern reads; matching "
                                                 "failed at node "
                                                 f"'{e.node.name or e.node.op_type}'")
        return e

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
        for index in self.g.ancestors(self.g.output_name, through_shape=False):
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
        rows = self.g.constants[table].shape[0]
        if rows != self.b.vocab_size:
            # a graph whose output is not over the vocabulary (no LM head: the base model's
            # hidden states) would import with `vocab` taken from its feature count
            raise IrtoolError(f"the token embedding '{table}' has {rows} rows, but output "
                              f"'{self.g.output_name}' has {self.b.vocab_size} features: it is "
                              "not logits over the vocabulary (a graph without its LM head, "
                              "e.g. a base model's last_hidden_state); export the logits of "
                              "the ...ForCausalLM model")
        self._cover(nodes)
        w = self.w.get(("raw", table), _readable(table) or "tok_embeddings",
                       lambda: self.g.constants[table])
        return self.b.value(tf.EmbeddingOp(self.b.tokens, w))

    def _position_embedding(self, name: str) -> SSAValue:
        hit = pat.match_position_table(self.ev, name)
        if hit is None:
            raise IrtoolError(f"the constant '{name}' (dims {self.ev.dims(name)}) is used as an "
                              "activation but is not a table of the positions 0..T-1")
        table, array = hit
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

    def _slice_linear(self, name: str) -> SSAValue | None:
        hit = pat.match_slice_linear(self.ev, name)
        if hit is None:
            return None
        lin, cols = hit
        return self._emit_linear(lin, name, self.roles.get(name, f"cols{cols}"))

    def _scaled(self, name: str) -> SSAValue | None:
        """x * c for a scalar constant c, folded into what computes x: a linear (weight and
        bias scaled) or an embedding (a scaled copy of the table). The transformer dialect
        has no scalar multiply, so a constant factor elsewhere is refused."""
        hit = pat.match_scaled(self.ev, name)
        if hit is None or self._features(name) is None:
            return None
        x, c = hit
        node = self.g.node(name)
        if not pat.single_use(self.ev, x):
            raise UnsupportedNode(node, f"multiplying by the constant {c:g} a value that is "
                                        "also used unscaled")
        lin = pat.match_linear(self.ev, x)
        if lin is not None:
            self._cover([self.g.index(name)])
            scaled = pat.Linear(lin.x, lin.weight * np.float32(c),
                                None if lin.bias is None else lin.bias * np.float32(c),
                                lin.name, f"{lin.weight_source}*{c!r}",
                                None if lin.bias_source is None else f"{lin.bias_source}*{c!r}",
                                lin.nodes)
            return self._emit_linear(scaled, x, "")
        emb = pat.match_embedding(self.ev, x)
        if emb is not None:
            table, nodes = emb
            self._cover(nodes + [self.g.index(name)])
            w = self.w.get(("scaled", table, c), f"{_readable(table) or 'tok_embeddings'}.scaled",
                           lambda: self.g.constants[table] * np.float32(c))
            return self.b.value(tf.EmbeddingOp(self.b.tokens, w))
        source = self.g.node(x)
        if source is not None and source.op_type == "Tanh":
            raise UnsupportedNode(node, f"tanh(x / {c:g}) * {c:g} is logit soft-capping "
                                        "(Gemma 2's final_logit_softcapping; its "
                                        "attn_logit_softcapping caps the attention scores the "
                                        "same way), which the transformer dialect has no op for")
        raise UnsupportedNode(node, f"multiplying by the constant {c:g}: irtool folds a "
                                    "constant factor into the linear or embedding that computes "
                                    "its operand (the transformer dialect has no scalar multiply)"
                                    ", here the operand comes from "
                                    f"'{self.g.node(x).op_type if self.g.node(x) else x}'")

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

    def _relu(self, name: str) -> SSAValue | None:
        """The Relu op of an activation (OPT's MLP)."""
        node = self.g.node(name)
        if self._features(node.input[0]) is None:
            return None
        self._cover(pat.node_ids(self.ev, name))
        return self.b.value(tf.ReluOp(self.activation(node.input[0])))

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
        if att.q.norm is not None or att.k.norm is not None:
            return self._per_head_attention(att)
        q = self._rope(att.q, att.head_dim, self._head_source(att.q, "q"))
        k = self._rope(att.k, att.head_dim, self._head_source(att.k, "k"))
        v = self._head_source(att.v, "v")
        return self.b.value(tf.AttentionOp(q, k, v, heads=att.heads, kv_heads=att.kv_heads,
                                           head_dim=att.head_dim, scale=att.scale,
                                           causal=att.causal, window=att.window))

    def _per_head_attention(self, att: pat.Attention) -> SSAValue:
        """Attention whose q/k heads are RMS-normalised one by one (Qwen3). `rms_norm`
        normalises the features of a [T, F] value, so each head is computed on its own: its
        columns of the projection, its norm and RoPE, one-head attention; the heads' outputs
        are then put side by side with 0/1 placement matrices (exact: each output element is
        one product by 1 plus zeros)."""
        hd, heads, kv_heads = att.head_dim, att.heads, att.kv_heads

        def head(path: pat.HeadPath, role: str, h: int) -> SSAValue:
            if path.columns is not None:
                raise IrtoolError(f"the attention {role} both normalises its heads and reads "
                                  "them from a fused projection")
            x = self._columns_of(path, role, slice(h * hd, (h + 1) * hd), f"{role}.head{h}")
            if path.norm is not None:
                n = path.norm
                gamma = self._norm_param(n.gamma, n, "weight", 1.0, hd)
                x = self.b.value(tf.RMSNormOp(x, gamma, n.eps))
            if path.rope is not None:
                one = pat.HeadPath(path.source, [], [], False, 1.0, 1, path.rope)
                x = self._rope(one, hd, x)
            return x

        keys = [head(att.k, "k", g) for g in range(kv_heads)]
        values = [head(att.v, "v", g) for g in range(kv_heads)]
        out = None
        for h in range(heads):
            q = head(att.q, "q", h)
            g = h // (heads // kv_heads)
            a = self.b.value(tf.AttentionOp(q, keys[g], values[g], heads=1, kv_heads=1,
                                            head_dim=hd, scale=att.scale, causal=att.causal,
                                            window=att.window))
            place = self.w.get(("place", heads, hd, h), f"attention.head{h}.place",
                               lambda h=h: np.eye(heads * hd, hd, -h * hd, dtype=np.float32))
            part = self.b.value(tf.LinearOp(a, place))
            out = part if out is None else self.b.value(tf.AddOp(out, part))
        return out

    def _head_source(self, path: pat.HeadPath, role: str) -> SSAValue:
        """The projection a head path reads: the raised source, or, when the path picks
        columns of a fused projection, a linear of those columns only."""
        if path.columns is None:
            return self.activation(path.source)
        return self._columns_of(path, role, path.columns, role)

    def _columns_of(self, path: pat.HeadPath, role: str, cols, part: str) -> SSAValue:
        """A linear computing columns `cols` of the projection `path` reads."""
        source, layout = pat.through_layout(self.ev, path.source)
        lin = pat.match_linear(self.ev, source)
        if lin is None:
            raise IrtoolError(f"the attention {role} reads columns of '{path.source}', which "
                              "is not a linear projection (MatMul/Gemm by a constant)")
        self._cover(layout)
        picked = pat.Linear(lin.x, lin.weight[:, cols], None if lin.bias is None
                            else lin.bias[cols], lin.name, lin.weight_source, lin.bias_source,
                            lin.nodes)
        return self._emit_linear(picked, source, part)

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
