"""Each `transformer` op, interpreted, against a reference written here independently.

The references are deliberately naive (loops over heads and positions, float64) so that a
mistake in the vectorised interpreter cannot be mirrored by the reference.
"""

import math

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, IndexType, ModuleOp, TensorType, i32
from xdsl.interpreter import Interpreter
from xdsl.interpreters.func import FuncFunctions
from xdsl.ir import Block, Region

from irtool.dialects import transformer as tf
from irtool.interpreter.transformer import TransformerFunctions
from irtool.weights import WeightStore

RNG = np.random.default_rng(0)
F32 = Float32Type()
DYN = tf.DYNAMIC


def run_single(make_op, arg_types, args, store=None):
    """Build `@f(args) -> op(args)`, verify it, and interpret it."""
    block = Block(arg_types=arg_types)
    op = make_op(*block.args)
    block.add_ops([op, func.ReturnOp(op.results[0])])
    fn = func.FuncOp("f", (arg_types, [op.results[0].type]), Region(block))
    module = ModuleOp([fn])
    module.verify()
    interp = Interpreter(module)
    interp.register_implementations(FuncFunctions())
    interp.register_implementations(TransformerFunctions(store or WeightStore()))
    (out,) = interp.call_op("f", tuple(args))
    return np.asarray(out)


def t(*shape, dtype=F32):
    return TensorType(dtype, list(shape))


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def test_linear_with_and_without_bias():
    x, w, b = rand(5, 7), rand(3, 7), rand(3)
    ref = np.array([[sum(float(x[i, k]) * float(w[j, k]) for k in range(7)) for j in range(3)]
                    for i in range(5)])
    out = run_single(lambda a, c: tf.LinearOp(a, c), [t(DYN, 7), t(3, 7)], [x, w])
    np.testing.assert_allclose(out, ref, atol=1e-5)
    out = run_single(lambda a, c, d: tf.LinearOp(a, c, d), [t(DYN, 7), t(3, 7), t(3)], [x, w, b])
    np.testing.assert_allclose(out, ref + b, atol=1e-5)


def test_matmul_transposed():
    a, b = rand(4, 6), rand(5, 6)
    out = run_single(lambda x, y: tf.MatmulOp(x, y, transpose_b=True), [t(4, 6), t(5, 6)], [a, b])
    np.testing.assert_allclose(out, np.einsum("ik,jk->ij", a.astype(float), b), atol=1e-5)


def test_rms_norm():
    x, g = rand(3, 8), rand(8)
    ref = np.stack([row / math.sqrt(sum(v * v for v in row.astype(float)) / 8 + 1e-5) * g
                    for row in x])
    out = run_single(lambda a, b: tf.RMSNormOp(a, b, 1e-5), [t(DYN, 8), t(8)], [x, g])
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_layer_norm():
    x, g, b = rand(3, 8), rand(8), rand(8)
    xd = x.astype(float)
    mu = xd.mean(axis=1, keepdims=True)
    var = ((xd - mu) ** 2).mean(axis=1, keepdims=True)
    ref = (xd - mu) / np.sqrt(var + 1e-5) * g + b
    out = run_single(lambda a, c, d: tf.LayerNormOp(a, c, d, 1e-5), [t(DYN, 8), t(8), t(8)],
                     [x, g, b])
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    x = rand(4, 9) * 3
    if approximate == "none":
        ref = [[0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in row] for row in x.astype(float)]
    else:
        ref = [[0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
                for v in row] for row in x.astype(float)]
    out = run_single(lambda a: tf.GeluOp(a, approximate), [t(DYN, 9)], [x])
    np.testing.assert_allclose(out, np.array(ref), atol=1e-5)


