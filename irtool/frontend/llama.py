"""The Llama-2 architecture (as in llama2.c) expressed with ModelBuilder.

Pre-norm blocks: `x += wo(attention(rope(wq(n)), rope(wk(n)), wv(n)))` with `n = rms_norm(x)`,
then `x += w2(silu(w1(n)) * w3(n))`; a final rms_norm and the classifier. RoPE pairs dims
(2i, 2i+1) with theta 10000, as llama2.c does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from irtool.dialects import transformer as tf
from irtool.frontend.builder import ModelBuilder, rope_tables
from irtool.weights import WeightStore


@dataclass(frozen=True)
class LlamaShape:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


def build_llama(shape: LlamaShape, weights: dict[str, np.ndarray]) -> tuple[ModuleOp, WeightStore]:
    """`weights` uses llama2.c's names: tok_embeddings, layers.{i}.wq, ..., norm, output."""
    b = ModelBuilder(vocab_size=shape.vocab_size, max_seq_len=shape.seq_len)
    hd = shape.head_dim
    cos_np, sin_np = rope_tables(shape.seq_len, hd, shape.rope_theta)
    x = b.value(tf.EmbeddingOp(b.tokens, b.weight("tok_embeddings", weights["tok_embeddings"])))
    cos, sin = b.weight("rope.cos", cos_np), b.weight("rope.sin", sin_np)

    def w(name: str):
        return b.weight(name, weights[name])

    for i in range(shape.n_layers):
        p = f"layers.{i}."
        n = b.value(tf.RMSNormOp(x, w(p + "attention_norm"), shape.norm_eps))
        q = b.value(tf.LinearOp(n, w(p + "wq")))
        k = b.value(tf.LinearOp(n, w(p + "wk")))
        v = b.value(tf.LinearOp(n, w(p + "wv")))
        q = b.value(tf.RopeOp(q, cos, sin, heads=shape.n_heads, head_dim=hd, rotary_dim=hd,
                              style="interleaved"))
        k = b.value(tf.RopeOp(k, cos, sin, heads=shape.n_kv_heads, head_dim=hd, rotary_dim=hd,
                              style="interleaved"))
        a = b.value(tf.AttentionOp(q, k, v, heads=shape.n_heads, kv_heads=shape.n_kv_heads,
                                   head_dim=hd, scale=1.0 / math.sqrt(hd), causal=True))
        x = b.value(tf.AddOp(x, b.value(tf.LinearOp(a, w(p + "wo")))))
        n = b.value(tf.RMSNormOp(x, w(p + "ffn_norm"), shape.norm_eps))
        gate = b.value(tf.SiluOp(b.value(tf.LinearOp(n, w(p + "w1")))))
        up = b.value(tf.LinearOp(n, w(p + "w3")))
        x = b.value(tf.AddOp(x, b.value(tf.LinearOp(b.value(tf.MulOp(gate, up)), w(p + "w2")))))
    x = b.value(tf.RMSNormOp(x, w("norm"), shape.norm_eps))
    # A shared classifier is the embedding table itself: one stored array, used twice.
    shared = weights["output"] is weights["tok_embeddings"] or np.array_equal(
        weights["output"], weights["tok_embeddings"])
    cls = b.weight("tok_embeddings", weights["tok_embeddings"]) if shared else w("output")
    return b.finish(b.value(tf.LinearOp(x, cls)))
