"""`bufferize` checked by running both levels: the memory level must give the logits of the
transformer level it came from, reuse buffers in place where the rules allow, keep state in
shared globals that persist across calls, and refuse dynamic shapes with a useful message.
"""

from collections import Counter

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, IndexType, ModuleOp, TensorType, i32
from xdsl.interpreter import Interpreter
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.func import FuncFunctions
from xdsl.ir import Block, Region

from irtool.context import make_context
from irtool.dialects import memory as mem
from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.frontend.load import import_model
from irtool.interpreter.memory import MemoryFunctions
from irtool.interpreter.runner import ModelRunner
from irtool.interpreter.transformer import TransformerFunctions
from irtool.module_io import parse_module
from irtool.passes.bufferize import BufferizePass
from irtool.weights import WeightStore

T = 7  # tokens of the fixed-length prompt
PROMPT = np.array([1, 403, 407, 261, 378, 432, 383], dtype=np.int32)
F32 = Float32Type()


def with_fixed_length(module: ModuleOp, tokens: int) -> ModuleOp:
    """The same module with every `?` token count replaced by `tokens` (static shapes)."""
    return parse_module(str(module).replace("tensor<?x", f"tensor<{tokens}x"), "static.mlir")


def bufferize(module: ModuleOp) -> ModuleOp:
    module = module.clone()
    BufferizePass().apply(make_context(), module)
    module.verify()
    return module


def memory_interpreter(module: ModuleOp, store: WeightStore) -> Interpreter:
    interp = Interpreter(module)
    for functions in (FuncFunctions(), ArithFunctions(), TransformerFunctions(store),
                      MemoryFunctions(store)):
        interp.register_implementations(functions)
    return interp


def op_counts(module: ModuleOp) -> Counter:
    return Counter(op.name for op in module.walk())


@pytest.fixture(scope="module")
def stories(shared_models):
    module, store = import_model(shared_models / "stories260K" / "stories260K.bin")
    return with_fixed_length(module, T), store


@pytest.fixture(scope="module")
def stories_memory(stories):
    return bufferize(stories[0])


def test_stories_memory_level_equals_transformer_level(stories, stories_memory):
    module, store = stories
    reference = ModelRunner(module, store).forward(PROMPT)
    (logits,) = memory_interpreter(stories_memory, store).call_op("forward", (PROMPT,))
    assert logits.shape == (T, 512)
    np.testing.assert_array_equal(logits, reference)


def test_stories_weights_become_shared_globals(stories, stories_memory):
    module, store = stories
    globals_ = [op for op in stories_memory.ops if isinstance(op, mem.GlobalOp)]
    assert {g.weight.data for g in globals_} == {op.weight_name.data for op in module.walk()
                                                if isinstance(op, tf.WeightOp)}
    assert all(g.kind.data == "weight" for g in globals_)
    assert len({g.sym_name.data for g in globals_}) == len(globals_)
    fn = next(op for op in stories_memory.ops if isinstance(op, func.FuncOp))
    assert str(fn.function_type) == f"(memref<{T}xi32>) -> memref<{T}x512xf32>"
    assert stories_memory.attributes == module.attributes
    assert not any(isinstance(t, TensorType) for op in fn.body.block.ops
                   for t in (*op.operand_types, *op.result_types))


def test_stories_reuses_buffers_in_place(stories, stories_memory):
    before = op_counts(stories[0])
    after = op_counts(stories_memory)
    computations = sum(n for name, n in before.items()
                       if name.startswith("transformer.") and name != "transformer.weight")
    assert after["memory.kernel"] == computations
    # per layer: rope q, rope k, both residual adds, silu and the gate mul write over an
    # input; plus the final norm: 6 * 5 + 1 buffers saved
    assert after["memory.alloc"] == computations - (6 * 5 + 1)
    inplace = Counter(k.computation[0].name for k in stories_memory.walk()
                      if isinstance(k, mem.KernelOp) and set(k.outs) <= set(k.ins))
    assert inplace == {"transformer.add": 10, "transformer.rope": 10, "transformer.silu": 5,
                       "transformer.mul": 5, "transformer.rms_norm": 1}


