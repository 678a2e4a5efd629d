// RUN: IRTOOL_ROUNDTRIP
// RUN: IRTOOL_GENERIC_ROUNDTRIP

// Every quant op in its custom syntax: integer tensors with their scales and zero points as
// operands (per tensor [1], per channel [N], per group [.., ceil(K/G)]), the quantized linear
// layers (integer W8A8 and weight-only 8/4/1-bit), and the int8 KV cache.

// CHECK-LABEL: func.func @conversions
func.func @conversions(%x: tensor<?x64xf32>, %w: tensor<16x64xf32>, %s1: tensor<1xf32>, %z1: tensor<1xi32>, %sn: tensor<16xf32>, %sg: tensor<16x2xf32>, %acc: tensor<?x16xi32>, %m: tensor<16xf32>) {
  // CHECK-NEXT: %xq = quant.quantize %x, %s1 zero_point %z1 : tensor<?x64xf32>, tensor<1xf32>, tensor<1xi32> -> tensor<?x64xi8>
  %xq = quant.quantize %x, %s1 zero_point %z1 : tensor<?x64xf32>, tensor<1xf32>, tensor<1xi32> -> tensor<?x64xi8>
  // CHECK-NEXT: %xu = quant.quantize %x, %s1 zero_point %z1 : tensor<?x64xf32>, tensor<1xf32>, tensor<1xi32> -> tensor<?x64xui8>
  %xu = quant.quantize %x, %s1 zero_point %z1 : tensor<?x64xf32>, tensor<1xf32>, tensor<1xi32> -> tensor<?x64xui8>
  // CHECK-NEXT: %wq = quant.quantize %w, %sn {narrow} : tensor<16x64xf32>, tensor<16xf32> -> tensor<16x64xi8>
  %wq = quant.quantize %w, %sn {narrow} : tensor<16x64xf32>, tensor<16xf32> -> tensor<16x64xi8>
  // CHECK-NEXT: %w4 = quant.quantize %w, %sg {bits = 4 : i64, narrow, group = 32 : i64} : tensor<16x64xf32>, tensor<16x2xf32> -> tensor<16x64xi8>
  %w4 = quant.quantize %w, %sg {bits = 4 : i64, narrow, group = 32 : i64} : tensor<16x64xf32>, tensor<16x2xf32> -> tensor<16x64xi8>
  // CHECK-NEXT: %wc = quant.quantize %w, %m {axis = 0 : i64} : tensor<16x64xf32>, tensor<16xf32> -> tensor<16x64xi8>
  %wc = quant.quantize %w, %m {axis = 0 : i64} : tensor<16x64xf32>, tensor<16xf32> -> tensor<16x64xi8>
  // CHECK-NEXT: %xd = quant.dequantize %xq, %s1 zero_point %z1 : tensor<?x64xi8>, tensor<1xf32>, tensor<1xi32> -> tensor<?x64xf32>
  %xd = quant.dequantize %xq, %s1 zero_point %z1 : tensor<?x64xi8>, tensor<1xf32>, tensor<1xi32> -> tensor<?x64xf32>
  // CHECK-NEXT: %wd = quant.dequantize %w4, %sg {group = 32 : i64} : tensor<16x64xi8>, tensor<16x2xf32> -> tensor<16x64xf32>
  %wd = quant.dequantize %w4, %sg {group = 32 : i64} : tensor<16x64xi8>, tensor<16x2xf32> -> tensor<16x64xf32>
  // CHECK-NEXT: %r = quant.requantize %acc, %m {axis = 1 : i64} : tensor<?x16xi32>, tensor<16xf32> -> tensor<?x16xi8>
  %r = quant.requantize %acc, %m {axis = 1 : i64} : tensor<?x16xi32>, tensor<16xf32> -> tensor<?x16xi8>
  // CHECK-NEXT: %r4 = quant.requantize %acc, %s1 zero_point %z1 {bits = 4 : i64} : tensor<?x16xi32>, tensor<1xf32>, tensor<1xi32> -> tensor<?x16xi8>
  %r4 = quant.requantize %acc, %s1 zero_point %z1 {bits = 4 : i64} : tensor<?x16xi32>, tensor<1xf32>, tensor<1xi32> -> tensor<?x16xi8>
  // CHECK-NEXT: %kq, %ks = quant.dynamic_quantize %x {group = 8 : i64} : tensor<?x64xf32> -> tensor<?x64xi8>, tensor<?x8xf32>
  %kq, %ks = quant.dynamic_quantize %x {group = 8 : i64} : tensor<?x64xf32> -> tensor<?x64xi8>, tensor<?x8xf32>
  func.return
}

