// RUN: IRTOOL_ROUNDTRIP
// RUN: IRTOOL_GENERIC_ROUNDTRIP
// RUN: irtool-opt %s > %t.once.mlir && irtool-opt %t.once.mlir > %t.twice.mlir && diff %t.once.mlir %t.twice.mlir

// quant.wembedding (rows of a table stored as quant.wlinear stores its weights) in its custom
// syntax: 8 bits per channel and per tensor, 4 bits in groups, 1 bit (+/-alpha per row).

// CHECK-LABEL: func.func @wembedding(%tok: tensor<?xi32>) -> tensor<?x8xf32> {
// CHECK-NEXT:    %w8 = transformer.weight "w8" : tensor<16x8xi8>
// CHECK-NEXT:    %s8 = transformer.weight "s8" : tensor<16xf32>
// CHECK-NEXT:    %st = transformer.weight "st" : tensor<1xf32>
// CHECK-NEXT:    %w4 = transformer.weight "w4" : tensor<16x4xui8>
// CHECK-NEXT:    %s4 = transformer.weight "s4" : tensor<16x2xf32>
// CHECK-NEXT:    %w1 = transformer.weight "w1" : tensor<16x1xui8>
// CHECK-NEXT:    %e8 = quant.wembedding %tok, %w8, %s8 {bits = 8 : i64} : (tensor<?xi32>, tensor<16x8xi8>, tensor<16xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %et = quant.wembedding %tok, %w8, %st {bits = 8 : i64} : (tensor<?xi32>, tensor<16x8xi8>, tensor<1xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %e4 = quant.wembedding %tok, %w4, %s4 {bits = 4 : i64, group = 4 : i64} : (tensor<?xi32>, tensor<16x4xui8>, tensor<16x2xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %e1 = quant.wembedding %tok, %w1, %s8 {bits = 1 : i64} : (tensor<?xi32>, tensor<16x1xui8>, tensor<16xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    func.return %e4 : tensor<?x8xf32>
// CHECK-NEXT:  }
func.func @wembedding(%tok: tensor<?xi32>) -> tensor<?x8xf32> {
  %w8 = transformer.weight "w8" : tensor<16x8xi8>
  %s8 = transformer.weight "s8" : tensor<16xf32>
  %st = transformer.weight "st" : tensor<1xf32>
  %w4 = transformer.weight "w4" : tensor<16x4xui8>
  %s4 = transformer.weight "s4" : tensor<16x2xf32>
  %w1 = transformer.weight "w1" : tensor<16x1xui8>
  %e8 = quant.wembedding %tok, %w8, %s8 {bits = 8 : i64} : (tensor<?xi32>, tensor<16x8xi8>, tensor<16xf32>) -> tensor<?x8xf32>
  %et = quant.wembedding %tok, %w8, %st {bits = 8 : i64} : (tensor<?xi32>, tensor<16x8xi8>, tensor<1xf32>) -> tensor<?x8xf32>
  %e4 = quant.wembedding %tok, %w4, %s4 {bits = 4 : i64, group = 4 : i64} : (tensor<?xi32>, tensor<16x4xui8>, tensor<16x2xf32>) -> tensor<?x8xf32>
  %e1 = quant.wembedding %tok, %w1, %s8 {bits = 1 : i64} : (tensor<?xi32>, tensor<16x1xui8>, tensor<16xf32>) -> tensor<?x8xf32>
  func.return %e4 : tensor<?x8xf32>
}
