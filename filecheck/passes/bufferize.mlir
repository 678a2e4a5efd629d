// RUN: irtool-opt %s -p bufferize --split-input-file | filecheck %s

// A whole-sequence forward with a fixed prompt length. Weights become module-level globals
// (one per name, `/` sanitised out of the symbol), every computation a kernel. The silu, the
// residual add and the final norm overwrite an input that dies with them; the first norm
// cannot (%x is still needed by the add), nor can linear or embedding (not elementwise).

// CHECK:       builtin.module attributes {irtool.vocab_size = 16 : i64} {
// CHECK-NEXT:    memory.global @tok_embeddings {kind = "weight", weight = "tok_embeddings"} : memref<16x8xf32>
// CHECK-NEXT:    memory.global @layers.0_norm {kind = "weight", weight = "layers.0/norm"} : memref<8xf32>
// CHECK-NEXT:    memory.global @w1 {kind = "weight", weight = "w1"} : memref<8x8xf32>
// CHECK-LABEL:   func.func @forward(%tok: memref<3xi32>) -> memref<3x16xf32> {
// CHECK-NEXT:      %E = memory.get_global @tok_embeddings : memref<16x8xf32>
// CHECK-NEXT:      %g = memory.get_global @layers.0_norm : memref<8xf32>
// CHECK-NEXT:      %w1 = memory.get_global @w1 : memref<8x8xf32>
// CHECK-NEXT:      %x = memory.alloc : memref<3x8xf32>
// CHECK-NEXT:      memory.kernel ins(%tok, %E : memref<3xi32>, memref<16x8xf32>) outs(%x : memref<3x8xf32>) {
// CHECK-NEXT:      ^bb0(%[[T:.*]]: tensor<3xi32>, %[[E:.*]]: tensor<16x8xf32>):
// CHECK-NEXT:        %[[X:.*]] = transformer.embedding %[[T]], %[[E]] : (tensor<3xi32>, tensor<16x8xf32>) -> tensor<3x8xf32>
// CHECK-NEXT:        memory.yield %[[X]] : tensor<3x8xf32>
// CHECK-NEXT:      }
// CHECK-NEXT:      %n = memory.alloc : memref<3x8xf32>
// CHECK-NEXT:      memory.kernel ins(%x, %g : memref<3x8xf32>, memref<8xf32>) outs(%n : memref<3x8xf32>) {
// CHECK:             transformer.rms_norm
// CHECK:           %h = memory.alloc : memref<3x8xf32>
// CHECK-NEXT:      memory.kernel ins(%n, %w1 : memref<3x8xf32>, memref<8x8xf32>) outs(%h : memref<3x8xf32>) {
// CHECK:             transformer.linear
// CHECK:           memory.kernel ins(%h : memref<3x8xf32>) outs(%h : memref<3x8xf32>) {
// CHECK-NEXT:      ^bb0(%[[H:.*]]: tensor<3x8xf32>):
// CHECK-NEXT:        %s = transformer.silu %[[H]] : tensor<3x8xf32>
// CHECK-NEXT:        memory.yield %s : tensor<3x8xf32>
// CHECK-NEXT:      }
// CHECK-NEXT:      memory.kernel ins(%x, %h : memref<3x8xf32>, memref<3x8xf32>) outs(%x : memref<3x8xf32>) {
// CHECK:             transformer.add
// CHECK:           memory.kernel ins(%x, %g : memref<3x8xf32>, memref<8xf32>) outs(%x : memref<3x8xf32>) {
// CHECK:             transformer.rms_norm
// CHECK:           %l = memory.alloc : memref<3x16xf32>
// CHECK-NEXT:      memory.kernel ins(%x, %E : memref<3x8xf32>, memref<16x8xf32>) outs(%l : memref<3x16xf32>) {
// CHECK:           func.return %l : memref<3x16xf32>
// CHECK-NOT:     tensor<
// CHECK:         }

