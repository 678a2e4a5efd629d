// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// One invalid use per case; each CHECK pins the verifier's message, which names the op and
// the bad parameter.

// --- quant.quantize ---

func.func @quantize_int_input(%x: tensor<4x8xi32>, %s: tensor<1xf32>) {
  %q = quant.quantize %x, %s : tensor<4x8xi32>, tensor<1xf32> -> tensor<4x8xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: input must be a tensor of f32, got i32

// -----

func.func @quantize_float_result(%x: tensor<4x8xf32>, %s: tensor<1xf32>) {
  %q = quant.quantize %x, %s : tensor<4x8xf32>, tensor<1xf32> -> tensor<4x8xf16>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: result must be a tensor of integers, got f16

// -----

func.func @quantize_result_shape(%x: tensor<4x8xf32>, %s: tensor<1xf32>) {
  %q = quant.quantize %x, %s : tensor<4x8xf32>, tensor<1xf32> -> tensor<4x9xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: result is 4x9, expected 4x8

// -----

func.func @quantize_bits(%x: tensor<4x8xf32>, %s: tensor<1xf32>) {
  %q = quant.quantize %x, %s {bits = 9 : i64} : tensor<4x8xf32>, tensor<1xf32> -> tensor<4x8xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: bits = 9 must be in 2..8 (the width of i8)

// -----

func.func @quantize_narrow_unsigned(%x: tensor<4x8xf32>, %s: tensor<1xf32>) {
  %q = quant.quantize %x, %s {narrow} : tensor<4x8xf32>, tensor<1xf32> -> tensor<4x8xui8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: narrow (a symmetric range) needs a signed result, got ui8

// -----

func.func @quantize_channel_scale(%x: tensor<4x8xf32>, %s: tensor<8xf32>) {
  %q = quant.quantize %x, %s : tensor<4x8xf32>, tensor<8xf32> -> tensor<4x8xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: scale (one per channel along axis 0) is 8, expected 4

// -----

func.func @quantize_axis(%x: tensor<4x8xf32>, %s: tensor<8xf32>) {
  %q = quant.quantize %x, %s {axis = 2 : i64} : tensor<4x8xf32>, tensor<8xf32> -> tensor<4x8xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: axis 2 is outside the rank 2 of the input

// -----

func.func @quantize_group_scale(%x: tensor<4x40xf32>, %s: tensor<4x1xf32>) {
  %q = quant.quantize %x, %s {group = 32 : i64} : tensor<4x40xf32>, tensor<4x1xf32> -> tensor<4x40xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: scale (one per group of 32 along the last axis) is 4x1, expected 4x2

// -----

func.func @quantize_group_zero(%x: tensor<4x40xf32>, %s: tensor<4x2xf32>) {
  %q = quant.quantize %x, %s {group = 0 : i64} : tensor<4x40xf32>, tensor<4x2xf32> -> tensor<4x40xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: group must be positive, got 0

// -----

func.func @quantize_group_and_axis(%x: tensor<4x40xf32>, %s: tensor<4x2xf32>) {
  %q = quant.quantize %x, %s {group = 32 : i64, axis = 0 : i64} : tensor<4x40xf32>, tensor<4x2xf32> -> tensor<4x40xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: give either axis (per channel) or group (per group), not both

// -----

func.func @quantize_rank2_scale(%x: tensor<4x8xf32>, %s: tensor<4x1xf32>) {
  %q = quant.quantize %x, %s : tensor<4x8xf32>, tensor<4x1xf32> -> tensor<4x8xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: scale must be tensor<1xf32> (per tensor) or one scale per channel along axis 0, got 4x1 (per-group scales need the group property)

// -----

func.func @quantize_zero_point_type(%x: tensor<4x8xf32>, %s: tensor<1xf32>, %z: tensor<1xi8>) {
  %q = quant.quantize %x, %s zero_point %z : tensor<4x8xf32>, tensor<1xf32>, tensor<1xi8> -> tensor<4x8xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: zero_point must be a tensor of i32, got i8

// -----

func.func @quantize_zero_point_shape(%x: tensor<4x8xf32>, %s: tensor<4xf32>, %z: tensor<1xi32>) {
  %q = quant.quantize %x, %s zero_point %z : tensor<4x8xf32>, tensor<4xf32>, tensor<1xi32> -> tensor<4x8xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: zero_point (shaped like the scale) is 1, expected 4

// -----

func.func @quantize_scale_type(%x: tensor<4x8xf32>, %s: tensor<1xf16>) {
  %q = quant.quantize %x, %s : tensor<4x8xf32>, tensor<1xf16> -> tensor<4x8xi8>
  func.return
}
// CHECK: Operation does not verify: quant.quantize: scale must be a tensor of f32, got f16

// -----

// --- quant.dequantize ---

func.func @dequantize_float_input(%x: tensor<4x8xf32>, %s: tensor<1xf32>) {
  %d = quant.dequantize %x, %s : tensor<4x8xf32>, tensor<1xf32> -> tensor<4x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.dequantize: input must be a tensor of integers, got f32

// -----

func.func @dequantize_result_shape(%q: tensor<4x8xi8>, %s: tensor<1xf32>) {
  %d = quant.dequantize %q, %s : tensor<4x8xi8>, tensor<1xf32> -> tensor<8x4xf32>
  func.return
}
// CHECK: Operation does not verify: quant.dequantize: result is 8x4, expected 4x8

// -----

// --- quant.requantize ---

func.func @requantize_float_result(%acc: tensor<4x8xi32>, %m: tensor<1xf32>) {
  %r = quant.requantize %acc, %m : tensor<4x8xi32>, tensor<1xf32> -> tensor<4x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.requantize: result must be a tensor of integers, got f32

// -----

func.func @requantize_channel(%acc: tensor<4x8xi32>, %m: tensor<8xf32>) {
  %r = quant.requantize %acc, %m : tensor<4x8xi32>, tensor<8xf32> -> tensor<4x8xi8>
  func.return
}
// CHECK: Operation does not verify: quant.requantize: scale (one per channel along axis 0) is 8, expected 4

// -----

// --- quant.dynamic_quantize ---

func.func @dynamic_scales_shape(%x: tensor<?x32xf32>) {
  %q, %s = quant.dynamic_quantize %x {group = 8 : i64} : tensor<?x32xf32> -> tensor<?x32xi8>, tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.dynamic_quantize: scales (one per group of 8 along the last axis) is ?x8, expected ?x4

// -----

func.func @dynamic_unsigned(%x: tensor<?x32xf32>) {
  %q, %s = quant.dynamic_quantize %x {group = 8 : i64} : tensor<?x32xf32> -> tensor<?x32xui8>, tensor<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: quant.dynamic_quantize: result must be signed (symmetric), got ui8

// -----

// --- quant.wlinear with an accumulator ---

func.func @wlinear_acc_type(%x: tensor<1x64xf32>, %w: tensor<16x32xui8>, %s: tensor<16x2xf32>, %acc: tensor<1x15xf32>) {
  %y = quant.wlinear %x, %w, %s acc %acc {bits = 4 : i64, group = 32 : i64} : tensor<1x64xf32>, tensor<16x32xui8>, tensor<16x2xf32> acc tensor<1x15xf32> -> tensor<1x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: the accumulator tensor<1x15xf32> differs from the result tensor<1x16xf32>

// -----

// --- quant.qlinear ---

func.func @qlinear_float_input(%x: tensor<?x64xf32>, %w: tensor<16x64xi8>, %m: tensor<16xf32>, %z: tensor<1xi32>) {
  %y = quant.qlinear %x, %w, %m, %z : tensor<?x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<1xi32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.qlinear: input must be a tensor of i8, got f32

// -----

func.func @qlinear_features(%x: tensor<?x32xi8>, %w: tensor<16x64xi8>, %m: tensor<16xf32>, %z: tensor<1xi32>) {
  %y = quant.qlinear %x, %w, %m, %z : tensor<?x32xi8>, tensor<16x64xi8>, tensor<16xf32>, tensor<1xi32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.qlinear: input has 32 features but the weight [16, 64] expects 64

// -----

func.func @qlinear_multiplier(%x: tensor<?x64xi8>, %w: tensor<16x64xi8>, %m: tensor<8xf32>, %z: tensor<1xi32>) {
  %y = quant.qlinear %x, %w, %m, %z : tensor<?x64xi8>, tensor<16x64xi8>, tensor<8xf32>, tensor<1xi32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.qlinear: multiplier (one per output channel, or [1]) is 8, expected 16

// -----

func.func @qlinear_zero_point(%x: tensor<?x64xi8>, %w: tensor<16x64xi8>, %m: tensor<16xf32>, %z: tensor<16xi32>) {
  %y = quant.qlinear %x, %w, %m, %z : tensor<?x64xi8>, tensor<16x64xi8>, tensor<16xf32>, tensor<16xi32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.qlinear: input_zero_point is 16, expected 1

// -----

func.func @qlinear_bias(%x: tensor<?x64xi8>, %w: tensor<16x64xi8>, %m: tensor<16xf32>, %z: tensor<1xi32>, %b: tensor<8xf32>) {
  %y = quant.qlinear %x, %w, %m, %z bias %b : tensor<?x64xi8>, tensor<16x64xi8>, tensor<16xf32>, tensor<1xi32>, tensor<8xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.qlinear: bias is 8, expected 16

// -----

func.func @qlinear_result(%x: tensor<?x64xi8>, %w: tensor<16x64xi8>, %m: tensor<16xf32>, %z: tensor<1xi32>) {
  %y = quant.qlinear %x, %w, %m, %z : tensor<?x64xi8>, tensor<16x64xi8>, tensor<16xf32>, tensor<1xi32> -> tensor<?x16xi32>
  func.return
}
// CHECK: Operation does not verify: quant.qlinear: result must be a tensor of f32, got i32

// -----

// --- quant.wlinear ---

func.func @wlinear_bits(%x: tensor<?x64xf32>, %w: tensor<16x16xui8>, %s: tensor<16xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 2 : i64} : tensor<?x64xf32>, tensor<16x16xui8>, tensor<16xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: bits = 2 is not supported (expected one of 8, 4, 1)

// -----

func.func @wlinear_int4_columns(%x: tensor<?x63xf32>, %w: tensor<16x31xui8>, %s: tensor<16x2xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 4 : i64, group = 32 : i64} : tensor<?x63xf32>, tensor<16x31xui8>, tensor<16x2xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: weight rows have 31 columns; 4-bit weights for K = 63 inputs need ceil(K / 2) bytes (two 4-bit values per byte) = 32

// -----

func.func @wlinear_int4_signed_storage(%x: tensor<?x64xf32>, %w: tensor<16x32xi8>, %s: tensor<16x2xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 4 : i64, group = 32 : i64} : tensor<?x64xf32>, tensor<16x32xi8>, tensor<16x2xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: weight must be a tensor of ui8, got i8

// -----

func.func @wlinear_int8_columns(%x: tensor<?x64xf32>, %w: tensor<16x32xi8>, %s: tensor<16xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 8 : i64} : tensor<?x64xf32>, tensor<16x32xi8>, tensor<16xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: weight rows have 32 columns; 8-bit weights for K = 64 inputs need K = 64

// -----

func.func @wlinear_group_scale(%x: tensor<?x64xf32>, %w: tensor<16x32xui8>, %s: tensor<16xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 4 : i64, group = 32 : i64} : tensor<?x64xf32>, tensor<16x32xui8>, tensor<16xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: scale (one per group of 32 inputs) is 16, expected 16x2

// -----

func.func @wlinear_channel_scale(%x: tensor<?x64xf32>, %w: tensor<16x64xi8>, %s: tensor<64xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 8 : i64} : tensor<?x64xf32>, tensor<16x64xi8>, tensor<64xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: scale (per channel, or [1] per tensor) is 64, expected 16

// -----

func.func @wlinear_bits1_group(%x: tensor<?x64xf32>, %w: tensor<16x8xui8>, %s: tensor<16x2xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 1 : i64, group = 32 : i64} : tensor<?x64xf32>, tensor<16x8xui8>, tensor<16x2xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: 1-bit weights have one alpha per output channel; group = 32 is not supported

// -----

func.func @wlinear_act_bits_int8(%x: tensor<?x64xf32>, %w: tensor<16x64xi8>, %s: tensor<16xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 8 : i64, act_bits = 4 : i64, act_group = 32 : i64} : tensor<?x64xf32>, tensor<16x64xi8>, tensor<16xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: act_bits = 4 is supported only as 4-bit activations with 1-bit weights (bits = 1), got bits = 8

// -----

func.func @wlinear_act_group_missing(%x: tensor<?x64xf32>, %w: tensor<16x8xui8>, %s: tensor<16xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 1 : i64, act_bits = 4 : i64} : tensor<?x64xf32>, tensor<16x8xui8>, tensor<16xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: act_bits = 4 needs act_group (activation scales are per group of act_group inputs)

// -----

func.func @wlinear_dynamic_features(%x: tensor<?x?xf32>, %w: tensor<16x8xui8>, %s: tensor<16xf32>) {
  %y = quant.wlinear %x, %w, %s {bits = 1 : i64} : tensor<?x?xf32>, tensor<16x8xui8>, tensor<16xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wlinear: input features must be static (the packed weight rows are sized from them)

// -----

// --- quant.kv_write ---

func.func @kv_write_float_cache(%K: tensor<2x1x16x4xf32>, %Ks: tensor<2x1x16xf32>, %k: tensor<1x4xf32>, %pos: index) {
  %K1, %Ks1 = quant.kv_write %K, %Ks, %k, %pos {layer = 0 : i64} : tensor<2x1x16x4xf32>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xf32>, tensor<2x1x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.kv_write: cache must be a tensor of i8, got f32

// -----

func.func @kv_write_scales(%K: tensor<2x1x16x4xi8>, %Ks: tensor<2x1x8xf32>, %k: tensor<1x4xf32>, %pos: index) {
  %K1, %Ks1 = quant.kv_write %K, %Ks, %k, %pos {layer = 0 : i64} : tensor<2x1x16x4xi8>, tensor<2x1x8xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.kv_write: scales is 2x1x8, expected one scale per cached row [layers, kv_heads, capacity] = 2x1x16

// -----

func.func @kv_write_features(%K: tensor<2x1x16x4xi8>, %Ks: tensor<2x1x16xf32>, %k: tensor<1x8xf32>, %pos: index) {
  %K1, %Ks1 = quant.kv_write %K, %Ks, %k, %pos {layer = 0 : i64} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x8xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.kv_write: new rows have 8 features, the cache holds kv_heads * head_dim = 1 * 4 = 4

// -----

func.func @kv_write_layer(%K: tensor<2x1x16x4xi8>, %Ks: tensor<2x1x16xf32>, %k: tensor<1x4xf32>, %pos: index) {
  %K1, %Ks1 = quant.kv_write %K, %Ks, %k, %pos {layer = 2 : i64} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.kv_write: layer 2 is outside the cache's 2 layers

// -----

func.func @kv_write_dynamic(%K: tensor<2x1x?x4xi8>, %Ks: tensor<2x1x16xf32>, %k: tensor<1x4xf32>, %pos: index) {
  %K1, %Ks1 = quant.kv_write %K, %Ks, %k, %pos {layer = 0 : i64} : tensor<2x1x?x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x?x4xi8>, tensor<2x1x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.kv_write: cache must have a static shape [layers, kv_heads, capacity, head_dim], got 2x1x?x4

// -----

// --- quant.cached_attention ---

func.func @attention_scales(%q: tensor<1x8xf32>, %K: tensor<2x1x16x4xi8>, %Ks: tensor<2x1x16xf32>, %Vs: tensor<2x16xf32>, %end: index) {
  %a = quant.cached_attention %q, %K, %Ks, %K, %Vs, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x16xf32> -> tensor<1x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.cached_attention: vscales is 2x16, expected one scale per cached row [layers, kv_heads, capacity] = 2x1x16

// -----

func.func @attention_kv_heads(%q: tensor<1x8xf32>, %K: tensor<2x1x16x4xi8>, %Ks: tensor<2x1x16xf32>, %end: index) {
  %a = quant.cached_attention %q, %K, %Ks, %K, %Ks, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 2 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.cached_attention: kcache has 1 kv heads of 4 dims, expected kv_heads = 2 and head_dim = 4

// -----

func.func @attention_vcache_type(%q: tensor<1x8xf32>, %K: tensor<2x1x16x4xi8>, %V: tensor<2x1x8x4xi8>, %Ks: tensor<2x1x16xf32>, %end: index) {
  %a = quant.cached_attention %q, %K, %Ks, %V, %Ks, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x8x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.cached_attention: vcache type tensor<2x1x8x4xi8> differs from kcache type tensor<2x1x16x4xi8>

// -----

func.func @attention_query(%q: tensor<1x6xf32>, %K: tensor<2x1x16x4xi8>, %Ks: tensor<2x1x16xf32>, %end: index) {
  %a = quant.cached_attention %q, %K, %Ks, %K, %Ks, %end {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<1x6xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x6xf32>
  func.return
}
// CHECK: Operation does not verify: quant.cached_attention: query has 6 features, expected heads * head_dim = 8

// -----

func.func @attention_layer(%q: tensor<1x8xf32>, %K: tensor<2x1x16x4xi8>, %Ks: tensor<2x1x16xf32>, %end: index) {
  %a = quant.cached_attention %q, %K, %Ks, %K, %Ks, %end {layer = 5 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.cached_attention: layer 5 is outside the cache's 2 layers

// -----

func.func @int_rms_norm_gamma(%x: tensor<2x64xf32>, %g: tensor<32xf32>) {
  %n = quant.int_rms_norm %x, %g {eps = 1.0e-05 : f32} : (tensor<2x64xf32>, tensor<32xf32>) -> tensor<2x64xf32>
  func.return
}
// CHECK: Operation does not verify: quant.int_rms_norm: gamma
