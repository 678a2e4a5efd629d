// RUN: IRTOOL_ROUNDTRIP
// RUN: IRTOOL_GENERIC_ROUNDTRIP

// Every op of the transformer dialect in its custom syntax, with and without its optional
// operands and properties. Both RUN lines must print the same custom form: the second one goes
// through the generic form first.

// Weights and the two embeddings; `?` token counts, a static one, and the optional `start`.

// CHECK-LABEL: func.func @embeddings(%tok: tensor<?xi32>, %tok3: tensor<3xi64>, %pos: index) -> tensor<?x8xf32> {
// CHECK-NEXT:    %emb = transformer.weight "tok_emb" : tensor<16x8xf32>
// CHECK-NEXT:    %pemb = transformer.weight "pos.emb/0" : tensor<32x8xf32>
// CHECK-NEXT:    %scalar = transformer.weight "scalar" : tensor<f32>
// CHECK-NEXT:    %e = transformer.embedding %tok, %emb : (tensor<?xi32>, tensor<16x8xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %e3 = transformer.embedding %tok3, %emb : (tensor<3xi64>, tensor<16x8xf32>) -> tensor<3x8xf32>
// CHECK-NEXT:    %p0 = transformer.position_embedding %tok, %pemb : tensor<?xi32>, tensor<32x8xf32> -> tensor<?x8xf32>
// CHECK-NEXT:    %p1 = transformer.position_embedding %tok, %pemb start %pos : tensor<?xi32>, tensor<32x8xf32> -> tensor<?x8xf32>
// CHECK-NEXT:    %p3 = transformer.position_embedding %tok3, %pemb start %pos : tensor<3xi64>, tensor<32x8xf32> -> tensor<3x8xf32>
// CHECK-NEXT:    func.return %p1 : tensor<?x8xf32>
// CHECK-NEXT:  }
func.func @embeddings(%tok: tensor<?xi32>, %tok3: tensor<3xi64>, %pos: index) -> tensor<?x8xf32> {
  %emb = transformer.weight "tok_emb" : tensor<16x8xf32>
  %pemb = transformer.weight "pos.emb/0" : tensor<32x8xf32>
  %scalar = transformer.weight "scalar" : tensor<f32>
  %e = transformer.embedding %tok, %emb : (tensor<?xi32>, tensor<16x8xf32>) -> tensor<?x8xf32>
  %e3 = transformer.embedding %tok3, %emb : (tensor<3xi64>, tensor<16x8xf32>) -> tensor<3x8xf32>
  %p0 = transformer.position_embedding %tok, %pemb : tensor<?xi32>, tensor<32x8xf32> -> tensor<?x8xf32>
  %p1 = transformer.position_embedding %tok, %pemb start %pos : tensor<?xi32>, tensor<32x8xf32> -> tensor<?x8xf32>
  %p3 = transformer.position_embedding %tok3, %pemb start %pos : tensor<3xi64>, tensor<32x8xf32> -> tensor<3x8xf32>
  func.return %p1 : tensor<?x8xf32>
}

// -----

// linear with and without bias and with an accumulator (y = acc + x w^T (+ b): a piece of
// rows cut along K by the tile pass), matmul plain and with transpose_b, add, mul.

