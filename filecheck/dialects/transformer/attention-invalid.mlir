// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// transformer.attention (and quant.int_attention, which verifies as it does) accepted a causal
// attention with more queries than keys, whose first queries see no key (the interpreter
// printed NaN logits for them), and a NaN scale.

func.func @more_queries_than_keys(%q: tensor<4x8xf32>, %k: tensor<3x4xf32>, %v: tensor<3x4xf32>) {
  %a = transformer.attention %q, %k, %v {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<4x8xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<4x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.attention: causal attention of 4 queries over 3 keys: the first 1 would see no key

// -----

func.func @int_more_queries_than_keys(%q: tensor<4x8xf32>, %k: tensor<2x4xf32>, %v: tensor<2x4xf32>) {
  %a = quant.int_attention %q, %k, %v {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<4x8xf32>, tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<4x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.int_attention: causal attention of 4 queries over 2 keys: the first 2 would see no key

// -----

// Not causal, every query sees every key: accepted.
func.func @not_causal(%q: tensor<4x8xf32>, %k: tensor<3x4xf32>, %v: tensor<3x4xf32>) -> tensor<4x8xf32> {
  %a = transformer.attention %q, %k, %v {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<4x8xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<4x8xf32>
  func.return %a : tensor<4x8xf32>
}
// CHECK-LABEL: func.func @not_causal
// CHECK:       transformer.attention

// -----

func.func @nan_scale(%q: tensor<?x8xf32>, %k: tensor<?x4xf32>, %v: tensor<?x4xf32>) {
  %a = transformer.attention %q, %k, %v {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0x7FC00000 : f32, causal = true} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.attention: scale must be finite, got nan
