// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// One invalid use per verifier check of the hw dialect; each CHECK pins the message on the
// failing op.

// --- hw.call: the kernel must be in the kernel table (irtool.targets.kernels) ---

func.func @f(%x: memref<4xf32>, %y: memref<4xf32>) {
  hw.call @irt_relu_f32(%x, %y) params {n = 4 : i64} : memref<4xf32>, memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: hw.call: unknown kernel @irt_relu_f32 (known: {{.*}}irt_linear_f32{{.*}})

// -----

// --- hw.call: operands in the kernel's C order, exactly as many as it takes ---

func.func @f(%x: memref<1x8xf32>, %w: memref<4x8xf32>) {
  hw.call @irt_linear_f32(%x, %w) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32>, memref<4x8xf32>
  func.return
}
// CHECK: Operation does not verify: hw.call @irt_linear_f32: takes 3 operands (x, w, y), got 2

// -----

func.func @f(%x: memref<1x8xf32>, %w: memref<4x8xf32>, %b: memref<4xf32>, %y: memref<1x4xf32>) {
  hw.call @irt_linear_f32(%x, %w, %b, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32>, memref<4x8xf32>, memref<4xf32>, memref<1x4xf32>
  func.return
}
// CHECK: Operation does not verify: hw.call @irt_linear_f32: takes 3 operands (x, w, y), got 4

// -----

// --- hw.call: every compile-time parameter of the kernel ---

func.func @f(%x: memref<1x8xf32>, %w: memref<4x8xf32>, %y: memref<1x4xf32>) {
  hw.call @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, N = 4 : i64} : memref<1x8xf32>, memref<4x8xf32>, memref<1x4xf32>
  func.return
}
// CHECK: Operation does not verify: hw.call @irt_linear_f32: missing parameter(s) K

// -----

func.func @f(%x: memref<4xf32>, %y: memref<4xf32>) {
  hw.call @irt_silu_f32(%x, %y) : memref<4xf32>, memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: hw.call @irt_silu_f32: missing parameter(s) n

// -----

func.func @f(%q: memref<1x8xf32>, %k: memref<2x1x4x4xf32>, %v: memref<2x1x4x4xf32>, %end: index, %o: memref<1x8xf32>) {
  hw.call @irt_cached_attention_f32(%q, %k, %v, %end, %o) params {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, T = 1 : i64} : memref<1x8xf32>, memref<2x1x4x4xf32>, memref<2x1x4x4xf32>, index, memref<1x8xf32>
  func.return
}
// CHECK: Operation does not verify: hw.call @irt_cached_attention_f32: missing parameter(s) capacity, ring, scale

// -----

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
