// RUN: IRTOOL_ROUNDTRIP
// RUN: IRTOOL_GENERIC_ROUNDTRIP

// Every op of the memory dialect in its custom syntax, with and without its optional
// properties. Both RUN lines must print the same custom form: the second one goes through the
// generic form first.

// Globals: a weight and a state, unplaced and placed (space in the type, offset, alignment).

// CHECK:       memory.global @tok_embeddings {kind = "weight", weight = "tok_embeddings"} : memref<16x8xf32>
// CHECK-NEXT:  memory.global @layers.0.wq {kind = "weight", weight = "layers.0.wq", offset = 64 : i64, alignment = 16 : i64} : memref<8x8xf32, #memory.space<flash>>
// CHECK-NEXT:  memory.global @state.K {kind = "state"} : memref<2x1x16x4xf32>
// CHECK-NEXT:  memory.global @state.V {kind = "state", offset = 0 : i64} : memref<2x1x16x4xf32, #memory.space<dtim>>
memory.global @tok_embeddings {kind = "weight", weight = "tok_embeddings"} : memref<16x8xf32>
memory.global @layers.0.wq {kind = "weight", weight = "layers.0.wq", offset = 64 : i64, alignment = 16 : i64} : memref<8x8xf32, #memory.space<flash>>
memory.global @state.K {kind = "state"} : memref<2x1x16x4xf32>
memory.global @state.V {kind = "state", offset = 0 : i64} : memref<2x1x16x4xf32, #memory.space<dtim>>

// get_global, alloc (plain, placed, with alignment only), kernel, dealloc.