builtin.module attributes {irtool.vocab_size = 16 : i64} {
  func.func @forward(%tok: tensor<3xi32>) -> tensor<3x16xf32> {
    %E = transformer.weight "tok_embeddings" : tensor<16x8xf32>
    %g = transformer.weight "layers.0/norm" : tensor<8xf32>
    %w1 = transformer.weight "w1" : tensor<8x8xf32>
    %x = transformer.embedding %tok, %E : (tensor<3xi32>, tensor<16x8xf32>) -> tensor<3x8xf32>
    %n = transformer.rms_norm %x, %g {eps = 1.0e-05 : f32} : (tensor<3x8xf32>, tensor<8xf32>) -> tensor<3x8xf32>
    %h = transformer.linear %n, %w1 : tensor<3x8xf32>, tensor<8x8xf32> -> tensor<3x8xf32>
    %s = transformer.silu %h : tensor<3x8xf32>
    %y = transformer.add %x, %s : tensor<3x8xf32>
    %z = transformer.rms_norm %y, %g {eps = 1.0e-05 : f32} : (tensor<3x8xf32>, tensor<8xf32>) -> tensor<3x8xf32>
    %l = transformer.linear %z, %E : tensor<3x8xf32>, tensor<16x8xf32> -> tensor<3x16xf32>
    func.return %l : tensor<3x16xf32>
  }
}

// -----

// Two step functions sharing their state (as @prefill and @decode share the KV caches): one
// state global per position, the functions lose those arguments and results. @decode updates
// the state in place (its old value dies with the add); @peek still reads the old state after
// the update, so it computes the new value aside (over %x, which dies with the add) and copies
// it into the global before returning. The weight used by both functions is one global.

// CHECK:       builtin.module {
// CHECK-NEXT:    memory.global @emb {kind = "weight", weight = "emb"} : memref<6x4xf32>
// CHECK-NEXT:    memory.global @state.S {kind = "state"} : memref<1x4xf32>
// CHECK-NOT:     memory.global
// CHECK-LABEL:   func.func @decode(%tok: memref<1xi32>, %pos: index) -> memref<1x6xf32> {
// CHECK-NEXT:      %S = memory.get_global @state.S : memref<1x4xf32>
// CHECK-NEXT:      %emb = memory.get_global @emb : memref<6x4xf32>
// CHECK-NEXT:      %x = memory.alloc : memref<1x4xf32>
// CHECK:           memory.kernel ins(%S, %x : memref<1x4xf32>, memref<1x4xf32>) outs(%S : memref<1x4xf32>) {
// CHECK:             transformer.add
// CHECK:           memory.kernel ins(%S, %emb : memref<1x4xf32>, memref<6x4xf32>) outs(%l : memref<1x6xf32>) {
// CHECK:           func.return %l : memref<1x6xf32>
// CHECK-LABEL:   func.func @peek(%tok: memref<1xi32>) -> memref<1x6xf32> {
// CHECK-NEXT:      %S = memory.get_global @state.S : memref<1x4xf32>
// CHECK:           memory.kernel ins(%S, %x : memref<1x4xf32>, memref<1x4xf32>) outs(%x : memref<1x4xf32>) {
// CHECK:             %S2 = transformer.add
// CHECK:           %d = memory.alloc : memref<1x4xf32>
// CHECK-NEXT:      memory.kernel ins(%S, %x : memref<1x4xf32>, memref<1x4xf32>) outs(%d : memref<1x4xf32>) {
// CHECK:             transformer.mul
// CHECK:           memory.copy %x, %S : memref<1x4xf32>, memref<1x4xf32>
// CHECK-NEXT:      func.return %l : memref<1x6xf32>

func.func @decode(%tok: tensor<1xi32>, %pos: index, %S: tensor<1x4xf32>) -> (tensor<1x6xf32>, tensor<1x4xf32>) {
  %emb = transformer.weight "emb" : tensor<6x4xf32>
  %x = transformer.embedding %tok, %emb : (tensor<1xi32>, tensor<6x4xf32>) -> tensor<1x4xf32>
  %S2 = transformer.add %S, %x : tensor<1x4xf32>
  %l = transformer.linear %S2, %emb : tensor<1x4xf32>, tensor<6x4xf32> -> tensor<1x6xf32>
  func.return %l, %S2 : tensor<1x6xf32>, tensor<1x4xf32>
}
func.func @peek(%tok: tensor<1xi32>, %S: tensor<1x4xf32>) -> (tensor<1x6xf32>, tensor<1x4xf32>) {
  %emb = transformer.weight "emb" : tensor<6x4xf32>
  %x = transformer.embedding %tok, %emb : (tensor<1xi32>, tensor<6x4xf32>) -> tensor<1x4xf32>
  %S2 = transformer.add %S, %x : tensor<1x4xf32>
  %d = transformer.mul %S, %S2 : tensor<1x4xf32>
  %l = transformer.linear %d, %emb : tensor<1x4xf32>, tensor<6x4xf32> -> tensor<1x6xf32>
  func.return %l, %S2 : tensor<1x6xf32>, tensor<1x4xf32>
}
