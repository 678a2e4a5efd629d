"""Kernel signatures: every kernel a `hw.call` or `hw.accel` may name, independent of any
target's calling convention.

A signature records the kernel's operands (buffers and run-time scalars, in the order of the
`hw.call`), its compile-time parameters, which operands it writes, which written operand may
share memory with which read operand (`may_alias`: the kernel reads each element before it
writes the same element, so bufferize may reuse a dying input's buffer for the output), how
much float scratch it needs, and its numpy reference: what the interpreter runs for a
`hw.call`, and what the C kernels are tested against (for the quantized kernels the very
functions the quant-level interpreter runs, so quant level == hw level exactly).

How a kernel is called from C (argument order, by-value scalars, NULL for a missing bias) is
the C emitter's business (`irtool.targets.c.calling`); lowering rules (which op becomes which
kernel) belong to each target. Targets with kernels of their own add signatures with
`register_kernels`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from irtool.errors import IrtoolError
from irtool.numerics import intops as iref
from irtool.numerics import quant as qref
from irtool.numerics import transformer as ref

Reference = Callable[[dict, dict], None]


@dataclass(frozen=True)
class KernelSignature:
    name: str
    operands: tuple[str, ...]
    params: tuple[str, ...]
    writes: tuple[str, ...]
    reference: Reference
    scratch: Callable[[dict], int] | None = None
    """Floats of scratch the kernel needs, from its parameters."""
    may_alias: tuple[tuple[str, str], ...] = ()
    """(written operand, read operand) pairs that may be the same buffer."""
    layouts: tuple[tuple[str, str], ...] = ()
    """(operand, layout): a constant operand the kernel reads in a storage layout other than
    row-major (`irtool.targets.panel_layout.LAYOUTS`). The reference takes the logical array:
    the layout is how the emitter stores the weight, so the interpreter never sees it."""
    sizes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(buffer operand, parameter names): the buffer holds the product of those parameters'
    values in elements. The C kernel walks the buffer by its parameters alone, so a parameter
    the buffer disagrees with reads or writes past it on the device."""

    def reads(self) -> tuple[str, ...]:
        return tuple(o for o in self.operands if o not in self.writes)

    def aliases(self, written: str) -> tuple[str, ...]:
        """The read operands that `written` may share its buffer with."""
        return tuple(r for w, r in self.may_alias if w == written)


def _store(out: np.ndarray, value: np.ndarray) -> None:
    out[...] = value.reshape(out.shape)


def _linear(o, p):
    _store(o["y"], ref.linear(o["x"].reshape(p["T"], p["K"]), o["w"], o.get("b")))


def _rotated(o, p):
    style = "interleaved" if p["style"] == 0 else "rotate_half"
    return ref.rope(o["x"].reshape(p["T"], -1), o["cos"], o["sin"], int(o["start"]), p["heads"],
                    p["head_dim"], p["rotary_dim"], style)


def _rope(o, p):
    _store(o["y"], _rotated(o, p))


def _kv_write(o, p):
    cache = o["cache"]
    cache[...] = ref.kv_write(cache, o["new"].reshape(p["T"], -1), int(o["pos"]), p["layer"],
                              bool(p["ring"]))


