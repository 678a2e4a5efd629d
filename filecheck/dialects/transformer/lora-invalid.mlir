// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// The verifier of transformer.lora and transformer.lora_up, one invalid use per case.

func.func @lora_rows(%x: tensor<3x8xf32>, %y: tensor<5x4xf32>, %d: tensor<2x2x8xf32>, %u: tensor<2x4x2xf32>) {
  %o, %s = transformer.lora %x, %y, %d, %u {selected = 0 : i64} : (tensor<3x8xf32>, tensor<5x4xf32>, tensor<2x2x8xf32>, tensor<2x4x2xf32>) -> (tensor<5x4xf32>, tensor<3x2xf32>)
  func.return
}
// CHECK: Operation does not verify: transformer.lora: input has 3 rows but the base output has 5

// -----

func.func @lora_features(%x: tensor<3x6xf32>, %y: tensor<3x4xf32>, %d: tensor<2x2x8xf32>, %u: tensor<2x4x2xf32>) {
  %o, %s = transformer.lora %x, %y, %d, %u {selected = 0 : i64} : (tensor<3x6xf32>, tensor<3x4xf32>, tensor<2x2x8xf32>, tensor<2x4x2xf32>) -> (tensor<3x4xf32>, tensor<3x2xf32>)
  func.return
}
// CHECK: Operation does not verify: transformer.lora: input has 6 features but the down matrices [2, 2, 8] expect 8

// -----

func.func @lora_up_shape(%x: tensor<3x8xf32>, %y: tensor<3x4xf32>, %d: tensor<2x2x8xf32>, %u: tensor<2x4x3xf32>) {
  %o, %s = transformer.lora %x, %y, %d, %u {selected = 0 : i64} : (tensor<3x8xf32>, tensor<3x4xf32>, tensor<2x2x8xf32>, tensor<2x4x3xf32>) -> (tensor<3x4xf32>, tensor<3x2xf32>)
  func.return
}
// CHECK: Operation does not verify: transformer.lora: up is 2x4x3, expected 2x4x2

// -----

func.func @lora_selected(%x: tensor<3x8xf32>, %y: tensor<3x4xf32>, %d: tensor<2x2x8xf32>, %u: tensor<2x4x2xf32>) {
  %o, %s = transformer.lora %x, %y, %d, %u {selected = 2 : i64} : (tensor<3x8xf32>, tensor<3x4xf32>, tensor<2x2x8xf32>, tensor<2x4x2xf32>) -> (tensor<3x4xf32>, tensor<3x2xf32>)
  func.return
}
// CHECK: Operation does not verify: transformer.lora: selected = 2 is not an adapter (-1..1)

// -----

func.func @lora_result(%x: tensor<3x8xf32>, %y: tensor<3x4xf32>, %d: tensor<2x2x8xf32>, %u: tensor<2x4x2xf32>) {
  %o, %s = transformer.lora %x, %y, %d, %u {selected = 0 : i64} : (tensor<3x8xf32>, tensor<3x4xf32>, tensor<2x2x8xf32>, tensor<2x4x2xf32>) -> (tensor<3x5xf32>, tensor<3x2xf32>)
  func.return
}
// CHECK: Operation does not verify: transformer.lora: result type tensor<3x5xf32> differs from the base output tensor<3x4xf32>

// -----

func.func @lora_scratch(%x: tensor<3x8xf32>, %y: tensor<3x4xf32>, %d: tensor<2x2x8xf32>, %u: tensor<2x4x2xf32>) {
  %o, %s = transformer.lora %x, %y, %d, %u {selected = 0 : i64} : (tensor<3x8xf32>, tensor<3x4xf32>, tensor<2x2x8xf32>, tensor<2x4x2xf32>) -> (tensor<3x4xf32>, tensor<3x3xf32>)
  func.return
}
// CHECK: Operation does not verify: transformer.lora: rank_scratch is 3x3, expected 3x2

// -----

func.func @lora_up_rows(%t: tensor<3x2xf32>, %y: tensor<5x4xf32>, %u: tensor<4x2xf32>) {
  %o = transformer.lora_up %t, %y, %u {selected = 0 : i64} : (tensor<3x2xf32>, tensor<5x4xf32>, tensor<4x2xf32>) -> tensor<5x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.lora_up: rank has 3 rows but the base output has 5

// -----

func.func @lora_up_matrix(%t: tensor<5x2xf32>, %y: tensor<5x4xf32>, %u: tensor<4x3xf32>) {
  %o = transformer.lora_up %t, %y, %u {selected = 0 : i64} : (tensor<5x2xf32>, tensor<5x4xf32>, tensor<4x3xf32>) -> tensor<5x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.lora_up: up is 4x3, expected 4x2

// -----

func.func @lora_up_selected(%t: tensor<5x2xf32>, %y: tensor<5x4xf32>, %u: tensor<4x2xf32>) {
  %o = transformer.lora_up %t, %y, %u {selected = -2 : i64} : (tensor<5x2xf32>, tensor<5x4xf32>, tensor<4x2xf32>) -> tensor<5x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.lora_up: selected = -2 is not an adapter index nor -1 (the base model)

// -----

func.func @lora_up_result(%t: tensor<5x2xf32>, %y: tensor<5x4xf32>, %u: tensor<4x2xf32>) {
  %o = transformer.lora_up %t, %y, %u {selected = 0 : i64} : (tensor<5x2xf32>, tensor<5x4xf32>, tensor<4x2xf32>) -> tensor<5x3xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.lora_up: result type tensor<5x3xf32> differs from the base output tensor<5x4xf32>
