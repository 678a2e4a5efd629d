"""Each `memory` op, interpreted, against numpy expectations written here; and the arenas:
placed buffers share the bytes of their memory space, so overlapping placements corrupt each
other exactly as they would on the chip.
"""

import numpy as np
import pytest
from xdsl.interpreter import Interpreter
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.func import FuncFunctions

from irtool.errors import IrtoolError
from irtool.interpreter.memory import DmaToken, MemoryFunctions, arena_sizes
from irtool.interpreter.transformer import TransformerFunctions
from irtool.module_io import parse_module
from irtool.weights import WeightStore

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3)).astype(np.float32)
STORE = WeightStore({"w": W, "table": np.arange(20, dtype=np.float32).reshape(5, 4)})


def interpreter(text: str, store: WeightStore = STORE) -> Interpreter:
    interp = Interpreter(parse_module(text, "test.mlir"))
    for functions in (FuncFunctions(), ArithFunctions(), TransformerFunctions(store),
                      MemoryFunctions(store)):
        interp.register_implementations(functions)
    return interp


def call(interp: Interpreter, name: str, *args):
    """Results copied out: returned buffers are views the next call may overwrite."""
    return [np.array(r) if isinstance(r, np.ndarray) else r
            for r in interp.call_op(name, args)]


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def test_weight_global_is_a_copy_of_the_store():
    interp = interpreter("""
      memory.global @w {kind = "weight", weight = "w"} : memref<4x3xf32>
      func.func @f() -> memref<4x3xf32> {
        %w = memory.get_global @w : memref<4x3xf32>
        func.return %w : memref<4x3xf32>
      }""")
    (w,) = interp.call_op("f", ())
    np.testing.assert_array_equal(w, W)
    assert not np.shares_memory(w, STORE["w"])


def test_missing_weight_is_reported():
    interp = interpreter("""
      memory.global @w {kind = "weight", weight = "nope"} : memref<4x3xf32>
      func.func @f() -> memref<4x3xf32> {
        %w = memory.get_global @w : memref<4x3xf32>
        func.return %w : memref<4x3xf32>
      }""")
    with pytest.raises(IrtoolError, match='no weight "nope"'):
        interp.call_op("f", ())


STATE = """
  memory.global @acc {kind = "state"} : memref<2x2xf32>
  func.func @bump(%x: memref<2x2xf32>) -> memref<2x2xf32> {
    %s = memory.get_global @acc : memref<2x2xf32>
    memory.kernel ins(%s, %x : memref<2x2xf32>, memref<2x2xf32>) outs(%s : memref<2x2xf32>) {
    ^bb0(%a: tensor<2x2xf32>, %b: tensor<2x2xf32>):
      %c = transformer.add %a, %b : tensor<2x2xf32>
      memory.yield %c : tensor<2x2xf32>
    }
    func.return %s : memref<2x2xf32>
  }"""


def test_state_global_starts_at_zero_and_persists():
    interp = interpreter(STATE)
    x, y = rand(2, 2), rand(2, 2)
    (s1,) = call(interp, "bump", x)
    (s2,) = call(interp, "bump", y)
    np.testing.assert_array_equal(s1, x)
    np.testing.assert_array_equal(s2, x + y)
    (fresh,) = call(interpreter(STATE), "bump", y)  # state belongs to one interpreter
    np.testing.assert_array_equal(fresh, y)


def test_alloc_is_a_zeroed_array_of_the_element_type():
    interp = interpreter("""
      func.func @f() -> (memref<2x3xf32>, memref<4xi32>) {
        %a = memory.alloc : memref<2x3xf32>
        %b = memory.alloc : memref<4xi32>
        func.return %a, %b : memref<2x3xf32>, memref<4xi32>
      }""")
    a, b = interp.call_op("f", ())
    assert a.dtype == np.float32 and a.shape == (2, 3) and not a.any()
    assert b.dtype == np.int32 and b.shape == (4,) and not b.any()


def test_kernel_runs_its_body_on_the_ins_and_writes_the_outs():
    interp = interpreter("""
      memory.global @table {kind = "weight", weight = "table"} : memref<5x4xf32>
      func.func @f(%tok: memref<3xi32>, %pos: index) -> (memref<3x4xf32>, memref<3x4xf32>) {
        %t = memory.get_global @table : memref<5x4xf32>
        %e = memory.alloc : memref<3x4xf32>
        %p = memory.alloc : memref<3x4xf32>
        memory.kernel ins(%tok, %t, %pos : memref<3xi32>, memref<5x4xf32>, index)
                      outs(%e, %p : memref<3x4xf32>, memref<3x4xf32>) {
        ^bb0(%a: tensor<3xi32>, %b: tensor<5x4xf32>, %s: index):
          %x = transformer.embedding %a, %b : (tensor<3xi32>, tensor<5x4xf32>) -> tensor<3x4xf32>
          %y = transformer.position_embedding %a, %b start %s : tensor<3xi32>, tensor<5x4xf32> -> tensor<3x4xf32>
          memory.yield %x, %y : tensor<3x4xf32>, tensor<3x4xf32>
        }
        func.return %e, %p : memref<3x4xf32>, memref<3x4xf32>
      }""")
    table = STORE["table"]
    e, p = call(interp, "f", np.array([4, 0, 2], np.int32), 1)
    np.testing.assert_array_equal(e, table[[4, 0, 2]])
    np.testing.assert_array_equal(p, table[1:4])


