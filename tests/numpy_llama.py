"""stories260K's forward pass in plain numpy (float64), an independent reference for tests.

Written from the model's description in ../shared/models/README.md: llama2.c's Llama, dim 64,
5 layers, 8 heads on 4 KV heads (head h uses KV head h // 2), head_dim 8, RMSNorm eps 1e-5,
RoPE theta 10000 on interleaved pairs (2i, 2i+1), SwiGLU, classifier = the token embedding.
It shares no code with irtool's interpreter; the weights come from the imported store by name.
Every linear layer goes through `linear(name, x, w)`, so a test can record the inputs
(calibration) or swap in a quantized matmul of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DIM, HEADS, KV_HEADS, HEAD_DIM, LAYERS, EPS = 64, 8, 4, 8, 5, 1e-5
CLASSIFIER = "tok_embeddings"

Linear = Callable[[str, np.ndarray, np.ndarray], np.ndarray]


def float_linear(name: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w.astype(np.float64).T


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


def forward(w: dict[str, np.ndarray], ids, linear: Linear = float_linear) -> np.ndarray:
    """Logits [T, vocab] of the token ids."""
    def lin(name: str, x: np.ndarray) -> np.ndarray:
        return linear(name, x, w[name])

    t = len(ids)
    x = w["tok_embeddings"][np.asarray(ids)].astype(np.float64)
    causal = np.triu(np.full((t, t), -np.inf), 1)
    for layer in range(LAYERS):
        p = f"layers.{layer}."
        h = rms_norm(x, w[p + "attention_norm"])
        q = rope(lin(p + "wq", h), HEADS).reshape(t, HEADS, HEAD_DIM)
        k = rope(lin(p + "wk", h), KV_HEADS).reshape(t, KV_HEADS, HEAD_DIM)
        v = lin(p + "wv", h).reshape(t, KV_HEADS, HEAD_DIM)
        out = np.zeros((t, HEADS, HEAD_DIM))
        for head in range(HEADS):
            kv = head // (HEADS // KV_HEADS)
            s = q[:, head] @ k[:, kv].T / np.sqrt(HEAD_DIM) + causal
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            out[:, head] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kv]
        x = x + lin(p + "wo", out.reshape(t, DIM))
        h = rms_norm(x, w[p + "ffn_norm"])
        a, b = lin(p + "w1", h), lin(p + "w3", h)
        x = x + lin(p + "w2", a / (1 + np.exp(-a)) * b)
    return lin(CLASSIFIER, rms_norm(x, w["norm"]))


def store_weights(store) -> dict[str, np.ndarray]:
    """The float weights of an imported stories260K store, by name."""
    return {k: store[k] for k in store.arrays}


def nll_and_argmax(w: dict[str, np.ndarray], stories, linear: Linear = float_linear
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced negative log-likelihood and argmax of every position of the stories
    (inputs story[:-1], targets story[1:]), concatenated in order."""
    nll, arg = [], []
    for story in stories:
        logits = forward(w, story[:-1], linear)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        targets = np.asarray(story[1:])
        nll.append(-logp[np.arange(targets.size), targets])
        arg.append(np.argmax(logits, axis=-1))
    return np.concatenate(nll), np.concatenate(arg)
