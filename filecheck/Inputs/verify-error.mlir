// Parses, but does not verify: the embedding claims 4 features of a 5-wide table.
func.func @forward(%tokens: tensor<?xi32>) -> tensor<?x4xf32> {
  %emb = transformer.weight "emb" : tensor<5x5xf32>
  %x = transformer.embedding %tokens, %emb : (tensor<?xi32>, tensor<5x5xf32>) -> tensor<?x4xf32>
  func.return %x : tensor<?x4xf32>
}
