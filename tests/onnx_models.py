"""Small synthetic ONNX LMs written node by node the way `torch.onnx.export` writes them.

torch is not a test dependency, so these builders reproduce, with onnx.helper, the graphs
the classic exporter (opset 17) emits for three architectures: Llama-2 as in llama2.c
(RMSNorm, interleaved RoPE via a [.., hd/2, 2] reshape, grouped KV heads via
Unsqueeze/Tile/Reshape), GPT-2 as in nanoGPT (wte + wpe[Range], fused c_attn + Split, exact
GELU) and Phi-2 as in Hugging Face (parallel block, partial rotate_half RoPE, tanh GELU).
Like real exports, every reshape target is computed from the runtime shape with
Shape/Gather/Unsqueeze/Concat(/Div) nodes, constants are Constant nodes, parameters are
initializers, and node names carry the module path ('/blocks.0/wq/MatMul').

Weights are random (fixed numpy seed); onnxruntime on the same file is the reference.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INT_MAX = np.iinfo(np.int64).max


class GraphWriter:
    """Appends nodes named like torch's exporter: '/<scope>/<Op>_<k>' -> '..._output_0'."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.scope_parts: list[str] = []
        self.counts: dict[str, int] = {}
        self.anonymous = 0

    @contextmanager
    def scope(self, name: str):
        self.scope_parts.append(name)
        try:
            yield
        finally:
            self.scope_parts.pop()

    def _name(self, op: str) -> str:
        prefix = "/" + "/".join(self.scope_parts) if self.scope_parts else ""
        key = f"{prefix}/{op}"
        k = self.counts.get(key, 0)
        self.counts[key] = k + 1
        return f"{key}_{k}" if k else key

    def op(self, op: str, *inputs: str, outputs: int = 1, **attrs) -> str | list[str]:
        name = self._name(op)
        outs = [f"{name}_output_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name, **attrs))
        return outs[0] if outputs == 1 else outs

    def const(self, value, dtype=np.int64) -> str:
        """A Constant node, as the exporter writes literals."""
        tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype))
        return self.op("Constant", value=tensor)

    def param(self, name: str, array: np.ndarray) -> str:
        """A named parameter initializer ('blocks.0.att_norm.weight')."""
        self.initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def matmul_weight(self, array: np.ndarray) -> str:
        """A transposed Linear weight, which the exporter stores as 'onnx::MatMul_<n>'."""
        self.anonymous += 1
        return self.param(f"onnx::MatMul_{1000 + self.anonymous}", array)

    def random(self, *shape: int, scale: float | None = None) -> np.ndarray:
        scale = 1.0 / math.sqrt(shape[0]) if scale is None else scale
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    # -- the exporter's shape arithmetic ------------------------------------------------

    def dim(self, x: str, axis: int) -> str:
        """x.size(axis) as a scalar: Gather(Shape(x), axis)."""
        return self.op("Gather", self.op("Shape", x), self.const(axis), axis=0)

    def unsqueeze0(self, scalar: str) -> str:
        return self.op("Unsqueeze", scalar, self.const([0]))

    def shape_of(self, *parts) -> str:
        """Concat of runtime scalars (str) and literal ints into a shape tensor."""
        pieces = [self.unsqueeze0(p) if isinstance(p, str) else self.const([p]) for p in parts]
        return self.op("Concat", *pieces, axis=0)

    def model(self, vocab: int, input_dims=(1, "T")) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "main_graph",
            [helper.make_tensor_value_info("input_ids", TensorProto.INT64, list(input_dims))],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "T", vocab])],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  producer_name="pytorch", producer_version="2.13.0")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    # -- blocks shared by the architectures ----------------------------------------------

    def linear(self, x: str, scope: str, n_in: int, n_out: int, bias: bool) -> str:
        with self.scope(scope):
            y = self.op("MatMul", x, self.matmul_weight(self.random(n_in, n_out)))
            if bias:
                name = ".".join(self.scope_parts) + ".bias"
                y = self.op("Add", self.param(name, self.random(n_out, scale=0.1)), y)
        return y

    def layer_norm(self, x: str, scope: str, dim: int) -> str:
        with self.scope(scope):
            prefix = ".".join(self.scope_parts)
            w = self.param(prefix + ".weight", 1 + self.random(dim, scale=0.1))
            b = self.param(prefix + ".bias", self.random(dim, scale=0.1))
            return self.op("LayerNormalization", x, w, b, axis=-1, epsilon=1e-5)

    def causal_softmax(self, scores: str, t: str, additive: bool = False) -> str:
        """Where(triu(ones(T, T), 1), -inf, scores) then Softmax, as masked_fill exports;
        `additive` adds a 0/-inf mask instead, as SDPA with an attn_mask does."""
        ones = self.op("ConstantOfShape", self.op("Concat", self.unsqueeze0(t),
                                                  self.unsqueeze0(t), axis=0),
                       value=numpy_helper.from_array(np.array([True])))
        mask = self.op("Trilu", ones, self.const(1), upper=1)
        neg_inf = self.const(-np.inf, np.float32)
        if additive:
            bias = self.op("Where", mask, neg_inf, self.const(0.0, np.float32))
            masked = self.op("Add", scores, bias)
        else:
            masked = self.op("Where", mask, neg_inf, scores)
        return self.op("Softmax", masked, axis=-1)

    def merge_heads(self, att: str, b: str, t: str, c: str) -> str:
        """[B, H, T, hd] -> [B, T, H*hd] via Transpose and a runtime Reshape."""
        y = self.op("Transpose", att, perm=[0, 2, 1, 3])
        return self.op("Reshape", y, self.shape_of(b, t, c))


