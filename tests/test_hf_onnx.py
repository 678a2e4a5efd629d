"""ONNX exports of the Hugging Face zoo (tests/hf_zoo.py), imported as a user would.

Every zoo model is exported the stock ways (torch.onnx.export with dynamo=True and the default
SDPA attention, the same with eager attention, and the legacy exporter with optimum's three
inputs), once per module. An import must give onnxruntime's and torch's logits (1e-4
relative, over 20 tokens: past the sliding window of mistral-window8) and, at the memory
level, the torch model's greedy tokens. Combinations irtool cannot import yet are listed in
NOT_YET with the error they must raise (strict xfail: one that starts to pass fails here
until the table is updated).
"""

from __future__ import annotations

import numpy as np
import pytest

from irtool.errors import IrtoolError
from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner
from tests import hf_zoo
from tests.requirements import need_module

need_module("torch")
need_module("transformers")
need_module("onnxruntime")

IDS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]
PROMPT, STEPS = IDS[:5], 9

# (model, exporter) -> why it does not import yet
NOT_YET: dict[tuple[str, str], str] = {}


def cases():
    for z in hf_zoo.ZOO:
        for exporter in hf_zoo.EXPORTERS:
            why = NOT_YET.get((z.name, exporter))
            marks = [pytest.mark.xfail(strict=True, raises=IrtoolError, reason=why)] if why \
                else []
            yield pytest.param(z.name, exporter, marks=marks, id=f"{z.name}-{exporter}")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(model, exporter) -> (torch model, model.onnx), each exported once per module."""
    root = tmp_path_factory.mktemp("hf_onnx")
    done: dict[tuple[str, str], tuple] = {}

    def get(name: str, exporter: str):
        if (name, exporter) not in done:
            done[name, exporter] = hf_zoo.export_onnx(hf_zoo.BY_NAME[name], exporter,
                                                      root / name / exporter)
        return done[name, exporter]

    return get


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize(("name", "exporter"), cases())
def test_export_logits_match_onnxruntime_and_torch(exports, name, exporter):
    model, path = exports(name, exporter)
    module, store = import_model(path)
    got = ModelRunner(module, store).forward(IDS)
    assert relative_error(got, hf_zoo.onnxruntime_logits(path, IDS)) < 1e-4
    assert relative_error(got, hf_zoo.torch_logits(model, IDS)) < 1e-4
    window = hf_zoo.BY_NAME[name].window
    assert hf_zoo.attention_windows(module) == {window}
    assert module.attributes["irtool.max_seq_len"].value.data == hf_zoo.CONTEXT
    if exporter == "legacy":  # optimum's extra inputs, bound and said so in the IR
        assert module.attributes["irtool.onnx_bound_inputs"].data == (
            "attention_mask = ones [1, T]; position_ids = 0..T-1 [1, T]")


@pytest.mark.parametrize(("name", "exporter"), cases())
def test_export_greedy_tokens_at_the_memory_level(exports, name, exporter):
    model, path = exports(name, exporter)
    module, store = import_model(path)
    window = hf_zoo.BY_NAME[name].window
    got = ModelRunner(hf_zoo.memory_level(module, window), store).generate(PROMPT, STEPS)
    assert got == hf_zoo.torch_greedy(model, PROMPT, STEPS)


def _graph_with_inputs(path, *extra: str):
    """A stub model: token ids plus `extra` int64 [1, T] inputs, logits [1, T, 8]."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, [1, "T"])
              for n in ("input_ids", *extra)]
    table = helper.make_tensor("table", TensorProto.FLOAT, [16, 8], [0.0] * 128)
    node = helper.make_node("Gather", ["table", "input_ids"], ["logits"])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "T", 8])
    onnx.save(helper.make_model(helper.make_graph([node], "g", inputs, [out], [table])), path)
    return path


def test_kv_cache_and_unknown_inputs_are_refused_with_advice(tmp_path):
    with pytest.raises(IrtoolError, match="takes a KV cache as input .*use_cache=False"):
        import_model(_graph_with_inputs(tmp_path / "a.onnx", "attention_mask",
                                        "past_key_values.0.key"))
    with pytest.raises(IrtoolError, match="inputs irtool cannot bind: pixel_values"):
        import_model(_graph_with_inputs(tmp_path / "b.onnx", "pixel_values"))


