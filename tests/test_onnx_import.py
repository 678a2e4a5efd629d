"""Raising ONNX LMs to the transformer dialect, checked against onnxruntime on the same file.

The three reference models live in ../shared/models (skipped if absent); synthetic models of
other shapes are written with onnx.helper the way torch.onnx.export writes them
(tests/onnx_models.py). onnxruntime runs inside the tests as the independent reference.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.frontend.onnx_import import DEFAULT_MAX_SEQ_LEN, import_onnx
from irtool.interpreter.runner import ModelRunner
from tests import onnx_models as om
from tests.requirements import need, need_module

ort = need_module("onnxruntime")

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
REFERENCE = {  # name -> (file, lengths checked against onnxruntime)
    "stories260K": ("stories260K/stories260K.onnx", (1, 37, 512)),
    "nanogpt-tiny": ("nanogpt-tiny/nanogpt.onnx", (1, 50, 128)),
    "phi-tiny": ("phi-tiny/phi.onnx", (1, 12, 128)),
}
TOL = 1e-4


class Imported:
    """One imported model with its runner and an onnxruntime session on the same file."""

    def __init__(self, path: Path):
        self.path = path
        self.module, self.store = import_onnx(path)
        self.runner = ModelRunner(self.module, self.store)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def ort_logits(self, ids: np.ndarray) -> np.ndarray:
        feed = {"input_ids": np.asarray(ids, dtype=np.int64)[None]}
        return self.session.run(None, feed)[0][0]

    def ops(self, cls: type) -> list:
        return [op for op in self.module.walk() if isinstance(op, cls)]

    def counts(self) -> Counter:
        return Counter(op.name.removeprefix("transformer.") for op in self.module.walk())


_cache: dict[str, Imported] = {}


def reference(name: str) -> Imported:
    path = MODELS / REFERENCE[name][0]
    need("models")
    assert path.is_file(), f"reference model {path} not found"
    if name not in _cache:
        _cache[name] = Imported(path)
    return _cache[name]


def random_ids(vocab: int, length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, length)


def assert_matches_ort(model: Imported, lengths) -> None:
    for t in lengths:
        ids = random_ids(model.runner.vocab_size, t, seed=t)
        ours, theirs = model.runner.forward(ids), model.ort_logits(ids)
        assert ours.shape == theirs.shape == (t, model.runner.vocab_size)
        err = float(np.abs(ours - theirs).max())
        assert err < TOL, f"{model.path.name} T={t}: max abs error {err}"


def attr(op, name: str):
    value = getattr(op, name)
    return value.value.data if hasattr(value, "value") else value.data


# ---------------------------------------------------------------------------------------------
# the reference models


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_model_matches_onnxruntime(name):
    model = reference(name)
    lengths = REFERENCE[name][1]
    assert model.runner.max_seq_len == lengths[-1]
    assert_matches_ort(model, lengths)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_model_matches_golden_logits(name):
    model = reference(name)
    golden = np.load(MODELS / name / "golden_logits.npz")
    ours = model.runner.forward(golden["input_ids"][0])
    assert float(np.abs(ours - golden["logits"][0]).max()) < TOL


@pytest.mark.parametrize("name", ["stories260K", "nanogpt-tiny"])
def test_greedy_generation_matches_golden(name):
    model = reference(name)
    golden = json.loads((MODELS / name / "golden.json").read_text())
    assert model.runner.generate(golden["prompt_ids"], golden["n_new"]) == golden["new_ids"]


def test_stories260k_structure():
    model = reference("stories260K")
    counts = model.counts()
    for op, n in {"embedding": 1, "rms_norm": 11, "rope": 10, "attention": 5, "linear": 36,
                  "silu": 5, "mul": 5, "add": 10}.items():
        assert counts[op] == n, (op, counts)
    assert counts["layer_norm"] == counts["gelu"] == counts["position_embedding"] == 0
    ropes = model.ops(tf.RopeOp)
    assert {attr(r, "style") for r in ropes} == {"interleaved"}
    assert {attr(r, "rotary_dim") for r in ropes} == {8}
    assert sorted({attr(r, "heads") for r in ropes}) == [4, 8]  # q heads, kv heads
    for att in model.ops(tf.AttentionOp):
        assert (attr(att, "heads"), attr(att, "kv_heads"), attr(att, "head_dim")) == (8, 4, 8)
        assert attr(att, "scale") == pytest.approx(1 / math.sqrt(8), rel=1e-6)
        assert att.is_causal
    assert model.store["rope.cos"].shape == model.store["rope.sin"].shape == (512, 4)
    assert model.runner.vocab_size == 512
    # the classifier is the embedding table: stored once, under the embedding's name
    assert model.ops(tf.LinearOp)[-1].weight.owner.weight_name.data == "tok.weight"
    assert "blocks.0.wq.weight" in model.store and "blocks.4.att_norm.weight" in model.store
    assert not [n for n in model.store.arrays if "onnx::" in n or "/" in n]


def test_nanogpt_structure():
    model = reference("nanogpt-tiny")
    counts = model.counts()
    for op, n in {"embedding": 1, "position_embedding": 1, "layer_norm": 9, "gelu": 4,
                  "attention": 4, "linear": 25, "add": 9}.items():
        assert counts[op] == n, (op, counts)
    assert counts["rope"] == counts["rms_norm"] == 0
    assert {attr(g, "approximate") for g in model.ops(tf.GeluOp)} == {"none"}
    for att in model.ops(tf.AttentionOp):
        assert (attr(att, "heads"), attr(att, "kv_heads"), attr(att, "head_dim")) == (4, 4, 24)
        assert att.is_causal
    # c_attn is split into three linears of 96 outputs with their slice of the bias
    for part in "qkv":
        assert model.store[f"h.0.c_attn.{part}.weight"].shape == (96, 96)
        assert model.store[f"h.0.c_attn.{part}.bias"].shape == (96,)
    assert model.store["wpe.weight"].shape == (128, 96)
    assert model.runner.max_seq_len == 128 and model.runner.vocab_size == 70
    lm_head = model.ops(tf.LinearOp)[-1]
    assert lm_head.bias is None and lm_head.weight.owner.weight_name.data == "wte.weight"


def test_phi_structure():
    model = reference("phi-tiny")
    counts = model.counts()
    for op, n in {"embedding": 1, "layer_norm": 3, "rope": 4, "attention": 2, "gelu": 2,
                  "linear": 13, "add": 4}.items():
        assert counts[op] == n, (op, counts)
    for rope in model.ops(tf.RopeOp):
        assert (attr(rope, "style"), attr(rope, "rotary_dim"), attr(rope, "head_dim"),
                attr(rope, "heads")) == ("rotate_half", 8, 16, 4)
    assert model.store["rope.cos"].shape == (128, 4)  # HF's duplicated halves, first kept
    assert np.allclose(model.store["rope.cos"][0], 1) and np.allclose(model.store["rope.sin"][0], 0)
    assert {attr(g, "approximate") for g in model.ops(tf.GeluOp)} == {"tanh"}
    assert all(lin.bias is not None for lin in model.ops(tf.LinearOp))
    # parallel block: q/k/v and fc1 all read the one shared LayerNorm
    ln = model.ops(tf.LayerNormOp)[0].result
    readers = {use.operation.name for use in ln.uses}
    assert readers == {"transformer.linear"} and len(list(ln.uses)) == 4


# ---------------------------------------------------------------------------------------------
# synthetic models of other shapes, exported the same way

SYNTHETIC = {
    "llama_gqa": lambda: om.llama_model(om.LlamaSpec()),
    "llama_mha": lambda: om.llama_model(om.LlamaSpec(dim=32, n_heads=4, n_kv_heads=4,
                                                      n_layers=2, vocab=41, hidden=64,
                                                      seq_len=24, seed=3)),
    "llama_mqa": lambda: om.llama_model(om.LlamaSpec(dim=64, n_heads=4, n_kv_heads=1,
                                                      n_layers=1, vocab=30, hidden=96,
                                                      seq_len=16, seed=4)),
    "gpt2": lambda: om.gpt2_model(om.GptSpec()),
    "gpt2_wide": lambda: om.gpt2_model(om.GptSpec(dim=64, n_heads=2, n_layers=3, vocab=33,
                                                  block_size=20, seed=5)),
    "gpt2_sdpa": lambda: om.gpt2_model(om.GptSpec(dim=24, n_heads=3, n_layers=1, vocab=29,
                                                  block_size=16, seed=6, sdpa_style=True)),
    "phi": lambda: om.phi_model(om.PhiSpec()),
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    cache: dict[str, Imported] = {}

    def get(name: str) -> Imported:
        if name not in cache:
            cache[name] = Imported(om.save(SYNTHETIC[name](), out / f"{name}.onnx"))
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_model_matches_onnxruntime(synthetic, name):
    model = synthetic(name)
    top = model.runner.max_seq_len
    assert_matches_ort(model, (1, 2, top // 2 + 1, top))


def test_synthetic_llama_every_length(synthetic):
    """The raised ops are shape-generic: every T from 1 to the maximum agrees."""
    model = synthetic("llama_gqa")
    assert model.runner.max_seq_len == 64
    assert_matches_ort(model, range(1, 65))


def test_synthetic_llama_structure(synthetic):
    model = synthetic("llama_gqa")
    counts = model.counts()
    assert (counts["attention"], counts["rope"], counts["rms_norm"], counts["silu"]) == \
        (3, 6, 7, 3)
    for att in model.ops(tf.AttentionOp):
        assert (attr(att, "heads"), attr(att, "kv_heads"), attr(att, "head_dim")) == (6, 2, 8)
    assert model.runner.vocab_size == 97
    assert model.store["blocks.2.w1.weight"].shape == (80, 48)  # [out, in]


def test_synthetic_phi_partial_rotary(synthetic):
    model = synthetic("phi")
    for rope in model.ops(tf.RopeOp):
        assert (attr(rope, "style"), attr(rope, "rotary_dim"), attr(rope, "head_dim")) == \
            ("rotate_half", 6, 12)
    assert model.store["rope.cos"].shape == (40, 3)


def test_synthetic_gpt2_structure(synthetic):
    model = synthetic("gpt2_wide")
    counts = model.counts()
    assert (counts["attention"], counts["layer_norm"], counts["position_embedding"]) == (3, 7, 1)
    for att in model.ops(tf.AttentionOp):
        assert (attr(att, "heads"), attr(att, "head_dim")) == (2, 32)
        assert attr(att, "scale") == pytest.approx(1 / math.sqrt(32), rel=1e-6)


def test_synthetic_scale_on_q_and_k_and_additive_mask(synthetic):
    """Scales multiplied into q and k^T fold into one attention scale; an added 0/-inf
    mask is recognised as causal."""
    model = synthetic("gpt2_sdpa")
    (att,) = model.ops(tf.AttentionOp)
    assert attr(att, "scale") == pytest.approx(1 / math.sqrt(8), rel=1e-6)
    assert att.is_causal


@pytest.mark.parametrize("norm, act, kind, approximate", [
    ("div", "gelu_erf_mul", tf.GeluOp, "none"),
    ("reciprocal", "gelu_tanh_pow", tf.GeluOp, "tanh"),
    ("div", "silu_swapped", tf.SiluOp, None),
])
def test_other_spellings_of_norms_and_activations(tmp_path, norm, act, kind, approximate):
    model = Imported(om.save(om.mlp_model(norm, act), tmp_path / f"{norm}_{act}.onnx"))
    counts = model.counts()
    assert (counts["rms_norm"], counts["linear"], counts["attention"]) == (1, 2, 0)
    (op,) = model.ops(kind)
    if approximate:
        assert attr(op, "approximate") == approximate
    (norm_op,) = model.ops(tf.RMSNormOp)
    assert attr(norm_op, "eps") == pytest.approx(1e-6)
    # no position or rotary table bounds the length: the documented default applies
    assert model.runner.max_seq_len == DEFAULT_MAX_SEQ_LEN
    assert_matches_ort(model, (1, 6))


# ---------------------------------------------------------------------------------------------
# errors


def test_unsupported_op_is_named(tmp_path):
    path = om.save(om.llama_model(om.LlamaSpec(mlp_act="celu", n_layers=1)), tmp_path / "c.onnx")
    with pytest.raises(IrtoolError) as e:
        import_onnx(path)
    message = str(e.value)
    assert "unsupported ONNX op 'Celu'" in message and "'/blocks.0/Celu'" in message
    assert "RMSNorm" in message and "attention" in message  # says what is supported


@pytest.mark.parametrize("act", ["gelu_erf_mul", "gelu_tanh_pow"])
def test_an_unknown_op_inside_a_pattern_is_named_not_the_node_above_it(tmp_path, act):
    """The GELU's Erf (or Tanh) turned into Sin: the GELU no longer matches, so raising
    stops at one of its Muls (the outer one, or the x * 0.5 of the other factor), but the op
    to report is Sin, with its own node."""
    model = om.mlp_model("div", act)
    inner = next(n for n in model.graph.node if n.op_type in ("Erf", "Tanh"))
    inner.op_type = "Sin"
    path = om.save(model, tmp_path / "sin.onnx")
    with pytest.raises(IrtoolError) as e:
        import_onnx(path)
    assert str(e.value).startswith(f"unsupported ONNX op 'Sin' (node '{inner.name}', which "
                                   "no irtool pattern reads; matching failed at node '/act/Mul")


def test_misread_attention_layout_is_refused(tmp_path, monkeypatch):
    """KV heads repeated with Tile on the head axis (head h reads h % KV, not h // group) must
    not be raised as ordinary grouped-query attention."""
    def tile_heads(w, x, rep):
        return w.op("Tile", x, w.const([1, 1, rep, 1]))

    monkeypatch.setattr(om, "_repeat_kv", tile_heads)
    path = om.save(om.llama_model(om.LlamaSpec(n_layers=1)), tmp_path / "tiled.onnx")
    with pytest.raises(IrtoolError, match="cannot raise the attention around node "
                                          "'/blocks.0/Softmax'"):
        import_onnx(path)


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(IrtoolError, match="notes.onnx"):
        import_onnx(path)


def test_missing_file(tmp_path):
    with pytest.raises(IrtoolError, match="not found"):
        import_onnx(tmp_path / "absent.onnx")


@pytest.mark.parametrize("dims, message", [
    ((2, "T"), "fixed batch of 2"),
    ((1, 7), "fixes the sequence length to 7"),
    (("T",), r"token ids: an int64 tensor \[1, T\]"),
])
def test_bad_input_interface(tmp_path, dims, message):
    model = om.llama_model(om.LlamaSpec(n_layers=1))
    if len(dims) == 1:  # a [T] input: rewrite the declared shape only
        shape = model.graph.input[0].type.tensor_type.shape
        del shape.dim[0]
    else:
        model = om.llama_model(om.LlamaSpec(n_layers=1), input_dims=dims)
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(IrtoolError, match=message):
        import_onnx(path)


def test_float_input_is_refused(tmp_path):
    model = om.llama_model(om.LlamaSpec(n_layers=1))
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    path = tmp_path / "float.onnx"
    onnx.save(model, str(path))
    with pytest.raises(IrtoolError, match=r"input 'input_ids' .* is float \[1, T\]"):
        import_onnx(path)
