"""extract-kv-cache: prefill + decode with an explicit KV cache reproduce the full forward.

References, all independent of the pass: the PyTorch goldens in ../shared/models, onnxruntime
on phi.onnx, and `llama_reference` below, a float64 numpy Llama with sliding-window attention
that reads the weights from the store by name and shares no code with irtool's interpreter.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, IndexType, ModuleOp, TensorType
from xdsl.interpreter import Interpreter
from xdsl.interpreters.func import FuncFunctions
from xdsl.ir import Block, Region

from irtool.context import make_context
from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner
from irtool.interpreter.transformer import TransformerFunctions
from irtool.module_io import parse_module
from irtool.passes.extract_kv_cache import ExtractKVCachePass
from irtool.weights import WeightStore
from tests.requirements import need_module

MODEL_FILES = {
    "stories260K": "stories260K/stories260K.bin",
    "nanogpt-tiny": "nanogpt-tiny/nanogpt.onnx",
    "phi-tiny": "phi-tiny/phi.onnx",
}
GENERATIVE = ["stories260K", "nanogpt-tiny"]


def needs_onnx_importer(name: str) -> None:
    """The ONNX importer is part of irtool: its absence is a failure, not a skip."""
    if MODEL_FILES[name].endswith(".onnx"):
        import irtool.frontend.onnx_import  # noqa: F401


@pytest.fixture(scope="module")
def imported(shared_models):
    """Each model imported once; tests transform clones of the module."""
    cache: dict[str, tuple[ModuleOp, WeightStore]] = {}

    def get(name: str) -> tuple[ModuleOp, WeightStore]:
        needs_onnx_importer(name)
        if name not in cache:
            cache[name] = import_model(shared_models / MODEL_FILES[name])
        return cache[name]

    return get


@pytest.fixture(scope="module")
def cached(imported):
    """A runner of the model after extract-kv-cache with the given options."""

    def make(name: str, **options) -> ModelRunner:
        module, store = imported(name)
        module = module.clone()
        ExtractKVCachePass(**options).apply(make_context(), module)
        module.verify()
        return ModelRunner(module, store)

    return make


def golden(shared_models, name):
    folder = (shared_models / MODEL_FILES[name]).parent
    return np.load(folder / "golden_logits.npz"), json.loads((folder / "golden.json").read_text())


# ---- the decode level reproduces the goldens ---------------------------------------------

@pytest.mark.parametrize("prefill", ["batched", "token-by-token"])
@pytest.mark.parametrize("name", GENERATIVE)
def test_decode_level_equals_golden_logits_and_tokens(cached, shared_models, name, prefill):
    logits_npz, gold = golden(shared_models, name)
    runner = cached(name, prefill=prefill)
    assert "forward" not in {op.sym_name.data for op in runner.module.ops
                             if isinstance(op, func.FuncOp)}
    logits = runner.forward(logits_npz["input_ids"][0])
    assert logits.shape == logits_npz["logits"].shape[1:]
    assert np.abs(logits - logits_npz["logits"][0]).max() < 1e-4
    assert runner.generate(gold["prompt_ids"], 64) == gold["new_ids"]


def test_phi_decode_equals_onnxruntime(cached, shared_models):
    ort = need_module("onnxruntime")
    path = shared_models / MODEL_FILES["phi-tiny"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = np.concatenate([np.load(path.parent / "golden_logits.npz")["input_ids"][0],
                          np.random.default_rng(7).integers(0, 256, 28)])
    (want,) = session.run(["logits"], {"input_ids": ids[None].astype(np.int64)})
    for prefill in ("batched", "token-by-token"):
        got = cached("phi-tiny", prefill=prefill).forward(ids)
        assert np.abs(got - want[0]).max() < 1e-4, prefill


@pytest.mark.parametrize("window", [None, 8])
@pytest.mark.parametrize("name", list(MODEL_FILES))
def test_prefill_modes_agree(cached, name, window):
    """Same float32 math, but `[T, K] @ W` and `[1, K] @ W` take different BLAS paths (gemm vs
    gemv), so the two modes agree to rounding: 1e-5 relative to the logits' scale (about 1e-5
    absolute on phi, whose logits are near 1, a few float32 ulps on logits near 10)."""
    ids = np.random.default_rng(3).integers(0, 64, 40)
    batched = cached(name, prefill="batched", window=window).forward(ids)
    by_token = cached(name, prefill="token-by-token", window=window).forward(ids)
    scale = max(1.0, float(np.abs(batched).max()))
    assert np.abs(batched - by_token).max() < 1e-5 * scale


def test_cli_generates_the_golden_story_with_the_cache(shared_models):
    _, gold = golden(shared_models, "stories260K")
    irtool = Path(sys.executable).parent / "irtool"
    proc = subprocess.run([str(irtool), "generate", "--level", "decode", "--prompt", gold["prompt"],
                           "--steps", "64"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert gold["text"] in proc.stdout and "KV cache" in proc.stdout


# ---- window mode ------------------------------------------------------------------------

def llama_reference(store: WeightStore, ids: np.ndarray, window: int | None, *, heads: int = 8,
                    kv_heads: int = 4, eps: float = 1e-5, theta: float = 10000.0) -> np.ndarray:
    """Logits of a llama2.c model in float64, each query seeing the last `window` positions.

    Written from the Llama-2 definition (pre-norm blocks, RoPE on pairs (2i, 2i+1), SwiGLU,
    grouped-query heads); loops over heads so that it looks nothing like the interpreter.
    """
    w = {name: a.astype(np.float64) for name, a in store.arrays.items()}
    layers = sum(1 for name in w if name.endswith(".wq"))
    x = w["tok_embeddings"][ids]
    t, dim = x.shape
    hd = dim // heads
    angle = np.outer(np.arange(t), theta ** (-np.arange(0, hd, 2) / hd))  # [T, hd/2]

    def norm(v, g):
        return v / np.sqrt((v * v).mean(axis=1, keepdims=True) + eps) * g

    def rotate(m):
        pairs = m.reshape(t, -1, hd // 2, 2)
        a, b = pairs[..., 0], pairs[..., 1]
        c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
        return np.stack([a * c - b * s, a * s + b * c], axis=-1).reshape(t, -1)

    pos = np.arange(t)
    seen = pos[None, :] <= pos[:, None]
    if window is not None:
        seen &= pos[None, :] > pos[:, None] - window
    for i in range(layers):
        p = f"layers.{i}."
        n = norm(x, w[p + "attention_norm"])
        q, k, v = rotate(n @ w[p + "wq"].T), rotate(n @ w[p + "wk"].T), n @ w[p + "wv"].T
        out = np.zeros_like(q)
        for h in range(heads):
            g = h // (heads // kv_heads)
            qh, kh = q[:, h * hd:(h + 1) * hd], k[:, g * hd:(g + 1) * hd]
            scores = np.where(seen, qh @ kh.T / math.sqrt(hd), -np.inf)
            prob = np.exp(scores - scores.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            out[:, h * hd:(h + 1) * hd] = prob @ v[:, g * hd:(g + 1) * hd]
        x = x + out @ w[p + "wo"].T
        n = norm(x, w[p + "ffn_norm"])
        gate = n @ w[p + "w1"].T
        x = x + ((gate / (1 + np.exp(-gate))) * (n @ w[p + "w3"].T)) @ w[p + "w2"].T
    classifier = w.get("output", w["tok_embeddings"])
    return norm(x, w["norm"]) @ classifier.T


def test_reference_without_window_equals_golden(imported, shared_models):
    """The reference itself is right: with no window it gives the PyTorch logits."""
    logits_npz, _ = golden(shared_models, "stories260K")
    _, store = imported("stories260K")
    ref = llama_reference(store, logits_npz["input_ids"][0], None)
    assert np.abs(ref - logits_npz["logits"][0]).max() < 1e-4


@pytest.mark.parametrize("window", [69, 100])
def test_window_not_shorter_than_sequence_equals_full_cache(cached, shared_models, window):
    ids = golden(shared_models, "stories260K")[0]["input_ids"][0]  # 69 tokens
    for prefill in ("batched", "token-by-token"):
        full = cached("stories260K", prefill=prefill).forward(ids)
        windowed = cached("stories260K", window=window, prefill=prefill).forward(ids)
        assert np.abs(windowed - full).max() < 1e-5, prefill


@pytest.mark.parametrize("window", [1, 8, 16])
def test_window_shorter_than_sequence_equals_reference(cached, imported, shared_models, window):
    ids = golden(shared_models, "stories260K")[0]["input_ids"][0]
    store = imported("stories260K")[1]
    ref = llama_reference(store, ids, window)
    for prefill in ("batched", "token-by-token"):
        got = cached("stories260K", window=window, prefill=prefill).forward(ids)
        assert np.abs(got - ref).max() < 1e-4, prefill
    # a prompt shorter than the window, then generation far past it (the ring wraps)
    runner = cached("stories260K", window=window)
    prompt = [int(i) for i in ids[:5]]
    new = runner.generate(prompt, 40)
    assert len(new) == 40
    seq = np.array(prompt + new)
    assert np.argmax(llama_reference(store, seq, window)[4:-1], axis=1).tolist() == new


# ---- errors -----------------------------------------------------------------------------

def test_linear_cache_overflow_is_an_error_naming_the_capacity(cached):
    ids = list(range(1, 11))
    with pytest.raises(IrtoolError, match="exceed the KV cache capacity of 8 positions"):
        cached("stories260K", capacity=8).forward(ids)
    with pytest.raises(IrtoolError, match="capacity of 8 positions"):
        cached("stories260K", capacity=8, prefill="token-by-token").forward(ids)
    runner = cached("stories260K", capacity=8)
    assert len(runner.generate(ids[:5], 4)) == 4  # positions 0..7: exactly full
    with pytest.raises(IrtoolError, match="capacity of 8 positions"):
        runner.generate(ids[:5], 5)


FORWARD_TEMPLATE = """
builtin.module {{
  func.func @{name}(%tok: tensor<?xi32>) -> tensor<?x8xf32> {{
    %emb = transformer.weight "emb" : tensor<16x8xf32>
    %k4 = transformer.weight "k4" : tensor<4x8xf32>
    %x = transformer.embedding %tok, %emb : (tensor<?xi32>, tensor<16x8xf32>) -> tensor<?x8xf32>
    %k = transformer.linear %x, %k4 : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
    %a = transformer.attention %x, %k, %k {{heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32{props}}} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
    %b = transformer.attention %a, %{second}, %{second} {{heads = 2 : i64, kv_heads = {kv2} : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true}} : (tensor<?x8xf32>, tensor<?x{d2}xf32>, tensor<?x{d2}xf32>) -> tensor<?x8xf32>
    func.return %b : tensor<?x8xf32>
  }}
}}
"""


def small_module(name="forward", props=", causal = true", kv2=1) -> ModuleOp:
    second, d2 = ("k", 4) if kv2 == 1 else ("x", 8)
    return parse_module(FORWARD_TEMPLATE.format(name=name, props=props, kv2=kv2, second=second,
                                                d2=d2), "small.mlir")


@pytest.mark.parametrize("module,options,message", [
    (lambda: small_module(name="main"), {"capacity": 4},
     "the module has no @forward function to split into prefill and decode .*@main"),
    (lambda: small_module(kv2=2), {"capacity": 4},
     "attention #1 has kv_heads = 2, head_dim = 4 but #0 has kv_heads = 1, head_dim = 4"),
    (lambda: small_module(props=""), {"capacity": 4}, "attention #0 is not causal"),
    (lambda: small_module(props=", causal = true, window = 3 : i64"), {"capacity": 4},
     "attention #0 already has window = 3"),
    (small_module, {}, "no irtool.max_seq_len attribute to size the cache"),
    (small_module, {"capacity": 0}, "capacity must be between 1 and [0-9]+, got 0"),
    (small_module, {"window": -2}, "window must be between 1 and [0-9]+, got -2"),
    (small_module, {"window": 4, "capacity": 8}, "give only one of them"),
    (small_module, {"capacity": 4, "prefill": "lazy"}, "prefill must be one of"),
])
def test_pass_errors(module, options, message):
    with pytest.raises(IrtoolError, match=message):
        ExtractKVCachePass(**options).apply(make_context(), module())


# ---- the cache ops, interpreted, against plain index arithmetic ----------------------------

def run_op(make_op, arg_types, args):
    block = Block(arg_types=arg_types)
    op = make_op(*block.args)
    block.add_ops([op, func.ReturnOp(op.results[0])])
    module = ModuleOp([func.FuncOp("f", (arg_types, [op.results[0].type]), Region(block))])
    module.verify()
    interp = Interpreter(module)
    interp.register_implementations(FuncFunctions())
    interp.register_implementations(TransformerFunctions(WeightStore()))
    return np.asarray(interp.call_op("f", tuple(args))[0])


CACHE = TensorType(Float32Type(), [2, 2, 4, 3])  # 2 layers, 2 kv heads, 4 slots, head_dim 3


@pytest.mark.parametrize("ring,pos,rows", [(False, 1, 3), (True, 3, 3), (True, 1, 6)])
def test_kv_write_slots(ring, pos, rows):
    cache = np.zeros((2, 2, 4, 3), np.float32)
    new = np.arange(rows * 6, dtype=np.float32).reshape(rows, 6) + 1
    out = run_op(lambda c, n, p: tf.KVWriteOp(c, n, p, layer=1, ring=ring),
                 [CACHE, TensorType(Float32Type(), [rows, 6]), IndexType()], [cache, new, pos])
    want = np.zeros_like(cache)
    for t in range(rows):  # later rows overwrite earlier ones in the same slot
        for h in range(2):
            want[1, h, (pos + t) % 4] = new[t, h * 3:(h + 1) * 3]
    np.testing.assert_array_equal(out, want)
    assert not cache.any()  # value semantics: the input cache is untouched


def test_cached_attention_reads_only_what_the_cache_holds():
    rng = np.random.default_rng(0)
    kc, vc = rng.standard_normal((2, 2, 2, 4, 3)).astype(np.float32)
    q = rng.standard_normal((1, 12)).astype(np.float32)
    end = 7  # positions 3..6 are held, in slots 3, 0, 1, 2
    out = run_op(lambda a, b, c, e: tf.CachedAttentionOp(a, b, c, e, layer=0, heads=4,
                                                         kv_heads=2, head_dim=3, scale=0.5,
                                                         ring=True),
                 [TensorType(Float32Type(), [1, 12]), CACHE, CACHE, IndexType()],
                 [q, kc, vc, end])
    want = np.zeros((1, 12))
    for h in range(4):
        g = h // 2
        slots = [p % 4 for p in range(3, 7)]
        s = np.array([0.5 * q[0, h * 3:(h + 1) * 3] @ kc[0, g, j] for j in slots])
        prob = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
        want[0, h * 3:(h + 1) * 3] = sum(pr * vc[0, g, j]
                                         for pr, j in zip(prob, slots, strict=True))
    np.testing.assert_allclose(out, want, atol=1e-6)
    with pytest.raises(IrtoolError, match="past the KV cache capacity of 4 positions"):
        run_op(lambda a, b, c, e: tf.CachedAttentionOp(a, b, c, e, layer=0, heads=4,
                                                       kv_heads=2, head_dim=3, scale=0.5),
               [TensorType(Float32Type(), [1, 12]), CACHE, CACHE, IndexType()], [q, kc, vc, 5])
