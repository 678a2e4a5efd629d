// RUN: IRTOOL_ROUNDTRIP
// RUN: IRTOOL_GENERIC_ROUNDTRIP
// RUN: irtool-opt %s > %t.once.mlir && irtool-opt %t.once.mlir > %t.twice.mlir && diff %t.once.mlir %t.twice.mlir

// The views of the memory dialect in their custom syntax: memory.subview (a static window of
// a buffer, in its space) and memory.adapter_slab (the selected adapter's slab of a stack,
// -1 for the base model), and memory.dealloc of a buffer and of a view. The third RUN line
// checks that the printed module reprints byte for byte.

// CHECK-LABEL: func.func @views(%a: memref<8x4xf32, #memory.space<sram>>, %s: memref<3x4x2xf32, #memory.space<flash>>) {
// CHECK-NEXT:    %v = memory.subview %a {offsets = array<i64: 2, 1>} : memref<8x4xf32, #memory.space<sram>> -> memref<3x2xf32, #memory.space<sram>>
// CHECK-NEXT:    %w = memory.subview %a {offsets = array<i64: 0, 0>} : memref<8x4xf32, #memory.space<sram>> -> memref<8x4xf32, #memory.space<sram>>
// CHECK-NEXT:    %m = memory.adapter_slab %s {compiled = 2 : i64} : memref<3x4x2xf32, #memory.space<flash>> -> memref<4x2xf32, #memory.space<flash>>
// CHECK-NEXT:    %n = memory.adapter_slab %s {compiled = -1 : i64} : memref<3x4x2xf32, #memory.space<flash>> -> memref<4x2xf32, #memory.space<flash>>
// CHECK-NEXT:    %b = memory.alloc : memref<2x2xi8>
// CHECK-NEXT:    memory.dealloc %v : memref<3x2xf32, #memory.space<sram>>
// CHECK-NEXT:    memory.dealloc %b : memref<2x2xi8>
// CHECK-NEXT:    func.return
// CHECK-NEXT:  }
func.func @views(%a: memref<8x4xf32, #memory.space<sram>>, %s: memref<3x4x2xf32, #memory.space<flash>>) {
  %v = memory.subview %a {offsets = array<i64: 2, 1>} : memref<8x4xf32, #memory.space<sram>> -> memref<3x2xf32, #memory.space<sram>>
  %w = memory.subview %a {offsets = array<i64: 0, 0>} : memref<8x4xf32, #memory.space<sram>> -> memref<8x4xf32, #memory.space<sram>>
  %m = memory.adapter_slab %s {compiled = 2 : i64} : memref<3x4x2xf32, #memory.space<flash>> -> memref<4x2xf32, #memory.space<flash>>
  %n = memory.adapter_slab %s {compiled = -1 : i64} : memref<3x4x2xf32, #memory.space<flash>> -> memref<4x2xf32, #memory.space<flash>>
  %b = memory.alloc : memref<2x2xi8>
  memory.dealloc %v : memref<3x2xf32, #memory.space<sram>>
  memory.dealloc %b : memref<2x2xi8>
  func.return
}
