"""Call fusions (targets/c/fusions.py): which pairs of hw.calls become one call, and which
must not (the intermediate read again, an input overwritten in between, a buffer placed over
an input).  The numbers of the fused kernels are checked against numpy in test_c_runtime*.py;
that a compiled model keeps its golden tokens with them, in test_riscv_ulp.py."""

from __future__ import annotations

from irtool.module_io import parse_module
from irtool.targets.c import fusions

T = "memref<1x8xf32, #memory.space<dtim>>"
W = "memref<8x8xf32, #memory.space<flash>>"


def module(body: str, ret: str = "%y"):
    text = f"""builtin.module {{
  memory.global @w1 {{kind = "weight", weight = "w1", offset = 0 : i64}} : {W}
  memory.global @w3 {{kind = "weight", weight = "w3", offset = 256 : i64}} : {W}
  func.func @decode(%x: {T}) -> {T} {{
    %w1 = memory.get_global @w1 : {W}
    %w3 = memory.get_global @w3 : {W}
{body}
    func.return {ret} : {T}
  }}
}}"""
    return parse_module(text, "test")


def alloc(name: str, offset: int) -> str:
    return f"    %{name} = memory.alloc {{offset = {offset} : i64, alignment = 4 : i64}} : {T}\n"


def call(kernel: str, args: str, params: str) -> str:
    n = len(args.split(","))
    return f"    hw.call @{kernel}({args}) params {{{params}}} : {', '.join([T] * n)}\n"


def linear(x: str, w: str, y: str) -> str:
    return (f"    hw.call @irt_linear_packed_f32({x}, {w}, {y}) params {{T = 1 : i64, K = 8 : i64, "
            f"N = 8 : i64}} : {T}, {W}, {T}\n")


def calls(mod) -> list[str]:
    return [op.kernel for op in mod.walk() if op.name == "hw.call"]


SWIGLU = (alloc("h", 32) + linear("%x", "%w1", "%h") + call("irt_silu_f32", "%h, %h", "n = 8 : i64")
          + alloc("u", 64) + linear("%x", "%w3", "%u")
          + call("irt_mul_f32", "%h, %u, %h", "n = 8 : i64"))


def test_silu_and_the_product_after_it_become_one_call():
    mod = module(SWIGLU + alloc("y", 96) + linear("%h", "%w1", "%y"))
    fusions.silu_mul(mod)
    assert calls(mod) == ["irt_linear_packed_f32", "irt_linear_packed_f32", "irt_silu_mul_f32",
                          "irt_linear_packed_f32"]
    fused = [op for op in mod.walk() if op.name == "hw.call"][2]
    assert [a.name_hint for a in fused.args] == ["h", "u", "h"]
    assert fused.param("n") == 8


def test_silu_read_again_after_the_product_stays():
    mod = module(SWIGLU.replace("irt_mul_f32(%h, %u, %h)", "irt_mul_f32(%h, %u, %u)")
                 + alloc("y", 96) + call("irt_add_f32", "%h, %u, %y", "n = 8 : i64"))
    fusions.silu_mul(mod)
    assert "irt_silu_f32" in calls(mod) and "irt_silu_mul_f32" not in calls(mod)


def test_silu_input_overwritten_before_the_product_stays():
    # silu(x -> s), then a call writes x, then s * u: the fused call would read the new x
    body = (alloc("s", 32) + call("irt_silu_f32", "%x, %s", "n = 8 : i64")
            + alloc("u", 64) + linear("%s", "%w3", "%u")
            + call("irt_add_f32", "%u, %u, %x", "n = 8 : i64")
            + alloc("y", 96) + call("irt_mul_f32", "%s, %u, %y", "n = 8 : i64"))
    mod = module(body)
    fusions.silu_mul(mod)
    assert "irt_silu_mul_f32" not in calls(mod)


def test_a_buffer_placed_over_the_silu_input_stays():
    # silu(a -> s) with a at offset 32; v (placed over a, a being dead for the planner) is
    # written before the product: a is gone by then
    body = (alloc("a", 32) + linear("%x", "%w1", "%a") + alloc("s", 64)
            + call("irt_silu_f32", "%a, %s", "n = 8 : i64") + alloc("v", 32)
            + linear("%x", "%w3", "%v")
            + alloc("y", 96) + call("irt_mul_f32", "%s, %v, %y", "n = 8 : i64"))
    mod = module(body)
    fusions.silu_mul(mod)
    assert "irt_silu_mul_f32" not in calls(mod)
    # placed elsewhere, the pair is fused and the intermediate buffer is gone
    mod = module(body.replace("%v = memory.alloc {offset = 32", "%v = memory.alloc {offset = 128"))
    fusions.silu_mul(mod)
    assert calls(mod)[-1] == "irt_silu_mul_f32"
    assert not any(op.name == "memory.alloc" and op.result.name_hint == "s" for op in mod.walk())


