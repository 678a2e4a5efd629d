// RUN: grep -v SYNTAX-ONLY %s | irtool-opt | irtool-opt | filecheck %s
// RUN: grep -v SYNTAX-ONLY %s | irtool-opt --print-op-generic | irtool-opt | filecheck %s
// RUN: grep -v SYNTAX-ONLY %s | irtool-opt --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: irtool-opt %s --disable-verify | irtool-opt --disable-verify | filecheck %s --check-prefix=NOPARAMS
// RUN: irtool-opt %s --disable-verify --print-op-generic | filecheck %s --check-prefix=NOPARAMS-GENERIC

// Every op of the hw dialect in its custom syntax: kernel calls with their parameters and
// attributes, a fork/join region, accelerator calls with and without parameters, and the
// target attribute. The first two RUN lines must print the same custom form (the second one
// goes through the generic form first); GENERIC pins the generic form itself.
//
// A hw.call without parameters does not verify (every kernel of the table takes some), so the
// lines marked SYNTAX-ONLY are dropped from the verified runs and only round-tripped, custom
// and generic, with the verifier off (NOPARAMS).

// CHECK:       builtin.module attributes {hw.target = #hw.target<"riscv-ulp">} {
// CHECK-NEXT:    func.func @step(%x: memref<1x8xf32, #memory.space<dtim>>, %w: memref<4x8xf32, #memory.space<flash>>, %b: memref<4xf32, #memory.space<flash>>, %y: memref<1x4xf32, #memory.space<dtim>>, %cos: memref<16x2xf32>, %sin: memref<16x2xf32>, %pos: index) {
// CHECK-NEXT:      hw.call @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_linear_bias_f32(%x, %w, %b, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<4xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_rms_norm_f32(%x, %x, %x) params {T = 1 : i64, D = 8 : i64, eps = 1.000000e-05 : f32} : memref<1x8xf32, #memory.space<dtim>>, memref<1x8xf32, #memory.space<dtim>>, memref<1x8xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_rope_f32(%x, %cos, %sin, %pos, %x) params {T = 1 : i64, heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = 0 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<16x2xf32>, memref<16x2xf32>, index, memref<1x8xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.call @irt_silu_f32(%y, %y) params {n = 4 : i64} {note = "in place"} : memref<1x4xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:      hw.parallel cores(8) {
// CHECK-NEXT:        hw.call @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:        hw.call @irt_add_f32(%y, %y, %y) params {n = 4 : i64} : memref<1x4xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:      }
// CHECK-NEXT:      hw.parallel cores(1) {
// CHECK-NEXT:        hw.accel "npu" @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:      } {note = "one core"}
// CHECK-NEXT:      hw.accel "dma" @copy(%x, %y) : memref<1x8xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>
// CHECK-NEXT:      func.return
// CHECK-NEXT:    }
// CHECK-NEXT:  }
// CHECK-NOT:   hw.

// GENERIC:       "builtin.module"() ({
// GENERIC:         "hw.call"(%x, %w, %y) <{callee = @irt_linear_f32, params = {T = 1 : i64, K = 8 : i64, N = 4 : i64}}> : (memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>) -> ()
// GENERIC:         "hw.call"(%y, %y) <{callee = @irt_silu_f32, params = {n = 4 : i64}}> {note = "in place"} : (memref<1x4xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>) -> ()
// GENERIC-NEXT:    "hw.parallel"() <{cores = 8 : i64}> ({
// GENERIC-NEXT:      "hw.call"(%x, %w, %y) <{callee = @irt_linear_f32, params = {T = 1 : i64, K = 8 : i64, N = 4 : i64}}>
// GENERIC-NEXT:      "hw.call"(%y, %y, %y) <{callee = @irt_add_f32, params = {n = 4 : i64}}>
// GENERIC-NEXT:    }) : () -> ()
// GENERIC-NEXT:    "hw.parallel"() <{cores = 1 : i64}> ({
// GENERIC-NEXT:      "hw.accel"(%x, %w, %y) <{engine = "npu", callee = @irt_linear_f32, params = {T = 1 : i64, K = 8 : i64, N = 4 : i64}}> : (memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>) -> ()
// GENERIC-NEXT:    }) {note = "one core"} : () -> ()
// GENERIC-NEXT:    "hw.accel"(%x, %y) <{engine = "dma", callee = @copy}> : (memref<1x8xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>) -> ()
// GENERIC:       }) {hw.target = #hw.target<"riscv-ulp">} : () -> ()

