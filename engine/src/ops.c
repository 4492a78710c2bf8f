/* ops.c — see ops.h. Operation order follows ggml's CPU backend so that
 * ggml-compat numerics reproduce bitnet.cpp; every function is also the f32
 * mode's (the modes differ only in f16 roundings and the KV cache). */
#include "ops.h"

#include "bits.h"

#include <math.h>
#include <string.h>

#include "bitnet/quant.h"
#include "bitnet/simd.h"

/* R rows (R <= 4) of bn_op_rms_norm: ggml sums each row in double in index
 * order, one dependent add per element; the R rows' chains are independent,
 * so running them side by side takes the time of one (the same bits). */
static inline __attribute__((always_inline)) void rms_rows(float *y, const float *x, int R, int64_t n, float eps,
                                                           bool layernorm) {
    float mean_x[4] = {0, 0, 0, 0};
    if (layernorm)
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += x[r * n + i];
            mean_x[r] = (float)(s / (double)n);
        }
    double sum[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const float v = x[r * n + i] - mean_x[r];
            sum[r] += (double)(v * v);
        }
    for (int r = 0; r < R; r++) {
        const float mean = (float)(sum[r] / (double)n);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < n; i++) y[r * n + i] = (x[r * n + i] - mean_x[r]) * scale;
    }
}

void bn_op_rms_norm(float *y, const float *x, int64_t T, int64_t n, float eps, bool layernorm) {
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) rms_rows(y + t * n, x + t * n, 4, n, eps, layernorm);
    for (; t < T; t++) rms_rows(y + t * n, x + t * n, 1, n, eps, layernorm);
}

void bn_op_mul_rows(float *y, const float *w, int64_t T, int64_t n) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++) y[t * n + i] *= w[i];
}

void bn_op_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void bn_op_scale(float *y, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] *= s;
}

void bn_op_round_f16(float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = bn_f16_to_f32(bn_f32_to_f16(y[i]));
}

void bn_op_rope(float *x, int64_t T, int64_t n_heads, int64_t D, int64_t pos0, float base, bool neox) {
    const float theta_scale = powf(base, -2.0f / (float)D);
    float cs[2 * 512]; /* cos/sin per pair; D <= 1024 is checked by the model */
    for (int64_t t = 0; t < T; t++) {
        float theta = (float)(pos0 + t);
        for (int64_t i = 0; i < D / 2; i++) {
            cs[2 * i] = cosf(theta);
            cs[2 * i + 1] = sinf(theta);
            theta *= theta_scale;
        }
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + (t * n_heads + h) * D;
            for (int64_t i = 0; i < D / 2; i++) {
                const int64_t a = neox ? i : 2 * i, b = neox ? i + D / 2 : 2 * i + 1;
                const float x0 = v[a], x1 = v[b], c = cs[2 * i], s = cs[2 * i + 1];
                /* bitnet.cpp's compiler fuses the first product into an FMA
                 * (established on the shared traces); written out so that
                 * every build rounds the same way. */
                v[a] = fmaf(x0, c, -(x1 * s));
                v[b] = fmaf(x0, s, x1 * c);
            }
        }
    }
}

/* One lane of ggml_v_expf for 8-lane (AVX2) builds of ggml (ARM optimized-
 * routines expf as adapted by ggml): the same fused multiply-adds and bit
 * manipulations, in the same order. */
/* (always inlined: the softmax and GLU bodies below are compiled twice,
 * once with the FMA instruction set, where fmaf is one instruction, and
 * once portable, where it is libm's exact fmaf: the same bits.) */
