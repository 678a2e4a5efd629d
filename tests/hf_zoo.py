"""A zoo of small random-weight Hugging Face decoders, one per family and variant.

Each entry is a seeded `transformers` config (hidden 32-64, 2 layers, vocab 96-256, context
64) of a family users bring; `build` makes the torch model, `save_folder` writes the
checkpoint folder `save_pretrained` writes, and `export_onnx` the ONNX exports. torch and
transformers are test-only dependencies: this module is imported by tests that skip without
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CONTEXT = 64  # every zoo model's max_position_embeddings


@dataclass(frozen=True)
class ZooModel:
    name: str
    config_class: str
    kwargs: dict = field(default_factory=dict)
    seed: int = 0
    window: int | None = None  # the sliding window the model's attention uses

    def config(self):
        import transformers

        return getattr(transformers, self.config_class)(**self.kwargs)


def _llama_kw(**extra) -> dict:
    kw = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=CONTEXT,
              tie_word_embeddings=False)
    kw.update(extra)
    return kw


ZOO = [
    ZooModel("llama", "LlamaConfig", _llama_kw()),
    ZooModel("llama-gqa", "LlamaConfig", _llama_kw(num_key_value_heads=2, rope_theta=500000.0)),
    ZooModel("smollm-tied", "LlamaConfig", _llama_kw(num_key_value_heads=1,
                                                      tie_word_embeddings=True)),
    ZooModel("mistral-window8", "MistralConfig", _llama_kw(num_key_value_heads=2,
                                                           sliding_window=8), window=8),
    ZooModel("qwen2", "Qwen2Config", _llama_kw(num_key_value_heads=2, tie_word_embeddings=True)),
    ZooModel("qwen3", "Qwen3Config", _llama_kw(num_key_value_heads=2, head_dim=16)),
    ZooModel("gemma", "GemmaConfig", _llama_kw(num_key_value_heads=1, head_dim=16,
                                               tie_word_embeddings=True)),
    ZooModel("phi3", "Phi3Config", _llama_kw(num_key_value_heads=2, pad_token_id=0,
                                             sliding_window=None)),
    ZooModel("gpt2", "GPT2Config", dict(vocab_size=160, n_embd=32, n_layer=2, n_head=4,
                                        n_positions=CONTEXT)),
    ZooModel("phi", "PhiConfig", dict(vocab_size=128, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      max_position_embeddings=CONTEXT,
                                      partial_rotary_factor=0.5)),
    ZooModel("gpt-neox", "GPTNeoXConfig", dict(vocab_size=128, hidden_size=32,
                                               intermediate_size=64, num_hidden_layers=2,
                                               num_attention_heads=4,
                                               max_position_embeddings=CONTEXT, rotary_pct=0.5)),
    ZooModel("gpt-j", "GPTJConfig", dict(vocab_size=128, n_embd=32, n_layer=2, n_head=4,
                                         n_positions=CONTEXT, rotary_dim=4)),
    # stock OPT: a ReLU MLP (transformer.relu), learned positions offset by 2
    ZooModel("opt", "OPTConfig", dict(vocab_size=128, hidden_size=32, ffn_dim=64,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      max_position_embeddings=CONTEXT, word_embed_proj_dim=32)),
]
BY_NAME = {m.name: m for m in ZOO}


def build(model: ZooModel):
    """The torch model of `model`, seeded, in eval mode; weights drawn wider than the
    default init (std 0.02 makes every logit near zero and greedy tokens meaningless)."""
    import torch
    import transformers

    torch.manual_seed(model.seed)
    m = transformers.AutoModelForCausalLM.from_config(model.config(), attn_implementation="eager")
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln" in name.split(".")[-2]:
                p.add_(torch.randn_like(p) * 0.1)
            else:
                p.copy_(torch.randn_like(p) * 0.3)
    return m.eval()


def save_folder(m, folder: Path) -> Path:
    m.save_pretrained(folder)
    return folder


def torch_logits(m, ids) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = m(torch.tensor([list(ids)], dtype=torch.long))
    return out.logits[0].numpy()


def torch_greedy(m, prompt, steps: int) -> list[int]:
    ids = list(prompt)
    for _ in range(steps):
        ids.append(int(np.argmax(torch_logits(m, ids)[-1])))
    return ids[len(prompt):]


TOKENIZER_TEXT = ("once upon a time there was a little fox who lived in the green forest . "
                  "every day the fox ran to the river to drink and to play with the fish . ") * 4


def save_tokenizer(folder: Path, vocab_size: int) -> Path:
    """A SentencePiece-style BPE (Metaspace) trained on a fixed text, at most `vocab_size`
    ids, saved as the folder's tokenizer.json with a <s> BOS added by its post-processor."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator([TOKENIZER_TEXT], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    path = folder / "tokenizer.json"
    tok.save(str(path))
    return path


