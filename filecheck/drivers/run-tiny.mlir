// RUN: rm -rf %t && mkdir -p %t/store %t/nostore
// RUN: cp %s %t/store/tiny.mlir && cp %s %t/nostore/tiny.mlir
// RUN: python -c "import numpy as np; e = np.eye(5, dtype=np.float32); np.savez('%t/store/tiny.weights.npz', emb=e, head=np.roll(e, 1, axis=0), pos=np.repeat(np.arange(8, dtype=np.float32)[:, None] / 10, 5, axis=1))"
// RUN: irtool-run %t/store/tiny.mlir --tokens 1,2,3 --generate 3 --dump-logits %t/logits.npy | filecheck %s
// RUN: python -c "import numpy as np; a = np.load('%t/logits.npy'); print('logits', a.dtype, a.shape, 'argmax', a.argmax(axis=1).tolist(), 'max', a.max(axis=1).astype(float).round(4).tolist())" | filecheck %s --check-prefix=LOGITS
// RUN: not irtool-run %t/store/tiny.mlir --tokens 1,7 2>&1 | filecheck %s --check-prefix=VOCAB
// RUN: not irtool-run %t/nostore/tiny.mlir --tokens 1 2>&1 | filecheck %s --check-prefix=NOSTORE

// A hand-written model whose answer is known: one-hot embeddings plus a learned position
// table that adds 0.1 * position to every feature (read from `start` 1), and an output head
// that maps token t to t + 1 (mod 5). So the next token is always (last + 1) mod 5 and the
// logit of that token at position p is 1 + 0.1 * (p + 1).

// CHECK:      positions: 3, vocab: 5, next token: 4
// CHECK-NEXT: tokens: 4,0,1
// CHECK-NOT:  {{.}}

// LOGITS: logits float32 (3, 5) argmax [2, 3, 4] max [1.1, 1.2, 1.3]

// Without an irtool.vocab_size attribute the embedding op itself checks the ids.
// VOCAB:     error: token id 7 is outside the vocabulary (0..4)
// VOCAB-NOT: Traceback

// The store is looked up beside the module, where `irtool.weights` says.
// NOSTORE:     error: weight store '{{.*}}nostore{{/|\\}}tiny.weights.npz' not found
// NOSTORE-NOT: Traceback

builtin.module attributes {irtool.weights = "tiny.weights.npz"} {
  func.func @forward(%tokens: tensor<?xi32>) -> tensor<?x5xf32> {
    %emb = transformer.weight "emb" : tensor<5x5xf32>
    %pos = transformer.weight "pos" : tensor<8x5xf32>
    %head = transformer.weight "head" : tensor<5x5xf32>
    %one = arith.constant 1 : index
    %x = transformer.embedding %tokens, %emb : (tensor<?xi32>, tensor<5x5xf32>) -> tensor<?x5xf32>
    %p = transformer.position_embedding %tokens, %pos start %one : tensor<?xi32>, tensor<8x5xf32> -> tensor<?x5xf32>
    %h = transformer.add %x, %p : tensor<?x5xf32>
    %logits = transformer.linear %h, %head : tensor<?x5xf32>, tensor<5x5xf32> -> tensor<?x5xf32>
    func.return %logits : tensor<?x5xf32>
  }
}
