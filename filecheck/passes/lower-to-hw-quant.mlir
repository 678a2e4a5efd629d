// RUN: irtool-opt %s -p 'lower-to-hw{target=riscv-ulp}' | filecheck %s
// RUN: irtool-opt %s -p 'lower-to-hw{target=riscv-ulp}' | irtool-opt -t c | filecheck %s --check-prefix=C
// RUN: not irtool-opt %S/../Inputs/lower-to-hw-w8-group.mlir -p lower-to-hw 2>&1 | filecheck %s --check-prefix=W8GROUP
// RUN: not irtool-opt %S/../Inputs/lower-to-hw-qlinear-m1.mlir -p lower-to-hw 2>&1 | filecheck %s --check-prefix=M1

// A placed memory-level decode step on quantized data (written at the transformer/quant level,
// then bufferize and allocate): every quant kernel becomes one hw.call of irt_quant.h, with
// the buffers in C order and the shapes as parameters. A bias selects the `_bias` variant of a
// linear kernel (same C function, bias instead of NULL); a per-tensor w8 scale sets
// per_tensor = 1; quant.kv_write writes the cache AND its scales (two out buffers, one call).
// riscv-ulp reads w8, w8a8 and w4g weights in 16-row panels (`_packed` twins of the same
// contract, irt_linear_packed_q.h); w1 keeps the row-major kernel, w1a4 runs the table of
// partial sums (irt_linear_w1a4_table.h, row-major too), and attention with head_dim 4 the
// generic irt_cached_attention_i8 (head_dim 8 has irt_cached_attention_i8_hd8).

// CHECK:       func.func @decode(%tok: memref<1xi32>, %pos: index) -> memref<1x16xf32, #memory.space<dtim>> {
// CHECK:         hw.call @irt_quantize_act_i8(%x, %sx, %zx, %xq) params {n = 8 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<1xf32, #memory.space<dtim>>, memref<1xi32, #memory.space<dtim>>, memref<1x8xi8, #memory.space<dtim>>
// CHECK:         hw.call @irt_linear_w8a8_packed_bias(%xq, %zx, %wq, %m, %bq, %q) params {T = 1 : i64, K = 8 : i64, N = 8 : i64} : memref<1x8xi8, #memory.space<dtim>>, memref<1xi32, #memory.space<dtim>>, memref<8x8xi8, #memory.space<dtim>>, memref<8xf32, #memory.space<dtim>>, memref<8xf32, #memory.space<dtim>>, memref<1x8xf32, #memory.space<dtim>>
// CHECK:         hw.call @irt_linear_w4g_packed(%x, %wk, %sk, %k) params {T = 1 : i64, K = 8 : i64, N = 4 : i64, group = 8 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x4xui8, #memory.space<dtim>>, memref<4x1xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK:         hw.call @irt_linear_w8_packed(%x, %wv, %sv, %v) params {T = 1 : i64, K = 8 : i64, N = 4 : i64, per_tensor = 1 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xi8, #memory.space<dtim>>, memref<1xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:    hw.call @irt_kv_write_i8(%kcache, %kscales, %k, %pos) params {layer = 1 : i64, kv_heads = 1 : i64, capacity = 16 : i64, head_dim = 4 : i64, T = 1 : i64, ring = 0 : i64} : memref<2x1x16x4xi8, #memory.space<dtim>>, memref<2x1x16xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>, index
// CHECK-NEXT:    hw.call @irt_kv_write_i8(%vcache, %vscales, %v, %pos) params {layer = 1 : i64, kv_heads = 1 : i64, capacity = 16 : i64, head_dim = 4 : i64, T = 1 : i64, ring = 1 : i64}
// CHECK:         hw.call @irt_cached_attention_i8(%q, %kcache, %kscales, %vcache, %vscales, %end, %a) params {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, capacity = 16 : i64, T = 1 : i64, ring = 0 : i64, scale = 5.000000e-01 : f32} : memref<1x8xf32, #memory.space<dtim>>, memref<2x1x16x4xi8, #memory.space<dtim>>, memref<2x1x16xf32, #memory.space<dtim>>, memref<2x1x16x4xi8, #memory.space<dtim>>, memref<2x1x16xf32, #memory.space<dtim>>, index, memref<1x8xf32, #memory.space<dtim>>
// CHECK:         hw.call @irt_linear_w8_packed_bias(%a, %wo, %so, %bq, %o) params {T = 1 : i64, K = 8 : i64, N = 8 : i64, per_tensor = 0 : i64}
// CHECK:         hw.call @irt_linear_w1(%o, %w1, %al, %h) params {T = 1 : i64, K = 8 : i64, N = 8 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<8x1xui8, #memory.space<dtim>>, memref<8xf32, #memory.space<dtim>>, memref<1x8xf32, #memory.space<dtim>>
// CHECK:         hw.call @irt_linear_w1a4_table(%h, %wl, %all, %l) params {T = 1 : i64, K = 8 : i64, N = 16 : i64, group = 8 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<16x1xui8, #memory.space<dtim>>, memref<16xf32, #memory.space<dtim>>, memref<1x16xf32, #memory.space<dtim>>
// CHECK-NEXT:    func.return %l