// -----

// CHECK-LABEL: func.func @linears
func.func @linears(%x: tensor<?x64xf32>, %xq: tensor<?x64xi8>, %b: tensor<16xf32>, %zx: tensor<1xi32>) {
  %w8 = transformer.weight "w.q8" : tensor<16x64xi8>
  %m = transformer.weight "w.m" : tensor<16xf32>
  %s = transformer.weight "w.scale" : tensor<16xf32>
  %st = transformer.weight "w.scale1" : tensor<1xf32>
  %w4 = transformer.weight "w.q4" : tensor<16x32xui8>
  %s4 = transformer.weight "w.scale4" : tensor<16x2xf32>
  %w1 = transformer.weight "w.q1" : tensor<16x8xui8>
  // CHECK:      %y = quant.qlinear %xq, %w8, %m, %zx : tensor<?x64xi8>, tensor<16x64xi8>, tensor<16xf32>, tensor<1xi32> -> tensor<?x16xf32>
  %y = quant.qlinear %xq, %w8, %m, %zx : tensor<?x64xi8>, tensor<16x64xi8>, tensor<16xf32>, tensor<1xi32> -> tensor<?x16xf32>
  // CHECK-NEXT: %yb = quant.qlinear %xq, %w8, %m, %zx bias %b : tensor<?x64xi8>, tensor<16x64xi8>, tensor<16xf32>, tensor<1xi32>, tensor<16xf32> -> tensor<?x16xf32>
  %yb = quant.qlinear %xq, %w8, %m, %zx bias %b : tensor<?x64xi8>, tensor<16x64xi8>, tensor<16xf32>, tensor<1xi32>, tensor<16xf32> -> tensor<?x16xf32>
  // CHECK-NEXT: %y8 = quant.wlinear %x, %w8, %s {bits = 8 : i64} : tensor<?x64xf32>, tensor<16x64xi8>, tensor<16xf32> -> tensor<?x16xf32>
  %y8 = quant.wlinear %x, %w8, %s {bits = 8 : i64} : tensor<?x64xf32>, tensor<16x64xi8>, tensor<16xf32> -> tensor<?x16xf32>
  // CHECK-NEXT: %y8t = quant.wlinear %x, %w8, %st bias %b {bits = 8 : i64} : tensor<?x64xf32>, tensor<16x64xi8>, tensor<1xf32>, tensor<16xf32> -> tensor<?x16xf32>
  %y8t = quant.wlinear %x, %w8, %st bias %b {bits = 8 : i64} : tensor<?x64xf32>, tensor<16x64xi8>, tensor<1xf32>, tensor<16xf32> -> tensor<?x16xf32>
  // CHECK-NEXT: %y4 = quant.wlinear %x, %w4, %s4 {bits = 4 : i64, group = 32 : i64} : tensor<?x64xf32>, tensor<16x32xui8>, tensor<16x2xf32> -> tensor<?x16xf32>
  %y4 = quant.wlinear %x, %w4, %s4 {bits = 4 : i64, group = 32 : i64} : tensor<?x64xf32>, tensor<16x32xui8>, tensor<16x2xf32> -> tensor<?x16xf32>
  // CHECK-NEXT: %y4a = quant.wlinear %x, %w4, %s4 acc %y4 {bits = 4 : i64, group = 32 : i64} : tensor<?x64xf32>, tensor<16x32xui8>, tensor<16x2xf32> acc tensor<?x16xf32> -> tensor<?x16xf32>
  %y4a = quant.wlinear %x, %w4, %s4 acc %y4 {bits = 4 : i64, group = 32 : i64} : tensor<?x64xf32>, tensor<16x32xui8>, tensor<16x2xf32> acc tensor<?x16xf32> -> tensor<?x16xf32>
  // CHECK-NEXT: %y1 = quant.wlinear %x, %w1, %s {bits = 1 : i64} : tensor<?x64xf32>, tensor<16x8xui8>, tensor<16xf32> -> tensor<?x16xf32>
  %y1 = quant.wlinear %x, %w1, %s {bits = 1 : i64} : tensor<?x64xf32>, tensor<16x8xui8>, tensor<16xf32> -> tensor<?x16xf32>
  // CHECK-NEXT: %y1a4 = quant.wlinear %x, %w1, %s bias %b {bits = 1 : i64, act_bits = 4 : i64, act_group = 32 : i64} : tensor<?x64xf32>, tensor<16x8xui8>, tensor<16xf32>, tensor<16xf32> -> tensor<?x16xf32>
  %y1a4 = quant.wlinear %x, %w1, %s bias %b {bits = 1 : i64, act_bits = 4 : i64, act_group = 32 : i64} : tensor<?x64xf32>, tensor<16x8xui8>, tensor<16xf32>, tensor<16xf32> -> tensor<?x16xf32>
  // CHECK-NEXT: %y1a4a = quant.wlinear %x, %w1, %s bias %b acc %y1a4 {bits = 1 : i64, act_bits = 4 : i64, act_group = 32 : i64} : tensor<?x64xf32>, tensor<16x8xui8>, tensor<16xf32>, tensor<16xf32> acc tensor<?x16xf32> -> tensor<?x16xf32>
  %y1a4a = quant.wlinear %x, %w1, %s bias %b acc %y1a4 {bits = 1 : i64, act_bits = 4 : i64, act_group = 32 : i64} : tensor<?x64xf32>, tensor<16x8xui8>, tensor<16xf32>, tensor<16xf32> acc tensor<?x16xf32> -> tensor<?x16xf32>
  func.return
}

