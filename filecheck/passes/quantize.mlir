// RUN: rm -rf %t && mkdir -p %t
// RUN: irtool import %shared_models/stories260K/stories260K.bin -o %t/m.mlir
// RUN: irtool-opt %t/m.mlir -p 'quantize{scheme=w8}' -o %t/w8.mlir
// RUN: filecheck %s --check-prefix=W8 --input-file %t/w8.mlir
// RUN: irtool-run %t/w8.mlir --tokens 1,403,407 --generate 4 | filecheck %s --check-prefix=EXEC
// RUN: cd %t && irtool-opt %t/m.mlir -p 'quantize{scheme=w4g32}' | filecheck %s --check-prefix=W4
// RUN: cd %t && irtool-opt %t/m.mlir -p 'quantize{scheme=w1a4 quantize-lm-head=true}' | filecheck %s --check-prefix=W1A4
// RUN: irtool-opt %t/m.mlir -p 'quantize{scheme=w4g32 quantize-lm-head=true tied-embedding=true}' -o %t/emb.mlir
// RUN: filecheck %s --check-prefix=EMB --input-file %t/emb.mlir
// RUN: irtool-run %t/emb.mlir --tokens 1,403,407 --generate 4 | filecheck %s --check-prefix=EXEC
// RUN: not irtool-opt %t/m.mlir -p 'quantize{scheme=w4g32 tied-embedding=true}' 2>&1 | filecheck %s --check-prefix=NOLMQ
// RUN: cd %t && irtool-opt %t/m.mlir -p 'calibrate{calibration="%shared_models/stories260K/eval_tokens.json" max-sequences=2},quantize{scheme=w8a8 per-tensor=true}' | filecheck %s --check-prefix=W8A8
// RUN: irtool-opt %t/m.mlir -p 'extract-kv-cache{capacity=32},quantize{scheme=none kv=int8}' -o %t/kv.mlir
// RUN: filecheck %s --check-prefix=KV --input-file %t/kv.mlir
// RUN: irtool-run %t/kv.mlir --tokens 1,403,407 --generate 4 | filecheck %s --check-prefix=EXEC
// RUN: not irtool-opt %t/m.mlir -p 'quantize{scheme=w3}' 2>&1 | filecheck %s --check-prefix=BADSCHEME
// RUN: not irtool-opt %t/m.mlir -p 'quantize{scheme=w8a8}' 2>&1 | filecheck %s --check-prefix=NOCALIB
// RUN: not irtool-opt %t/m.mlir -p 'quantize{scheme=w4g32 per-tensor=true}' 2>&1 | filecheck %s --check-prefix=BADPT
// RUN: not irtool-opt %t/m.mlir -p 'quantize{kv=int4}' 2>&1 | filecheck %s --check-prefix=BADKV
// RUN: not irtool-opt %s -p 'quantize{scheme=w8}' 2>&1 | filecheck %s --check-prefix=NOSTORE

// The pass runs on stories260K as `irtool import` writes it (5 layers, dim 64, GQA 8/4 heads,
// the classifier shared with the embedding). Quantized weights and scales go to a new store
// beside the output (-o), or named after the options in the current directory; float entries nobody uses any more are gone.

// w8: int8 weights with a scale per output channel; the lm_head (logits) stays float.
// W8:       builtin.module attributes {irtool.max_seq_len = 512 : i64, irtool.vocab_size = 512 : i64, irtool.weights = "w8.weights.npz", irtool.quant = {scheme = "w8", kv = "none", per_tensor = false, lm_head = "float"}} {
// W8:         %[[X:.*]] = transformer.rms_norm
// W8-NEXT:    %[[Q:.*]] = transformer.weight "layers.0.wq.q8" : tensor<64x64xi8>
// W8-NEXT:    %[[S:.*]] = transformer.weight "layers.0.wq.scale" : tensor<64xf32>
// W8-NEXT:    %{{.*}} = quant.wlinear %[[X]], %[[Q]], %[[S]] {bits = 8 : i64} : tensor<?x64xf32>, tensor<64x64xi8>, tensor<64xf32> -> tensor<?x64xf32>
// W8:         quant.wlinear %{{.*}} {bits = 8 : i64} : tensor<?x172xf32>, tensor<64x172xi8>, tensor<64xf32> -> tensor<?x64xf32>
// W8:         %[[LOGITS:.*]] = transformer.linear %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<512x64xf32> -> tensor<?x512xf32>
// W8-NEXT:    func.return %[[LOGITS]]
// W8-NOT:     transformer.weight "layers.0.wq"

// EXEC: positions: 3, vocab: 512, next token: 261
// EXEC-NEXT: tokens: 261,378,432,383

