/* quant_rows.c — scalar conversions, row dequantization and whole-tensor
 * quantization of every supported tensor type.
 *
 * Dequantization is split in two layers so that no kernel exists twice:
 *   - type walkers (dq_*) know the block layout of one type and are written
 *     once, in plain C;
 *   - they call the few primitive loops of an isa_kernels table (portable C
 *     or AVX2), which is the only code that exists per instruction set.
 * Both primitive sets compute each value as (float)code * scale exactly like
 * ggml's reference dequantizers, so they agree bit for bit, including -0,
 * infinities and NaN scales.
 *
 * Quantizers reproduce the reference tools' arithmetic step by step
 * (llama.cpp's quantize_row_*_ref, bitnet.cpp's quantize_i2_s) so that
 * quantize(dequantize(t)) gives back the stored bytes.
 */
#include "bitnet/quant.h"

#include "bits.h"

#include <math.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BN_HAVE_X86 1
#include <immintrin.h>
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#endif

#define QK8_0 32
#define QK_K 256
#define QK_I2S 128

/* ------------------------------------------------------------------ */
/* Scalar conversions                                                  */
/* ------------------------------------------------------------------ */


static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void store_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* ggml_compute_fp16_to_fp32, branch-free (twice as fast as a branchy decode
 * on mixed data): the exponent is rebased by one exact multiply (inf stays
 * inf, NaN turns quiet with its payload kept, as F16C does) and subnormals
 * come from an exact magic-number subtraction. No step produces a subnormal
 * float, so FTZ/DAZ modes cannot change the result. */
float bn_f16_to_f32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
    const float normal = bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float subnormal = bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    return bits_f32(sign | (two_w < (1u << 27) ? f32_bits(subnormal) : f32_bits(normal)));
}

/* Right shift by s (1..31) rounding to nearest, ties to even. */
static uint32_t shift_rne(uint32_t v, unsigned s) {
    uint32_t r = v >> s, rem = v & ((1u << s) - 1), half = 1u << (s - 1);
    return r + (rem > half || (rem == half && (r & 1)));
}

/* Same results as ggml_compute_fp32_to_fp16 (and F16C's RNE mode) for every
 * non-NaN input; NaN becomes ggml's 0x7e00 with the sign kept. */
uint16_t bn_f32_to_f16(float f) {
    uint32_t w = f32_bits(f);
    uint16_t sign = (uint16_t)((w >> 16) & 0x8000);
    uint32_t a = w & 0x7fffffff;
    if (a > 0x7f800000) return sign | 0x7e00;
    if (a >= 0x477ff000) return sign | 0x7c00; /* >= 65520 rounds past 65504 */
    if (a >= 0x38800000)                       /* normal half: rebias, round 13 bits */
        return sign | (uint16_t)shift_rne(a - 0x38000000, 13);
    uint32_t e = a >> 23; /* subnormal half (or zero): units of 2^-24 */
    if (e < 102) return sign;
    return sign | (uint16_t)shift_rne((a & 0x7fffff) | 0x800000, 126 - e);
}

#ifdef BN_HAVE_X86
/* F16C's vcvtps2ph in round-to-nearest-even mode is ggml's conversion; it
 * keeps a NaN's payload where bn_f32_to_f16 makes it 0x7e00, so a chunk of 8
 * that holds a NaN is converted by the scalar function instead. */
AVX2_FN static void f32_to_f16_avx2(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
            for (int l = 0; l < 8; l++) y[i + l] = bn_f32_to_f16(x[i + l]);
            continue;
        }
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) y[i] = bn_f32_to_f16(x[i]);
}
#endif

void bn_f32_to_f16_n(const float *x, uint16_t *y, int64_t n, bn_simd_level level) {
#ifdef BN_HAVE_X86
    if (level == BN_SIMD_AVX2) {
        f32_to_f16_avx2(x, y, n);
        return;
    }
#endif
    (void)level;
    for (int64_t i = 0; i < n; i++) y[i] = bn_f32_to_f16(x[i]);
}