def test_a_graph_traced_at_a_fixed_length_is_explained(tmp_path):
    """A legacy export without dynamic axes, declared fixed or (edited) declared dynamic:
    both say which length the graph fixes."""
    import onnx
    import torch

    model = hf_zoo.build(hf_zoo.BY_NAME["llama"])
    ids = torch.tensor([hf_zoo.EXPORT_IDS])
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(hf_zoo._LogitsOf(model).eval(),
                      (ids, torch.ones_like(ids), torch.arange(ids.shape[1])[None]), str(path),
                      dynamo=False, opset_version=17, output_names=["logits"],
                      input_names=["input_ids", "attention_mask", "position_ids"])
    n = len(hf_zoo.EXPORT_IDS)
    with pytest.raises(IrtoolError, match=f"fixes the sequence length to {n} .input 'input_ids'"):
        import_model(path)
    m = onnx.load(path)
    for value in list(m.graph.input) + list(m.graph.output):
        value.type.tensor_type.shape.dim[1].dim_param = "T"
    onnx.save(m, tmp_path / "declared_dynamic.onnx")
    with pytest.raises(IrtoolError, match=f"fixes the sequence length to {n} .its shape arithm"):
        import_model(tmp_path / "declared_dynamic.onnx")


def test_an_unsupported_op_is_named_with_what_it_usually_is(tmp_path):
    """OPT with a ReLU6 MLP (a Clip node): no clamp op in the dialect; the error names the
    node and says where such a node comes from."""
    relu6_opt = hf_zoo.ZooModel("opt-relu6", "OPTConfig", {
        **hf_zoo.BY_NAME["opt"].kwargs, "activation_function": "relu6"})
    _, path = hf_zoo.export_onnx(relu6_opt, "dynamo", tmp_path / "opt-relu6")
    with pytest.raises(IrtoolError, match=r"unsupported ONNX op 'Clip' \(node '[^']+'.*this is "
                                          r"usually a clamped activation \(ReLU6"):
        import_model(path)


def test_logit_soft_capping_is_named(tmp_path):
    """Gemma 2 caps its logits with tanh(x / c) * c (as its export spells it, here in a
    graph of four nodes): no op for it; the error says what it is."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    consts = [numpy_helper.from_array(a, n) for n, a in [
        ("table", rng.standard_normal((16, 8)).astype(np.float32)),
        ("w", rng.standard_normal((8, 16)).astype(np.float32)),
        ("cap", np.array(30.0, dtype=np.float32))]]
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["x"]),
             helper.make_node("MatMul", ["x", "w"], ["y"]),
             helper.make_node("Div", ["y", "cap"], ["d"]),
             helper.make_node("Tanh", ["d"], ["t"]),
             helper.make_node("Mul", ["t", "cap"], ["logits"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "T"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "T", 16])], consts)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              tmp_path / "capped.onnx")
    with pytest.raises(IrtoolError, match=r"tanh\(x / 30\) \* 30 is logit soft-capping"):
        import_model(tmp_path / "capped.onnx")


def test_a_window_shows_only_past_it_and_is_found_there(exports, tmp_path, monkeypatch):
    """mistral-window8 without its config.json (context: the 2048 default) still imports
    with window 8: masks are classified at the context length. When the mask cannot be
    evaluated that far (here: limited to 8 tokens, where the window looks causal), the import
    is refused with how to give the window, and with the config.json back it imports right."""
    import shutil

    from irtool.frontend import onnx_import

    _, path = exports("mistral-window8", "dynamo")
    for f in path.parent.glob("model.onnx*"):  # the graph and its external weights
        shutil.copy(f, tmp_path / f.name)
    lone = tmp_path / "model.onnx"
    module, _ = import_model(lone)
    assert hf_zoo.attention_windows(module) == {8}
    monkeypatch.setattr(onnx_import, "MASK_LENGTH_LIMIT", 8)
    with pytest.raises(IrtoolError, match=r"is causal up to 8 tokens, but the model's context "
                                          r"is 2048 tokens.*sliding window of 8 keys or more "
                                          r"would not show; put the model's config.json"):
        import_model(lone)
    shutil.copy(path.parent / "config.json", tmp_path / "config.json")
    module, store = import_model(lone)  # the config declares window 8: evaluated at 9
    assert hf_zoo.attention_windows(module) == {8}
    got = ModelRunner(module, store).forward(IDS)
    assert relative_error(got, hf_zoo.onnxruntime_logits(path, IDS)) < 1e-4


def test_compiled_qwen3_export_gives_the_torch_tokens_on_qemu(exports, tmp_path):
    """The head-by-head attention of Qwen3's per-head q/k norms through the whole riscv-ulp
    build: the program's tokens are the torch model's greedy ones. (Every family's dynamo
    export was run this way once; one run here keeps the suite short.)"""
    import subprocess
    import sys
    from pathlib import Path

    from tests.requirements import need
    from tests.test_riscv_ulp import Run

    need("riscv", "qemu")
    model, path = exports("qwen3", "dynamo")
    out = tmp_path / "c"
    proc = subprocess.run([str(Path(sys.executable).parent / "irtool"), "compile", str(path),
                           "--prompt-tokens", ",".join(map(str, PROMPT)), "--steps",
                           str(STEPS), "-o", str(out)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run(["make", "-s", "run"], cwd=out, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    assert Run.parse(run.stdout).tokens == hf_zoo.torch_greedy(model, PROMPT, STEPS)
