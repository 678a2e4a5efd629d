// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// Each chunk breaks one rule of the KV cache ops or of the attention window; the message names
// the op and the mismatch.

func.func @write_features(%K: tensor<2x1x16x4xf32>, %k: tensor<1x8xf32>, %pos: index) {
  %K1 = transformer.kv_write %K, %k, %pos {layer = 0 : i64} : tensor<2x1x16x4xf32>, tensor<1x8xf32> -> tensor<2x1x16x4xf32>
  func.return
}
// CHECK: transformer.kv_write: new rows have 8 features, the cache holds kv_heads * head_dim = 1 * 4 = 4

// -----

func.func @write_layer(%K: tensor<2x1x16x4xf32>, %k: tensor<1x4xf32>, %pos: index) {
  %K1 = transformer.kv_write %K, %k, %pos {layer = 2 : i64} : tensor<2x1x16x4xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xf32>
  func.return
}
// CHECK: transformer.kv_write: layer 2 is outside the cache's 2 layers

// -----

func.func @write_dynamic_cache(%K: tensor<2x1x?x4xf32>, %k: tensor<1x4xf32>, %pos: index) {
  %K1 = transformer.kv_write %K, %k, %pos {layer = 0 : i64} : tensor<2x1x?x4xf32>, tensor<1x4xf32> -> tensor<2x1x?x4xf32>
  func.return
}
// CHECK: transformer.kv_write: cache must have a static shape [layers, kv_heads, capacity, head_dim], got 2x1x?x4

// -----

func.func @write_rank(%K: tensor<16x4xf32>, %k: tensor<1x4xf32>, %pos: index) {
  %K1 = transformer.kv_write %K, %k, %pos {layer = 0 : i64} : tensor<16x4xf32>, tensor<1x4xf32> -> tensor<16x4xf32>
  func.return
}
// CHECK: transformer.kv_write: cache must have rank 4, got 16x4

// -----

func.func @write_result(%K: tensor<2x1x16x4xf32>, %k: tensor<1x4xf32>, %pos: index) {
  %K1 = transformer.kv_write %K, %k, %pos {layer = 0 : i64} : tensor<2x1x16x4xf32>, tensor<1x4xf32> -> tensor<2x1x8x4xf32>
  func.return
}
// CHECK: transformer.kv_write: result type tensor<2x1x8x4xf32> differs from the cache type tensor<2x1x16x4xf32>

// -----

func.func @write_element_type(%K: tensor<2x1x16x4xf16>, %k: tensor<1x4xf32>, %pos: index) {
  %K1 = transformer.kv_write %K, %k, %pos {layer = 0 : i64} : tensor<2x1x16x4xf16>, tensor<1x4xf32> -> tensor<2x1x16x4xf16>
  func.return
}
// CHECK: transformer.kv_write: new rows are f32 but the cache holds f16

// -----

func.func @read_heads(%q: tensor<1x8xf32>, %K: tensor<2x1x16x4xf32>, %end: index) {
  %a = transformer.cached_attention %q, %K, %K, %end {layer = 0 : i64, heads = 4 : i64, kv_heads = 1 : i64, head_dim = 2 : i64, scale = 0.5 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<1x8xf32>
  func.return
}
// CHECK: transformer.cached_attention: kcache has 1 kv heads of 4 dims, expected kv_heads = 1 and head_dim = 2

// -----

func.func @read_query(%q: tensor<1x6xf32>, %K: tensor<2x1x16x4xf32>, %end: index) {
  %a = transformer.cached_attention %q, %K, %K, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x6xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<1x6xf32>
  func.return
}
// CHECK: transformer.cached_attention: query has 6 features, expected heads * head_dim = 8

// -----

func.func @read_gqa(%q: tensor<1x12xf32>, %K: tensor<2x2x16x4xf32>, %end: index) {
  %a = transformer.cached_attention %q, %K, %K, %end {layer = 0 : i64, heads = 3 : i64, kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x12xf32>, tensor<2x2x16x4xf32>, tensor<2x2x16x4xf32> -> tensor<1x12xf32>
  func.return
}
// CHECK: transformer.cached_attention: heads (3) must be a multiple of kv_heads (2)

// -----

func.func @read_vcache(%q: tensor<1x8xf32>, %K: tensor<2x1x16x4xf32>, %V: tensor<2x1x8x4xf32>, %end: index) {
  %a = transformer.cached_attention %q, %K, %V, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x8x4xf32> -> tensor<1x8xf32>
  func.return
}
// CHECK: transformer.cached_attention: vcache type tensor<2x1x8x4xf32> differs from kcache type tensor<2x1x16x4xf32>

// -----

func.func @read_layer(%q: tensor<1x8xf32>, %K: tensor<2x1x16x4xf32>, %end: index) {
  %a = transformer.cached_attention %q, %K, %K, %end {layer = 5 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<1x8xf32>
  func.return
}
// CHECK: transformer.cached_attention: layer 5 is outside the cache's 2 layers

// -----

func.func @read_result(%q: tensor<1x8xf32>, %K: tensor<2x1x16x4xf32>, %end: index) {
  %a = transformer.cached_attention %q, %K, %K, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<2x8xf32>
  func.return
}
// CHECK: transformer.cached_attention: result is 2x8, expected 1x8

// -----

func.func @window_not_causal(%q: tensor<?x8xf32>, %k: tensor<?x4xf32>) {
  %a = transformer.attention %q, %k, %k {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, window = 4 : i64} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: transformer.attention: window 4 needs causal attention (a sliding window looks back from each query)

// -----

func.func @window_zero(%q: tensor<?x8xf32>, %k: tensor<?x4xf32>) {
  %a = transformer.attention %q, %k, %k {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true, window = 0 : i64} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: transformer.attention: window must be positive, got 0

// -----

func.func @end_not_index(%q: tensor<1x8xf32>, %K: tensor<2x1x16x4xf32>, %end: i32) {
  %a = "transformer.cached_attention"(%q, %K, %K, %end) <{layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32}> : (tensor<1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32>, i32) -> tensor<1x8xf32>
  func.return
}
// CHECK: operand 'end' at position 3 does not verify:
// CHECK-NEXT: i32 should be of base attribute index
