"""The interpreter's fast paths against the plain ones they replace.

* `StraightLine` (irtool/interpreter/straight_line.py) runs a function as a list of ops over
  value slots, each op bound once; xDSL's own `Interpreter.call_op` walking the same module is
  the reference, bit for bit.
* Softmax and SiLU of `irtool.numerics.transformer` avoid numpy's Python layers and extra
  copies: the plain numpy formulas, written here, are the reference, bit for bit. The norms
  take BLAS's mean of squares: a float64 formula is the reference, within stated bounds.
  (GELU is an approximation with a stated bound: tests/test_gelu_erf.py.)
* A float linear multiplies by the contiguous transpose of the weight at every level; the
  product with the transposed view must agree to float rounding, and the interpreter's kept
  transpose must follow a store array that was replaced.
"""

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, ModuleOp, TensorType
from xdsl.interpreter import Interpreter
from xdsl.ir import Block, Region

from irtool.dialects import transformer as tf
from irtool.interpreter.runner import ModelRunner
from irtool.interpreter.straight_line import StraightLine
from irtool.numerics import transformer as ref
from irtool.weights import WeightStore

RNG = np.random.default_rng(7)
F32 = np.float32


def _xdsl_forward(runner: ModelRunner, ids) -> np.ndarray:
    (logits,) = runner.interpreter.call_op("forward", (runner.check_tokens(ids),))
    return np.asarray(logits)


@pytest.mark.parametrize("model", ["stories260K/stories260K.bin", "nanogpt-tiny/nanogpt.onnx"])
def test_straight_line_forward_equals_xdsl_interpreter(shared_models, model):
    """Same module, same store: the straight-line program and xDSL's walk give the same
    logits bit for bit, and the runner really took the straight-line path."""
    from irtool.frontend.load import import_model

    runner = ModelRunner(*import_model(shared_models / model))
    ids = [1, 5, 9, 2, 7, 3, 11, 4]
    fast = runner.forward(ids)
    assert runner._programs["forward"].runs_here
    np.testing.assert_array_equal(fast, _xdsl_forward(runner, ids))


def _two_linears_module() -> tuple[ModuleOp, func.FuncOp]:
    """@f(x) = linear(linear(x, w1), w2) with weights from the store."""
    f32 = Float32Type()
    x_t, w_t = TensorType(f32, [tf.DYNAMIC, 4]), TensorType(f32, [4, 4])
    block = Block(arg_types=[x_t])
    w1, w2 = tf.WeightOp("w1", w_t), tf.WeightOp("w2", w_t)
    h = tf.LinearOp(block.args[0], w1.results[0])
    y = tf.LinearOp(h.results[0], w2.results[0])
    block.add_ops([w1, w2, h, y, func.ReturnOp(y.results[0])])
    fn = func.FuncOp("forward", ([x_t], [x_t]), Region(block))
    return ModuleOp([fn]), fn


def test_program_is_reread_after_a_pass_changes_the_ops():
    """A runner keeps its program only while the function holds the same ops: erasing the
    second linear (returning the first) must show in the next call."""
    module, fn = _two_linears_module()
    store = WeightStore({"w1": RNG.standard_normal((4, 4)).astype(F32),
                         "w2": RNG.standard_normal((4, 4)).astype(F32)})
    runner = ModelRunner(module, store)
    x = RNG.standard_normal((3, 4)).astype(F32)
    both = runner._call("forward", (x,))[0]
    np.testing.assert_allclose(both, x @ store["w1"].T @ store["w2"].T, rtol=1e-5, atol=1e-6)
    ops = list(fn.body.block.ops)
    first, second, ret = ops[2], ops[3], ops[4]
    ret.operands = [first.results[0]]
    fn.body.block.erase_op(second)
    one = runner._call("forward", (x,))[0]
    np.testing.assert_allclose(one, x @ store["w1"].T, rtol=1e-5, atol=1e-6)


def _insert_in_the_middle(block, ops):
    block.insert_op_before(tf.WeightOp("w1", ops[0].results[0].type), ops[3])


def _replace_the_second_linear(block, ops):
    new = tf.LinearOp(ops[2].results[0], ops[1].results[0])
    block.insert_op_before(new, ops[3])
    ops[3].results[0].replace_all_uses_with(new.results[0])
    block.erase_op(ops[3])