// NOPARAMS:      hw.accel "dma" @copy(%x, %y)
// NOPARAMS:      func.func @bare(%a: memref<4xf32>, %b: memref<4xf32>) {
// NOPARAMS-NEXT:   hw.call @irt_silu_f32(%a, %b) : memref<4xf32>, memref<4xf32>
// NOPARAMS-NEXT:   hw.call @irt_silu_f32(%a, %b) {note = "attributes, no params"} : memref<4xf32>, memref<4xf32>
// NOPARAMS-NEXT:   func.return
// NOPARAMS-NEXT: }

// NOPARAMS-GENERIC:      "hw.call"(%a, %b) <{callee = @irt_silu_f32}> : (memref<4xf32>, memref<4xf32>) -> ()
// NOPARAMS-GENERIC-NEXT: "hw.call"(%a, %b) <{callee = @irt_silu_f32}> {note = "attributes, no params"} : (memref<4xf32>, memref<4xf32>) -> ()

builtin.module attributes {hw.target = #hw.target<"riscv-ulp">} {
  func.func @step(%x: memref<1x8xf32, #memory.space<dtim>>, %w: memref<4x8xf32, #memory.space<flash>>, %b: memref<4xf32, #memory.space<flash>>, %y: memref<1x4xf32, #memory.space<dtim>>, %cos: memref<16x2xf32>, %sin: memref<16x2xf32>, %pos: index) {
    hw.call @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
    hw.call @irt_linear_bias_f32(%x, %w, %b, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<4xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
    hw.call @irt_rms_norm_f32(%x, %x, %x) params {T = 1 : i64, D = 8 : i64, eps = 1.0e-05 : f32} : memref<1x8xf32, #memory.space<dtim>>, memref<1x8xf32, #memory.space<dtim>>, memref<1x8xf32, #memory.space<dtim>>
    hw.call @irt_rope_f32(%x, %cos, %sin, %pos, %x) params {T = 1 : i64, heads = 2 : i64, head_dim = 4 : i64, rotary_dim = 4 : i64, style = 0 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<16x2xf32>, memref<16x2xf32>, index, memref<1x8xf32, #memory.space<dtim>>
    "hw.call"(%y, %y) <{callee = @irt_silu_f32, params = {n = 4 : i64}}> {note = "in place"} : (memref<1x4xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>) -> ()
    hw.parallel cores(8) {
      hw.call @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
      hw.call @irt_add_f32(%y, %y, %y) params {n = 4 : i64} : memref<1x4xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>
    }
    "hw.parallel"() <{cores = 1 : i64}> ({
      hw.accel "npu" @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : memref<1x8xf32, #memory.space<dtim>>, memref<4x8xf32, #memory.space<flash>>, memref<1x4xf32, #memory.space<dtim>>
    }) {note = "one core"} : () -> ()
    hw.accel "dma" @copy(%x, %y) : memref<1x8xf32, #memory.space<dtim>>, memref<1x4xf32, #memory.space<dtim>>
    func.return
  }
  func.func @bare(%a: memref<4xf32>, %b: memref<4xf32>) {                                        // SYNTAX-ONLY
    hw.call @irt_silu_f32(%a, %b) : memref<4xf32>, memref<4xf32>                                 // SYNTAX-ONLY
    "hw.call"(%a, %b) <{callee = @irt_silu_f32}> {note = "attributes, no params"} : (memref<4xf32>, memref<4xf32>) -> ()  // SYNTAX-ONLY
    func.return                                                                                   // SYNTAX-ONLY
  }                                                                                               // SYNTAX-ONLY
}
