// RUN: irtool-opt %s | filecheck %s

// BUG (dialects/transformer.py, RopeOp.verify_): the cos/sin column count is compared with
// `half != rd // 2` instead of `_dims_agree`, so a table with a dynamic `?` column count (a
// function argument; every other shape check of the dialect accepts `?`) is rejected with
// "transformer.rope: cos table has -9223372036854775808 columns, expected rotary_dim / 2 = 2".
// Remove the XFAIL line once it is fixed.

// CHECK:      %y = transformer.rope %x, %cos, %sin start %pos {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x8xf32>
// CHECK-NOT:  -9223372036854775808
func.func @rope_dynamic_tables(%x: tensor<?x8xf32>, %cos: tensor<?x?xf32>, %sin: tensor<?x?xf32>, %pos: index) -> tensor<?x8xf32> {
  %y = transformer.rope %x, %cos, %sin start %pos {heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = "interleaved"} : tensor<?x8xf32>, tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x8xf32>
  func.return %y : tensor<?x8xf32>
}
