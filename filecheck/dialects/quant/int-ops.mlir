// RUN: IRTOOL_ROUNDTRIP
// RUN: IRTOOL_GENERIC_ROUNDTRIP

// The integer non-linear ops of --integer-only (irtool/numerics/intops.py): float tensors in
// and out, integer arithmetic inside; the operands and properties of the transformer ops they
// stand for, and the integer softmax of attention over the int8 cache.

// CHECK-LABEL: func.func @int_ops
func.func @int_ops(%x: tensor<?x64xf32>, %g: tensor<64xf32>, %q: tensor<1x8xf32>, %K: tensor<2x1x16x4xi8>, %Ks: tensor<2x1x16xf32>, %end: index) {
  // CHECK-NEXT: %n = quant.int_rms_norm %x, %g {eps = 1.000000e-05 : f32} : (tensor<?x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  %n = quant.int_rms_norm %x, %g {eps = 1.0e-05 : f32} : (tensor<?x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  // CHECK-NEXT: %s = quant.int_silu %n : tensor<?x64xf32> -> tensor<?x64xf32>
  %s = quant.int_silu %n : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK-NEXT: %a = quant.int_attention %s, %n, %n {heads = 8 : i64, kv_heads = 8 : i64, head_dim = 8 : i64, scale = 0.353553414 : f32, causal = true} : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  %a = quant.int_attention %s, %n, %n {heads = 8 : i64, kv_heads = 8 : i64, head_dim = 8 : i64, scale = 0.3535534 : f32, causal = true} : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  // CHECK-NEXT: %c = quant.cached_attention %q, %K, %Ks, %K, %Ks, %end {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32, integer_softmax} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
  %c = quant.cached_attention %q, %K, %Ks, %K, %Ks, %end {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32, integer_softmax} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
  func.return
}