// A kv_write whose results got buffers of their own (bufferize does that when the old cache
// is still read afterwards): the kernel updates in place, so the old contents are copied into
// the out buffers first.
// CHECK-LABEL: func.func @not_in_place
// CHECK-NEXT:    memory.copy %kc, %kc2 : memref<1x1x4x4xi8>, memref<1x1x4x4xi8>
// CHECK-NEXT:    memory.copy %ks, %ks2 : memref<1x1x4xf32>, memref<1x1x4xf32>
// CHECK-NEXT:    hw.call @irt_kv_write_i8(%kc2, %ks2, %new, %pos) params {layer = 0 : i64, kv_heads = 1 : i64, capacity = 4 : i64, head_dim = 4 : i64, T = 1 : i64, ring = 0 : i64}
// CHECK-NEXT:    func.return
// CHECK-NOT:     memory.kernel
// CHECK-NOT:     quant.

// The C emitter: irt_quant.h, the four state globals (int8 caches, f32 scales) cleared by
// irt_init, and the per-tensor activation scale and zero point passed by value: the first
// element of their one-element buffers.
// C:       #include "irt_kernels.h"
// C-NEXT:  #include "irt_quant.h"
// C:       void irt_init(void)
// C:         memset(irt_arena_dtim + {{[0-9]+}}, 0, 128u); /* @state.kcache */
// C-NEXT:    memset(irt_arena_dtim + {{[0-9]+}}, 0, 128u); /* @state.vcache */
// C-NEXT:    memset(irt_arena_dtim + {{[0-9]+}}, 0, 128u); /* @state.kscales */
// C-NEXT:    memset(irt_arena_dtim + {{[0-9]+}}, 0, 128u); /* @state.vscales */
// C:       irt_quantize_act_i8(((float *)(irt_arena_dtim + [[X:[0-9]+]])), ((int8_t *)(irt_arena_dtim + [[XQ:[0-9]+]])), 8, ((float *)(irt_arena_dtim + {{[0-9]+}}))[0], ((int32_t *)(irt_arena_dtim + [[ZX:[0-9]+]]))[0]);
// C-NEXT:  irt_linear_w8a8_packed(((int8_t *)(irt_arena_dtim + [[XQ]])), ((int32_t *)(irt_arena_dtim + [[ZX]]))[0], ((int8_t *)(irt_arena_dtim + {{[0-9]+}})), ((float *)(irt_arena_dtim + {{[0-9]+}})), ((float *)(irt_arena_dtim + {{[0-9]+}})), ((float *)(irt_arena_dtim + {{[0-9]+}})), 1, 8, 8);
// C-NEXT:  irt_linear_w4g_packed(((float *)(irt_arena_dtim + [[X]])), ((uint8_t *)(irt_arena_dtim + {{[0-9]+}})), ((float *)(irt_arena_dtim + {{[0-9]+}})), NULL, ((float *)(irt_arena_dtim + {{[0-9]+}})), 1, 8, 4, 8);
// C-NEXT:  irt_linear_w8_packed(((float *)(irt_arena_dtim + [[X]])), ((int8_t *)(irt_arena_dtim + {{[0-9]+}})), ((float *)(irt_arena_dtim + {{[0-9]+}})), NULL, ((float *)(irt_arena_dtim + {{[0-9]+}})), 1, 8, 4, 1);
// C-NEXT:  irt_kv_write_i8(((int8_t *)(irt_arena_dtim + {{[0-9]+}})), ((float *)(irt_arena_dtim + {{[0-9]+}})), ((float *)(irt_arena_dtim + {{[0-9]+}})), 1, 1, 16, 4, 1, pos, 0);
// C-NEXT:  irt_kv_write_i8({{.*}}, 1, 1, 16, 4, 1, pos, 1);
// C-NEXT:  irt_cached_attention_i8({{.*}}, irt_scratch, 1, 2, 1, 4, 16, 1, (pos + 1), 0, 0.5f);
// C-NEXT:  irt_linear_w8_packed({{.*}}, 1, 8, 8, 0);
// C-NEXT:  irt_linear_w1({{.*}}, NULL, {{.*}}, 1, 8, 8);
// C-NEXT:  irt_linear_w1a4_table({{.*}}, NULL, {{.*}}, 1, 8, 16, 8);
// C-NEXT:  return

