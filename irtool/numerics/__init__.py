"""irtool's numerical reference: the arithmetic of every op, as plain numpy functions.

`transformer` holds the float32 kernels of the transformer level, `quant` the quantization
contract. The interpreter runs IR with them; passes (quantize) and targets (the kernel table)
use them without importing the interpreter. This package imports only numpy and irtool.errors.
"""
