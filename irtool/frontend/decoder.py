"""A decoder-only transformer described by its parts, built with ModelBuilder.

The checkpoint-folder frontend (`hf_folder`) maps each Hugging Face family onto this one
description: named arrays for every projection and norm (already in the `[out, in]` layout,
fused projections already split), plus the few choices that tell the families apart (norm
kind, MLP gating and activation, sequential or parallel residual, RoPE or learned positions,
a sliding window). `build_decoder` then emits the same `transformer` ops for all of them.

Per-head q/k norms (Qwen3) have no op of their own: `rms_norm` normalises the last axis of a
`[T, features]` tensor, so such a layer computes each head separately (`[T, head_dim]` per
head: its own slice of the q/k/v weights, norm, rope, one-head attention) and sums the output
projection over heads, `o(concat_h a_h) = sum_h o[:, h] a_h`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from irtool.dialects import transformer as tf
from irtool.frontend.builder import ModelBuilder
from irtool.weights import WeightStore


@dataclass(frozen=True)
class Named:
    """An array and the name it gets in the weight store (tied arrays share one name)."""

    name: str
    array: np.ndarray


@dataclass(frozen=True)
class Linear:
    weight: Named  # [out, in]
    bias: Named | None = None


@dataclass(frozen=True)
class Norm:
    weight: Named
    bias: Named | None = None  # present: layer_norm; absent: rms_norm


@dataclass(frozen=True)
class Layer:
    norm1: Norm
    q: Linear
    k: Linear
    v: Linear
    o: Linear
    mlp_up: Linear  # the input projection (`up` of a gated MLP, `fc1` of a plain one)
    mlp_down: Linear
    mlp_gate: Linear | None = None  # gated MLP: down(act(gate(n)) * up(n))
    norm2: Norm | None = None  # None in a parallel block that shares norm1
    q_norm: Named | None = None  # per-head RMSNorm weights [head_dim] (Qwen3)
    k_norm: Named | None = None
    window: int | None = None  # sliding-window attention over the last `window` keys


@dataclass(frozen=True)
class Rope:
    cos: Named  # [max_positions, rotary_dim / 2]
    sin: Named
    rotary_dim: int
    style: str  # "rotate_half" (Hugging Face) or "interleaved" (GPT-J, llama2.c)


@dataclass
class Decoder:
    vocab_size: int
    max_seq_len: int
    heads: int
    kv_heads: int
    head_dim: int
    norm_eps: float
    activation: str  # "silu", "gelu", "gelu_tanh" or "relu"
    embed: Named  # the table the token ids index (pre-scaled where a family scales it)
    final_norm: Norm
    lm_head: Linear
    layers: list[Layer] = field(default_factory=list)
    parallel: bool = False  # x + attn(n1) + mlp(n1 or n2) instead of two residual steps
    rope: Rope | None = None
    positions: Named | None = None  # learned position table, rows 0..max_seq_len-1
    attn_scale: float | None = None  # default 1/sqrt(head_dim)


def build_decoder(d: Decoder) -> tuple[ModuleOp, WeightStore]:
    b = ModelBuilder(vocab_size=d.vocab_size, max_seq_len=d.max_seq_len)
    parts = _Parts(b, d)
    x = b.value(tf.EmbeddingOp(b.tokens, parts.w(d.embed)))
    if d.positions is not None:
        x = b.value(tf.AddOp(x, b.value(tf.PositionEmbeddingOp(b.tokens, parts.w(d.positions)))))
    for layer in d.layers:
        n1 = parts.norm(x, layer.norm1)
        attn = parts.attention(n1, layer)
        if d.parallel:
            n2 = n1 if layer.norm2 is None else parts.norm(x, layer.norm2)
            x = b.value(tf.AddOp(x, b.value(tf.AddOp(attn, parts.mlp(n2, layer)))))
        else:
            x = b.value(tf.AddOp(x, attn))
            x = b.value(tf.AddOp(x, parts.mlp(parts.norm(x, layer.norm2), layer)))
    return b.finish(parts.linear(parts.norm(x, d.final_norm), d.lm_head))


class _Parts:
    """The building blocks, emitted on one builder."""

    def __init__(self, b: ModelBuilder, d: Decoder):
        self.b, self.d = b, d

    def w(self, named: Named) -> SSAValue:
        return self.b.weight(named.name, named.array)

    def linear(self, x: SSAValue, lin: Linear) -> SSAValue:
        bias = None if lin.bias is None else self.w(lin.bias)
        return self.b.value(tf.LinearOp(x, self.w(lin.weight), bias))

    def norm(self, x: SSAValue, norm: Norm) -> SSAValue:
        if norm.bias is None:
            return self.b.value(tf.RMSNormOp(x, self.w(norm.weight), self.d.norm_eps))
        return self.b.value(tf.LayerNormOp(x, self.w(norm.weight), self.w(norm.bias),
                                           self.d.norm_eps))

    def activation(self, x: SSAValue) -> SSAValue:
        act = self.d.activation
        if act == "silu":
            return self.b.value(tf.SiluOp(x))
        if act == "relu":
            return self.b.value(tf.ReluOp(x))
        return self.b.value(tf.GeluOp(x, "tanh" if act == "gelu_tanh" else "none"))

    def mlp(self, n: SSAValue, layer: Layer) -> SSAValue:
        up = self.linear(n, layer.mlp_up)
        if layer.mlp_gate is None:
            hidden = self.activation(up)
        else:
            hidden = self.b.value(tf.MulOp(self.activation(self.linear(n, layer.mlp_gate)), up))
        return self.linear(hidden, layer.mlp_down)

    def rope(self, x: SSAValue, heads: int) -> SSAValue:
        r = self.d.rope
        if r is None:
            return x
        return self.b.value(tf.RopeOp(x, self.w(r.cos), self.w(r.sin), heads=heads,
                                      head_dim=self.d.head_dim, rotary_dim=r.rotary_dim,
                                      style=r.style))

    def _attend(self, q: SSAValue, k: SSAValue, v: SSAValue, heads: int, kv_heads: int,
                window: int | None) -> SSAValue:
        hd = self.d.head_dim
        scale = self.d.attn_scale if self.d.attn_scale is not None else hd ** -0.5
        return self.b.value(tf.AttentionOp(q, k, v, heads=heads, kv_heads=kv_heads, head_dim=hd,
                                           scale=scale, causal=True, window=window))

    def attention(self, n: SSAValue, layer: Layer) -> SSAValue:
        d = self.d
        if layer.q_norm is None and layer.k_norm is None:
            q = self.rope(self.linear(n, layer.q), d.heads)
            k = self.rope(self.linear(n, layer.k), d.kv_heads)
            a = self._attend(q, k, self.linear(n, layer.v), d.heads, d.kv_heads, layer.window)
            return self.linear(a, layer.o)
        return self._per_head_attention(n, layer)

    def _per_head_attention(self, n: SSAValue, layer: Layer) -> SSAValue:
        d, hd = self.d, self.d.head_dim
        group = d.heads // d.kv_heads

        def head(lin: Linear, h: int, norm: Named | None) -> SSAValue:
            rows = slice(h * hd, (h + 1) * hd)
            part = Linear(_rows(lin.weight, rows, h),
                          None if lin.bias is None else _rows(lin.bias, rows, h))
            x = self.linear(n, part)
            if norm is not None:
                x = self.b.value(tf.RMSNormOp(x, self.w(norm), d.norm_eps))
            return x

        keys = [self.rope(head(layer.k, g, layer.k_norm), 1) for g in range(d.kv_heads)]
        values = [head(layer.v, g, None) for g in range(d.kv_heads)]
        out = None
        for h in range(d.heads):
            q = self.rope(head(layer.q, h, layer.q_norm), 1)
            a = self._attend(q, keys[h // group], values[h // group], 1, 1, layer.window)
            w = layer.o.weight
            # the output bias, if any, is added once: by the first head's share
            cols = w.array[:, h * hd:(h + 1) * hd]
            part = self.linear(a, Linear(Named(f"{w.name}.head{h}", cols),
                                         layer.o.bias if h == 0 else None))
            out = part if out is None else self.b.value(tf.AddOp(out, part))
        return out


def _rows(named: Named, rows: slice, h: int) -> Named:
    return Named(f"{named.name}.head{h}", named.array[rows])