float bn_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* ggml_compute_fp32_to_bf16: NaN is forced quiet, the rest rounds to even. */
uint16_t bn_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

/* ------------------------------------------------------------------ */
/* Primitive loops, one table per instruction set                      */
/* ------------------------------------------------------------------ */

/* 32 bytes of 2-bit codes -> 128 values: element 32*k + m is byte m at bit
 * shift[k]; value = lut[code] * d. */
typedef struct two_bit_layout {
    int8_t lut[4];
    uint8_t shift[4];
} two_bit_layout;

/* docs/specs/i2s.md: byte b holds elements b, b+32, b+64, b+96 from the top bits;
 * code 3 is unused and decodes as 0. */
static const two_bit_layout I2S_LAYOUT = {{-1, 0, 1, 0}, {6, 4, 2, 0}};
/* ggml's dequantize_row_tq2_0: field n from the low bits; (q - 1) * d, so
 * the never-written code 3 reads as +2. */
static const two_bit_layout TQ2_LAYOUT = {{-1, 0, 1, 2}, {0, 2, 4, 6}};

static const uint8_t POW3[6] = {1, 3, 9, 27, 81, 243};

typedef struct isa_kernels {
    /* n little-endian halves at src -> n floats */
    void (*f16)(const uint8_t *src, int64_t n, float *dst);
    void (*bf16)(const uint8_t *src, int64_t n, float *dst);
    /* 32 int8 -> q * d */
    void (*i8)(const int8_t *q, float d, float *dst);
    /* 32 bytes -> 128 values, see two_bit_layout */
    void (*two_bit)(const uint8_t *q, const two_bit_layout *l, float d, float *dst);
    /* base-3 fixed point (docs/specs/ternary-llamacpp.md): trit n of byte m is
     * element n*nbytes + m; value = (trit - 1) * d */
    void (*trits)(const uint8_t *q, int nbytes, int ntrits, float d, float *dst);
} isa_kernels;

static void f16_portable(const uint8_t *src, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i++) dst[i] = bn_f16_to_f32(load_u16(src + 2 * i));
}

static void bf16_portable(const uint8_t *src, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i++) dst[i] = bn_bf16_to_f32(load_u16(src + 2 * i));
}

static void i8_portable(const int8_t *q, float d, float *dst) {
    for (int j = 0; j < QK8_0; j++) dst[j] = (float)q[j] * d;
}

static void two_bit_portable(const uint8_t *q, const two_bit_layout *l, float d, float *dst) {
    for (int k = 0; k < 4; k++)
        for (int m = 0; m < 32; m++) dst[32 * k + m] = (float)l->lut[(q[m] >> l->shift[k]) & 3] * d;
}

static void trits_portable(const uint8_t *q, int nbytes, int ntrits, float d, float *dst) {
    for (int n = 0; n < ntrits; n++)
        for (int m = 0; m < nbytes; m++) {
            uint8_t t = (uint8_t)(q[m] * POW3[n]);
            dst[n * nbytes + m] = (float)(((t * 3) >> 8) - 1) * d;
        }
}

static const isa_kernels PORTABLE = {f16_portable, bf16_portable, i8_portable, two_bit_portable,
                                     trits_portable};

#ifdef BN_HAVE_X86
/* 16 int8 -> 16 floats, each (float)v * d like the portable loops. */
AVX2_FN static inline void store_i8x16(__m128i v, __m256 d, float *dst) {
    __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
    __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
    _mm256_storeu_ps(dst, _mm256_mul_ps(lo, d));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(hi, d));
}

/* 16 int16 -> 16 floats, (float)v * d. */
AVX2_FN static inline void store_i16x16(__m256i v, __m256 d, float *dst) {
    __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(v)));
    __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(v, 1)));
    _mm256_storeu_ps(dst, _mm256_mul_ps(lo, d));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(hi, d));
}

AVX2_FN static void f16_avx2(const uint8_t *src, int64_t n, float *dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
    f16_portable(src + 2 * i, n - i, dst + i);
}

