// RUN: irtool-opt %s -p 'lower-to-hw{target=riscv-ulp}' | filecheck %s
// RUN: not irtool-opt %s -p lower-to-hw 2>&1 | filecheck %s --check-prefix=NOTARGET

// A placed memory-level decode step (one layer's attention half, by hand): every memory.kernel
// becomes one hw.call of the runtime kernel for its op, with the buffers and run-time scalars
// in the order of the kernel's signature (kv_write: the cache it updates first; rope and cached_attention:
// the position scalar before the output) and the static shapes and attributes as parameters.
// The placements (space, offset) are kept as they were; the target is recorded on the module.
// riscv-ulp's own rules run the linear layers on weights stored in 16-row panels (the globals
// get irtool.layout, the emitter packs them).

// CHECK:       builtin.module attributes {irtool.kv_capacity = 16 : i64, hw.target = #hw.target<"riscv-ulp">} {
// CHECK-NEXT:    memory.global @state.kcache {kind = "state", offset = 0 : i64, alignment = 4 : i64} : memref<2x1x16x4xf32, #memory.space<sram>>
// CHECK:         memory.global @wq {irtool.layout = "row_panels24", kind = "weight", weight = "wq", offset = 32 : i64, alignment = 4 : i64} : memref<8x8xf32, #memory.space<flash>>
// CHECK-NEXT:    memory.global @wk {irtool.layout = "row_panels24", kind = "weight", weight = "wk", offset = 288 : i64, alignment = 4 : i64} : memref<4x8xf32, #memory.space<flash>>
// CHECK-NEXT:    memory.global @bk {kind = "weight"
// CHECK:         func.func @decode(%tok: memref<1xi32>, %pos: index) -> memref<1x8xf32, #memory.space<dtim>> {
// CHECK:           %end = arith.addi %pos, %c1 : index
// CHECK:           %n = memory.alloc {offset = 32 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_rms_norm_f32(%x, %g, %n) params {T = 1 : i64, D = 8 : i64, eps = 1.000000e-05 : f32} : memref<1x8xf32, #memory.space<dtim>>, memref<8xf32, #memory.space<flash>>, memref<1x8xf32, #memory.space<dtim>>
// CHECK:           hw.call @irt_linear_packed_f32(%n, %wq, %q) params {T = 1 : i64, K = 8 : i64, N = 8 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<8x8xf32, #memory.space<flash>>, memref<1x8xf32, #memory.space<dtim>>
// CHECK:           hw.call @irt_linear_packed_bias_f32(%n, %wk, %bk, %k) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<4xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_rope_f32(%q, %cos, %sin, %pos, %q) params {T = 1 : i64, heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = 0 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<16x2xf32, #memory.space<flash>>, memref<16x2xf32, #memory.space<flash>>, index, memref<1x8xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_rope_f32(%k, %cos1, %sin1, %pos, %k) params {T = 1 : i64, heads = 1 : i64, head_dim = 4 : i64, rotary_dim = 2 : i64, style = 1 : i64} : memref<1x4xf32, #memory.space<dtim>>, memref<16x1xf32, #memory.space<flash>>, memref<16x1xf32, #memory.space<flash>>, index, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_kv_write_f32(%kcache, %k, %pos) params {layer = 1 : i64, kv_heads = 1 : i64, capacity = 16 : i64, head_dim = 4 : i64, T = 1 : i64, ring = 0 : i64} : memref<2x1x16x4xf32, #memory.space<sram>>, memref<1x4xf32, #memory.space<dtim>>, index
// CHECK-NEXT:      hw.call @irt_kv_write_f32(%vcache, %k, %pos) params {layer = 1 : i64, kv_heads = 1 : i64, capacity = 16 : i64, head_dim = 4 : i64, T = 1 : i64, ring = 1 : i64} : memref<2x1x16x4xf32, #memory.space<sram>>, memref<1x4xf32, #memory.space<dtim>>, index
// CHECK-NEXT:      %a = memory.alloc {offset = 32 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_cached_attention_f32(%q, %kcache, %vcache, %end, %a) params {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, capacity = 16 : i64, T = 1 : i64, ring = 0 : i64, scale = 5.000000e-01 : f32} : memref<1x8xf32, #memory.space<dtim>>, memref<2x1x16x4xf32, #memory.space<sram>>, memref<2x1x16x4xf32, #memory.space<sram>>, index, memref<1x8xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_cached_attention_f32(%q, %kcache, %vcache, %end, %a) params {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, capacity = 16 : i64, T = 1 : i64, ring = 1 : i64, scale = 2.500000e-01 : f32} : memref<1x8xf32, #memory.space<dtim>>, memref<2x1x16x4xf32, #memory.space<sram>>, memref<2x1x16x4xf32, #memory.space<sram>>, index, memref<1x8xf32, #memory.space<dtim>>
// CHECK-NEXT:      func.return %a : memref<1x8xf32, #memory.space<dtim>>
// CHECK-NEXT:    }
// CHECK-NOT:     memory.kernel
// CHECK-NOT:     transformer.

