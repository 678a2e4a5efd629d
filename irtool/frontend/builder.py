"""Building a `transformer` module and its weight store together.

Both frontends (llama2.c and ONNX) describe a model as a sequence of calls on ModelBuilder;
it owns the function `@forward(tokens: tensor<?xi32>) -> tensor<?xVxf32>`, inserts one
`transformer.weight` op per stored array, and records the metadata later passes need
(maximum sequence length, vocabulary size) as module attributes.
"""

from __future__ import annotations

import numpy as np
from xdsl.builder import Builder
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    Float32Type,
    IntegerAttr,
    ModuleOp,
    TensorType,
    i32,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint

from irtool.dialects import transformer as tf
from irtool.ir_names import FORWARD, MAX_SEQ_LEN_ATTR, VOCAB_ATTR
from irtool.weights import WeightStore


class ModelBuilder:
    """Appends transformer ops to `@forward` and collects the weights they use."""

    def __init__(self, *, vocab_size: int, max_seq_len: int):
        self.vocab_size = vocab_size
        self.max_seq_len = max_seq_len
        self.store = WeightStore()
        self.block = Block(arg_types=[TensorType(i32, [tf.DYNAMIC])])
        self.builder = Builder(InsertPoint.at_end(self.block))
        self._weights: dict[str, SSAValue] = {}

    @property
    def tokens(self) -> SSAValue:
        return self.block.args[0]

    def weight(self, name: str, array: np.ndarray) -> SSAValue:
        """The value of weight `name`, stored (as float32) on first use."""
        if name in self._weights:
            return self._weights[name]
        array = np.ascontiguousarray(array, dtype=np.float32)
        self.store.add(name, array)
        op = self.emit(tf.WeightOp(name, TensorType(Float32Type(), list(array.shape))))
        self._weights[name] = op.result
        return op.result

    def emit(self, op: Operation) -> Operation:
        self.builder.insert(op)
        return op

    def value(self, op: Operation) -> SSAValue:
        """Insert `op` and return its single result."""
        return self.emit(op).results[0]

    def finish(self, logits: SSAValue) -> tuple[ModuleOp, WeightStore]:
        self.emit(func.ReturnOp(logits))
        fn = func.FuncOp(FORWARD, ([self.tokens.type], [logits.type]), Region(self.block))
        module = ModuleOp([fn])
        module.attributes[MAX_SEQ_LEN_ATTR] = IntegerAttr(self.max_seq_len, i64)
        module.attributes[VOCAB_ATTR] = IntegerAttr(self.vocab_size, i64)
        module.verify()
        return module, self.store


def rope_tables(max_positions: int, rotary_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of `position * theta^(-2i/rotary_dim)`, shaped `[max_positions, rotary_dim/2]`."""
    inv_freq = 1.0 / theta ** (np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)
    angles = np.outer(np.arange(max_positions, dtype=np.float64), inv_freq)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
