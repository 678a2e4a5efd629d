"""The HLS C++ of the kernels: one `extern "C"` top function per block part.

Each kind of part (`irtool.block_parts`: embed, attn_in, attn_q/k/v, attn, mlp, head) becomes
one Vitis kernel, compiled once and run for every layer with that layer's buffers and index.
Its buffers are `m_axi` ports, one AXI bundle each (so each can sit on its own HBM
pseudo-channel, the bank map's business), widened to 512-bit beats; one-element weights
(activation scales and zero points) are passed by value; `pos` and `layer` are scalars on the
control interface. The body calls the templates of `runtime/irt_hls.h` (fixed trip counts,
`pipeline II=1`, `unroll`, `array_partition`); intermediate values are on-chip arrays, outputs
are written straight to their ports.
"""

from __future__ import annotations

from xdsl.dialects import arith
from xdsl.dialects.builtin import Float32Type, IntegerType
from xdsl.ir import BlockArgument, OpResult, SSAValue

from irtool.block_parts import ATTENTION, KV_WRITE, BlockParts, Part, numel, ports
from irtool.errors import IrtoolError

HEADER = "irt_hls.h"


def ctype(v: SSAValue) -> str:
    t = v.type.element_type if hasattr(v.type, "element_type") else v.type
    if isinstance(t, Float32Type):
        return "float"
    if isinstance(t, IntegerType) and t.width.data in (8, 32):
        return f"int{t.width.data}_t"
    raise IrtoolError(f"u280-hls: no C++ type for elements of {v.type}")


URAM_MIN_BITS = 4 * 36 * 1024
"""An on-chip array of at least this many bits (four BRAM36 blocks' worth) is bound to
UltraRAM (`bind_storage impl=uram`), the rest left to Vitis (BRAM or LUTRAM)."""


def _bits(c_type: str) -> int:
    return {"float": 32, "int32_t": 32, "int16_t": 16, "int8_t": 8}[c_type]


def _shape(v: SSAValue) -> list[int]:
    return list(v.type.get_shape())


def _lit(x: float) -> str:
    return f"{float(x)!r}f".replace("inff", "INFINITY")


def _prop(op, key):
    return op.properties[key]