# --- state: a toy decode step whose state is updated with transformer.add ---


def toy_step(name: str = "step", tokens: int = 1, with_pos: bool = True) -> func.FuncOp:
    """`@step(tok, pos, S) -> (logits, S + embedding(tok))`: S accumulates across calls.

    Without `with_pos` the signature is prefill-like: `(tok, S) -> (logits, S')`.
    """
    t = lambda *s: TensorType(F32, list(s))  # noqa: E731
    positions = [IndexType()] if with_pos else []
    block = Block(arg_types=[TensorType(i32, [tokens]), *positions, t(tokens, 4)])
    tok, state = block.args[0], block.args[-1]
    state.name_hint = "S"
    table = tf.WeightOp("emb", t(6, 4))
    x = tf.EmbeddingOp(tok, table.result)
    new_state = tf.AddOp(state, x.result)
    logits = tf.LinearOp(new_state.result, table.result)
    block.add_ops([table, x, new_state, logits,
                   func.ReturnOp(logits.result, new_state.result)])
    return func.FuncOp(name, (list(block.arg_types), [logits.result.type, t(tokens, 4)]),
                       Region(block))


TOY_STORE = WeightStore({"emb": np.arange(24, dtype=np.float32).reshape(6, 4) / 10})


def test_state_global_persists_across_calls():
    module = bufferize(ModuleOp([toy_step()]))
    (state,) = [op for op in module.ops if isinstance(op, mem.GlobalOp) and
                op.kind.data == "state"]
    assert state.sym_name.data == "state.S"
    fn = module.ops.last
    assert str(fn.function_type) == "(memref<1xi32>, index) -> memref<1x6xf32>"
    # the add writes the state global in place: no copy, no buffer of its own
    assert op_counts(module)["memory.copy"] == 0
    interp = memory_interpreter(module, TOY_STORE)
    emb = TOY_STORE["emb"]
    (l1,) = interp.call_op("step", (np.array([2], np.int32), 0))
    l1 = l1.copy()
    (l2,) = interp.call_op("step", (np.array([5], np.int32), 1))
    s1, s2 = emb[2], emb[2] + emb[5]
    np.testing.assert_allclose(l1, (s1 @ emb.T)[None], rtol=1e-6)
    np.testing.assert_allclose(l2, (s2 @ emb.T)[None], rtol=1e-6)
    # a fresh interpreter starts from zeroed state again
    (l1_again,) = memory_interpreter(module, TOY_STORE).call_op("step",
                                                                (np.array([2], np.int32), 0))
    np.testing.assert_array_equal(l1_again, l1)


def test_functions_share_state_globals():
    prefill = toy_step("prefill", with_pos=False)  # the state right after the tokens
    decode = toy_step("decode")
    module = bufferize(ModuleOp([prefill, decode]))
    states = [op for op in module.ops if isinstance(op, mem.GlobalOp) and op.kind.data == "state"]
    assert len(states) == 1
    uses = {op.global_name.root_reference.data for op in module.walk()
            if isinstance(op, mem.GetGlobalOp)}
    assert states[0].sym_name.data in uses
    interp = memory_interpreter(module, TOY_STORE)
    interp.call_op("prefill", (np.array([1], np.int32),))
    (logits,) = interp.call_op("decode", (np.array([3], np.int32), 1))
    emb = TOY_STORE["emb"]
    np.testing.assert_allclose(logits, ((emb[1] + emb[3]) @ emb.T)[None], rtol=1e-6)


def test_state_read_after_update_gets_a_copy():
    """When the old state is still read after the update, the update cannot overwrite it."""
    fn = toy_step()
    block = fn.body.block
    ret = block.last_op
    state, new_state = block.args[-1], ret.operands[1]
    late = tf.AddOp(state, new_state)  # reads the old state after the update
    logits = tf.LinearOp(late.result, block.ops.first.result)
    block.insert_ops_before([late, logits], ret)
    ret.operands = [logits.result, new_state]
    module = bufferize(ModuleOp([fn]))
    assert op_counts(module)["memory.copy"] == 1
    interp = memory_interpreter(module, TOY_STORE)
    emb = TOY_STORE["emb"]
    interp.call_op("step", (np.array([2], np.int32), 0))
    (out,) = interp.call_op("step", (np.array([4], np.int32), 1))
    old, new = emb[2], emb[2] + emb[4]
    np.testing.assert_allclose(out, ((old + new) @ emb.T)[None], rtol=1e-6)


