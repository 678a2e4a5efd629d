"""main.c's token table in the external Flash.

The generic main.c keeps one `piece_t` per token (a pointer, a length, a flag) and the string
literals in `.rodata`, i.e. in the internal Flash, 64 KiB of which hold the code: a 32,000-token
vocabulary (stories15M's) needs about 600 KB that way and does not link. Here the pieces are
one byte string with offsets and flags, 5 bytes per token plus the text, in a section of their
own (`.xflash_tokens`) that the linker script places in the external Flash after the model; the
program reads one piece per printed token.
"""

from __future__ import annotations

import re

from irtool.errors import IrtoolError
from irtool.targets.c.emit import TokenTable

SECTION = ".xflash_tokens"
_TABLE = re.compile(r"typedef struct \{ const char \*bytes;.*?\n\};\n", re.S)
_PRINT = re.compile(r"static void print_token\(int32_t prev, int32_t tok\)\n\{\n.*?\n\}\n", re.S)
"""The generic main.c's piece_t table, and its print_token."""


def _c_string(data: bytes, width: int = 96) -> str:
    chunks = [data[i:i + width] for i in range(0, len(data), width)] or [b""]
    return "\n".join('    "' + "".join(f"\\x{c:02x}" for c in chunk) + '"' for chunk in chunks)


def _c_list(values, per_line: int = 16) -> str:
    items = [str(v) for v in values]
    return ",\n".join("    " + ", ".join(items[i:i + per_line])
                      for i in range(0, len(items), per_line))


def compact_table(table: TokenTable) -> str:
    """The C of the pieces, their offsets and flags, in the external Flash."""
    at, blob = [0], bytearray()
    for piece in table.pieces:
        blob += piece
        at.append(len(blob))
    attr = f'__attribute__((section("{SECTION}"), used))'
    return (f"/* The token pieces, in the external Flash (targets/cortex_m7_256k/"
            f"token_table.py). */\n"
            f"{attr} static const char piece_bytes[{len(blob) + 1}] =\n{_c_string(bytes(blob))};\n"
            f"{attr} static const uint32_t piece_at[IRT_VOCAB + 1] = {{\n{_c_list(at)}\n}};\n"
            f"{attr} static const uint8_t piece_strip[IRT_VOCAB] = {{\n"
            f"{_c_list(int(s) for s in table.strip_after_bos)}\n}};\n")


PRINT_TOKEN = ("static void print_token(int32_t prev, int32_t tok)\n{\n"
               "    uint32_t at = piece_at[tok], end = piece_at[tok + 1];\n"
               "    if (prev == BOS && piece_strip[tok] && at < end) at++;\n"
               "    fwrite(piece_bytes + at, 1, (size_t)(end - at), stdout);\n}\n")


def with_compact_table(main_c: str, table: TokenTable) -> str:
    text, n = _TABLE.subn(lambda _: compact_table(table), main_c, count=1)
    text, m = _PRINT.subn(lambda _: PRINT_TOKEN, text, count=1)
    if n != 1 or m != 1 or "pieces[" in text:
        raise IrtoolError("cortex-m7-256k: the generic main.c's token table changed shape; "
                          "update targets/cortex_m7_256k/token_table.py")
    return text
