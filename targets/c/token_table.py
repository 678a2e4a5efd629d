"""main.c's token table: the text of every token, in as few bytes as the program can read.

The program prints each generated token from this table. A pointer, a length and a flag per
token (a `piece_t` of 12 bytes on a 32-bit core, plus a word-aligned string literal each) took
about 20 bytes a token: 164 KB for an 8,192-token vocabulary, more than the room riscv-ulp
keeps in its Flash for the program. Here the pieces are one byte string with a `uint32_t`
offset per token and a flag byte, 5 bytes a token plus the text (`table_bytes` says exactly
how many), read one piece per printed token. A target may put the table in a section of its
own (cortex-m7-256k: its external Flash, after the model).
"""

from __future__ import annotations

from irtool.targets.c.emit import TokenTable


def _c_string(data: bytes, width: int = 96) -> str:
    chunks = [data[i:i + width] for i in range(0, len(data), width)] or [b""]
    return "\n".join('    "' + "".join(f"\\x{c:02x}" for c in chunk) + '"' for chunk in chunks)


def _c_list(values, per_line: int = 16) -> str:
    items = [str(v) for v in values]
    return ",\n".join("    " + ", ".join(items[i:i + per_line])
                      for i in range(0, len(items), per_line))


def _blob(table: TokenTable) -> tuple[bytes, list[int]]:
    at, blob = [0], bytearray()
    for piece in table.pieces:
        blob += piece
        at.append(len(blob))
    return bytes(blob), at


def table_bytes(table: TokenTable) -> int:
    """Bytes the table takes in the program's constants: the text and its terminating NUL,
    the offsets and the flags, each array aligned to 4 bytes (an upper bound by at most 6)."""
    blob, _ = _blob(table)
    vocab = len(table.pieces)

    def aligned(n: int) -> int:
        return -(-n // 4) * 4

    return aligned(len(blob) + 1) + 4 * (vocab + 1) + aligned(vocab)


def table_c(table: TokenTable, section: str | None = None) -> str:
    """The C of the pieces, their offsets and flags, and `print_token` reading them; in
    `section` when given (the linker script places it), else with the other constants."""
    blob, at = _blob(table)
    attr = "" if section is None else f'__attribute__((section("{section}"), used)) '
    return (f"/* The token pieces: one string, an offset per token and a flag (strip the\n"
            f"   leading space after BOS); targets/c/token_table.py. */\n"
            f"{attr}static const char piece_bytes[{len(blob) + 1}] =\n{_c_string(blob)};\n"
            f"{attr}static const uint32_t piece_at[IRT_VOCAB + 1] = {{\n{_c_list(at)}\n}};\n"
            f"{attr}static const uint8_t piece_strip[IRT_VOCAB] = {{\n"
            f"{_c_list(int(s) for s in table.strip_after_bos)}\n}};\n")


PRINT_TOKEN = """static void print_token(int32_t prev, int32_t tok)
{
    uint32_t at = piece_at[tok], end = piece_at[tok + 1];
    if (prev == BOS && piece_strip[tok] && at < end) at++;
    fwrite(piece_bytes + at, 1, (size_t)(end - at), stdout);
}
"""