# ---------------------------------------------------------------------------------------------
# Llama-2 (llama2.c)


@dataclass(frozen=True)
class LlamaSpec:
    dim: int = 48
    n_heads: int = 6
    n_kv_heads: int = 2
    n_layers: int = 3
    vocab: int = 97
    hidden: int = 80
    seq_len: int = 64
    mlp_act: str = "silu"  # 'celu' makes an unsupported model for error tests
    seed: int = 0

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


def llama_model(spec: LlamaSpec = LlamaSpec(), input_dims=(1, "T")) -> onnx.ModelProto:
    w = GraphWriter(spec.seed)
    hd = spec.head_dim
    inv = 1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd)
    angles = np.outer(np.arange(spec.seq_len), inv)
    t_in = w.dim("input_ids", 1)
    with w.scope("tok"):
        h = w.op("Gather", w.param("tok.weight", w.random(spec.vocab, spec.dim, scale=1.0)),
                 "input_ids")
    tables = []
    for table in (np.cos(angles), np.sin(angles)):
        tables.append(w.op("Slice", w.const(table, np.float32), w.const([0]),
                           w.unsqueeze0(t_in), w.const([0]), w.const([1])))
    for i in range(spec.n_layers):
        with w.scope(f"blocks.{i}"):
            h = _llama_block(w, spec, h, tables)
    h = _rms_norm(w, h, "norm", spec.dim)
    with w.scope("out"):
        w.nodes.append(helper.make_node("MatMul", [h, w.matmul_weight(
            w.random(spec.dim, spec.vocab))], ["logits"], name="/out/MatMul"))
    return w.model(spec.vocab, input_dims)


def _rms_norm(w: GraphWriter, x: str, scope: str, dim: int) -> str:
    with w.scope(scope):
        ms = w.op("ReduceMean", w.op("Pow", x, w.const(2.0, np.float32)), axes=[-1],
                  keepdims=1)
        root = w.op("Sqrt", w.op("Add", ms, w.const(1e-5, np.float32)))
        y = w.op("Mul", x, w.op("Div", w.const(1.0, np.float32), root))
        gamma = w.param(".".join(w.scope_parts) + ".weight", 1 + w.random(dim, scale=0.1))
        return w.op("Mul", y, gamma)


def _llama_block(w: GraphWriter, spec: LlamaSpec, x: str, tables: list[str]) -> str:
    hd, kv, rep = spec.head_dim, spec.n_kv_heads, spec.n_heads // spec.n_kv_heads
    b, t, c = (w.dim(x, i) for i in range(3))
    n = _rms_norm(w, x, "att_norm", spec.dim)
    q = w.linear(n, "wq", spec.dim, spec.dim, bias=False)
    k = w.linear(n, "wk", spec.dim, kv * hd, bias=False)
    v = w.linear(n, "wv", spec.dim, kv * hd, bias=False)
    q = w.op("Reshape", q, w.shape_of(b, t, spec.n_heads, hd))
    kv_shape = w.shape_of(b, t, kv, hd)
    k, v = w.op("Reshape", k, kv_shape), w.op("Reshape", v, kv_shape)
    q, k = _rope_interleaved(w, q, tables), _rope_interleaved(w, k, tables)
    if rep > 1:
        k, v = _repeat_kv(w, k, rep), _repeat_kv(w, v, rep)
    q = w.op("Transpose", q, perm=[0, 2, 1, 3])
    v = w.op("Transpose", v, perm=[0, 2, 1, 3])
    kt = w.op("Transpose", k, perm=[0, 2, 3, 1])
    scores = w.op("Div", w.op("MatMul", q, kt), w.const(math.sqrt(hd), np.float32))
    att = w.op("MatMul", w.causal_softmax(scores, t), v)
    o = w.linear(w.merge_heads(att, b, t, c), "wo", spec.dim, spec.dim, bias=False)
    x = w.op("Add", x, o)
    n = _rms_norm(w, x, "ffn_norm", spec.dim)
    gate = w.linear(n, "w1", spec.dim, spec.hidden, bias=False)
    if spec.mlp_act == "silu":
        gate = w.op("Mul", gate, w.op("Sigmoid", gate))
    else:
        gate = w.op("Celu", gate)
    up = w.linear(n, "w3", spec.dim, spec.hidden, bias=False)
    down = w.linear(w.op("Mul", gate, up), "w2", spec.hidden, spec.dim, bias=False)
    return w.op("Add", x, down)