def _erase_the_first_op(block, ops):
    ops[2].operands = [ops[2].operands[0], ops[1].results[0]]
    block.erase_op(ops[0])


def _append_after_the_return(block, ops):
    block.add_op(tf.WeightOp("w2", ops[1].results[0].type))


@pytest.mark.parametrize("change", [_insert_in_the_middle, _replace_the_second_linear,
                                    _erase_the_first_op, _append_after_the_return])
def test_any_change_of_the_ops_makes_the_program_stale(change):
    """is_current follows the block's links; every kind of edit a pass makes must show."""
    module, fn = _two_linears_module()
    store = WeightStore({"w1": np.eye(4, dtype=F32), "w2": np.eye(4, dtype=F32)})
    program = StraightLine.of(fn, ModelRunner(module, store).interpreter)
    assert program.is_current()
    change(fn.body.block, list(fn.body.block.ops))
    assert not program.is_current()


def test_linear_form_follows_a_changed_operand():
    """The interpreter keeps each linear's form (stored weight, bias, accumulator) while its
    operands are the same values; a weight replaced by a computed value must show."""
    module, fn = _two_linears_module()
    store = WeightStore({"w1": RNG.standard_normal((4, 4)).astype(F32),
                         "w2": RNG.standard_normal((4, 4)).astype(F32)})
    runner = ModelRunner(module, store)
    x = RNG.standard_normal((3, 4)).astype(F32)
    runner._call("forward", (x,))
    ops = list(fn.body.block.ops)
    functions = runner.interpreter._impls._impl_dict[tf.LinearOp][0]
    assert functions.linear_form(ops[3]) == (True, False, False)
    square = tf.MulOp(ops[1].results[0], ops[1].results[0])  # w2 * w2: not a store read
    fn.body.block.insert_op_before(square, ops[3])
    ops[3].operands[1] = square.results[0]
    assert functions.linear_form(ops[3]) == (False, False, False)
    got = runner._call("forward", (x,))[0]
    w2 = store["w2"] * store["w2"]
    np.testing.assert_allclose(got, x @ store["w1"].T @ w2.T, rtol=1e-5, atol=1e-6)


def test_an_implementation_registered_later_replaces_the_bound_one():
    """Each step keeps its op bound to the registry's entry of the time; an override
    registered after the program ran (a new entry for LinearOp) is what the next call runs,
    and an error raised inside a bound step carries the op as xDSL notes it."""
    from xdsl.interpreter import InterpreterFunctions, impl, register_impls

    @register_impls
    class Doubling(InterpreterFunctions):
        @impl(tf.LinearOp)
        def run_linear(self, interpreter, op, args):
            return (2 * (args[0] @ args[1].T),)

    module, _ = _two_linears_module()
    store = WeightStore({"w1": np.eye(4, dtype=F32), "w2": np.eye(4, dtype=F32)})
    runner = ModelRunner(module, store)
    x = RNG.standard_normal((3, 4)).astype(F32)
    np.testing.assert_array_equal(runner._call("forward", (x,))[0], x)
    runner.interpreter.register_implementations(Doubling(), override=True)
    np.testing.assert_array_equal(runner._call("forward", (x,))[0], 4 * x)
    with pytest.raises(ValueError) as raised:  # numpy's, with xDSL's note naming the op
        runner._call("forward", (np.ones((3, 5), dtype=F32),))
    assert "Error while interpreting op" in "".join(getattr(raised.value, "__notes__", []))


def test_constants_run_once_and_dead_values_are_dropped():
    """Weight reads become constants of the program; no step of the program is a weight op,
    and every intermediate slot is freed by the last op that reads it."""
    module, fn = _two_linears_module()
    store = WeightStore({"w1": np.eye(4, dtype=F32), "w2": np.eye(4, dtype=F32)})
    runner = ModelRunner(module, store)
    program = StraightLine.of(fn, runner.interpreter, lambda op: isinstance(op, tf.WeightOp))
    assert program.runs_here and len(program.constants) == 2
    assert [type(op) for op, *_ in program.steps] == [tf.LinearOp, tf.LinearOp]
    (_, _, h_out, h_dead), (_, y_in, _, y_dead) = program.steps
    assert h_dead == () and y_dead == h_out == (y_in[0],)