class KernelWriter:
    """The C++ of one part kind."""

    def __init__(self, part: Part, stripes: int = 1):
        self.part = part
        self.ports = ports(part, stripes)
        self.names: dict[SSAValue, str] = {
            p.value: p.name for p in self.ports
            if p.rows is None and (p.role != "output" or p.copy == 0)}
        self.striped: dict[SSAValue, list[str]] = {}
        for p in self.ports:
            if p.rows is not None:
                self.striped.setdefault(p.value, []).append(p.name)
        self.helpers: set[tuple[str, int]] = set()
        self.locals: list[str] = []
        self.arrays: list[tuple[str, str, int]] = []
        """The on-chip arrays it declares: (name, C type, elements)."""
        self.per_layer = part.layer is not None

    def name(self, v: SSAValue) -> str:
        if v in self.names:
            return self.names[v]
        if isinstance(v, OpResult) and v.owner.name in KV_WRITE:
            return self.name(v.owner.operands[v.index])  # the cache (scales), in place
        raise IrtoolError(f"u280-hls: {self.part.name}: value {v} has no name")

    def index(self, v: SSAValue) -> str:
        """A C expression for an index scalar (pos, pos + 1)."""
        if isinstance(v, BlockArgument) and v.index == 1:
            return "pos"
        op = v.owner if isinstance(v, OpResult) else None
        if isinstance(op, arith.ConstantOp):
            return str(op.value.value.data)
        if isinstance(op, arith.AddiOp):
            return f"({self.index(op.lhs)} + {self.index(op.rhs)})"
        raise IrtoolError(f"u280-hls: index value {v} is not pos or pos + constant")

    def result(self, op) -> str:
        r = op.results[0]
        if r not in self.names:
            n = f"v{len(self.arrays)}"
            self.names[r] = n
            self.locals.append(f"    {ctype(r)} {n}[{numel(r)}];")
            self.arrays.append((n, ctype(r), numel(r)))
            if numel(r) * _bits(ctype(r)) >= URAM_MIN_BITS:
                self.locals.append(f"#pragma HLS bind_storage variable={n} type=ram_2p impl=uram")
        return self.names[r]

    def signature(self) -> str:
        args = []
        for p in self.ports:
            t = ctype(p.value)
            if p.role == "scalar":
                args.append(f"{t} {p.name}")
            elif p.role in ("output", "cache"):
                args.append(f"{t} *{p.name}")
            else:
                args.append(f"const {t} *{p.name}")
        args.append("int pos")
        if self.per_layer:
            args.append("int layer")
        return f'extern "C" void {self.part.kind}({", ".join(args)})'

    def pragmas(self) -> list[str]:
        out = []
        for p in self.ports:
            if p.is_buffer:
                out.append(f"#pragma HLS interface m_axi port={p.name} offset=slave "
                           f"bundle=gmem_{p.name} max_widen_bitwidth=512 "
                           "max_read_burst_length=64")
            out.append(f"#pragma HLS interface s_axilite port={p.name}")
        out.append("#pragma HLS interface s_axilite port=pos")
        if self.per_layer:
            out.append("#pragma HLS interface s_axilite port=layer")
        out.append("#pragma HLS interface s_axilite port=return")
        return out

    def body(self) -> list[str]:
        lines = []
        for op in self.part.ops:
            lines.append(f"    {self.call(op)};")
        return lines

    def call(self, op) -> str:
        n, o = op.name, op.operands
        if n == "transformer.embedding":
            vocab, dim = _shape(o[1])
            return (f"irt_hls::embedding<{vocab}, {dim}>({self.name(o[0])}, {self.name(o[1])}, "
                    f"{self.result(op)})")
        if n == "transformer.position_embedding":
            positions, dim = _shape(o[1])
            start = self.index(o[2]) if len(o) > 2 else "0"
            return (f"irt_hls::position_embedding<{positions}, {dim}>({self.name(o[1])}, {start}, "
                    f"{self.result(op)})")
        if n == "transformer.rms_norm":
            return (f"irt_hls::rms_norm<{numel(o[0])}>({self.name(o[0])}, {self.name(o[1])}, "
                    f"{self.result(op)}, {_lit(_prop(op, 'eps').value.data)})")
        if n == "transformer.layer_norm":
            return (f"irt_hls::layer_norm<{numel(o[0])}>({self.name(o[0])}, {self.name(o[1])}, "
                    f"{self.name(o[2])}, {self.result(op)}, "
                    f"{_lit(_prop(op, 'eps').value.data)})")
        if n == "quant.quantize":
            return (f"irt_hls::quantize<{numel(o[0])}>({self.name(o[0])}, {self.result(op)}, "
                    f"{self.name(o[1])}, {self.name(o[2])})")
        if n == "quant.qlinear":
            nn, k = _shape(o[1])
            bias = self.name(o[4]) if len(o) > 4 else "nullptr"
            if o[1] in self.striped:
                w = self.striped[o[1]]
                self.helpers.add(("qlinear_w8a8", len(w)))
                return (f"qlinear_w8a8_x{len(w)}<{nn}, {k}, {-(-nn // len(w))}>("
                        f"{self.name(o[0])}, {self.name(o[3])}, {', '.join(w)}, "
                        f"{self.name(o[2])}, {bias}, {self.result(op)})")
            return (f"irt_hls::qlinear_w8a8<{nn}, {k}>({self.name(o[0])}, {self.name(o[3])}, "
                    f"{self.name(o[1])}, {self.name(o[2])}, {bias}, {self.result(op)})")
        if n == "transformer.linear":
            nn, k = _shape(o[1])
            bias = self.name(o[2]) if len(o) > 2 else "nullptr"
            if o[1] in self.striped:
                w = self.striped[o[1]]
                self.helpers.add(("linear_f32", len(w)))
                return (f"linear_f32_x{len(w)}<{nn}, {k}, {-(-nn // len(w))}>("
                        f"{self.name(o[0])}, {', '.join(w)}, {bias}, {self.result(op)})")
            return (f"irt_hls::linear_f32<{nn}, {k}>({self.name(o[0])}, {self.name(o[1])}, "
                    f"{bias}, {self.result(op)})")
        if n == "transformer.rope":
            style = {"interleaved": 0, "rotate_half": 1}[_prop(op, "style").data]
            h, hd, rot = (_prop(op, k).value.data for k in ("heads", "head_dim", "rotary_dim"))
            return (f"irt_hls::rope<{h}, {hd}, {rot}, {style}>({self.name(o[0])}, "
                    f"{self.name(o[1])}, {self.name(o[2])}, {self.index(o[3])}, "
                    f"{self.result(op)})")
        if n in KV_WRITE:
            _, kv, cap, hd = _shape(o[0])
            ring = int(op.ring is not None)
            if n == "quant.kv_write":  # (cache, scales, new, pos)
                return (f"irt_hls::kv_write_int8<{kv}, {cap}, {hd}, {ring}>({self.name(o[0])}, "
                        f"{self.name(o[1])}, {self.name(o[2])}, layer, {self.index(o[3])})")
            return (f"irt_hls::kv_write<{kv}, {cap}, {hd}, {ring}>({self.name(o[0])}, "
                    f"{self.name(o[1])}, layer, {self.index(o[2])})")
        if n in ATTENTION:
            _, kv, cap, hd = _shape(o[1])
            heads = _prop(op, "heads").value.data
            ring = int(op.ring is not None)
            if n == "quant.cached_attention":  # (q, kcache, kscales, vcache, vscales, end)
                caches = ", ".join(self.name(v) for v in o[1:5])
                t, end = "int8_t", o[5]
            else:
                caches = f"{self.name(o[1])}, nullptr, {self.name(o[2])}, nullptr"
                t, end = "float", o[3]
            return (f"irt_hls::cached_attention<{heads}, {kv}, {hd}, {cap}, {ring}, {t}>("
                    f"{self.name(o[0])}, {caches}, layer, {self.index(end)}, "
                    f"{_lit(_prop(op, 'scale').value.data)}, {self.result(op)})")
        if n in ("transformer.add", "transformer.mul"):
            fn = n.split(".")[1]
            return (f"irt_hls::{fn}<{numel(o[0])}>({self.name(o[0])}, {self.name(o[1])}, "
                    f"{self.result(op)})")
        if n == "transformer.silu":
            return f"irt_hls::silu<{numel(o[0])}>({self.name(o[0])}, {self.result(op)})"
        if n == "transformer.gelu":
            tanh = int(_prop(op, "approximate").data == "tanh")
            return (f"irt_hls::gelu<{numel(o[0])}, {tanh}>({self.name(o[0])}, "
                    f"{self.result(op)})")
        raise IrtoolError(f"u280-hls: no HLS kernel code for {n} (in part {self.part.name}); "
                          "supported: embedding, position_embedding, rms_norm, layer_norm, "
                          "quantize, qlinear (W8A8), linear (float), rope, kv_write and "
                          "cached_attention (float or int8 cache, linear or ring), add, mul, "
                          "silu, gelu")

    def write(self) -> str:
        copied = set(self.part.copies)
        for p in self.ports:  # outputs are written straight to their ports
            if p.role == "output":
                if p.value in copied:
                    self.names.pop(p.value, None)  # made on chip, then written to every copy
                else:
                    self.names[p.value] = p.name
        body = self.body()
        for p in self.ports:  # one copy per concurrent reader, each on its own port
            if p.role == "output" and p.value in copied:
                body.append(f"    irt_hls::copy_out<{numel(p.value)}>({self.names[p.value]}, "
                            f"{p.name});")
        what = ", ".join(o.name.split(".")[1] for o in self.part.ops)
        head = [f"// {self.part.kind}: {what}", self.signature(), "{", *self.pragmas()]
        return "\n".join([*head, *self.locals, *body, "}", ""])


