// A valid module without the @forward function irtool-run calls.
func.func @main(%tokens: tensor<?xi32>) -> tensor<?xi32> {
  func.return %tokens : tensor<?xi32>
}
