"""siracusa with `--integer-only`: stories260K W8A8 + int8 KV with the integer RMSNorm, SiLU
and softmax (irtool/numerics/intops.py), on qemu-system-riscv32 with 8 harts.

The reference is the quant-level interpreter running the same integer ops (whose numpy
functions tests/test_intops.py checks against an independent scalar reference, and the C
kernels bit for bit); the program must print its greedy tokens, with every hart working in
every decode step (the TCG plugin's counts), the RoPE and KV writes of a token forked over the
cores, and the float lm_head streamed in few tiles (the planner's per-tile fork/join cost).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.requirements import need
from tests.test_siracusa import CAPACITY, STEPS, _hartcount, _make, _tokens, without_npu


@pytest.fixture(scope="module")
def int_level(shared_models, tmp_path_factory):
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model

    d = shared_models / "stories260K"
    target = str(without_npu(tmp_path_factory.mktemp("target") / "siracusa_cluster"))
    opts = CompileOptions(target=target, capacity=CAPACITY, quant="w8a8", kv="int8",
                          calibration=str(d / "eval_tokens.json"), time_limit=5,
                          integer_only=True)
    module, store = import_model(d / "stories260K.bin")
    module, store = prepare_for_target(module, store, opts)
    return module, store, opts


def test_qemu_eight_cores_print_the_integer_only_interpreter_tokens(int_level, shared_models,
                                                                     tmp_path):
    need("riscv", "qemu", "cc")
    from irtool.compile import compile_to_c
    from irtool.interpreter.runner import ModelRunner
    from irtool.tokenizer import load_tokenizer

    module, store, opts = int_level
    names = {op.name for op in module.walk()}
    assert {"quant.int_rms_norm", "quant.int_silu"} <= names
    assert not names & {"transformer.rms_norm", "transformer.silu"}
    golden = json.loads((shared_models / "stories260K" / "golden.json").read_text())
    want = ModelRunner(module.clone(), store).generate(golden["prompt_ids"], STEPS)
    out = tmp_path / "out"
    compile_to_c(module.clone(), store, out, prompt=golden["prompt_ids"], steps=STEPS,
                 tokenizer=load_tokenizer(shared_models / "stories260K" / "tok512.bin"),
                 opts=dataclasses.replace(opts, quant="none", kv="none", calibration=None))
    model_c = (out / "model.c").read_text()
    # attention by heads and SiLU by values on the 8 cores, with the integer versions
    assert model_c.count("  sir_cached_attention_i8_isoftmax(") == 5
    assert model_c.count("  sir_int_silu_f32(") == 5
    assert "  sir_cached_attention_i8(" not in model_c and "irt_silu_f32(" not in model_c
    # the one-token norm stays on core 0 (one row); RoPE of the query (8 heads) and the int8
    # KV writes (4 kv heads) fork, RoPE of the key (4 heads) does not (split_rules.py)
    assert model_c.count("  irt_int_rms_norm_f32(") == 11
    assert model_c.count("  sir_rope_f32(") == 5 and model_c.count("  irt_rope_f32(") == 5
    assert model_c.count("  sir_kv_write_i8(") == 10
    # the tile planner charges a fork/join per tile: the float lm_head (128 KiB) streams in
    # the fewest tiles two L1 windows allow, not in dozens
    assert model_c.count("  sir_linear_f32(") <= 4
    text = _make(out, "run", "CORES=8")
    assert _tokens(text) == want
    harts, total = _hartcount(text)
    steps = len(golden["prompt_ids"]) + STEPS - 1
    assert set(harts) == set(range(8)) and total["steps"] == steps
    assert all(harts[h][0] == harts[h][1] > 0 for h in range(1, 8))
    # one parallel phase per cluster call and step, counted by the plugin
    assert total["phases"] == model_c.count("  sir_") * steps


def test_riscv_ulp_runs_the_same_integer_ops_on_qemu(int_level, shared_models, tmp_path):
    """The portable rules: one core of riscv-ulp prints the same interpreter tokens."""
    need("riscv", "qemu", "cc")
    from irtool.compile import compile_to_c
    from irtool.interpreter.runner import ModelRunner

    module, store, opts = int_level
    prompt, steps = [1, 403, 407, 161], 6
    want = ModelRunner(module.clone(), store).generate(prompt, steps)
    out = tmp_path / "ulp"
    compile_to_c(module.clone(), store, out, prompt=prompt, steps=steps, tokenizer=None,
                 opts=dataclasses.replace(opts, target="riscv-ulp", quant="none", kv="none",
                                          calibration=None))
    model_c = (out / "model.c").read_text()
    assert model_c.count("  irt_int_rms_norm_f32(") == 11
    assert model_c.count("  irt_int_silu_f32(") == 5
    assert model_c.count("  irt_cached_attention_i8_isoftmax(") == 5
    assert _tokens(_make(out, "run")) == want