def test_function_with_a_region_op_is_left_to_xdsl():
    """An op with a region (here a nested func.func standing for memory.kernel) cannot be a
    straight-line step: the program says so and the runner goes through call_op."""
    f32 = Float32Type()
    inner = func.FuncOp("inner", ([], []), Region(Block()))
    block = Block(arg_types=[TensorType(f32, [2])])
    block.add_ops([inner, func.ReturnOp(block.args[0])])
    fn = func.FuncOp("forward", ([TensorType(f32, [2])], [TensorType(f32, [2])]),
                     Region(block))
    program = StraightLine.of(fn, Interpreter(ModuleOp([])))
    assert not program.runs_here


def test_kept_transpose_follows_a_replaced_store_array():
    """The runner keeps one transpose per store array; a weight replaced in the store (a new
    array) is multiplied as the new one."""
    module, _ = _two_linears_module()
    store = WeightStore({"w1": np.eye(4, dtype=F32), "w2": np.eye(4, dtype=F32)})
    runner = ModelRunner(module, store)
    x = RNG.standard_normal((2, 4)).astype(F32)
    np.testing.assert_array_equal(runner._call("forward", (x,))[0], x)
    store.arrays["w2"] = 2 * np.eye(4, dtype=F32)
    runner._programs.clear()  # the store is read when the program is (see ModelRunner._call)
    np.testing.assert_array_equal(runner._call("forward", (x,))[0], 2 * x)


# --- numerics: the fast forms against the plain formulas ---------------------------------------

