// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// transformer.rope and transformer.position_embedding read T consecutive rows of their
// position tables (from 0, or from `start`): a static T beyond a static table was accepted.

func.func @position_embedding_past_table(%t: tensor<20xi32>, %e: tensor<16x8xf32>) {
  %y = transformer.position_embedding %t, %e : tensor<20xi32>, tensor<16x8xf32> -> tensor<20x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.position_embedding: 20 tokens need 20 consecutive rows of the position table, which has 16

// -----

func.func @rope_past_table(%x: tensor<20x8xf32>, %c: tensor<16x2xf32>, %s: tensor<16x2xf32>) {
  %y = transformer.rope %x, %c, %s {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<20x8xf32>, tensor<16x2xf32>, tensor<16x2xf32> -> tensor<20x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: 20 tokens need 20 consecutive rows of the position table, which has 16

// -----

func.func @rope_start_past_table(%x: tensor<20x8xf32>, %c: tensor<16x2xf32>, %s: tensor<16x2xf32>, %p: index) {
  %y = transformer.rope %x, %c, %s start %p {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<20x8xf32>, tensor<16x2xf32>, tensor<16x2xf32> -> tensor<20x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: 20 tokens need 20 consecutive rows of the position table, which has 16

// -----

// A table that holds the tokens is accepted; with a `?` token count (or a `start` known only
// at run time) the bound is the run's to check.
func.func @fits(%x: tensor<16x8xf32>, %y: tensor<?x8xf32>, %c: tensor<16x2xf32>, %s: tensor<16x2xf32>, %p: index) -> (tensor<16x8xf32>, tensor<?x8xf32>) {
  %a = transformer.rope %x, %c, %s {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<16x8xf32>, tensor<16x2xf32>, tensor<16x2xf32> -> tensor<16x8xf32>
  %b = transformer.rope %y, %c, %s start %p {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<16x2xf32>, tensor<16x2xf32> -> tensor<?x8xf32>
  func.return %a, %b : tensor<16x8xf32>, tensor<?x8xf32>
}
// CHECK-LABEL: func.func @fits
// CHECK-COUNT-2: transformer.rope
