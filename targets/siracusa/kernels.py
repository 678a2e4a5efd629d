"""Kernel signatures of siracusa's cluster kernels, with their numpy references.

`sir_linear_w8a8` / `sir_linear_f32` are the portable W8A8 / float linears split by output
rows over the cluster's cores (`cores`, a compile-time team size); every output value is
computed as the portable kernel computes it, so their references are the interpreter's
(`w8a8_linear` of the quant level, `x @ w^T + b`), whatever the number of cores.
`sir_cached_attention_i8` is the portable int8-cache attention with the heads shared among
the cores (each head computed by the same code): the portable kernel's reference;
`sir_cached_attention_i8_isoftmax` the same with the integer softmax (`--integer-only`).
`sir_silu_f32` / `sir_quantize_act_i8` are the portable elementwise kernels with the values
shared among the cores (`on_cores`).
`sir_rms_norm_f32`, `sir_int_rms_norm_f32`, `sir_rope_f32`, `sir_kv_write_i8` are the
portable kernels by rows or heads over the cores (runtime/sir_rows.c).
`npu_linear_w8a8` is the NPU's job (exact int32 sums, requantized on the cluster as the
portable kernel does): the same reference.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irtool.interpreter import quant as qref
from irtool.kernels import KernelSignature, kernel_signature
from irtool.numerics.transformer import linear


def _w8a8(o, p):
    zx = int(np.asarray(o["zx"]).reshape(-1)[0])
    y = qref.w8a8_linear(np.asarray(o["xq"]).reshape(p["T"], p["K"]), zx, o["w"], o["m"],
                         o.get("b"))
    o["y"][...] = np.asarray(y, np.float32).reshape(o["y"].shape)


SIR_LINEAR = KernelSignature("sir_linear_w8a8", ("xq", "zx", "w", "m", "y"),
                             ("T", "K", "N", "cores"), ("y",), _w8a8)
SIR_LINEAR_BIAS = KernelSignature("sir_linear_w8a8_bias", ("xq", "zx", "w", "m", "b", "y"),
                                  ("T", "K", "N", "cores"), ("y",), _w8a8)


def _f32(o, p):
    y = linear(np.asarray(o["x"], np.float32).reshape(p["T"], p["K"]), np.asarray(o["w"]),
               o.get("b"))
    o["y"][...] = np.asarray(y, np.float32).reshape(o["y"].shape)


SIR_LINEAR_F32 = KernelSignature("sir_linear_f32", ("x", "w", "y"), ("T", "K", "N", "cores"),
                                 ("y",), _f32)
SIR_LINEAR_F32_BIAS = KernelSignature("sir_linear_f32_bias", ("x", "w", "b", "y"),
                                      ("T", "K", "N", "cores"), ("y",), _f32)
NPU_LINEAR = KernelSignature("npu_linear_w8a8", ("xq", "zx", "w", "m", "y"), ("T", "K", "N"),
                             ("y",), _w8a8)
NPU_LINEAR_BIAS = KernelSignature("npu_linear_w8a8_bias", ("xq", "zx", "w", "m", "b", "y"),
                                  ("T", "K", "N"), ("y",), _w8a8)
SIR_ATTENTION = KernelSignature(
    "sir_cached_attention_i8", ("q", "kcache", "kscales", "vcache", "vscales", "end", "out"),
    ("layer", "heads", "kv_heads", "head_dim", "capacity", "T", "ring", "scale", "cores"),
    ("out",), lambda o, p: kernel_signature("irt_cached_attention_i8").reference(o, p),
    scratch=lambda p: p["capacity"] * p["cores"])
SIR_ATTENTION_ISOFTMAX = dataclasses.replace(
    SIR_ATTENTION, name="sir_cached_attention_i8_isoftmax",
    reference=lambda o, p: kernel_signature("irt_cached_attention_i8_isoftmax").reference(o, p))


def on_cores(portable: str, name: str) -> KernelSignature:
    """The portable kernel split over the cores: same operands, aliasing and reference, plus
    the team size `cores`."""
    sig = kernel_signature(portable)
    return dataclasses.replace(sig, name=name, params=(*sig.params, "cores"))


SIR_SILU = on_cores("irt_silu_f32", "sir_silu_f32")
SIR_INT_SILU = on_cores("irt_int_silu_f32", "sir_int_silu_f32")
SIR_QUANTIZE = on_cores("irt_quantize_act_i8", "sir_quantize_act_i8")
SIR_QUANTIZE_SYM = on_cores("irt_quantize_act_i8_sym", "sir_quantize_act_i8_sym")
SIR_ROWS = tuple(on_cores(portable, portable.replace("irt_", "sir_", 1)) for portable in (
    "irt_rms_norm_f32", "irt_int_rms_norm_f32", "irt_rope_f32", "irt_kv_write_i8"))
KERNELS = (*SIR_ROWS, SIR_SILU, SIR_INT_SILU, SIR_QUANTIZE, SIR_QUANTIZE_SYM, SIR_ATTENTION,
           SIR_ATTENTION_ISOFTMAX, SIR_LINEAR, SIR_LINEAR_BIAS, SIR_LINEAR_F32,
           SIR_LINEAR_F32_BIAS, NPU_LINEAR, NPU_LINEAR_BIAS)