def test_a_residual_add_after_a_linear_layer_is_its_store():
    body = (alloc("r", 32) + linear("%x", "%w1", "%r") + alloc("t", 64)
            + linear("%x", "%w3", "%t") + call("irt_add_f32", "%r, %t, %r", "n = 8 : i64")
            + alloc("y", 96) + linear("%r", "%w1", "%y"))
    mod = module(body)
    fusions.residual_linear(mod)
    assert calls(mod) == ["irt_linear_packed_f32", "irt_linear_packed_residual_f32",
                          "irt_linear_packed_f32"]
    fused = [op for op in mod.walk() if op.name == "hw.call"][1]
    assert [a.name_hint for a in fused.args] == ["x", "w3", "r", "r"]
    # the add writing the linear layer's input: no fused call (it would read what it writes)
    mod = module(body.replace("irt_add_f32(%r, %t, %r)", "irt_add_f32(%r, %t, %x)"))
    fusions.residual_linear(mod)
    assert "irt_linear_packed_residual_f32" not in calls(mod)


C = "memref<1x1x4x8xf32, #memory.space<sram>>"
TAB = "memref<4x4xf32, #memory.space<flash>>"


def cache(name: str, offset: int) -> str:
    return f"    %{name} = memory.alloc {{offset = {offset} : i64, alignment = 4 : i64}} : {C}\n"


def kv_module(head_dim: int = 8):
    """k = rope(W1 x) and v = W3 x, each then written into its cache at %pos."""
    kv = (f"layer = 0 : i64, kv_heads = 1 : i64, capacity = 4 : i64, head_dim = {head_dim} : i64, "
          "T = 1 : i64, ring = 0 : i64")
    text = f"""builtin.module {{
  memory.global @w1 {{kind = "weight", weight = "w1", offset = 0 : i64}} : {W}
  memory.global @w3 {{kind = "weight", weight = "w3", offset = 256 : i64}} : {W}
  memory.global @cos {{kind = "weight", weight = "cos", offset = 512 : i64}} : {TAB}
  memory.global @sin {{kind = "weight", weight = "sin", offset = 576 : i64}} : {TAB}
  func.func @decode(%pos: index) -> {T} {{
{alloc("x", 96)}{cache("kc", 0)}{cache("vc", 128)}    %w1 = memory.get_global @w1 : {W}
    %w3 = memory.get_global @w3 : {W}
    %cos = memory.get_global @cos : {TAB}
    %sin = memory.get_global @sin : {TAB}
{alloc("k", 32)}{linear("%x", "%w1", "%k")}{alloc("v", 64)}{linear("%x", "%w3", "%v")}\
    hw.call @irt_rope_hd8_f32(%k, %cos, %sin, %pos, %k) params {{T = 1 : i64, heads = 1 : i64, \
head_dim = 8 : i64, rotary_dim = 8 : i64, style = 0 : i64}} : {T}, {TAB}, {TAB}, index, {T}
    hw.call @irt_kv_write_f32(%kc, %k, %pos) params {{{kv}}} : {C}, {T}, index
    hw.call @irt_kv_write_f32(%vc, %v, %pos) params {{{kv}}} : {C}, {T}, index
    func.return %x : {T}
  }}
}}"""
    return parse_module(text, "test")


def test_the_kv_rows_are_written_into_the_cache_by_their_producers():
    mod = kv_module()
    fusions.kv_linear(mod)
    fusions.kv_rope(mod)
    assert calls(mod) == ["irt_linear_packed_f32", "irt_rope_hd8_kv_f32",
                          "irt_linear_packed_kv_f32"]
    rope, lin = [op for op in mod.walk() if op.name == "hw.call"][1:]
    assert [a.name_hint for a in rope.args] == ["k", "cos", "sin", "pos", "kc", "pos"]
    assert [a.name_hint for a in lin.args] == ["x", "w3", "vc", "pos"]
    assert (lin.param("N"), lin.param("capacity"), lin.param("layer")) == (8, 4, 0)
    # the value rows' buffer is gone; the keys' is still the linear layer's output
    names = [op.result.name_hint for op in mod.walk() if op.name == "memory.alloc"]
    assert names == ["x", "kc", "vc", "k"]


def test_kv_rows_of_other_head_sizes_keep_their_copy():
    mod = kv_module(head_dim=4)
    fusions.kv_linear(mod)
    fusions.kv_rope(mod)
    assert calls(mod).count("irt_kv_write_f32") == 2
