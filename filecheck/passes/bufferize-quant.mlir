// RUN: irtool-opt %s -p bufferize | filecheck %s

// A decode step on quantized data (by hand, one layer): quant ops bufferize like transformer
// ops, each a memory.kernel of its own. Integer weights (i8, ui8, i32) become memory.globals of
// their element type; the int8 caches and their f32 scales are state globals like float
// caches. quant.kv_write has two results (the cache and its scales): ONE kernel writes both,
// in place into the two state globals it updates (no copy at the return).

// CHECK:       memory.global @wq.in_scale {kind = "weight", weight = "wq.in_scale"} : memref<1xf32>
// CHECK-NEXT:  memory.global @wq.in_zero_point {kind = "weight", weight = "wq.in_zero_point"} : memref<1xi32>
// CHECK-NEXT:  memory.global @wq.q8 {kind = "weight", weight = "wq.q8"} : memref<8x8xi8>
// CHECK-NEXT:  memory.global @wq.m {kind = "weight", weight = "wq.m"} : memref<8xf32>
// CHECK-NEXT:  memory.global @wk.q4 {kind = "weight", weight = "wk.q4"} : memref<4x4xui8>
// CHECK-NEXT:  memory.global @wk.scale {kind = "weight", weight = "wk.scale"} : memref<4x1xf32>
// CHECK-NEXT:  memory.global @state.kcache {kind = "state"} : memref<2x1x16x4xi8>
// CHECK-NEXT:  memory.global @state.vcache {kind = "state"} : memref<2x1x16x4xi8>
// CHECK-NEXT:  memory.global @state.kscales {kind = "state"} : memref<2x1x16xf32>
// CHECK-NEXT:  memory.global @state.vscales {kind = "state"} : memref<2x1x16xf32>
// CHECK-LABEL: func.func @decode(%tok: memref<1xi32>, %pos: index) -> memref<1x8xf32> {
// CHECK-NEXT:    %kcache = memory.get_global @state.kcache : memref<2x1x16x4xi8>
// CHECK-NEXT:    %vcache = memory.get_global @state.vcache : memref<2x1x16x4xi8>
// CHECK-NEXT:    %kscales = memory.get_global @state.kscales : memref<2x1x16xf32>
// CHECK-NEXT:    %vscales = memory.get_global @state.vscales : memref<2x1x16xf32>
// CHECK:         %xq = memory.alloc : memref<1x8xi8>
// CHECK-NEXT:    memory.kernel ins(%x, %sx, %zx : memref<1x8xf32>, memref<1xf32>, memref<1xi32>) outs(%xq : memref<1x8xi8>) {
// CHECK-NEXT:    ^bb0(%{{.*}}: tensor<1x8xf32>, %{{.*}}: tensor<1xf32>, %{{.*}}: tensor<1xi32>):
// CHECK-NEXT:      %[[XQ:.*]] = quant.quantize
// CHECK-NEXT:      memory.yield %[[XQ]] : tensor<1x8xi8>
// CHECK:         %q = memory.alloc : memref<1x8xf32>
// CHECK-NEXT:    memory.kernel ins(%xq, %wq, %m, %zx : memref<1x8xi8>, memref<8x8xi8>, memref<8xf32>, memref<1xi32>) outs(%q : memref<1x8xf32>) {
// CHECK:           quant.qlinear
// CHECK:         memory.kernel ins(%x, %wk, %sk : memref<1x8xf32>, memref<4x4xui8>, memref<4x1xf32>) outs(%k : memref<1x4xf32>) {
// CHECK:           quant.wlinear
// CHECK:         memory.kernel ins(%kcache, %kscales, %k, %pos : memref<2x1x16x4xi8>, memref<2x1x16xf32>, memref<1x4xf32>, index) outs(%kcache, %kscales : memref<2x1x16x4xi8>, memref<2x1x16xf32>) {
// CHECK-NEXT:    ^bb0(%{{.*}}: tensor<2x1x16x4xi8>, %{{.*}}: tensor<2x1x16xf32>, %{{.*}}: tensor<1x4xf32>, %{{.*}}: index):
// CHECK-NEXT:      %kcache0, %kscales0 = quant.kv_write
// CHECK-NEXT:      memory.yield %kcache0, %kscales0 : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
// CHECK-NEXT:    }
// CHECK-NEXT:    memory.kernel ins(%vcache, %vscales, %k, %pos : {{.*}}) outs(%vcache, %vscales : memref<2x1x16x4xi8>, memref<2x1x16xf32>) {
// CHECK:         %a = memory.alloc : memref<1x8xf32>
// CHECK-NEXT:    memory.kernel ins(%q, %kcache, %kscales, %vcache, %vscales, %end : memref<1x8xf32>, memref<2x1x16x4xi8>, memref<2x1x16xf32>, memref<2x1x16x4xi8>, memref<2x1x16xf32>, index) outs(%a : memref<1x8xf32>) {
// CHECK-NEXT:    ^bb0
// CHECK-NEXT:      quant.cached_attention
// CHECK-NEXT:      memory.yield %{{.*}} : tensor<1x8xf32>
// CHECK-NEXT:    }
// CHECK-NEXT:    func.return %a : memref<1x8xf32>
// CHECK-NOT:     memory.copy
// CHECK-NOT:     tensor<

