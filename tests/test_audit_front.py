"""Checkpoint folders as users have them, not as transformers 5 writes them today.

Each case is a zoo model (tests/hf_zoo.py) saved with `save_pretrained`, then edited the way
older or differently-built folders look (config keys of earlier transformers versions, heads
of other tasks, quantization recipes, missing tensors). Where transformers loads the folder,
its own forward of the reloaded folder is the reference for irtool's logits; where the folder
is not a causal LM irtool can run, the import must fail with one line naming why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner
from tests import hf_zoo
from tests.requirements import need_module

need_module("torch")
need_module("transformers")

IDS = [int(i) for i in np.random.RandomState(11).randint(0, 96, 20)]  # past window 8


def _saved(name: str, folder: Path, **config) -> Path:
    """The zoo model `name` (its config updated with `config`) saved into `folder`."""
    z = hf_zoo.BY_NAME[name] if not config else hf_zoo.ZooModel(
        name, hf_zoo.BY_NAME[name].config_class, {**hf_zoo.BY_NAME[name].kwargs, **config})
    hf_zoo.build(z).save_pretrained(folder)
    return folder


def _edit_config(folder: Path, **changes) -> None:
    """Set (or, with None, remove) config.json keys."""
    p = folder / "config.json"
    config = json.loads(p.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    p.write_text(json.dumps(config, indent=2))


def _transformers_logits(folder: Path, ids) -> np.ndarray:
    """transformers' own reading of the folder, in float32: the reference."""
    import torch
    import transformers

    m = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager").eval()
    return hf_zoo.torch_logits(m, ids)


def _irtool_logits(folder: Path, ids) -> np.ndarray:
    module, store = import_model(folder)
    return ModelRunner(module, store).forward(ids)


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("legacy, fraction", [
    ({"rotary_pct": 0.5, "rotary_emb_base": 500.0}, 0.5),  # Pythia's config.json on the Hub
    ({}, 0.25),  # neither: transformers' GPT-NeoX default, not the whole head
])
def test_gpt_neox_legacy_rotary_keys(tmp_path, legacy, fraction):
    d = _saved("gpt-neox", tmp_path / "neox")
    _edit_config(d, rope_parameters=None, **legacy)
    want = _transformers_logits(d, IDS)
    module, _ = import_model(d)
    rotary = {op.rotary_dim.value.data for op in module.walk() if isinstance(op, tf.RopeOp)}
    assert rotary == {int(8 * fraction)}  # head_dim 8
    assert _relative_error(_irtool_logits(d, IDS), want) < 1e-4


def test_phi_without_partial_rotary_factor_uses_phis_default(tmp_path):
    d = _saved("phi", tmp_path / "phi")
    _edit_config(d, rope_parameters=None, partial_rotary_factor=None, rope_theta=10000.0)
    assert _relative_error(_irtool_logits(d, IDS), _transformers_logits(d, IDS)) < 1e-4


def test_gemma_legacy_hidden_act_gelu_means_tanh(tmp_path):
    """Gemma's released config.json says hidden_act "gelu"; transformers runs tanh-GELU."""
    d = _saved("gemma", tmp_path / "gemma")
    _edit_config(d, hidden_act="gelu", hidden_activation=None)
    assert _relative_error(_irtool_logits(d, IDS), _transformers_logits(d, IDS)) < 1e-4


def test_qwen2_legacy_sliding_window_config(tmp_path):
    """A Qwen2 config.json from before layer_types: use_sliding_window + max_window_layers
    decide which layers slide (here layer 1, window 8)."""
    d = _saved("qwen2", tmp_path / "qwen2", use_sliding_window=True, sliding_window=8,
               max_window_layers=1)
    _edit_config(d, layer_types=None)
    want = _transformers_logits(d, IDS)
    assert _relative_error(_irtool_logits(d, IDS), want) < 1e-4
    _edit_config(d, use_sliding_window=False)  # the window is off: sliding_window is ignored
    assert _relative_error(_irtool_logits(d, IDS), _transformers_logits(d, IDS)) < 1e-4
    assert _relative_error(_irtool_logits(d, IDS), want) > 1e-3  # and the window mattered


def _drop_tensor(folder: Path, name: str) -> None:
    from safetensors.numpy import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    del tensors[name]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize("name, head, tie", [("llama", "lm_head", False),
                                             ("llama", "lm_head", None),
                                             ("gpt-neox", "embed_out", False)])
def test_a_missing_untied_lm_head_is_refused(tmp_path, name, head, tie):
    """transformers would give the untied model a random head; the embedding in its place is
    no less wrong."""
    d = _saved(name, tmp_path / name)
    _drop_tensor(d, head + ".weight")
    _edit_config(d, tie_word_embeddings=tie)
    with pytest.raises(IrtoolError, match=rf"tensor '{head}.weight' \(the LM head\) is "
                                          r"missing .* tie_word_embeddings"):
        import_model(d)


