"""Per-family mappings from a Hugging Face checkpoint (config.json + tensors) to a `Decoder`.

Each family names its tensors, with the shapes config.json implies for them (checked by
`hf_checkpoint` as transformers' modules would be built from the config), and states its
architectural choices; the differences are facts about transformers' modeling code (names as
saved by `save_pretrained`):
* llama, mistral, qwen2, qwen3, gemma: `model.layers.{i}.self_attn.{q,k,v,o}_proj`, RMSNorm,
  gated SiLU (Gemma: gated tanh-GELU, norms scale by `1 + w`, embeddings by sqrt(hidden));
  Qwen3 adds per-head q/k RMSNorms; Mistral/Qwen2/Qwen3 may use a sliding window.
* gpt2: Conv1D weights stored `[in, out]`, one fused `c_attn`, learned positions.
* phi: parallel attention and MLP on one LayerNorm, partial rotary, biases everywhere.
* gpt_neox: fused `query_key_value` laid out per head as `[q | k | v]`, parallel residual with
  two norms, partial rotary.
* gptj: parallel block on one norm, interleaved (`rotate_every_two`) partial rotary.
* opt: learned positions offset by 2, pre-norm blocks; ReLU MLP (see `_activation`).
* phi3: Llama-like with fused `qkv_proj` and `gate_up_proj`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from irtool.errors import IrtoolError
from irtool.frontend.decoder import Decoder, Layer, Linear, Named, Norm, Rope
from irtool.frontend.hf_checkpoint import Checkpoint, Dim
from irtool.frontend.hf_rope import rope_frequencies

ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu_tanh",
               "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": None, "relu": "relu"}


def decoder_for(c: Checkpoint) -> Decoder:
    config, folder = c.config, c.folder
    model_type = config.get("model_type")
    if model_type is None:
        raise IrtoolError(f"config.json in '{folder}' has no model_type, so the architecture "
                          f"is unknown (supported: {', '.join(sorted(FAMILIES))})")
    family = FAMILIES.get(model_type)
    if model_type in NOT_YET:
        raise IrtoolError(f"model_type '{model_type}' of '{folder}' is not supported by the "
                          f"checkpoint-folder import: {NOT_YET[model_type]}")
    if family is None:
        raise IrtoolError(f"model_type '{model_type}' of '{folder}' is not supported by the "
                          f"checkpoint-folder import (supported: {', '.join(sorted(FAMILIES))})"
                          "; an ONNX export of it may import (irtool import MODEL.onnx)")
    _refuse_quantized(c)
    _refuse_other_heads(c)
    return family(c)


def _refuse_quantized(c: Checkpoint) -> None:
    """A GPTQ/AWQ/bitsandbytes/FP8 folder stores packed integers and scales in place of the
    weights (or floats that only mean something with its dequantization recipe): refused by
    its quant_method, not as a missing `q_proj.weight`, nor imported as if it were float."""
    quant = c.config.get("quantization_config")
    if quant is None:
        return
    method = quant.get("quant_method", "unknown") if isinstance(quant, dict) else "unknown"
    raise IrtoolError(f"config.json in '{c.folder}' declares quantization_config (quant_method "
                      f"'{method}'): quantized checkpoints are not supported; give the float "
                      "model (float32, float16 or bfloat16), and quantize with irtool "
                      "(irtool quantize / compile --quant)")


_OTHER_HEADS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")


def _refuse_other_heads(c: Checkpoint) -> None:
    """A folder saved from a classification or QA model has the decoder but a `score` /
    `qa_outputs` head instead of the LM head; importing it would put the embedding (or
    nothing) in the LM head's place, so it is refused by its class."""
    archs = c.config.get("architectures")
    if isinstance(archs, list) and archs and all(
            isinstance(a, str) and a.endswith(_OTHER_HEADS) for a in archs):
        raise IrtoolError(f"'{c.folder}' holds a {archs[0]}, not a causal language model: "
                          "irtool imports the ...ForCausalLM / ...LMHeadModel checkpoints of "
                          "a family, whose head predicts the next token")


# ---------------------------------------------------------------------------------------------
# shared pieces