def test_silu_softmax_add_mul():
    x, y = rand(4, 9), rand(4, 9)
    np.testing.assert_allclose(run_single(tf.SiluOp, [t(DYN, 9)], [x]),
                               x / (1 + np.exp(-x.astype(float))), atol=1e-6)
    e = np.exp(x.astype(float))
    np.testing.assert_allclose(run_single(tf.SoftmaxOp, [t(DYN, 9)], [x]),
                               e / e.sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(run_single(tf.AddOp, [t(DYN, 9)] * 2, [x, y]), x + y)
    np.testing.assert_allclose(run_single(tf.MulOp, [t(DYN, 9)] * 2, [x, y]), x * y)


def test_embeddings_with_start():
    table, ids = rand(10, 4), np.array([3, 0, 9], np.int32)
    out = run_single(tf.EmbeddingOp, [t(DYN, dtype=i32), t(10, 4)], [ids, table])
    np.testing.assert_array_equal(out, table[[3, 0, 9]])
    out = run_single(lambda a, b, s: tf.PositionEmbeddingOp(a, b, s),
                     [t(DYN, dtype=i32), t(10, 4), IndexType()], [ids, table, 5])
    np.testing.assert_array_equal(out, table[5:8])


def rope_reference(x, heads, head_dim, rotary_dim, style, start, theta=10000.0):
    """Per position, per head, per rotated pair: a 2-D rotation by position * frequency."""
    out = x.astype(float).copy()
    half = rotary_dim // 2
    for p in range(x.shape[0]):
        for h in range(heads):
            base = h * head_dim
            for i in range(half):
                angle = (start + p) * theta ** (-2 * i / rotary_dim)
                a_idx, b_idx = ((base + 2 * i, base + 2 * i + 1) if style == "interleaved"
                                else (base + i, base + i + half))
                a, b = x[p, a_idx], x[p, b_idx]
                out[p, a_idx] = a * math.cos(angle) - b * math.sin(angle)
                out[p, b_idx] = a * math.sin(angle) + b * math.cos(angle)
    return out


@pytest.mark.parametrize("style,rotary_dim,start", [("interleaved", 8, 0), ("rotate_half", 4, 3),
                                                     ("rotate_half", 8, 0), ("interleaved", 4, 2)])
def test_rope(style, rotary_dim, start):
    heads, hd, T = 3, 8, 5
    ang = np.outer(np.arange(16), 10000.0 ** (-np.arange(0, rotary_dim, 2) / rotary_dim))
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    x = rand(T, heads * hd)
    out = run_single(
        lambda a, c, s, st: tf.RopeOp(a, c, s, heads=heads, head_dim=hd, rotary_dim=rotary_dim,
                                      style=style, start=st),
        [t(DYN, heads * hd), t(16, rotary_dim // 2), t(16, rotary_dim // 2), IndexType()],
        [x, cos, sin, start])
    np.testing.assert_allclose(out, rope_reference(x, heads, hd, rotary_dim, style, start),
                               atol=1e-5)


def attention_reference(q, k, v, heads, kv_heads, hd, scale, causal):
    T, S = q.shape[0], k.shape[0]
    out = np.zeros((T, heads * hd))
    for h in range(heads):
        g = h // (heads // kv_heads)
        for i in range(T):
            scores = []
            for j in range(S):
                if causal and j > i + (S - T):
                    continue
                scores.append((j, scale * float(np.dot(q[i, h * hd:(h + 1) * hd].astype(float),
                                                        k[j, g * hd:(g + 1) * hd]))))
            m = max(s for _, s in scores)
            z = sum(math.exp(s - m) for _, s in scores)
            for j, s in scores:
                out[i, h * hd:(h + 1) * hd] += math.exp(s - m) / z * v[j, g * hd:(g + 1) * hd]
    return out


@pytest.mark.parametrize("T,S,causal", [(5, 5, True), (1, 6, True), (4, 4, False), (2, 7, True)])
def test_attention_gqa(T, S, causal):
    heads, kv, hd = 4, 2, 3
    q, k, v = rand(T, heads * hd), rand(S, kv * hd), rand(S, kv * hd)
    out = run_single(
        lambda a, b, c: tf.AttentionOp(a, b, c, heads=heads, kv_heads=kv, head_dim=hd, scale=0.5,
                                       causal=causal),
        [t(DYN, heads * hd), t(DYN, kv * hd), t(DYN, kv * hd)], [q, k, v])
    np.testing.assert_allclose(out, attention_reference(q, k, v, heads, kv, hd, 0.5, causal),
                               atol=1e-5)


def test_weight_reads_the_store():
    w = rand(2, 3)
    out = run_single(lambda: tf.WeightOp("w", t(2, 3)), [], [], WeightStore({"w": w}))
    np.testing.assert_array_equal(out, w)
