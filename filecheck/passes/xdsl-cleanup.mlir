// RUN: irtool-opt %s -p cse | filecheck %s --check-prefix=CSE
// RUN: irtool-opt %s -p dce | filecheck %s --check-prefix=DCE
// RUN: irtool-opt %s -p canonicalize | filecheck %s --check-prefix=CANON
// RUN: irtool-opt %s -p licm | filecheck %s --check-prefix=SAME
// RUN: irtool-opt %s -p constant-fold-interp | filecheck %s --check-prefix=SAME
// RUN: irtool-opt %s --pipeline=frontend-cleanup | filecheck %s --check-prefix=CLEAN
// RUN: not irtool-opt %s -p 'cse{bogus=1}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: not irtool-opt %s -p 'cse,nosuch' 2>&1 | filecheck %s --check-prefix=UNKNOWN

// xDSL's generic passes that irtool-opt registers (irtool.passes.XDSL_PASSES) on transformer
// IR: the ops are Pure, so cse merges the two reads of weight "g" and the two equal norms and
// drops what is unused, dce and canonicalize drop the unused silu, and licm and
// constant-fold-interp (no loops, nothing of theirs to fold) leave the function as it is.

// CSE:      %g = transformer.weight "g"
// CSE-NEXT: %a = transformer.rms_norm %x, %g
// CSE-NEXT: %s = transformer.add %a, %a
// CSE-NOT:  transformer.silu

// DCE:      %g2 = transformer.weight "g"
// DCE:      %b = transformer.rms_norm %x, %g2
// DCE-NOT:  transformer.silu
// DCE:      %s = transformer.add %a, %b

// CANON:     %b = transformer.rms_norm %x, %g2
// CANON-NOT: transformer.silu
// CANON-NOT: arith.constant

// SAME:      %b = transformer.rms_norm %x, %g2
// SAME-NEXT: %dead = transformer.silu %a
// SAME-NEXT: %s = transformer.add %a, %b

// CLEAN:      %g = transformer.weight "g"
// CLEAN-NEXT: %a = transformer.rms_norm %x, %g
// CLEAN-NEXT: %s = transformer.add %a, %a
// CLEAN-NEXT: func.return %s

// OPTION:  error: bad pass pipeline 'cse{bogus=1}': Provided arguments ["bogus"] not found in expected arguments []
// UNKNOWN: error: bad pass pipeline 'cse,nosuch': Unrecognized passes: ['nosuch']

func.func @forward(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %g = transformer.weight "g" : tensor<8xf32>
  %g2 = transformer.weight "g" : tensor<8xf32>
  %a = transformer.rms_norm %x, %g {eps = 1.0e-05 : f32} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %b = transformer.rms_norm %x, %g2 {eps = 1.0e-05 : f32} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %dead = transformer.silu %a : tensor<?x8xf32>
  %s = transformer.add %a, %b : tensor<?x8xf32>
  %c1 = arith.constant 1 : index
  func.return %s : tensor<?x8xf32>
}
