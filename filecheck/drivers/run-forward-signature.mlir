// RUN: not irtool-run %s --tokens 1 2>&1 | filecheck %s --check-prefix=ARGS
// RUN: not irtool-run %S/../Inputs/main-only.mlir --tokens 1 2>&1 | filecheck %s --check-prefix=NOFWD

// BUG (irtool/interpreter/runner.py, ModelRunner.forward: `call_op(FORWARD, (ids,))` with no
// check of the function): irtool-run calls @forward with the token ids only.
// * A @forward that takes more arguments (here the embedding table) and uses them crashes
//   with "error: KeyError: 'No value for key <BlockArgument[tensor<8x4xf32>] name_hint: table,
//   ...>' (this is a bug in irtool; ...)" (when the argument is unused it even runs).
// * A module without @forward reports "error: the IR does not verify: Could not find symbol
//   forward", although the IR verifies.
// Expected: a one-line error that names @forward and the signature irtool-run needs
// (tensor<?xi32> -> tensor<?xVxf32>). Remove the XFAIL line once it is fixed.

// ARGS:      error:
// ARGS-NOT:  KeyError
// ARGS-NOT:  bug in irtool
// ARGS:      @forward
// ARGS-NOT:  Traceback
// NOFWD:     error:
// NOFWD-NOT: does not verify
// NOFWD:     forward
// NOFWD-NOT: Traceback

builtin.module {
  func.func @forward(%tokens: tensor<?xi32>, %table: tensor<8x4xf32>) -> tensor<?x4xf32> {
    %x = transformer.embedding %tokens, %table : (tensor<?xi32>, tensor<8x4xf32>) -> tensor<?x4xf32>
    func.return %x : tensor<?x4xf32>
  }
}
