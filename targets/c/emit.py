"""The C emitter: a placed `hw`-level module -> a self-contained bare-metal C project.

Input: a module after `extract-kv-cache`, `bufferize`, `allocate` and `lower-to-hw`: memory
globals (weights, KV-cache state) and buffers with a memory space and an offset, and a
`@decode(tok, pos) -> logits` function made of `hw.call`s. Output (one folder):

* `model.h` / `model.c`: `irt_init()` (copies the initial contents of writable spaces, clears
  the state) and `irt_decode(tok, pos)`, one kernel call per `hw.call` (irt_kernels.h, or
  irt_quant.h for quantized ops; a one-element buffer the kernel table marks `val:`, such as a
  per-tensor scale or zero point, is passed by value as `ptr[0]`) and a `memcpy` per
  `memory.copy`, every buffer a fixed address `arena + offset` chosen by the allocator;
* `weights.c`: the writable arenas, one per memory space in a section named after the space
  (`.sram`, `.dtim`), sized exactly as planned; `weights.S` + `weights_<space>.bin`: the
  read-only arenas (`.flash`) and the initial images of writable ones, as binary files the
  assembler includes (`.incbin`), the weights at their planned offsets;
* `main.c`: the prompt (embedded as token ids), greedy generation through `irt_decode`, the
  text, a `tokens:` line and instruction counts (RISC-V `minstret`) per prompt/generated token;
  natively it can also write the float32 logits of every position to a file;
* `irt_memory.ld`: the target's writable memories as linker regions holding the arenas;
  `Makefile` with `run` (qemu) and `host` (native, optional sanitizers); `runtime/`: the
  kernel runtime sources.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import IntegerAttr, MemRefType, ModuleOp
from xdsl.ir import Operation, SSAValue

from irtool.dialects import hw, memory
from irtool.errors import IrtoolError
from irtool.ir_names import DECODE, KV_CAPACITY_ATTR, KV_WINDOW_ATTR
from irtool.kernels import checked_signature, kernel_signature
from irtool.output_safety import project_directory
from irtool.targets.c.calling import PORTABLE_CALLS, CCalls
from irtool.targets.description import TargetDescription
from irtool.targets.emission_checks import check_before_emission
from irtool.targets.panel_layout import LAYOUT_ATTR, stored
from irtool.weights import WeightStore, numpy_dtype

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
"""The portable C kernels every C target ships (a target may add a runtime folder of its
own)."""
_C_TYPES = {"f32": "float", "i32": "int32_t", "i8": "int8_t", "ui8": "uint8_t", "i16": "int16_t"}
ARENA_ALIGN = 64


def c_identifier(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def c_float(x: float) -> str:
    v = float(np.float32(x))
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return f"{v!r}f" if "e" in repr(v) or "." in repr(v) else f"{v!r}.0f"


def subview_pointer(op: memory.SubviewOp, base: str) -> str:
    """A contiguous window of a buffer as a pointer into it: only the first dimension that
    is cut may start past 0, the dimensions before it hold one index, those after it whole."""
    src, sizes, offs = op.source.type.get_shape(), op.result.type.get_shape(), op.static_offsets
    cut = next((i for i, (n, s) in enumerate(zip(src, sizes, strict=False)) if n != s), len(src))
    if cut < len(src) and (any(s != 1 for s in sizes[:cut]) or any(o for o in offs[cut + 1:])):
        raise IrtoolError(f"C emitter: memory.subview {list(offs)} of {op.source.type} -> "
                          f"{op.result.type} is not contiguous; only leading windows are emitted")
    stride, elements = 1, 0
    for n, o in zip(reversed(src), reversed(offs), strict=False):
        elements += o * stride
        stride *= n
    ctype = _C_TYPES[str(op.result.type.element_type)]
    size = nbytes(op.result.type) // math.prod(sizes) if math.prod(sizes) else 0
    return f"(({ctype} *)((const uint8_t *)({base}) + {elements * size}))"


def nbytes(t: MemRefType) -> int:
    return math.prod(t.get_shape()) * numpy_dtype(t).itemsize


@dataclass
class Placed:
    """A buffer with its home: the space and the byte offset inside that space's arena."""

    space: str
    offset: int
    type: MemRefType

    @property
    def end(self) -> int:
        return self.offset + nbytes(self.type)

    def pointer(self) -> str:
        ctype = _C_TYPES[str(self.type.element_type)]
        return f"(({ctype} *)(irt_arena_{c_identifier(self.space)} + {self.offset}))"


