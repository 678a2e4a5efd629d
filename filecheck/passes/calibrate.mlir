// RUN: rm -rf %t && mkdir -p %t
// RUN: irtool import %shared_models/stories260K/stories260K.bin -o %t/m.mlir
// RUN: irtool-opt %t/m.mlir -p 'calibrate{calibration="%shared_models/stories260K/eval_tokens.json" max-sequences=3}' | filecheck %s
// RUN: echo "1 403 407 261 378" > %t/ids.txt
// RUN: echo "1,403,407" >> %t/ids.txt
// RUN: irtool-opt %t/m.mlir -p 'extract-kv-cache{capacity=64},calibrate{calibration="%t/ids.txt" percentile=99.0}' | filecheck %s --check-prefix=DECODE
// RUN: echo "Once upon a time there was a cat." > %t/story.txt
// RUN: irtool-opt %t/m.mlir -p 'calibrate{calibration="%t/story.txt" tokenizer="%shared_models/stories260K/tok512.bin"}' | filecheck %s --check-prefix=TEXT
// RUN: not irtool-opt %t/m.mlir -p 'calibrate{calibration="%t/story.txt"}' 2>&1 | filecheck %s --check-prefix=NOTOK
// RUN: echo "1,9999" > %t/bad.txt
// RUN: not irtool-opt %t/m.mlir -p 'calibrate{calibration="%t/bad.txt"}' 2>&1 | filecheck %s --check-prefix=VOCAB
// RUN: not irtool-opt %t/m.mlir -p 'calibrate{calibration="%t/missing.json"}' 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: not irtool-opt %t/m.mlir -p 'calibrate{calibration="%shared_models/stories260K/golden.json"}' 2>&1 | filecheck %s --check-prefix=NOCALIB
// RUN: not irtool-opt %t/m.mlir -p 'calibrate' 2>&1 | filecheck %s --check-prefix=NOFILE
// RUN: not irtool-opt %t/m.mlir -p 'calibrate{calibration="%t/ids.txt" percentile=0.0}' 2>&1 | filecheck %s --check-prefix=PERCENT

// The interpreter runs the calibration stories and every linear gets the range its input
// took; linears that share an input (q, k, v) share the range.
// CHECK:       irtool.calibrated_sequences = 3 : i64
// CHECK:       %[[N:.*]] = transformer.rms_norm
// CHECK-NEXT:  transformer.weight "layers.0.wq"
// CHECK-NEXT:  transformer.linear %[[N]], %{{.*}} {irtool.act_range = [[[LO:-[0-9.e+-]+]] : f32, [[HI:[0-9.e+-]+]] : f32]} : tensor<?x64xf32>, tensor<64x64xf32>
// CHECK-NEXT:  transformer.weight "layers.0.wk"
// CHECK-NEXT:  transformer.linear %[[N]], %{{.*}} {irtool.act_range = [[[LO]] : f32, [[HI]] : f32]}
// CHECK:       transformer.linear {{.*}} {irtool.act_range = [{{.*}}]} : tensor<?x172xf32>, tensor<64x172xf32>
// CHECK:       transformer.linear {{.*}} {irtool.act_range = [{{.*}}]} : tensor<?x64xf32>, tensor<512x64xf32> -> tensor<?x512xf32>

// After extract-kv-cache the sequences run through @prefill, and @decode gets the same ranges.
// DECODE:       irtool.calibrated_sequences = 2 : i64
// DECODE-LABEL: func.func @prefill
// DECODE:         transformer.linear {{.*}} {irtool.act_range = [[[R:.*]]]} : tensor<?x64xf32>, tensor<64x64xf32>
// DECODE-LABEL: func.func @decode
// DECODE:         transformer.linear {{.*}} {irtool.act_range = [[[R]]]} : tensor<1x64xf32>, tensor<64x64xf32>

// TEXT:         irtool.calibrated_sequences = 1 : i64
// TEXT:         irtool.act_range

// NOTOK:    error: calibration file '{{.*}}story.txt' is neither JSON nor lines of token ids (one sequence per line, ids separated by commas or spaces); if it is text, give a tokenizer to encode it (--tokenizer FILE, or tokenizer=FILE)
// VOCAB:    error: calibration file '{{.*}}bad.txt': sequence #0 has token id 9999, outside the model's vocabulary (0..511)
// MISSING:  error: calibration file '{{.*}}missing.json' not found
// NOCALIB:  error: '{{.*}}golden.json' has no "calib" list of token-id sequences (keys: model, config,
// NOFILE:   error: calibrate: give the calibration data, e.g. calibrate{calibration="eval_tokens.json"}
// PERCENT:  error: calibrate: percentile must be in (0, 100], got 0.0
