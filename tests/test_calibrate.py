"""calibrate's numbers: the `irtool.act_range` of every linear against the inputs captured
by a numpy forward pass written here.

The forward pass below is stories260K's (llama2.c) written from the model's description in
../shared/models/README.md (RMSNorm eps 1e-5, RoPE theta 10000 on interleaved pairs, 8 heads
on 4 KV heads, SwiGLU, classifier = the token embedding), on the weights of the imported
store; its logits are checked against the torch golden first. It records every linear's input
per sequence, and the expected ranges are the running min/max (and percentiles) over all the
sequences: a calibration that kept only one sequence's range would differ, and the test
checks that it would, for these sequences.
"""

from __future__ import annotations

import numpy as np
import pytest

from irtool.dialects import transformer as tf
from irtool.frontend.load import import_model
from irtool.passes.calibrate import act_range, calibrate_module
from irtool.quality import load_sequences

DIM, HEADS, KV_HEADS, HEAD_DIM, LAYERS, EPS = 64, 8, 4, 8, 5, 1e-5
SEQUENCES, LENGTH = 4, 40


def rms_norm(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + EPS) * g


def rope(x: np.ndarray, heads: int) -> np.ndarray:
    """Interleaved pairs (2i, 2i+1) of every head turned by pos * 10000^(-2i / head_dim)."""
    t = x.shape[0]
    freqs = 10000.0 ** (-np.arange(0, HEAD_DIM, 2) / HEAD_DIM)
    angle = np.arange(t)[:, None] * freqs[None, :]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    xh = x.reshape(t, heads, HEAD_DIM // 2, 2)
    a, b = xh[..., 0], xh[..., 1]
    return np.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(t, heads * HEAD_DIM)


def forward(w: dict[str, np.ndarray], ids, seen: dict[str, list[np.ndarray]]) -> np.ndarray:
    """Logits of `ids`; every linear's input is appended to `seen[weight name]`."""
    def linear(name: str, x: np.ndarray) -> np.ndarray:
        seen.setdefault(name, []).append(x.astype(np.float32))
        return x @ w[name].astype(np.float64).T

    t = len(ids)
    x = w["tok_embeddings"][np.asarray(ids)].astype(np.float64)
    causal = np.triu(np.full((t, t), -np.inf), 1)
    for layer in range(LAYERS):
        p = f"layers.{layer}."
        h = rms_norm(x, w[p + "attention_norm"])
        q = rope(linear(p + "wq", h), HEADS).reshape(t, HEADS, HEAD_DIM)
        k = rope(linear(p + "wk", h), KV_HEADS).reshape(t, KV_HEADS, HEAD_DIM)
        v = linear(p + "wv", h).reshape(t, KV_HEADS, HEAD_DIM)
        out = np.zeros((t, HEADS, HEAD_DIM))
        for head in range(HEADS):
            kv = head // (HEADS // KV_HEADS)
            s = q[:, head] @ k[:, kv].T / np.sqrt(HEAD_DIM) + causal
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            out[:, head] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kv]
        x = x + linear(p + "wo", out.reshape(t, DIM))
        h = rms_norm(x, w[p + "ffn_norm"])
        a, b = linear(p + "w1", h), linear(p + "w3", h)
        x = x + linear(p + "w2", a / (1 + np.exp(-a)) * b)
    return linear("tok_embeddings", rms_norm(x, w["norm"]))


@pytest.fixture(scope="module")
def stories(shared_models):
    d = shared_models / "stories260K"
    seqs = [s[:LENGTH] for s in load_sequences(d / "eval_tokens.json", "calib")[:SEQUENCES]]
    return d, seqs


@pytest.fixture(scope="module")
def captured(stories):
    """Per weight name, the inputs its linear saw, one array per sequence."""
    d, seqs = stories
    _, store = import_model(d / "stories260K.bin")
    weights = {k: store[k] for k in store.arrays}
    golden = np.load(d / "golden_logits.npz")
    logits = forward(weights, golden["input_ids"][0], {})
    np.testing.assert_allclose(logits, golden["logits"][0], rtol=0, atol=1e-4)
    seen: dict[str, list[np.ndarray]] = {}
    for s in seqs:
        forward(weights, s, seen)
    assert len(seen) == 7 * LAYERS + 1 and all(len(v) == SEQUENCES for v in seen.values())
    return seen


def calibrated(stories, percentile: float) -> dict[str, tuple[float, float]]:
    d, seqs = stories
    module, store = import_model(d / "stories260K.bin")
    calibrate_module(module, store, seqs, percentile=percentile)
    ranges = {}
    for op in module.walk():
        if isinstance(op, tf.LinearOp):
            name = op.weight.owner.weight_name.data
            assert name not in ranges
            ranges[name] = tuple(float(v) for v in act_range(op))
    return ranges


def _close(got: tuple[float, float], want: tuple[float, float]) -> bool:
    scale = max(abs(want[0]), abs(want[1]))
    return np.allclose(got, want, rtol=0, atol=1e-4 * scale)


def test_ranges_are_the_min_and_max_over_all_sequences(stories, captured):
    ranges = calibrated(stories, 100.0)
    assert set(ranges) == set(captured)
    for name, inputs in captured.items():
        want = (min(float(x.min()) for x in inputs), max(float(x.max()) for x in inputs))
        assert _close(ranges[name], want), (name, ranges[name], want)
    # these sequences tell the running range from any single sequence's range
    for k in range(SEQUENCES):
        single = {n: (float(v[k].min()), float(v[k].max())) for n, v in captured.items()}
        assert sum(not _close(ranges[n], single[n]) for n in captured) >= len(captured) // 4


def test_percentile_ranges_pool_all_sequences(stories, captured):
    p = 99.0
    ranges = calibrated(stories, p)
    for name, inputs in captured.items():
        pooled = np.concatenate([x.ravel() for x in inputs]).astype(np.float64)
        want = (float(np.percentile(pooled, 100 - p)), float(np.percentile(pooled, p)))
        assert _close(ranges[name], want), (name, ranges[name], want)
        full = (float(pooled.min()), float(pooled.max()))
        assert ranges[name][0] > full[0] and ranges[name][1] < full[1]  # really cut
