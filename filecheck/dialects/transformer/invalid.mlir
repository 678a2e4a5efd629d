// RUN: irtool-opt %s --verify-diagnostics --split-input-file | filecheck %s

// One invalid use per case; each CHECK pins the verifier's message on the failing op.
// Custom syntax cannot express some mismatches (ops whose operands and result share one
// type); those cases are written in the generic form.

// --- transformer.weight ---

func.func @weight_empty_name() {
  %w = transformer.weight "" : tensor<4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.weight: the weight name is empty

// -----

func.func @weight_dynamic_shape() {
  %w = transformer.weight "wq" : tensor<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.weight "wq": weights must have a static shape

// -----

func.func @weight_not_a_tensor() {
  %w = transformer.weight "w" : memref<4xf32>
  func.return
}
// A non-tensor type is rejected while the custom syntax is parsed, before any op exists.
// CHECK: {{^}}memref<4xf32> should be of base attribute tensor

// -----

// --- transformer.embedding ---

func.func @embedding_float_ids(%t: tensor<?xf32>) {
  %e = transformer.weight "emb" : tensor<16x8xf32>
  %x = transformer.embedding %t, %e : (tensor<?xf32>, tensor<16x8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.embedding: token ids must be integers, got f32

// -----

func.func @embedding_ids_rank(%t: tensor<1x?xi32>) {
  %e = transformer.weight "emb" : tensor<16x8xf32>
  %x = transformer.embedding %t, %e : (tensor<1x?xi32>, tensor<16x8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.embedding: tokens must have rank 1, got 1x?

// -----

func.func @embedding_table_rank(%t: tensor<?xi32>) {
  %e = transformer.weight "emb" : tensor<128xf32>
  %x = transformer.embedding %t, %e : (tensor<?xi32>, tensor<128xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.embedding: table must have rank 2, got 128

// -----

func.func @embedding_result_width(%t: tensor<?xi32>) {
  %e = transformer.weight "emb" : tensor<16x8xf32>
  %x = transformer.embedding %t, %e : (tensor<?xi32>, tensor<16x8xf32>) -> tensor<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.embedding: result is ?x4, expected ?x8

// -----

func.func @embedding_result_tokens(%t: tensor<3xi32>) {
  %e = transformer.weight "emb" : tensor<16x8xf32>
  %x = transformer.embedding %t, %e : (tensor<3xi32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.embedding: result is 4x8, expected 3x8

// -----

// --- transformer.position_embedding ---

func.func @position_embedding_width(%t: tensor<?xi32>) {
  %p = transformer.weight "wpe" : tensor<32x8xf32>
  %x = transformer.position_embedding %t, %p : tensor<?xi32>, tensor<32x8xf32> -> tensor<?x16xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.position_embedding: result is ?x16, expected ?x8

// -----

func.func @position_embedding_tokens_rank(%t: tensor<?x8xi32>, %pos: index) {
  %p = transformer.weight "wpe" : tensor<32x8xf32>
  %x = transformer.position_embedding %t, %p start %pos : tensor<?x8xi32>, tensor<32x8xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.position_embedding: tokens must have rank 1, got ?x8

// -----

func.func @position_embedding_start_type(%t: tensor<?xi32>, %pos: i64) {
  %p = transformer.weight "wpe" : tensor<32x8xf32>
  %x = "transformer.position_embedding"(%t, %p, %pos) : (tensor<?xi32>, tensor<32x8xf32>, i64) -> tensor<?x8xf32>
  func.return
}
// CHECK:      Operation does not verify: operand 'start' at position 2 does not verify:
// CHECK-NEXT: i64 should be of base attribute index

// -----

// --- transformer.linear ---

func.func @linear_features(%x: tensor<?x8xf32>) {
  %w = transformer.weight "w" : tensor<4x6xf32>
  %y = transformer.linear %x, %w : tensor<?x8xf32>, tensor<4x6xf32> -> tensor<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.linear: input has 8 features but the weight [4, 6] expects 6

// -----

func.func @linear_bias_size(%x: tensor<?x8xf32>) {
  %w = transformer.weight "w" : tensor<4x8xf32>
  %b = transformer.weight "b" : tensor<8xf32>
  %y = transformer.linear %x, %w bias %b : tensor<?x8xf32>, tensor<4x8xf32>, tensor<8xf32> -> tensor<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.linear: bias is 8, expected 4

// -----

func.func @linear_acc_type(%x: tensor<1x8xf32>, %acc: tensor<1x3xf32>) {
  %w = transformer.weight "w" : tensor<4x8xf32>
  %y = transformer.linear %x, %w acc %acc : tensor<1x8xf32>, tensor<4x8xf32> acc tensor<1x3xf32> -> tensor<1x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.linear: the accumulator tensor<1x3xf32> differs from the result tensor<1x4xf32>

// -----

func.func @linear_result(%x: tensor<?x8xf32>) {
  %w = transformer.weight "w" : tensor<4x8xf32>
  %y = transformer.linear %x, %w : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.linear: result is ?x8, expected ?x4

// -----

func.func @linear_weight_rank(%x: tensor<?x8xf32>) {
  %w = transformer.weight "w" : tensor<2x4x8xf32>
  %y = transformer.linear %x, %w : tensor<?x8xf32>, tensor<2x4x8xf32> -> tensor<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.linear: weight must have rank 2, got 2x4x8

// -----

// --- transformer.matmul ---

func.func @matmul_contraction(%a: tensor<?x8xf32>, %b: tensor<4x8xf32>) {
  %y = transformer.matmul %a, %b : (tensor<?x8xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.matmul: contraction sizes differ: lhs has 8, rhs has 4

// -----

func.func @matmul_transposed_contraction(%a: tensor<?x8xf32>, %b: tensor<8x4xf32>) {
  %y = transformer.matmul %a, %b {transpose_b = true} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.matmul: contraction sizes differ: lhs has 8, rhs has 4

// -----

func.func @matmul_result(%a: tensor<?x8xf32>, %b: tensor<4x8xf32>) {
  %y = transformer.matmul %a, %b {transpose_b = true} : (tensor<?x8xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.matmul: result is ?x8, expected ?x4

// -----

// --- transformer.add / transformer.mul ---

func.func @add_shapes(%a: tensor<?x8xf32>, %b: tensor<?x4xf32>) {
  %y = "transformer.add"(%a, %b) : (tensor<?x8xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK:      Operation does not verify: operand 'rhs' at position 1 does not verify:
// CHECK-NEXT: attribute tensor<?x8xf32> expected from variable 'T', but got tensor<?x4xf32>

// -----

func.func @mul_result(%a: tensor<?x8xf32>, %b: tensor<?x8xf32>) {
  %y = "transformer.mul"(%a, %b) : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf16>
  func.return
}
// CHECK:      Operation does not verify: result 'result' at position 0 does not verify:
// CHECK-NEXT: attribute tensor<?x8xf32> expected from variable 'T', but got tensor<?x8xf16>

// -----

func.func @add_not_tensors(%a: f32) {
  %y = transformer.add %a, %a : f32
  func.return
}
// CHECK: {{^}}f32 should be of base attribute tensor

// -----

// --- transformer.rms_norm ---

func.func @rms_norm_gamma(%x: tensor<?x8xf32>, %g: tensor<4xf32>) {
  %y = transformer.rms_norm %x, %g {eps = 1.0e-05 : f32} : (tensor<?x8xf32>, tensor<4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rms_norm: gamma is 4, expected 8

// -----

func.func @rms_norm_eps(%x: tensor<?x8xf32>, %g: tensor<8xf32>) {
  %y = transformer.rms_norm %x, %g {eps = -1.0 : f32} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rms_norm: eps must be >= 0, got -1.0

// -----

func.func @rms_norm_result(%x: tensor<?x8xf32>, %g: tensor<8xf32>) {
  %y = transformer.rms_norm %x, %g {eps = 1.0e-05 : f32} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rms_norm: result is ?x4, expected ?x8

// -----

func.func @rms_norm_missing_eps(%x: tensor<?x8xf32>, %g: tensor<8xf32>) {
  %y = transformer.rms_norm %x, %g : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: property 'eps' expected in operation 'transformer.rms_norm'

// -----

// --- transformer.layer_norm ---

func.func @layer_norm_beta(%x: tensor<?x8xf32>, %g: tensor<8xf32>, %b: tensor<4xf32>) {
  %y = transformer.layer_norm %x, %g, %b {eps = 1.0e-05 : f32} : (tensor<?x8xf32>, tensor<8xf32>, tensor<4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.layer_norm: beta is 4, expected 8

// -----

func.func @layer_norm_gamma(%x: tensor<?x8xf32>, %g: tensor<1x8xf32>, %b: tensor<8xf32>) {
  %y = transformer.layer_norm %x, %g, %b {eps = 1.0e-05 : f32} : (tensor<?x8xf32>, tensor<1x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.layer_norm: gamma is 1x8, expected 8

// -----

func.func @layer_norm_eps(%x: tensor<?x8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>) {
  %y = transformer.layer_norm %x, %g, %b {eps = -5.0e-01 : f32} : (tensor<?x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.layer_norm: eps must be >= 0, got -0.5

// -----

func.func @layer_norm_input_rank(%x: tensor<8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>) {
  %y = transformer.layer_norm %x, %g, %b {eps = 1.0e-05 : f32} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.layer_norm: input must have rank 2, got 8

// -----

// --- transformer.rope ---

func.func @rope_rotary_dim_odd(%x: tensor<?x8xf32>, %c: tensor<32x1xf32>) {
  %y = transformer.rope %x, %c, %c {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 3 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x1xf32>, tensor<32x1xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: rotary_dim 3 must be even and in (0, head_dim = 4]

// -----

func.func @rope_rotary_dim_too_big(%x: tensor<?x8xf32>, %c: tensor<32x3xf32>) {
  %y = transformer.rope %x, %c, %c {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 6 : i64, style = "rotate_half"} : tensor<?x8xf32>, tensor<32x3xf32>, tensor<32x3xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: rotary_dim 6 must be even and in (0, head_dim = 4]

// -----

func.func @rope_rotary_dim_zero(%x: tensor<?x8xf32>, %c: tensor<32x0xf32>) {
  %y = transformer.rope %x, %c, %c {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 0 : i64, style = "rotate_half"} : tensor<?x8xf32>, tensor<32x0xf32>, tensor<32x0xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: rotary_dim 0 must be even and in (0, head_dim = 4]

// -----

func.func @rope_style(%x: tensor<?x8xf32>, %c: tensor<32x2xf32>) {
  %y = transformer.rope %x, %c, %c {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "neox"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: unknown style "neox" (expected one of interleaved, rotate_half)

// -----

func.func @rope_table_width(%x: tensor<?x8xf32>, %c: tensor<32x2xf32>, %s: tensor<32x1xf32>) {
  %y = transformer.rope %x, %c, %s {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 2 : i64, style = "rotate_half"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x1xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: cos table has 2 columns, expected rotary_dim / 2 = 1

// -----

func.func @rope_sin_width(%x: tensor<?x8xf32>, %c: tensor<32x2xf32>, %s: tensor<32x4xf32>) {
  %y = transformer.rope %x, %c, %s {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x4xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: sin table has 4 columns, expected rotary_dim / 2 = 2

// -----

func.func @rope_table_rows(%x: tensor<?x8xf32>, %c: tensor<32x2xf32>, %s: tensor<16x2xf32>, %pos: index) {
  %y = transformer.rope %x, %c, %s start %pos {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<16x2xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: sin is 16x2, expected 32x2

// -----

func.func @rope_features(%x: tensor<?x8xf32>, %c: tensor<32x2xf32>) {
  %y = transformer.rope %x, %c, %c {heads = 3 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: input has 8 features, expected heads * head_dim = 3 * 4 = 12

// -----

func.func @rope_heads(%x: tensor<?x8xf32>, %c: tensor<32x2xf32>) {
  %y = transformer.rope %x, %c, %c {heads = 0 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: heads and head_dim must be positive

// -----

func.func @rope_result(%x: tensor<?x8xf32>, %c: tensor<32x2xf32>) {
  %y = transformer.rope %x, %c, %c {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<3x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.rope: result is 3x4, expected ?x8

// -----

func.func @rope_start_type(%x: tensor<?x8xf32>, %c: tensor<32x2xf32>, %pos: i32) {
  %y = "transformer.rope"(%x, %c, %c, %pos) <{heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"}> : (tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x2xf32>, i32) -> tensor<?x8xf32>
  func.return
}
// CHECK:      Operation does not verify: operand 'start' at position 3 does not verify:
// CHECK-NEXT: i32 should be of base attribute index

// -----

// --- transformer.attention ---

func.func @attention_kv_heads(%q: tensor<?x12xf32>, %k: tensor<?x8xf32>) {
  %y = transformer.attention %q, %k, %k {heads = 3 : i64, kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x12xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x12xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.attention: heads (3) must be a multiple of kv_heads (2)

// -----

func.func @attention_query_features(%q: tensor<?x8xf32>, %k: tensor<?x4xf32>) {
  %y = transformer.attention %q, %k, %k {heads = 4 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.attention: query has 8 features, expected heads * head_dim = 16

// -----

func.func @attention_key_features(%q: tensor<?x8xf32>, %k: tensor<?x8xf32>) {
  %y = transformer.attention %q, %k, %k {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.attention: key has 8 features, expected kv_heads * head_dim = 4

// -----

func.func @attention_value(%q: tensor<?x8xf32>, %k: tensor<5x4xf32>, %v: tensor<6x4xf32>) {
  %y = transformer.attention %q, %k, %v {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x8xf32>, tensor<5x4xf32>, tensor<6x4xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.attention: value is 6x4, expected 5x4

// -----

func.func @attention_positive(%q: tensor<?x8xf32>) {
  %y = transformer.attention %q, %q, %q {heads = 2 : i64, kv_heads = 0 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.attention: heads, kv_heads and head_dim must be positive

// -----

func.func @attention_result(%q: tensor<?x8xf32>) {
  %y = transformer.attention %q, %q, %q {heads = 2 : i64, kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x4xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.attention: result is ?x4, expected ?x8

// -----

func.func @attention_missing_scale(%q: tensor<?x8xf32>) {
  %y = transformer.attention %q, %q, %q {heads = 2 : i64, kv_heads = 2 : i64, head_dim = 4 : i64} : (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: property 'scale' expected in operation 'transformer.attention'

// -----

// --- transformer.softmax / transformer.gelu / transformer.silu ---

func.func @softmax_result(%x: tensor<?x8xf32>) {
  %y = "transformer.softmax"(%x) : (tensor<?x8xf32>) -> tensor<?x4xf32>
  func.return
}
// CHECK:      Operation does not verify: result 'result' at position 0 does not verify:
// CHECK-NEXT: attribute tensor<?x8xf32> expected from variable 'T', but got tensor<?x4xf32>

// -----

func.func @gelu_approximate(%x: tensor<?x8xf32>) {
  %y = transformer.gelu %x {approximate = "erf"} : tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: transformer.gelu: approximate must be one of none, tanh, got "erf"

// -----

func.func @gelu_missing_approximate(%x: tensor<?x8xf32>) {
  %y = transformer.gelu %x : tensor<?x8xf32>
  func.return
}
// CHECK: Operation does not verify: property 'approximate' expected in operation 'transformer.gelu'

// -----

func.func @gelu_result(%x: tensor<?x8xf32>) {
  %y = "transformer.gelu"(%x) <{approximate = "tanh"}> : (tensor<?x8xf32>) -> tensor<3x8xf32>
  func.return
}
// CHECK:      Operation does not verify: result 'result' at position 0 does not verify:
// CHECK-NEXT: attribute tensor<?x8xf32> expected from variable 'T', but got tensor<3x8xf32>

// -----

func.func @silu_result(%x: tensor<?x8xf32>) {
  %y = "transformer.silu"(%x) : (tensor<?x8xf32>) -> tensor<?x8xf64>
  func.return
}
// CHECK:      Operation does not verify: result 'result' at position 0 does not verify:
// CHECK-NEXT: attribute tensor<?x8xf32> expected from variable 'T', but got tensor<?x8xf64>

// -----

func.func @silu_not_tensor(%x: f32) {
  %y = transformer.silu %x : f32
  func.return
}
// CHECK: {{^}}f32 should be of base attribute tensor

// -----

func.func @relu_result(%x: tensor<?x8xf32>) {
  %y = "transformer.relu"(%x) : (tensor<?x8xf32>) -> tensor<?x4xf32>
  func.return
}
// CHECK:      Operation does not verify: result 'result' at position 0 does not verify:
// CHECK-NEXT: attribute tensor<?x8xf32> expected from variable 'T', but got tensor<?x4xf32>
