"""Small PyTorch decoder LMs of other shapes, written here, for export with torch.onnx.export.

They follow the three families of ../shared/models (llama2.c-style Llama with interleaved RoPE
and grouped-query attention, nanoGPT-style GPT-2 with learned positions and a fused QKV, a
Phi-style parallel block with partial rotate-half RoPE) but with other widths, head counts,
KV-head counts, layer counts and vocabularies, so the ONNX importer is tested on real exporter
output it has never seen. Imported only when torch is installed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary_tables(positions: int, rotary_dim: int, theta: float = 10000.0):
    inv = 1.0 / theta ** (torch.arange(0, rotary_dim, 2).float() / rotary_dim)
    angles = torch.outer(torch.arange(positions).float(), inv)
    return torch.cos(angles), torch.sin(angles)


def causal_mask(t: int):
    return torch.full((t, t), float("-inf")).triu(1)


class LlamaBlock(nn.Module):
    def __init__(self, dim, heads, kv_heads, hidden):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, dim // heads
        self.attention_norm, self.ffn_norm = RMSNorm(dim), RMSNorm(dim)
        self.wq = nn.Linear(dim, heads * self.hd, bias=False)
        self.wk = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.wv = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.wo = nn.Linear(heads * self.hd, dim, bias=False)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def rotate(self, x, cos, sin):
        """Pairs (2i, 2i+1), as llama2.c does."""
        b, t = x.shape[:2]
        pairs = x.reshape(b, t, x.shape[2], -1, 2)
        a, c = pairs[..., 0], pairs[..., 1]
        cos, sin = cos.view(1, t, 1, -1), sin.view(1, t, 1, -1)
        return torch.stack([a * cos - c * sin, a * sin + c * cos], -1).flatten(3)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        n = self.attention_norm(x)
        q = self.rotate(self.wq(n).view(b, t, self.heads, self.hd), cos, sin)
        k = self.rotate(self.wk(n).view(b, t, self.kv_heads, self.hd), cos, sin)
        v = self.wv(n).view(b, t, self.kv_heads, self.hd)
        rep = self.heads // self.kv_heads
        k = k[:, :, :, None].expand(b, t, self.kv_heads, rep, self.hd).reshape(b, t, -1, self.hd)
        v = v[:, :, :, None].expand(b, t, self.kv_heads, rep, self.hd).reshape(b, t, -1, self.hd)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        scores = q @ k.transpose(2, 3) / math.sqrt(self.hd) + causal_mask(t)
        a = (F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.wo(a)
        n = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(n)) * self.w3(n))


class Llama(nn.Module):
    def __init__(self, vocab, dim, heads, kv_heads, layers, hidden, max_positions):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(LlamaBlock(dim, heads, kv_heads, hidden)
                                    for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.output = nn.Linear(dim, vocab, bias=False)
        cos, sin = rotary_tables(max_positions, dim // heads)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.tok(ids)
        for block in self.blocks:
            x = block(x, self.cos[:t], self.sin[:t])
        return self.output(self.norm(x))


class GPTBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.c_attn, self.c_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.c_fc, self.mlp_proj = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(torch.ones(t, t).triu(1).bool(), float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(b, t, c)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, dim, heads, layers, block_size):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(block_size, dim)
        self.h = nn.ModuleList(GPTBlock(dim, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        t = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(0, t, dtype=torch.long))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class PhiBlock(nn.Module):
    def __init__(self, dim, heads, rotary_dim, hidden):
        super().__init__()
        self.heads, self.hd, self.rd = heads, dim // heads, rotary_dim
        self.ln = nn.LayerNorm(dim)
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.dense = nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def rotate(self, x, cos, sin):
        """Hugging Face rotate_half on the first rotary_dim dims of each head."""
        rot, rest = x[..., :self.rd], x[..., self.rd:]
        half = self.rd // 2
        turned = torch.cat([-rot[..., half:], rot[..., :half]], dim=-1)
        return torch.cat([rot * cos + turned * sin, rest], dim=-1)

    def forward(self, x, cos, sin):
        b, t, c = x.shape
        n = self.ln(x)
        q, k, v = (p(n).view(b, t, self.heads, self.hd).transpose(1, 2)
                   for p in (self.q, self.k, self.v))
        q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
        att = q @ k.transpose(2, 3) / math.sqrt(self.hd) + causal_mask(t)
        a = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(b, t, c)
        return x + self.dense(a) + self.fc2(F.gelu(self.fc1(n), approximate="tanh"))


class Phi(nn.Module):
    def __init__(self, vocab, dim, heads, rotary_dim, layers, hidden, max_positions):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(PhiBlock(dim, heads, rotary_dim, hidden)
                                    for _ in range(layers))
        self.final_ln = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab)
        cos, sin = rotary_tables(max_positions, rotary_dim)
        self.register_buffer("cos", torch.cat([cos, cos], -1))  # HF duplicates the halves
        self.register_buffer("sin", torch.cat([sin, sin], -1))

    def forward(self, ids):
        t = ids.shape[1]
        x = self.embed(ids)
        cos, sin = self.cos[:t][None, None], self.sin[:t][None, None]
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.final_ln(x))


MODELS = {
    "llama-gqa": lambda: Llama(vocab=97, dim=48, heads=6, kv_heads=2, layers=3, hidden=80,
                               max_positions=64),
    "llama-mqa": lambda: Llama(vocab=61, dim=64, heads=4, kv_heads=1, layers=2, hidden=96,
                               max_positions=40),
    "gpt2": lambda: GPT(vocab=53, dim=40, heads=5, layers=2, block_size=48),
    "phi": lambda: Phi(vocab=71, dim=48, heads=3, rotary_dim=6, layers=2, hidden=96,
                       max_positions=56),
}


MAX_LEN = {"llama-gqa": 64, "llama-mqa": 40, "gpt2": 48, "phi": 56}


def build(name: str) -> nn.Module:
    """Model `name` with its seeded random weights, in eval mode (the same on every call)."""
    torch.manual_seed(0)
    return MODELS[name]().eval()


def export(name: str, path) -> int:
    """Export model `name` (seeded, see `build`) as the shared models were; returns its
    maximum length."""
    model = build(name)
    ids = torch.randint(0, 40, (1, 7))
    torch.onnx.export(model, (ids,), str(path), input_names=["input_ids"],
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"input_ids": {1: "T"}, "logits": {1: "T"}})
    return MAX_LEN[name]