def test_kernel_in_place_out_reads_the_old_value():
    interp = interpreter("""
      func.func @f(%x: memref<2x3xf32>) -> memref<2x3xf32> {
        %a = memory.alloc : memref<2x3xf32>
        memory.copy %x, %a : memref<2x3xf32>, memref<2x3xf32>
        memory.kernel ins(%a : memref<2x3xf32>) outs(%a : memref<2x3xf32>) {
        ^bb0(%v: tensor<2x3xf32>):
          %m = transformer.mul %v, %v : tensor<2x3xf32>
          %s = transformer.add %m, %v : tensor<2x3xf32>
          memory.yield %s : tensor<2x3xf32>
        }
        func.return %a : memref<2x3xf32>
      }""")
    x = rand(2, 3)
    (out,) = call(interp, "f", x)
    np.testing.assert_array_equal(out, x * x + x)


class _InputsSeen(Interpreter.Listener):
    """Records the values every interpreted op receives."""

    def __init__(self):
        self.inputs: dict[str, tuple] = {}

    def will_interpret_op(self, op, args):
        self.inputs[op.name] = args


def test_kernel_body_sees_its_ins_read_only():
    """Only `outs` may change: a body that wrote into an input would fail loudly."""
    module = parse_module("""
      func.func @f(%x: memref<2xf32>, %y: memref<2xf32>) {
        memory.kernel ins(%x : memref<2xf32>) outs(%y : memref<2xf32>) {
        ^bb0(%v: tensor<2xf32>):
          memory.yield %v : tensor<2xf32>
        }
        func.return
      }""", "test.mlir")
    seen = _InputsSeen()
    interp = Interpreter(module, listeners=(seen,))
    for functions in (FuncFunctions(), MemoryFunctions(STORE)):
        interp.register_implementations(functions)
    x, y = rand(2), np.zeros(2, np.float32)
    interp.call_op("f", (x, y))
    np.testing.assert_array_equal(y, x)
    (inside,) = seen.inputs["memory.yield"]
    assert np.shares_memory(inside, x) and not inside.flags.writeable


def test_copy_subview_and_dma():
    interp = interpreter("""
      func.func @f(%x: memref<4x3xf32>, %y: memref<2x2xf32>) -> (memref<4x3xf32>, memref<4x3xf32>, memref<2x2xf32>) {
        %a = memory.alloc : memref<4x3xf32>
        memory.copy %x, %a : memref<4x3xf32>, memref<4x3xf32>
        %v = memory.subview %a {offsets = array<i64: 1, 1>} : memref<4x3xf32> -> memref<2x2xf32>
        memory.copy %y, %v : memref<2x2xf32>, memref<2x2xf32>
        %b = memory.alloc : memref<4x3xf32>
        %t = memory.dma_start %a, %b : memref<4x3xf32>, memref<4x3xf32>
        memory.dma_wait %t
        memory.dealloc %b : memref<4x3xf32>
        func.return %a, %b, %v : memref<4x3xf32>, memref<4x3xf32>, memref<2x2xf32>
      }""")
    x, y = rand(4, 3), rand(2, 2)
    a, b, v = call(interp, "f", x, y)
    expected = x.copy()
    expected[1:3, 1:3] = y  # the subview is a window onto %a, not a copy
    np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(b, expected)
    np.testing.assert_array_equal(v, y)


def test_dma_token_and_wait():
    interp = interpreter("""
      func.func @f(%x: memref<3xf32>, %y: memref<3xf32>) -> !memory.dma_token {
        %t = memory.dma_start %x, %y : memref<3xf32>, memref<3xf32>
        memory.dma_wait %t
        func.return %t : !memory.dma_token
      }""")
    x, y = rand(3), np.zeros(3, np.float32)
    (token,) = interp.call_op("f", (x, y))
    assert isinstance(token, DmaToken) and token.waited
    np.testing.assert_array_equal(y, x)


# --- placement: one arena per memory space ---

