"""The kernel table: every runtime kernel a `hw.call` may name.

For each kernel it records the operands (buffers and run-time scalars, in C order), the
compile-time parameters, which operands it writes, the full C argument list (operands,
parameters, `NULL` and the shared scratch buffer interleaved as the C prototype in
`targets/c/runtime/irt_kernels.h` and `irt_quant.h` want them), and the numpy reference that
the interpreter runs for a `hw.call` and that the C kernels are tested against (for the
quantized kernels: the reference of the quantization contract, `irtool.interpreter.quant`,
the very functions the quant-level interpreter runs, so quant level == hw level exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from irtool.numerics import quant as qref
from irtool.numerics import transformer as ref

# A C argument is "op:<name>" (an operand: a buffer's pointer, or a run-time scalar),
# "val:<name>" (an operand buffer holding one value that the C function takes by value, such
# as a per-tensor scale tensor<1xf32> or zero point tensor<1xi32>: its first element, of the
# buffer's element type), "p:<name>" (a parameter), "NULL" or "SCRATCH".
Reference = Callable[[dict, dict], None]


@dataclass(frozen=True)
class KernelSpec:
    name: str
    c_name: str
    operands: tuple[str, ...]
    params: tuple[str, ...]
    writes: tuple[str, ...]
    c_args: tuple[str, ...]
    reference: Reference
    scratch: Callable[[dict], int] | None = None  # floats of scratch needed, from params

    def reads(self) -> tuple[str, ...]:
        return tuple(o for o in self.operands if o not in self.writes)


def _store(out: np.ndarray, value: np.ndarray) -> None:
    out[...] = value.reshape(out.shape)


def _linear(o, p):
    y = o["x"].reshape(p["T"], p["K"]) @ o["w"].T
    if "b" in o:
        y = y + o["b"]
    _store(o["y"], y)


def _rope(o, p):
    style = "interleaved" if p["style"] == 0 else "rotate_half"
    _store(o["y"], ref.rope(o["x"].reshape(p["T"], -1), o["cos"], o["sin"], int(o["start"]),
                            p["heads"], p["head_dim"], p["rotary_dim"], style))


def _kv_write(o, p):
    cache = o["cache"]
    cache[...] = ref.kv_write(cache, o["new"].reshape(p["T"], -1), int(o["pos"]), p["layer"],
                              bool(p["ring"]))


def _cached_attention(o, p):
    _store(o["out"], ref.cached_attention(o["q"].reshape(p["T"], -1), o["kcache"], o["vcache"],
                                          int(o["end"]), p["layer"], p["heads"], p["kv_heads"],
                                          p["head_dim"], p["scale"], bool(p["ring"])))


def _attention(o, p):
    _store(o["out"], ref.attention(o["q"].reshape(p["T"], -1), o["k"].reshape(p["S"], -1),
                                   o["v"].reshape(p["S"], -1), p["heads"], p["kv_heads"],
                                   p["head_dim"], p["scale"], bool(p["causal"]),
                                   p["window"] or None))


def _spec(name, operands, params, writes, c_args, reference, c_name=None, scratch=None):
    return KernelSpec(name, c_name or name, tuple(operands.split()), tuple(params.split()),
                      tuple(writes.split()), tuple(c_args.split()), reference, scratch)


_SPECS = [
    _spec("irt_linear_f32", "x w y", "T K N", "y", "op:x op:w NULL op:y p:T p:K p:N", _linear),
    _spec("irt_linear_bias_f32", "x w b y", "T K N", "y", "op:x op:w op:b op:y p:T p:K p:N",
          _linear, c_name="irt_linear_f32"),
    _spec("irt_matmul_f32", "a b y", "M K N transpose_b", "y",
          "op:a op:b op:y p:M p:K p:N p:transpose_b",
          lambda o, p: _store(o["y"], o["a"] @ (o["b"].T if p["transpose_b"] else o["b"]))),
    _spec("irt_rms_norm_f32", "x g y", "T D eps", "y", "op:x op:g op:y p:T p:D p:eps",
          lambda o, p: _store(o["y"], ref.rms_norm(o["x"], o["g"], p["eps"]))),
    _spec("irt_layer_norm_f32", "x g b y", "T D eps", "y",
          "op:x op:g op:b op:y p:T p:D p:eps",
          lambda o, p: _store(o["y"], ref.layer_norm(o["x"], o["g"], o["b"], p["eps"]))),
    _spec("irt_rope_f32", "x cos sin start y", "T heads head_dim rotary_dim style", "y",
          "op:x op:cos op:sin op:y p:T p:heads p:head_dim p:rotary_dim op:start p:style", _rope),
    _spec("irt_embedding_f32", "tokens table y", "T D", "y", "op:tokens op:table op:y p:T p:D",
          lambda o, p: _store(o["y"], o["table"][o["tokens"].reshape(-1)])),
    _spec("irt_position_embedding_f32", "table start y", "T D", "y",
          "op:table op:y p:T p:D op:start",
          lambda o, p: _store(o["y"], o["table"][int(o["start"]):int(o["start"]) + p["T"]])),
    _spec("irt_add_f32", "a b y", "n", "y", "op:a op:b op:y p:n",
          lambda o, p: _store(o["y"], o["a"] + o["b"])),
    _spec("irt_mul_f32", "a b y", "n", "y", "op:a op:b op:y p:n",
          lambda o, p: _store(o["y"], o["a"] * o["b"])),
    _spec("irt_silu_f32", "x y", "n", "y", "op:x op:y p:n",
          lambda o, p: _store(o["y"], ref.silu(o["x"]))),
    _spec("irt_gelu_f32", "x y", "n tanh_approx", "y", "op:x op:y p:n p:tanh_approx",
          lambda o, p: _store(o["y"], ref.gelu(o["x"], "tanh" if p["tanh_approx"] else "none"))),
    _spec("irt_softmax_f32", "x y", "T N", "y", "op:x op:y p:T p:N",
          lambda o, p: _store(o["y"], ref.softmax(o["x"]))),
    _spec("irt_attention_f32", "q k v out", "T S heads kv_heads head_dim scale causal window",
          "out", "op:q op:k op:v op:out SCRATCH p:T p:S p:heads p:kv_heads p:head_dim p:scale "
          "p:causal p:window", _attention, scratch=lambda p: p["S"]),
    _spec("irt_kv_write_f32", "cache new pos", "layer kv_heads capacity head_dim T ring",
          "cache", "op:cache op:new p:layer p:kv_heads p:capacity p:head_dim p:T op:pos p:ring",
          _kv_write),
    _spec("irt_cached_attention_f32", "q kcache vcache end out",
          "layer heads kv_heads head_dim capacity T ring scale", "out",
          "op:q op:kcache op:vcache op:out SCRATCH p:layer p:heads p:kv_heads p:head_dim "
          "p:capacity p:T op:end p:ring p:scale", _cached_attention,
          scratch=lambda p: p["capacity"]),
]



# Quantized kernels (irt_quant.h) ---------------------------------------------------------------

def _scalar(a: np.ndarray):
    return np.asarray(a).reshape(-1)[0]


def _bias(o):
    return o.get("b")


def _quantize_i8(o, p):
    zp = o.get("zp")
    _store(o["xq"], qref.quantize(o["x"], o["scale"], zp, -128, 127).astype(np.int8))


def _w8a8(o, p):
    _store(o["y"], qref.w8a8_linear(o["xq"].reshape(p["T"], p["K"]), _scalar(o["zx"]), o["w"],
                                    o["m"], _bias(o)))


def _w8(o, p):
    _store(o["y"], qref.w8_linear(o["x"].reshape(p["T"], p["K"]), o["w"], o["s"], _bias(o)))


def _w4g(o, p):
    _store(o["y"], qref.w4_linear(o["x"].reshape(p["T"], p["K"]), o["w"], o["s"], _bias(o),
                                  p["group"]))


def _w1(o, p):
    _store(o["y"], qref.w1_linear(o["x"].reshape(p["T"], p["K"]), o["w"], o["alpha"], _bias(o)))


def _w1a4(o, p):
    _store(o["y"], qref.w1a4_linear(o["x"].reshape(p["T"], p["K"]), o["w"], o["alpha"],
                                    _bias(o), p["group"]))


def _kv_write_i8(o, p):
    cache, scales = qref.kv_write_int8(o["cache"], o["scales"], o["new"].reshape(p["T"], -1),
                                       int(o["pos"]), p["layer"], bool(p["ring"]))
    o["cache"][...] = cache
    o["scales"][...] = scales


def _cached_attention_i8(o, p):
    _store(o["out"], qref.cached_attention_int8(
        o["q"].reshape(p["T"], -1), o["kcache"], o["kscales"], o["vcache"], o["vscales"],
        int(o["end"]), p["layer"], p["heads"], p["kv_heads"], p["head_dim"], p["scale"],
        bool(p["ring"])))


def _linear_specs(name: str, inputs: str, params: str, reference) -> list:
    """A quantized linear kernel `name(inputs..., bias_or_null, y, params...)` and its `_bias`
    variant (the same C function with a bias). `inputs` are operand names, `val:`-prefixed
    for one passed by value."""
    c_params = " ".join(f"p:{k}" for k in params.split())
    c_ins = " ".join(k if ":" in k else f"op:{k}" for k in inputs.split())
    names = [k.split(":")[-1] for k in inputs.split()]
    return [
        _spec(name, " ".join(names + ["y"]), params, "y", f"{c_ins} NULL op:y {c_params}",
              reference),
        _spec(f"{name}_bias", " ".join(names + ["b", "y"]), params, "y",
              f"{c_ins} op:b op:y {c_params}", reference, c_name=name),
    ]


_SPECS += [
    _spec("irt_quantize_act_i8", "x scale zp xq", "n", "xq",
          "op:x op:xq p:n val:scale val:zp", _quantize_i8),
    _spec("irt_quantize_act_i8_sym", "x scale xq", "n zero_point", "xq",
          "op:x op:xq p:n val:scale p:zero_point", _quantize_i8, c_name="irt_quantize_act_i8"),
    *_linear_specs("irt_linear_w8a8", "xq val:zx w m", "T K N", _w8a8),
    *_linear_specs("irt_linear_w8", "x w s", "T K N per_tensor", _w8),
    *_linear_specs("irt_linear_w4g", "x w s", "T K N group", _w4g),
    *_linear_specs("irt_linear_w1", "x w alpha", "T K N", _w1),
    *_linear_specs("irt_linear_w1a4", "x w alpha", "T K N group", _w1a4),
    _spec("irt_kv_write_i8", "cache scales new pos", "layer kv_heads capacity head_dim T ring",
          "cache scales", "op:cache op:scales op:new p:layer p:kv_heads p:capacity p:head_dim "
          "p:T op:pos p:ring", _kv_write_i8),
    _spec("irt_cached_attention_i8", "q kcache kscales vcache vscales end out",
          "layer heads kv_heads head_dim capacity T ring scale", "out",
          "op:q op:kcache op:kscales op:vcache op:vscales op:out SCRATCH p:layer p:heads "
          "p:kv_heads p:head_dim p:capacity p:T op:end p:ring p:scale", _cached_attention_i8,
          scratch=lambda p: p["capacity"]),
]

KERNELS: dict[str, KernelSpec] = {s.name: s for s in _SPECS}
