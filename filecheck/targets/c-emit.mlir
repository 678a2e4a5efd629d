// RUN: irtool-opt %s -t c | filecheck %s

// A tiny placed hw-level module written by hand (vocab 16, dim 8, one layer of attention with
// a 4-position KV cache) through the C emitter. Every buffer is a fixed address: its memory's
// arena plus the offset the allocator chose; kernels are called with the C arguments of the
// kernel table (NULL for a missing bias, the shared scratch for attention, parameters as
// literals, run-time scalars by name); irt_init clears the state globals; the arenas are
// sized from the highest placed byte, rounded up to whole 32-bit words.

// CHECK:       // ----- model.h
// CHECK:       #define IRT_VOCAB 16
// CHECK-NEXT:  #define IRT_MAX_POSITIONS 4
// CHECK-NEXT:  #define IRT_RING 0
// CHECK-NEXT:  #define IRT_CONTEXT 1073741824
// CHECK:       extern uint32_t irt_arena_dtim_words[];
// CHECK-NEXT:  #define irt_arena_dtim ((uint8_t *)irt_arena_dtim_words)
// CHECK-NEXT:  #define IRT_ARENA_DTIM_BYTES 192u
// CHECK-NEXT:  extern const uint32_t irt_arena_flash_words[];
// CHECK-NEXT:  #define irt_arena_flash ((const uint8_t *)irt_arena_flash_words)
// CHECK-NEXT:  #define IRT_ARENA_FLASH_BYTES 1088u
// CHECK-NEXT:  extern uint32_t irt_arena_sram_words[];
// CHECK-NEXT:  #define irt_arena_sram ((uint8_t *)irt_arena_sram_words)
// CHECK-NEXT:  #define IRT_ARENA_SRAM_BYTES 192u
// CHECK:       const float *irt_decode(const int32_t *tok, int32_t pos);

// CHECK:       // ----- model.c
// CHECK:       static float irt_scratch[4];
// CHECK:       void irt_init(void)
// CHECK-NEXT:  {
// CHECK-NEXT:    memset(irt_arena_sram + 0, 0, 64u); /* @state.kcache */
// CHECK-NEXT:    memset(irt_arena_sram + 128, 0, 64u); /* @state.vcache */
// CHECK-NEXT:  }
// CHECK:       const float *irt_decode(const int32_t *tok, int32_t pos)
// CHECK-NEXT:  {
// CHECK-NEXT:    irt_embedding_f32(tok, ((float *)(irt_arena_flash + 0)), ((float *)(irt_arena_dtim + 0)), 1, 8);
// CHECK-NEXT:    irt_rms_norm_f32(((float *)(irt_arena_dtim + 0)), ((float *)(irt_arena_flash + 512)), ((float *)(irt_arena_dtim + 32)), 1, 8, {{9.99999974[0-9]*e-06f|1e-05f|1.0e-05f}});
// CHECK-NEXT:    irt_linear_f32(((float *)(irt_arena_dtim + 32)), ((float *)(irt_arena_flash + 544)), NULL, ((float *)(irt_arena_dtim + 64)), 1, 8, 8);
// CHECK-NEXT:    irt_linear_f32(((float *)(irt_arena_dtim + 32)), ((float *)(irt_arena_flash + 800)), ((float *)(irt_arena_flash + 928)), ((float *)(irt_arena_dtim + 96)), 1, 8, 4);
// CHECK-NEXT:    irt_kv_write_f32(((float *)(irt_arena_sram + 0)), ((float *)(irt_arena_dtim + 96)), 0, 1, 4, 4, 1, pos, 0);
// CHECK-NEXT:    irt_kv_write_f32(((float *)(irt_arena_sram + 128)), ((float *)(irt_arena_dtim + 96)), 0, 1, 4, 4, 1, pos, 0);
// CHECK-NEXT:    irt_cached_attention_f32(((float *)(irt_arena_dtim + 64)), ((float *)(irt_arena_sram + 0)), ((float *)(irt_arena_sram + 128)), ((float *)(irt_arena_dtim + 32)), irt_scratch, 0, 2, 1, 4, 4, 1, (pos + 1), 0, 0.5f);
// CHECK-NEXT:    irt_linear_f32(((float *)(irt_arena_dtim + 32)), ((float *)(irt_arena_flash + 0)), NULL, ((float *)(irt_arena_dtim + 128)), 1, 8, 16);
// CHECK-NEXT:    return ((float *)(irt_arena_dtim + 128));
// CHECK-NEXT:  }