def striped_linear(kind: str, stripes: int) -> str:
    """A linear layer whose matrix is in `stripes` row blocks, one m_axi port each: every
    pipelined iteration reads one 512-bit beat of the current row of every stripe, so the
    stripes (on their own HBM channels) stream in parallel; row r of stripe s is row
    s * NB + r of the matrix. Same sums in the same order as the unstriped template."""
    int8 = kind == "qlinear_w8a8"
    wt, acc_t, lanes = ("int8_t", "int32_t", "irt_hls::BEAT") if int8 else \
        ("float", "float", "irt_hls::FBEAT")
    xt = "int16_t" if int8 else "float"
    ws = ", ".join(f"const {wt} *w{s}" for s in range(stripes))
    head = (f"const int8_t xq[K], int32_t zx, {ws}, const float *m, const float *bias, "
            "float y[N]" if int8 else f"const float x[K], {ws}, const float *bias, float y[N]")
    load = "(int16_t)((int32_t)xq[k] - zx)" if int8 else "x[k]"
    zero = "0" if int8 else "0.0f"
    mul = "(int32_t)xs[k] * (int32_t)" if int8 else "xs[k] * "
    lines = [f"// {kind} over {stripes} row stripes, read in parallel (one port each)",
             "template <int N, int K, int NB>",
             f"static void {kind}_x{stripes}({head})", "{",
             f"    {xt} xs[K];",
             "#pragma HLS array_partition variable=xs type=cyclic "
             f"factor={64 if int8 else 16} dim=1",
             "load:", "    for (int k = 0; k < K; ++k) {", "#pragma HLS pipeline II=1",
             f"        xs[k] = {load};", "    }",
             "rows:", "    for (int r = 0; r < NB; ++r) {",
             f"        {acc_t} " + ", ".join(f"acc{s} = {zero}" for s in range(stripes)) + ";",
             "    beats:", f"        for (int k0 = 0; k0 < K; k0 += {lanes}) {{",
             "#pragma HLS pipeline II=1",
             f"            {acc_t} " + ", ".join(f"p{s} = {zero}" for s in range(stripes)) + ";",
             "        lanes:", f"            for (int j = 0; j < {lanes}; ++j) {{",
             "#pragma HLS unroll", "                const int k = k0 + j;",
             "                if (k >= K) continue;"]
    for s in range(stripes):
        guard = "" if s == 0 else f"if ({s} * NB + r < N) "
        lines.append(f"                {guard}p{s} += {mul}w{s}[(size_t)r * K + k];")
    lines += ["            }"]
    lines += [f"            acc{s} += p{s};" for s in range(stripes)]
    lines += ["        }"]
    for s in range(stripes):
        n = f"{s} * NB + r"
        if int8:
            lines += [f"        if ({n} < N) {{",
                      f"            float v = (float)acc{s} * m[{n}];",
                      f"            if (bias) v = v + bias[{n}];",
                      f"            y[{n}] = v;", "        }"]
        else:
            lines.append(f"        if ({n} < N) y[{n}] = bias ? acc{s} + bias[{n}] : acc{s};")
    lines += ["    }", "}", ""]
    return "\n".join(lines)


def kernels_cpp(bp: BlockParts, stripes: int = 1) -> str:
    writers = [KernelWriter(p, stripes) for p in bp.kinds()]
    bodies = [w.write() for w in writers]
    helpers = sorted(set().union(*(w.helpers for w in writers)))
    parts = [f'#include "{HEADER}"', '#include "kernels.h"', ""]
    parts += [striped_linear(kind, n) for kind, n in helpers]
    return "\n".join(parts + bodies)


def kernels_h(bp: BlockParts, stripes: int = 1) -> str:
    lines = ["// The kernels' top functions (generated by irtool for u280-hls).",
             "#ifndef IRT_KERNELS_H", "#define IRT_KERNELS_H", "#include <cstdint>", ""]
    lines += [KernelWriter(p, stripes).signature() + ";" for p in bp.kinds()]
    return "\n".join([*lines, "", "#endif", ""])