// -----

// CHECK-LABEL: func.func @kv_cache
func.func @kv_cache(%q: tensor<1x8xf32>, %k: tensor<1x4xf32>, %K: tensor<2x1x16x4xi8>, %Ks: tensor<2x1x16xf32>, %V: tensor<2x1x16x4xi8>, %Vs: tensor<2x1x16xf32>, %pos: index, %end: index) {
  // CHECK-NEXT: %K1, %Ks1 = quant.kv_write %K, %Ks, %k, %pos {layer = 1 : i64} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
  %K1, %Ks1 = quant.kv_write %K, %Ks, %k, %pos {layer = 1 : i64} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
  // CHECK-NEXT: %V1, %Vs1 = quant.kv_write %V, %Vs, %k, %pos {layer = 0 : i64, ring} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
  %V1, %Vs1 = quant.kv_write %V, %Vs, %k, %pos {layer = 0 : i64, ring} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
  // CHECK-NEXT: %a = quant.cached_attention %q, %K1, %Ks1, %V1, %Vs1, %end {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
  %a = quant.cached_attention %q, %K1, %Ks1, %V1, %Vs1, %end {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
  // CHECK-NEXT: %ar = quant.cached_attention %q, %K1, %Ks1, %V1, %Vs1, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32, ring} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
  %ar = quant.cached_attention %q, %K1, %Ks1, %V1, %Vs1, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32, ring} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
  func.return
}