// Without a target (and no irtool.memory_plan naming the one allocate planned for) the pass
// would plan for the registry's default, the host, whose memories do not hold these buffers:
// a module no emitter accepts. It is refused, naming the spaces.
// NOTARGET:     error: lower-to-hw: buffers are placed in dtim, flash, sram, which target 'host' does not have (it has ram); give lower-to-hw{target=the target they were placed for}, or allocate for 'host'
// NOTARGET-NOT: Traceback

builtin.module attributes {irtool.kv_capacity = 16 : i64} {
  memory.global @state.kcache {kind = "state", offset = 0 : i64, alignment = 4 : i64} : memref<2x1x16x4xf32, #memory.space<sram>>
  memory.global @state.vcache {kind = "state", offset = 512 : i64, alignment = 4 : i64} : memref<2x1x16x4xf32, #memory.space<sram>>
  memory.global @g {kind = "weight", weight = "g", offset = 0 : i64, alignment = 4 : i64} : memref<8xf32, #memory.space<flash>>
  memory.global @wq {kind = "weight", weight = "wq", offset = 32 : i64, alignment = 4 : i64} : memref<8x8xf32, #memory.space<flash>>
  memory.global @wk {kind = "weight", weight = "wk", offset = 288 : i64, alignment = 4 : i64} : memref<4x8xf32, #memory.space<flash>>
  memory.global @bk {kind = "weight", weight = "bk", offset = 416 : i64, alignment = 4 : i64} : memref<4xf32, #memory.space<flash>>
  memory.global @cos {kind = "weight", weight = "cos", offset = 432 : i64, alignment = 4 : i64} : memref<16x2xf32, #memory.space<flash>>
  memory.global @sin {kind = "weight", weight = "sin", offset = 560 : i64, alignment = 4 : i64} : memref<16x2xf32, #memory.space<flash>>
  memory.global @cos1 {kind = "weight", weight = "cos1", offset = 688 : i64, alignment = 4 : i64} : memref<16x1xf32, #memory.space<flash>>
  memory.global @sin1 {kind = "weight", weight = "sin1", offset = 752 : i64, alignment = 4 : i64} : memref<16x1xf32, #memory.space<flash>>
  func.func @decode(%tok: memref<1xi32>, %pos: index) -> memref<1x8xf32, #memory.space<dtim>> {
    %kcache = memory.get_global @state.kcache : memref<2x1x16x4xf32, #memory.space<sram>>
    %vcache = memory.get_global @state.vcache : memref<2x1x16x4xf32, #memory.space<sram>>
    %c1 = arith.constant 1 : index
    %end = arith.addi %pos, %c1 : index
    %g = memory.get_global @g : memref<8xf32, #memory.space<flash>>
    %wq = memory.get_global @wq : memref<8x8xf32, #memory.space<flash>>
    %wk = memory.get_global @wk : memref<4x8xf32, #memory.space<flash>>
    %bk = memory.get_global @bk : memref<4xf32, #memory.space<flash>>
    %cos = memory.get_global @cos : memref<16x2xf32, #memory.space<flash>>
    %sin = memory.get_global @sin : memref<16x2xf32, #memory.space<flash>>
    %cos1 = memory.get_global @cos1 : memref<16x1xf32, #memory.space<flash>>
    %sin1 = memory.get_global @sin1 : memref<16x1xf32, #memory.space<flash>>
    %x = memory.alloc {offset = 0 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    %n = memory.alloc {offset = 32 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    memory.kernel ins(%x, %g : memref<1x8xf32, #memory.space<dtim>>, memref<8xf32, #memory.space<flash>>) outs(%n : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%a0: tensor<1x8xf32>, %a1: tensor<8xf32>):
      %r = transformer.rms_norm %a0, %a1 {eps = 1.0e-05 : f32} : (tensor<1x8xf32>, tensor<8xf32>) -> tensor<1x8xf32>
      memory.yield %r : tensor<1x8xf32>
    }
    %q = memory.alloc {offset = 64 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    memory.kernel ins(%n, %wq : memref<1x8xf32, #memory.space<dtim>>, memref<8x8xf32, #memory.space<flash>>) outs(%q : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%a0: tensor<1x8xf32>, %a1: tensor<8x8xf32>):
      %r = transformer.linear %a0, %a1 : tensor<1x8xf32>, tensor<8x8xf32> -> tensor<1x8xf32>
      memory.yield %r : tensor<1x8xf32>
    }
    %k = memory.alloc {offset = 96 : i64, alignment = 4 : i64} : memref<1x4xf32, #memory.space<dtim>>
    memory.kernel ins(%n, %wk, %bk : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<4xf32, #memory.space<flash>>) outs(%k : memref<1x4xf32, #memory.space<dtim>>) {
    ^bb0(%a0: tensor<1x8xf32>, %a1: tensor<4x8xf32>, %a2: tensor<4xf32>):
      %r = transformer.linear %a0, %a1 bias %a2 : tensor<1x8xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<1x4xf32>
      memory.yield %r : tensor<1x4xf32>
    }
    memory.kernel ins(%q, %cos, %sin, %pos : memref<1x8xf32, #memory.space<dtim>>, memref<16x2xf32, #memory.space<flash>>, memref<16x2xf32, #memory.space<flash>>, index) outs(%q : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%a0: tensor<1x8xf32>, %a1: tensor<16x2xf32>, %a2: tensor<16x2xf32>, %p: index):
      %r = transformer.rope %a0, %a1, %a2 start %p {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<1x8xf32>, tensor<16x2xf32>, tensor<16x2xf32> -> tensor<1x8xf32>
      memory.yield %r : tensor<1x8xf32>
    }
    memory.kernel ins(%k, %cos1, %sin1, %pos : memref<1x4xf32, #memory.space<dtim>>, memref<16x1xf32, #memory.space<flash>>, memref<16x1xf32, #memory.space<flash>>, index) outs(%k : memref<1x4xf32, #memory.space<dtim>>) {
    ^bb0(%a0: tensor<1x4xf32>, %a1: tensor<16x1xf32>, %a2: tensor<16x1xf32>, %p: index):
      %r = transformer.rope %a0, %a1, %a2 start %p {heads = 1 : i64, head_dim = 4 : i64, rotary_dim = 2 : i64, style = "rotate_half"} : tensor<1x4xf32>, tensor<16x1xf32>, tensor<16x1xf32> -> tensor<1x4xf32>
      memory.yield %r : tensor<1x4xf32>
    }
    memory.kernel ins(%kcache, %k, %pos : memref<2x1x16x4xf32, #memory.space<sram>>, memref<1x4xf32, #memory.space<dtim>>, index) outs(%kcache : memref<2x1x16x4xf32, #memory.space<sram>>) {
    ^bb0(%c: tensor<2x1x16x4xf32>, %new: tensor<1x4xf32>, %p: index):
      %r = transformer.kv_write %c, %new, %p {layer = 1 : i64} : tensor<2x1x16x4xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xf32>
      memory.yield %r : tensor<2x1x16x4xf32>
    }
    memory.kernel ins(%k, %vcache, %pos : memref<1x4xf32, #memory.space<dtim>>, memref<2x1x16x4xf32, #memory.space<sram>>, index) outs(%vcache : memref<2x1x16x4xf32, #memory.space<sram>>) {
    ^bb0(%new: tensor<1x4xf32>, %c: tensor<2x1x16x4xf32>, %p: index):
      %r = transformer.kv_write %c, %new, %p {layer = 1 : i64, ring} : tensor<2x1x16x4xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xf32>
      memory.yield %r : tensor<2x1x16x4xf32>
    }
    %a = memory.alloc {offset = 32 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    memory.kernel ins(%q, %kcache, %vcache, %end : memref<1x8xf32, #memory.space<dtim>>, memref<2x1x16x4xf32, #memory.space<sram>>, memref<2x1x16x4xf32, #memory.space<sram>>, index) outs(%a : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%a0: tensor<1x8xf32>, %kc: tensor<2x1x16x4xf32>, %vc: tensor<2x1x16x4xf32>, %e: index):
      %r = transformer.cached_attention %a0, %kc, %vc, %e {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<1x8xf32>
      memory.yield %r : tensor<1x8xf32>
    }
    memory.kernel ins(%vcache, %q, %kcache, %end : memref<2x1x16x4xf32, #memory.space<sram>>, memref<1x8xf32, #memory.space<dtim>>, memref<2x1x16x4xf32, #memory.space<sram>>, index) outs(%a : memref<1x8xf32, #memory.space<dtim>>) {
    ^bb0(%vc: tensor<2x1x16x4xf32>, %a0: tensor<1x8xf32>, %kc: tensor<2x1x16x4xf32>, %e: index):
      %r = transformer.cached_attention %a0, %kc, %vc, %e {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.25 : f32, ring} : tensor<1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<1x8xf32>
      memory.yield %r : tensor<1x8xf32>
    }
    func.return %a : memref<1x8xf32, #memory.space<dtim>>
  }
}
