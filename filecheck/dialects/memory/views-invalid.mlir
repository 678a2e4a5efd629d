// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// The verifiers of memory.subview and memory.adapter_slab beyond invalid.mlir's: a view stays
// in its source's space, bounds are static (a `?` was compared as a huge negative number), and
// a slab needs a leading dimension (a rank-0 source crashed the verifier with an IndexError).

func.func @subview_space(%a: memref<4x8xf32, #memory.space<sram>>) {
  %v = memory.subview %a {offsets = array<i64: 0, 0>} : memref<4x8xf32, #memory.space<sram>> -> memref<2x8xf32, #memory.space<dtim>>
  func.return
}
// CHECK: Operation does not verify: memory.subview: a view stays in its source's memory space (#memory.space<sram>), got #memory.space<dtim>

// -----

func.func @subview_dynamic_source(%a: memref<?x4xf32>) {
  %v = memory.subview %a {offsets = array<i64: 0, 0>} : memref<?x4xf32> -> memref<2x4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.subview: source needs a static shape, got memref<?x4xf32>

// -----

func.func @subview_dynamic_result(%a: memref<4x4xf32>) {
  %v = memory.subview %a {offsets = array<i64: 0, 0>} : memref<4x4xf32> -> memref<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.subview: result needs a static shape, got memref<?x4xf32>

// -----

func.func @slab_rank0(%a: memref<f32>) {
  %v = memory.adapter_slab %a {compiled = 0 : i64} : memref<f32> -> memref<f32>
  func.return
}
// CHECK: Operation does not verify: memory.adapter_slab: the source memref<f32> has no leading dimension of adapters to take a slab of

// -----

func.func @slab_dynamic(%a: memref<?x4xf32>) {
  %v = memory.adapter_slab %a {compiled = 0 : i64} : memref<?x4xf32> -> memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.adapter_slab: source needs a static shape, got memref<?x4xf32>

// -----

func.func @slab_shape(%a: memref<2x4xf32>) {
  %v = memory.adapter_slab %a {compiled = 0 : i64} : memref<2x4xf32> -> memref<2xf32>
  func.return
}
// CHECK: Operation does not verify: memory.adapter_slab: memref<2xf32> is not one slab of memref<2x4xf32>

// -----

func.func @slab_space(%a: memref<2x4xf32, #memory.space<flash>>) {
  %v = memory.adapter_slab %a {compiled = 0 : i64} : memref<2x4xf32, #memory.space<flash>> -> memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.adapter_slab: memref<4xf32> is not one slab of memref<2x4xf32, #memory.space<flash>>

// -----

func.func @slab_compiled(%a: memref<2x4xf32>) {
  %v = memory.adapter_slab %a {compiled = 2 : i64} : memref<2x4xf32> -> memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.adapter_slab: compiled = 2 is not an adapter (-1..1)

// -----

func.func @slab_compiled_low(%a: memref<2x4xf32>) {
  %v = memory.adapter_slab %a {compiled = -2 : i64} : memref<2x4xf32> -> memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.adapter_slab: compiled = -2 is not an adapter (-1..1)