def _activation(c: Checkpoint, *keys: str) -> str:
    name = next((c.config[k] for k in keys if c.config.get(k)), "gelu")
    act = ACTIVATIONS.get(name)
    if act is None:
        raise IrtoolError(f"activation '{name}' of model_type '{c.config.get('model_type')}' "
                          f"in '{c.folder}' has no op in the transformer dialect (it has "
                          "silu, gelu, tanh-gelu and relu)")
    return act


# Older GPT-NeoX configs (Pythia's, as the Hub serves them) name theta and the rotary fraction
# their own way; transformers 5 reads them as rope_theta / partial_rotary_factor.
_LEGACY_ROPE_KEYS = {"rope_theta": ("rotary_emb_base",), "partial_rotary_factor": ("rotary_pct",)}


def _rope_parameters(c: Checkpoint) -> dict:
    """transformers 5 keeps theta, scaling and the partial factor in `rope_parameters`;
    older configs spread them over rope_theta / rope_scaling / partial_rotary_factor (and
    GPT-NeoX's rotary_emb_base / rotary_pct)."""
    params = dict(c.config.get("rope_scaling") or {})
    params.update(c.config.get("rope_parameters") or {})
    for key in ("rope_theta", "partial_rotary_factor"):
        for k in (key, *_LEGACY_ROPE_KEYS[key]):
            if key not in params and c.config.get(k) is not None:
                params[key] = c.config[k]
    return params


def _rope(c: Checkpoint, head_dim: int, max_pos: int, style: str,
          rotary_dim: int | None = None, default_theta: float = 10000.0,
          default_partial: float = 1.0, type_aliases: dict | None = None) -> Rope:
    """cos/sin tables over the context: `position * inv_freq` in float32 as transformers
    computes them, times the scaling's attention factor (hf_rope). `default_partial` is the
    family's rotary fraction when the config states none (transformers: 0.5 for Phi, 0.25
    for GPT-NeoX), not 1. `type_aliases` are the family's older names of RoPE types
    (Phi-3's "su" and "yarn" are transformers' longrope)."""
    params = _rope_parameters(c)
    kind = params.get("rope_type", params.get("type"))
    if type_aliases and kind in type_aliases:
        params["rope_type"] = type_aliases[kind]
    params.setdefault("rope_theta", default_theta)
    params.setdefault("partial_rotary_factor", default_partial)
    # transformers takes a top-level original_max_position_embeddings (where Phi-3 keeps it)
    # over the one in the rope parameters
    if c.config.get("original_max_position_embeddings") is not None:
        params["original_max_position_embeddings"] = c.config["original_max_position_embeddings"]
    if rotary_dim is None:
        rotary_dim = int(head_dim * float(params["partial_rotary_factor"]))
    freq = rope_frequencies(params, rotary_dim, max_pos, f"'{c.folder}'")
    positions = np.arange(max_pos, dtype=np.float32)
    angles = (positions[:, None] * freq.inv_freq[None, :]).astype(np.float32)
    scale = np.float32(freq.attention_scaling)
    return Rope(Named("rope.cos", (np.cos(angles) * scale).astype(np.float32)),
                Named("rope.sin", (np.sin(angles) * scale).astype(np.float32)),
                rotary_dim, style)


def _windows(c: Checkpoint, n_layers: int, all_layers: bool, context: int
             ) -> list[int | None]:
    """The sliding window of each layer: `layer_types` when the config lists them, else the
    model-wide `sliding_window` (Mistral) when `all_layers`. Qwen2/Qwen3 configs written
    before `layer_types` existed say it with use_sliding_window (without it the window is
    off, whatever sliding_window says) and max_window_layers (the layers from that index on
    slide), as transformers derives layer_types from them.

    A window of `context` keys or more never binds (a query sees at most `context` keys), so
    it is no window: Phi-3-mini-128k declares 262144 over 131072 positions, and once the
    context is cut (the longrope advice) the passes would have to keep a window longer than
    the context, which they refuse."""
    return [None if w is None or w >= context else w
            for w in _declared_windows(c, n_layers, all_layers)]


