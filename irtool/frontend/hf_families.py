"""Per-family mappings from a Hugging Face checkpoint (config.json + tensors) to a `Decoder`.

Each family names its tensors and states its architectural choices; the differences are
facts about transformers' modeling code (names as saved by `save_pretrained`):
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
from irtool.frontend.hf_checkpoint import Checkpoint
from irtool.frontend.hf_rope import rope_frequencies

ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu_tanh",
               "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": None, "relu": "relu"}


def decoder_for(c: Checkpoint) -> Decoder:
    config, folder = c.config, c.folder
    model_type = config.get("model_type")
    family = FAMILIES.get(model_type)
    if model_type in NOT_YET:
        raise IrtoolError(f"model_type '{model_type}' of '{folder}' is not supported by the "
                          f"checkpoint-folder import: {NOT_YET[model_type]}")
    if family is None:
        raise IrtoolError(f"model_type '{model_type}' of '{folder}' is not supported by the "
                          f"checkpoint-folder import (supported: {', '.join(sorted(FAMILIES))})"
                          "; an ONNX export of it may import (irtool import MODEL.onnx)")
    return family(c)


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


def _rope_parameters(c: Checkpoint) -> dict:
    """transformers 5 keeps theta, scaling and the partial factor in `rope_parameters`;
    older configs spread them over rope_theta / rope_scaling / partial_rotary_factor."""
    params = dict(c.config.get("rope_scaling") or {})
    params.update(c.config.get("rope_parameters") or {})
    for key in ("rope_theta", "partial_rotary_factor"):
        if key not in params and c.config.get(key) is not None:
            params[key] = c.config[key]
    return params


def _rope(c: Checkpoint, head_dim: int, max_pos: int, style: str,
          rotary_dim: int | None = None, default_theta: float = 10000.0) -> Rope:
    """cos/sin tables over the context: `position * inv_freq` in float32 as transformers
    computes them, times the scaling's attention factor (hf_rope)."""
    params = _rope_parameters(c)
    params.setdefault("rope_theta", default_theta)
    if params.get("original_max_position_embeddings") is None:
        params["original_max_position_embeddings"] = c.config.get(
            "original_max_position_embeddings")
    if rotary_dim is None:
        rotary_dim = int(head_dim * float(params.get("partial_rotary_factor", 1.0)))
    freq = rope_frequencies(params, rotary_dim, max_pos, f"'{c.folder}'")
    positions = np.arange(max_pos, dtype=np.float32)
    angles = (positions[:, None] * freq.inv_freq[None, :]).astype(np.float32)
    scale = np.float32(freq.attention_scaling)
    return Rope(Named("rope.cos", (np.cos(angles) * scale).astype(np.float32)),
                Named("rope.sin", (np.sin(angles) * scale).astype(np.float32)),
                rotary_dim, style)


def _windows(c: Checkpoint, n_layers: int, all_layers: bool) -> list[int | None]:
    """The sliding window of each layer: `layer_types` when the config lists them, else the
    model-wide `sliding_window` (Mistral) when `all_layers`."""
    window = c.config.get("sliding_window")
    types = c.config.get("layer_types")
    if window is None:
        return [None] * n_layers
    if types:
        return [window if t == "sliding_attention" else None for t in types]
    if all_layers:
        return [window] * n_layers
    return [None] * n_layers


def _lm_head(c: Checkpoint, embed: Named, name: str = "lm_head") -> Linear:
    """The output projection: its own `name` unless tied to (and equal to) the embedding."""
    if c.has(name + ".weight"):
        head = c.linear(name)
        tied = c.config.get("tie_word_embeddings", True)
        if not (tied and np.array_equal(head.weight.array, embed.array)):
            return head
    return Linear(embed, c.opt(name + ".bias"))


def _split(named: Named, parts: list[tuple[str, np.ndarray]]) -> list[Named]:
    return [Named(f"{named.name}.{suffix}", np.ascontiguousarray(a)) for suffix, a in parts]


# ---------------------------------------------------------------------------------------------
# families


