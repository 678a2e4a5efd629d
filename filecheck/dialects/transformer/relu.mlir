// RUN: IRTOOL_ROUNDTRIP
// RUN: IRTOOL_GENERIC_ROUNDTRIP
// RUN: irtool-opt %s -p 'bufferize,lower-to-hw' | filecheck %s --check-prefix=HW
// RUN: irtool-opt %s -p 'bufferize,lower-to-hw{target=riscv-ulp}' | filecheck %s --check-prefix=HW

// transformer.relu (OPT's MLP activation): its custom syntax, and lowered to the portable
// kernel irt_relu_f32 on the host and on riscv-ulp (the argument stays live: a fresh output).

// CHECK-LABEL: func.func @forward(%h: tensor<3x8xf32>) -> tensor<3x8xf32> {
// CHECK-NEXT:    %r = transformer.relu %h : tensor<3x8xf32>
// CHECK-NEXT:    func.return %r : tensor<3x8xf32>
// CHECK-NEXT:  }

// HW:       func.func @forward(%h: memref<3x8xf32{{.*}}>) -> memref<3x8xf32{{.*}}> {
// HW-NEXT:    %r = memory.alloc : memref<3x8xf32>
// HW-NEXT:    hw.call @irt_relu_f32(%h, %r) params {n = 24 : i64}
// HW-NOT:     transformer.relu

builtin.module {
  func.func @forward(%h: tensor<3x8xf32>) -> tensor<3x8xf32> {
    %r = transformer.relu %h : tensor<3x8xf32>
    func.return %r : tensor<3x8xf32>
  }
}
