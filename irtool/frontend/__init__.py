"""Frontends: llama2.c checkpoints and ONNX files to the `transformer` dialect."""