AVX2_FN static void bf16_avx2(const uint8_t *src, int64_t n, float *dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + 2 * i)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(h, 16));
    }
    bf16_portable(src + 2 * i, n - i, dst + i);
}

AVX2_FN static void i8_avx2(const int8_t *q, float d, float *dst) {
    __m256 vd = _mm256_set1_ps(d);
    store_i8x16(_mm_loadu_si128((const __m128i *)q), vd, dst);
    store_i8x16(_mm_loadu_si128((const __m128i *)(q + 16)), vd, dst + 16);
}

AVX2_FN static void two_bit_avx2(const uint8_t *q, const two_bit_layout *l, float d, float *dst) {
    const __m256i bytes = _mm256_loadu_si256((const __m256i *)q);
    const __m256i lut = _mm256_broadcastsi128_si256(
        _mm_setr_epi8(l->lut[0], l->lut[1], l->lut[2], l->lut[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    const __m256i three = _mm256_set1_epi8(3);
    const __m256 vd = _mm256_set1_ps(d);
    for (int k = 0; k < 4; k++) {
        /* 16-bit shifts leak bits across byte lanes; the mask removes them. */
        __m256i c = _mm256_and_si256(_mm256_srl_epi16(bytes, _mm_cvtsi32_si128(l->shift[k])), three);
        __m256i v = _mm256_shuffle_epi8(lut, c);
        store_i8x16(_mm256_castsi256_si128(v), vd, dst + 32 * k);
        store_i8x16(_mm256_extracti128_si256(v, 1), vd, dst + 32 * k + 16);
    }
}

AVX2_FN static void trits_avx2(const uint8_t *q, int nbytes, int ntrits, float d, float *dst) {
    if (nbytes % 16 != 0) { /* TQ1_0's 4-byte qh tail */
        trits_portable(q, nbytes, ntrits, d, dst);
        return;
    }
    const __m256i lowbyte = _mm256_set1_epi16(0xff), three = _mm256_set1_epi16(3);
    const __m256i one = _mm256_set1_epi16(1);
    const __m256 vd = _mm256_set1_ps(d);
    for (int c = 0; c < nbytes; c += 16) {
        __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(q + c)));
        for (int n = 0; n < ntrits; n++) {
            __m256i t = _mm256_and_si256(_mm256_mullo_epi16(b, _mm256_set1_epi16(POW3[n])), lowbyte);
            t = _mm256_sub_epi16(_mm256_srli_epi16(_mm256_mullo_epi16(t, three), 8), one);
            store_i16x16(t, vd, dst + n * nbytes + c);
        }
    }
}

static const isa_kernels AVX2 = {f16_avx2, bf16_avx2, i8_avx2, two_bit_avx2, trits_avx2};
#endif

/* ------------------------------------------------------------------ */
/* Type walkers: one per block layout, shared by every instruction set  */
/* ------------------------------------------------------------------ */

/* nblk blocks starting at src -> nblk * block_elems floats. tensor_scale is
 * I2_S's per-tensor scale (unused by the other types). */
typedef void dequant_fn(const isa_kernels *k, const uint8_t *src, int64_t nblk, float tensor_scale,
                        float *dst);

static void dq_f32(const isa_kernels *k, const uint8_t *src, int64_t nblk, float ts, float *dst) {
    (void)k, (void)ts;
    memcpy(dst, src, (size_t)nblk * sizeof(float));
}

static void dq_f16(const isa_kernels *k, const uint8_t *src, int64_t nblk, float ts, float *dst) {
    (void)ts;
    k->f16(src, nblk, dst);
}

static void dq_bf16(const isa_kernels *k, const uint8_t *src, int64_t nblk, float ts, float *dst) {
    (void)ts;
    k->bf16(src, nblk, dst);
}

/* block_q8_0: f16 d; int8 qs[32] */
static void dq_q8_0(const isa_kernels *k, const uint8_t *src, int64_t nblk, float ts, float *dst) {
    (void)ts;
    for (int64_t b = 0; b < nblk; b++, src += 34, dst += QK8_0)
        k->i8((const int8_t *)(src + 2), bn_f16_to_f32(load_u16(src)), dst);
}

/* 32 bytes of codes per 128 elements; the scale is the tensor's. */
static void dq_i2s(const isa_kernels *k, const uint8_t *src, int64_t nblk, float ts, float *dst) {
    for (int64_t b = 0; b < nblk; b++, src += 32, dst += QK_I2S) k->two_bit(src, &I2S_LAYOUT, ts, dst);
}

/* block_tq2_0: uint8 qs[64]; f16 d */
static void dq_tq2_0(const isa_kernels *k, const uint8_t *src, int64_t nblk, float ts, float *dst) {
    (void)ts;
    for (int64_t b = 0; b < nblk; b++, src += 66, dst += QK_K) {
        float d = bn_f16_to_f32(load_u16(src + 64));
        k->two_bit(src, &TQ2_LAYOUT, d, dst);
        k->two_bit(src + 32, &TQ2_LAYOUT, d, dst + 128);
    }
}

/* block_tq1_0: uint8 qs[48] (32 bytes x 5 trits, 16 bytes x 5); qh[4] x 4 trits; f16 d */
static void dq_tq1_0(const isa_kernels *k, const uint8_t *src, int64_t nblk, float ts, float *dst) {
    (void)ts;
    for (int64_t b = 0; b < nblk; b++, src += 54, dst += QK_K) {
        float d = bn_f16_to_f32(load_u16(src + 52));
        k->trits(src, 32, 5, d, dst);
        k->trits(src + 32, 16, 5, d, dst + 160);
        k->trits(src + 48, 4, 4, d, dst + 240);
    }
}

/* ------------------------------------------------------------------ */
/* Quantizers (whole tensors of n elements)                             */
/* ------------------------------------------------------------------ */

typedef void quant_fn(const float *src, int64_t n, uint8_t *dst);

/* ggml's MAX(amax, fabsf(v)) loop, NaN handling included. */
static float block_amax(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        amax = amax > a ? amax : a;
    }
    return amax;
}

