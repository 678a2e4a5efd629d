// RUN: IRTOOL_ROUNDTRIP
// RUN: IRTOOL_GENERIC_ROUNDTRIP

// The KV cache ops and the sliding window of attention, in their custom syntax, with and
// without the optional `ring`. Both RUN lines must print the same custom form.

// CHECK-LABEL: func.func @kv(%q: tensor<1x8xf32>, %qs: tensor<?x8xf32>, %k: tensor<1x4xf32>, %ks: tensor<?x4xf32>, %K: tensor<2x1x16x4xf32>, %pos: index) -> tensor<1x8xf32> {
// CHECK-NEXT:    %K1 = transformer.kv_write %K, %k, %pos {layer = 1 : i64} : tensor<2x1x16x4xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xf32>
// CHECK-NEXT:    %K2 = transformer.kv_write %K1, %ks, %pos {layer = 0 : i64, ring} : tensor<2x1x16x4xf32>, tensor<?x4xf32> -> tensor<2x1x16x4xf32>
// CHECK-NEXT:    %a = transformer.cached_attention %q, %K2, %K1, %pos {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<1x8xf32>
// CHECK-NEXT:    %b = transformer.cached_attention %qs, %K2, %K2, %pos {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 2.500000e-01 : f32, ring} : tensor<?x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<?x8xf32>
// CHECK-NEXT:    %w = transformer.attention %qs, %ks, %ks {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32, causal = true, window = 8 : i64} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    func.return %a : tensor<1x8xf32>
// CHECK-NEXT:  }
func.func @kv(%q: tensor<1x8xf32>, %qs: tensor<?x8xf32>, %k: tensor<1x4xf32>, %ks: tensor<?x4xf32>, %K: tensor<2x1x16x4xf32>, %pos: index) -> tensor<1x8xf32> {
  %K1 = transformer.kv_write %K, %k, %pos {layer = 1 : i64} : tensor<2x1x16x4xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xf32>
  %K2 = transformer.kv_write %K1, %ks, %pos {layer = 0 : i64, ring} : tensor<2x1x16x4xf32>, tensor<?x4xf32> -> tensor<2x1x16x4xf32>
  %a = transformer.cached_attention %q, %K2, %K1, %pos {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<1x8xf32>
  %b = transformer.cached_attention %qs, %K2, %K2, %pos {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.25 : f32, ring} : tensor<?x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32> -> tensor<?x8xf32>
  %w = transformer.attention %qs, %ks, %ks {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true, window = 8 : i64} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  func.return %a : tensor<1x8xf32>
}
