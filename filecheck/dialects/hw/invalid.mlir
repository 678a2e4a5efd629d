// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// One invalid use per verifier check of the hw dialect; each CHECK pins the message on the
// failing op.

// hw.call is checked structurally; its operands and parameters are checked against the
// kernel's signature where the call is used (interpreter, emitters): tests/test_hw_interpreter.py.

// --- hw.parallel: a positive core count ---

func.func @f(%x: memref<4xf32>, %y: memref<4xf32>) {
  hw.parallel cores(0) {
    hw.call @irt_silu_f32(%x, %y) params {n = 4 : i64} : memref<4xf32>, memref<4xf32>
  }
  func.return
}
// CHECK: Operation does not verify: hw.parallel: cores must be positive, got 0

// -----

func.func @f(%x: memref<4xf32>, %y: memref<4xf32>) {
  hw.parallel cores(-8) {
    hw.call @irt_silu_f32(%x, %y) params {n = 4 : i64} : memref<4xf32>, memref<4xf32>
  }
  func.return
}
// CHECK: Operation does not verify: hw.parallel: cores must be positive, got -8

// -----

// --- hw.accel: an engine of the target, named ---

func.func @f(%x: memref<1x8xf32>, %w: memref<4x8xf32>, %y: memref<1x4xf32>) {
  hw.accel "" @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32>, memref<4x8xf32>, memref<1x4xf32>
  func.return
}
// CHECK: Operation does not verify: hw.accel: the engine name is empty