#if defined(__GNUC__)
#define OPS_INLINE static inline __attribute__((always_inline))
#else
#define OPS_INLINE static inline
#endif
OPS_INLINE float expf_avx2_lane(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = f32_bits(z) << 23;
    const float k = bits_f32(e + f32_bits(1.0f));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, 0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f)) return fmaf(j, k, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = bits_f32(g + 0x7f000000u);
    const float s2 = bits_f32(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

/* One lane of ggml_v_expf for 16-lane (AVX-512) builds: the polynomial
 * includes the leading 1 and the result is scaled with scalef (exact
 * ldexp); |n| > 192 saturates to 0 or inf. */
OPS_INLINE float expf_avx512_lane(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    if (isnan(n)) return NAN;
    /* ldexpf(j, n) without the libm call: j·2^n is exact in double for
     * |n| <= 192, so its one rounding to float is ldexpf's (subnormal and
     * overflowing results included) */
    uint64_t pow2;
    const uint64_t e = (uint64_t)((int)n + 1023) << 52;
    memcpy(&pow2, &e, sizeof pow2);
    double p;
    memcpy(&p, &pow2, sizeof p);
    return (float)((double)j * p);
}

OPS_INLINE float ggml_expf(float x, int lanes) { return lanes == 16 ? expf_avx512_lane(x) : expf_avx2_lane(x); }

float bn_op_ggml_expf(float x, int lanes) { return ggml_expf(x, lanes); }

/* ggml's horizontal sum of one vector of 8 or 16 lanes: halving tree. */
static float hsum_tree(const float *v, int lanes) {
    float a[16];
    memcpy(a, v, (size_t)lanes * sizeof(float));
    for (int w = lanes / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) a[i] = a[i] + a[i + w];
    return a[0];
}

OPS_INLINE void softmax_body(float *x, int64_t n, float scale, int lanes) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] *= scale;
        max = x[i] > max ? x[i] : max;
    }
    double sum = 0;
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes) {
        for (int l = 0; l < lanes; l++) x[i + l] = ggml_expf(x[i + l] - max, lanes);
        sum += (double)hsum_tree(x + i, lanes);
    }
    for (; i < n; i++) { /* ggml's scalar tail uses libm */
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t k = 0; k < n; k++) x[k] *= inv;
}

OPS_INLINE void glu_body(float *y, const float *g, const float *u, int64_t T, int64_t n, bool relu2, int lanes) {
    if (relu2) { /* a loop of its own: a select (maxss), not a branch on the sign of random values */
        for (int64_t k = 0; k < T * n; k++) {
            const float r = g[k] > 0.0f ? g[k] : 0.0f;
            y[k] = (r * r) * u[k];
        }
        return;
    }
    const int64_t vec_end = n / lanes * lanes; /* ggml's silu: vector lanes, then a libm tail */
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++) {
            const int64_t k = t * n + i;
            y[k] = (g[k] / (1.0f + (i < vec_end ? ggml_expf(-g[k], lanes) : expf(-g[k])))) * u[k];
        }
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define OPS_FMA_FN __attribute__((target("avx2,fma")))
OPS_FMA_FN static void softmax_fma(float *x, int64_t n, float scale, int lanes) { softmax_body(x, n, scale, lanes); }
OPS_FMA_FN static void glu_fma(float *y, const float *g, const float *u, int64_t T, int64_t n, bool relu2, int lanes) {
    if (relu2) { /* maxps(g, 0) is exactly g > 0 ? g : 0 (NaN and -0 give 0); then the same two products */
        const int64_t m = T * n, m8 = m & ~(int64_t)7;
        const __m256 zero = _mm256_setzero_ps();
        for (int64_t k = 0; k < m8; k += 8) {
            const __m256 r = _mm256_max_ps(_mm256_loadu_ps(g + k), zero);
            _mm256_storeu_ps(y + k, _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(u + k)));
        }
        glu_body(y + m8, g + m8, u + m8, 1, m - m8, true, lanes);
        return;
    }
    glu_body(y, g, u, T, n, relu2, lanes);
}
#endif

static bool use_fma(bn_simd simd) { return (simd == BN_SIMD_AUTO ? bn_simd_best() : simd) == BN_SIMD_AVX2; }

void bn_op_softmax_ggml(float *x, int64_t n, float scale, int lanes, bn_simd simd) {
#ifdef OPS_FMA_FN
    if (use_fma(simd)) {
        softmax_fma(x, n, scale, lanes);
        return;
    }
#endif
    (void)use_fma;
    softmax_body(x, n, scale, lanes);
}

void bn_op_glu(float *y, const float *g, const float *u, int64_t T, int64_t n, bool relu2, int lanes, bn_simd simd) {
#ifdef OPS_FMA_FN
    if (use_fma(simd)) {
        glu_fma(y, g, u, T, n, relu2, lanes);
        return;
    }
#endif
    glu_body(y, g, u, T, n, relu2, lanes);
}
