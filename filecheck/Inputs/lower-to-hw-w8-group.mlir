func.func @f(%x: memref<1x64xf32>, %w: memref<8x64xi8>, %s: memref<8x2xf32>, %y: memref<1x8xf32>) {
  memory.kernel ins(%x, %w, %s : memref<1x64xf32>, memref<8x64xi8>, memref<8x2xf32>) outs(%y : memref<1x8xf32>) {
  ^bb0(%a: tensor<1x64xf32>, %b: tensor<8x64xi8>, %c: tensor<8x2xf32>):
    %r = quant.wlinear %a, %b, %c {bits = 8 : i64, group = 32 : i64} : tensor<1x64xf32>, tensor<8x64xi8>, tensor<8x2xf32> -> tensor<1x8xf32>
    memory.yield %r : tensor<1x8xf32>
  }
  func.return
}
