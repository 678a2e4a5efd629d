// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// The structural checks of hw.call and hw.accel beyond invalid.mlir's: a named kernel (hw.accel
// did not check it) and operands a kernel can take, placed buffers and index scalars (a tensor
// was accepted: the interpreter ran it as an array, the C emitter printed it as a scalar).

func.func @call_tensor(%x: tensor<4xf32>, %y: tensor<4xf32>) {
  hw.call @irt_silu_f32(%x, %y) params {n = 4 : i64} : tensor<4xf32>, tensor<4xf32>
  func.return
}
// CHECK: Operation does not verify: hw.call @irt_silu_f32: operand 0 is tensor<4xf32>; a kernel takes placed buffers (memref) and run-time scalars (index)

// -----

func.func @call_float_scalar(%x: memref<4xf32>, %s: f32) {
  hw.call @irt_silu_f32(%x, %s) params {n = 4 : i64} : memref<4xf32>, f32
  func.return
}
// CHECK: Operation does not verify: hw.call @irt_silu_f32: operand 1 is f32; a kernel takes placed buffers (memref) and run-time scalars (index)

// -----

func.func @call_unnamed(%x: memref<4xf32>, %y: memref<4xf32>) {
  hw.call @""(%x, %y) params {n = 4 : i64} : memref<4xf32>, memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: hw.call: the kernel name is empty

// -----

func.func @accel_unnamed(%x: memref<4xf32>, %y: memref<4xf32>) {
  hw.accel "npu" @""(%x, %y) params {n = 4 : i64} : memref<4xf32>, memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: hw.accel: the kernel name is empty

// -----

func.func @accel_tensor(%x: memref<1x8xf32>, %w: tensor<4x8xf32>, %y: memref<1x4xf32>) {
  hw.accel "npu" @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32>, tensor<4x8xf32>, memref<1x4xf32>
  func.return
}
// CHECK: Operation does not verify: hw.accel @irt_linear_f32: operand 1 is tensor<4x8xf32>; a kernel takes placed buffers (memref) and run-time scalars (index)
