func.func @f(%x: memref<1x64xi8>, %w: memref<8x64xi8>, %m: memref<1xf32>, %z: memref<1xi32>, %y: memref<1x8xf32>) {
  memory.kernel ins(%x, %w, %m, %z : memref<1x64xi8>, memref<8x64xi8>, memref<1xf32>, memref<1xi32>) outs(%y : memref<1x8xf32>) {
  ^bb0(%a: tensor<1x64xi8>, %b: tensor<8x64xi8>, %c: tensor<1xf32>, %d: tensor<1xi32>):
    %r = quant.qlinear %a, %b, %c, %d : tensor<1x64xi8>, tensor<8x64xi8>, tensor<1xf32>, tensor<1xi32> -> tensor<1x8xf32>
    memory.yield %r : tensor<1x8xf32>
  }
  func.return
}