builtin.module attributes {irtool.vocab_size = 16 : i64, irtool.kv_capacity = 4 : i64, hw.target = #hw.target<"riscv-ulp">} {
  memory.global @state.kcache {kind = "state", offset = 0 : i64, alignment = 4 : i64} : memref<1x1x4x4xf32, #memory.space<sram>>
  memory.global @state.vcache {kind = "state", offset = 128 : i64, alignment = 4 : i64} : memref<1x1x4x4xf32, #memory.space<sram>>
  memory.global @emb {kind = "weight", weight = "emb", offset = 0 : i64, alignment = 4 : i64} : memref<16x8xf32, #memory.space<flash>>
  memory.global @norm {kind = "weight", weight = "norm", offset = 512 : i64, alignment = 4 : i64} : memref<8xf32, #memory.space<flash>>
  memory.global @wq {kind = "weight", weight = "wq", offset = 544 : i64, alignment = 4 : i64} : memref<8x8xf32, #memory.space<flash>>
  memory.global @wk {kind = "weight", weight = "wk", offset = 800 : i64, alignment = 4 : i64} : memref<4x8xf32, #memory.space<flash>>
  memory.global @bk {kind = "weight", weight = "bk", offset = 928 : i64, alignment = 4 : i64} : memref<4xf32, #memory.space<flash>>
  memory.global @pad {kind = "weight", weight = "pad", offset = 944 : i64, alignment = 4 : i64} : memref<141xi8, #memory.space<flash>>
  func.func @decode(%tok: memref<1xi32>, %pos: index) -> memref<1x16xf32, #memory.space<dtim>> {
    %kcache = memory.get_global @state.kcache : memref<1x1x4x4xf32, #memory.space<sram>>
    %vcache = memory.get_global @state.vcache : memref<1x1x4x4xf32, #memory.space<sram>>
    %c1 = arith.constant 1 : index
    %end = arith.addi %pos, %c1 : index
    %emb = memory.get_global @emb : memref<16x8xf32, #memory.space<flash>>
    %norm = memory.get_global @norm : memref<8xf32, #memory.space<flash>>
    %wq = memory.get_global @wq : memref<8x8xf32, #memory.space<flash>>
    %wk = memory.get_global @wk : memref<4x8xf32, #memory.space<flash>>
    %bk = memory.get_global @bk : memref<4xf32, #memory.space<flash>>
    %x = memory.alloc {offset = 0 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    hw.call @irt_embedding_f32(%tok, %emb, %x) params {T = 1 : i64, D = 8 : i64} : memref<1xi32>, memref<16x8xf32, #memory.space<flash>>, memref<1x8xf32, #memory.space<dtim>>
    %n = memory.alloc {offset = 32 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    hw.call @irt_rms_norm_f32(%x, %norm, %n) params {T = 1 : i64, D = 8 : i64, eps = 1.0e-05 : f32} : memref<1x8xf32, #memory.space<dtim>>, memref<8xf32, #memory.space<flash>>, memref<1x8xf32, #memory.space<dtim>>
    %q = memory.alloc {offset = 64 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    hw.call @irt_linear_f32(%n, %wq, %q) params {T = 1 : i64, K = 8 : i64, N = 8 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<8x8xf32, #memory.space<flash>>, memref<1x8xf32, #memory.space<dtim>>
    %k = memory.alloc {offset = 96 : i64, alignment = 4 : i64} : memref<1x4xf32, #memory.space<dtim>>
    hw.call @irt_linear_bias_f32(%n, %wk, %bk, %k) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<4xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
    hw.call @irt_kv_write_f32(%kcache, %k, %pos) params {layer = 0 : i64, kv_heads = 1 : i64, capacity = 4 : i64, head_dim = 4 : i64, T = 1 : i64, ring = 0 : i64} : memref<1x1x4x4xf32, #memory.space<sram>>, memref<1x4xf32, #memory.space<dtim>>, index
    hw.call @irt_kv_write_f32(%vcache, %k, %pos) params {layer = 0 : i64, kv_heads = 1 : i64, capacity = 4 : i64, head_dim = 4 : i64, T = 1 : i64, ring = 0 : i64} : memref<1x1x4x4xf32, #memory.space<sram>>, memref<1x4xf32, #memory.space<dtim>>, index
    %a = memory.alloc {offset = 32 : i64, alignment = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>
    hw.call @irt_cached_attention_f32(%q, %kcache, %vcache, %end, %a) params {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, capacity = 4 : i64, T = 1 : i64, ring = 0 : i64, scale = 0.5 : f32} : memref<1x8xf32, #memory.space<dtim>>, memref<1x1x4x4xf32, #memory.space<sram>>, memref<1x1x4x4xf32, #memory.space<sram>>, index, memref<1x8xf32, #memory.space<dtim>>
    %logits = memory.alloc {offset = 128 : i64, alignment = 4 : i64} : memref<1x16xf32, #memory.space<dtim>>
    hw.call @irt_linear_f32(%a, %emb, %logits) params {T = 1 : i64, K = 8 : i64, N = 16 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<16x8xf32, #memory.space<flash>>, memref<1x16xf32, #memory.space<dtim>>
    func.return %logits : memref<1x16xf32, #memory.space<dtim>>
  }
}