def _declared_windows(c: Checkpoint, n_layers: int, all_layers: bool) -> list[int | None]:
    """The window of each layer as the config declares it (see `_windows`)."""
    if c.config.get("sliding_window") is None:
        return [None] * n_layers
    qwen = c.config.get("model_type") in ("qwen2", "qwen3")
    if qwen and not c.config.get("use_sliding_window", False):
        return [None] * n_layers
    window = c.dim("sliding_window").size
    types = c.config.get("layer_types")
    if qwen and types is None:
        first = c.config.get("max_window_layers", 28)
        types = ["sliding_attention" if i >= first else "full_attention"
                 for i in range(n_layers)]
    if types:
        if not isinstance(types, list) or len(types) != n_layers:
            given = f"{len(types)} entries" if isinstance(types, list) else repr(types)
            raise IrtoolError(f"config.json in '{c.folder}' gives layer_types {given}, but the "
                              f"model has {n_layers} layers: fix it in the config")
        return [window if t == "sliding_attention" else None for t in types]
    if all_layers:
        return [window] * n_layers
    return [None] * n_layers


def _lm_head(c: Checkpoint, embed: Named, vocab: Dim, hidden: Dim,
             name: str = "lm_head", tied_default: bool = False) -> Linear:
    """The output projection: its own `name` unless tied to (and equal to) the embedding.

    Without `name` the embedding is the head only if the config ties them
    (tie_word_embeddings, else the family's default `tied_default`, as transformers reads
    it): an untied model whose head is missing would get a random one in transformers, and
    the embedding in its place is no less wrong, so that is refused."""
    tied = c.config.get("tie_word_embeddings", tied_default)
    if c.has(name + ".weight"):
        head = c.linear(name, vocab, hidden)
        if not (tied and np.array_equal(head.weight.array, embed.array)):
            return head
    elif not tied:
        why = "sets tie_word_embeddings to false" if "tie_word_embeddings" in c.config else \
            f"does not set tie_word_embeddings (false for model_type '{c.config['model_type']}')"
        raise IrtoolError(f"tensor '{name}.weight' (the LM head) is missing from the "
                          f"checkpoint in '{c.folder}', and its config.json {why}: save the "
                          "whole ...ForCausalLM model, or set tie_word_embeddings to true if "
                          "the head is the embedding")
    return Linear(embed, c.opt(name + ".bias", (vocab,)))


def _split(named: Named, parts: list[tuple[str, np.ndarray]]) -> list[Named]:
    return [Named(f"{named.name}.{suffix}", np.ascontiguousarray(a)) for suffix, a in parts]


def _heads(c: Checkpoint) -> tuple[Dim, Dim, Dim, Dim]:
    """hidden, heads, kv_heads and head_dim of the families with Llama's config keys (an
    explicit head_dim, else hidden // heads, as transformers reads them)."""
    hidden, heads = c.dim("hidden_size"), c.dim("num_attention_heads")
    kv_heads = c.dim("num_key_value_heads", default=heads)
    head_dim = c.dim("head_dim", default=Dim(hidden.size // heads.size,
                                             f"{hidden.label}/{heads.label}"))
    return hidden, heads, kv_heads, head_dim


# ---------------------------------------------------------------------------------------------
# families