// CHECK-LABEL: func.func @compute(%tok: memref<3xi32>, %pos: index) -> memref<3x8xf32> {
// CHECK-NEXT:    %E = memory.get_global @tok_embeddings : memref<16x8xf32>
// CHECK-NEXT:    %W = memory.get_global @layers.0.wq : memref<8x8xf32, #memory.space<flash>>
// CHECK-NEXT:    %x = memory.alloc : memref<3x8xf32>
// CHECK-NEXT:    %y = memory.alloc {offset = 128 : i64, alignment = 64 : i64} : memref<3x8xf32, #memory.space<sram>>
// CHECK-NEXT:    %z = memory.alloc {alignment = 8 : i64} : memref<3x8xf32, #memory.space<sram>>
// CHECK-NEXT:    memory.kernel ins(%tok, %E, %pos : memref<3xi32>, memref<16x8xf32>, index) outs(%x : memref<3x8xf32>) {
// CHECK-NEXT:    ^bb0(%t: tensor<3xi32>, %e: tensor<16x8xf32>, %p: index):
// CHECK-NEXT:      %r = transformer.embedding %t, %e : (tensor<3xi32>, tensor<16x8xf32>) -> tensor<3x8xf32>
// CHECK-NEXT:      memory.yield %r : tensor<3x8xf32>
// CHECK-NEXT:    }
// CHECK-NEXT:    memory.kernel ins(%x, %W : memref<3x8xf32>, memref<8x8xf32, #memory.space<flash>>) outs(%x, %y : memref<3x8xf32>, memref<3x8xf32, #memory.space<sram>>) {
// CHECK-NEXT:    ^bb0(%a: tensor<3x8xf32>, %w: tensor<8x8xf32>):
// CHECK-NEXT:      %s = transformer.silu %a : tensor<3x8xf32>
// CHECK-NEXT:      %l = transformer.linear %a, %w : tensor<3x8xf32>, tensor<8x8xf32> -> tensor<3x8xf32>
// CHECK-NEXT:      memory.yield %s, %l : tensor<3x8xf32>, tensor<3x8xf32>
// CHECK-NEXT:    } attributes {note = "two outs, one in place"}
// CHECK-NEXT:    memory.kernel ins() outs() {
// CHECK-NEXT:      memory.yield
// CHECK-NEXT:    }
// CHECK-NEXT:    memory.dealloc %y : memref<3x8xf32, #memory.space<sram>>
// CHECK-NEXT:    memory.dealloc %z : memref<3x8xf32, #memory.space<sram>>
// CHECK-NEXT:    func.return %x : memref<3x8xf32>
// CHECK-NEXT:  }
func.func @compute(%tok: memref<3xi32>, %pos: index) -> memref<3x8xf32> {
  %E = memory.get_global @tok_embeddings : memref<16x8xf32>
  %W = memory.get_global @layers.0.wq : memref<8x8xf32, #memory.space<flash>>
  %x = memory.alloc : memref<3x8xf32>
  %y = memory.alloc {offset = 128 : i64, alignment = 64 : i64} : memref<3x8xf32, #memory.space<sram>>
  %z = memory.alloc {alignment = 8 : i64} : memref<3x8xf32, #memory.space<sram>>
  memory.kernel ins(%tok, %E, %pos : memref<3xi32>, memref<16x8xf32>, index) outs(%x : memref<3x8xf32>) {
  ^bb0(%t: tensor<3xi32>, %e: tensor<16x8xf32>, %p: index):
    %r = transformer.embedding %t, %e : (tensor<3xi32>, tensor<16x8xf32>) -> tensor<3x8xf32>
    memory.yield %r : tensor<3x8xf32>
  }
  memory.kernel ins(%x, %W : memref<3x8xf32>, memref<8x8xf32, #memory.space<flash>>) outs(%x, %y : memref<3x8xf32>, memref<3x8xf32, #memory.space<sram>>) {
  ^bb0(%a: tensor<3x8xf32>, %w: tensor<8x8xf32>):
    %s = transformer.silu %a : tensor<3x8xf32>
    %l = transformer.linear %a, %w : tensor<3x8xf32>, tensor<8x8xf32> -> tensor<3x8xf32>
    memory.yield %s, %l : tensor<3x8xf32>, tensor<3x8xf32>
  } attributes {note = "two outs, one in place"}
  memory.kernel ins( : ) outs( : ) {
    memory.yield
  }
  memory.dealloc %y : memref<3x8xf32, #memory.space<sram>>
  memory.dealloc %z : memref<3x8xf32, #memory.space<sram>>
  func.return %x : memref<3x8xf32>
}

// Data movement: subview, copy between spaces, DMA start and wait.

// CHECK-LABEL: func.func @move(%a: memref<8x4xf32, #memory.space<flash>>, %b: memref<2x4xf32, #memory.space<sram>>) {
// CHECK-NEXT:    %v = memory.subview %a {offsets = array<i64: 2, 0>} : memref<8x4xf32, #memory.space<flash>> -> memref<2x4xf32, #memory.space<flash>>
// CHECK-NEXT:    memory.copy %v, %b : memref<2x4xf32, #memory.space<flash>>, memref<2x4xf32, #memory.space<sram>>
// CHECK-NEXT:    %t = memory.dma_start %v, %b : memref<2x4xf32, #memory.space<flash>>, memref<2x4xf32, #memory.space<sram>>
// CHECK-NEXT:    memory.dma_wait %t
// CHECK-NEXT:    func.return
// CHECK-NEXT:  }
func.func @move(%a: memref<8x4xf32, #memory.space<flash>>, %b: memref<2x4xf32, #memory.space<sram>>) {
  %v = memory.subview %a {offsets = array<i64: 2, 0>} : memref<8x4xf32, #memory.space<flash>> -> memref<2x4xf32, #memory.space<flash>>
  memory.copy %v, %b : memref<2x4xf32, #memory.space<flash>>, memref<2x4xf32, #memory.space<sram>>
  %t = memory.dma_start %v, %b : memref<2x4xf32, #memory.space<flash>>, memref<2x4xf32, #memory.space<sram>>
  memory.dma_wait %t
  func.return
}
