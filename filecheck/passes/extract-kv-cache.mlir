// RUN: irtool-opt %s -p 'extract-kv-cache{window=16 prefill=token-by-token}' | filecheck %s
// RUN: irtool-opt %s -p 'extract-kv-cache{capacity=24}' | filecheck %s --check-prefix=BATCHED
// RUN: irtool-opt %s -p extract-kv-cache | filecheck %s --check-prefix=DEFAULT
// RUN: not irtool-opt %s -p 'extract-kv-cache{window=0}' 2>&1 | filecheck %s --check-prefix=BADWIN
// RUN: not irtool-opt %s -p 'extract-kv-cache{prefill=lazy}' 2>&1 | filecheck %s --check-prefix=BADMODE

// A two-layer model with both kinds of positions (learned table and RoPE) and grouped-query
// attention (2 query heads, 1 KV head of 4 dims): one key and one value cache per layer,
// each tensor<1x1xCx4xf32> addressed as layer 0 of its own buffer.

// Window mode, token-by-token prefill: only @decode, ring caches of 16 positions, every `?`
// token dimension refined to 1, positions started at %pos, attention read from the caches.
// CHECK:       builtin.module attributes {irtool.max_seq_len = 32 : i64, irtool.prefill = "token-by-token", irtool.kv_capacity = 16 : i64, irtool.kv_window = 16 : i64} {
// CHECK-NOT:     @forward
// CHECK-NOT:     @prefill
// CHECK-LABEL:   func.func @decode(%tok: tensor<1xi32>, %pos: index, %kcache0: tensor<1x1x16x4xf32>, %vcache0: tensor<1x1x16x4xf32>, %kcache1: tensor<1x1x16x4xf32>, %vcache1: tensor<1x1x16x4xf32>) -> (tensor<1x16xf32>, tensor<1x1x16x4xf32>, tensor<1x1x16x4xf32>, tensor<1x1x16x4xf32>, tensor<1x1x16x4xf32>) {
// CHECK-NEXT:      %[[ONE:.*]] = arith.constant 1 : index
// CHECK-NEXT:      %end = arith.addi %pos, %[[ONE]] : index
// CHECK:           %x = transformer.embedding %tok, %emb : (tensor<1xi32>, tensor<16x8xf32>) -> tensor<1x8xf32>
// CHECK-NEXT:      %p = transformer.position_embedding %tok, %pemb start %pos : tensor<1xi32>, tensor<32x8xf32> -> tensor<1x8xf32>
// CHECK:           %qr = transformer.rope %q, %cos, %sin start %pos {{.*}} -> tensor<1x8xf32>
// CHECK-NEXT:      %kr = transformer.rope %k, %cos, %sin start %pos {{.*}} -> tensor<1x4xf32>
// CHECK-NEXT:      %kcache0_1 = transformer.kv_write %kcache0, %kr, %pos {layer = 0 : i64, ring} : tensor<1x1x16x4xf32>, tensor<1x4xf32> -> tensor<1x1x16x4xf32>
// CHECK-NEXT:      %vcache0_1 = transformer.kv_write %vcache0, %v, %pos {layer = 0 : i64, ring} : tensor<1x1x16x4xf32>, tensor<1x4xf32> -> tensor<1x1x16x4xf32>
// CHECK-NEXT:      %a = transformer.cached_attention %qr, %kcache0_1, %vcache0_1, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32, ring} : tensor<1x8xf32>, tensor<1x1x16x4xf32>, tensor<1x1x16x4xf32> -> tensor<1x8xf32>
// CHECK:           %kcache1_1 = transformer.kv_write %kcache1, %k2, %pos {layer = 0 : i64, ring}
// CHECK-NEXT:      %vcache1_1 = transformer.kv_write %vcache1, %v2, %pos {layer = 0 : i64, ring}
// CHECK-NEXT:      %a2 = transformer.cached_attention %q2, %kcache1_1, %vcache1_1, %end {layer = 0 : i64
// CHECK:           %logits = transformer.linear %h2, %emb : tensor<1x8xf32>, tensor<16x8xf32> -> tensor<1x16xf32>
// CHECK-NEXT:      func.return %logits, %kcache0_1, %vcache0_1, %kcache1_1, %vcache1_1 : tensor<1x16xf32>, tensor<1x1x16x4xf32>, tensor<1x1x16x4xf32>, tensor<1x1x16x4xf32>, tensor<1x1x16x4xf32>
// CHECK-NOT:     transformer.attention