def _llama_like(c: Checkpoint) -> Decoder:
    cfg = c.config
    kind = cfg["model_type"]
    gemma = kind == "gemma"
    hidden, heads, kv_heads, head_dim = _heads(c)
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    inter, vocab = c.dim("intermediate_size"), c.dim("vocab_size")
    n_layers = c.layers("model.layers.", "num_hidden_layers").size
    max_pos = c.dim("max_position_embeddings").size
    embed = c.get("model.embed_tokens.weight", (vocab, hidden))

    def norm(prefix: str) -> Norm:
        w = c.get(prefix + ".weight", (hidden,))
        # Gemma's RMSNorm multiplies by (1 + w): the same float32 product with gamma = 1 + w
        return Norm(Named(w.name + ".plus1", w.array + np.float32(1.0)) if gemma else w)

    windows = _windows(c, n_layers, all_layers=kind == "mistral", context=max_pos)
    layers = []
    for i in range(n_layers):
        p = f"model.layers.{i}."
        a, m = p + "self_attn.", p + "mlp."
        layers.append(Layer(
            norm1=norm(p + "input_layernorm"), norm2=norm(p + "post_attention_layernorm"),
            q=c.linear(a + "q_proj", q_out, hidden), k=c.linear(a + "k_proj", kv_out, hidden),
            v=c.linear(a + "v_proj", kv_out, hidden), o=c.linear(a + "o_proj", hidden, q_out),
            mlp_gate=c.linear(m + "gate_proj", inter, hidden),
            mlp_up=c.linear(m + "up_proj", inter, hidden),
            mlp_down=c.linear(m + "down_proj", hidden, inter),
            q_norm=c.opt(a + "q_norm.weight", (head_dim,)),
            k_norm=c.opt(a + "k_norm.weight", (head_dim,)), window=windows[i]))
    lm_head = _lm_head(c, embed, vocab, hidden, tied_default=gemma)
    if gemma:  # embeddings scaled by sqrt(hidden) in float32: the same products, pre-computed
        scaled = Named(embed.name + ".scaled",
                       embed.array * np.float32(np.float32(hidden.size) ** np.float32(0.5)))
        embed = scaled
    return Decoder(
        vocab_size=vocab.size, max_seq_len=max_pos, heads=heads.size, kv_heads=kv_heads.size,
        head_dim=head_dim.size, norm_eps=c.need("rms_norm_eps"),
        activation=_gemma_activation(c) if gemma else _activation(c, "hidden_act"),
        embed=embed, final_norm=norm("model.norm"), lm_head=lm_head, layers=layers,
        rope=_rope(c, head_dim.size, max_pos, "rotate_half"))


def _gemma_activation(c: Checkpoint) -> str:
    """Gemma's released configs say `hidden_act: "gelu"` but mean the tanh approximation
    (transformers replaces it by gelu_pytorch_tanh); `hidden_activation` is older configs'
    name for the same choice."""
    act = _activation(c, "hidden_activation", "hidden_act")
    return "gelu_tanh" if act == "gelu" else act


def _phi3(c: Checkpoint) -> Decoder:
    """Llama-like, with fused projections: qkv_proj rows [q | k | v], gate_up_proj [gate | up]."""
    hidden, heads, kv_heads, head_dim = _heads(c)
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    q_rows, kv_rows = q_out.size, kv_out.size
    inter, vocab = c.dim("intermediate_size"), c.dim("vocab_size")
    n_layers = c.layers("model.layers.", "num_hidden_layers").size
    max_pos = c.dim("max_position_embeddings").size
    windows = _windows(c, n_layers, all_layers=True, context=max_pos)
    layers = []
    for i in range(n_layers):
        p = f"model.layers.{i}."
        qkv = c.get(p + "self_attn.qkv_proj.weight", (q_out + 2 * kv_out, hidden))
        gate_up = c.get(p + "mlp.gate_up_proj.weight", (2 * inter, hidden))
        q, k, v = _split(qkv, [("q", qkv.array[:q_rows]),
                               ("k", qkv.array[q_rows:q_rows + kv_rows]),
                               ("v", qkv.array[q_rows + kv_rows:])])
        gate, up = _split(gate_up, [("gate", gate_up.array[:inter.size]),
                                    ("up", gate_up.array[inter.size:])])
        layers.append(Layer(
            norm1=c.norm(p + "input_layernorm", False, hidden),
            norm2=c.norm(p + "post_attention_layernorm", False, hidden), q=Linear(q),
            k=Linear(k), v=Linear(v), o=c.linear(p + "self_attn.o_proj", hidden, q_out),
            mlp_gate=Linear(gate), mlp_up=Linear(up),
            mlp_down=c.linear(p + "mlp.down_proj", hidden, inter), window=windows[i]))
    embed = c.get("model.embed_tokens.weight", (vocab, hidden))
    return Decoder(
        vocab_size=vocab.size, max_seq_len=max_pos, heads=heads.size, kv_heads=kv_heads.size,
        head_dim=head_dim.size, norm_eps=c.need("rms_norm_eps"),
        activation=_activation(c, "hidden_act"), embed=embed,
        final_norm=c.norm("model.norm", False, hidden),
        lm_head=_lm_head(c, embed, vocab, hidden), layers=layers,
        rope=_rope(c, head_dim.size, max_pos, "rotate_half",
                   type_aliases={"su": "longrope", "yarn": "longrope"}))