def _rope_interleaved(w: GraphWriter, x: str, tables: list[str]) -> str:
    """llama2.c: view [B, T, H, hd/2, 2], rotate the pairs, stack, flatten(3)."""
    dims = [w.dim(x, i) for i in range(3)]
    pairs = w.op("Reshape", x, w.shape_of(*dims, -1, 2))
    re_, im = (w.op("Gather", pairs, w.const(i), axis=4) for i in (0, 1))
    cos, sin = (w.op("Unsqueeze", tab, w.const([0, 2])) for tab in tables)
    out_re = w.op("Sub", w.op("Mul", re_, cos), w.op("Mul", im, sin))
    out_im = w.op("Add", w.op("Mul", re_, sin), w.op("Mul", im, cos))
    stacked = w.op("Concat", w.op("Unsqueeze", out_re, w.const([-1])),
                   w.op("Unsqueeze", out_im, w.const([-1])), axis=-1)
    head = w.op("Slice", w.op("Shape", stacked), w.const([0]), w.const([3]), w.const([0]))
    return w.op("Reshape", stacked, w.op("Concat", head, w.const([-1]), axis=0))


def _repeat_kv(w: GraphWriter, x: str, rep: int) -> str:
    """[B, T, KV, hd] -> [B, T, KV*rep, hd] with head h reading KV head h // rep."""
    tiled = w.op("Tile", w.op("Unsqueeze", x, w.const([3])), w.const([1, 1, 1, rep, 1]))
    shape = w.op("Shape", tiled)
    lead = w.op("Slice", shape, w.const([0]), w.const([2]), w.const([0]))
    last = w.op("Slice", shape, w.const([4]), w.const([5]), w.const([0]))
    return w.op("Reshape", tiled, w.op("Concat", lead, w.const([-1]), last, axis=0))


# ---------------------------------------------------------------------------------------------
# GPT-2 (nanoGPT)


@dataclass(frozen=True)
class GptSpec:
    dim: int = 40
    n_heads: int = 5
    n_layers: int = 2
    vocab: int = 53
    block_size: int = 48
    seed: int = 1
    # SDPA-style variant: q and k^T each scaled by head_dim^-1/4, an additive 0/-inf mask
    sdpa_style: bool = False


def gpt2_model(spec: GptSpec = GptSpec()) -> onnx.ModelProto:
    w = GraphWriter(spec.seed)
    t_in = w.dim("input_ids", 1)
    pos = w.op("Range", w.const(0), t_in, w.const(1))
    wte = w.random(spec.vocab, spec.dim, scale=0.5)
    with w.scope("wte"):
        tok = w.op("Gather", w.param("wte.weight", wte), "input_ids")
    with w.scope("wpe"):
        posv = w.op("Gather", w.param("wpe.weight", w.random(spec.block_size, spec.dim,
                                                             scale=0.5)), pos)
    x = w.op("Add", tok, posv)
    for i in range(spec.n_layers):
        with w.scope(f"h.{i}"):
            x = _gpt2_block(w, spec, x)
    x = w.layer_norm(x, "ln_f", spec.dim)
    w.nodes.append(helper.make_node("MatMul", [x, w.matmul_weight(wte.T.copy())], ["logits"],
                                    name="/lm_head/MatMul"))  # tied to wte, stored transposed
    return w.model(spec.vocab)


