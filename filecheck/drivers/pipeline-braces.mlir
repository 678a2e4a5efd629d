// RUN: not irtool-opt %s --pipeline='riscv-ulp{capacity=32' 2>&1 | filecheck %s --check-prefix=OPEN
// RUN: not irtool-opt %s --pipeline='host{capacity=32}}' 2>&1 | filecheck %s --check-prefix=CLOSE
// RUN: not irtool-opt %s --pipeline='nosuch{capacity=32' 2>&1 | filecheck %s --check-prefix=UNKNOWN

// A named pipeline whose option braces do not pair was reported as an unknown pipeline
// ("unknown pipeline 'riscv-ulp{capacity=32'"), which it is not.

// OPEN:     error: pipeline 'riscv-ulp': its options go in one pair of braces at the end, e.g. --pipeline='riscv-ulp{capacity=128}' (got 'riscv-ulp{capacity=32')
// OPEN-NOT: Traceback
// CLOSE:    error: pipeline 'host': its options go in one pair of braces at the end, e.g. --pipeline='host{capacity=128}' (got 'host{capacity=32}}')
// UNKNOWN:  error: unknown pipeline 'nosuch{capacity=32' (known: cortex-m7-256k, frontend-cleanup, host, matrix8x8, riscv-ulp, siracusa, u280-hls)

func.func @forward(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  func.return %x : tensor<?x8xf32>
}