// w4g32: two 4-bit weights per byte ([N, ceil(K/2)] ui8), a scale per group of 32 inputs.
// W4:         transformer.weight "layers.0.wq.q4" : tensor<64x32xui8>
// W4-NEXT:    transformer.weight "layers.0.wq.scale" : tensor<64x2xf32>
// W4-NEXT:    quant.wlinear {{.*}} {bits = 4 : i64, group = 32 : i64} : tensor<?x64xf32>, tensor<64x32xui8>, tensor<64x2xf32> -> tensor<?x64xf32>
// W4:         transformer.weight "layers.0.w2.q4" : tensor<64x86xui8>
// W4-NEXT:    transformer.weight "layers.0.w2.scale" : tensor<64x6xf32>

// w1a4 with the lm_head quantized: eight signs per byte and alpha per channel; the embedding
// keeps reading the float table that the classifier shared.
// W1A4:       irtool.quant = {scheme = "w1a4", kv = "none", per_tensor = false, lm_head = "quantized"}
// W1A4:       %[[E:.*]] = transformer.weight "tok_embeddings" : tensor<512x64xf32>
// W1A4-NEXT:  transformer.embedding %{{.*}}, %[[E]]
// W1A4:       transformer.weight "layers.0.w1.q1" : tensor<172x8xui8>
// W1A4-NEXT:  transformer.weight "layers.0.w1.alpha" : tensor<172xf32>
// W1A4-NEXT:  quant.wlinear {{.*}} {bits = 1 : i64, act_bits = 4 : i64, act_group = 32 : i64} : tensor<?x64xf32>, tensor<172x8xui8>, tensor<172xf32> -> tensor<?x172xf32>
// W1A4:       transformer.weight "tok_embeddings.q1" : tensor<512x8xui8>
// W1A4-NEXT:  transformer.weight "tok_embeddings.alpha" : tensor<512xf32>
// W1A4-NEXT:  %[[L:.*]] = quant.wlinear {{.*}} -> tensor<?x512xf32>
// W1A4-NEXT:  func.return %[[L]]
// W1A4-NOT:   transformer.linear

// tied-embedding=true: the token embedding reads the quantized classifier's packed rows and
// scales (the same store entries), and no float table is left.
// EMB:        irtool.quant = {scheme = "w4g32", kv = "none", per_tensor = false, lm_head = "quantized"}
// EMB:        %[[Q:.*]] = transformer.weight "tok_embeddings.q4" : tensor<512x32xui8>
// EMB-NEXT:   %[[S:.*]] = transformer.weight "tok_embeddings.scale" : tensor<512x2xf32>
// EMB-NEXT:   quant.wembedding %{{.*}}, %[[Q]], %[[S]] {bits = 4 : i64, group = 32 : i64} : (tensor<?xi32>, tensor<512x32xui8>, tensor<512x2xf32>) -> tensor<?x64xf32>
// EMB-NOT:    transformer.weight "tok_embeddings" :
// EMB:        transformer.weight "tok_embeddings.q4" : tensor<512x32xui8>
// EMB:        quant.wlinear {{.*}} -> tensor<?x512xf32>
// NOLMQ:      error: quantize: tied-embedding=true reads the quantized classifier's rows, so it needs quantize-lm-head=true

// w8a8 after calibration: each distinct linear input is quantized once (q, k and v share it),
// the integer linears take the multiplier m = sx * s, one per output channel even with a
// per-tensor weight scale (the C kernel reads m[n] for every n).
// W8A8:       irtool.weights = "{{.*}}m.w8a8-pt.{{[0-9a-f]+}}.weights.npz", irtool.calibrated_sequences = 2 : i64, irtool.quant = {scheme = "w8a8", kv = "none", per_tensor = true, lm_head = "float"}
// W8A8:       %[[N:.*]] = transformer.rms_norm
// W8A8-NEXT:  %[[W:.*]] = transformer.weight "layers.0.wq.q8" : tensor<64x64xi8>
// W8A8-NEXT:  %[[SX:.*]] = transformer.weight "layers.0.wq.in_scale" : tensor<1xf32>
// W8A8-NEXT:  %[[ZX:.*]] = transformer.weight "layers.0.wq.in_zero_point" : tensor<1xi32>
// W8A8-NEXT:  %[[XQ:.*]] = quant.quantize %[[N]], %[[SX]] zero_point %[[ZX]] : tensor<?x64xf32>, tensor<1xf32>, tensor<1xi32> -> tensor<?x64xi8>
// W8A8-NEXT:  %[[M:.*]] = transformer.weight "layers.0.wq.m" : tensor<64xf32>
// W8A8-NEXT:  quant.qlinear %[[XQ]], %[[W]], %[[M]], %[[ZX]] : tensor<?x64xi8>, tensor<64x64xi8>, tensor<64xf32>, tensor<1xi32> -> tensor<?x64xf32>
// W8A8-NEXT:  transformer.weight "layers.0.wk.q8"
// W8A8-NEXT:  transformer.weight "layers.0.wk.m"
// W8A8-NEXT:  quant.qlinear %[[XQ]]
// W8A8:       transformer.linear {{.*}} -> tensor<?x512xf32>

