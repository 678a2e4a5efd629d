// Passes run out of order, as an mlir-opt user may chain them: each one that needs an earlier
// pass says which, in one line, instead of passing the module through unchanged (lower-to-hw
// stamped hw.target on tensor IR, tile did nothing) or producing a module no emitter accepts
// (kernels of one target on buffers placed for another).
// The input is extract-kv-cache.mlir's transformer-level model.

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p lower-to-hw 2>&1 | filecheck %s --check-prefix=HW-FORWARD
// HW-FORWARD:     error: lower-to-hw: @forward holds transformer.weight outside any memory.kernel: the module is at the transformer level; run bufferize and allocate first (e.g. -p 'extract-kv-cache{capacity=N prefill=token-by-token},bufferize,allocate,lower-to-hw')
// HW-FORWARD-NOT: Traceback

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},lower-to-hw{target=riscv-ulp}' 2>&1 | filecheck %s --check-prefix=HW-DECODE
// HW-DECODE: error: lower-to-hw: @decode holds transformer.weight outside any memory.kernel

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},tile' 2>&1 | filecheck %s --check-prefix=TILE
// TILE:     error: tile: the module has no memory.global or memory.alloc: it is not at the memory level; run bufferize and allocate first
// TILE-NOT: Traceback

// Without target=, lower-to-hw lowers for the target allocate placed the buffers for (the
// host's portable kernels on riscv-ulp's memories were accepted, then refused by the emitter).
// RUN: irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate{target=riscv-ulp},lower-to-hw' | filecheck %s --check-prefix=DEFAULT
// DEFAULT:     hw.target = #hw.target<"riscv-ulp">
// DEFAULT:     hw.call @irt_linear_packed_f32
// DEFAULT-NOT: hw.call @irt_linear_f32

// Run again with the same target, lower-to-hw has nothing left to do.
// RUN: irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate{target=riscv-ulp},lower-to-hw,lower-to-hw{target=riscv-ulp}' | filecheck %s --check-prefix=DEFAULT

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate{target=riscv-ulp},lower-to-hw{target=host}' 2>&1 | filecheck %s --check-prefix=OTHER
// OTHER: error: lower-to-hw: buffers are placed in dtim, which target 'host' does not have (it has ram); give lower-to-hw{target=riscv-ulp}, or allocate for 'host'

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate{target=riscv-ulp},lower-to-hw,lower-to-hw{target=host}' 2>&1 | filecheck %s --check-prefix=RELOWER
// RELOWER: error: lower-to-hw: the module is already lowered for target 'riscv-ulp' (its hw.target); lower-to-hw{target=host} cannot relower its hw.calls: start again from the memory level

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate{target=riscv-ulp},lower-to-hw,allocate{target=host}' 2>&1 | filecheck %s --check-prefix=REPLACE
// REPLACE: error: allocate: the module is already lowered for target 'riscv-ulp' (its hw.target); allocate for the target it was lowered for, or run allocate before lower-to-hw

// allocate before bufferize.
// RUN: not irtool-opt %S/extract-kv-cache.mlir -p allocate 2>&1 | filecheck %s --check-prefix=ALLOC
// ALLOC: error: allocate: the module has no memory.global or memory.alloc to place: it is not at the memory level; run bufferize first
