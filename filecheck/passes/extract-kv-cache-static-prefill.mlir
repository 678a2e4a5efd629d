// RUN: irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=24 tokens=4}' | filecheck %s
// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=24 tokens=25}' 2>&1 | filecheck %s --check-prefix=TOOMANY

// A static batched prefill (the model of extract-kv-cache.mlir): @prefill is the decode step
// over 4 tokens at positions %pos.. (every `?` refined to 4, positions started at %pos, the 4
// key/value rows written at %pos, cached attention up to %pos + 4), beside the 1-token @decode.
// CHECK:       builtin.module attributes {irtool.max_seq_len = 32 : i64, irtool.prefill_tokens = 4 : i64, irtool.prefill = "batched", irtool.kv_capacity = 24 : i64} {
// CHECK-LABEL:   func.func @prefill(%tokens: tensor<4xi32>, %pos: index, %kcache: tensor<2x1x24x4xf32>, %vcache: tensor<2x1x24x4xf32>) -> (tensor<4x16xf32>, tensor<2x1x24x4xf32>, tensor<2x1x24x4xf32>) {
// CHECK-NEXT:      %[[FOUR:.*]] = arith.constant 4 : index
// CHECK-NEXT:      %end = arith.addi %pos, %[[FOUR]] : index
// CHECK:           %p = transformer.position_embedding %tokens, %pemb start %pos : tensor<4xi32>, tensor<32x8xf32> -> tensor<4x8xf32>
// CHECK:           %q = transformer.linear %h, %wq : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
// CHECK:           %kr = transformer.rope %k, %cos, %sin start %pos {{.*}} -> tensor<4x4xf32>
// CHECK-NEXT:      %kcache0 = transformer.kv_write %kcache, %kr, %pos {layer = 0 : i64} : tensor<2x1x24x4xf32>, tensor<4x4xf32> -> tensor<2x1x24x4xf32>
// CHECK-NEXT:      %vcache0 = transformer.kv_write %vcache, %v, %pos {layer = 0 : i64} : tensor<2x1x24x4xf32>, tensor<4x4xf32> -> tensor<2x1x24x4xf32>
// CHECK-NEXT:      %a = transformer.cached_attention %qr, %kcache0, %vcache0, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<4x8xf32>, tensor<2x1x24x4xf32>, tensor<2x1x24x4xf32> -> tensor<4x8xf32>
// CHECK:           func.return %logits, %kcache1, %vcache1 : tensor<4x16xf32>, tensor<2x1x24x4xf32>, tensor<2x1x24x4xf32>
// CHECK-NOT:       transformer.attention
// CHECK-LABEL:   func.func @decode(%tok: tensor<1xi32>, %pos: index, %kcache: tensor<2x1x24x4xf32>, %vcache: tensor<2x1x24x4xf32>)

// TOOMANY:       error: extract-kv-cache: a prefill of tokens=25 does not fit the KV cache of 24 positions; give at most tokens=24