// kv=int8 after extract-kv-cache: int8 caches (one K and one V per layer) plus one scale per cached row, appended after the
// caches in @prefill and @decode alike; the batched prefill attends over int8-rounded rows.
// KV:         irtool.quant = {scheme = "none", kv = "int8", per_tensor = false, lm_head = "float"}
// KV-LABEL:   func.func @prefill(%tokens: tensor<?xi32>, %kcache0: tensor<1x4x32x8xi8>, %vcache0: tensor<1x4x32x8xi8>, %kcache1: tensor<1x4x32x8xi8>, {{.*}}, %vcache4: tensor<1x4x32x8xi8>, %kscales0: tensor<1x4x32xf32>, %vscales0: tensor<1x4x32xf32>, {{.*}}, %vscales4: tensor<1x4x32xf32>) -> (tensor<?x512xf32>, tensor<1x4x32x8xi8>, {{.*}}, tensor<1x4x32xf32>) {
// KV:           %[[KQ:.*]], %[[KS:.*]] = quant.dynamic_quantize %[[K:.*]] {group = 8 : i64} : tensor<?x32xf32> -> tensor<?x32xi8>, tensor<?x4xf32>
// KV-NEXT:      %[[KD:.*]] = quant.dequantize %[[KQ]], %[[KS]] {group = 8 : i64} : tensor<?x32xi8>, tensor<?x4xf32> -> tensor<?x32xf32>
// KV:           transformer.attention %{{.*}}, %[[KD]], %{{.*}}
// KV-NEXT:      %kcache0_1, %kscales0_1 = quant.kv_write %kcache0, %kscales0, %[[K]], %start {layer = 0 : i64} : tensor<1x4x32x8xi8>, tensor<1x4x32xf32>, tensor<?x32xf32> -> tensor<1x4x32x8xi8>, tensor<1x4x32xf32>
// KV:           func.return %{{.*}}, %kcache0_1, %vcache0_1, {{.*}}, %vcache4_1, %kscales0_1, %vscales0_1, {{.*}}, %vscales4_1 : tensor<?x512xf32>, tensor<1x4x32x8xi8>,
// KV-LABEL:   func.func @decode(%tok: tensor<1xi32>, %pos: index, %kcache0: tensor<1x4x32x8xi8>, %vcache0: tensor<1x4x32x8xi8>, {{.*}}, %vcache4: tensor<1x4x32x8xi8>, %kscales0: tensor<1x4x32xf32>, {{.*}}, %vscales4: tensor<1x4x32xf32>) -> (tensor<1x512xf32>, {{.*}}) {
// KV:           %kcache0_1, %kscales0_1 = quant.kv_write %kcache0, %kscales0, %{{.*}}, %pos {layer = 0 : i64}
// KV-NEXT:      %vcache0_1, %vscales0_1 = quant.kv_write %vcache0, %vscales0, %{{.*}}, %pos {layer = 0 : i64}
// KV-NEXT:      quant.cached_attention %{{.*}}, %kcache0_1, %kscales0_1, %vcache0_1, %vscales0_1, %end {layer = 0 : i64, heads = 8 : i64, kv_heads = 4 : i64, head_dim = 8 : i64, scale = 0.353553385 : f32} : tensor<1x64xf32>, tensor<1x4x32x8xi8>, tensor<1x4x32xf32>, tensor<1x4x32x8xi8>, tensor<1x4x32xf32> -> tensor<1x64xf32>
// KV-NOT:       transformer.kv_write
// KV-NOT:       transformer.cached_attention

// BADSCHEME:  error: quantize: unknown scheme "w3" (expected one of none, w8, w8a8, w4g32, w1, w1a4)
// NOCALIB:    error: quantize: scheme w8a8 needs the activation range of every linear input, but the transformer.linear of weight "layers.0.wq" in @forward has no irtool.act_range: run the calibrate pass first (-p 'calibrate{calibration=FILE},quantize{scheme=w8a8}') or pass --calibration FILE to irtool quantize
// BADPT:      error: quantize: per-tensor applies to the int8 schemes w8 and w8a8, not to w4g32 (its scales are per group or channel)
// BADKV:      error: quantize: unknown kv "int4" (expected one of none, int8)
// NOSTORE:    error: quantize: the module has no irtool.weights store to quantize (quantize a module written by 'irtool import')

// A module without a weight store (the NOSTORE case above).
func.func @forward(%x: tensor<?x8xf32>) -> tensor<?x4xf32> {
  %w = transformer.weight "w" : tensor<4x8xf32>
  %y = transformer.linear %x, %w : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  func.return %y : tensor<?x4xf32>
}