def _float64_rms_norm(x, g, eps):
    x = x.astype(np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def _float64_layer_norm(x, g, b, eps):
    x = x.astype(np.float64)
    xc = x - np.mean(x, axis=-1, keepdims=True)
    return xc / np.sqrt(np.mean(xc * xc, axis=-1, keepdims=True) + eps) * g + b


def _plain_softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return (e / np.sum(e, axis=-1, keepdims=True)).astype(F32)


def _plain_silu(x):
    return (x / (F32(1.0) + np.exp(-x))).astype(F32)


@pytest.mark.parametrize("shape", [(1, 64), (17, 96), (48, 384), (3, 4, 9, 9)])
def test_fast_numerics_equal_the_plain_formulas(shape):
    """Softmax and SiLU: the plain numpy formulas' bits."""
    x = (RNG.standard_normal(shape) * 3).astype(F32)
    before = x.copy()
    np.testing.assert_array_equal(ref.softmax(x), _plain_softmax(x))
    np.testing.assert_array_equal(ref.silu(x), _plain_silu(x))
    np.testing.assert_array_equal(x, before)  # no input is modified in place


@pytest.mark.parametrize("shape", [(1, 64), (17, 96), (48, 384), (3, 4, 9, 9)])
@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_norms_within_float_rounding_of_float64(shape, offset):
    """The norms' means of squares are BLAS products with a column of 1/n: within a few
    float32 ulps of the float64 formulas, also for rows far from zero mean (LayerNorm's
    cancellation, in the pairwise mean it subtracts)."""
    x = (RNG.standard_normal(shape) * 3 + offset).astype(F32)
    g = RNG.standard_normal(shape[-1]).astype(F32)
    b = RNG.standard_normal(shape[-1]).astype(F32)
    before = x.copy()
    rms, ln = ref.rms_norm(x, g, 1e-5), ref.layer_norm(x, g, b, 1e-5)
    assert rms.dtype == ln.dtype == F32 and rms.shape == ln.shape == x.shape
    # float32 steps of ~6e-8 relative each; LayerNorm's float32 mean of values near `offset`
    # also carries up to ~2 ulps of it, relative to the row's spread (as the numpy mean did)
    scale = 1 + np.abs(g)
    assert np.all(np.abs(rms - _float64_rms_norm(x, g, 1e-5)) <= 5e-7 * scale)
    x64 = x.astype(np.float64)
    spread = np.abs(x64.mean(axis=-1, keepdims=True)) / x64.std(axis=-1, keepdims=True)
    bound = (8e-7 + 2.4e-7 * spread) * scale
    assert np.all(np.abs(ln - _float64_layer_norm(x, g, b, 1e-5)) <= bound)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("t,s,window,spread", [
    (7, 7, 3, 1), (7, 7, None, 1), (5, 12, None, 1), (1, 9, None, 1), (4, 10, 6, 1),
    (80, 80, None, 1), (20, 30, None, 1), (24, 24, 5, 1),
    (32, 32, None, 30)])  # one head's scores far above the others': the per-row fallback
def test_masked_attention_equals_a_loop_reference(t, s, window, spread):
    """Causal attention of the last t of s positions, with or without a window, masked in
    place (a kept triangle without a window), 16 queries and more through the shared-shift
    product (`_softmax_times`): per head and query, a float64 loop."""
    heads, kv_heads, hd = 4, 2, 8
    q = RNG.standard_normal((t, heads * hd)).astype(F32)
    q[:, :hd] *= spread
    k, v = (RNG.standard_normal((s, kv_heads * hd)).astype(F32) for _ in range(2))
    out = ref.attention(q, k, v, heads, kv_heads, hd, 0.35, True, window)
    want = np.zeros((t, heads * hd))
    for h in range(heads):
        kh = h // (heads // kv_heads)
        for i in range(t):
            pos = s - t + i
            keys = [j for j in range(s) if j <= pos and (window is None or pos - window < j)]
            sc = [0.35 * float(q[i, h * hd:(h + 1) * hd] @ k[j, kh * hd:(kh + 1) * hd])
                  for j in keys]
            p = np.exp(np.array(sc) - max(sc))
            p /= p.sum()
            want[i, h * hd:(h + 1) * hd] = sum(pj * v[j, kh * hd:(kh + 1) * hd]
                                               for pj, j in zip(p, keys, strict=True))
    # scores near 100 (spread 30): their float32 rounding (~4e-6 each) moves the exps by up
    # to ~1e-4, more where the weights cancel (4e-4 seen over 30 seeds)
    np.testing.assert_allclose(out, want, rtol=1e-5 if spread == 1 else 1e-3, atol=1e-6)


def test_shared_shift_falls_back_to_the_per_row_softmax():
    """A row whose top score lies more than 69 below the largest of all rows would underflow
    under the shared shift: the product is then exactly the per-row softmax's."""
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((2, 1, 20, 20)).astype(F32)
    scores[0, 0, 3] += 100.0
    vh = rng.standard_normal((2, 1, 20, 8)).astype(F32)
    np.testing.assert_array_equal(_softmax_times(scores, vh), ref.softmax(scores) @ vh)
    near = scores.copy()
    near[0, 0, 3] -= 60.0  # within reach: the shared shift, the same numbers to rounding
    np.testing.assert_allclose(_softmax_times(near, vh), ref.softmax(near) @ vh,
                               rtol=1e-5, atol=1e-6)


def _softmax_times(scores, vh):
    out = np.empty(scores.shape[:-1] + vh.shape[-1:], dtype=F32)
    ref._softmax_times(scores, vh, out)
    return out


def test_attention_nan_spoils_only_its_own_rows():
    """A NaN query row (16 rows and more: the shared-shift product) gives NaN in that row and
    head only; every other row equals the attention of the same inputs without the NaN."""
    t, heads, hd = 20, 2, 8
    q, k, v = (RNG.standard_normal((t, heads * hd)).astype(F32) for _ in range(3))
    clean = ref.attention(q, k, v, heads, heads, hd, 0.35, True)
    q[5, :hd] = np.nan
    out = ref.attention(q, k, v, heads, heads, hd, 0.35, True)
    assert np.isnan(out[5, :hd]).all() and not np.isnan(np.delete(out, 5, 0)).any()
    # (with a NaN the call takes the per-row softmax: the same numbers to rounding)
    np.testing.assert_allclose(np.delete(out, 5, 0), np.delete(clean, 5, 0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(out[5, hd:], clean[5, hd:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [70, 96, 384])
def test_linear_by_contiguous_transpose_is_the_product(n):
    x, w, b = (RNG.standard_normal(s).astype(F32) for s in ((33, 96), (n, 96), (n,)))
    want = x.astype(np.float64) @ w.T.astype(np.float64) + b
    np.testing.assert_allclose(ref.linear(x, w, b), want, rtol=1e-4, atol=1e-4)
    kept = np.ascontiguousarray(w.T)
    np.testing.assert_array_equal(ref.linear(x, w, b, kept), ref.linear(x, w, b))