def test_dynamic_shape_is_refused_with_advice():
    module = ModuleOp([toy_step(tokens=tf.DYNAMIC)])
    with pytest.raises(IrtoolError) as err:
        BufferizePass().apply(make_context(), module)
    msg = str(err.value)
    assert "@step" in msg and "tensor<?xi32>" in msg
    assert "extract-kv-cache{prefill=token-by-token}" in msg and "fixed length" in msg


def test_stories_decode_step_keeps_its_caches_in_state_globals(shared_models):
    """After extract-kv-cache, the caches live in two state globals updated in place by the
    kv_writes; stepping the memory level through a prompt gives the logits of the
    transformer-level decode step that threads the caches through its arguments."""
    from xdsl.passes import PassPipeline

    from irtool.passes import get_all_passes

    module, store = import_model(shared_models / "stories260K" / "stories260K.bin")
    PassPipeline.parse_spec(get_all_passes(), "extract-kv-cache{prefill=token-by-token}").apply(
        make_context(), module)
    memory = bufferize(module)
    counts = op_counts(memory)
    assert counts["memory.copy"] == 0
    kv_kernels = [k for k in memory.walk() if isinstance(k, mem.KernelOp)
                  and k.computation[0].name == "transformer.kv_write"]
    assert kv_kernels and all(k.outs[0].owner.global_name.root_reference.data.startswith("state.")
                              for k in kv_kernels)

    reference = Interpreter(module)
    for functions in (FuncFunctions(), ArithFunctions(), TransformerFunctions(store)):
        reference.register_implementations(functions)
    decode = next(op for op in module.ops if isinstance(op, func.FuncOp))
    caches = [np.zeros(t.get_shape(), np.float32) for t in decode.function_type.inputs.data[2:]]
    interp = memory_interpreter(memory, store)
    for pos, tok in enumerate(PROMPT):
        ids = np.array([tok], np.int32)
        expected, *caches = reference.call_op("decode", (ids, pos, *caches))
        (logits,) = interp.call_op("decode", (ids, pos))
        np.testing.assert_array_equal(logits, expected)
    states = [g.sym_name.data for g in memory.ops
              if isinstance(g, mem.GlobalOp) and g.kind.data == "state"]
    held = MemoryFunctions(store).memory(interp).globals
    for name, cache in zip(states, caches, strict=True):
        np.testing.assert_array_equal(held[name], cache)


def test_exchanged_states_are_staged_through_scratch():
    """`(tok, A, B) -> (logits, B + emb(tok), A)`: the new B is the old A, which the copy
    into A would clobber if it were not read first."""
    t = TensorType(F32, [1, 4])
    block = Block(arg_types=[TensorType(i32, [1]), t, t])
    tok, a, b = block.args
    table = tf.WeightOp("emb", TensorType(F32, [6, 4]))
    x = tf.EmbeddingOp(tok, table.result)
    new_a = tf.AddOp(b, x.result)
    logits = tf.LinearOp(new_a.result, table.result)
    block.add_ops([table, x, new_a, logits, func.ReturnOp(logits.result, new_a.result, a)])
    fn = func.FuncOp("swap", ([tok.type, t, t], [logits.result.type, t, t]), Region(block))
    module = bufferize(ModuleOp([fn]))
    interp = memory_interpreter(module, TOY_STORE)
    emb = TOY_STORE["emb"]
    sim_a, sim_b = np.zeros(4, np.float32), np.zeros(4, np.float32)
    for tok_id in (1, 4, 2):
        (out,) = interp.call_op("swap", (np.array([tok_id], np.int32),))
        sim_a, sim_b = sim_b + emb[tok_id], sim_a
        np.testing.assert_allclose(out, (sim_a @ emb.T)[None], rtol=1e-6)
    held = MemoryFunctions(TOY_STORE).memory(interp).globals
    np.testing.assert_array_equal(held["state.1"][0], sim_b)