def two_placed(offset_b: int) -> str:
    """Writes x into %a (sram offset 0), then y into %b (sram offset `offset_b`)."""
    return f"""
      func.func @f(%x: memref<4xf32>, %y: memref<4xf32>) -> (memref<4xf32, #memory.space<sram>>, memref<4xf32, #memory.space<sram>>) {{
        %a = memory.alloc {{offset = 0 : i64, alignment = 4 : i64}} : memref<4xf32, #memory.space<sram>>
        %b = memory.alloc {{offset = {offset_b} : i64, alignment = 4 : i64}} : memref<4xf32, #memory.space<sram>>
        memory.copy %x, %a : memref<4xf32>, memref<4xf32, #memory.space<sram>>
        memory.copy %y, %b : memref<4xf32>, memref<4xf32, #memory.space<sram>>
        func.return %a, %b : memref<4xf32, #memory.space<sram>>, memref<4xf32, #memory.space<sram>>
      }}"""


def test_overlapping_placements_corrupt_each_other():
    x, y = rand(4), rand(4)
    interp = interpreter(two_placed(8))  # %b starts at element 2 of %a
    a, b = call(interp, "f", x, y)
    np.testing.assert_array_equal(b, y)
    np.testing.assert_array_equal(a, np.concatenate([x[:2], y[:2]]))
    assert arena_sizes(interp.module) == {"sram": 24}


def test_disjoint_placements_do_not():
    x, y = rand(4), rand(4)
    interp = interpreter(two_placed(16))
    a, b = call(interp, "f", x, y)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, y)
    arena = MemoryFunctions(STORE).memory(interp).arenas["sram"]
    assert len(arena) == 32
    np.testing.assert_array_equal(np.frombuffer(arena, np.float32), np.concatenate([x, y]))


def test_placed_weight_is_loaded_into_its_arena_at_its_offset():
    interp = interpreter("""
      memory.global @w {kind = "weight", weight = "w", offset = 64 : i64} : memref<4x3xf32, #memory.space<flash>>
      memory.global @s {kind = "state", offset = 0 : i64} : memref<2xf32, #memory.space<sram>>
      func.func @f() -> memref<4x3xf32, #memory.space<flash>> {
        %w = memory.get_global @w : memref<4x3xf32, #memory.space<flash>>
        func.return %w : memref<4x3xf32, #memory.space<flash>>
      }""")
    (w,) = interp.call_op("f", ())
    memory = MemoryFunctions(STORE).memory(interp)
    flash = memory.arenas["flash"]
    assert len(flash) == 64 + W.nbytes and len(memory.arenas["sram"]) == 8
    np.testing.assert_array_equal(
        np.frombuffer(flash, np.float32, count=W.size, offset=64).reshape(W.shape), W)
    assert not any(flash[:64])
    np.testing.assert_array_equal(w, W)
    assert np.shares_memory(w, np.frombuffer(flash, np.uint8))


def test_placed_state_persists_in_the_arena():
    text = STATE.replace('{kind = "state"} : memref<2x2xf32>',
                         '{kind = "state", offset = 16 : i64} : memref<2x2xf32, #memory.space<dtim>>')
    text = text.replace("%s = memory.get_global @acc : memref<2x2xf32>",
                        "%s = memory.get_global @acc : memref<2x2xf32, #memory.space<dtim>>")
    text = text.replace("ins(%s, %x : memref<2x2xf32>, memref<2x2xf32>) outs(%s : memref<2x2xf32>)",
                        "ins(%s, %x : memref<2x2xf32, #memory.space<dtim>>, memref<2x2xf32>) "
                        "outs(%s : memref<2x2xf32, #memory.space<dtim>>)")
    text = text.replace("-> memref<2x2xf32> {", "-> memref<2x2xf32, #memory.space<dtim>> {")
    text = text.replace("func.return %s : memref<2x2xf32>",
                        "func.return %s : memref<2x2xf32, #memory.space<dtim>>")
    interp = interpreter(text)
    x = rand(2, 2)
    call(interp, "bump", x)
    call(interp, "bump", x)
    dtim = MemoryFunctions(STORE).memory(interp).arenas["dtim"]
    np.testing.assert_array_equal(
        np.frombuffer(dtim, np.float32, count=4, offset=16).reshape(2, 2), x + x)


def test_weight_of_another_type_is_reported():
    interp = interpreter("""
      memory.global @w {kind = "weight", weight = "w"} : memref<4x3xi8>
      func.func @f() -> memref<4x3xi8> {
        %w = memory.get_global @w : memref<4x3xi8>
        func.return %w : memref<4x3xi8>
      }""")
    with pytest.raises(IrtoolError, match=r'weight "w" is float32\[4, 3\] in the store but '
                                          r'memref<4x3xi8>'):
        interp.call_op("f", ())


