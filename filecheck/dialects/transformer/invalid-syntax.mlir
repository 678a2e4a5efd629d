// RUN: irtool-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | filecheck %s

// Errors in the custom syntax itself, reported by the parser with their location.

func.func @rope_start_not_index(%x: tensor<?x8xf32>, %c: tensor<32x2xf32>, %pos: i64) {
  %y = transformer.rope %x, %c, %c start %pos {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK:      invalid-syntax.mlir:[[# @LINE - 3]]:42
// CHECK:      operand is used with type index, but has been previously used or defined with type i64

// -----

func.func @linear_bias_without_type(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>, %b: tensor<4xf32>) {
  %y = transformer.linear %x, %w bias %b : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  func.return
}
// The operand has no type: the parser notices only at the end of the op, so the location
// is the start of the next op (an xDSL declarative-format limitation).
// CHECK:      invalid-syntax.mlir:[[# @LINE - 4]]:3
// CHECK:      expected 0 operand types but had 1

// -----

func.func @misspelled_op(%x: tensor<?x8xf32>) {
  %y = transformer.swiglu %x : tensor<?x8xf32>
  func.return
}
// CHECK:      invalid-syntax.mlir:[[# @LINE - 3]]:27
// CHECK:      Operation transformer.swiglu is not registered

// -----

func.func @weight_without_name() {
  %w = transformer.weight : tensor<4xf32>
  func.return
}
// CHECK:      invalid-syntax.mlir:[[# @LINE - 3]]:27
// CHECK:      attribute expected