static void q_f32(const float *src, int64_t n, uint8_t *dst) { memcpy(dst, src, (size_t)n * sizeof(float)); }

static void q_f16(const float *src, int64_t n, uint8_t *dst) {
    for (int64_t i = 0; i < n; i++) store_u16(dst + 2 * i, bn_f32_to_f16(src[i]));
}

static void q_bf16(const float *src, int64_t n, uint8_t *dst) {
    for (int64_t i = 0; i < n; i++) store_u16(dst + 2 * i, bn_f32_to_bf16(src[i]));
}

/* quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d) (half away from zero). */
static void q_q8_0(const float *src, int64_t n, uint8_t *dst) {
    for (int64_t b = 0; b < n / QK8_0; b++, src += QK8_0, dst += 34) {
        const float d = block_amax(src, QK8_0) / 127;
        const float id = d ? 1.0f / d : 0.0f;
        store_u16(dst, bn_f32_to_f16(d));
        for (int j = 0; j < QK8_0; j++) {
            float r = roundf(src[j] * id);
            /* NaN has no int8 value; x86 ggml builds store 0 */
            dst[2 + j] = isnan(r) ? 0 : (uint8_t)(int8_t)(int)r;
        }
    }
}

#ifdef BN_HAVE_X86
/* q_q8_0 8 lanes at a time, the same bytes: the block's amax by lane-wise
 * max (the scalar chain's `amax > a ? amax : a` is _mm256_max_ps, and max is
 * associative without NaN), d and id per block as above, roundf as
 * trunc + (|frac| >= 0.5 ? ±1 : 0) (exact: frac = v - trunc(v) is; |v|
 * stays below 127.5 once id is finite). A block holding a NaN (the scalar
 * chain's max treats NaN its own way) or whose id overflows (an inf·x the
 * scalar code casts to int its own way) takes the scalar code. The libm roundf per element was
 * most of a 2B-4T lm_head's --lm-head q8_0 (3 s of 3.8 on one thread). */