def _llama_like(c: Checkpoint) -> Decoder:
    cfg = c.config
    kind = cfg["model_type"]
    gemma = kind == "gemma"
    hidden, heads = c.need("hidden_size"), c.need("num_attention_heads")
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    n_layers, max_pos = c.need("num_hidden_layers"), c.need("max_position_embeddings")
    embed = c.get("model.embed_tokens.weight")

    def norm(prefix: str) -> Norm:
        w = c.get(prefix + ".weight")
        # Gemma's RMSNorm multiplies by (1 + w): the same float32 product with gamma = 1 + w
        return Norm(Named(w.name + ".plus1", w.array + np.float32(1.0)) if gemma else w)

    windows = _windows(c, n_layers, all_layers=kind == "mistral")
    layers = []
    for i in range(n_layers):
        p = f"model.layers.{i}."
        a, m = p + "self_attn.", p + "mlp."
        layers.append(Layer(
            norm1=norm(p + "input_layernorm"), norm2=norm(p + "post_attention_layernorm"),
            q=c.linear(a + "q_proj"), k=c.linear(a + "k_proj"), v=c.linear(a + "v_proj"),
            o=c.linear(a + "o_proj"), mlp_gate=c.linear(m + "gate_proj"),
            mlp_up=c.linear(m + "up_proj"), mlp_down=c.linear(m + "down_proj"),
            q_norm=c.opt(a + "q_norm.weight"), k_norm=c.opt(a + "k_norm.weight"),
            window=windows[i]))
    lm_head = _lm_head(c, embed)
    if gemma:  # embeddings scaled by sqrt(hidden) in float32: the same products, pre-computed
        scaled = Named(embed.name + ".scaled",
                       embed.array * np.float32(np.float32(hidden) ** np.float32(0.5)))
        embed = scaled
    return Decoder(
        vocab_size=c.need("vocab_size"), max_seq_len=max_pos, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, norm_eps=c.need("rms_norm_eps"),
        activation=_activation(c, "hidden_activation", "hidden_act"), embed=embed,
        final_norm=norm("model.norm"), lm_head=lm_head, layers=layers,
        rope=_rope(c, head_dim, max_pos, "rotate_half"))


def _phi3(c: Checkpoint) -> Decoder:
    """Llama-like, with fused projections: qkv_proj rows [q | k | v], gate_up_proj [gate | up]."""
    hidden, heads = c.need("hidden_size"), c.need("num_attention_heads")
    kv_heads = c.config.get("num_key_value_heads") or heads
    hd = c.config.get("head_dim") or hidden // heads
    inter = c.need("intermediate_size")
    n_layers, max_pos = c.need("num_hidden_layers"), c.need("max_position_embeddings")
    windows = _windows(c, n_layers, all_layers=True)
    layers = []
    for i in range(n_layers):
        p = f"model.layers.{i}."
        qkv, gate_up = c.get(p + "self_attn.qkv_proj.weight"), c.get(p + "mlp.gate_up_proj.weight")
        q, k, v = _split(qkv, [("q", qkv.array[:heads * hd]),
                               ("k", qkv.array[heads * hd:(heads + kv_heads) * hd]),
                               ("v", qkv.array[(heads + kv_heads) * hd:])])
        gate, up = _split(gate_up, [("gate", gate_up.array[:inter]),
                                    ("up", gate_up.array[inter:])])
        layers.append(Layer(
            norm1=c.norm(p + "input_layernorm", False),
            norm2=c.norm(p + "post_attention_layernorm", False), q=Linear(q), k=Linear(k),
            v=Linear(v), o=c.linear(p + "self_attn.o_proj"), mlp_gate=Linear(gate),
            mlp_up=Linear(up), mlp_down=c.linear(p + "mlp.down_proj"), window=windows[i]))
    embed = c.get("model.embed_tokens.weight")
    return Decoder(
        vocab_size=c.need("vocab_size"), max_seq_len=max_pos, heads=heads, kv_heads=kv_heads,
        head_dim=hd, norm_eps=c.need("rms_norm_eps"), activation=_activation(c, "hidden_act"),
        embed=embed, final_norm=c.norm("model.norm", False), lm_head=_lm_head(c, embed),
        layers=layers, rope=_rope(c, hd, max_pos, "rotate_half"))