def _gpt2_block(w: GraphWriter, spec: GptSpec, x: str) -> str:
    c_dim, heads = spec.dim, spec.n_heads
    b, t, c = (w.dim(x, i) for i in range(3))
    n = w.layer_norm(x, "ln_1", c_dim)
    qkv = w.linear(n, "c_attn", c_dim, 3 * c_dim, bias=True)
    q, k, v = w.op("Split", qkv, w.const([c_dim] * 3), axis=2, outputs=3)
    shape = w.shape_of(b, t, heads, w.op("Div", c, w.const(heads)))
    q = w.op("Transpose", w.op("Reshape", q, shape), perm=[0, 2, 1, 3])
    kt = w.op("Transpose", w.op("Reshape", k, shape), perm=[0, 2, 3, 1])
    v = w.op("Transpose", w.op("Reshape", v, shape), perm=[0, 2, 1, 3])
    if spec.sdpa_style:
        root = w.const((c_dim // heads) ** -0.25, np.float32)
        scores = w.op("MatMul", w.op("Mul", q, root), w.op("Mul", kt, root))
    else:
        scale = w.const(1.0 / math.sqrt(c_dim // heads), np.float32)
        scores = w.op("Mul", w.op("MatMul", q, kt), scale)
    att = w.op("MatMul", w.causal_softmax(scores, t, additive=spec.sdpa_style), v)
    x = w.op("Add", x, w.linear(w.merge_heads(att, b, t, c), "c_proj", c_dim, c_dim, True))
    f = w.linear(w.layer_norm(x, "ln_2", c_dim), "c_fc", c_dim, 4 * c_dim, bias=True)
    erf = w.op("Erf", w.op("Div", f, w.const(math.sqrt(2.0), np.float32)))
    gelu = w.op("Mul", w.op("Mul", f, w.op("Add", erf, w.const(1.0, np.float32))),
                w.const(0.5, np.float32))
    return w.op("Add", x, w.linear(gelu, "mlp_proj", 4 * c_dim, c_dim, bias=True))


# ---------------------------------------------------------------------------------------------
# Phi-2 (Hugging Face)


@dataclass(frozen=True)
class PhiSpec:
    dim: int = 48
    n_heads: int = 4
    rotary_dim: int = 6
    n_layers: int = 2
    vocab: int = 61
    hidden: int = 96
    max_pos: int = 40
    seed: int = 2


def phi_model(spec: PhiSpec = PhiSpec()) -> onnx.ModelProto:
    w = GraphWriter(spec.seed)
    rd = spec.rotary_dim
    inv = 1.0 / 10000.0 ** (np.arange(0, rd, 2) / rd)
    angles = np.outer(np.arange(spec.max_pos), inv)
    angles = np.concatenate([angles, angles], axis=1)  # HF: cat(freqs, freqs)
    t_in = w.dim("input_ids", 1)
    tables = [w.op("Slice", w.const(tab, np.float32), w.const([0]), w.unsqueeze0(t_in),
                   w.const([0]), w.const([1])) for tab in (np.cos(angles), np.sin(angles))]
    with w.scope("embed_tokens"):
        table = w.param("embed_tokens.weight", w.random(spec.vocab, spec.dim, scale=1.0))
        x = w.op("Gather", table, "input_ids")
    for i in range(spec.n_layers):
        with w.scope(f"layers.{i}"):
            x = _phi_block(w, spec, x, tables)
    x = w.layer_norm(x, "final_layernorm", spec.dim)
    y = w.op("MatMul", x, w.matmul_weight(w.random(spec.dim, spec.vocab)))
    bias = w.param("lm_head.bias", w.random(spec.vocab, scale=0.1))
    w.nodes.append(helper.make_node("Add", [bias, y], ["logits"], name="/lm_head/Add"))
    return w.model(spec.vocab)


def _phi_block(w: GraphWriter, spec: PhiSpec, x: str, tables: list[str]) -> str:
    hd = spec.dim // spec.n_heads
    n = w.layer_norm(x, "input_layernorm", spec.dim)
    with w.scope("self_attn"):
        b, t, c = (w.dim(n, i) for i in range(3))
        shape = w.shape_of(b, t, spec.n_heads, hd)
        heads = [w.op("Transpose", w.op("Reshape", w.linear(n, name, spec.dim, spec.dim, True),
                                        shape), perm=[0, 2, 1, 3])
                 for name in ("q_proj", "k_proj", "v_proj")]
        cos, sin = (w.op("Unsqueeze", tab, w.const([0, 1])) for tab in tables)
        q, k = (_rope_rotate_half(w, h, cos, sin, spec.rotary_dim) for h in heads[:2])
        kt = w.op("Transpose", k, perm=[0, 1, 3, 2])
        scores = w.op("Div", w.op("MatMul", q, kt), w.const(math.sqrt(hd), np.float32))
        att = w.op("MatMul", w.causal_softmax(scores, t), heads[2])
        attn = w.linear(w.merge_heads(att, b, t, c), "dense", spec.dim, spec.dim, True)
    with w.scope("mlp"):
        f = w.linear(n, "fc1", spec.dim, spec.hidden, True)
        cube = w.op("Mul", f, w.op("Mul", f, f))
        inner = w.op("Add", f, w.op("Mul", w.const(0.044715, np.float32), cube))
        th = w.op("Tanh", w.op("Mul", w.const(math.sqrt(2 / math.pi), np.float32), inner))
        g = w.op("Mul", w.const(0.5, np.float32),
                 w.op("Mul", f, w.op("Add", w.const(1.0, np.float32), th)))
        mlp = w.linear(g, "fc2", spec.hidden, spec.dim, True)
    return w.op("Add", w.op("Add", x, attn), mlp)


def _rope_rotate_half(w: GraphWriter, x: str, cos: str, sin: str, rd: int) -> str:
    """HF partial rotary: rotate x[..., :rd] as x*cos + rotate_half(x)*sin, keep the rest."""
    axis = w.const([3])
    rot = w.op("Slice", x, w.const([0]), w.const([rd]), axis, w.const([1]))
    rest = w.op("Slice", x, w.const([rd]), w.const([INT_MAX]), axis, w.const([1]))
    half = w.unsqueeze0(w.op("Div", w.dim(rot, 3), w.const(2)))
    x1 = w.op("Slice", rot, w.const([0]), half, axis, w.const([1]))
    x2 = w.op("Slice", rot, half, w.const([INT_MAX]), axis, w.const([1]))
    rotated = w.op("Concat", w.op("Neg", x2), x1, axis=-1)
    emb = w.op("Add", w.op("Mul", rot, cos), w.op("Mul", rotated, sin))
    return w.op("Concat", emb, rest, axis=-1)


# ---------------------------------------------------------------------------------------------
# attention-free models spelling norms and activations the other ways exporters write them


def mlp_model(norm: str, act: str, dim: int = 16, hidden: int = 24, vocab: int = 19,
              seed: int = 7) -> onnx.ModelProto:
    """embedding -> norm -> linear -> act -> linear -> logits, for pattern spellings.

    norm: 'div' (x / sqrt(ms + eps) * g, ms from Mul(x, x)) or 'reciprocal'
    (g * (x * Reciprocal(sqrt(eps + ms)))); act: 'gelu_erf_mul' (erf(x * 1/sqrt2)),
    'gelu_tanh_pow' (Pow(x, 3)) or 'silu_swapped' (Sigmoid(x) * x).
    """
    w = GraphWriter(seed)
    x = w.op("Gather", w.param("emb.weight", w.random(vocab, dim, scale=1.0)), "input_ids")
    with w.scope("norm"):
        f32 = np.float32
        if norm == "div":
            ms = w.op("ReduceMean", w.op("Mul", x, x), axes=[-1], keepdims=1)
            y = w.op("Div", x, w.op("Sqrt", w.op("Add", ms, w.const(1e-6, f32))))
            y = w.op("Mul", y, w.param("norm.weight", 1 + w.random(dim, scale=0.1)))
        else:
            ms = w.op("ReduceMean", w.op("Pow", x, w.const(2.0, f32)), axes=[-1], keepdims=1)
            r = w.op("Reciprocal", w.op("Sqrt", w.op("Add", w.const(1e-6, f32), ms)))
            y = w.op("Mul", w.param("norm.weight", 1 + w.random(dim, scale=0.1)),
                     w.op("Mul", x, r))
    h = w.linear(y, "fc1", dim, hidden, bias=True)
    with w.scope("act"):
        half, one = w.const(0.5, np.float32), w.const(1.0, np.float32)
        if act == "gelu_erf_mul":
            erf = w.op("Erf", w.op("Mul", h, w.const(1 / math.sqrt(2), np.float32)))
            g = w.op("Mul", half, w.op("Mul", h, w.op("Add", one, erf)))
        elif act == "gelu_tanh_pow":
            cube = w.op("Mul", w.const(0.044715, np.float32),
                        w.op("Pow", h, w.const(3.0, np.float32)))
            inner = w.op("Mul", w.op("Add", h, cube), w.const(math.sqrt(2 / math.pi),
                                                              np.float32))
            g = w.op("Mul", w.op("Mul", h, half), w.op("Add", w.op("Tanh", inner), one))
        else:
            g = w.op("Mul", w.op("Sigmoid", h), h)
    y = w.op("MatMul", g, w.matmul_weight(w.random(hidden, vocab)))
    w.nodes.append(helper.make_node("Identity", [y], ["logits"], name="/out/Identity"))
    return w.model(vocab)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path
