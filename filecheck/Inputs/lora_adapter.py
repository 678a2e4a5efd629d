"""Writes a PEFT-style adapter for stories260K (rank 2 on every layer's q_proj, seeded) to
argv[1]: the input of filecheck/passes/lora-stream.test."""

import sys

import numpy as np
from safetensors.numpy import save_file

rng = np.random.default_rng(int(sys.argv[2]))
tensors = {}
for layer in range(5):
    key = f"base_model.model.model.layers.{layer}.self_attn.q_proj"
    tensors[f"{key}.lora_A.weight"] = (rng.standard_normal((2, 64)) * 0.1).astype(np.float32)
    tensors[f"{key}.lora_B.weight"] = (rng.standard_normal((64, 2)) * 0.1).astype(np.float32)
save_file(tensors, sys.argv[1])
