"""The C calling convention of the portable kernels: how a `hw.call` becomes a C call.

A kernel signature (`irtool.kernels`) names operands and parameters; the C prototypes in
`runtime/irt_kernels.h` and `runtime/irt_quant.h` interleave them with `NULL` (a missing bias)
and the shared scratch buffer, and take some one-element buffers by value. One entry per
kernel: the C function and its argument list, each argument one of

* `op:<name>`  an operand: a buffer's pointer, or a run-time scalar;
* `val:<name>` an operand buffer holding one value the C function takes by value (a per-tensor
  scale `tensor<1xf32>` or zero point `tensor<1xi32>`): its first element;
* `p:<name>`   a compile-time parameter;
* `NULL`, `SCRATCH` (the project's shared float scratch array).

A target with C kernels of its own extends this table (`CCalls.extended`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from irtool.errors import IrtoolError
from irtool.kernels import ACCUMULATING


@dataclass(frozen=True)
class CCall:
    function: str
    args: tuple[str, ...]


class CCalls:
    """Kernel name -> C call, and the headers declaring them; extended by composition."""

    def __init__(self, table: Mapping[str, CCall], headers: tuple[str, ...] = ()):
        self._table = dict(table)
        self.headers = headers

    def extended(self, more: Mapping[str, CCall], headers: tuple[str, ...] = ()) -> CCalls:
        return CCalls({**self._table, **more}, (*self.headers, *headers))

    def __getitem__(self, kernel: str) -> CCall:
        call = self._table.get(kernel)
        if call is None:
            raise IrtoolError(f"C emitter: no C function is known for kernel @{kernel} (the "
                              "target's C calling table does not list it)")
        return call

    def __contains__(self, kernel: str) -> bool:
        return kernel in self._table


def _calls(entries: Mapping[str, tuple[str, str]]) -> dict[str, CCall]:
    return {k: CCall(fn, tuple(args.split())) for k, (fn, args) in entries.items()}


# Quantized kernels a target chooses from shapes: the linears over weights in 16-row panels
# (irt_linear_packed_q.h), attention over the int8 cache for 8-wide heads (irt_attention_q.h),
# sign x 4-bit through a table of partial sums (irt_linear_w1a4_table.h).
_SHAPED_Q_CALLS = _calls({
    "irt_cached_attention_i8_hd8": ("irt_cached_attention_i8_hd8",
        "op:q op:kcache op:kscales op:vcache op:vscales op:out SCRATCH p:layer p:heads  "
        "p:kv_heads p:capacity p:T op:end p:ring p:scale"),
    "irt_linear_w8a8_packed": ("irt_linear_w8a8_packed",
        "op:xq val:zx op:w op:m NULL op:y p:T p:K p:N"),
    "irt_linear_w8a8_packed_bias": ("irt_linear_w8a8_packed",
        "op:xq val:zx op:w op:m op:b op:y p:T p:K p:N"),
    "irt_linear_w8_packed": ("irt_linear_w8_packed",
        "op:x op:w op:s NULL op:y p:T p:K p:N p:per_tensor"),
    "irt_linear_w8_packed_bias": ("irt_linear_w8_packed",
        "op:x op:w op:s op:b op:y p:T p:K p:N p:per_tensor"),
    "irt_linear_w4g_packed": ("irt_linear_w4g_packed",
        "op:x op:w op:s NULL op:y p:T p:K p:N p:group"),
    "irt_linear_w4g_packed_bias": ("irt_linear_w4g_packed",
        "op:x op:w op:s op:b op:y p:T p:K p:N p:group"),
    "irt_linear_w1a4_table": ("irt_linear_w1a4_table",
        "op:x op:w op:alpha NULL op:y p:T p:K p:N p:group"),
    "irt_linear_w1a4_table_bias": ("irt_linear_w1a4_table",
        "op:x op:w op:alpha op:b op:y p:T p:K p:N p:group"),
})


PORTABLE_CALLS = CCalls(_calls({
    "irt_linear_f32": ("irt_linear_f32", "op:x op:w NULL op:y p:T p:K p:N"),
    "irt_linear_bias_f32": ("irt_linear_f32", "op:x op:w op:b op:y p:T p:K p:N"),
    "irt_linear_packed_f32": ("irt_linear_packed_f32", "op:x op:w NULL op:y p:T p:K p:N"),
    "irt_linear_packed_bias_f32": ("irt_linear_packed_f32", "op:x op:w op:b op:y p:T p:K p:N"),
    "irt_lora_f32": ("irt_lora_f32",
        "op:x op:y op:a op:b op:out op:rank p:T p:K p:N p:R p:adapters p:selected"),
    "irt_lora_up_f32": ("irt_lora_up_f32", "op:t op:y op:b op:out p:T p:N p:R p:selected"),
    "irt_linear_packed_residual_f32": ("irt_linear_packed_residual_f32",
        "op:x op:w op:r op:y p:T p:K p:N"),
    "irt_matmul_f32": ("irt_matmul_f32", "op:a op:b op:y p:M p:K p:N p:transpose_b"),
    "irt_rms_norm_f32": ("irt_rms_norm_f32", "op:x op:g op:y p:T p:D p:eps"),
    "irt_layer_norm_f32": ("irt_layer_norm_f32", "op:x op:g op:b op:y p:T p:D p:eps"),
    "irt_rope_f32": ("irt_rope_f32",
        "op:x op:cos op:sin op:y p:T p:heads p:head_dim p:rotary_dim op:start p:style"),
    "irt_rope_hd8_f32": ("irt_rope_hd8_f32",
        "op:x op:cos op:sin op:y p:T p:heads op:start p:style"),
    "irt_embedding_f32": ("irt_embedding_f32", "op:tokens op:table op:y p:T p:D"),
    "irt_embedding_packed_f32": ("irt_embedding_packed_f32",
        "op:tokens op:table op:y p:T p:D p:vocab"),
    "irt_embedding_w8": ("irt_embedding_w8", "op:tokens op:w op:s op:y p:T p:D p:per_tensor"),
    "irt_embedding_w4g": ("irt_embedding_w4g", "op:tokens op:w op:s op:y p:T p:D p:group"),
    "irt_embedding_w1": ("irt_embedding_w1", "op:tokens op:w op:s op:y p:T p:D"),
    "irt_position_embedding_f32": ("irt_position_embedding_f32", "op:table op:y p:T p:D op:start"),
    "irt_add_f32": ("irt_add_f32", "op:a op:b op:y p:n"),
    "irt_mul_f32": ("irt_mul_f32", "op:a op:b op:y p:n"),
    "irt_silu_f32": ("irt_silu_f32", "op:x op:y p:n"),
    "irt_silu_mul_f32": ("irt_silu_mul_f32", "op:a op:b op:y p:n"),
    "irt_gelu_f32": ("irt_gelu_f32", "op:x op:y p:n p:tanh_approx"),
    "irt_softmax_f32": ("irt_softmax_f32", "op:x op:y p:T p:N"),
    "irt_attention_f32": ("irt_attention_f32",
        "op:q op:k op:v op:out SCRATCH p:T p:S p:heads p:kv_heads p:head_dim p:scale p:causal  "
        "p:window"),
    "irt_kv_write_f32": ("irt_kv_write_f32",
        "op:cache op:new p:layer p:kv_heads p:capacity p:head_dim p:T op:pos p:ring"),
    "irt_linear_packed_kv_f32": ("irt_linear_packed_kv_f32",
        "op:x op:w op:cache p:T p:K p:N p:layer p:capacity op:pos p:ring"),
    "irt_rope_hd8_kv_f32": ("irt_rope_hd8_kv_f32",
        "op:x op:cos op:sin op:cache p:T p:heads op:start p:style p:layer p:capacity op:pos "
        "p:ring"),
    "irt_cached_attention_f32": ("irt_cached_attention_f32",
        "op:q op:kcache op:vcache op:out SCRATCH p:layer p:heads p:kv_heads p:head_dim  "
        "p:capacity p:T op:end p:ring p:scale"),
    "irt_cached_attention_hd8_f32": ("irt_cached_attention_hd8_f32",
        "op:q op:kcache op:vcache op:out SCRATCH p:layer p:heads p:kv_heads p:capacity p:T  "
        "op:end p:ring p:scale"),
    "irt_quantize_act_i8": ("irt_quantize_act_i8", "op:x op:xq p:n val:scale val:zp"),
    "irt_quantize_act_i8_sym": ("irt_quantize_act_i8", "op:x op:xq p:n val:scale p:zero_point"),
    "irt_linear_w8a8": ("irt_linear_w8a8", "op:xq val:zx op:w op:m NULL op:y p:T p:K p:N"),
    "irt_linear_w8a8_bias": ("irt_linear_w8a8", "op:xq val:zx op:w op:m op:b op:y p:T p:K p:N"),
    "irt_linear_w8": ("irt_linear_w8", "op:x op:w op:s NULL op:y p:T p:K p:N p:per_tensor"),
    "irt_linear_w8_bias": ("irt_linear_w8", "op:x op:w op:s op:b op:y p:T p:K p:N p:per_tensor"),
    "irt_linear_w4g": ("irt_linear_w4g", "op:x op:w op:s NULL op:y p:T p:K p:N p:group"),
    "irt_linear_w4g_bias": ("irt_linear_w4g", "op:x op:w op:s op:b op:y p:T p:K p:N p:group"),
    "irt_linear_w1": ("irt_linear_w1", "op:x op:w op:alpha NULL op:y p:T p:K p:N"),
    "irt_linear_w1_bias": ("irt_linear_w1", "op:x op:w op:alpha op:b op:y p:T p:K p:N"),
    "irt_linear_w1a4": ("irt_linear_w1a4", "op:x op:w op:alpha NULL op:y p:T p:K p:N p:group"),
    "irt_linear_w1a4_bias": ("irt_linear_w1a4",
        "op:x op:w op:alpha op:b op:y p:T p:K p:N p:group"),
    "irt_kv_write_i8": ("irt_kv_write_i8",
        "op:cache op:scales op:new p:layer p:kv_heads p:capacity p:head_dim p:T op:pos p:ring"),
    "irt_cached_attention_i8": ("irt_cached_attention_i8",
        "op:q op:kcache op:kscales op:vcache op:vscales op:out SCRATCH p:layer p:heads  "
        "p:kv_heads p:head_dim p:capacity p:T op:end p:ring p:scale"),
    "irt_cached_attention_i8_isoftmax": ("irt_cached_attention_i8_isoftmax",
        "op:q op:kcache op:kscales op:vcache op:vscales op:out SCRATCH p:layer p:heads  "
        "p:kv_heads p:head_dim p:capacity p:T op:end p:ring p:scale"),
    "irt_int_rms_norm_f32": ("irt_int_rms_norm_f32", "op:x op:g op:y p:T p:D p:eps"),
    "irt_int_silu_f32": ("irt_int_silu_f32", "op:x op:y p:n"),
}), headers=("irt_kernels.h", "irt_quant.h", "irt_intops.h", "irt_lora.h",
                  "irt_embedding_q.h")).extended(
    _calls({"irt_relu_f32": ("irt_relu_f32", "op:x op:y p:n")}), headers=("irt_relu.h",)).extended(
    _SHAPED_Q_CALLS, headers=("irt_linear_packed_q.h", "irt_attention_q.h",
                              "irt_linear_w1a4_table.h"))
PORTABLE_CALLS = PORTABLE_CALLS.extended(
    {acc: CCall(acc.replace("_bias", ""), PORTABLE_CALLS[base].args)
     for base, acc in ACCUMULATING.items()}, headers=("irt_linear_acc.h",))
"""The accumulating linears (runtime/irt_linear_acc.h) take the arguments of the linear they
add up (the output is the accumulator)."""