def _gpt2(c: Checkpoint) -> Decoder:
    hidden, heads = c.dim("n_embd", "hidden_size"), c.dim("n_head", "num_attention_heads")
    head_dim, vocab = c.head_dim(hidden, heads), c.dim("vocab_size")
    max_pos = c.dim("n_positions", "max_position_embeddings")
    inner = c.dim("n_inner", default=4 * hidden)
    if c.config.get("scale_attn_by_inverse_layer_idx") or c.config.get("reorder_and_upcast_attn"):
        raise IrtoolError(f"GPT-2 option scale_attn_by_inverse_layer_idx/reorder_and_upcast_attn"
                          f" of '{c.folder}' is not supported")
    if not c.config.get("scale_attn_weights", True):
        raise IrtoolError(f"GPT-2 with scale_attn_weights = false (attention scores not divided "
                          f"by sqrt(head_dim)) in '{c.folder}' is not supported")
    prefix = "transformer." if c.has("transformer.wte.weight") else ""

    def conv(name: str, inp: Dim, out: Dim) -> Linear:  # Conv1D stores [in, out]
        w = c.get(name + ".weight", (inp, out))
        return Linear(Named(w.name + ".T", np.ascontiguousarray(w.array.T)),
                      c.get(name + ".bias", (out,)))

    layers = []
    h = hidden.size
    for i in range(c.layers(f"{prefix}h.", "n_layer", "num_hidden_layers").size):
        p = f"{prefix}h.{i}."
        qkv = conv(p + "attn.c_attn", hidden, 3 * hidden)
        w, b = qkv.weight, qkv.bias
        ws = _split(w, [(s, w.array[j * h:(j + 1) * h]) for j, s in enumerate("qkv")])
        bs = _split(b, [(s, b.array[j * h:(j + 1) * h]) for j, s in enumerate("qkv")])
        layers.append(Layer(
            norm1=c.norm(p + "ln_1", True, hidden), norm2=c.norm(p + "ln_2", True, hidden),
            q=Linear(ws[0], bs[0]), k=Linear(ws[1], bs[1]), v=Linear(ws[2], bs[2]),
            o=conv(p + "attn.c_proj", hidden, hidden), mlp_up=conv(p + "mlp.c_fc", hidden, inner),
            mlp_down=conv(p + "mlp.c_proj", inner, hidden)))
    embed = c.get(prefix + "wte.weight", (vocab, hidden))
    return Decoder(
        vocab_size=vocab.size, max_seq_len=max_pos.size, heads=heads.size, kv_heads=heads.size,
        head_dim=head_dim.size, norm_eps=c.need("layer_norm_epsilon"),
        activation=_activation(c, "activation_function"), embed=embed,
        final_norm=c.norm(prefix + "ln_f", True, hidden),
        lm_head=_lm_head(c, embed, vocab, hidden, tied_default=True), layers=layers,
        positions=c.get(prefix + "wpe.weight", (max_pos, hidden)))


def _phi(c: Checkpoint) -> Decoder:
    hidden, heads, kv_heads, head_dim = _heads(c)
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    inter, vocab = c.dim("intermediate_size"), c.dim("vocab_size")
    max_pos = c.dim("max_position_embeddings").size
    if c.config.get("qk_layernorm"):
        raise IrtoolError(f"Phi's qk_layernorm (per-head LayerNorm) in '{c.folder}' is not "
                          "supported")
    layers = []
    for i in range(c.layers("model.layers.", "num_hidden_layers").size):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        layers.append(Layer(
            norm1=c.norm(p + "input_layernorm", True, hidden),
            q=c.linear(a + "q_proj", q_out, hidden), k=c.linear(a + "k_proj", kv_out, hidden),
            v=c.linear(a + "v_proj", kv_out, hidden), o=c.linear(a + "dense", hidden, q_out),
            mlp_up=c.linear(p + "mlp.fc1", inter, hidden),
            mlp_down=c.linear(p + "mlp.fc2", hidden, inter)))
    embed = c.get("model.embed_tokens.weight", (vocab, hidden))
    return Decoder(
        vocab_size=vocab.size, max_seq_len=max_pos, heads=heads.size, kv_heads=kv_heads.size,
        head_dim=head_dim.size, norm_eps=c.need("layer_norm_eps"),
        activation=_activation(c, "hidden_act"), embed=embed,
        final_norm=c.norm("model.final_layernorm", True, hidden),
        lm_head=_lm_head(c, embed, vocab, hidden), layers=layers, parallel=True,
        rope=_rope(c, head_dim.size, max_pos, "rotate_half", default_partial=0.5))


