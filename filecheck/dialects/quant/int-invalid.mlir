// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// The integer-only ops verify as the transformer ops they stand for (int_rms_norm is in
// invalid.mlir): quant.int_silu as transformer.silu, quant.int_attention as
// transformer.attention; the messages name the integer op.

func.func @int_silu_result(%x: tensor<3x8xf32>) {
  %e = quant.int_silu %x : tensor<3x8xf32> -> tensor<3x9xf32>
  func.return
}
// xDSL's type constraint (one type in and out) catches it first; irtool-opt names the op when
// it reports it without --verify-diagnostics (drivers/verify-error-names-op.mlir).
// CHECK:      "quant.int_silu"
// CHECK-NEXT: ^^^^
// CHECK-NEXT: Operation does not verify: result 'result' at position 0 does not verify:
// CHECK-NEXT: attribute tensor<3x8xf32> expected from variable 'T', but got tensor<3x9xf32>

// -----

func.func @int_attention_kv_heads(%q: tensor<?x8xf32>, %k: tensor<?x4xf32>, %v: tensor<?x4xf32>) {
  %a = quant.int_attention %q, %k, %v {heads = 2 : i64, kv_heads = 3 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.int_attention: heads (2) must be a multiple of kv_heads (3)

// -----

func.func @int_attention_query(%q: tensor<?x6xf32>, %k: tensor<?x4xf32>, %v: tensor<?x4xf32>) {
  %a = quant.int_attention %q, %k, %v {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x6xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x6xf32>
  func.return
}
// CHECK: Operation does not verify: quant.int_attention: query has 6 features, expected heads * head_dim = 8

// -----

func.func @int_attention_heads(%q: tensor<?x8xf32>, %k: tensor<?x4xf32>, %v: tensor<?x4xf32>) {
  %a = quant.int_attention %q, %k, %v {heads = 0 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.int_attention: heads, kv_heads and head_dim must be positive
