// Option values of the passes as an mlir-opt user writes them: an integer where a float is
// declared parses (xDSL refused `time-limit=5` as "Incompatible types: given (5,), expected
// <class 'float'>"), and values out of range are one-line errors naming the pass and option
// (tile and allocate{tile=true} took a negative window, zero max_tiles, a negative mac_cycles
// or time_limit, streamed nothing and said nothing; assign-hbm-banks gave CP-SAT a time limit
// of 0). The input is extract-kv-cache.mlir's model; option checks come before any work.

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'tile{window=-5}' 2>&1 | filecheck %s --check-prefix=WINDOW
// WINDOW:     error: tile: window must be a number of bytes >= 0 (0: no cap), got -5
// WINDOW-NOT: Traceback
// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'tile{max_tiles=0}' 2>&1 | filecheck %s --check-prefix=TILES
// TILES:      error: tile: max_tiles must be at least 1, got 0
// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'tile{mac-cycles=-2}' 2>&1 | filecheck %s --check-prefix=MAC
// MAC:        error: tile: mac_cycles must be a positive number of cycles, got -2
// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'tile{time-limit=0}' 2>&1 | filecheck %s --check-prefix=TIME
// TIME:       error: tile: time_limit must be a positive number of seconds, got 0
// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'tile{time-limit=5 mac-cycles=5}' 2>&1 | filecheck %s --check-prefix=INTS
// INTS:       error: tile: the module has no memory.global or memory.alloc: it is not at the memory level

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate{tile=true window=-1}' 2>&1 | filecheck %s --check-prefix=AWINDOW
// AWINDOW:    error: allocate: window must be a number of bytes >= 0 (0: no cap), got -1
// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate{tile=true mac-cycles=3 tile-cycles=-1}' 2>&1 | filecheck %s --check-prefix=ACYCLES
// ACYCLES:    error: allocate: tile_cycles must be a number of cycles >= 0, got -1
// RUN: irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate{tile=true mac-cycles=3 time-limit=5}' | filecheck %s --check-prefix=AINTS
// AINTS:      irtool.memory_plan = {target = "host"

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'assign-hbm-banks{time-limit=0}' 2>&1 | filecheck %s --check-prefix=HBM
// HBM:        error: assign-hbm-banks: time_limit must be a positive number of seconds, got 0

// Without target=, tile streams for the target allocate placed the buffers for (it planned
// for the host and failed: "target 'host' has no memory 'xflash'"). stories260K's weights
// stream through cortex-m7-256k's windows.
// RUN: rm -rf %t && mkdir -p %t
// RUN: irtool import %shared_models/stories260K/stories260K.bin -o %t/m.mlir
// RUN: irtool-opt %t/m.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize{target=cortex-m7-256k},allocate{target=cortex-m7-256k copy_weights=false},tile{time-limit=5}' | filecheck %s --check-prefix=STREAM
// STREAM:     memory.dma_start

// An empty target name was read as the path '.': "target folder '.' has no description.json"
// (allocate), or the registry's default (lower-to-hw).
// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate{target=""}' 2>&1 | filecheck %s --check-prefix=EMPTY
// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize,allocate,lower-to-hw{target=""}' 2>&1 | filecheck %s --check-prefix=EMPTY
// EMPTY: error: the target name is empty; known targets: cortex-m7-256k, host, matrix8x8, riscv-ulp, siracusa, u280-hls (or give the path of a target folder or of a description .json)

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'assign-hbm-banks{stripes=0}' 2>&1 | filecheck %s --check-prefix=STRIPES
// STRIPES: error: assign-hbm-banks: stripes must be >= 1, got 0

// RUN: not irtool-opt %S/extract-kv-cache.mlir -p 'extract-kv-cache{capacity=16 prefill=token-by-token},bufferize{target=nosuch}' 2>&1 | filecheck %s --check-prefix=BUFTARGET
// BUFTARGET: error: unknown target 'nosuch'; known targets: cortex-m7-256k, host, matrix8x8, riscv-ulp, siracusa, u280-hls
