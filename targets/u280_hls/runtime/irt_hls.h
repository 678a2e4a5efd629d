// irt_hls.h - the kernels' building blocks for Vitis HLS, in standard C++ (g++ builds them for
// C simulation; the pragmas are for Vitis and ignored by g++ with -Wno-unknown-pragmas).
//
// Every size is a template parameter, so each loop has a fixed trip count and the pragmas can
// pipeline (II=1), unroll and partition. Weights are read from the m_axi pointers in row order,
// BEAT bytes (one 512-bit AXI beat) of a row per pipelined iteration, so a row streams as
// consecutive bursts. Arithmetic follows irtool's quantization contract: W8A8 accumulates
// exactly in int32, y = float(acc) * m (+ bias) with two roundings (build with
// -ffp-contract=off), activations quantized with round-half-to-even.
#ifndef IRT_HLS_H
#define IRT_HLS_H

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace irt_hls {

static const int BEAT = 64;       // bytes of one 512-bit AXI beat (int8 lanes)
static const int FBEAT = 16;      // float lanes of one 512-bit beat

// round half to even, clipped to [lo, hi] (|v| <= 2^22 after clipping): adding 1.5 * 2^23
// leaves no fraction bits, so the sum is rounded to an integer (ties to even) and the
// subtraction is exact (IEEE float arithmetic, no -ffast-math).
static inline int32_t round_clip(float v, float lo, float hi) {
    if (!(v >= lo)) v = lo;
    else if (v > hi) v = hi;
    const float r = v + 12582912.0f;
    return (int32_t)(r - 12582912.0f);
}

template <int N>
void copy_in(const float *src, float dst[N]) {
copy:
    for (int i = 0; i < N; ++i) {
#pragma HLS pipeline II=1
        dst[i] = src[i];
    }
}

template <int N, typename T>
void copy_out(const T src[N], T *dst) {
copy:
    for (int i = 0; i < N; ++i) {
#pragma HLS pipeline II=1
        dst[i] = src[i];
    }
}

// y = table[token] (one row of the embedding table)
template <int V, int D>
void embedding(const int32_t *tok, const float *table, float y[D]) {
    const int t = tok[0];
row:
    for (int d = 0; d < D; ++d) {
#pragma HLS pipeline II=1
        y[d] = table[(size_t)t * D + d];
    }
}

// y = table[start] (the learned position embedding of the current position)
template <int P, int D>
void position_embedding(const float *table, int start, float y[D]) {
row:
    for (int d = 0; d < D; ++d) {
#pragma HLS pipeline II=1
        y[d] = table[(size_t)start * D + d];
    }
}

template <int D>
void rms_norm(const float x[D], const float *g, float y[D], float eps) {
    float ss = 0.0f;
sum:
    for (int d = 0; d < D; ++d) {
#pragma HLS pipeline II=1
        ss += x[d] * x[d];
    }
    const float inv = 1.0f / std::sqrt(ss / (float)D + eps);
scale:
    for (int d = 0; d < D; ++d) {
#pragma HLS pipeline II=1
        y[d] = x[d] * inv * g[d];
    }
}

template <int D>
void layer_norm(const float x[D], const float *g, const float *b, float y[D], float eps) {
    float s = 0.0f;
mean:
    for (int d = 0; d < D; ++d) {
#pragma HLS pipeline II=1
        s += x[d];
    }
    const float mu = s / (float)D;
    float ss = 0.0f;
var:
    for (int d = 0; d < D; ++d) {
#pragma HLS pipeline II=1
        const float c = x[d] - mu;
        ss += c * c;
    }
    const float inv = 1.0f / std::sqrt(ss / (float)D + eps);
scale:
    for (int d = 0; d < D; ++d) {
#pragma HLS pipeline II=1
        y[d] = (x[d] - mu) * inv * g[d] + b[d];
    }
}

// activations to int8: clip(round(x / s) + z, -128, 127)
template <int N>
void quantize(const float x[N], int8_t xq[N], float scale, int32_t zero_point) {
quant:
    for (int i = 0; i < N; ++i) {
#pragma HLS pipeline II=1
        int32_t v = round_clip(x[i] / scale, -256.0f, 256.0f) + zero_point;
        xq[i] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }
}

// W8A8: y[n] = float(sum_k (xq[k] - zx) * w[n][k]) * m[n] (+ bias[n]), int32 accumulation.
// Row n of w is read in order, one 64-byte beat per pipelined iteration; the 64 lanes of a
// beat are multiplied in parallel against a copy of xq partitioned to match.
template <int N, int K>
void qlinear_w8a8(const int8_t xq[K], int32_t zx, const int8_t *w, const float *m,
                  const float *bias, float y[N]) {
    int16_t xs[K];
#pragma HLS array_partition variable=xs type=cyclic factor=64 dim=1
center:
    for (int k = 0; k < K; ++k) {
#pragma HLS pipeline II=1
        xs[k] = (int16_t)((int32_t)xq[k] - zx);
    }
rows:
    for (int n = 0; n < N; ++n) {
        int32_t acc = 0;
    beats:
        for (int k0 = 0; k0 < K; k0 += BEAT) {
#pragma HLS pipeline II=1
            int32_t part = 0;
        lanes:
            for (int j = 0; j < BEAT; ++j) {
#pragma HLS unroll
                const int k = k0 + j;
                if (k < K) part += (int32_t)xs[k] * (int32_t)w[(size_t)n * K + k];
            }
            acc += part;
        }
        float v = (float)acc * m[n];
        if (bias) v = v + bias[n];
        y[n] = v;
    }
}

// float linear (the lm_head stays float): y[n] = dot(x, w[n]) (+ bias[n]), rows in order,
// 16 floats (one beat) per pipelined iteration.
template <int N, int K>
void linear_f32(const float x[K], const float *w, const float *bias, float y[N]) {
    float xs[K];
#pragma HLS array_partition variable=xs type=cyclic factor=16 dim=1
load:
    for (int k = 0; k < K; ++k) {
#pragma HLS pipeline II=1
        xs[k] = x[k];
    }
rows:
    for (int n = 0; n < N; ++n) {
        float acc = 0.0f;
    beats:
        for (int k0 = 0; k0 < K; k0 += FBEAT) {
#pragma HLS pipeline II=1
            float part = 0.0f;
        lanes:
            for (int j = 0; j < FBEAT; ++j) {
#pragma HLS unroll
                const int k = k0 + j;
                if (k < K) part += xs[k] * w[(size_t)n * K + k];
            }
            acc += part;
        }
        y[n] = bias ? acc + bias[n] : acc;
    }
}

// rotary embedding at position `start`; STYLE 0 = interleaved pairs, 1 = rotate half
template <int HEADS, int HD, int ROT, int STYLE>
void rope(const float x[HEADS * HD], const float *cos_t, const float *sin_t, int start,
          float y[HEADS * HD]) {
    const int half = ROT / 2;
heads:
    for (int h = 0; h < HEADS; ++h) {
    pairs:
        for (int i = 0; i < half; ++i) {
#pragma HLS pipeline II=1
            const float c = cos_t[(size_t)start * half + i], s = sin_t[(size_t)start * half + i];
            const int ia = STYLE == 0 ? 2 * i : i, ib = STYLE == 0 ? 2 * i + 1 : i + half;
            const float a = x[h * HD + ia], b = x[h * HD + ib];
            y[h * HD + ia] = a * c - b * s;
            y[h * HD + ib] = STYLE == 0 ? a * s + b * c : b * c + a * s;
        }
    pass:
        for (int i = ROT; i < HD; ++i) {
#pragma HLS pipeline II=1
            y[h * HD + i] = x[h * HD + i];
        }
    }
}

// The slot of position `pos` in a cache of CAP slots: `pos` (linear) or `pos % CAP` (RING, a
// window that keeps the last CAP positions).
template <int CAP, int RING>
static inline int kv_slot(int pos) { return RING ? pos % CAP : pos; }

// cache[layer][h][slot(pos)][:] = row[h * HD : (h + 1) * HD]
template <int KV, int CAP, int HD, int RING>
void kv_write(float *cache, const float row[KV * HD], int layer, int pos) {
    const int slot = kv_slot<CAP, RING>(pos);
heads:
    for (int h = 0; h < KV; ++h) {
    dims:
        for (int d = 0; d < HD; ++d) {
#pragma HLS pipeline II=1
            cache[(((size_t)layer * KV + h) * CAP + slot) * HD + d] = row[h * HD + d];
        }
    }
}

// The int8 cache: each row (position, kv head) quantized with its own scale
// s = max|row| / 127 (1 when the row is 0), q = clip(round(row / s), -127, 127), round half
// to even; the scale goes to scales[layer][h][slot].
template <int KV, int CAP, int HD, int RING>
void kv_write_int8(int8_t *cache, float *scales, const float row[KV * HD], int layer, int pos) {
    const int slot = kv_slot<CAP, RING>(pos);
heads:
    for (int h = 0; h < KV; ++h) {
        float mx = 0.0f;
    absmax:
        for (int d = 0; d < HD; ++d) {
#pragma HLS pipeline II=1
            const float a = std::fabs(row[h * HD + d]);
            mx = a > mx ? a : mx;
        }
        float s = mx / 127.0f;
        if (s == 0.0f) s = 1.0f;
        const size_t at = ((size_t)layer * KV + h) * CAP + slot;
    dims:
        for (int d = 0; d < HD; ++d) {
#pragma HLS pipeline II=1
            cache[at * HD + d] = (int8_t)round_clip(row[h * HD + d] / s, -127.0f, 127.0f);
        }
        scales[at] = s;
    }
}

// a cached element as float: itself, or an int8 times its row's scale
static inline float kv_load(const float *c, const float *, size_t i, size_t) { return c[i]; }
static inline float kv_load(const int8_t *c, const float *s, size_t i, size_t row) {
    return (float)c[i] * s[row];
}

// attention of one query per head over the cached positions max(0, end - CAP) .. end - 1, in
// position order, slot kv_slot(p) (grouped-query: head h reads KV head h / (HEADS / KV));
// scores, softmax and the weighted sum per head. T is float (kscales/vscales unused) or int8.
template <int HEADS, int KV, int HD, int CAP, int RING, typename T>
void cached_attention(const float q[HEADS * HD], const T *kcache, const float *kscales,
                      const T *vcache, const float *vscales, int layer, int end, float scale,
                      float out[HEADS * HD]) {
    float score[CAP];
    float acc[HD];
#pragma HLS array_partition variable=acc type=complete dim=1
    const int first = end > CAP ? end - CAP : 0;
    const int held = end - first;
heads:
    for (int h = 0; h < HEADS; ++h) {
        const int kvh = h / (HEADS / KV);
        const size_t base = ((size_t)layer * KV + kvh) * CAP;
        float mx = -INFINITY;
    scores:
        for (int j = 0; j < held; ++j) {
#pragma HLS loop_tripcount max=CAP
#pragma HLS pipeline II=1
            const size_t row = base + kv_slot<CAP, RING>(first + j);
            float s = 0.0f;
        dot:
            for (int d = 0; d < HD; ++d) {
#pragma HLS unroll
                s += q[h * HD + d] * kv_load(kcache, kscales, row * HD + d, row);
            }
            s = s * scale;
            score[j] = s;
            mx = s > mx ? s : mx;
        }
        float sum = 0.0f;
    softmax:
        for (int j = 0; j < held; ++j) {
#pragma HLS loop_tripcount max=CAP
#pragma HLS pipeline II=1
            const float e = std::exp(score[j] - mx);
            score[j] = e;
            sum += e;
        }
    clear:
        for (int d = 0; d < HD; ++d) {
#pragma HLS unroll
            acc[d] = 0.0f;
        }
    values:
        for (int j = 0; j < held; ++j) {
#pragma HLS loop_tripcount max=CAP
#pragma HLS pipeline II=1
            const size_t row = base + kv_slot<CAP, RING>(first + j);
        vdims:
            for (int d = 0; d < HD; ++d) {
#pragma HLS unroll
                acc[d] += score[j] * kv_load(vcache, vscales, row * HD + d, row);
            }
        }
        const float inv = 1.0f / sum;
    norm:
        for (int d = 0; d < HD; ++d) {
#pragma HLS pipeline II=1
            out[h * HD + d] = acc[d] * inv;
        }
    }
}

template <int N>
void add(const float a[N], const float b[N], float y[N]) {
add:
    for (int i = 0; i < N; ++i) {
#pragma HLS pipeline II=1
        y[i] = a[i] + b[i];
    }
}

template <int N>
void mul(const float a[N], const float b[N], float y[N]) {
mul:
    for (int i = 0; i < N; ++i) {
#pragma HLS pipeline II=1
        y[i] = a[i] * b[i];
    }
}

template <int N>
void silu(const float x[N], float y[N]) {
silu:
    for (int i = 0; i < N; ++i) {
#pragma HLS pipeline II=1
        y[i] = x[i] / (1.0f + std::exp(-x[i]));
    }
}

// GELU: TANH 1 = the tanh approximation, 0 = exact (erf)
template <int N, int TANH>
void gelu(const float x[N], float y[N]) {
gelu:
    for (int i = 0; i < N; ++i) {
#pragma HLS pipeline II=1
        const float v = x[i];
        if (TANH)
            y[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        else
            y[i] = 0.5f * v * std::erfc(-v * 0.7071067811865476f);
    }
}

}  // namespace irt_hls

#endif