def _write_cache(o, p, rows):
    """The rows a fused producer computed, written to the cache as irt_kv_write_f32 would."""
    cache = o["cache"]
    cache[...] = ref.kv_write(cache, rows.reshape(p["T"], -1), int(o["pos"]), p["layer"],
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


def _lora(o, p):
    y, t = ref.lora(o["x"].reshape(p["T"], p["K"]), o["y"].reshape(p["T"], p["N"]),
                    o["a"], o["b"], p["selected"])
    _store(o["out"], y)
    _store(o["rank"], t)


def _spec(name, operands, params, writes, reference, scratch=None, alias="", layout="",
          sizes=""):
    """`alias`: "y=x y=b" -- the written operand y may be the buffer of x or of b;
    `layout`: "w=row_panels24" -- operand w is stored in that layout;
    `sizes`: "x=T*D g=D" -- buffer x holds T * D elements, g holds D."""
    pairs = tuple(tuple(a.split("=")) for a in alias.split())
    layouts = tuple(tuple(a.split("=")) for a in layout.split())
    counts = tuple((o, tuple(e.split("*"))) for o, e in (a.split("=") for a in sizes.split()))
    return KernelSignature(name, tuple(operands.split()), tuple(params.split()),
                           tuple(writes.split()), reference, scratch, pairs, layouts, counts)


_LINEAR = "x=T*K w=N*K y=T*N"
_ROWS = "x=T*D g=D y=T*D"
_ELEMENTWISE = "a=n b=n y=n"


_SPECS = [
    _spec("irt_linear_f32", "x w y", "T K N", "y", _linear, sizes=_LINEAR),
    _spec("irt_linear_bias_f32", "x w b y", "T K N", "y", _linear, sizes=_LINEAR + " b=N"),
    # the same product with w stored in row panels (irt_linear_packed_f32)
    _spec("irt_linear_packed_f32", "x w y", "T K N", "y", _linear, layout="w=row_panels24",
          sizes=_LINEAR),
    _spec("irt_linear_packed_bias_f32", "x w b y", "T K N", "y", _linear,
          layout="w=row_panels24", sizes=_LINEAR + " b=N"),
    # y = r + x @ w.T: a residual add fused into the packed linear (targets/c/fusions.py)
    _spec("irt_linear_packed_residual_f32", "x w r y", "T K N", "y",
          lambda o, p: _store(o["y"], o["r"].reshape(p["T"], p["N"])
                              + ref.linear(o["x"].reshape(p["T"], p["K"]), o["w"])),
          alias="y=r", layout="w=row_panels24", sizes=_LINEAR + " r=T*N"),
    # a task adapter on a linear's output: the adapter chosen at run time in C (the compiled
    # default `selected` here and until irt_select_adapter is called)
    _spec("irt_lora_f32", "x y a b out rank", "T K N R adapters selected", "out rank", _lora,
          alias="out=y"),
    # its up half on rows of the output, the up matrix streamed (passes/lora_stream.py)
    _spec("irt_lora_up_f32", "t y b out", "T N R selected", "out",
          lambda o, p: _store(o["out"], ref.lora_up(o["t"].reshape(p["T"], p["R"]),
                                                    o["y"].reshape(p["T"], p["N"]),
                                                    o["b"].reshape(p["N"], p["R"]),
                                                    p["selected"])),
          alias="out=y", sizes="t=T*R y=T*N b=N*R out=T*N"),
    _spec("irt_matmul_f32", "a b y", "M K N transpose_b", "y",
          lambda o, p: _store(o["y"], o["a"] @ (o["b"].T if p["transpose_b"] else o["b"])),
          sizes="a=M*K b=K*N y=M*N"),
    _spec("irt_rms_norm_f32", "x g y", "T D eps", "y",
          lambda o, p: _store(o["y"], ref.rms_norm(o["x"], o["g"], p["eps"])), alias="y=x",
          sizes=_ROWS),
    _spec("irt_layer_norm_f32", "x g b y", "T D eps", "y",
          lambda o, p: _store(o["y"], ref.layer_norm(o["x"], o["g"], o["b"], p["eps"])),
          alias="y=x", sizes=_ROWS + " b=D"),
    _spec("irt_rope_hd8_f32", "x cos sin start y", "T heads head_dim rotary_dim style", "y",
          _rope, alias="y=x"),
    _spec("irt_rope_f32", "x cos sin start y", "T heads head_dim rotary_dim style", "y", _rope,
          alias="y=x"),
    _spec("irt_embedding_f32", "tokens table y", "T D", "y",
          lambda o, p: _store(o["y"], o["table"][o["tokens"].reshape(-1)])),
    _spec("irt_embedding_packed_f32", "tokens table y", "T D vocab", "y",
          lambda o, p: _store(o["y"], o["table"][o["tokens"].reshape(-1)]),
          layout="table=row_panels24"),
    _spec("irt_position_embedding_f32", "table start y", "T D", "y",
          lambda o, p: _store(o["y"], o["table"][int(o["start"]):int(o["start"]) + p["T"]])),
    _spec("irt_add_f32", "a b y", "n", "y", lambda o, p: _store(o["y"], o["a"] + o["b"]),
          alias="y=a y=b", sizes=_ELEMENTWISE),
    _spec("irt_mul_f32", "a b y", "n", "y", lambda o, p: _store(o["y"], o["a"] * o["b"]),
          alias="y=a y=b", sizes=_ELEMENTWISE),
    _spec("irt_silu_f32", "x y", "n", "y", lambda o, p: _store(o["y"], ref.silu(o["x"])),
          alias="y=x", sizes="x=n y=n"),
    # silu(a) * b in one pass (targets/c/fusions.py)
    _spec("irt_silu_mul_f32", "a b y", "n", "y",
          lambda o, p: _store(o["y"], ref.silu(o["a"]) * o["b"]), alias="y=a y=b",
          sizes=_ELEMENTWISE),
    _spec("irt_relu_f32", "x y", "n", "y", lambda o, p: _store(o["y"], ref.relu(o["x"])),
          alias="y=x", sizes="x=n y=n"),
    _spec("irt_gelu_f32", "x y", "n tanh_approx", "y",
          lambda o, p: _store(o["y"], ref.gelu(o["x"], "tanh" if p["tanh_approx"] else "none")),
          alias="y=x", sizes="x=n y=n"),
    _spec("irt_softmax_f32", "x y", "T N", "y", lambda o, p: _store(o["y"], ref.softmax(o["x"])),
          alias="y=x", sizes="x=T*N y=T*N"),
    _spec("irt_attention_f32", "q k v out", "T S heads kv_heads head_dim scale causal window",
          "out", _attention, scratch=lambda p: p["S"]),
    _spec("irt_kv_write_f32", "cache new pos", "layer kv_heads capacity head_dim T ring",
          "cache", _kv_write),
    # a producer of new KV-cache rows writing them into the cache itself (head_dim 8;
    # targets/c/fusions.py): the packed linear of the values, the keys' rotation
    _spec("irt_linear_packed_kv_f32", "x w cache pos",
          "T K N layer kv_heads capacity head_dim ring", "cache",
          lambda o, p: _write_cache(o, p, ref.linear(o["x"].reshape(p["T"], p["K"]), o["w"])),
          layout="w=row_panels24"),
    _spec("irt_rope_hd8_kv_f32", "x cos sin start cache pos",
          "T heads head_dim rotary_dim style layer kv_heads capacity ring", "cache",
          lambda o, p: _write_cache(o, p, _rotated(o, p))),
    _spec("irt_cached_attention_f32", "q kcache vcache end out",
          "layer heads kv_heads head_dim capacity T ring scale", "out", _cached_attention,
          scratch=lambda p: p["capacity"]),
    # head_dim 8 only, two query heads per pass over the cache (irt_cached_attention_hd8_f32)
    _spec("irt_cached_attention_hd8_f32", "q kcache vcache end out",
          "layer heads kv_heads head_dim capacity T ring scale", "out", _cached_attention,
          scratch=lambda p: 2 * p["capacity"]),
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


def _wembedding(bits):
    def reference(o, p):
        s = o["s"]
        group = p.get("group")
        if bits == 8 and p["per_tensor"]:
            s = s.reshape(1)
        _store(o["y"], qref.dequantized_rows(o["w"], s, o["tokens"].reshape(-1), p["D"], bits,
                                             group))
    return reference


def _kv_write_i8(o, p):
    cache, scales = qref.kv_write_int8(o["cache"], o["scales"], o["new"].reshape(p["T"], -1),
                                       int(o["pos"]), p["layer"], bool(p["ring"]))
    o["cache"][...] = cache
    o["scales"][...] = scales


def _cached_attention_i8(o, p, integer_softmax: bool = False):
    _store(o["out"], qref.cached_attention_int8(
        o["q"].reshape(p["T"], -1), o["kcache"], o["kscales"], o["vcache"], o["vscales"],
        int(o["end"]), p["layer"], p["heads"], p["kv_heads"], p["head_dim"], p["scale"],
        bool(p["ring"]), integer_softmax))


def _linear_specs(name: str, inputs: str, params: str, reference, layout: str = "") -> list:
    """A quantized linear kernel and its `_bias` variant (the same computation with a bias)."""
    return [_spec(name, f"{inputs} y", params, "y", reference, layout=layout),
            _spec(f"{name}_bias", f"{inputs} b y", params, "y", reference, layout=layout)]


_SPECS += [
    _spec("irt_quantize_act_i8", "x scale zp xq", "n", "xq", _quantize_i8),
    _spec("irt_quantize_act_i8_sym", "x scale xq", "n zero_point", "xq", _quantize_i8),
    *_linear_specs("irt_linear_w8a8", "xq zx w m", "T K N", _w8a8),
    *_linear_specs("irt_linear_w8", "x w s", "T K N per_tensor", _w8),
    *_linear_specs("irt_linear_w4g", "x w s", "T K N group", _w4g),
    *_linear_specs("irt_linear_w1", "x w alpha", "T K N", _w1),
    *_linear_specs("irt_linear_w1a4", "x w alpha", "T K N group", _w1a4),
    # the same products with the weights (and the int4 scales) stored in 16-row panels
    # (irt_linear_packed_q.h)
    *_linear_specs("irt_linear_w8a8_packed", "xq zx w m", "T K N", _w8a8, "w=row_panels16"),
    *_linear_specs("irt_linear_w8_packed", "x w s", "T K N per_tensor", _w8, "w=row_panels16"),
    *_linear_specs("irt_linear_w4g_packed", "x w s", "T K N group", _w4g,
                   "w=row_panels16 s=row_panels16"),
    # sign x 4-bit through a table of partial sums per group (irt_linear_w1a4_table.h)
    *_linear_specs("irt_linear_w1a4_table", "x w alpha", "T K N group", _w1a4),
    _spec("irt_embedding_w8", "tokens w s y", "T D per_tensor", "y", _wembedding(8)),
    _spec("irt_embedding_w4g", "tokens w s y", "T D group", "y", _wembedding(4)),
    _spec("irt_embedding_w1", "tokens w s y", "T D", "y", _wembedding(1)),
    _spec("irt_kv_write_i8", "cache scales new pos", "layer kv_heads capacity head_dim T ring",
          "cache scales", _kv_write_i8),
    _spec("irt_cached_attention_i8", "q kcache kscales vcache vscales end out",
          "layer heads kv_heads head_dim capacity T ring scale", "out", _cached_attention_i8,
          scratch=lambda p: p["capacity"]),
    # head_dim 8 only, two query heads per pass over the cache (irt_attention_q.h)
    _spec("irt_cached_attention_i8_hd8", "q kcache kscales vcache vscales end out",
          "layer heads kv_heads head_dim capacity T ring scale", "out", _cached_attention_i8,
          scratch=lambda p: 2 * p["capacity"]),
]

# Integer non-linear ops (irt_intops.h; --integer-only) ------------------------------------------

_SPECS += [
    _spec("irt_int_rms_norm_f32", "x g y", "T D eps", "y",
          lambda o, p: _store(o["y"], iref.int_rms_norm(o["x"].reshape(p["T"], p["D"]), o["g"],
                                                        p["eps"])), alias="y=x"),
    _spec("irt_int_silu_f32", "x y", "n", "y", lambda o, p: _store(o["y"], iref.int_silu(o["x"])),
          alias="y=x"),
    _spec("irt_cached_attention_i8_isoftmax", "q kcache kscales vcache vscales end out",
          "layer heads kv_heads head_dim capacity T ring scale", "out",
          lambda o, p: _cached_attention_i8(o, p, integer_softmax=True),
          scratch=lambda p: p["capacity"]),
]

# Accumulating linears (irt_linear_acc.h): y += product, for the pieces of a weight row the
# tile pass streams along K ------------------------------------------------------------------


def _accumulating(reference: Reference) -> Reference:
    """`reference` run into a fresh output, then added to `y`: y = y + product."""
    def run(o, p):
        part = np.zeros_like(o["y"])
        reference({**o, "y": part}, p)
        o["y"][...] = o["y"] + part
    return run


def _acc_specs(name: str, inputs: str, params: str, reference) -> list:
    """`name` (operands `inputs y`) and `name` with `_bias` (`inputs b y`), both adding to y."""
    acc = _accumulating(reference)
    bias = name.replace("_acc_f32", "_acc_bias_f32") if name.endswith("_f32") else name + "_bias"
    return [_spec(name, f"{inputs} y", params, "y", acc),
            _spec(bias, f"{inputs} b y", params, "y", acc)]


ACCUMULATING = {
    "irt_linear_f32": "irt_linear_acc_f32", "irt_linear_bias_f32": "irt_linear_acc_bias_f32",
    **{f"irt_linear_{s}{b}": f"irt_linear_{s}_acc{b}" for s in ("w8", "w4g", "w1", "w1a4")
       for b in ("", "_bias")}}
"""A linear's kernel -> the kernel adding its product to the output (the linear's `acc`
operand): the same operands and parameters, `y` read and written."""

_SPECS += [
    *_acc_specs("irt_linear_acc_f32", "x w", "T K N", _linear),
    *_acc_specs("irt_linear_w8_acc", "x w s", "T K N per_tensor", _w8),
    *_acc_specs("irt_linear_w4g_acc", "x w s", "T K N group", _w4g),
    *_acc_specs("irt_linear_w1_acc", "x w alpha", "T K N", _w1),
    *_acc_specs("irt_linear_w1a4_acc", "x w alpha", "T K N group", _w1a4),
]

KERNELS: dict[str, KernelSignature] = {s.name: s for s in _SPECS}


def register_kernels(signatures: Iterable[KernelSignature]) -> None:
    """Add a target's own kernels (an accelerator's tile op, a fused kernel, ...).

    Registering the same signature again is harmless; a different one under a known name
    is refused, so two targets cannot silently disagree about a kernel.
    """
    for sig in signatures:
        have = KERNELS.get(sig.name)
        if have is not None and have != sig:
            raise IrtoolError(f"kernel '{sig.name}' is registered twice with different "
                              "signatures")
        KERNELS[sig.name] = sig


def kernel_signature(name: str) -> KernelSignature:
    """The signature of a kernel, or a clear error naming what is known."""
    sig = KERNELS.get(name)
    if sig is None:
        raise IrtoolError(f"unknown kernel @{name}: no signature is registered under that name "
                          "(a target's own kernels are registered when the target is loaded)")
    return sig


def checked_signature(call) -> KernelSignature:
    """The signature of the kernel a `hw.call`/`hw.accel` names, checked against the call:
    operand count and parameters (what the dialect, being structural, does not check)."""
    sig = kernel_signature(call.kernel)
    if len(call.args) != len(sig.operands):
        raise IrtoolError(f"{call.name} @{call.kernel}: takes {len(sig.operands)} operands "
                          f"({', '.join(sig.operands)}), got {len(call.args)}")
    have = set(call.params.data) if call.params is not None else set()
    missing = [p for p in sig.params if p not in have]
    if missing:
        raise IrtoolError(f"{call.name} @{call.kernel}: missing parameter(s) "
                          f"{', '.join(missing)}")
    _check_sizes(call, sig)
    return sig


def _check_sizes(call, sig: KernelSignature) -> None:
    """Every buffer holds as many elements as the parameters say (`KernelSignature.sizes`)."""
    for operand, factors in sig.sizes:
        shape = call.args[sig.operands.index(operand)].type.get_shape()
        want = 1
        for f in factors:
            want *= int(call.param(f))
        have = int(np.prod(shape))
        if have != want:
            raise IrtoolError(f"{call.name} @{call.kernel}: '{operand}' holds {have} elements "
                              f"but its parameters {' * '.join(factors)} = {want}: the kernel "
                              "would run past the buffer or leave it part-written")