def _gpt2(c: Checkpoint) -> Decoder:
    hidden, heads = c.need("n_embd", "hidden_size"), c.need("n_head", "num_attention_heads")
    max_pos = c.need("n_positions", "max_position_embeddings")
    if c.config.get("scale_attn_by_inverse_layer_idx") or c.config.get("reorder_and_upcast_attn"):
        raise IrtoolError(f"GPT-2 option scale_attn_by_inverse_layer_idx/reorder_and_upcast_attn"
                          f" of '{c.folder}' is not supported")
    prefix = "transformer." if c.has("transformer.wte.weight") else ""

    def conv(name: str) -> Linear:  # Conv1D stores [in, out]
        w = c.get(name + ".weight")
        return Linear(Named(w.name + ".T", np.ascontiguousarray(w.array.T)),
                      c.get(name + ".bias"))

    layers = []
    for i in range(c.need("n_layer", "num_hidden_layers")):
        p = f"{prefix}h.{i}."
        qkv = conv(p + "attn.c_attn")
        w, b = qkv.weight, qkv.bias
        ws = _split(w, [(s, w.array[j * hidden:(j + 1) * hidden]) for j, s in enumerate("qkv")])
        bs = _split(b, [(s, b.array[j * hidden:(j + 1) * hidden]) for j, s in enumerate("qkv")])
        layers.append(Layer(
            norm1=c.norm(p + "ln_1", True), norm2=c.norm(p + "ln_2", True),
            q=Linear(ws[0], bs[0]), k=Linear(ws[1], bs[1]), v=Linear(ws[2], bs[2]),
            o=conv(p + "attn.c_proj"), mlp_up=conv(p + "mlp.c_fc"),
            mlp_down=conv(p + "mlp.c_proj")))
    embed = c.get(prefix + "wte.weight")
    return Decoder(
        vocab_size=c.need("vocab_size"), max_seq_len=max_pos, heads=heads, kv_heads=heads,
        head_dim=hidden // heads, norm_eps=c.need("layer_norm_epsilon"),
        activation=_activation(c, "activation_function"), embed=embed,
        final_norm=c.norm(prefix + "ln_f", True), lm_head=_lm_head(c, embed), layers=layers,
        positions=c.get(prefix + "wpe.weight"))


def _phi(c: Checkpoint) -> Decoder:
    hidden, heads = c.need("hidden_size"), c.need("num_attention_heads")
    kv_heads = c.config.get("num_key_value_heads") or heads
    head_dim = c.config.get("head_dim") or hidden // heads
    max_pos = c.need("max_position_embeddings")
    if c.config.get("qk_layernorm"):
        raise IrtoolError(f"Phi's qk_layernorm (per-head LayerNorm) in '{c.folder}' is not "
                          "supported")
    layers = []
    for i in range(c.need("num_hidden_layers")):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        layers.append(Layer(
            norm1=c.norm(p + "input_layernorm", True), q=c.linear(a + "q_proj"),
            k=c.linear(a + "k_proj"), v=c.linear(a + "v_proj"), o=c.linear(a + "dense"),
            mlp_up=c.linear(p + "mlp.fc1"), mlp_down=c.linear(p + "mlp.fc2")))
    embed = c.get("model.embed_tokens.weight")
    return Decoder(
        vocab_size=c.need("vocab_size"), max_seq_len=max_pos, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, norm_eps=c.need("layer_norm_eps"),
        activation=_activation(c, "hidden_act"), embed=embed,
        final_norm=c.norm("model.final_layernorm", True), lm_head=_lm_head(c, embed),
        layers=layers, parallel=True, rope=_rope(c, head_dim, max_pos, "rotate_half"))


