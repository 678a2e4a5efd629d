// RUN: irtool-opt %s -p 'allocate{target=riscv-ulp}' | filecheck %s
// RUN: irtool-opt %s -p 'allocate{target=riscv-ulp report=true}' -o /dev/null 2>&1 | filecheck %s --check-prefix=REPORT
// RUN: irtool-opt %s -p 'allocate' | filecheck %s --check-prefix=HOST
// RUN: not irtool-opt %s -p 'allocate{target=nope}' 2>&1 | filecheck %s --check-prefix=UNKNOWN

// The optimum is unique. Bytes accessed per byte of buffer and call: %x 6, @cache 3, @w_hot 2,
// @embed 1. DTIM (cost 1, 64 KiB) takes the hottest ones that fit together: @cache, @w_hot
// and the activations (33 KiB); @embed (64 KiB) no longer fits there and goes to SRAM (cost 2)
// rather than Flash (cost 4). Globals are stacked at the bottom of their space (largest
// alignment first, then by name), activations above: %x of @step and %y of @other never live
// at the same time, so they share the bytes at 32768.

// The greedy warm start is this optimum, and a bound proves it, so CP-SAT does not run: the
// plain bound (every buffer in its cheapest memory) cannot, as @embed is kept out of the
// DTIM, but the capacity-aware one of passes/allocate_bound.py (allocate-bound) can.
// CHECK:      irtool.memory_plan = {target = "riscv-ulp", status = "OPTIMAL", solver = "greedy = lower bound"
// CHECK-SAME: sram = {peak = 65536 : i64, lower_bound = 65536 : i64
// CHECK-SAME: dtim = {peak = 33024 : i64, lower_bound = 33024 : i64, no_reuse = 33280 : i64
// CHECK:      memory.global @embed {{.*}}offset = 0 : i64, alignment = 4 : i64} : memref<256x64xf32, #memory.space<sram>>
// CHECK-NEXT: memory.global @w_hot {{.*}}offset = 16384 : i64, alignment = 4 : i64} : memref<64x64xf32, #memory.space<dtim>>
// CHECK-NEXT: memory.global @cache {{.*}}offset = 0 : i64, alignment = 4 : i64} : memref<64x64xf32, #memory.space<dtim>>
// CHECK-LABEL: func.func @step(%tok: memref<1xi32>) -> memref<1x64xf32, #memory.space<dtim>>
// CHECK-NEXT:  %embed = memory.get_global @embed : memref<256x64xf32, #memory.space<sram>>
// CHECK-NEXT:  %w = memory.get_global @w_hot : memref<64x64xf32, #memory.space<dtim>>
// CHECK-NEXT:  %cache = memory.get_global @cache : memref<64x64xf32, #memory.space<dtim>>
// CHECK-NEXT:  %x = memory.alloc {offset = 32768 : i64, alignment = 4 : i64} : memref<1x64xf32, #memory.space<dtim>>
// CHECK:       func.return %x : memref<1x64xf32, #memory.space<dtim>>
// CHECK-LABEL: func.func @other
// CHECK:       %y = memory.alloc {offset = 32768 : i64, alignment = 4 : i64} : memref<1x64xf32, #memory.space<dtim>>
// CHECK:       %v = memory.subview %y {{.*}} : memref<1x64xf32, #memory.space<dtim>> -> memref<1x32xf32, #memory.space<dtim>>

// REPORT:      allocate: target 'riscv-ulp', 5 buffers, OPTIMAL
// REPORT:      space {{ +}}peak  lower bound     no reuse       capacity
// REPORT-NEXT: flash {{ +}}0 {{ +}}0 {{ +}}0 {{ +}}1933312
// REPORT-NEXT: sram {{ +}}65536 {{ +}}65536 {{ +}}65536 {{ +}}245760
// REPORT-NEXT: dtim {{ +}}33024 {{ +}}33024 {{ +}}33280 {{ +}}65536

// On the host everything is in one RAM with 64-byte alignment.
// HOST:      memory.global @embed {{.*}}offset = 16384 : i64, alignment = 64 : i64} : memref<256x64xf32, #memory.space<ram>>
// HOST:      %x = memory.alloc {offset = 98304 : i64, alignment = 64 : i64} : memref<1x64xf32, #memory.space<ram>>

// UNKNOWN: error: unknown target 'nope'; known targets: {{.*}}host{{.*}}riscv-ulp

builtin.module {
  memory.global @embed {kind = "weight", weight = "embed"} : memref<256x64xf32>
  memory.global @w_hot {kind = "weight", weight = "w_hot"} : memref<64x64xf32>
  memory.global @cache {kind = "state"} : memref<64x64xf32>
  func.func @step(%tok: memref<1xi32>) -> memref<1x64xf32> {
    %embed = memory.get_global @embed : memref<256x64xf32>
    %w = memory.get_global @w_hot : memref<64x64xf32>
    %cache = memory.get_global @cache : memref<64x64xf32>
    %x = memory.alloc : memref<1x64xf32>
    memory.kernel ins(%tok, %embed : memref<1xi32>, memref<256x64xf32>) outs(%x : memref<1x64xf32>) {
    ^bb0(%t: tensor<1xi32>, %e: tensor<256x64xf32>):
      %r = transformer.embedding %t, %e : (tensor<1xi32>, tensor<256x64xf32>) -> tensor<1x64xf32>
      memory.yield %r : tensor<1x64xf32>
    }
    memory.kernel ins(%x, %w : memref<1x64xf32>, memref<64x64xf32>) outs(%x : memref<1x64xf32>) {
    ^bb0(%a: tensor<1x64xf32>, %b: tensor<64x64xf32>):
      %r = transformer.linear %a, %b : tensor<1x64xf32>, tensor<64x64xf32> -> tensor<1x64xf32>
      memory.yield %r : tensor<1x64xf32>
    }
    memory.kernel ins(%cache, %x : memref<64x64xf32>, memref<1x64xf32>) outs(%cache : memref<64x64xf32>) {
    ^bb0(%c: tensor<64x64xf32>, %a: tensor<1x64xf32>):
      memory.yield %c : tensor<64x64xf32>
    }
    memory.kernel ins(%x, %w, %cache : memref<1x64xf32>, memref<64x64xf32>, memref<64x64xf32>) outs(%x : memref<1x64xf32>) {
    ^bb0(%a: tensor<1x64xf32>, %b: tensor<64x64xf32>, %c: tensor<64x64xf32>):
      %r = transformer.linear %a, %b : tensor<1x64xf32>, tensor<64x64xf32> -> tensor<1x64xf32>
      memory.yield %r : tensor<1x64xf32>
    }
    func.return %x : memref<1x64xf32>
  }
  func.func @other() {
    %y = memory.alloc : memref<1x64xf32>
    %v = memory.subview %y {offsets = array<i64: 0, 0>} : memref<1x64xf32> -> memref<1x32xf32>
    memory.dealloc %y : memref<1x64xf32>
    func.return
  }
}