def test_kernel_yield_of_the_wrong_shape_is_reported():
    """The verifier lets a `?` yield through; the interpreter checks the actual shape."""
    interp = interpreter("""
      memory.global @table {kind = "weight", weight = "table"} : memref<5x4xf32>
      func.func @f(%tok: memref<3xi32>) -> memref<2x4xf32> {
        %t = memory.get_global @table : memref<5x4xf32>
        %e = memory.alloc : memref<2x4xf32>
        memory.kernel ins(%tok, %t : memref<3xi32>, memref<5x4xf32>) outs(%e : memref<2x4xf32>) {
        ^bb0(%a: tensor<3xi32>, %b: tensor<5x4xf32>):
          %x = transformer.embedding %a, %b : (tensor<3xi32>, tensor<5x4xf32>) -> tensor<?x4xf32>
          memory.yield %x : tensor<?x4xf32>
        }
        func.return %e : memref<2x4xf32>
      }""")
    with pytest.raises(IrtoolError, match=r"yielded value 0 has shape \[3, 4\], its out buffer "
                                          r"\[2, 4\]"):
        interp.call_op("f", (np.array([0, 1, 2], np.int32),))


# --- an out placed on one of its own ins: poisoned, as the C kernel would see it ---

def out_on_in(offset_y: int, in_place: bool = False) -> str:
    """A kernel reading %x (sram bytes [0, 16)) and writing 2 * x to %y at `offset_y`; with
    `in_place` it writes %x itself (the very same buffer: allowed)."""
    t = "memref<4xf32, #memory.space<sram>>"
    out = "%x" if in_place else "%y"
    return f"""
      func.func @f(%in: memref<4xf32>) -> {t} {{
        %x = memory.alloc {{offset = 0 : i64, alignment = 4 : i64}} : {t}
        %y = memory.alloc {{offset = {offset_y} : i64, alignment = 4 : i64}} : {t}
        memory.copy %in, %x : memref<4xf32>, {t}
        memory.kernel ins(%x : {t}) outs({out} : {t}) {{
        ^bb0(%v: tensor<4xf32>):
          %s = transformer.add %v, %v : tensor<4xf32>
          memory.yield %s : tensor<4xf32>
        }}
        func.return {out} : {t}
      }}"""


@pytest.mark.parametrize("offset_y,nan_at", [(0, [0, 1, 2, 3]), (8, [2, 3]), (16, [])])
def test_out_overlapping_its_own_in_is_poisoned(offset_y, nan_at):
    """numpy computes the result whole before storing it, so without poisoning an out on top
    of its in would give right numbers here and garbage in C. The bytes of %y that are also
    %x's are NaN before the kernel reads %x: at offset 8, %y[0:2] is x[2:4], so y = 2 * x has
    NaN exactly at 2 and 3; disjoint (offset 16), nothing is poisoned."""
    x = rand(4)
    (y,) = call(interpreter(out_on_in(offset_y)), "f", x)
    expected = 2 * x
    expected[nan_at] = np.nan
    np.testing.assert_array_equal(y, expected)


def test_out_that_is_its_own_in_is_not_poisoned():
    x = rand(4)
    (y,) = call(interpreter(out_on_in(16, in_place=True)), "f", x)
    np.testing.assert_array_equal(y, 2 * x)


def test_poisoning_integers_and_views():
    """Integers get the 0xA5 byte pattern; a view of the out's own buffer is not another
    buffer, and only the elements sharing bytes with the other buffer are poisoned."""
    from irtool.interpreter.memory import POISON_BYTE, poison_overlapping_outs

    module = parse_module("""
      func.func @f() {
        %a = memory.alloc : memref<8xi16>
        %b = memory.alloc : memref<8xi16>
        %v = memory.subview %a {offsets = array<i64: 2>} : memref<8xi16> -> memref<4xi16>
        func.return
      }""", "test.mlir")
    a, b, v = (op.results[0] for op in module.walk()
               if op.name in ("memory.alloc", "memory.subview"))
    arena = np.arange(16, dtype=np.int16)
    out = arena[4:12]  # %a: elements 4..11 of the arena
    poison_overlapping_outs([(a, out)], [(v, out[2:6])])  # its own view: untouched
    assert out.tolist() == list(range(4, 12))
    poison_overlapping_outs([(a, out)], [(b, arena[10:14:2])])  # %b's elements 10 and 12
    pattern = int(np.frombuffer(bytes([POISON_BYTE]) * 2, np.int16)[0])
    assert out.tolist() == [4, 5, 6, 7, 8, 9, pattern, 11]
    assert arena[12] == 12  # outside the out buffer: never written