def _gpt_neox(c: Checkpoint) -> Decoder:
    hidden, heads = c.dim("hidden_size"), c.dim("num_attention_heads")
    h, n, hd = hidden.size, heads.size, c.head_dim(hidden, heads).size
    inter, vocab = c.dim("intermediate_size"), c.dim("vocab_size")
    max_pos = c.dim("max_position_embeddings").size
    parallel = c.config.get("use_parallel_residual", True)
    layers = []
    for i in range(c.layers("gpt_neox.layers.", "num_hidden_layers").size):
        p = f"gpt_neox.layers.{i}."
        qkv = c.linear(p + "attention.query_key_value", 3 * hidden, hidden)
        # rows are laid out [head, (q | k | v), head_dim]
        w = qkv.weight.array.reshape(n, 3, hd, h)
        b = qkv.bias.array.reshape(n, 3, hd) if qkv.bias is not None else None
        lin = []
        for j, s in enumerate("qkv"):
            wj = Named(f"{qkv.weight.name}.{s}", np.ascontiguousarray(w[:, j].reshape(h, h)))
            bj = None if b is None else Named(f"{qkv.bias.name}.{s}",
                                              np.ascontiguousarray(b[:, j].reshape(h)))
            lin.append(Linear(wj, bj))
        layers.append(Layer(
            norm1=c.norm(p + "input_layernorm", True, hidden),
            norm2=c.norm(p + "post_attention_layernorm", True, hidden),
            q=lin[0], k=lin[1], v=lin[2], o=c.linear(p + "attention.dense", hidden, hidden),
            mlp_up=c.linear(p + "mlp.dense_h_to_4h", inter, hidden),
            mlp_down=c.linear(p + "mlp.dense_4h_to_h", hidden, inter)))
    embed = c.get("gpt_neox.embed_in.weight", (vocab, hidden))
    head = _lm_head(c, embed, vocab, hidden, name="embed_out")
    return Decoder(
        vocab_size=vocab.size, max_seq_len=max_pos, heads=n, kv_heads=n, head_dim=hd,
        norm_eps=c.need("layer_norm_eps"), activation=_activation(c, "hidden_act"),
        embed=embed, final_norm=c.norm("gpt_neox.final_layer_norm", True, hidden),
        lm_head=head, layers=layers, parallel=parallel,
        rope=_rope(c, hd, max_pos, "rotate_half", default_partial=0.25))


def _gptj(c: Checkpoint) -> Decoder:
    hidden, heads = c.dim("n_embd", "hidden_size"), c.dim("n_head", "num_attention_heads")
    hd, vocab = c.head_dim(hidden, heads), c.dim("vocab_size")
    inner = c.dim("n_inner", default=4 * hidden)
    max_pos = c.dim("n_positions", "max_position_embeddings").size
    rotary_dim = c.dim("rotary_dim", default=hd).size
    layers = []
    for i in range(c.layers("transformer.h.", "n_layer", "num_hidden_layers").size):
        p = f"transformer.h.{i}."
        a = p + "attn."
        layers.append(Layer(
            norm1=c.norm(p + "ln_1", True, hidden), q=c.linear(a + "q_proj", hidden, hidden),
            k=c.linear(a + "k_proj", hidden, hidden), v=c.linear(a + "v_proj", hidden, hidden),
            o=c.linear(a + "out_proj", hidden, hidden),
            mlp_up=c.linear(p + "mlp.fc_in", inner, hidden),
            mlp_down=c.linear(p + "mlp.fc_out", hidden, inner)))
    embed = c.get("transformer.wte.weight", (vocab, hidden))
    return Decoder(
        vocab_size=vocab.size, max_seq_len=max_pos, heads=heads.size, kv_heads=heads.size,
        head_dim=hd.size, norm_eps=c.need("layer_norm_epsilon"),
        activation=_activation(c, "activation_function"), embed=embed,
        final_norm=c.norm("transformer.ln_f", True, hidden),
        lm_head=_lm_head(c, embed, vocab, hidden), layers=layers, parallel=True,
        rope=_rope(c, hd.size, max_pos, "interleaved", rotary_dim))


