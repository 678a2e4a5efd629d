"""main.c's token table in the external Flash.

The internal Flash has 64 KiB for the code: a 32,000-token vocabulary (stories15M's) needs
about 250 KB even in the compact table (targets/c/token_table.py, 5 bytes a token plus the
text), so the table goes into a section of its own that the linker script places in the
external Flash after the model; the program reads one piece per printed token.
"""

SECTION = ".xflash_tokens"
