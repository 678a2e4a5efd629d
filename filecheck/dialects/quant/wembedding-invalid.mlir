// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// The verifier of quant.wembedding, one invalid use per case. A `?` token count agrees with a
// static row count, as in transformer.embedding (it was refused as "-9223372036854775808
// tokens give 3 rows"); dynamic widths are named with `?`.

// CHECK-NOT: 9223372036854775808

func.func @dynamic_tokens(%tok: tensor<?xi32>, %w: tensor<16x8xi8>, %s: tensor<16xf32>) -> tensor<3x8xf32> {
  %e = quant.wembedding %tok, %w, %s {bits = 8 : i64} : (tensor<?xi32>, tensor<16x8xi8>, tensor<16xf32>) -> tensor<3x8xf32>
  func.return %e : tensor<3x8xf32>
}
// CHECK-LABEL: func.func @dynamic_tokens
// CHECK:       quant.wembedding

// -----

func.func @rows(%tok: tensor<3xi32>, %w: tensor<16x8xi8>, %s: tensor<16xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 8 : i64} : (tensor<3xi32>, tensor<16x8xi8>, tensor<16xf32>) -> tensor<4x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: 3 tokens give 4 rows

// -----

func.func @dynamic_width(%tok: tensor<3xi32>, %w: tensor<16x8xi8>, %s: tensor<16xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 8 : i64} : (tensor<3xi32>, tensor<16x8xi8>, tensor<16xf32>) -> tensor<3x?xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: weight rows have 8 columns, not the 8-bit packing of the result's ? features

// -----

func.func @packing(%tok: tensor<3xi32>, %w: tensor<16x4xui8>, %s: tensor<16x2xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 4 : i64, group = 4 : i64} : (tensor<3xi32>, tensor<16x4xui8>, tensor<16x2xf32>) -> tensor<3x16xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: weight rows have 4 columns, not the 4-bit packing of the result's 16 features

// -----

func.func @bits(%tok: tensor<3xi32>, %w: tensor<16x8xi8>, %s: tensor<16xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 2 : i64} : (tensor<3xi32>, tensor<16x8xi8>, tensor<16xf32>) -> tensor<3x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: bits = 2 is not supported (expected one of 8, 4, 1)

// -----

func.func @unsigned(%tok: tensor<3xi32>, %w: tensor<16x1xi8>, %s: tensor<16xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 1 : i64} : (tensor<3xi32>, tensor<16x1xi8>, tensor<16xf32>) -> tensor<3x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: weight must be a tensor of ui8, got i8

// -----

func.func @float_tokens(%tok: tensor<3xf32>, %w: tensor<16x8xi8>, %s: tensor<16xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 8 : i64} : (tensor<3xf32>, tensor<16x8xi8>, tensor<16xf32>) -> tensor<3x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: tokens must be a tensor of i32

// -----

func.func @f16_result(%tok: tensor<3xi32>, %w: tensor<16x8xi8>, %s: tensor<16xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 8 : i64} : (tensor<3xi32>, tensor<16x8xi8>, tensor<16xf32>) -> tensor<3x8xf16>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: result must be a tensor of f32

// -----

func.func @group_zero(%tok: tensor<3xi32>, %w: tensor<16x8xi8>, %s: tensor<16xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 8 : i64, group = 0 : i64} : (tensor<3xi32>, tensor<16x8xi8>, tensor<16xf32>) -> tensor<3x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: group must be positive, got 0

// -----

func.func @group_scales(%tok: tensor<3xi32>, %w: tensor<16x4xui8>, %s: tensor<16x2xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 4 : i64, group = 3 : i64} : (tensor<3xi32>, tensor<16x4xui8>, tensor<16x2xf32>) -> tensor<3x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: scale (one per group of 3) is 16x2, expected 16x3

// -----

func.func @row_scales(%tok: tensor<3xi32>, %w: tensor<16x8xi8>, %s: tensor<2xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 8 : i64} : (tensor<3xi32>, tensor<16x8xi8>, tensor<2xf32>) -> tensor<3x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: scale (one per row) is 2, expected 16

// -----

func.func @one_bit_per_tensor(%tok: tensor<3xi32>, %w: tensor<16x1xui8>, %s: tensor<1xf32>) {
  %e = quant.wembedding %tok, %w, %s {bits = 1 : i64} : (tensor<3xi32>, tensor<16x1xui8>, tensor<1xf32>) -> tensor<3x8xf32>
  func.return
}
// CHECK: Operation does not verify: quant.wembedding: scale (one per row) is 1, expected 16