def _opt(c: Checkpoint) -> Decoder:
    cfg = c.config
    hidden, heads = c.dim("hidden_size"), c.dim("num_attention_heads")
    head_dim, vocab, ffn = c.head_dim(hidden, heads), c.dim("vocab_size"), c.dim("ffn_dim")
    if cfg.get("word_embed_proj_dim", hidden.size) != hidden.size:
        raise IrtoolError(f"OPT with word_embed_proj_dim != hidden_size (project_in/out) in "
                          f"'{c.folder}' is not supported")
    if not cfg.get("do_layer_norm_before", True):
        raise IrtoolError(f"OPT with post-norm blocks (do_layer_norm_before = false) in "
                          f"'{c.folder}' is not supported")
    if not cfg.get("layer_norm_elementwise_affine", True):
        raise IrtoolError(f"OPT with layer_norm_elementwise_affine = false (LayerNorms without "
                          f"weight and bias) in '{c.folder}' is not supported")
    act = _activation(c, "activation_function")
    max_pos = c.dim("max_position_embeddings")
    layers = []
    for i in range(c.layers("model.decoder.layers.", "num_hidden_layers").size):
        p = f"model.decoder.layers.{i}."
        a = p + "self_attn."
        layers.append(Layer(
            norm1=c.norm(p + "self_attn_layer_norm", True, hidden),
            norm2=c.norm(p + "final_layer_norm", True, hidden),
            q=c.linear(a + "q_proj", hidden, hidden), k=c.linear(a + "k_proj", hidden, hidden),
            v=c.linear(a + "v_proj", hidden, hidden), o=c.linear(a + "out_proj", hidden, hidden),
            mlp_up=c.linear(p + "fc1", ffn, hidden), mlp_down=c.linear(p + "fc2", hidden, ffn)))
    embed = c.get("model.decoder.embed_tokens.weight", (vocab, hidden))
    # position p is row p + 2
    pos = c.get("model.decoder.embed_positions.weight", (max_pos + 2, hidden))
    positions = Named(pos.name + ".from2", np.ascontiguousarray(pos.array[2:]))
    return Decoder(
        vocab_size=vocab.size, max_seq_len=max_pos.size, heads=heads.size,
        kv_heads=heads.size, head_dim=head_dim.size, norm_eps=1e-5, activation=act,
        embed=embed, final_norm=c.norm("model.decoder.final_layer_norm", True, hidden),
        lm_head=_lm_head(c, embed, vocab, hidden, tied_default=True), layers=layers,
        positions=positions)


# Families users bring that need what the transformer dialect lacks, with what that is.
_SOFTCAP = "logit soft-capping tanh(x / c) * c (attn_logit_softcapping on the attention " \
    "scores, final_logit_softcapping on the logits), which the transformer dialect has no op for"
NOT_YET = {
    "gemma2": _SOFTCAP + ", and a norm after attention and after the MLP",
    "gemma3_text": "per-layer RoPE bases (rope_local_base_freq for the sliding layers), a norm "
                   "after attention and after the MLP, and " + _SOFTCAP + " when the config "
                   "sets it",
}
NOT_YET["gemma3"] = "the multimodal Gemma 3 (import its text model, model_type " \
    "gemma3_text, which needs " + NOT_YET["gemma3_text"] + ")"

FAMILIES: dict[str, Callable[[Checkpoint], Decoder]] = {
    "llama": _llama_like, "mistral": _llama_like, "qwen2": _llama_like, "qwen3": _llama_like,
    "gemma": _llama_like, "gpt2": _gpt2, "phi": _phi, "gpt_neox": _gpt_neox, "gptj": _gptj,
    "opt": _opt, "phi3": _phi3,
}