AVX2_FN static void q_q8_0_avx2(const float *src, int64_t n, uint8_t *dst) {
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / QK8_0; b++, src += QK8_0, dst += 34) {
        __m256 x[4], m = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            x[k] = _mm256_loadu_ps(src + 8 * k);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, x[k]));
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(x[k], x[k], _CMP_UNORD_Q));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float d = _mm_cvtss_f32(m4) / 127;
        const float id = d ? 1.0f / d : 0.0f;
        if (_mm256_movemask_ps(nan) || !isfinite(id)) { /* NaN, or a subnormal d whose inverse overflows */
            q_q8_0(src, QK8_0, dst);
            continue;
        }
        store_u16(dst, bn_f32_to_f16(d));
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            const __m256 v = _mm256_mul_ps(x[k], _mm256_set1_ps(id)); /* inf * 0 = NaN: stored 0 below */
            const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 up = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(v, t)), half, _CMP_GE_OQ);
            const __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(one, _mm256_and_ps(sign, v))));
            const __m256 ok = _mm256_cmp_ps(r, r, _CMP_ORD_Q);
            q[k] = _mm256_and_si256(_mm256_cvttps_epi32(r), _mm256_castps_si256(ok));
        }
        const __m256i b8 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(dst + 2), _mm256_permutevar8x32_epi32(b8, order));
    }
}
#endif

/* ggml's ternary code: lroundf(x * id) + 1 in {0, 1, 2} for finite input. */
static int ternary_code(float x, float id) { return (int)lroundf(x * id) + 1; }

/* quantize_row_tq2_0_ref */
static void q_tq2_0(const float *src, int64_t n, uint8_t *dst) {
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, dst += 66) {
        const float d = block_amax(src, QK_K);
        const float id = d ? 1.0f / d : 0.0f;
        for (int j = 0; j < 64; j++) {
            const float *x = src + (j / 32) * 128 + j % 32;
            uint8_t q = 0;
            for (int f = 0; f < 4; f++) q = (uint8_t)(q + ((ternary_code(x[32 * f], id) & 3) << (2 * f)));
            dst[j] = q;
        }
        store_u16(dst + 64, bn_f32_to_f16(d));
    }
}

/* One TQ1_0 byte group: trit n of byte m is x[n*nbytes + m], first trit most
 * significant, padded to 5 trits, stored as ceil(q * 256 / 243). */
static void tq1_encode(const float *x, int nbytes, int ntrits, float id, uint8_t *q) {
    for (int m = 0; m < nbytes; m++) {
        uint8_t v = 0;
        for (int t = 0; t < 5; t++)
            v = (uint8_t)(v * 3 + (t < ntrits ? ternary_code(x[t * nbytes + m], id) : 0));
        q[m] = (uint8_t)(((uint16_t)v * 256 + 242) / 243);
    }
}

/* quantize_row_tq1_0_ref */
static void q_tq1_0(const float *src, int64_t n, uint8_t *dst) {
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, dst += 54) {
        const float d = block_amax(src, QK_K);
        const float id = d ? 1.0f / d : 0.0f;
        tq1_encode(src, 32, 5, id, dst);
        tq1_encode(src + 160, 16, 5, id, dst + 32);
        tq1_encode(src + 240, 4, 4, id, dst + 48);
        store_u16(dst + 52, bn_f32_to_f16(d));
    }
}

/* bitnet.cpp quantize_i2_s (x86 ACT_PARALLEL layout): scale = max|w| in
 * double (fmax skips NaN); code 1 when |w| < 1e-6, else 2 when w * scale > 0,
 * else 0; the float scale follows the codes, then 28 zero bytes. */
static unsigned i2s_code(float w, double max) {
    const double x = (double)w;
    const unsigned tiny = fabs(x) < 1e-6, positive = x * max > 0; /* arithmetic, not branches: random signs */
    return tiny | (positive & !tiny) << 1;
}

