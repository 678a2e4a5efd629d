// RUN: IRTOOL_ROUNDTRIP
// RUN: IRTOOL_GENERIC_ROUNDTRIP
// RUN: irtool-opt %s --split-input-file > %t.once.mlir && irtool-opt %t.once.mlir --split-input-file > %t.twice.mlir && diff %t.once.mlir %t.twice.mlir

// transformer.lora (a task adapter's delta on a linear's output, with its rank-sized scratch
// as a second result) and transformer.lora_up (the delta's second half, what lora-stream makes
// of it), in their custom syntax; `selected = -1` is the base model. The third RUN line checks
// that a printed module parses back and prints byte for byte the same.

// CHECK-LABEL: func.func @lora(%x: tensor<?x8xf32>, %y: tensor<?x4xf32>, %d: tensor<3x2x8xf32>, %u: tensor<3x4x2xf32>) -> tensor<?x4xf32> {
// CHECK-NEXT:    %o, %s = transformer.lora %x, %y, %d, %u {selected = 2 : i64} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<3x2x8xf32>, tensor<3x4x2xf32>) -> (tensor<?x4xf32>, tensor<?x2xf32>)
// CHECK-NEXT:    %b, %s1 = transformer.lora %x, %o, %d, %u {selected = -1 : i64} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<3x2x8xf32>, tensor<3x4x2xf32>) -> (tensor<?x4xf32>, tensor<?x2xf32>)
// CHECK-NEXT:    func.return %b : tensor<?x4xf32>
// CHECK-NEXT:  }
func.func @lora(%x: tensor<?x8xf32>, %y: tensor<?x4xf32>, %d: tensor<3x2x8xf32>, %u: tensor<3x4x2xf32>) -> tensor<?x4xf32> {
  %o, %s = transformer.lora %x, %y, %d, %u {selected = 2 : i64} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<3x2x8xf32>, tensor<3x4x2xf32>) -> (tensor<?x4xf32>, tensor<?x2xf32>)
  %b, %s1 = transformer.lora %x, %o, %d, %u {selected = -1 : i64} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<3x2x8xf32>, tensor<3x4x2xf32>) -> (tensor<?x4xf32>, tensor<?x2xf32>)
  func.return %b : tensor<?x4xf32>
}

// -----

// CHECK-LABEL: func.func @lora_up(%t: tensor<1x2xf32>, %y: tensor<1x4xf32>, %u: tensor<4x2xf32>) -> tensor<1x4xf32> {
// CHECK-NEXT:    %o = transformer.lora_up %t, %y, %u {selected = 0 : i64} : (tensor<1x2xf32>, tensor<1x4xf32>, tensor<4x2xf32>) -> tensor<1x4xf32>
// CHECK-NEXT:    %b = transformer.lora_up %t, %o, %u {selected = -1 : i64} : (tensor<1x2xf32>, tensor<1x4xf32>, tensor<4x2xf32>) -> tensor<1x4xf32>
// CHECK-NEXT:    func.return %b : tensor<1x4xf32>
// CHECK-NEXT:  }
func.func @lora_up(%t: tensor<1x2xf32>, %y: tensor<1x4xf32>, %u: tensor<4x2xf32>) -> tensor<1x4xf32> {
  %o = transformer.lora_up %t, %y, %u {selected = 0 : i64} : (tensor<1x2xf32>, tensor<1x4xf32>, tensor<4x2xf32>) -> tensor<1x4xf32>
  %b = transformer.lora_up %t, %o, %u {selected = -1 : i64} : (tensor<1x2xf32>, tensor<1x4xf32>, tensor<4x2xf32>) -> tensor<1x4xf32>
  func.return %b : tensor<1x4xf32>
}
