"""The quantized linears over 16-row panels (targets/c/runtime/irt_linear_packed_q.[ch]) and
their layout (`row_panels16`, targets/panel_layout.py).

The layout is checked against a packing written here element by element from the words of
irt_linear_packed_q.h, and unpacked back.  Each kernel runs under AddressSanitizer and UBSan
(targets/c/runtime/tests/irt_quant_packed_test_driver.c, buffers exactly sized, y starting
as NaN) on weights packed by the compiler's function, and is compared with a numpy
reference written from the quantization contract (float64 sums within a tolerance relative
to the magnitude of the terms; w8a8 bit for bit), and bit for bit with the row-major kernel
of irt_quant.h on the unpacked weights (the header promises the same numbers).  The shapes
include stories260K's (K, N in 64, 32, 172) and every panel width (16, 8, 4, 2, 1).  The
inner loops' instruction counts on rv32imafc are pinned from the disassembly; the tokens on
qemu are tests/test_riscv_ulp_quant.py's.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.c_kernel_harness import HOST_CC, HOST_FLAGS, RUNTIME, compile_driver
from tests.requirements import need
from tests.test_c_quant_kernels import (
    F32,
    assert_bits_equal,
    ceil_div,
    check_close,
    randn,
    ref_pack_int4,
    ref_quantize_w4,
    ref_quantize_w8,
    ref_w4g,
    ref_w8a8,
    rng_for,
)

DRIVER_SOURCE = RUNTIME / "tests" / "irt_quant_packed_test_driver.c"

SHAPES = [  # T, K, N: stories260K's layers, every panel width, odd and tiny sizes
    (1, 64, 64), (1, 64, 32), (1, 64, 172), (1, 172, 64), (2, 13, 31), (3, 9, 16),
    (1, 1, 1), (1, 5, 7), (2, 8, 24), (1, 3, 2), (1, 20, 15), (2, 31, 47), (1, 2, 3)]


def packed_by_definition(m: np.ndarray) -> np.ndarray:
    """m [N][L] packed as irt_linear_packed_q.h says, element by element: panels of 16 rows
    while 16 remain, then one each of 8, 4, 2, 1 for the bits of N % 16; [l][r] inside."""
    n, cols = m.shape
    widths = [16] * (n // 16) + [p for p in (8, 4, 2, 1) if (n % 16) & p]
    out, n0 = [], 0
    for p in widths:
        for c in range(cols):
            for r in range(p):
                out.append(m[n0 + r, c])
        n0 += p
    return np.array(out, dtype=m.dtype)


# ------------------------------------------------------------------------- the layout

@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.float32])
@pytest.mark.parametrize("n,cols", [(1, 1), (16, 3), (31, 5), (172, 32), (47, 2), (0, 4)])
def test_row_panels16_layout(n, cols, dtype):
    from irtool.targets.panel_layout import (
        LAYOUTS,
        PANEL_ROWS_Q,
        panel_widths,
        stored,
        unpack_row_panels,
    )

    m = rng_for("layout", n, cols).integers(-128, 128, (n, cols)).astype(dtype)
    packed = stored(m, "row_panels16")
    assert packed.dtype == m.dtype and packed.size == m.size
    assert np.array_equal(packed, packed_by_definition(m))
    assert np.array_equal(unpack_row_panels(packed, n, cols, PANEL_ROWS_Q), m)
    assert sum(panel_widths(n, PANEL_ROWS_Q)) == n
    assert LAYOUTS["row_panels16"] is not LAYOUTS["row_panels24"]


# ------------------------------------------------------------------------- the kernels

class PackedRunner:
    def __init__(self, exe: Path, work: Path):
        self.exe, self.work = exe, work

    def run(self, kernel: str, params: dict, arrays: dict[str, np.ndarray],
            out: str = "y") -> np.ndarray:
        d = Path(tempfile.mkdtemp(prefix=kernel + "-", dir=self.work))
        # a float as the repr of its float32 value, which strtof reads back exactly
        (d / "params.txt").write_text("".join(
            f"{k} {repr(float(v)) if isinstance(v, (float, np.floating)) else int(v)}\n"
            for k, v in params.items()))
        for name, arr in arrays.items():
            np.ascontiguousarray(arr).tofile(d / f"{name}.bin")
        proc = subprocess.run([str(self.exe), kernel, str(d)], capture_output=True, text=True)
        assert proc.returncode == 0, f"driver failed on {kernel} {params}:\n{proc.stderr}"
        y = np.fromfile(d / f"{out}.out", dtype=F32)
        shutil.rmtree(d)
        return y

    def both(self, kernel: str, params: dict, arrays: dict[str, np.ndarray],
             packed: dict[str, np.ndarray]) -> np.ndarray:
        """The packed kernel's y, after checking it equals the row-major kernel's bit for bit."""
        got = self.run(kernel, {**params, "packed": 1}, {**arrays, **packed})
        assert_bits_equal(got, self.run(kernel, {**params, "packed": 0}, arrays))
        return got


@pytest.fixture(scope="module")
def prunner(tmp_path_factory) -> PackedRunner:
    need("cc")
    build = tmp_path_factory.mktemp("irt_quant_packed_build")
    exe = compile_driver(HOST_CC, HOST_FLAGS, DRIVER_SOURCE, build / "driver")
    return PackedRunner(exe, tmp_path_factory.mktemp("irt_quant_packed_runs"))


def _pack(m: np.ndarray) -> np.ndarray:
    from irtool.targets.panel_layout import stored
    return stored(m, "row_panels16")


@pytest.mark.parametrize("bias,per_tensor", [(False, 0), (True, 0), (True, 1)])
@pytest.mark.parametrize("T,K,N", SHAPES)
def test_linear_w8_packed(prunner, T, K, N, bias, per_tensor):
    rng = rng_for("w8p", T, K, N, bias, per_tensor)
    x, w, b = randn(rng, T, K), randn(rng, N, K), randn(rng, N)
    wq, s = ref_quantize_w8(w, bool(per_tensor))
    sn = np.broadcast_to(s, (N,)).astype(np.float64)
    terms = x.astype(np.float64)[:, None, :] * wq.astype(np.float64)[None, :, :]
    want, mag = terms.sum(-1) * sn, np.abs(terms).sum(-1) * sn
    arrays = {"x": x, "w": wq, "s": s}
    if bias:
        arrays["bias"] = b
        want, mag = want + b, mag + np.abs(b)
    params = {"T": T, "K": K, "N": N, "per_tensor": per_tensor, "has_bias": bias}
    got = prunner.both("linear_w8", params, arrays, {"w": _pack(wq)})
    check_close(got, want, mag)


W4_CASES = [  # T, K, N, group
    (1, 64, 64, 32), (1, 64, 172, 32), (1, 172, 64, 32), (2, 7, 5, 32), (1, 33, 31, 32),
    (3, 32, 24, 32), (1, 65, 7, 32), (2, 40, 21, 16), (1, 9, 19, 2), (1, 1, 3, 32),
    (1, 30, 16, 4)]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,K,N,group", W4_CASES)
def test_linear_w4g_packed(prunner, T, K, N, group, bias):
    rng = rng_for("w4p", T, K, N, group, bias)
    x, w, b = randn(rng, T, K), randn(rng, N, K), randn(rng, N)
    w[0, :min(K, group)] = 0.0  # an all-zero group: s = 1.0
    x[0, :3] = [0.0, -0.0, 1e-20][:min(K, 3)]  # zeros and a small activation
    q, s = ref_quantize_w4(w, group)
    wb = ref_pack_int4(q, pad_nibble=9)  # an odd K's padding nibble must be ignored
    arrays = {"x": x, "w": wb, "s": s}
    if bias:
        arrays["bias"] = b
    want, mag = ref_w4g(x, q, s, b if bias else None, group)
    assert s.shape == (N, ceil_div(K, group))
    got = prunner.both("linear_w4g", {"T": T, "K": K, "N": N, "group": group,
                                      "has_bias": bias}, arrays,
                       {"w": _pack(wb), "s": _pack(s)})
    check_close(got, want, mag)


def test_linear_w4g_packed_every_code(prunner):
    """Every code -8..7 in every row position and nibble, small integer activations and
    power-of-two scales: every float sum is exact, so numpy's float32 values are the bits."""
    T, K, N, group = 2, 36, 21, 4
    q = ((np.arange(N * K).reshape(N, K) * 7 + np.arange(N)[:, None]) % 16 - 8).astype(np.int8)
    x = rng_for("w4-codes").integers(-3, 4, (T, K)).astype(F32)
    s = (2.0 ** rng_for("w4-codes-s").integers(-3, 3, (N, K // group))).astype(F32)
    want = np.zeros((T, N), np.float64)
    for g in range(K // group):
        sl = slice(g * group, (g + 1) * group)
        want += (x[:, sl].astype(np.float64) @ q[:, sl].T.astype(np.float64)) * s[:, g]
    wb = ref_pack_int4(q)
    got = prunner.both("linear_w4g", {"T": T, "K": K, "N": N, "group": group, "has_bias": 0},
                       {"x": x, "w": wb, "s": s}, {"w": _pack(wb), "s": _pack(s)})
    assert_bits_equal(got, want.astype(F32))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,K,N", SHAPES)
def test_linear_w8a8_packed(prunner, T, K, N, bias):
    rng = rng_for("w8a8p", T, K, N, bias)
    xq = rng.integers(-128, 128, (T, K)).astype(np.int8)
    wq = rng.integers(-127, 128, (N, K)).astype(np.int8)
    m, b = (np.abs(randn(rng, N)) * F32(1e-3)).astype(F32), randn(rng, N)
    zx = int(rng.integers(-128, 128))
    arrays = {"xq": xq, "w": wq, "m": m}
    if bias:
        arrays["bias"] = b
    got = prunner.both("linear_w8a8", {"T": T, "K": K, "N": N, "zx": zx, "has_bias": bias},
                       arrays, {"w": _pack(wq)})
    assert_bits_equal(got, ref_w8a8(xq, zx, wq, m, b if bias else None))


# ------------------------------------------------------------------------- rv32imafc code

@pytest.mark.needs("riscv")
@pytest.mark.parametrize("function,macs,max_insns", [
    # 16 rows x 4 columns: 4 flw, 64 x (lb, fcvt.s.w, fmadd.s), 4 loop: 3.1 / MAC
    ("irt__w8_panel16", 64, 200),
    # 16 rows x 2 bytes: 4 flw + 4 fmul.s, 32 x (lb, slli, andi), 64 x (fcvt.s.w, fmadd.s), 4
    # loop: 3.7 / MAC
    ("irt__w4_panel16", 64, 236),
])
def test_inner_loop_cost(tmp_path, function, macs, max_insns):
    from tests.c_kernel_harness import TARGET_CC, TARGET_FLAGS
    from tests.test_c_runtime import innermost_loop

    need("riscv")
    obj = tmp_path / "q.o"
    subprocess.run([TARGET_CC, *TARGET_FLAGS, "-c", str(RUNTIME / "irt_linear_packed_q.c"),
                    "-o", str(obj)], check=True)
    dis = subprocess.run([TARGET_CC.replace("gcc", "objdump"), "-d", "--no-show-raw-insn",
                          str(obj)], capture_output=True, text=True, check=True).stdout
    loop = innermost_loop(dis, function)
    assert loop.count("fmadd.s") == macs, loop
    assert len(loop) <= max_insns, (len(loop), loop)


# ------------------------------------------------------------------------- the rules

def test_riscv_ulp_rules_pack_only_weights_the_linears_alone_read(shared_models, tmp_path):
    """stories260K with --quant w4g32 --quantize-lm-head: the layers' weights and scales are
    stored in panels, but the classifier's weight is also the token embedding's table
    (tied), which irt_embedding_w4g reads row by row: that linear keeps the row-major kernel
    (lower-to-hw's layout check would refuse a mix)."""
    from irtool.compile import CompileOptions, compile_to_c
    from irtool.frontend.load import import_model

    module, store = import_model(shared_models / "stories260K" / "stories260K.bin")
    opts = CompileOptions(target="riscv-ulp", capacity=16, quant="w4g32",
                          quantize_lm_head=True)
    compile_to_c(module, store, tmp_path, prompt=[1], steps=2, tokenizer=None, opts=opts)
    model_c = (tmp_path / "model.c").read_text()
    assert model_c.count("irt_linear_w4g_packed(") == 5 * 7  # 5 layers x q k v o w1 w2 w3
    assert model_c.count("irt_linear_w4g(") == 1 and "irt_embedding_w4g(" in model_c


# ------------------------------------------------------------------------- int8 attention, hd 8

ATTENTION_CASES = [
    # layers, layer, heads, kv_heads, capacity, ring, end, T
    (1, 0, 2, 2, 8, 0, 5, 5),     # one head per kv head (the single-head pass), prefill rows
    (2, 1, 8, 4, 16, 0, 11, 1),   # stories260K's heads: pairs, layer 1
    (1, 0, 4, 1, 6, 1, 10, 3),    # MQA, a ring wrapped, rows straddling the wrap
    (1, 0, 3, 1, 5, 1, 7, 2),     # a group of 3: a pair and a single head
    (1, 0, 2, 1, 128, 0, 1, 1),   # one cached position
]


@pytest.mark.parametrize("layers,layer,heads,kv_heads,capacity,ring,end,T", ATTENTION_CASES)
def test_cached_attention_i8_hd8(prunner, layers, layer, heads, kv_heads, capacity, ring, end,
                                 T):
    """Against float64 attention over the dequantized rows (float32(q) * s), written here."""
    import math

    from tests.test_c_quant_kernels import attention_reference

    rng = rng_for("att8", layers, layer, heads, kv_heads, capacity, ring, end, T)
    shape = (layers, kv_heads, capacity)
    kc, vc = (rng.integers(-127, 128, (*shape, 8)).astype(np.int8) for _ in range(2))
    ks, vs = ((np.abs(randn(rng, *shape)) * F32(0.05) + F32(1e-3)).astype(F32)
              for _ in range(2))
    q = randn(rng, T, heads * 8, scale=3.0)
    scale = F32(1.0 / math.sqrt(8))
    first = max(0, end - capacity)
    slots = [p % capacity if ring else p for p in range(first, end)]

    def dequant(cache, scales):
        rows = cache[layer][:, slots].astype(F32) * scales[layer][:, slots][..., None]
        return rows.astype(F32).transpose(1, 0, 2).reshape(len(slots), kv_heads * 8)

    want, mag = attention_reference(q, dequant(kc, ks), dequant(vc, vs), heads, kv_heads, 8,
                                    float(scale), end - T - first)
    got = prunner.run("cached_attention_i8_hd8",
                      {"layers": layers, "layer": layer, "heads": heads, "kv_heads": kv_heads,
                       "capacity": capacity, "T": T, "end": end, "ring": ring, "scale": scale},
                      {"q": q, "kcache": kc, "kscales": ks, "vcache": vc, "vscales": vs},
                      out="out")
    check_close(got, want, mag + 1e-7)