// W8GROUP: error: lower-to-hw: quant.wlinear with bits = 8 and per-group scales (group = 32): the C runtime has no kernel for this form. Supported quantized forms: {{.*}}quant.wlinear bits = 8: per-channel or per-tensor scales (irt_linear_w8); bits = 4: per-group scales with an even group (irt_linear_w4g)
// M1: error: lower-to-hw: quant.qlinear with multiplier tensor<1xf32> (irt_linear_w8a8 takes one per output channel, [8]; the quantize pass stores them so): the C runtime has no kernel for this form.

builtin.module attributes {irtool.vocab_size = 16 : i64, irtool.kv_capacity = 16 : i64} {
  memory.global @emb {kind = "weight", weight = "emb", offset = 32 : i64, alignment = 4 : i64} : memref<16x8xf32, #memory.space<dtim>>
  memory.global @sx {kind = "weight", weight = "sx", offset = 1056 : i64, alignment = 4 : i64} : memref<1xf32, #memory.space<dtim>>
  memory.global @zx {kind = "weight", weight = "zx", offset = 1440 : i64, alignment = 4 : i64} : memref<1xi32, #memory.space<dtim>>
  memory.global @wq.q8 {kind = "weight", weight = "wq.q8", offset = 1340 : i64, alignment = 4 : i64} : memref<8x8xi8, #memory.space<dtim>>
  memory.global @wq.m {kind = "weight", weight = "wq.m", offset = 1308 : i64, alignment = 4 : i64} : memref<8xf32, #memory.space<dtim>>
  memory.global @bq {kind = "weight", weight = "bq", offset = 0 : i64, alignment = 4 : i64} : memref<8xf32, #memory.space<dtim>>
  memory.global @wk.q4 {kind = "weight", weight = "wk.q4", offset = 1100 : i64, alignment = 4 : i64} : memref<4x4xui8, #memory.space<dtim>>
  memory.global @wk.scale {kind = "weight", weight = "wk.scale", offset = 1116 : i64, alignment = 4 : i64} : memref<4x1xf32, #memory.space<dtim>>
  memory.global @wv.q8 {kind = "weight", weight = "wv.q8", offset = 1404 : i64, alignment = 4 : i64} : memref<4x8xi8, #memory.space<dtim>>
  memory.global @wv.scale {kind = "weight", weight = "wv.scale", offset = 1436 : i64, alignment = 4 : i64} : memref<1xf32, #memory.space<dtim>>
  memory.global @wo.q8 {kind = "weight", weight = "wo.q8", offset = 1212 : i64, alignment = 4 : i64} : memref<8x8xi8, #memory.space<dtim>>
  memory.global @wo.scale {kind = "weight", weight = "wo.scale", offset = 1276 : i64, alignment = 4 : i64} : memref<8xf32, #memory.space<dtim>>
  memory.global @w1.q1 {kind = "weight", weight = "w1.q1", offset = 1092 : i64, alignment = 4 : i64} : memref<8x1xui8, #memory.space<dtim>>
  memory.global @w1.alpha {kind = "weight", weight = "w1.alpha", offset = 1060 : i64, alignment = 4 : i64} : memref<8xf32, #memory.space<dtim>>
  memory.global @wl.q1 {kind = "weight", weight = "wl.q1", offset = 1196 : i64, alignment = 4 : i64} : memref<16x1xui8, #memory.space<dtim>>
  memory.global @wl.alpha {kind = "weight", weight = "wl.alpha", offset = 1132 : i64, alignment = 4 : i64} : memref<16xf32, #memory.space<dtim>>
  memory.global @state.kcache {kind = "state", offset = 544 : i64, alignment = 4 : i64} : memref<2x1x16x4xi8, #memory.space<dtim>>
  memory.global @state.vcache {kind = "state", offset = 800 : i64, alignment = 4 : i64} : memref<2x1x16x4xi8, #memory.space<dtim>>
  memory.global @state.kscales {kind = "state", offset = 672 : i64, alignment = 4 : i64} : memref<2x1x16xf32, #memory.space<dtim>>
  memory.global @state.vscales {kind = "state", offset = 928 : i64, alignment = 4 : i64} : memref<2x1x16xf32, #memory.space<dtim>>
  func.func @decode(%tok: memref<1xi32>, %pos: index) -> memref<1x16xf32, #memory.space<dtim>> {
    %kcache = memory.get_global @state.kcache : memref<2x1x16x4xi8, #memory.space<dtim>>
    %vcache = memory.get_global @state.vcache : memref<2x1x16x4xi8, #memory.space<dtim>>
    %kscales = memory.get_global @state.kscales : memref<2x1x16xf32, #memory.space<dtim>>
    %vscales = memory.get_global @state.vscales : memref<2x1x16xf32, #memory.space<dtim>>
    %E = memory.get_global @emb : memref<16x8xf32, #memory.space<dtim>>
    %x = memory.alloc {offset = 1444 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    memory.kernel ins(%tok, %E : memref<1xi32>, memref<16x8xf32, #memory.space<dtim>>) outs(%x : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%tok_1: tensor<1xi32>, %E_1: tensor<16x8xf32>):
      %x_1 = transformer.embedding %tok_1, %E_1 : (tensor<1xi32>, tensor<16x8xf32>) -> tensor<1x8xf32>
      memory.yield %x_1 : tensor<1x8xf32>
    }
    %sx = memory.get_global @sx : memref<1xf32, #memory.space<dtim>>
    %zx = memory.get_global @zx : memref<1xi32, #memory.space<dtim>>
    %xq = memory.alloc {offset = 1508 : i64, alignment = 4 : i64} : memref<1x8xi8, #memory.space<dtim>>
    memory.kernel ins(%x, %sx, %zx : memref<1x8xf32, #memory.space<dtim>>, memref<1xf32, #memory.space<dtim>>, memref<1xi32, #memory.space<dtim>>) outs(%xq : memref<1x8xi8, #memory.space<dtim>>) {
    ^bb0(%x_2: tensor<1x8xf32>, %sx_1: tensor<1xf32>, %zx_1: tensor<1xi32>):
      %xq_1 = quant.quantize %x_2, %sx_1 zero_point %zx_1 : tensor<1x8xf32>, tensor<1xf32>, tensor<1xi32> -> tensor<1x8xi8>
      memory.yield %xq_1 : tensor<1x8xi8>
    }
    %wq = memory.get_global @wq.q8 : memref<8x8xi8, #memory.space<dtim>>
    %m = memory.get_global @wq.m : memref<8xf32, #memory.space<dtim>>
    %bq = memory.get_global @bq : memref<8xf32, #memory.space<dtim>>
    %q = memory.alloc {offset = 1476 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    memory.kernel ins(%xq, %wq, %m, %zx, %bq : memref<1x8xi8, #memory.space<dtim>>, memref<8x8xi8, #memory.space<dtim>>, memref<8xf32, #memory.space<dtim>>, memref<1xi32, #memory.space<dtim>>, memref<8xf32, #memory.space<dtim>>) outs(%q : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%xq_2: tensor<1x8xi8>, %wq_1: tensor<8x8xi8>, %m_1: tensor<8xf32>, %zx_2: tensor<1xi32>, %bq_1: tensor<8xf32>):
      %q_1 = quant.qlinear %xq_2, %wq_1, %m_1, %zx_2 bias %bq_1 : tensor<1x8xi8>, tensor<8x8xi8>, tensor<8xf32>, tensor<1xi32>, tensor<8xf32> -> tensor<1x8xf32>
      memory.yield %q_1 : tensor<1x8xf32>
    }
    %wk = memory.get_global @wk.q4 : memref<4x4xui8, #memory.space<dtim>>
    %sk = memory.get_global @wk.scale : memref<4x1xf32, #memory.space<dtim>>
    %k = memory.alloc {offset = 1508 : i64, alignment = 4 : i64} : memref<1x4xf32, #memory.space<dtim>>
    memory.kernel ins(%x, %wk, %sk : memref<1x8xf32, #memory.space<dtim>>, memref<4x4xui8, #memory.space<dtim>>, memref<4x1xf32, #memory.space<dtim>>) outs(%k : memref<1x4xf32, #memory.space<dtim>>) {
    ^bb0(%x_3: tensor<1x8xf32>, %wk_1: tensor<4x4xui8>, %sk_1: tensor<4x1xf32>):
      %k_1 = quant.wlinear %x_3, %wk_1, %sk_1 {bits = 4 : i64, group = 8 : i64} : tensor<1x8xf32>, tensor<4x4xui8>, tensor<4x1xf32> -> tensor<1x4xf32>
      memory.yield %k_1 : tensor<1x4xf32>
    }
    %wv = memory.get_global @wv.q8 : memref<4x8xi8, #memory.space<dtim>>
    %sv = memory.get_global @wv.scale : memref<1xf32, #memory.space<dtim>>
    %v = memory.alloc {offset = 1524 : i64, alignment = 4 : i64} : memref<1x4xf32, #memory.space<dtim>>
    memory.kernel ins(%x, %wv, %sv : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xi8, #memory.space<dtim>>, memref<1xf32, #memory.space<dtim>>) outs(%v : memref<1x4xf32, #memory.space<dtim>>) {
    ^bb0(%x_4: tensor<1x8xf32>, %wv_1: tensor<4x8xi8>, %sv_1: tensor<1xf32>):
      %v_1 = quant.wlinear %x_4, %wv_1, %sv_1 {bits = 8 : i64} : tensor<1x8xf32>, tensor<4x8xi8>, tensor<1xf32> -> tensor<1x4xf32>
      memory.yield %v_1 : tensor<1x4xf32>
    }
    memory.kernel ins(%kcache, %kscales, %k, %pos : memref<2x1x16x4xi8, #memory.space<dtim>>, memref<2x1x16xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>, index) outs(%kcache, %kscales : memref<2x1x16x4xi8, #memory.space<dtim>>, memref<2x1x16xf32, #memory.space<dtim>>) {
    ^bb0(%kcache_1: tensor<2x1x16x4xi8>, %kscales_1: tensor<2x1x16xf32>, %k_2: tensor<1x4xf32>, %pos_1: index):
      %kcache0, %kscales0 = quant.kv_write %kcache_1, %kscales_1, %k_2, %pos_1 {layer = 1 : i64} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
      memory.yield %kcache0, %kscales0 : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
    }
    memory.kernel ins(%vcache, %vscales, %v, %pos : memref<2x1x16x4xi8, #memory.space<dtim>>, memref<2x1x16xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>, index) outs(%vcache, %vscales : memref<2x1x16x4xi8, #memory.space<dtim>>, memref<2x1x16xf32, #memory.space<dtim>>) {
    ^bb0(%vcache_1: tensor<2x1x16x4xi8>, %vscales_1: tensor<2x1x16xf32>, %v_2: tensor<1x4xf32>, %pos_2: index):
      %vcache0, %vscales0 = quant.kv_write %vcache_1, %vscales_1, %v_2, %pos_2 {layer = 1 : i64, ring} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
      memory.yield %vcache0, %vscales0 : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
    }
    %c1 = arith.constant 1 : index
    %end = arith.addi %pos, %c1 : index
    %a = memory.alloc {offset = 1444 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    memory.kernel ins(%q, %kcache, %kscales, %vcache, %vscales, %end : memref<1x8xf32, #memory.space<dtim>>, memref<2x1x16x4xi8, #memory.space<dtim>>, memref<2x1x16xf32, #memory.space<dtim>>, memref<2x1x16x4xi8, #memory.space<dtim>>, memref<2x1x16xf32, #memory.space<dtim>>, index) outs(%a : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%q_2: tensor<1x8xf32>, %kcache_2: tensor<2x1x16x4xi8>, %kscales_2: tensor<2x1x16xf32>, %vcache_2: tensor<2x1x16x4xi8>, %vscales_2: tensor<2x1x16xf32>, %end_1: index):
      %a_1 = quant.cached_attention %q_2, %kcache_2, %kscales_2, %vcache_2, %vscales_2, %end_1 {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
      memory.yield %a_1 : tensor<1x8xf32>
    }
    %wo = memory.get_global @wo.q8 : memref<8x8xi8, #memory.space<dtim>>
    %so = memory.get_global @wo.scale : memref<8xf32, #memory.space<dtim>>
    %o = memory.alloc {offset = 1476 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    memory.kernel ins(%a, %wo, %so, %bq : memref<1x8xf32, #memory.space<dtim>>, memref<8x8xi8, #memory.space<dtim>>, memref<8xf32, #memory.space<dtim>>, memref<8xf32, #memory.space<dtim>>) outs(%o : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%a_2: tensor<1x8xf32>, %wo_1: tensor<8x8xi8>, %so_1: tensor<8xf32>, %bq_2: tensor<8xf32>):
      %o_1 = quant.wlinear %a_2, %wo_1, %so_1 bias %bq_2 {bits = 8 : i64} : tensor<1x8xf32>, tensor<8x8xi8>, tensor<8xf32>, tensor<8xf32> -> tensor<1x8xf32>
      memory.yield %o_1 : tensor<1x8xf32>
    }
    %w1 = memory.get_global @w1.q1 : memref<8x1xui8, #memory.space<dtim>>
    %al = memory.get_global @w1.alpha : memref<8xf32, #memory.space<dtim>>
    %h = memory.alloc {offset = 1444 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    memory.kernel ins(%o, %w1, %al : memref<1x8xf32, #memory.space<dtim>>, memref<8x1xui8, #memory.space<dtim>>, memref<8xf32, #memory.space<dtim>>) outs(%h : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%o_2: tensor<1x8xf32>, %w1_1: tensor<8x1xui8>, %al_1: tensor<8xf32>):
      %h_1 = quant.wlinear %o_2, %w1_1, %al_1 {bits = 1 : i64} : tensor<1x8xf32>, tensor<8x1xui8>, tensor<8xf32> -> tensor<1x8xf32>
      memory.yield %h_1 : tensor<1x8xf32>
    }
    %wl = memory.get_global @wl.q1 : memref<16x1xui8, #memory.space<dtim>>
    %all = memory.get_global @wl.alpha : memref<16xf32, #memory.space<dtim>>
    %l = memory.alloc {offset = 1476 : i64, alignment = 4 : i64} : memref<1x16xf32, #memory.space<dtim>>
    memory.kernel ins(%h, %wl, %all : memref<1x8xf32, #memory.space<dtim>>, memref<16x1xui8, #memory.space<dtim>>, memref<16xf32, #memory.space<dtim>>) outs(%l : memref<1x16xf32, #memory.space<dtim>>) {
    ^bb0(%h_2: tensor<1x8xf32>, %wl_1: tensor<16x1xui8>, %all_1: tensor<16xf32>):
      %l_1 = quant.wlinear %h_2, %wl_1, %all_1 {bits = 1 : i64, act_bits = 4 : i64, act_group = 8 : i64} : tensor<1x8xf32>, tensor<16x1xui8>, tensor<16xf32> -> tensor<1x16xf32>
      memory.yield %l_1 : tensor<1x16xf32>
    }
    func.return %l : memref<1x16xf32, #memory.space<dtim>>
  }
  func.func @not_in_place(%kc: memref<1x1x4x4xi8>, %ks: memref<1x1x4xf32>, %new: memref<1x4xf32>, %pos: index, %kc2: memref<1x1x4x4xi8>, %ks2: memref<1x1x4xf32>) {
    memory.kernel ins(%kc, %ks, %new, %pos : memref<1x1x4x4xi8>, memref<1x1x4xf32>, memref<1x4xf32>, index) outs(%kc2, %ks2 : memref<1x1x4x4xi8>, memref<1x1x4xf32>) {
    ^bb0(%a0: tensor<1x1x4x4xi8>, %a1: tensor<1x1x4xf32>, %a2: tensor<1x4xf32>, %a3: index):
      %c, %s = quant.kv_write %a0, %a1, %a2, %a3 {layer = 0 : i64} : tensor<1x1x4x4xi8>, tensor<1x1x4xf32>, tensor<1x4xf32> -> tensor<1x1x4x4xi8>, tensor<1x1x4xf32>
      memory.yield %c, %s : tensor<1x1x4x4xi8>, tensor<1x1x4xf32>
    }
    func.return
  }
}
