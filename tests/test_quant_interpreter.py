"""The `quant` ops run by the interpreter: each op against the reference functions (bit-exact
for the integer parts) and the quantize pass on a small model (store layout and sizes)."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.interpreter import Interpreter
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.func import FuncFunctions

from irtool.errors import IrtoolError
from irtool.interpreter.quant import QuantFunctions
from irtool.interpreter.transformer import TransformerFunctions
from irtool.module_io import parse_module
from irtool.numerics import quant as ref
from irtool.weights import WeightStore

F32 = np.float32
RNG = np.random.default_rng(7)


def run(text: str, args: tuple, store: WeightStore | None = None, name: str = "f"):
    module = parse_module(text, "test.mlir")
    interp = Interpreter(module)
    for fns in (FuncFunctions(), ArithFunctions(), TransformerFunctions(store or WeightStore()),
                QuantFunctions()):
        interp.register_implementations(fns)
    return interp.call_op(name, args)


def same_bits(a, b) -> bool:
    a, b = np.atleast_1d(np.asarray(a)), np.atleast_1d(np.asarray(b))
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        a.view(np.uint8), b.view(np.uint8))


def test_quantize_dequantize_requantize_ops():
    x = RNG.normal(size=(3, 10)).astype(F32)
    s = np.array([0.02], F32)
    z = np.array([-5], np.int32)
    sg = np.abs(RNG.normal(size=(3, 3))).astype(F32) / 40
    acc = RNG.integers(-10**5, 10**5, size=(3, 4)).astype(np.int32)
    m = np.array([1e-3, 2e-3, 5e-4, 1e-2], F32)
    text = """
    func.func @f(%x: tensor<?x10xf32>, %s: tensor<1xf32>, %z: tensor<1xi32>, %sg: tensor<3x3xf32>, %acc: tensor<?x4xi32>, %m: tensor<4xf32>) -> (tensor<?x10xi8>, tensor<?x10xf32>, tensor<?x10xui8>, tensor<?x10xi8>, tensor<?x4xi8>, tensor<?x10xi8>, tensor<?x3xf32>) {
      %q = quant.quantize %x, %s zero_point %z : tensor<?x10xf32>, tensor<1xf32>, tensor<1xi32> -> tensor<?x10xi8>
      %d = quant.dequantize %q, %s zero_point %z : tensor<?x10xi8>, tensor<1xf32>, tensor<1xi32> -> tensor<?x10xf32>
      %u = quant.quantize %x, %s : tensor<?x10xf32>, tensor<1xf32> -> tensor<?x10xui8>
      %g = quant.quantize %x, %sg {bits = 4 : i64, narrow, group = 4 : i64} : tensor<?x10xf32>, tensor<3x3xf32> -> tensor<?x10xi8>
      %r = quant.requantize %acc, %m {axis = 1 : i64} : tensor<?x4xi32>, tensor<4xf32> -> tensor<?x4xi8>
      %kq, %ks = quant.dynamic_quantize %x {group = 4 : i64} : tensor<?x10xf32> -> tensor<?x10xi8>, tensor<?x3xf32>
      func.return %q, %d, %u, %g, %r, %kq, %ks : tensor<?x10xi8>, tensor<?x10xf32>, tensor<?x10xui8>, tensor<?x10xi8>, tensor<?x4xi8>, tensor<?x10xi8>, tensor<?x3xf32>
    }"""
    q, d, u, g, r, kq, ks = run(text, (x, s, z, sg, acc, m))
    assert same_bits(q, ref.quantize(x, s, z, -128, 127).astype(np.int8))
    assert same_bits(d, ref.dequantize(q, s, z))
    assert same_bits(u, ref.quantize(x, s, None, 0, 255).astype(np.uint8))
    assert u.min() == 0  # negative values clip at 0
    assert same_bits(g, ref.quantize(x, sg, None, -7, 7, 4).astype(np.int8))
    assert np.abs(g).max() <= 7
    assert same_bits(r, ref.requantize(acc, m, None, -128, 127, None, 1).astype(np.int8))
    eq, es = ref.dynamic_quantize(x, 4)
    assert same_bits(kq, eq) and same_bits(ks, es)


def test_linear_ops_read_the_store():
    k, n = 70, 12
    w = RNG.normal(0, 0.1, size=(n, k)).astype(F32)
    x = RNG.normal(size=(5, k)).astype(F32)
    b = RNG.normal(size=n).astype(F32)
    q8, s8 = ref.quantize_weights_w8(w)
    q4, s4 = ref.quantize_weights_w4(w, 32)
    b1, alpha = ref.quantize_weights_w1(w)
    sx, zx = ref.activation_params(-3.0, 3.5)
    m = ref.w8a8_multiplier(sx, s8)
    store = WeightStore({"q8": q8, "s8": s8, "q4": ref.pack_int4(q4), "s4": s4,
                         "q1": ref.pack_bits(b1), "alpha": alpha, "m": m, "b": b,
                         "sx": np.array([sx], F32), "zx": np.array([zx], np.int32)})
    text = f"""
    func.func @f(%x: tensor<?x{k}xf32>) -> (tensor<?x{n}xf32>, tensor<?x{n}xf32>, tensor<?x{n}xf32>, tensor<?x{n}xf32>, tensor<?x{n}xf32>, tensor<?x{k}xi8>) {{
      %q8 = transformer.weight "q8" : tensor<{n}x{k}xi8>
      %s8 = transformer.weight "s8" : tensor<{n}xf32>
      %q4 = transformer.weight "q4" : tensor<{n}x35xui8>
      %s4 = transformer.weight "s4" : tensor<{n}x3xf32>
      %q1 = transformer.weight "q1" : tensor<{n}x9xui8>
      %alpha = transformer.weight "alpha" : tensor<{n}xf32>
      %m = transformer.weight "m" : tensor<{n}xf32>
      %b = transformer.weight "b" : tensor<{n}xf32>
      %sx = transformer.weight "sx" : tensor<1xf32>
      %zx = transformer.weight "zx" : tensor<1xi32>
      %y8 = quant.wlinear %x, %q8, %s8 bias %b {{bits = 8 : i64}} : tensor<?x{k}xf32>, tensor<{n}x{k}xi8>, tensor<{n}xf32>, tensor<{n}xf32> -> tensor<?x{n}xf32>
      %y4 = quant.wlinear %x, %q4, %s4 {{bits = 4 : i64, group = 32 : i64}} : tensor<?x{k}xf32>, tensor<{n}x35xui8>, tensor<{n}x3xf32> -> tensor<?x{n}xf32>
      %y1 = quant.wlinear %x, %q1, %alpha {{bits = 1 : i64}} : tensor<?x{k}xf32>, tensor<{n}x9xui8>, tensor<{n}xf32> -> tensor<?x{n}xf32>
      %y1a4 = quant.wlinear %x, %q1, %alpha bias %b {{bits = 1 : i64, act_bits = 4 : i64, act_group = 32 : i64}} : tensor<?x{k}xf32>, tensor<{n}x9xui8>, tensor<{n}xf32>, tensor<{n}xf32> -> tensor<?x{n}xf32>
      %xq = quant.quantize %x, %sx zero_point %zx : tensor<?x{k}xf32>, tensor<1xf32>, tensor<1xi32> -> tensor<?x{k}xi8>
      %ya = quant.qlinear %xq, %q8, %m, %zx bias %b : tensor<?x{k}xi8>, tensor<{n}x{k}xi8>, tensor<{n}xf32>, tensor<1xi32>, tensor<{n}xf32> -> tensor<?x{n}xf32>
      func.return %y8, %y4, %y1, %y1a4, %ya, %xq : tensor<?x{n}xf32>, tensor<?x{n}xf32>, tensor<?x{n}xf32>, tensor<?x{n}xf32>, tensor<?x{n}xf32>, tensor<?x{k}xi8>
    }}"""
    y8, y4, y1, y1a4, ya, xq = run(text, (x,), store)
    np.testing.assert_allclose(y8, ref.w8_linear(x, q8, s8, b), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(y4, ref.w4_linear(x, ref.pack_int4(q4), s4, None, 32), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(y1, ref.w1_linear(x, ref.pack_bits(b1), alpha), rtol=1e-6,
                               atol=1e-6)
    assert same_bits(y1a4, ref.w1a4_linear(x, ref.pack_bits(b1), alpha, b, 32))
    assert same_bits(xq, ref.quantize_activations(x, sx, zx))
    assert same_bits(ya, ref.w8a8_linear(xq, zx, q8, m, b))
    # and all of them approximate the float layer
    exact = x @ w.T + b
    assert np.abs(y8 - exact).max() < 0.05 and np.abs(ya - exact).max() < 0.2


def test_kv_ops_decode_steps():
    layers, kvh, cap, hd, heads = 2, 1, 8, 4, 2
    text = f"""
    func.func @f(%q: tensor<1x8xf32>, %k: tensor<1x4xf32>, %v: tensor<1x4xf32>, %K: tensor<{layers}x{kvh}x{cap}x{hd}xi8>, %Ks: tensor<{layers}x{kvh}x{cap}xf32>, %V: tensor<{layers}x{kvh}x{cap}x{hd}xi8>, %Vs: tensor<{layers}x{kvh}x{cap}xf32>, %pos: index) -> (tensor<1x8xf32>, tensor<{layers}x{kvh}x{cap}x{hd}xi8>, tensor<{layers}x{kvh}x{cap}xf32>) {{
      %one = arith.constant 1 : index
      %end = arith.addi %pos, %one : index
      %K1, %Ks1 = quant.kv_write %K, %Ks, %k, %pos {{layer = 1 : i64}} : tensor<{layers}x{kvh}x{cap}x{hd}xi8>, tensor<{layers}x{kvh}x{cap}xf32>, tensor<1x4xf32> -> tensor<{layers}x{kvh}x{cap}x{hd}xi8>, tensor<{layers}x{kvh}x{cap}xf32>
      %V1, %Vs1 = quant.kv_write %V, %Vs, %v, %pos {{layer = 1 : i64}} : tensor<{layers}x{kvh}x{cap}x{hd}xi8>, tensor<{layers}x{kvh}x{cap}xf32>, tensor<1x4xf32> -> tensor<{layers}x{kvh}x{cap}x{hd}xi8>, tensor<{layers}x{kvh}x{cap}xf32>
      %a = quant.cached_attention %q, %K1, %Ks1, %V1, %Vs1, %end {{layer = 1 : i64, heads = {heads} : i64, kv_heads = {kvh} : i64, head_dim = {hd} : i64, scale = 5.000000e-01 : f32}} : tensor<1x8xf32>, tensor<{layers}x{kvh}x{cap}x{hd}xi8>, tensor<{layers}x{kvh}x{cap}xf32>, tensor<{layers}x{kvh}x{cap}x{hd}xi8>, tensor<{layers}x{kvh}x{cap}xf32> -> tensor<1x8xf32>
      func.return %a, %K1, %Ks1 : tensor<1x8xf32>, tensor<{layers}x{kvh}x{cap}x{hd}xi8>, tensor<{layers}x{kvh}x{cap}xf32>
    }}"""
    K = np.zeros((layers, kvh, cap, hd), np.int8)
    Ks = np.zeros((layers, kvh, cap), F32)
    V, Vs = K.copy(), Ks.copy()
    ks, vs = [], []
    for pos in range(3):
        q = RNG.normal(size=(1, 8)).astype(F32)
        k = RNG.normal(size=(1, 4)).astype(F32)
        v = RNG.normal(size=(1, 4)).astype(F32)
        ks.append(k)
        vs.append(v)
        a, K, Ks = run(text, (q, k, v, K, Ks, V, Vs, pos))
        V, Vs = ref.kv_write_int8(V, Vs, v, pos, 1, False)
        kq, kscale = ref.kv_quantize_rows(k)
        assert same_bits(K[1, 0, pos], kq[0]) and same_bits(Ks[1, 0, pos], kscale[0])
        assert same_bits(a, ref.cached_attention_int8(q, K, Ks, V, Vs, pos + 1, 1, heads, kvh,
                                                      hd, 0.5, False))
    with pytest.raises(IrtoolError, match="capacity of 8"):
        run(text, (q, k, v, K, Ks, V, Vs, cap))
