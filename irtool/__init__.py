"""irtool: a multi-level xDSL compiler for small transformer language models."""

__version__ = "0.1.0"
