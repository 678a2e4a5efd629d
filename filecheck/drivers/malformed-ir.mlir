// RUN: python -c "import subprocess, sys; r = subprocess.run(sys.argv[1:]); print('exit code', r.returncode)" irtool-run %s --tokens 1 2>&1 | filecheck %s --check-prefixes=PARSE,RC
// RUN: python -c "import subprocess, sys; r = subprocess.run(sys.argv[1:]); print('exit code', r.returncode)" irtool-opt %s 2>&1 | filecheck %s --check-prefixes=PARSE,RC
// RUN: not irtool-run %S/../Inputs/verify-error.mlir --tokens 1 2>&1 | filecheck %s --check-prefix=RUN-VERIFY
// RUN: not irtool-opt %S/../Inputs/verify-error.mlir 2>&1 | filecheck %s --check-prefix=OPT-VERIFY

// Malformed IR is reported in one `error:` line naming the file, line and column, followed by
// the offending source line; never with a Python traceback, and with exit code 1.

// PARSE:      error: cannot parse
// PARSE-NEXT: {{.*}}malformed-ir.mlir:[[# @LINE + 13]]:29
// PARSE-NEXT: %x = transformer.embeding %tokens, %emb
// PARSE:      Operation transformer.embeding is not registered
// PARSE-NOT:  Traceback
// RC:         exit code 1

// RUN-VERIFY:     error: {{.*}}verify-error.mlir does not verify: transformer.embedding: result is ?x4, expected ?x5
// RUN-VERIFY-NOT: Traceback
// OPT-VERIFY:     error: the IR does not verify: transformer.embedding: result is ?x4, expected ?x5
// OPT-VERIFY-NOT: Traceback

func.func @forward(%tokens: tensor<?xi32>) -> tensor<?x5xf32> {
  %emb = transformer.weight "emb" : tensor<5x5xf32>
  %x = transformer.embeding %tokens, %emb : (tensor<?xi32>, tensor<5x5xf32>) -> tensor<?x5xf32>
  func.return %x : tensor<?x5xf32>
}