# --- ONNX exports ------------------------------------------------------------------------------

EXPORTERS = ("dynamo", "dynamo-eager", "legacy")
EXPORT_IDS = [1, 5, 7, 9, 11, 13, 2, 4, 6, 8, 10]  # the example input the export traces


def export_onnx(z: ZooModel, exporter: str, folder: Path):
    """`torch.onnx.export` of the zoo model `z`, the stock ways, into `folder/model.onnx`
    with the model's config.json beside it (as optimum writes it); returns (torch model,
    path):
    * dynamo: `dynamo=True` (today's default exporter), the default (SDPA) attention,
      input_ids only;
    * dynamo-eager: the same with `attn_implementation="eager"`;
    * legacy: `dynamo=False`, opset 17, with optimum's inputs (input_ids, attention_mask,
      position_ids): without an attention_mask transformers' packed-sequence check uses
      aten::diff, which the legacy exporter cannot export."""
    import torch

    m = build(z)
    m.set_attn_implementation("eager" if exporter == "dynamo-eager" else "sdpa")
    folder.mkdir(parents=True, exist_ok=True)
    m.config.save_pretrained(folder)
    path = folder / "model.onnx"
    ids = torch.tensor([EXPORT_IDS], dtype=torch.long)
    if exporter.startswith("dynamo"):
        torch.onnx.export(
            _LogitsOf(m).eval(), (ids,), str(path), input_names=["input_ids"],
            output_names=["logits"], dynamo=True, verbose=False,
            dynamic_shapes={"input_ids": {1: torch.export.Dim("T", min=2, max=CONTEXT)}})
    elif exporter == "legacy":
        feeds = (ids, torch.ones_like(ids), torch.arange(ids.shape[1])[None])
        axes = {n: {1: "T"} for n in ("input_ids", "attention_mask", "position_ids", "logits")}
        torch.onnx.export(_LogitsOf(m).eval(), feeds, str(path), dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask", "position_ids"],
                          output_names=["logits"], dynamic_axes=axes)
    else:
        raise ValueError(exporter)
    return m.eval(), path


OPTIMUM_PYTHON = Path(__file__).resolve().parents[1] / ".venv-optimum" / "bin" / "python"
OPTIMUM_FAMILIES = ("llama-gqa", "mistral-window8", "qwen2", "qwen3", "gemma", "phi3", "gpt2",
                    "phi", "gpt-neox", "gpt-j", "opt")  # one zoo model per family


def export_optimum(names, out: Path) -> dict[str, Path]:
    """optimum's `text-generation` export (no KV cache; inputs input_ids, attention_mask and,
    for most families, position_ids) of the zoo models `names`, in one run of the side
    environment (tests/optimum_export.py); name -> model.onnx."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root)}
    proc = subprocess.run([str(OPTIMUM_PYTHON), "-m", "tests.optimum_export", str(out),
                           *names], cwd=root, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"optimum export failed:\n{proc.stderr[-3000:]}")
    return {name: out / name / "model.onnx" for name in names}


def _LogitsOf(m):
    import torch

    class LogitsOf(torch.nn.Module):
        """The logits alone, no cache: what a single-sequence forward returns."""

        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask=None, position_ids=None):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids, use_cache=False).logits

    return LogitsOf()


def onnxruntime_logits(path: Path, ids) -> np.ndarray:
    """Logits of the ONNX file for one sequence, its extra inputs fed like irtool binds them."""
    import onnxruntime as ort

    ids = np.asarray([list(ids)], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
             "position_ids": np.arange(ids.shape[1], dtype=np.int64)[None]}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})[0][0]


def memory_level(module, window: int | None = None):
    """`module` after extract-kv-cache (token-by-token prefill; a ring cache of `window`
    positions, else the zoo's context) and bufferize: the memory level the C target starts
    from."""
    from xdsl.passes import PassPipeline

    from irtool.context import make_context
    from irtool.passes import get_all_passes

    kv = f"window={window}" if window else f"capacity={CONTEXT}"
    PassPipeline.parse_spec(get_all_passes(),
                            f"extract-kv-cache{{prefill=token-by-token {kv}}},bufferize").apply(
        make_context(), module)
    assert any(op.name.startswith("memory.") for op in module.walk())
    return module


def attention_windows(module) -> set:
    from irtool.dialects import transformer as tf

    return {op.window_size for op in module.walk() if isinstance(op, tf.AttentionOp)}
