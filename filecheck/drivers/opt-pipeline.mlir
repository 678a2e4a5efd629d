// RUN: irtool-opt %s --pipeline=frontend-cleanup | filecheck %s
// RUN: not irtool-opt %s --pipeline=nope 2>&1 | filecheck %s --check-prefix=BADPIPE
// RUN: not irtool-opt %s -p no-such-pass 2>&1 | filecheck %s --check-prefix=BADPASS

// The named pipeline removes the duplicate weight and the dead silu.
// CHECK-LABEL: func.func @f
// CHECK-NEXT:    %[[W:.*]] = transformer.weight "w" : tensor<4x4xf32>
// CHECK-NEXT:    %[[Y:.*]] = transformer.linear %x, %[[W]] : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
// CHECK-NEXT:    %[[Z:.*]] = transformer.linear %[[Y]], %[[W]]
// CHECK-NOT:     transformer.silu
// BADPIPE: error: unknown pipeline 'nope' (known: {{.*}}frontend-cleanup{{.*}}host{{.*}}riscv-ulp{{.*}})
// BADPASS: error: bad pass pipeline 'no-such-pass'
// BADPASS-NOT: Traceback
func.func @f(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %w = transformer.weight "w" : tensor<4x4xf32>
  %w2 = transformer.weight "w" : tensor<4x4xf32>
  %y = transformer.linear %x, %w : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
  %z = transformer.linear %y, %w2 : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
  %dead = transformer.silu %z : tensor<?x4xf32>
  func.return %z : tensor<?x4xf32>
}