def placement(op: Operation, what: str) -> Placed:
    space, offset = op.placement
    if space is None or offset is None:
        raise IrtoolError(f"C emitter: {what} has no memory placement; run the allocate pass "
                          "before emitting C (e.g. irtool-opt --pipeline=riscv-ulp)")
    t = op.type if isinstance(op, memory.GlobalOp) else op.results[0].type
    return Placed(space, offset, t)


@dataclass
class TokenTable:
    """What main.c needs to print text: the bytes of every token, and the BOS rule."""

    pieces: list[bytes]
    bos: int  # -1 when the vocabulary has no BOS
    strip_after_bos: list[bool]

    @classmethod
    def for_ids(cls, vocab: int) -> TokenTable:
        """Without a tokenizer the program prints every token as `<id>`."""
        return cls([f"<{i}>".encode() for i in range(vocab)], -1, [False] * vocab)

    @classmethod
    def from_tokenizer(cls, tok, vocab: int) -> TokenTable:
        from irtool.tokenizer import Llama2cTokenizer

        if tok is None:
            return cls.for_ids(vocab)

        if isinstance(tok, Llama2cTokenizer):
            bos = tok.BOS
            pieces = [tok.decode_token(None, i) for i in range(vocab)]
            strip = [tok.decode_token(bos, i) != pieces[i] for i in range(vocab)]
            return cls(pieces, bos, strip)
        return cls([tok.decode([i]).encode("utf-8") for i in range(vocab)], -1, [False] * vocab)


