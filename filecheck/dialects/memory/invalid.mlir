// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// One invalid use per verifier check of the memory dialect; each CHECK pins the message on the
// failing op. Cases the custom syntax cannot express are written in the generic form.

// --- memory.global ---

memory.global @g {kind = "const"} : memref<4xf32>
// CHECK: Operation does not verify: memory.global @g: kind must be one of weight, state, got "const"

// -----

memory.global @w {kind = "weight"} : memref<4xf32>
// CHECK: Operation does not verify: memory.global @w: a weight global names its store entry with `weight`, and only a weight does

// -----

memory.global @s {kind = "state", weight = "s"} : memref<4xf32>
// CHECK: Operation does not verify: memory.global @s: a weight global names its store entry with `weight`, and only a weight does

// -----

memory.global @s {kind = "state", offset = 0 : i64, alignment = 12 : i64} : memref<4xf32, #memory.space<sram>>
// CHECK: Operation does not verify: memory.global @s: alignment 12 is not a power of two

// -----

memory.global @s {kind = "state", offset = -8 : i64} : memref<4xf32, #memory.space<sram>>
// CHECK: Operation does not verify: memory.global @s: negative offset -8

// -----

memory.global @s {kind = "state", offset = 16 : i64} : memref<4xf32>
// CHECK: Operation does not verify: memory.global @s: an offset needs a memory space in the buffer type

// -----

memory.global @s {kind = "state", offset = 20 : i64, alignment = 16 : i64} : memref<4xf32, #memory.space<sram>>
// CHECK: Operation does not verify: memory.global @s: offset 20 is not a multiple of the alignment 16

// -----

// --- memory.get_global ---

func.func @get_missing() {
  %g = memory.get_global @nowhere : memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.get_global: @nowhere is not a memory.global of this module

// -----

memory.global @w {kind = "weight", weight = "w"} : memref<4xf32>
func.func @get_wrong_type() {
  %g = memory.get_global @w : memref<8xf32>
  func.return
}
// CHECK: Operation does not verify: memory.get_global @w: result type memref<8xf32> differs from the global's memref<4xf32>

// -----

// --- memory.alloc ---

func.func @alloc_dynamic() {
  %a = memory.alloc : memref<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.alloc: buffers need a static shape, got memref<?x4xf32>

// -----

func.func @alloc_alignment() {
  %a = memory.alloc {alignment = 3 : i64} : memref<4xf32, #memory.space<sram>>
  func.return
}
// CHECK: Operation does not verify: memory.alloc: alignment 3 is not a power of two

// -----

func.func @alloc_negative_offset() {
  %a = memory.alloc {offset = -4 : i64} : memref<4xf32, #memory.space<sram>>
  func.return
}
// CHECK: Operation does not verify: memory.alloc: negative offset -4

// -----

func.func @alloc_offset_without_space() {
  %a = memory.alloc {offset = 0 : i64} : memref<4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.alloc: an offset needs a memory space in the buffer type

// -----

func.func @alloc_misaligned() {
  %a = memory.alloc {offset = 8 : i64, alignment = 16 : i64} : memref<4xf32, #memory.space<sram>>
  func.return
}
// CHECK: Operation does not verify: memory.alloc: offset 8 is not a multiple of the alignment 16

// -----

// --- memory.subview ---

func.func @subview_rank(%a: memref<8x4xf32>) {
  %v = memory.subview %a {offsets = array<i64: 0>} : memref<8x4xf32> -> memref<2x4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.subview: source rank 2, 1 offsets and result rank 2 differ

// -----

func.func @subview_outside(%a: memref<8x4xf32>) {
  %v = memory.subview %a {offsets = array<i64: 7, 0>} : memref<8x4xf32> -> memref<2x4xf32>
  func.return
}
// CHECK: Operation does not verify: memory.subview: dimension 0: window [7, 9) is outside [0, 8)

// -----

func.func @subview_element_type(%a: memref<8x4xf32>) {
  %v = memory.subview %a {offsets = array<i64: 0, 0>} : memref<8x4xf32> -> memref<2x4xi32>
  func.return
}
// CHECK: Operation does not verify: memory.subview: element types differ

// -----

// --- memory.copy and memory.dma_start ---

func.func @copy_shapes(%a: memref<4xf32>, %b: memref<8xf32>) {
  memory.copy %a, %b : memref<4xf32>, memref<8xf32>
  func.return
}
// CHECK: Operation does not verify: memory.copy: source memref<4xf32> and destination memref<8xf32> differ in shape or element type

// -----

func.func @dma_element_types(%a: memref<4xf32>, %b: memref<4xi8>) {
  %t = memory.dma_start %a, %b : memref<4xf32>, memref<4xi8>
  memory.dma_wait %t
  func.return
}
// CHECK: Operation does not verify: memory.dma_start: source memref<4xf32> and destination memref<4xi8> differ in shape or element type

// -----

// --- memory.kernel and memory.yield ---

func.func @kernel_arg_count(%a: memref<4xf32>, %b: memref<4xf32>) {
  memory.kernel ins(%a, %a : memref<4xf32>, memref<4xf32>) outs(%b : memref<4xf32>) {
  ^bb0(%x: tensor<4xf32>):
    memory.yield %x : tensor<4xf32>
  }
  func.return
}
// CHECK: Operation does not verify: memory.kernel: 2 ins but the body has 1 arguments

// -----

func.func @kernel_arg_type(%a: memref<4xf32>, %b: memref<4xf32>) {
  memory.kernel ins(%a : memref<4xf32>) outs(%b : memref<4xf32>) {
  ^bb0(%x: tensor<8xf32>):
    %y = transformer.weight "y" : tensor<4xf32>
    memory.yield %y : tensor<4xf32>
  }
  func.return
}
// CHECK: Operation does not verify: memory.kernel: body argument 0 is tensor<8xf32>, expected tensor<4xf32> for operand memref<4xf32>

// -----

func.func @kernel_no_yield(%a: memref<4xf32>, %b: memref<4xf32>) {
  "memory.kernel"(%a, %b) <{operandSegmentSizes = array<i32: 1, 1>}> ({
  ^bb0(%x: tensor<4xf32>):
    "linalg.yield"(%x) : (tensor<4xf32>) -> ()
  }) : (memref<4xf32>, memref<4xf32>) -> ()
  func.return
}
// Any other terminator (one not tied to its parent, as linalg.yield is not) is caught here.
// CHECK: Operation does not verify: memory.kernel: the body must end with memory.yield

// -----

func.func @kernel_yield_count(%a: memref<4xf32>, %b: memref<4xf32>) {
  memory.kernel ins(%a : memref<4xf32>) outs(%a, %b : memref<4xf32>, memref<4xf32>) {
  ^bb0(%x: tensor<4xf32>):
    memory.yield %x : tensor<4xf32>
  }
  func.return
}
// CHECK: Operation does not verify: memory.kernel: yields 1 values for 2 outs

// -----

func.func @kernel_yield_type(%a: memref<4xf32>, %b: memref<8xf32>) {
  memory.kernel ins(%a : memref<4xf32>) outs(%b : memref<8xf32>) {
  ^bb0(%x: tensor<4xf32>):
    memory.yield %x : tensor<4xf32>
  }
  func.return
}
// CHECK: Operation does not verify: memory.kernel: yielded value 0 of type tensor<4xf32> does not fit out buffer memref<8xf32>

// -----

func.func @yield_outside_kernel(%x: tensor<4xf32>) {
  memory.yield %x : tensor<4xf32>
}
// CHECK: Operation does not verify: 'memory.yield' expects parent op 'memory.kernel'