builtin.module attributes {irtool.kv_capacity = 16 : i64} {
  func.func @decode(%tok: tensor<1xi32>, %pos: index, %kcache: tensor<2x1x16x4xi8>, %vcache: tensor<2x1x16x4xi8>, %kscales: tensor<2x1x16xf32>, %vscales: tensor<2x1x16xf32>) -> (tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16xf32>) {
    %E = transformer.weight "emb" : tensor<16x8xf32>
    %x = transformer.embedding %tok, %E : (tensor<1xi32>, tensor<16x8xf32>) -> tensor<1x8xf32>
    %sx = transformer.weight "wq.in_scale" : tensor<1xf32>
    %zx = transformer.weight "wq.in_zero_point" : tensor<1xi32>
    %xq = quant.quantize %x, %sx zero_point %zx : tensor<1x8xf32>, tensor<1xf32>, tensor<1xi32> -> tensor<1x8xi8>
    %wq = transformer.weight "wq.q8" : tensor<8x8xi8>
    %m = transformer.weight "wq.m" : tensor<8xf32>
    %q = quant.qlinear %xq, %wq, %m, %zx : tensor<1x8xi8>, tensor<8x8xi8>, tensor<8xf32>, tensor<1xi32> -> tensor<1x8xf32>
    %wk = transformer.weight "wk.q4" : tensor<4x4xui8>
    %sk = transformer.weight "wk.scale" : tensor<4x1xf32>
    %k = quant.wlinear %x, %wk, %sk {bits = 4 : i64, group = 8 : i64} : tensor<1x8xf32>, tensor<4x4xui8>, tensor<4x1xf32> -> tensor<1x4xf32>
    %kcache0, %kscales0 = quant.kv_write %kcache, %kscales, %k, %pos {layer = 1 : i64} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
    %vcache0, %vscales0 = quant.kv_write %vcache, %vscales, %k, %pos {layer = 1 : i64} : tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<1x4xf32> -> tensor<2x1x16x4xi8>, tensor<2x1x16xf32>
    %c1 = arith.constant 1 : index
    %end = arith.addi %pos, %c1 : index
    %a = quant.cached_attention %q, %kcache0, %kscales0, %vcache0, %vscales0, %end {layer = 1 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32> -> tensor<1x8xf32>
    func.return %a, %kcache0, %vcache0, %kscales0, %vscales0 : tensor<1x8xf32>, tensor<2x1x16x4xi8>, tensor<2x1x16x4xi8>, tensor<2x1x16xf32>, tensor<2x1x16xf32>
  }
}