class CProject:
    """Builds the text of every file of the project from one placed module."""

    def __init__(self, module: ModuleOp, store: WeightStore, target: TargetDescription,
                 calls: CCalls = PORTABLE_CALLS):
        check_before_emission(module, store, target)  # targets/emission_checks.py (issue 15)
        self.module = module
        self.store = store
        self.target = target
        self.calls = calls
        self.globals = {op.sym_name.data: op for op in module.ops
                        if isinstance(op, memory.GlobalOp)}
        self.decode = self._function(DECODE)
        self.arena_size: dict[str, int] = {}
        for name, g in self.globals.items():
            self._grow(placement(g, f"memory.global @{name}"))
        for op in self.decode.walk():
            if isinstance(op, memory.AllocOp):
                self._grow(placement(op, "a memory.alloc in @decode"))
        self.scratch_floats = max([_scratch(c) for c in self.decode.walk()
                                   if isinstance(c, hw.CallOp)] or [1])
        ret = self.decode.function_type.outputs.data
        if len(ret) != 1 or len(self.decode.args) != 2:
            raise IrtoolError("C emitter: @decode must be (tok, pos) -> logits with its KV cache "
                              "in memory globals; run bufferize after extract-kv-cache")
        self.vocab = ret[0].get_shape()[-1]

    def _function(self, name: str) -> func.FuncOp:
        for op in self.module.ops:
            if isinstance(op, func.FuncOp) and op.sym_name.data == name:
                return op
        raise IrtoolError(f"C emitter: the module has no @{name} function; run "
                          "extract-kv-cache{prefill=token-by-token}, bufferize, allocate and "
                          "lower-to-hw first")

    def _grow(self, p: Placed) -> None:
        self.arena_size[p.space] = max(self.arena_size.get(p.space, 0), p.end)

    def read_only(self, space: str) -> bool:
        return self.target.memory(space).read_only

    def has_initial_weights(self, space: str) -> bool:
        """A writable space holding weights needs a copy of them in Flash and a memcpy."""
        return not self.read_only(space) and any(
            g.kind.data == "weight" and placement(g, n).space == space
            for n, g in self.globals.items())

    # -- weights.c ---------------------------------------------------------------------------

    def _image(self, space: str, kinds: Sequence[str]) -> bytearray:
        img = bytearray(self.padded(space))
        for name, g in self.globals.items():
            p = placement(g, name)
            if p.space == space and g.kind.data in kinds and g.weight is not None:
                layout = g.attributes.get(LAYOUT_ATTR)
                array = stored(self.store[g.weight.data], layout.data if layout else None)
                data = np.ascontiguousarray(array, dtype=numpy_dtype(g.type)).tobytes()
                img[p.offset:p.offset + len(data)] = data
        return img

    def padded(self, space: str) -> int:
        return (self.arena_size[space] + 3) // 4 * 4

    def weights_c(self) -> str:
        """The writable arenas (no initial data: irt_init() fills them). The bytes of the
        read-only arenas and of the initial images are in weights.S (`weight_blobs`)."""
        out = ["/* Generated by irtool: the writable arenas, sized as planned (the weights are "
               "in weights.S). */", "#include <stdint.h>", '#include "model.h"', ""]
        for space in sorted(self.arena_size):
            if self.read_only(space):
                continue
            ident = c_identifier(space)
            words = self.padded(space) // 4
            attr = f'__attribute__((section(".{space}"), aligned({ARENA_ALIGN})))'
            out.append(f"uint32_t irt_arena_{ident}_words[{words}] {attr};")
            if self.has_initial_weights(space):  # the image is in weights.S
                out += [f"extern const uint32_t irt_init_{ident}[{words}];",
                        f"const uint32_t *const irt_init_{ident}_ptr = irt_init_{ident};"]
        return "\n".join(out) + "\n"

    def weight_blobs(self) -> dict[str, bytes]:
        """File name -> bytes: the image of every read-only arena, and the initial image of
        every writable arena that holds weights (copied in by irt_init())."""
        blobs = {}
        for space in sorted(self.arena_size):
            if self.read_only(space) or self.has_initial_weights(space):
                blobs[f"weights_{c_identifier(space)}.bin"] = bytes(
                    self._image(space, ("weight",)))
        return blobs

    def weights_s(self) -> str:
        """The weight images linked in as binary (`.incbin`): why not C text, a 15M-parameter
        model's weights as hex make a file gcc needs a minute and gigabytes to compile, while
        the assembler copies a binary file at disk speed."""
        out = ["/* Generated by irtool: the weight images (weights_*.bin) linked into the "
               "memories the allocator chose. */"]
        for space in sorted(self.arena_size):
            ident = c_identifier(space)
            blob = f"weights_{ident}.bin"
            if self.read_only(space):
                symbol, section = f"irt_arena_{ident}_words", f".{space}"
            elif self.has_initial_weights(space):
                symbol, section = f"irt_init_{ident}", ".rodata"
            else:
                continue
            out += [f'\t.section {section},"a"', f"\t.balign {ARENA_ALIGN}",
                    f"\t.global {symbol}", f"\t.type {symbol}, %object",
                    f"{symbol}:", f'\t.incbin "{blob}"', f"\t.size {symbol}, . - {symbol}"]
        out.append('\t.section .note.GNU-stack,"",%progbits')  # no executable stack
        return "\n".join(out) + "\n"

    # -- model.c -----------------------------------------------------------------------------

    def model_h(self) -> str:
        lines = ["/* Generated by irtool. */", "#ifndef IRT_MODEL_H", "#define IRT_MODEL_H",
                 "#include <stdint.h>", "", f"#define IRT_VOCAB {self.vocab}",
                 f"#define IRT_MAX_POSITIONS {self.max_positions()}",
                 f"#define IRT_RING {1 if self.ring() else 0}", ""]
        for space in sorted(self.arena_size):
            ident = c_identifier(space)
            const = "const " if self.read_only(space) else ""
            lines += [f"extern {const}uint32_t irt_arena_{ident}_words[];",
                      f"#define irt_arena_{ident} (({const}uint8_t *)irt_arena_{ident}_words)",
                      f"#define IRT_ARENA_{ident.upper()}_BYTES {self.padded(space)}u"]
        summary = ", ".join(f"{space} {self.padded(space)} B" for space in sorted(self.arena_size))
        lines += [f'#define IRT_MEMORY_SUMMARY "{summary}"']
        lines += ["", "/* Reset: initial contents of writable memories, an empty KV cache. */",
                  "void irt_init(void);",
                  "/* One decode step: token `tok` at position `pos`; returns the logits. */",
                  "const float *irt_decode(const int32_t *tok, int32_t pos);", "", "#endif", ""]
        return "\n".join(lines)

    def max_positions(self) -> int:
        attr = self.module.attributes.get(KV_CAPACITY_ATTR)
        return attr.value.data if isinstance(attr, IntegerAttr) else 1 << 30

    def ring(self) -> bool:
        return KV_WINDOW_ATTR in self.module.attributes

    def model_c(self) -> str:
        body, names = [], {}
        tok_arg, pos_arg = self.decode.args
        names[tok_arg] = "tok"
        names[pos_arg] = "pos"

        def name(v: SSAValue) -> str:
            if v not in names:
                raise IrtoolError(f"C emitter: value {v} of @decode is not emitted")
            return names[v]

        for op in self.decode.body.block.ops:
            match op:
                case memory.GetGlobalOp():
                    g = self.globals[op.global_name.root_reference.data]
                    names[op.result] = placement(g, g.sym_name.data).pointer()
                case memory.AllocOp():
                    names[op.result] = placement(op, "memory.alloc").pointer()
                case arith.ConstantOp():
                    names[op.result] = str(op.value.value.data)
                case arith.AddiOp():
                    names[op.result] = f"({name(op.lhs)} + {name(op.rhs)})"
                case hw.CallOp() | hw.AccelOp():  # an accelerator's driver is C too
                    body.append(f"  {self.call(op, name)};")
                case memory.CopyOp():
                    body.append(f"  memcpy({name(op.dest)}, {name(op.source)}, "
                                f"{nbytes(op.source.type)}u);")
                case memory.SubviewOp():
                    names[op.result] = subview_pointer(op, name(op.source))
                case memory.DmaStartOp():
                    token = f"dma{len(names)}"
                    names[op.token] = token
                    body.append(f"  irt_dma_token_t {token} = irt_dma_start({name(op.dest)}, "
                                f"{name(op.source)}, {nbytes(op.source.type)}u);")
                case memory.DmaWaitOp():
                    body.append(f"  irt_dma_wait({name(op.token)});")
                case func.ReturnOp():
                    body.append(f"  return {name(op.arguments[0])};")
                case memory.DeallocOp():
                    pass
                case _:
                    raise IrtoolError(f"C emitter: cannot emit {op.name} in @decode")
        init = []
        for space in sorted(self.arena_size):
            ident = c_identifier(space)
            if self.has_initial_weights(space):
                init.append(f"  memcpy(irt_arena_{ident}, irt_init_{ident}_ptr, "
                            f"IRT_ARENA_{ident.upper()}_BYTES);")
        for name_, g in self.globals.items():
            if g.kind.data == "state":
                p = placement(g, name_)
                init.append(f"  memset(irt_arena_{c_identifier(p.space)} + {p.offset}, 0, "
                            f"{nbytes(p.type)}u); /* @{name_} */")
        dma = any(isinstance(op, memory.DmaStartOp) for op in self.decode.walk())
        externs = [f"extern const uint32_t *const irt_init_{c_identifier(s)}_ptr;"
                   for s in sorted(self.arena_size) if self.has_initial_weights(s)]
        return "\n".join([
            "/* Generated by irtool from the hw-level @decode: one kernel call per hw.call. */",
            "#include <math.h>", "#include <stddef.h>", "#include <string.h>",
            '#include "model.h"', *(f'#include "{h}"' for h in self.calls.headers),
            *(['#include "irt_dma.h" /* the target\'s DMA HAL */'] if dma else []), "",
            *externs,
            f"static float irt_scratch[{self.scratch_floats}];", "",
            "void irt_init(void)", "{", *init, "}", "",
            "const float *irt_decode(const int32_t *tok, int32_t pos)", "{", *body, "}", ""])

    def call(self, op: hw.CallOp, name) -> str:
        sig, c_call = checked_signature(op), self.calls[op.kernel]
        operands = dict(zip(sig.operands, op.args, strict=False))
        args = []
        for a in c_call.args:
            if a == "NULL":
                args.append("NULL")
            elif a == "SCRATCH":
                args.append("irt_scratch")
            elif a.startswith("op:"):
                args.append(name(operands[a[3:]]))
            elif a.startswith("val:"):  # a one-element buffer passed by value: its element
                v = operands[a[4:]]
                args.append(f"{name(v)}[0]" if isinstance(v.type, MemRefType) else name(v))
            else:
                v = op.param(a[2:])
                args.append(c_float(v) if isinstance(v, float) else str(v))
        return f"{c_call.function}({', '.join(args)})"

    def write(self, out_dir: Path, files: dict[str, str],
              runtime_dirs: Sequence[Path] = (RUNTIME_DIR,)) -> None:
        """The model's files, the project files given (main.c, Makefile, ...) and the runtime
        sources (the portable kernels, then a target's own, which may replace a file)."""
        # built in a temporary directory, merged into out_dir when the command succeeds
        with project_directory(out_dir) as out_dir:  # irtool.output_safety (issue 15)
            rt = out_dir / "runtime"
            rt.mkdir()
            for src in runtime_dirs:
                for f in sorted(src.iterdir()):
                    if f.is_file() and f.suffix in (".c", ".h", ".S"):
                        shutil.copyfile(f, rt / f.name)
            files = {"model.h": self.model_h(), "model.c": self.model_c(),
                     "weights.c": self.weights_c(), "weights.S": self.weights_s(), **files}
            for fname, text in files.items():
                (out_dir / fname).write_text(text)
            for fname, blob in self.weight_blobs().items():
                (out_dir / fname).write_bytes(blob)


def _scratch(call: hw.CallOp) -> int:
    sig = kernel_signature(call.kernel)
    if sig.scratch is None:
        return 0
    return sig.scratch({k: call.param(k) for k in sig.params})
