// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// Activations are floats. An integer tensor was accepted by the element-wise ops, the norms
// and rope, and lower-to-hw then ran the f32 kernel on its integer bytes
// (hw.call @irt_silu_f32 on memref<3x8xi32>). Other float types are left to the targets.

func.func @silu_int(%h: tensor<3x8xi32>) {
  %r = transformer.silu %h : tensor<3x8xi32>
  func.return
}
// CHECK: Operation does not verify: transformer.silu: input must be a float tensor, got tensor<3x8xi32>

// -----

func.func @relu_int(%h: tensor<3x8xi8>) {
  %r = transformer.relu %h : tensor<3x8xi8>
  func.return
}
// CHECK: Operation does not verify: transformer.relu: input must be a float tensor, got tensor<3x8xi8>

// -----

func.func @add_int(%a: tensor<3x8xi32>) {
  %r = transformer.add %a, %a : tensor<3x8xi32>
  func.return
}
// CHECK: Operation does not verify: transformer.add: lhs must be a float tensor, got tensor<3x8xi32>

// -----

func.func @rms_norm_int(%x: tensor<3x8xi32>, %g: tensor<8xf32>) {
  %n = transformer.rms_norm %x, %g {eps = 1.0e-05 : f32} : (tensor<3x8xi32>, tensor<8xf32>) -> tensor<3x8xi32>
  func.return
}
// CHECK: Operation does not verify: transformer.rms_norm: input must be a float tensor, got tensor<3x8xi32>

// -----

func.func @int_silu_int(%x: tensor<3x8xi32>) {
  %e = quant.int_silu %x : tensor<3x8xi32> -> tensor<3x8xi32>
  func.return
}
// CHECK: Operation does not verify: quant.int_silu: input must be a float tensor, got tensor<3x8xi32>

// -----

// CHECK-LABEL: func.func @f16
// CHECK-NEXT:    transformer.silu %h : tensor<3x8xf16>
func.func @f16(%h: tensor<3x8xf16>) -> tensor<3x8xf16> {
  %r = transformer.silu %h : tensor<3x8xf16>
  func.return %r : tensor<3x8xf16>
}