def test_a_tied_config_without_lm_head_uses_the_embedding(tmp_path):
    d = _saved("llama", tmp_path / "llama")
    _drop_tensor(d, "lm_head.weight")
    _edit_config(d, tie_word_embeddings=True)
    assert _relative_error(_irtool_logits(d, IDS), _transformers_logits(d, IDS)) < 1e-4


def _cli_error(*args) -> str:
    proc = subprocess.run([str(Path(sys.executable).parent / "irtool"), *map(str, args)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr.splitlines()[0]


def test_a_sequence_classification_folder_is_refused(tmp_path):
    import transformers

    config = hf_zoo.BY_NAME["qwen2"].config()  # tied: the embedding would have stood in
    config.num_labels = 3
    d = tmp_path / "cls"
    transformers.Qwen2ForSequenceClassification(config).save_pretrained(d)
    line = _cli_error("import", d, "-o", tmp_path / "m.mlir")
    assert line.startswith("error: ") and "Qwen2ForSequenceClassification" in line
    assert "not a causal language model" in line


def test_a_quantized_folder_is_refused_by_its_method(tmp_path):
    d = _saved("llama", tmp_path / "gptq")
    _edit_config(d, quantization_config={"quant_method": "gptq", "bits": 4,
                                         "group_size": 128})
    line = _cli_error("import", d, "-o", tmp_path / "m.mlir")
    assert "quantization_config (quant_method 'gptq')" in line
    assert "not supported" in line


def test_a_config_without_model_type_is_named(tmp_path):
    d = tmp_path / "nomt"
    shutil.copytree(_saved("llama", tmp_path / "llama"), d)
    _edit_config(d, model_type=None)
    line = _cli_error("import", d, "-o", tmp_path / "m.mlir")
    assert "has no model_type" in line and "supported: " in line


def _generated_ids(folder: Path, prompt: str, steps: int) -> list[int]:
    proc = subprocess.run([str(Path(sys.executable).parent / "irtool"), "generate", str(folder),
                           "--prompt", prompt, "--steps", str(steps)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    line = next(t for t in proc.stdout.splitlines() if t.startswith("tokens: "))
    return [int(t) for t in line.removeprefix("tokens: ").split(",")]


@pytest.mark.parametrize("where", ["generation_config.json", "config.json"])
def test_generate_stops_where_transformers_generate_stops(tmp_path, where):
    """Instruction-tuned folders list several end tokens (Llama 3: eos_token_id [128001,
    128008, 128009]), in generation_config.json, which transformers' generate reads first,
    or in config.json: `--stop eos` (the default) must end at any of them."""
    import torch

    from irtool.tokenizer import load_tokenizer

    z = hf_zoo.BY_NAME["llama"]
    model = hf_zoo.build(z)
    d = tmp_path / "instruct"
    model.save_pretrained(d)
    hf_zoo.save_tokenizer(d, 96)
    text = "the fox ran to the river"
    prompt = load_tokenizer(d).encode(text)
    free = hf_zoo.torch_greedy(model, prompt, 10)
    end = free[4]  # a token greedy decoding reaches: an end token from there on
    ends = [95, end] if end != 95 else [94, end]
    _edit_config(d, eos_token_id=ends if where == "config.json" else 2)
    if where == "generation_config.json":
        (d / where).write_text(json.dumps({"eos_token_id": ends, "bos_token_id": 1}))
    else:
        (d / "generation_config.json").unlink(missing_ok=True)
    import transformers

    reloaded = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    out = reloaded.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False)
    want = out[0].tolist()
    assert want[-1] in ends  # transformers stopped at an end token, and prints it
    assert _generated_ids(d, text, 10) == want[:-1]  # irtool stops there, not printing it


@pytest.mark.parametrize("name, config, message", [
    # imported with the scaling it lacks, the logits were 0.57 off transformers'
    ("gpt2", {"scale_attn_weights": False}, "GPT-2 with scale_attn_weights = false"),
    # refused as a missing self_attn_layer_norm.weight before
    ("opt", {"layer_norm_elementwise_affine": False},
     "OPT with layer_norm_elementwise_affine = false"),
])
def test_family_options_without_support_are_refused_by_name(tmp_path, name, config, message):
    d = _saved(name, tmp_path / name, **config)
    line = _cli_error("import", d, "-o", tmp_path / "m.mlir")
    assert line.startswith(f"error: {message}") and "not supported" in line


def test_an_onnx_graph_without_lm_head_is_refused(tmp_path):
    """A base model exported to its hidden states (no LM head) imported with the hidden
    size taken for the vocabulary, and generate printed argmaxes of hidden features."""
    need_module("onnx")
    import torch

    model = hf_zoo.build(hf_zoo.BY_NAME["llama"])

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model.model

        def forward(self, input_ids):
            return self.m(input_ids=input_ids, use_cache=False).last_hidden_state

    path = tmp_path / "model.onnx"
    torch.onnx.export(Hidden().eval(), (torch.tensor([hf_zoo.EXPORT_IDS]),), str(path),
                      input_names=["input_ids"], output_names=["last_hidden_state"],
                      dynamo=True, dynamic_shapes={"input_ids": {
                          1: torch.export.Dim("T", min=2, max=hf_zoo.CONTEXT)}})
    line = _cli_error("import", path, "-o", tmp_path / "m.mlir")
    assert "has 128 rows, but output 'last_hidden_state' has 32 features" in line
    assert "not logits over the vocabulary" in line


def test_a_half_precision_onnx_export_is_refused_as_such(tmp_path):
    """A float16 export was refused as "unsupported ONNX op 'Mul'" (the RMSNorm computed
    between Casts): the line now says what the graph is and what to export instead."""
    need_module("onnx")
    import torch

    model = hf_zoo.build(hf_zoo.BY_NAME["llama"]).half()
    path = tmp_path / "model.onnx"
    torch.onnx.export(hf_zoo._LogitsOf(model).eval(), (torch.tensor([hf_zoo.EXPORT_IDS]),),
                      str(path), input_names=["input_ids"], output_names=["logits"],
                      dynamo=True, dynamic_shapes={"input_ids": {
                          1: torch.export.Dim("T", min=2, max=hf_zoo.CONTEXT)}})
    line = _cli_error("import", path, "-o", tmp_path / "m.mlir")
    assert "is a half-precision export" in line and "FLOAT16" in line
    assert "export the model in float32" in line


@pytest.mark.parametrize("kind", ["su", "yarn"])
def test_phi3_older_rope_type_names_are_longrope(tmp_path, kind):
    """Phi-3's first configs named its LongRoPE "su" (refused as an unknown type) or "yarn"
    (computed as YaRN); transformers reads both as longrope."""
    d = _saved("phi3", tmp_path / "phi3")
    factors = [1.0 + 0.25 * i for i in range(4)]  # head_dim 8: 4 rotary pairs
    _edit_config(d, rope_parameters=None, rope_theta=10000.0, original_max_position_embeddings=64,
                 rope_scaling={"type": kind, "short_factor": factors,
                               "long_factor": [2.0] * 4})
    assert _relative_error(_irtool_logits(d, IDS), _transformers_logits(d, IDS)) < 1e-4


def test_an_onnx_export_folder_points_at_its_onnx_file(tmp_path):
    """optimum writes config.json beside model.onnx: given the folder, irtool took it for a
    checkpoint folder and asked for save_pretrained."""
    d = tmp_path / "optimum"
    d.mkdir()
    hf_zoo.BY_NAME["llama"].config().save_pretrained(d)
    (d / "model.onnx").write_bytes(b"")
    line = _cli_error("import", d, "-o", tmp_path / "m.mlir")
    assert line == (f"error: '{d}' holds an ONNX export but no model.safetensors: give the "
                    f"ONNX file (irtool import {d / 'model.onnx'})")


@pytest.mark.parametrize("name, window, kept", [("mistral-window8", 64, None),
                                                ("phi3", 4096, None),
                                                ("mistral-window8", 63, 63)])
def test_a_window_the_context_never_reaches_is_no_window(tmp_path, name, window, kept):
    """A window of the whole context (64) or more never binds; it was imported as a window
    that extract-kv-cache then required and refused ("run extract-kv-cache with window=4096",
    "window must be between 1 and 64"), so such a folder could not compile."""
    z = hf_zoo.BY_NAME[name]
    z = hf_zoo.ZooModel(name, z.config_class, {**z.kwargs, "sliding_window": window})
    model = hf_zoo.build(z)
    model.save_pretrained(tmp_path / name)
    module, store = import_model(tmp_path / name)
    assert hf_zoo.attention_windows(module) == {kept}
    prompt = IDS[:5]
    got = ModelRunner(hf_zoo.memory_level(module, kept), store).generate(prompt, 9)
    assert got == hf_zoo.torch_greedy(model, prompt, 9)


def test_gguf_files_and_pytorch_pickles_are_named(tmp_path):
    """Both were refused as "not a llama2.c checkpoint (bad header: dim = 67324752 is
    implausibly large)"."""
    import torch

    gguf = tmp_path / "model-q4_0.gguf"
    gguf.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(64))
    line = _cli_error("import", gguf, "-o", tmp_path / "a.mlir")
    assert line.startswith(f"error: '{gguf}' is a GGUF file (llama.cpp)")
    state = hf_zoo.build(hf_zoo.BY_NAME["llama"]).state_dict()
    for name, zipped in (("pytorch_model.bin", True), ("legacy.pt", False)):
        torch.save(state, tmp_path / name, _use_new_zipfile_serialization=zipped)
        line = _cli_error("import", tmp_path / name, "-o", tmp_path / "b.mlir")
        assert line.startswith(f"error: '{tmp_path / name}' is a PyTorch pickle"), line


def test_a_top_level_original_context_wins_over_the_rope_parameters(tmp_path):
    """transformers reads original_max_position_embeddings at the config's top level first
    (Phi-3 keeps it there); irtool took the rope_scaling one (here 32 against 16)."""
    d = _saved("llama", tmp_path / "llama")
    _edit_config(d, rope_parameters=None, rope_theta=10000.0,
                 original_max_position_embeddings=16,
                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 32})
    assert _relative_error(_irtool_logits(d, IDS), _transformers_logits(d, IDS)) < 1e-4


def test_a_model_mixing_full_and_sliding_layers_gets_no_cache(tmp_path):
    """Qwen2 with use_sliding_window and max_window_layers 1: layer 0 full, layer 1 a window
    of 8. The error advises --window 8, and with it layer 0's cache became a ring of 8 too:
    other tokens than transformers' from the 3rd generated token on."""
    from irtool.tokenizer import load_tokenizer

    d = _saved("qwen2", tmp_path / "qwen2", use_sliding_window=True, sliding_window=8,
               max_window_layers=1)
    hf_zoo.save_tokenizer(d, 96)
    text = "the fox ran to the river"
    line = _cli_error("generate", d, "--prompt", text, "--steps", "12", "--level", "decode")
    assert line.endswith("(irtool generate --level decode and irtool compile: --window 8)")
    line = _cli_error("generate", d, "--prompt", text, "--steps", "12", "--level", "decode",
                      "--window", "8")
    assert line == (
        "error: extract-kv-cache: transformer.attention #1 slides a window of 8 keys but #0 "
        "attends to every earlier key: every layer's cache has one shape, so no cache fits "
        "both; run the model without a cache (irtool generate --level forward)")
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager")
    prompt = load_tokenizer(d).encode(text)
    want = prompt + hf_zoo.torch_greedy(model.eval(), prompt, 12)
    assert _generated_ids(d, text, 12) == want  # --level forward: transformers' tokens


def test_generate_finds_the_tokenizer_json_beside_an_onnx_export(tmp_path):
    """optimum's export folder holds model.onnx, config.json and tokenizer.json; the README
    says the tokenizer is found beside the model, but only tok<N>.bin and vocab.json were."""
    need_module("onnx")
    from irtool.tokenizer import load_tokenizer

    model, path = hf_zoo.export_onnx(hf_zoo.BY_NAME["llama-gqa"], "dynamo", tmp_path / "onnx")
    hf_zoo.save_tokenizer(path.parent, 96)  # fewer ids than the model's 128, as is common
    text = "the fox ran to the river"
    prompt = load_tokenizer(path.parent).encode(text)
    assert _generated_ids(path, text, 8) == prompt + hf_zoo.torch_greedy(model, prompt, 8)


def test_a_peft_adapter_folder_is_named(tmp_path):
    """A LoRA adapter folder (adapter_config.json + adapter_model.safetensors) was refused as
    a folder without config.json, told to save_pretrained the model."""
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4,
                                                       "lora_alpha": 8}))
    (d / "adapter_model.safetensors").write_bytes(b"")
    line = _cli_error("import", d, "-o", tmp_path / "m.mlir")
    assert line == (f"error: '{d}' is a PEFT adapter (adapter_config.json), not a model: import "
                    "its base model, and give the adapter to irtool compile --lora "
                    f"NAME={d / 'adapter_model.safetensors'}")


def test_an_eos_id_the_tokenizer_lacks_does_not_stop_generate(tmp_path):
    """A small GPT-2 keeps GPT2Config's eos_token_id 50256 over its own 160-token vocabulary:
    `irtool generate DIR` (default --stop eos) was refused, "--stop token 50256 is outside
    the vocabulary (0..159)", though no --stop was given; transformers generates."""
    from irtool.tokenizer import load_tokenizer

    model = hf_zoo.build(hf_zoo.BY_NAME["gpt2"])
    d = tmp_path / "gpt2"
    model.save_pretrained(d)
    assert json.loads((d / "config.json").read_text())["eos_token_id"] == 50256
    hf_zoo.save_tokenizer(d, 96)
    text = "the fox ran to the river"
    prompt = load_tokenizer(d).encode(text)
    assert _generated_ids(d, text, 8) == prompt + hf_zoo.torch_greedy(model, prompt, 8)