// Batched prefill (linear caches of 24): @prefill keeps the batched attention and fills the
// caches from position 0; @decode follows.
// BATCHED:       builtin.module attributes {irtool.max_seq_len = 32 : i64, irtool.prefill = "batched", irtool.kv_capacity = 24 : i64} {
// BATCHED-LABEL: func.func @prefill(%tokens: tensor<?xi32>, %kcache0: tensor<1x1x24x4xf32>, %vcache0: tensor<1x1x24x4xf32>, %kcache1: tensor<1x1x24x4xf32>, %vcache1: tensor<1x1x24x4xf32>) -> (tensor<?x16xf32>, tensor<1x1x24x4xf32>, tensor<1x1x24x4xf32>, tensor<1x1x24x4xf32>, tensor<1x1x24x4xf32>) {
// BATCHED-NEXT:    %start = arith.constant 0 : index
// BATCHED:         %p = transformer.position_embedding %tokens, %pemb : tensor<?xi32>, tensor<32x8xf32> -> tensor<?x8xf32>
// BATCHED:         %a = transformer.attention %qr, %kr, %v {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32, causal = true} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
// BATCHED-NEXT:    %kcache0_1 = transformer.kv_write %kcache0, %kr, %start {layer = 0 : i64} : tensor<1x1x24x4xf32>, tensor<?x4xf32> -> tensor<1x1x24x4xf32>
// BATCHED-NEXT:    %vcache0_1 = transformer.kv_write %vcache0, %v, %start {layer = 0 : i64} : tensor<1x1x24x4xf32>, tensor<?x4xf32> -> tensor<1x1x24x4xf32>
// BATCHED:         func.return %logits, %kcache0_1, %vcache0_1, %kcache1_1, %vcache1_1 : tensor<?x16xf32>, tensor<1x1x24x4xf32>, tensor<1x1x24x4xf32>, tensor<1x1x24x4xf32>, tensor<1x1x24x4xf32>
// BATCHED-LABEL: func.func @decode(%tok: tensor<1xi32>, %pos: index, %kcache0: tensor<1x1x24x4xf32>, %vcache0: tensor<1x1x24x4xf32>, %kcache1: tensor<1x1x24x4xf32>, %vcache1: tensor<1x1x24x4xf32>)
// BATCHED:         transformer.cached_attention {{.*}} {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} :

// Without options the capacity is the module's irtool.max_seq_len.
// DEFAULT:       irtool.prefill = "batched", irtool.kv_capacity = 32 : i64}
// DEFAULT:       func.func @prefill(%tokens: tensor<?xi32>, %kcache0: tensor<1x1x32x4xf32>, %vcache0: tensor<1x1x32x4xf32>, %kcache1: tensor<1x1x32x4xf32>, %vcache1: tensor<1x1x32x4xf32>)

// BADWIN:        error: extract-kv-cache: window must be between 1 and {{[0-9]+}}, got 0
// BADMODE:       error: extract-kv-cache: prefill must be one of batched, token-by-token, got "lazy"

builtin.module attributes {irtool.max_seq_len = 32 : i64} {
  func.func @forward(%tok: tensor<?xi32>) -> tensor<?x16xf32> {
    %emb = transformer.weight "emb" : tensor<16x8xf32>
    %pemb = transformer.weight "pos" : tensor<32x8xf32>
    %cos = transformer.weight "rope.cos" : tensor<32x2xf32>
    %sin = transformer.weight "rope.sin" : tensor<32x2xf32>
    %wq = transformer.weight "wq" : tensor<8x8xf32>
    %wk = transformer.weight "wk" : tensor<4x8xf32>
    %x = transformer.embedding %tok, %emb : (tensor<?xi32>, tensor<16x8xf32>) -> tensor<?x8xf32>
    %p = transformer.position_embedding %tok, %pemb : tensor<?xi32>, tensor<32x8xf32> -> tensor<?x8xf32>
    %h = transformer.add %x, %p : tensor<?x8xf32>
    %q = transformer.linear %h, %wq : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
    %k = transformer.linear %h, %wk : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
    %v = transformer.linear %h, %wk : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
    %qr = transformer.rope %q, %cos, %sin {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x8xf32>
    %kr = transformer.rope %k, %cos, %sin {heads = 1 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x4xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x4xf32>
    %a = transformer.attention %qr, %kr, %v {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
    %h1 = transformer.add %h, %a : tensor<?x8xf32>
    %q2 = transformer.linear %h1, %wq : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
    %k2 = transformer.linear %h1, %wk : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
    %v2 = transformer.linear %h1, %wk : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
    %a2 = transformer.attention %q2, %k2, %v2 {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
    %h2 = transformer.add %h1, %a2 : tensor<?x8xf32>
    %logits = transformer.linear %h2, %emb : tensor<?x8xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
    func.return %logits : tensor<?x16xf32>
  }
}