// CHECK-LABEL: func.func @products(%x: tensor<?x8xf32>, %y: tensor<?x8xf32>) -> tensor<?x?xf32> {
// CHECK-NEXT:    %w = transformer.weight "w" : tensor<4x8xf32>
// CHECK-NEXT:    %b = transformer.weight "b" : tensor<4xf32>
// CHECK-NEXT:    %l0 = transformer.linear %x, %w : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
// CHECK-NEXT:    %l1 = transformer.linear %x, %w bias %b : tensor<?x8xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<?x4xf32>
// CHECK-NEXT:    %l2 = transformer.linear %x, %w acc %l1 : tensor<?x8xf32>, tensor<4x8xf32> acc tensor<?x4xf32> -> tensor<?x4xf32>
// CHECK-NEXT:    %l3 = transformer.linear %x, %w bias %b acc %l2 : tensor<?x8xf32>, tensor<4x8xf32>, tensor<4xf32> acc tensor<?x4xf32> -> tensor<?x4xf32>
// CHECK-NEXT:    %m0 = transformer.matmul %l0, %w : (tensor<?x4xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %m1 = transformer.matmul %x, %y {transpose_b = true} : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x?xf32>
// CHECK-NEXT:    %a = transformer.add %l0, %l1 : tensor<?x4xf32>
// CHECK-NEXT:    %mu = transformer.mul %a, %l1 : tensor<?x4xf32>
// CHECK-NEXT:    func.return %m1 : tensor<?x?xf32>
// CHECK-NEXT:  }
func.func @products(%x: tensor<?x8xf32>, %y: tensor<?x8xf32>) -> tensor<?x?xf32> {
  %w = transformer.weight "w" : tensor<4x8xf32>
  %b = transformer.weight "b" : tensor<4xf32>
  %l0 = transformer.linear %x, %w : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  %l1 = transformer.linear %x, %w bias %b : tensor<?x8xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<?x4xf32>
  %l2 = transformer.linear %x, %w acc %l1 : tensor<?x8xf32>, tensor<4x8xf32> acc tensor<?x4xf32> -> tensor<?x4xf32>
  %l3 = transformer.linear %x, %w bias %b acc %l2 : tensor<?x8xf32>, tensor<4x8xf32>, tensor<4xf32> acc tensor<?x4xf32> -> tensor<?x4xf32>
  %m0 = transformer.matmul %l0, %w : (tensor<?x4xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  %m1 = transformer.matmul %x, %y {transpose_b = true} : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x?xf32>
  %a = transformer.add %l0, %l1 : tensor<?x4xf32>
  %mu = transformer.mul %a, %l1 : tensor<?x4xf32>
  func.return %m1 : tensor<?x?xf32>
}

// -----

// The two norms; eps is printed in full precision.

// CHECK-LABEL: func.func @norms(%x: tensor<?x8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<?x8xf32> {
// CHECK-NEXT:    %r = transformer.rms_norm %x, %g {eps = 1.000000e-05 : f32} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %l = transformer.layer_norm %r, %g, %b {eps = 0.000000e+00 : f32} : (tensor<?x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    func.return %l : tensor<?x8xf32>
// CHECK-NEXT:  }
func.func @norms(%x: tensor<?x8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<?x8xf32> {
  %r = transformer.rms_norm %x, %g {eps = 1.0e-05 : f32} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %l = transformer.layer_norm %r, %g, %b {eps = 0.0 : f32} : (tensor<?x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  func.return %l : tensor<?x8xf32>
}

// -----

// rope in both styles (full and partial rotary_dim, with and without `start`) and attention
// (causal multi-head, non-causal grouped-query over a longer key sequence).

// CHECK-LABEL: func.func @attention(%q: tensor<?x8xf32>, %k: tensor<?x4xf32>, %kv: tensor<5x4xf32>, %pos: index) -> tensor<?x8xf32> {
// CHECK-NEXT:    %cos = transformer.weight "rope.cos" : tensor<32x2xf32>
// CHECK-NEXT:    %sin = transformer.weight "rope.sin" : tensor<32x2xf32>
// CHECK-NEXT:    %cos1 = transformer.weight "rope.cos.partial" : tensor<32x1xf32>
// CHECK-NEXT:    %sin1 = transformer.weight "rope.sin.partial" : tensor<32x1xf32>
// CHECK-NEXT:    %q0 = transformer.rope %q, %cos, %sin {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x8xf32>
// CHECK-NEXT:    %q1 = transformer.rope %q, %cos1, %sin1 start %pos {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 2 : i64, style = "rotate_half"} : tensor<?x8xf32>, tensor<32x1xf32>, tensor<32x1xf32> -> tensor<?x8xf32>
// CHECK-NEXT:    %k0 = transformer.rope %k, %cos, %sin start %pos {heads = 1 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x4xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x4xf32>
// CHECK-NEXT:    %k1 = transformer.rope %k, %cos1, %sin1 {heads = 1 : i64, head_dim = 4 : i64, rotary_dim = 2 : i64, style = "rotate_half"} : tensor<?x4xf32>, tensor<32x1xf32>, tensor<32x1xf32> -> tensor<?x4xf32>
// CHECK-NEXT:    %a0 = transformer.attention %q0, %q1, %q1 {heads = 2 : i64, kv_heads = 2 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32, causal = true} : (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %a1 = transformer.attention %a0, %k0, %k1 {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 2.500000e-01 : f32} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %a2 = transformer.attention %a1, %kv, %kv {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f32, causal = true} : (tensor<?x8xf32>, tensor<5x4xf32>, tensor<5x4xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    func.return %a2 : tensor<?x8xf32>
// CHECK-NEXT:  }
func.func @attention(%q: tensor<?x8xf32>, %k: tensor<?x4xf32>, %kv: tensor<5x4xf32>, %pos: index) -> tensor<?x8xf32> {
  %cos = transformer.weight "rope.cos" : tensor<32x2xf32>
  %sin = transformer.weight "rope.sin" : tensor<32x2xf32>
  %cos1 = transformer.weight "rope.cos.partial" : tensor<32x1xf32>
  %sin1 = transformer.weight "rope.sin.partial" : tensor<32x1xf32>
  %q0 = transformer.rope %q, %cos, %sin {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x8xf32>
  %q1 = transformer.rope %q, %cos1, %sin1 start %pos {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 2 : i64, style = "rotate_half"} : tensor<?x8xf32>, tensor<32x1xf32>, tensor<32x1xf32> -> tensor<?x8xf32>
  %k0 = transformer.rope %k, %cos, %sin start %pos {heads = 1 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x4xf32>, tensor<32x2xf32>, tensor<32x2xf32> -> tensor<?x4xf32>
  %k1 = transformer.rope %k, %cos1, %sin1 {heads = 1 : i64, head_dim = 4 : i64, rotary_dim = 2 : i64, style = "rotate_half"} : tensor<?x4xf32>, tensor<32x1xf32>, tensor<32x1xf32> -> tensor<?x4xf32>
  %a0 = transformer.attention %q0, %q1, %q1 {heads = 2 : i64, kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %a1 = transformer.attention %a0, %k0, %k1 {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.25 : f32} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  %a2 = transformer.attention %a1, %kv, %kv {heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, causal = true} : (tensor<?x8xf32>, tensor<5x4xf32>, tensor<5x4xf32>) -> tensor<?x8xf32>
  func.return %a2 : tensor<?x8xf32>
}

// -----

// Activations: softmax (also over a `?x?` score matrix), gelu exact and tanh, silu.

// CHECK-LABEL: func.func @activations(%x: tensor<?x8xf32>, %s: tensor<?x?xf32>) -> tensor<?x8xf32> {
// CHECK-NEXT:    %p = transformer.softmax %s : tensor<?x?xf32>
// CHECK-NEXT:    %p8 = transformer.softmax %x : tensor<?x8xf32>
// CHECK-NEXT:    %g0 = transformer.gelu %p8 {approximate = "none"} : tensor<?x8xf32>
// CHECK-NEXT:    %g1 = transformer.gelu %g0 {approximate = "tanh"} : tensor<?x8xf32>
// CHECK-NEXT:    %y = transformer.silu %g1 : tensor<?x8xf32>
// CHECK-NEXT:    func.return %y : tensor<?x8xf32>
// CHECK-NEXT:  }
func.func @activations(%x: tensor<?x8xf32>, %s: tensor<?x?xf32>) -> tensor<?x8xf32> {
  %p = transformer.softmax %s : tensor<?x?xf32>
  %p8 = transformer.softmax %x : tensor<?x8xf32>
  %g0 = transformer.gelu %p8 {approximate = "none"} : tensor<?x8xf32>
  %g1 = transformer.gelu %g0 {approximate = "tanh"} : tensor<?x8xf32>
  %y = transformer.silu %g1 : tensor<?x8xf32>
  func.return %y : tensor<?x8xf32>
}