def _gpt_neox(c: Checkpoint) -> Decoder:
    hidden, heads = c.need("hidden_size"), c.need("num_attention_heads")
    hd = hidden // heads
    max_pos = c.need("max_position_embeddings")
    parallel = c.config.get("use_parallel_residual", True)
    layers = []
    for i in range(c.need("num_hidden_layers")):
        p = f"gpt_neox.layers.{i}."
        qkv = c.linear(p + "attention.query_key_value")
        # rows are laid out [head, (q | k | v), head_dim]
        w = qkv.weight.array.reshape(heads, 3, hd, hidden)
        b = qkv.bias.array.reshape(heads, 3, hd) if qkv.bias is not None else None
        lin = []
        for j, s in enumerate("qkv"):
            wj = Named(f"{qkv.weight.name}.{s}",
                       np.ascontiguousarray(w[:, j].reshape(hidden, hidden)))
            bj = None if b is None else Named(f"{qkv.bias.name}.{s}",
                                              np.ascontiguousarray(b[:, j].reshape(hidden)))
            lin.append(Linear(wj, bj))
        layers.append(Layer(
            norm1=c.norm(p + "input_layernorm", True),
            norm2=c.norm(p + "post_attention_layernorm", True),
            q=lin[0], k=lin[1], v=lin[2], o=c.linear(p + "attention.dense"),
            mlp_up=c.linear(p + "mlp.dense_h_to_4h"), mlp_down=c.linear(p + "mlp.dense_4h_to_h")))
    embed = c.get("gpt_neox.embed_in.weight")
    head = c.linear("embed_out") if c.has("embed_out.weight") else Linear(embed)
    return Decoder(
        vocab_size=c.need("vocab_size"), max_seq_len=max_pos, heads=heads, kv_heads=heads,
        head_dim=hd, norm_eps=c.need("layer_norm_eps"), activation=_activation(c, "hidden_act"),
        embed=embed, final_norm=c.norm("gpt_neox.final_layer_norm", True), lm_head=head,
        layers=layers, parallel=parallel, rope=_rope(c, hd, max_pos, "rotate_half"))


def _gptj(c: Checkpoint) -> Decoder:
    hidden, heads = c.need("n_embd", "hidden_size"), c.need("n_head", "num_attention_heads")
    hd = hidden // heads
    max_pos = c.need("n_positions", "max_position_embeddings")
    rotary_dim = c.config.get("rotary_dim") or hd
    layers = []
    for i in range(c.need("n_layer", "num_hidden_layers")):
        p = f"transformer.h.{i}."
        a = p + "attn."
        layers.append(Layer(
            norm1=c.norm(p + "ln_1", True), q=c.linear(a + "q_proj"), k=c.linear(a + "k_proj"),
            v=c.linear(a + "v_proj"), o=c.linear(a + "out_proj"),
            mlp_up=c.linear(p + "mlp.fc_in"), mlp_down=c.linear(p + "mlp.fc_out")))
    embed = c.get("transformer.wte.weight")
    return Decoder(
        vocab_size=c.need("vocab_size"), max_seq_len=max_pos, heads=heads, kv_heads=heads,
        head_dim=hd, norm_eps=c.need("layer_norm_epsilon"),
        activation=_activation(c, "activation_function"), embed=embed,
        final_norm=c.norm("transformer.ln_f", True), lm_head=_lm_head(c, embed), layers=layers,
        parallel=True, rope=_rope(c, hd, max_pos, "interleaved", rotary_dim))


def _opt(c: Checkpoint) -> Decoder:
    cfg = c.config
    hidden, heads = c.need("hidden_size"), c.need("num_attention_heads")
    if cfg.get("word_embed_proj_dim", hidden) != hidden:
        raise IrtoolError(f"OPT with word_embed_proj_dim != hidden_size (project_in/out) in "
                          f"'{c.folder}' is not supported")
    if not cfg.get("do_layer_norm_before", True):
        raise IrtoolError(f"OPT with post-norm blocks (do_layer_norm_before = false) in "
                          f"'{c.folder}' is not supported")
    act = _activation(c, "activation_function")
    max_pos = c.need("max_position_embeddings")
    layers = []
    for i in range(c.need("num_hidden_layers")):
        p = f"model.decoder.layers.{i}."
        a = p + "self_attn."
        layers.append(Layer(
            norm1=c.norm(p + "self_attn_layer_norm", True),
            norm2=c.norm(p + "final_layer_norm", True), q=c.linear(a + "q_proj"),
            k=c.linear(a + "k_proj"), v=c.linear(a + "v_proj"), o=c.linear(a + "out_proj"),
            mlp_up=c.linear(p + "fc1"), mlp_down=c.linear(p + "fc2")))
    embed = c.get("model.decoder.embed_tokens.weight")
    pos = c.get("model.decoder.embed_positions.weight")  # position p is row p + 2
    positions = Named(pos.name + ".from2", np.ascontiguousarray(pos.array[2:2 + max_pos]))
    return Decoder(
        vocab_size=c.need("vocab_size"), max_seq_len=max_pos, heads=heads, kv_heads=heads,
        head_dim=hidden // heads, norm_eps=1e-5, activation=act, embed=embed,
        final_norm=c.norm("model.decoder.final_layer_norm", True), lm_head=_lm_head(c, embed),
        layers=layers, positions=positions)


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
