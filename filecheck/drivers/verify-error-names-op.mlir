// RUN: not irtool-opt %s 2>&1 | filecheck %s --check-prefix=OPT
// RUN: not irtool-run %s --tokens 1 2>&1 | filecheck %s --check-prefix=INTERP

// xDSL's own checks of an op's declared types (operands and result of transformer.add share
// one type) fail with a message that names no op ("operand 'rhs' at position 1 does not
// verify:") over two lines; the drivers name the op, from the module marked in the error, and
// print one line.

// OPT:      error: the IR does not verify: transformer.add: operand 'rhs' at position 1 does not verify: attribute tensor<3x8xf32> expected from variable 'T', but got tensor<3x8xi32>{{$}}
// OPT-NOT:  {{^attribute|Traceback}}
// INTERP:      error: {{.*}}verify-error-names-op.mlir does not verify: transformer.add: operand 'rhs' at position 1 does not verify: attribute tensor<3x8xf32> expected from variable 'T', but got tensor<3x8xi32>{{$}}
// INTERP-NOT:  {{^attribute|Traceback}}

func.func @forward(%x: tensor<3x8xf32>, %w: tensor<3x8xi32>) -> tensor<3x8xf32> {
  %o = "transformer.add"(%x, %w) : (tensor<3x8xf32>, tensor<3x8xi32>) -> tensor<3x8xf32>
  func.return %o : tensor<3x8xf32>
}