static void q_i2s(const float *src, int64_t n, uint8_t *dst) {
    const size_t ncode = (size_t)n / 4;
    double max = 0;
    for (int64_t i = 0; i < n; i++) { /* fmax(max, |w|) without the libm call: a NaN never wins either way */
        const double a = fabs((double)src[i]);
        if (a > max) max = a;
    }
    for (int64_t b = 0; b < n; b += QK_I2S) /* byte j of a block: elements j, j+32, j+64, j+96 from the top bits */
        for (int j = 0; j < 32; j++)
            dst[b / 4 + j] = (uint8_t)(i2s_code(src[b + j], max) << 6 | i2s_code(src[b + 32 + j], max) << 4 |
                                       i2s_code(src[b + 64 + j], max) << 2 | i2s_code(src[b + 96 + j], max));
    float scale = (float)max;
    memcpy(dst + ncode, &scale, sizeof scale);
    memset(dst + ncode + 4, 0, 28);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

#ifdef BN_HAVE_X86
#define Q8_0_AVX2 q_q8_0_avx2
#else
#define Q8_0_AVX2 NULL
#endif

static const struct {
    uint32_t type;
    dequant_fn *dequant;
    quant_fn *quant;
    quant_fn *quant_avx2; /* the same bytes on the AVX2 level, or NULL: quant serves both */
} ROW_OPS[] = {
    {BN_TYPE_F32, dq_f32, q_f32, NULL},       {BN_TYPE_F16, dq_f16, q_f16, NULL},
    {BN_TYPE_BF16, dq_bf16, q_bf16, NULL},    {BN_TYPE_Q8_0, dq_q8_0, q_q8_0, Q8_0_AVX2},
    {BN_TYPE_I2_S, dq_i2s, q_i2s, NULL},      {BN_TYPE_TQ1_0, dq_tq1_0, q_tq1_0, NULL},
    {BN_TYPE_TQ2_0, dq_tq2_0, q_tq2_0, NULL},
};

/* Traits and row functions of `type`, or an UNSUPPORTED error naming it. */
static bn_status find_ops(uint32_t type, const bn_type_traits **t, size_t *idx, bn_error *err) {
    *t = bn_type_traits_get(type);
    for (size_t i = 0; *t && i < sizeof ROW_OPS / sizeof ROW_OPS[0]; i++)
        if (ROW_OPS[i].type == type) {
            *idx = i;
            return BN_OK;
        }
    return bn_error_set(err, BN_ERR_UNSUPPORTED, "tensor type %u (%s): %s", type, bn_type_name(type),
                        *t ? "no row kernels for this type" : bn_type_unsupported_reason(type));
}

/* Checks shape and returns the element count and byte size of the tensor. */
static bn_status tensor_shape(const bn_type_traits *t, int64_t ne0, int64_t nrows, int64_t *nelem,
                              uint64_t *nbytes, bn_error *err) {
    if (ne0 <= 0 || nrows < 0 || (nrows > 0 && ne0 > INT64_MAX / nrows))
        return bn_error_set(err, BN_ERR_INVALID, "%s tensor: bad shape ne[0] = %lld, %lld rows", t->name,
                            (long long)ne0, (long long)nrows);
    *nelem = ne0 * nrows;
    return bn_type_tensor_nbytes(t->id, ne0, *nelem, nbytes, err);
}

static bn_status select_kernels(bn_simd_level level, const isa_kernels **k, bn_error *err) {
    const bn_simd_level best = bn_simd_best();
    if (level == BN_SIMD_AUTO) level = best;
    if (level == BN_SIMD_PORTABLE) {
        *k = &PORTABLE;
        return BN_OK;
    }
    if (level != BN_SIMD_AVX2) return bn_error_set(err, BN_ERR_INVALID, "unknown SIMD level %d", (int)level);
#ifdef BN_HAVE_X86
    if (best == BN_SIMD_AVX2) {
        *k = &AVX2;
        return BN_OK;
    }
#endif
    return bn_error_set(err, BN_ERR_UNSUPPORTED, "AVX2 kernels requested but this CPU lacks AVX2/FMA/F16C");
}

bn_status bn_dequantize_rows_ex(uint32_t type, const void *data, int64_t ne0, int64_t nrows_total,
                                int64_t row0, int64_t nrows, float *dst, bn_simd_level level,
                                bn_error *err) {
    const bn_type_traits *t;
    size_t op = 0;
    int64_t nelem = 0;
    uint64_t nbytes = 0;
    bn_status st = find_ops(type, &t, &op, err);
    if (st == BN_OK) st = tensor_shape(t, ne0, nrows_total, &nelem, &nbytes, err);
    if (st != BN_OK) return st;
    if (row0 < 0 || nrows < 0 || row0 > nrows_total - nrows)
        return bn_error_set(err, BN_ERR_INVALID, "%s tensor of %lld rows: rows [%lld, +%lld) out of range",
                            t->name, (long long)nrows_total, (long long)row0, (long long)nrows);
    if (nrows == 0) return BN_OK;
    if (!data || !dst)
        return bn_error_set(err, BN_ERR_INVALID, "%s dequantize: NULL %s", t->name, data ? "dst" : "data");

    const isa_kernels *k = NULL;
    if ((st = select_kernels(level, &k, err)) != BN_OK) return st;

    const uint8_t *base = data;
    float tensor_scale = 0.0f;
    if (type == BN_TYPE_I2_S) /* one float after all the codes (docs/specs/i2s.md) */
        memcpy(&tensor_scale, base + nelem / 4, sizeof tensor_scale);
    const int64_t blk_per_row = ne0 / t->block_elems;
    ROW_OPS[op].dequant(k, base + (uint64_t)row0 * (uint64_t)blk_per_row * t->block_bytes,
                        nrows * blk_per_row, tensor_scale, dst);
    return BN_OK;
}

bn_status bn_dequantize_rows(uint32_t type, const void *data, int64_t ne0, int64_t nrows_total,
                             int64_t row0, int64_t nrows, float *dst, bn_error *err) {
    return bn_dequantize_rows_ex(type, data, ne0, nrows_total, row0, nrows, dst, BN_SIMD_AUTO, err);
}

bn_status bn_quantize(uint32_t type, const float *src, int64_t ne0, int64_t nrows, void *dst,
                      size_t dst_size, bn_error *err) {
    return bn_quantize_ex(type, src, ne0, nrows, dst, dst_size, BN_SIMD_AUTO, err);
}

bn_status bn_quantize_ex(uint32_t type, const float *src, int64_t ne0, int64_t nrows, void *dst,
                         size_t dst_size, bn_simd_level level, bn_error *err) {
    const bn_type_traits *t;
    size_t op = 0;
    int64_t nelem = 0;
    uint64_t nbytes = 0;
    bn_status st = find_ops(type, &t, &op, err);
    if (st == BN_OK) st = tensor_shape(t, ne0, nrows, &nelem, &nbytes, err);
    if (st != BN_OK) return st;
    if (nbytes > dst_size)
        return bn_error_set(err, BN_ERR_INVALID,
                            "%s tensor [%lld x %lld] needs %llu bytes but the destination has %zu", t->name,
                            (long long)ne0, (long long)nrows, (unsigned long long)nbytes, dst_size);
    if ((nbytes > 0 && !dst) || (nelem > 0 && !src))
        return bn_error_set(err, BN_ERR_INVALID, "%s quantize: NULL %s", t->name, dst ? "src" : "dst");
    const isa_kernels *k = NULL;
    if ((st = select_kernels(level, &k, err)) != BN_OK) return st;
    (k == &PORTABLE || !ROW_OPS[op].quant_avx2 ? ROW_OPS[op].quant : ROW_OPS[op].quant_avx2)(src, nelem, dst);
    return BN_OK;
}
