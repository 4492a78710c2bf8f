/* matmul.c — y = W·x kernels: activation quantization, integer dot products,
 * float dot products in the references' summation orders, and the threading.
 *
 * What the references compute (found by recomputing every MUL_MAT node of the
 * shared traces from its dumped input; all of these are bit-exact):
 *
 * bitnet.cpp (traces bitnetcpp/{f32,i2s}/p1.npz) was built for AVX-512, so
 * ggml's float paths use 16 lanes:
 *  - F32 weights, prompt (T = 12): llamafile tinyBLAS. Per output one 16-lane
 *    accumulator, acc = fma(w[l..l+16], x[l..l+16], acc) for l = 0, 16, ...,
 *    then _mm512_reduce_add_ps: halving tree v[i] += v[i+8], v[i] += v[i+4],
 *    v[i] += v[i+2], v[0] + v[1]. 100 % of Qcur/Kcur/Vcur/attn_o_out/
 *    ffn_gate/ffn_up/ffn_down/result_output elements of e0.
 *  - F32 weights, decode (T = 1): tinyBLAS refuses n < 2, ggml_vec_dot_f32:
 *    4 accumulators of 16 lanes over steps of 64 (fma), s0 += s2, s1 += s3,
 *    s0 += s1, then the same halving tree. 100 % of e1/e2.
 *  - F16 lm_head (token_embd) of the I2_S model: prompt = tinyBLAS with f32
 *    activations (e0); decode = ggml_vec_dot_f16 with result_norm rounded to
 *    f16 (ggml converts src1 to the F16 vec_dot_type), 16-lane order (e1, e2).
 *  - kq = k-N (F16 cache view) · q: q is permuted (not contiguous), so
 *    tinyBLAS is skipped and ggml_vec_dot_f16 runs on q rounded to f16; with
 *    head_dim 32 < 64 the SIMD loop does nothing and the whole sum is the
 *    tail: float products (exact for f16 x f16) summed in double. All evals.
 *  - kqv = v-N (F16) · softmax: prompt = tinyBLAS, F16 weights x f32 probs;
 *    decode = ggml_vec_dot_f16 with the probs rounded to f16.
 *  - I2_S: exact integers as docs/specs/i2s.md; every node of all evaluations.
 * BF16 weights (no shared trace): widened exactly to float and summed like
 * F32 weights in the same orders, activations kept in f32; ggml's own BF16
 * path rounds activations to bf16 (a llama.cpp-compat concern, not this one).
 * The 8-lane AVX2 variant of the same code (BN_SUM_GGML_AVX2) differs only in
 * the lane count and in GGML_F32x8_REDUCE's final hadd pairs
 * ((t0+t1)+(t2+t3) instead of (t0+t2)+(t1+t3)); no trace confirms it.
 *
 * llama.cpp TQ1_0/TQ2_0 (traces llamacpp/tq*-p1.npz): its AVX2 kernels keep
 * 8 int32 lanes per 256-block, lane k = Σ over elements e with (e mod 32) in
 * [4k, 4k+4) of code·q  −  (bsums[2k] + bsums[2k+1]); each lane is converted
 * and accumulated across blocks as acc = fma(lane, d, acc) with d = d_act·d_w
 * (the source says mul then add; the compiler fused them: with a separate
 * rounding the 2-block ffn_down nodes differ in half their elements), then
 * hsum_float_8 (halving tree). All 28 projections of tq2_0-p1 and tq1_0-p1
 * are reproduced bit for bit; ggml's generic per-block float sum (PLAIN)
 * differs in 69 % of the elements, by at most 2 ulp of the node's max.
 *
 * Every kernel below exists once in portable C; the AVX2 versions compute the
 * same integers and the same float operations lane by lane, so the two agree
 * bit for bit (tests compare them).
 */
#include "bitnet/matmul.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/quant.h"
#include "bits.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define MM_X86 1
#include <immintrin.h>
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define VNNI512_FN __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define AVXVNNI_FN __attribute__((target("avx2,fma,f16c,avxvnni")))
#endif

#define QK_K 256
#define QK8_0 32
#define QK_I2S 128
#define ROW_TILE 8 /* the grain of the row partition */
#define TILE_BYTES (256 << 10) /* weight rows kept hot in L2 while every token passes over them */

/* ------------------------------------------------------------------ */
/* Types, activation layouts, scratch                                  */
/* ------------------------------------------------------------------ */

typedef enum act_kind {
    ACT_DENSE,    /* floats as given (maybe rounded to f16 on the fly) */
    ACT_I8_TOKEN, /* I2_S: int8 per token, one scale and one Σq per token */
    ACT_Q8_K,     /* TQ*: int8, one d and 16 bsums per 256-block */
    ACT_Q8_0,     /* Q8_0: int8, one (f16-rounded) d per 32-block */
} act_kind;

typedef struct mm_job mm_job;
/* Quantizes one token of K activations to int8 q, its scale and Σq. */
typedef void i8_token_fn(const float *x, int64_t K, int8_t *q, float *s_out, int32_t *sum_out);
typedef float elem_fn(const mm_job *j, int64_t row, int64_t t);
/* Tokens t..t+3 of one row at once, or NULL: each output is computed by
 * exactly the operations of an elem_fn call (integer kernels, or the same
 * per-output fma chain), so the results equal four elem_fn calls. */
typedef void elem4_fn(const mm_job *j, int64_t row, int64_t t, float out[4]);
/* Rows row..row+n-1 (n <= 8) of token t, likewise equal to n elem_fn calls. */
typedef void rows_fn(const mm_job *j, int64_t row, int n, int64_t t, float *out);

typedef struct type_info {
    uint32_t type;
    int64_t block;      /* K must be a multiple */
    size_t block_bytes; /* bytes per block of a weight row */
    act_kind act;
    elem_fn *dot;       /* one output element */
    elem4_fn *dot4;     /* optional: one row, 4 tokens */
    rows_fn *dot_rows;  /* optional: up to 8 rows, one token */
} type_info;

#define SCRATCH_MAGIC 0x6d6d6e62u /* "bnmm" */
#define SCRATCH_ALIGN 64

/* At the start of the scratch; offsets are from the scratch start. */
typedef struct scratch_hdr {
    uint32_t magic;
    uint32_t type;   /* weight type of the last matmul that used the scratch */
    int64_t T, K;
    size_t q8_off;   /* int8 [T,K] */
    size_t f_off;    /* float: I2_S [T] s; Q8_K [T,K/256] d; Q8_0 [T,K/32] d */
    size_t i_off;    /* I2_S int32 [T] Σq; Q8_K int16 [T,K/16] bsums */
    size_t il_off;   /* I2_S int8 [T,K]: the codes with each block pair's groups interleaved (i2s_tile512) */
    size_t total;    /* bytes needed */
} scratch_hdr;

typedef enum dense_kind { DENSE_SEQ, DENSE_TINY, DENSE_VEC } dense_kind;

/* How one float dot product is summed (see the comment at the top). */
typedef struct dense_alg {
    dense_kind kind;
    int lanes;        /* 8 or 16 (TINY, VEC) */
    bool hadd_reduce; /* VEC with 8 lanes: GGML_F32x8_REDUCE's hadd pairs */
    bool tail_double; /* VEC: ggml_vec_dot_f16 sums the tail in double */
    bool tail_fma;    /* VEC, float tail: fused `sumf += x*y` (bitnet.cpp's build) */
} dense_alg;

/* How an operand of a float dot product is read. */
typedef enum op_kind {
    OP_F32,        /* float */
    OP_F16,        /* uint16 halves, widened exactly */
    OP_BF16,       /* uint16 bfloat16, widened exactly (the high half of a float) */
    OP_F32_AS_F16, /* float rounded to f16 (ggml's vec_dot_type conversion) */
} op_kind;

struct mm_job {
    const type_info *ti;
    const uint8_t *w;   /* weight rows */
    size_t row_bytes;
    int64_t K, N, T;
    const float *x;     /* [T,K] */
    float *y;           /* [T,N] */
    bn_sum_order order;
    bool avx2;
    bn_i8dot i8dot;     /* resolved (never AUTO): the I2_S integer kernel of the AVX2 level */
    float w_scale;      /* I2_S tensor scale */
    i8_token_fn *quant_i8; /* I2_S activation quantizer, by bn_act_round */
    int8_t *q8;         /* [T,K] */
    int8_t *q8il;       /* [T,K] q8 interleaved for i2s_tile512, or NULL */
    bool rows8;         /* I2_S in BN_LAYOUT_I2S_ROWS8 (only with q8il: the AVX-512 VNNI kernels read it) */
    float *af;          /* per token / per block scales (scratch_hdr.f_off) */
    int32_t *ai32;      /* I2_S Σq per token */
    int16_t *ai16;      /* Q8_K bsums */
    dense_alg alg;      /* dense types */
    op_kind xk;         /* dense types: how x is read */
    int64_t row_grain;
};

static size_t scratch_align(size_t v) { return (size_t)align_up(v, SCRATCH_ALIGN); }

/* a*b + c into *out without overflow; false on overflow. */
static bool size_mul_add(size_t a, size_t b, size_t c, size_t *out) {
    size_t p;
    if (__builtin_mul_overflow(a, b, &p) || __builtin_add_overflow(p, c, out)) return false;
    return true;
}

static bool scratch_layout(const type_info *ti, int64_t T, int64_t K, scratch_hdr *h) {
    memset(h, 0, sizeof *h);
    h->magic = SCRATCH_MAGIC;
    h->type = ti->type;
    h->T = T;
    h->K = K;
    size_t off = scratch_align(sizeof *h);
    if (ti->act == ACT_DENSE) { /* [T,K] floats: the activations rounded to f16 once per call */
        size_t bytes;
        h->f_off = off;
        if (!size_mul_add((size_t)T, (size_t)K * sizeof(float), off, &bytes) || bytes > SIZE_MAX - SCRATCH_ALIGN)
            return false;
        h->total = scratch_align(bytes);
        return true;
    }
    size_t nf = (size_t)K / QK8_0, ni = 0, isz = 0; /* Q8_0 */
    switch (ti->act) {
    case ACT_I8_TOKEN: nf = 1, ni = 1, isz = sizeof(int32_t); break;
    case ACT_Q8_K: nf = (size_t)K / QK_K, ni = (size_t)K / 16, isz = sizeof(int16_t); break;
    case ACT_Q8_0: case ACT_DENSE: break;
    }
    size_t q8, f, i;
    h->q8_off = off;
    if (!size_mul_add((size_t)T, (size_t)K, 0, &q8)) return false;
    if (!size_mul_add((size_t)T, nf * sizeof(float), 0, &f)) return false;
    if (!size_mul_add((size_t)T, ni * isz, 0, &i)) return false;
    if (!size_mul_add(1, q8, off, &off) || off > SIZE_MAX - SCRATCH_ALIGN) return false;
    h->f_off = off = scratch_align(off);
    if (!size_mul_add(1, f, off, &off) || off > SIZE_MAX - SCRATCH_ALIGN) return false;
    h->i_off = off = scratch_align(off);
    if (!size_mul_add(1, i, off, &off) || off > SIZE_MAX - SCRATCH_ALIGN) return false;
    if (ti->act == ACT_I8_TOKEN) {
        h->il_off = off = scratch_align(off);
        if (!size_mul_add(1, q8, off, &off) || off > SIZE_MAX - SCRATCH_ALIGN) return false;
    }
    h->total = scratch_align(off);
    return true;
}

/* ------------------------------------------------------------------ */
/* Small shared helpers                                                */
/* ------------------------------------------------------------------ */

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* ggml's nearest_int: round half to even through the float adder (valid for
 * |v| <= 2^22, which activation quantization guarantees). */
static int nearest_int(float v) {
    float f = v + 12582912.f;
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* Reduction of an 8- or 16-lane accumulator: halving tree (tinyBLAS hsum,
 * _mm512_reduce_add_ps, hsum_float_8), or GGML_F32x8_REDUCE's final hadds. */
static float reduce_lanes(float *v, int lanes, bool hadd) {
    for (int w = lanes / 2; w >= (hadd ? 4 : 1); w /= 2)
        for (int i = 0; i < w; i++) v[i] = v[i] + v[i + w];
    return hadd ? (v[0] + v[1]) + (v[2] + v[3]) : v[0];
}

static float op_get(const void *p, op_kind k, int64_t i) {
    switch (k) {
    case OP_F16: return bn_f16_to_f32(((const uint16_t *)p)[i]);
    case OP_BF16: return bn_bf16_to_f32(((const uint16_t *)p)[i]);
    case OP_F32_AS_F16: return bn_f16_to_f32(bn_f32_to_f16(((const float *)p)[i]));
    case OP_F32: break;
    }
    return ((const float *)p)[i];
}

/* ------------------------------------------------------------------ */
/* Float dot products, portable                                        */
/* ------------------------------------------------------------------ */

/* The tail of ggml_vec_dot_*: the f16 version sums in double; the f32 version
 * in float, as one fma per product in bitnet.cpp's build and as a rounded
 * product then an add in upstream llama.cpp's (both established on the shared
 * traces, whose q·k products of 32 elements are all tail on AVX-512). */
static float vec_tail(const void *a, op_kind ka, const void *b, op_kind kb, int64_t from, int64_t n,
                      float simd_sum, bool tail_double, bool tail_fma) {
    if (tail_double) {
        double s = simd_sum;
        for (int64_t i = from; i < n; i++) s += (double)(op_get(a, ka, i) * op_get(b, kb, i));
        return (float)s;
    }
    float s = simd_sum;
    for (int64_t i = from; i < n; i++) {
        if (tail_fma) {
            s = fmaf(op_get(a, ka, i), op_get(b, kb, i), s);
        } else {
            const float p = op_get(a, ka, i) * op_get(b, kb, i);
            s = s + p;
        }
    }
    return s;
}

static float dense_dot_portable(const void *a, op_kind ka, const void *b, op_kind kb, int64_t n,
                                const dense_alg *alg) {
    float acc[4][16] = {{0}};
    const int L = alg->lanes;
    switch (alg->kind) {
    case DENSE_SEQ: {
        float s = 0.0f;
        for (int64_t i = 0; i < n; i++) {
            float p = op_get(a, ka, i) * op_get(b, kb, i);
            s = s + p;
        }
        return s;
    }
    case DENSE_TINY:
        for (int64_t l = 0; l < n; l += L)
            for (int i = 0; i < L; i++) acc[0][i] = fmaf(op_get(a, ka, l + i), op_get(b, kb, l + i), acc[0][i]);
        return reduce_lanes(acc[0], L, false);
    case DENSE_VEC: {
        const int64_t np = n & ~(int64_t)(4 * L - 1);
        for (int64_t i = 0; i < np; i += 4 * L)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < L; l++) {
                    int64_t e = i + j * L + l;
                    acc[j][l] = fmaf(op_get(a, ka, e), op_get(b, kb, e), acc[j][l]);
                }
        for (int l = 0; l < L; l++) {
            acc[0][l] = acc[0][l] + acc[2][l];
            acc[1][l] = acc[1][l] + acc[3][l];
        }
        for (int l = 0; l < L; l++) acc[0][l] = acc[0][l] + acc[1][l];
        float s = np ? reduce_lanes(acc[0], L, alg->hadd_reduce) : 0.0f;
        return vec_tail(a, ka, b, kb, np, n, s, alg->tail_double, alg->tail_fma);
    }
    }
    return 0.0f;
}

/* ------------------------------------------------------------------ */
/* Integer kernels, portable                                           */
/* ------------------------------------------------------------------ */

/* I2_S code -> w + 1 is {0, 1, 2, 1}: code 3 is unused and decodes as 0
 * (docs/specs/i2s.md); the AVX2 kernels use it as a pshufb table. */
/* Σ (w_i + 1)·q_i over a row of K (multiple of 128) elements. */
static int32_t i2s_dot_portable(const uint8_t *w, const int8_t *q, int64_t K) {
    int32_t s = 0;
    for (int64_t b = 0; b < K / QK_I2S; b++, w += 32, q += QK_I2S)
        for (int g = 0; g < 4; g++) {
            const int sh = 6 - 2 * g;
            /* I2S_W1 as arithmetic (3 -> 1) so that compilers vectorize it */
            for (int m = 0; m < 32; m++) {
                const int c = (w[m] >> sh) & 3;
                s += (c - 2 * ((c >> 1) & c & 1)) * q[32 * g + m];
            }
        }
    return s;
}

/* Codes (0..3) of one TQ2_0 / TQ1_0 block in element order. */
/* The activations of one token for i2s_tile512: in each pair of 128-code
 * blocks, group g of the first block and group g of the second side by side
 * (64 bytes per g), so that one 64-byte load meets the codes of group g of
 * both blocks; an odd last block stays as it is. */
static void i2s_interleave(const int8_t *q, int64_t K, int8_t *out) {
    const int64_t nb = K / QK_I2S;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2)
        for (int g = 0; g < 4; g++) {
            memcpy(out + QK_I2S * b + 64 * g, q + QK_I2S * b + 32 * g, 32);
            memcpy(out + QK_I2S * b + 64 * g + 32, q + QK_I2S * (b + 1) + 32 * g, 32);
        }
    if (b < nb) memcpy(out + QK_I2S * b, q + QK_I2S * b, QK_I2S);
}

static void tq2_codes(const uint8_t *blk, uint8_t c[QK_K]) {
    for (int b = 0; b < 64; b++)
        for (int n = 0; n < 4; n++) c[(b / 32) * 128 + n * 32 + b % 32] = (blk[b] >> (2 * n)) & 3;
}

static void trits(const uint8_t *q, int nbytes, int ntrits, uint8_t *c) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    for (int n = 0; n < ntrits; n++)
        for (int m = 0; m < nbytes; m++) {
            uint8_t t = (uint8_t)(q[m] * pow3[n]);
            c[n * nbytes + m] = (uint8_t)((t * 3) >> 8);
        }
}

static void tq1_codes(const uint8_t *blk, uint8_t c[QK_K]) {
    trits(blk, 32, 5, c);
    trits(blk + 32, 16, 5, c + 160);
    trits(blk + 48, 4, 4, c + 240);
}

/* ggml's 8 AVX2 lanes of a Q8_K block product (see the top comment). */
static void q8k_lanes_portable(const uint8_t c[QK_K], const int8_t *q, const int16_t *bsums, int32_t lanes[8]) {
    for (int k = 0; k < 8; k++) lanes[k] = -(bsums[2 * k] + bsums[2 * k + 1]);
    for (int e = 0; e < QK_K; e++) lanes[(e % 32) / 4] += c[e] * q[e];
}

static int32_t sat16(int32_t v) { return v > 32767 ? 32767 : v < -32768 ? -32768 : v; }

/* ggml's mul_sum_i8_pairs lanes of a Q8_0 block: lane k = bytes 4k..4k+3,
 * pairs formed by maddubs(|x|, sign(y, x)), which saturates to int16. */
static void q8_0_lanes_portable(const int8_t *x, const int8_t *y, int32_t lanes[8]) {
    for (int k = 0; k < 8; k++) {
        int32_t s = 0;
        for (int p = 4 * k; p < 4 * k + 4; p += 2) {
            int32_t ax0 = x[p] < 0 ? -x[p] : x[p], ax1 = x[p + 1] < 0 ? -x[p + 1] : x[p + 1];
            int32_t sy0 = x[p] < 0 ? -y[p] : x[p] ? y[p] : 0;
            int32_t sy1 = x[p + 1] < 0 ? -y[p + 1] : x[p + 1] ? y[p + 1] : 0;
            /* _mm256_sign_epi8 wraps: -(-128) stays -128 */
            sy0 = (int8_t)sy0, sy1 = (int8_t)sy1;
            s += sat16((uint8_t)ax0 * sy0 + (uint8_t)ax1 * sy1);
        }
        lanes[k] = s;
    }
}

/* ------------------------------------------------------------------ */
/* AVX2 kernels: the same arithmetic, 8 lanes at a time                */
/* ------------------------------------------------------------------ */
#ifdef MM_X86

AVX2_FN static inline __m256 ld8(const void *p, op_kind k, int64_t i) {
    switch (k) {
    case OP_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    case OP_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i))), 16));
    case OP_F32_AS_F16:
        return _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps((const float *)p + i), _MM_FROUND_TO_NEAREST_INT));
    case OP_F32: break;
    }
    return _mm256_loadu_ps((const float *)p + i);
}

AVX2_FN static inline float ld1(const void *p, op_kind k, int64_t i) {
    switch (k) {
    case OP_F16: return _cvtsh_ss(((const uint16_t *)p)[i]);
    case OP_BF16: return op_get(p, k, i);
    case OP_F32_AS_F16: return _cvtsh_ss(_cvtss_sh(((const float *)p)[i], _MM_FROUND_TO_NEAREST_INT));
    case OP_F32: break;
    }
    return ((const float *)p)[i];
}

/* vec_tail with the operand kinds inlined (hardware f16 conversion): the
 * same operations in the same order. Attention's p·V over fewer than 64
 * cached positions is all tail. */
AVX2_FN static inline __attribute__((always_inline)) float vec_tail_avx2(const void *a, op_kind ka, const void *b,
                                                                         op_kind kb, int64_t from, int64_t n,
                                                                         float simd_sum, bool tail_double,
                                                                         bool tail_fma) {
    if (tail_double) {
        double s = simd_sum;
        for (int64_t i = from; i < n; i++) s += (double)(ld1(a, ka, i) * ld1(b, kb, i));
        return (float)s;
    }
    float s = simd_sum;
    for (int64_t i = from; i < n; i++) {
        if (tail_fma) {
            s = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(ld1(a, ka, i)), _mm_set_ss(ld1(b, kb, i)), _mm_set_ss(s)));
        } else {
            const float p = ld1(a, ka, i) * ld1(b, kb, i);
            s = s + p;
        }
    }
    return s;
}

/* Halving tree of 8 lanes: hsum_float_8 / tinyBLAS hsum. */
AVX2_FN static inline float hsum8_tree(__m256 v) {
    __m128 t = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

/* GGML_F32x8_REDUCE's last steps: lo + hi, then two hadds. */
AVX2_FN static inline float hsum8_hadd(__m256 v) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_hadd_ps(t, t);
    return _mm_cvtss_f32(t);
}

/* The SIMD part of DENSE_VEC: the sum of elements [0, *np) (*np: n rounded
 * down to the 4-accumulator step), before the scalar tail. */
AVX2_FN static inline __attribute__((always_inline)) float vec_main_avx2(const void *a, op_kind ka, const void *b,
                                                                         op_kind kb, int64_t n, const dense_alg *alg,
                                                                         int H, int64_t *np_out) {
    __m256 s[4][2];
    for (int j = 0; j < 4; j++) s[j][0] = s[j][1] = _mm256_setzero_ps();
    const int64_t step = 32 * H, np = n & ~(int64_t)(step - 1);
    *np_out = np;
    /* unrolled so that the 4·H accumulators stay in registers */
    for (int64_t i = 0; i < np; i += step) {
        if (ka == OP_F16) _mm_prefetch((const char *)((const uint16_t *)a + i) + 2048, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
#pragma GCC unroll 2
            for (int h = 0; h < H; h++) {
                int64_t e = i + 8 * (j * H + h);
                s[j][h] = _mm256_fmadd_ps(ld8(a, ka, e), ld8(b, kb, e), s[j][h]);
            }
    }
    float sum = 0.0f;
    if (np) {
        for (int h = 0; h < H; h++) {
            s[0][h] = _mm256_add_ps(s[0][h], s[2][h]);
            s[1][h] = _mm256_add_ps(s[1][h], s[3][h]);
            s[0][h] = _mm256_add_ps(s[0][h], s[1][h]);
        }
        sum = H == 2 ? hsum8_tree(_mm256_add_ps(s[0][0], s[0][1]))
                     : alg->hadd_reduce ? hsum8_hadd(s[0][0]) : hsum8_tree(s[0][0]);
    }
    return sum;
}

/* A 16-lane accumulator is two __m256 (lanes 0-7, 8-15); its first halving
 * step is their sum. */
AVX2_FN static inline __attribute__((always_inline)) float
dense_dot_avx2_impl(const void *a, op_kind ka, const void *b, op_kind kb, int64_t n, const dense_alg *alg, int H) {
    if (alg->kind == DENSE_SEQ) return dense_dot_portable(a, ka, b, kb, n, alg);
    if (alg->kind == DENSE_TINY) {
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t l = 0; l < n; l += 8 * H)
#pragma GCC unroll 2
            for (int h = 0; h < H; h++) acc[h] = _mm256_fmadd_ps(ld8(a, ka, l + 8 * h), ld8(b, kb, l + 8 * h), acc[h]);
        return hsum8_tree(H == 2 ? _mm256_add_ps(acc[0], acc[1]) : acc[0]);
    }
    int64_t np;
    const float sum = vec_main_avx2(a, ka, b, kb, n, alg, H, &np);
    return vec_tail_avx2(a, ka, b, kb, np, n, sum, alg->tail_double, alg->tail_fma);
}


/* Elements [np, n) of 4 rows a, a + row_bytes, ... against one b, added to
 * their sums s[4]: the sequential double tails of vec_tail_avx2, the 4
 * chains side by side, each in its own order. */
AVX2_FN static inline __attribute__((always_inline)) void double_tails_rows4(const uint8_t *a, size_t row_bytes,
                                                                             op_kind ka, const void *b, op_kind kb,
                                                                             int64_t np, int64_t n, double s[4]) {
    for (int64_t i = np; i < n; i++) {
        const float bi = ld1(b, kb, i);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) s[r] += (double)(ld1(a + r * row_bytes, ka, i) * bi);
    }
}

/* DENSE_VEC with the tail in double (ggml_vec_dot_f16) for 4 rows a, a +
 * row_bytes, ... against one b: each row's SIMD part as dense_dot_avx2,
 * then the 4 tails' sequential double sums side by side, each in its own
 * order (a decoded token's p·V, whose 32-element tails were a third of its
 * attention time): the same bits as 4 dense_dot_avx2 calls. */
AVX2_FN static void vec_tail_double_rows4_avx2(const uint8_t *a, size_t row_bytes, op_kind ka, const void *b,
                                               op_kind kb, int64_t n, const dense_alg *alg, float out[4]) {
    const int H = alg->lanes / 8;
    double s[4];
    int64_t np = 0;
    for (int r = 0; r < 4; r++)
        s[r] = H == 2 && ka == OP_F16 && kb == OP_F16 ? vec_main_avx2(a + r * row_bytes, OP_F16, b, OP_F16, n, alg, 2, &np)
                                                      : vec_main_avx2(a + r * row_bytes, ka, b, kb, n, alg, H, &np);
    double_tails_rows4(a, row_bytes, ka, b, kb, np, n, s);
    for (int r = 0; r < 4; r++) out[r] = (float)s[r];
}

/* dense_dot_avx2_impl with the operand kinds and the lane count as
 * constants for the common cases (the F16 lm_head, F32 weights), so that
 * their loops carry no switch on the operand kind: the same operations. */
AVX2_FN static float dense_dot_avx2(const void *a, op_kind ka, const void *b, op_kind kb, int64_t n,
                                    const dense_alg *alg) {
    const int H = alg->lanes / 8; /* __m256 per lane group */
    if (H == 2 && kb == OP_F32 && ka == OP_F16) return dense_dot_avx2_impl(a, OP_F16, b, OP_F32, n, alg, 2);
    if (H == 2 && kb == OP_F32 && ka == OP_F32) return dense_dot_avx2_impl(a, OP_F32, b, OP_F32, n, alg, 2);
    if (H == 2 && kb == OP_F16 && ka == OP_F16) return dense_dot_avx2_impl(a, OP_F16, b, OP_F16, n, alg, 2);
    return dense_dot_avx2_impl(a, ka, b, kb, n, alg, H);
}

/* ggml_vec_dot_f16's 4 x 16-lane accumulators folded: (s0 + s2) + (s1 + s3),
 * then 16 lanes to 8 and the halving tree. */
VNNI512_FN static inline float vec16x4_fold512(const __m512 s[4]) {
    const __m512 t = _mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[1], s[3]));
    return hsum8_tree(
        _mm256_add_ps(_mm512_castps512_ps256(t), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1))));
}
/* DENSE_VEC with 16 lanes (ggml_vec_dot_f16 as the AVX-512 build sums it)
 * for F16 weights and f32 (already f16-rounded) activations on the AVX-512
 * level: each 16-lane accumulator is one zmm instead of two ymm, the same
 * fma per lane, the same s0+s2, s1+s3, s0+s1, the same halving tree and
 * tail: the decode lm_head at half the instructions. The decode lm_head
 * takes its rows one after the other through this kernel, with no software
 * prefetch: one sequential stream is what the hardware prefetcher follows
 * best. The 128256-row F16 lm_head of a 2B-4T token on one thread read
 * 27-28 GB/s so, against 23-24 with 4 rows side by side and an L2 prefetch
 * 8 rows ahead, and 22-24 with this kernel and any software prefetch (L1
 * or L2, 2-32 rows ahead); on 2 threads, in this host's fast minutes, 55
 * against 46-47 GB/s. */
VNNI512_FN static float dense_vec16_f16_512(const uint16_t *a, const float *b, int64_t n, const dense_alg *alg) {
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            s[j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i + 16 * j))),
                                   _mm512_loadu_ps(b + i + 16 * j), s[j]);
    }
    return vec_tail_avx2(a, OP_F16, b, OP_F32, np, n, np ? vec16x4_fold512(s) : 0.0f, alg->tail_double,
                         alg->tail_fma);
}

/* DENSE_VEC with 16 lanes and the tail in double (ggml_vec_dot_f16 as the
 * AVX-512 build sums it) for 4 F16 rows a, a + row_bytes, ... against one
 * F16 vector b on the AVX-512 level: b's 64 elements of a step are widened
 * once for the 4 rows, each row keeps its own 4 zmm accumulators, fold and
 * halving tree (dense_vec16_f16_512's), then the 4 double tails side by
 * side (double_tails_rows4): the same bits as 4 dense_dot_avx2
 * calls. A decoded token's q·k (over the cached positions) and p·V (over
 * the dims) take it; on a 2B-4T model at 16 + 256 positions their share of
 * decode fell from 0.75-0.94 s to 0.48-0.66 s (perf samples, 256 tokens). */
VNNI512_FN static void dot_f16_rows4_512(const uint8_t *a, size_t row_bytes, const uint16_t *b, int64_t n,
                                         float out[4]) {
    __m512 s[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) s[r][j] = _mm512_setzero_ps();
    const int64_t np = n & ~(int64_t)63;
    /* the rows two calls on, into L1 (a prefetch never faults): the cached
     * positions' rows lie 1-2 KB apart and come from DRAM, since a token's
     * weights stream through the caches between two layers' attention */
    for (int r = 8; r < 12; r++)
        for (int64_t o = 0; o < 2 * n; o += 64) _mm_prefetch((const char *)(a + (size_t)r * row_bytes + o), _MM_HINT_T0);
    for (int64_t i = 0; i < np; i += 64) {
        __m512 bv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) bv[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + i + 16 * j)));
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint16_t *ar = (const uint16_t *)(a + (size_t)r * row_bytes);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                s[r][j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(ar + i + 16 * j))), bv[j],
                                          s[r][j]);
        }
    }
    double sum[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) sum[r] = np ? vec16x4_fold512(s[r]) : 0.0f;
    double_tails_rows4(a, row_bytes, OP_F16, b, OP_F16, np, n, sum);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) out[r] = (float)sum[r];
}

/* DENSE_TINY for a block of R weight rows x U tokens (R·U <= 8): each weight
 * vector is loaded (and widened) once for the U tokens and each activation
 * vector once for the R rows; per output the same fma chain and halving tree
 * as dense_dot_avx2_impl, hence the same bits. R = 1, U = 4: a prompt's rows;
 * R = 4 or 8, U = 1: the last prompt position's lm_head (128256 rows of one
 * token), whose R chains then run side by side instead of one fma latency
 * per 16 elements. out[r·U + u]. */
AVX2_FN static inline __attribute__((always_inline)) void
dense_tiny_block_impl(const uint8_t *w, size_t row_bytes, op_kind ka, const float *x, int64_t K, int H, int R, int U,
                      float *out) {
    __m256 acc[8][2];
#pragma GCC unroll 8
    for (int i = 0; i < R * U; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t l = 0; l < K; l += 8 * H)
#pragma GCC unroll 2
        for (int h = 0; h < H; h++) {
            __m256 xv[4];
#pragma GCC unroll 4
            for (int u = 0; u < U; u++) xv[u] = _mm256_loadu_ps(x + u * K + l + 8 * h);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const __m256 wv = ld8(w + (size_t)r * row_bytes, ka, l + 8 * h);
#pragma GCC unroll 4
                for (int u = 0; u < U; u++) acc[r * U + u][h] = _mm256_fmadd_ps(wv, xv[u], acc[r * U + u][h]);
            }
        }
#pragma GCC unroll 8
    for (int i = 0; i < R * U; i++) out[i] = hsum8_tree(H == 2 ? _mm256_add_ps(acc[i][0], acc[i][1]) : acc[i][0]);
}

AVX2_FN static void dense_tiny4_avx2(const void *a, op_kind ka, const float *x, int64_t K, int lanes, float out[4]) {
    if (lanes == 16 && ka == OP_F16) dense_tiny_block_impl(a, 0, OP_F16, x, K, 2, 1, 4, out);
    else if (lanes == 16 && ka == OP_F32) dense_tiny_block_impl(a, 0, OP_F32, x, K, 2, 1, 4, out);
    else dense_tiny_block_impl(a, 0, ka, x, K, lanes / 8, 1, 4, out);
}

/* 4 rows: 8 accumulators of 16 lanes, half of AVX2's 16 registers. */
AVX2_FN static void dense_tiny_rows4_avx2(const uint8_t *w, size_t row_bytes, op_kind ka, const float *x, int64_t K,
                                          int lanes, float out[4]) {
    if (lanes == 16 && ka == OP_F16) dense_tiny_block_impl(w, row_bytes, OP_F16, x, K, 2, 4, 1, out);
    else if (lanes == 16 && ka == OP_F32) dense_tiny_block_impl(w, row_bytes, OP_F32, x, K, 2, 4, 1, out);
    else dense_tiny_block_impl(w, row_bytes, ka, x, K, lanes / 8, 4, 1, out);
}

/* 8 rows of F16 weights on the AVX-512 level, whose 32 vector registers
 * hold the 16 accumulators: the same ymm operations. */
VNNI512_FN static void dense_tiny_rows8_f16_512(const uint8_t *w, size_t row_bytes, const float *x, int64_t K,
                                                float out[8]) {
    dense_tiny_block_impl(w, row_bytes, OP_F16, x, K, 2, 8, 1, out);
}

AVX2_FN static inline int32_t hsum_i32x8(__m256i v) {
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(t);
}

/* 32 bytes -> 128 codes (4 groups of 32 aligned with 32 activations each),
 * mapped through I2S_W1 with one pshufb; maddubs pairs stay < 2^15 for 8
 * blocks, then widen to int32. */
AVX2_FN static int32_t i2s_dot_avx2(const uint8_t *w, const int8_t *q, int64_t K) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i acc32 = _mm256_setzero_si256();
    const int64_t nb = K / QK_I2S;
    for (int64_t b = 0; b < nb;) {
        __m256i acc16 = _mm256_setzero_si256();
        for (int64_t end = nb - b < 8 ? nb : b + 8; b < end; b++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(w + 32 * b));
            const int8_t *qb = q + QK_I2S * b;
            for (int g = 0; g < 4; g++) {
                __m256i c = _mm256_and_si256(_mm256_srli_epi16(raw, 6 - 2 * g), m3);
                c = _mm256_shuffle_epi8(lut, c);
                __m256i qv = _mm256_loadu_si256((const __m256i *)(qb + 32 * g));
                acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(c, qv));
            }
        }
        acc32 = _mm256_add_epi32(acc32, _mm256_madd_epi16(acc16, ones));
    }
    return hsum_i32x8(acc32);
}

/* The same for 4 tokens at once: each unpacked code vector serves 4
 * activation rows (prompt processing). */
AVX2_FN static void i2s_dot4_avx2(const uint8_t *w, const int8_t *q, int64_t K, int32_t out[4]) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i acc32[4];
    for (int u = 0; u < 4; u++) acc32[u] = _mm256_setzero_si256();
    const int64_t nb = K / QK_I2S;
    for (int64_t b = 0; b < nb;) {
        __m256i acc16[4];
        for (int u = 0; u < 4; u++) acc16[u] = _mm256_setzero_si256();
        for (int64_t end = nb - b < 8 ? nb : b + 8; b < end; b++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(w + 32 * b));
            for (int g = 0; g < 4; g++) {
                __m256i c = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(raw, 6 - 2 * g), m3));
                for (int u = 0; u < 4; u++) {
                    __m256i qv = _mm256_loadu_si256((const __m256i *)(q + u * K + QK_I2S * b + 32 * g));
                    acc16[u] = _mm256_add_epi16(acc16[u], _mm256_maddubs_epi16(c, qv));
                }
            }
        }
        for (int u = 0; u < 4; u++) acc32[u] = _mm256_add_epi32(acc32[u], _mm256_madd_epi16(acc16[u], ones));
    }
    for (int u = 0; u < 4; u++) out[u] = hsum_i32x8(acc32[u]);
}

/* The I2_S kernels with vpdpbusd (AVX-512 VNNI on 256-bit registers, or
 * AVX-VNNI): each code·q quadruple is summed straight into an int32 lane, so
 * the int16 stage and its periodic widening go away. The products and sums
 * are exact integers, so the results equal the maddubs kernels' and the
 * portable one's; independent accumulators (per group of 32 / per token
 * pair) only reorder integer additions. */
#define I2S_VNNI_KERNELS(sfx, ATTR, DPBUSD)                                                                  \
    ATTR static int32_t i2s_dot_##sfx(const uint8_t *w, const int8_t *q, int64_t K) {                        \
        const __m256i lut = _mm256_setr_epi8(0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 0, 0, \
                                             0, 0, 0, 0, 0, 0, 0, 0, 0, 0);                                    \
        const __m256i m3 = _mm256_set1_epi8(3);                                                              \
        __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),            \
                          _mm256_setzero_si256()};                                                           \
        for (int64_t b = 0; b < K / QK_I2S; b++) {                                                           \
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(w + 32 * b));                         \
            for (int g = 0; g < 4; g++) {                                                                    \
                __m256i c = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(raw, 6 - 2 * g), m3)); \
                acc[g] = DPBUSD(acc[g], c, _mm256_loadu_si256((const __m256i *)(q + QK_I2S * b + 32 * g))); \
            }                                                                                                \
        }                                                                                                    \
        return hsum_i32x8(_mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]), _mm256_add_epi32(acc[2], acc[3]))); \
    }                                                                                                        \
    ATTR static void i2s_dot4_##sfx(const uint8_t *w, const int8_t *q, int64_t K, int32_t out[4]) {          \
        const __m256i lut = _mm256_setr_epi8(0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 0, 0, \
                                             0, 0, 0, 0, 0, 0, 0, 0, 0, 0);                                    \
        const __m256i m3 = _mm256_set1_epi8(3);                                                              \
        __m256i acc[4][2];                                                                                   \
        for (int u = 0; u < 4; u++) acc[u][0] = acc[u][1] = _mm256_setzero_si256();                          \
        for (int64_t b = 0; b < K / QK_I2S; b++) {                                                           \
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(w + 32 * b));                         \
            for (int g = 0; g < 4; g++) {                                                                    \
                __m256i c = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(raw, 6 - 2 * g), m3)); \
                for (int u = 0; u < 4; u++)                                                                  \
                    acc[u][g & 1] = DPBUSD(acc[u][g & 1], c,                                                 \
                                           _mm256_loadu_si256((const __m256i *)(q + u * K + QK_I2S * b + 32 * g))); \
            }                                                                                                \
        }                                                                                                    \
        for (int u = 0; u < 4; u++) out[u] = hsum_i32x8(_mm256_add_epi32(acc[u][0], acc[u][1]));            \
    }

I2S_VNNI_KERNELS(avxvnni, AVXVNNI_FN, _mm256_dpbusd_avx_epi32)
#undef I2S_VNNI_KERNELS

/* The AVX-512 VNNI level: 512-bit registers, so one load holds two 128-code
 * blocks (64 weight bytes) and each code vector meets a 64-byte activation
 * vector of the same group of both blocks (i2s_interleave's layout). A tile of R rows x U
 * tokens (R, U <= 4) shares every unpacked code vector among the U tokens
 * and every activation vector among the R rows: the prefill GEMM's register
 * block, and with U = 1 the decode matrix-vector product (4 rows at once,
 * two accumulators per row to hide vpdpbusd's latency). Integer sums only,
 * so the results equal every other kernel's. An odd last block takes the
 * 256-bit form. R and U are constants at every call (I2S_TILE512_CASES), so
 * the loops unroll and the accumulators live in registers. */
/* One 128-code block (32 bytes of w) against its 128 activations q in
 * natural order, as 8 int32 lanes: the 256-bit form for the odd last block
 * of the 512-bit kernels. */
VNNI512_FN static inline __attribute__((always_inline)) __m256i i2s_block256(const uint8_t *w, const int8_t *q) {
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    const __m256i m3 = _mm256_set1_epi8(3), raw = _mm256_loadu_si256((const __m256i *)w);
    __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++)
        s = _mm256_dpbusd_epi32(s, _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(raw, (unsigned)(6 - 2 * g)), m3)),
                                _mm256_loadu_si256((const __m256i *)(q + 32 * g)));
    return s;
}

/* I2S_W1 applied to a nibble's two codes: table t[g & 1] maps a nibble to
 * the mapped code of its high (g even) or low (g odd) 2-bit field, so the
 * low nibble of every byte (groups 2, 3) and its high nibble (groups 0, 1)
 * each need one mask and two vpshufb, not one shift, mask and vpshufb per group. */
#define I2S_NIB_HI 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1
#define I2S_NIB_LO 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1
/* Row r's block pair p (64 bytes, blocks 2p and 2p + 1) lies at
 * w + r * rs + p * ps: rs = row_bytes, ps = 64 in the stored layout;
 * rs = 64, ps = 512 within a group of BN_LAYOUT_I2S_ROWS8 (w at the row's
 * place in its group's first pair, see i2s_row_base). */
VNNI512_FN static inline __attribute__((always_inline)) void
i2s_tile512_impl(const uint8_t *w, size_t rs, size_t ps, const int8_t *q, int64_t K, int R, int U, int32_t out[4][4]) {
    const __m512i t_hi = _mm512_broadcast_i32x4(_mm_setr_epi8(I2S_NIB_HI));
    const __m512i t_lo = _mm512_broadcast_i32x4(_mm_setr_epi8(I2S_NIB_LO));
    const __m512i m15 = _mm512_set1_epi8(15);
    const int A = U == 1 ? 2 : U; /* accumulators per row: tokens, or group parities for one token */
    __m512i acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int a = 0; a < A; a++) acc[r][a] = _mm512_setzero_si512();
    const int64_t nb = K / QK_I2S;
    for (int64_t p = 0; p + 2 <= nb; p += 2) {
        __m512i nib[4][2]; /* per row: high nibbles (groups 0, 1), low nibbles (groups 2, 3) */
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            /* decode, stored layout: the same bytes of the row four tiles on, into L2 (a
             * prefetch never faults); a group of 8 rows is one stream the hardware follows */
            if (U == 1 && ps == 64) _mm_prefetch((const char *)(w + (size_t)(r + 16) * rs + 32 * p), _MM_HINT_T1);
            const __m512i raw = _mm512_loadu_si512((const void *)(w + (size_t)r * rs + (size_t)(p / 2) * ps));
            nib[r][0] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m15);
            nib[r][1] = _mm512_and_si512(raw, m15);
        }
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            __m512i c[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) c[r] = _mm512_shuffle_epi8(g & 1 ? t_lo : t_hi, nib[r][g >> 1]);
#pragma GCC unroll 4
            for (int u = 0; u < U; u++) {
                const __m512i qv = _mm512_loadu_si512((const void *)(q + u * K + QK_I2S * p + 64 * g));
                const int a = U == 1 ? (g & 1) : u;
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) acc[r][a] = _mm512_dpbusd_epi32(acc[r][a], c[r], qv);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        if (U == 1) acc[r][0] = _mm512_add_epi32(acc[r][0], acc[r][1]);
    if (nb % 2) { /* the odd last block, in the low half of the accumulators (stored layout only) */
        const int64_t b = nb - 1;
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int u = 0; u < U; u++)
                acc[r][u] = _mm512_add_epi32(acc[r][u], _mm512_zextsi256_si512(i2s_block256(
                                                            w + (size_t)r * rs + 32 * b, q + u * K + QK_I2S * b)));
    }
    /* per token, the 4 rows' lane sums as one vector (integer sums: any
     * order is exact), stored whole so that the caller's 16-byte load is
     * forwarded from this store */
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) {
        __m128i x[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            if (r >= R) {
                x[r] = _mm_setzero_si128();
                continue;
            }
            const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(acc[r][u]), _mm512_extracti64x4_epi64(acc[r][u], 1));
            x[r] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        }
        _mm_storeu_si128((__m128i *)out[u], _mm_hadd_epi32(_mm_hadd_epi32(x[0], x[1]), _mm_hadd_epi32(x[2], x[3])));
    }
}

/* A decoded token (one activation vector) against 8 rows on the AVX-512
 * VNNI level: one accumulator per row, the group vectors of the token
 * loaded once per block pair for the 8 rows, and the same bytes of the
 * rows two groups on prefetched as these are read. More rows in flight than
 * the 4-row tile keeps more of the memory bus busy: a 2B model's layers
 * stream about an eighth faster. The prefetch goes to L2 (T1), not L1: on
 * the EPYC VMs of CI an L1 prefetch this far ahead halved the stream's rate
 * (a 168 MB matrix in 7.5 ms against 3.6-4.4 ms with T1; a 2B-4T token's
 * decode 20 -> 31 tok/s together with the lm_head's), presumably because
 * the few L1 fill buffers, not DRAM, then bound the requests in flight. An
 * odd last block takes the 256-bit form. In BN_LAYOUT_I2S_ROWS8 (rs = 64,
 * ps = 512, see i2s_tile512_impl) the 8 rows are one sequential stream
 * and nothing is prefetched: the hardware prefetcher follows it. Integer
 * sums only: the same integers as every other kernel. */
VNNI512_FN static void i2s_rows8_decode512(const uint8_t *w, size_t rs, size_t ps, const int8_t *q, int64_t K,
                                           int32_t out[8]) {
    const __m512i t_hi = _mm512_broadcast_i32x4(_mm_setr_epi8(I2S_NIB_HI));
    const __m512i t_lo = _mm512_broadcast_i32x4(_mm_setr_epi8(I2S_NIB_LO));
    const __m512i m15 = _mm512_set1_epi8(15);
    __m512i acc[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_si512();
    const int64_t nb = K / QK_I2S;
    for (int64_t p = 0; p + 2 <= nb; p += 2) {
        __m512i qv[4];
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) qv[g] = _mm512_loadu_si512((const void *)(q + QK_I2S * p + 64 * g));
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            /* stored layout: the same bytes of the rows two groups on (a prefetch never faults) */
            if (ps == 64) _mm_prefetch((const char *)(w + (size_t)(r + 16) * rs + 32 * p), _MM_HINT_T1);
            const __m512i raw = _mm512_loadu_si512((const void *)(w + (size_t)r * rs + (size_t)(p / 2) * ps));
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m15), lo = _mm512_and_si512(raw, m15);
            acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_shuffle_epi8(t_hi, hi), qv[0]);
            acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_shuffle_epi8(t_lo, hi), qv[1]);
            acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_shuffle_epi8(t_hi, lo), qv[2]);
            acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_shuffle_epi8(t_lo, lo), qv[3]);
        }
    }
    if (nb % 2) { /* the odd last block, in the low half of the accumulators */
        const int64_t b = nb - 1;
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            acc[r] = _mm512_add_epi32(acc[r], _mm512_zextsi256_si512(
                                                  i2s_block256(w + (size_t)r * rs + 32 * b, q + QK_I2S * b)));
    }
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) out[r] = _mm512_reduce_add_epi32(acc[r]);
}

#define I2S_TILE512_CASE(R, U)                                                                                 \
    case (R) * 8 + (U): i2s_tile512_impl(w, rs, ps, q, K, R, U, out); break;
/* Rows [r, r+R) x tokens [t, t+U) of the exact sums Σ (w+1)·q, R, U in 1..4,
 * as out[token][row]; q in the interleaved layout of i2s_interleave. */
VNNI512_FN static void i2s_tile512(const uint8_t *w, size_t rs, size_t ps, const int8_t *q, int64_t K, int R, int U,
                                   int32_t out[4][4]) {
    switch (R * 8 + U) {
        I2S_TILE512_CASE(4, 4) I2S_TILE512_CASE(4, 3) I2S_TILE512_CASE(4, 2) I2S_TILE512_CASE(4, 1)
        I2S_TILE512_CASE(3, 4) I2S_TILE512_CASE(3, 3) I2S_TILE512_CASE(3, 2) I2S_TILE512_CASE(3, 1)
        I2S_TILE512_CASE(2, 4) I2S_TILE512_CASE(2, 3) I2S_TILE512_CASE(2, 2) I2S_TILE512_CASE(2, 1)
        I2S_TILE512_CASE(1, 4) I2S_TILE512_CASE(1, 3) I2S_TILE512_CASE(1, 2) I2S_TILE512_CASE(1, 1)
    default: break;
    }
}
#undef I2S_TILE512_CASE

/* acc16 holds Σ code·q per int16 lane (byte pairs); subtracting bsums lane
 * by lane and pairing with madd gives ggml's 8 int32 lanes. */
AVX2_FN static inline __m256i q8k_finish_avx2(__m256i acc16, const int16_t *bsums) {
    acc16 = _mm256_sub_epi16(acc16, _mm256_loadu_si256((const __m256i *)bsums));
    return _mm256_madd_epi16(acc16, _mm256_set1_epi16(1));
}

AVX2_FN static __m256i tq2_lanes_avx2(const uint8_t *blk, const int8_t *q, const int16_t *bsums) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i acc16 = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(blk + 32 * h));
        for (int n = 0; n < 4; n++) {
            __m256i c = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * n), m3);
            __m256i qv = _mm256_loadu_si256((const __m256i *)(q + 128 * h + 32 * n));
            acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(c, qv));
        }
    }
    return q8k_finish_avx2(acc16, bsums);
}

AVX2_FN static __m256i codes_lanes_avx2(const uint8_t c[QK_K], const int8_t *q, const int16_t *bsums) {
    __m256i acc16 = _mm256_setzero_si256();
    for (int g = 0; g < QK_K / 32; g++) {
        __m256i cv = _mm256_loadu_si256((const __m256i *)(c + 32 * g));
        __m256i qv = _mm256_loadu_si256((const __m256i *)(q + 32 * g));
        acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(cv, qv));
    }
    return q8k_finish_avx2(acc16, bsums);
}

AVX2_FN static void tq_lanes_avx2(uint32_t type, const uint8_t *blk, const int8_t *q, const int16_t *bsums,
                                  int32_t lanes[8]) {
    uint8_t c[QK_K];
    if (type != BN_TYPE_TQ2_0) tq1_codes(blk, c);
    __m256i v = type == BN_TYPE_TQ2_0 ? tq2_lanes_avx2(blk, q, bsums) : codes_lanes_avx2(c, q, bsums);
    _mm256_storeu_si256((__m256i *)lanes, v);
}

/* A whole TQ row in ggml's GGML order: the 8 lanes stay in a register,
 * acc = fma(lanes, d, acc), hsum_float_8 at the end. */
AVX2_FN static float tq_row_avx2(uint32_t type, const uint8_t *w, size_t bb, const int8_t *q, const float *dy,
                                 const int16_t *bs, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * bb;
        __m256i lanes;
        if (type == BN_TYPE_TQ2_0) {
            lanes = tq2_lanes_avx2(blk, q + b * QK_K, bs + b * 16);
        } else {
            uint8_t c[QK_K];
            tq1_codes(blk, c);
            lanes = codes_lanes_avx2(c, q + b * QK_K, bs + b * 16);
        }
        const float d = dy[b] * _cvtsh_ss(load_u16(blk + bb - 2));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), _mm256_set1_ps(d), acc);
    }
    return hsum8_tree(acc);
}

/* ggml's mul_sum_i8_pairs: lane k = bytes 4k..4k+3 of x·y, pairs by maddubs(|x|, sign(y, x)). */
AVX2_FN static inline __m256i q8_0_lanes_vec(__m256i xv, __m256i yv) {
    const __m256i dot = _mm256_maddubs_epi16(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(yv, xv));
    return _mm256_madd_epi16(dot, _mm256_set1_epi16(1));
}

AVX2_FN static void q8_0_lanes_avx2(const int8_t *x, const int8_t *y, int32_t lanes[8]) {
    _mm256_storeu_si256((__m256i *)lanes, q8_0_lanes_vec(_mm256_loadu_si256((const __m256i *)x),
                                                         _mm256_loadu_si256((const __m256i *)y)));
}

/* n (1..8) Q8_0 rows of one token, the fma orders of elem_q8_0 (one 8-lane
 * accumulator per row, blocks in order, hsum_float_8): the same lanes as
 * q8_0_lanes_avx2 and the same d per block, so the same bits. The token's
 * block is loaded once for the rows, and the same bytes 8 rows on are
 * prefetched into L2 (see i2s_rows8_decode512) while these are read: a
 * 128256-row Q8_0 lm_head in 9-11 ms, not the 140 ms of one element (and
 * a store and reload of its lanes) at a time. */
AVX2_FN static inline void q8_0_rows_avx2_impl(const uint8_t *w, size_t row_bytes, const int8_t *q, const float *dy,
                                               int64_t nb, int n, float *out) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i yv = _mm256_loadu_si256((const __m256i *)(q + b * QK8_0));
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            if (r >= n) break;
            const uint8_t *blk = w + (size_t)r * row_bytes + (size_t)b * 34;
            _mm_prefetch((const char *)(blk + 8 * row_bytes), _MM_HINT_T1); /* never faults */
            const __m256 lanes = _mm256_cvtepi32_ps(q8_0_lanes_vec(_mm256_loadu_si256((const __m256i *)(blk + 2)), yv));
            const float d = _cvtsh_ss(load_u16(blk)) * dy[b];
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), lanes, acc[r]);
        }
    }
    for (int r = 0; r < n; r++) out[r] = hsum8_tree(acc[r]);
}

AVX2_FN static void q8_0_rows_avx2(const uint8_t *w, size_t row_bytes, const int8_t *q, const float *dy, int64_t nb,
                                   int n, float *out) {
    if (n == 8) q8_0_rows_avx2_impl(w, row_bytes, q, dy, nb, 8, out); /* the constant unrolls the rows */
    else q8_0_rows_avx2_impl(w, row_bytes, q, dy, nb, n, out);
}
#endif /* MM_X86 */

/* ------------------------------------------------------------------ */
/* Dispatch by SIMD level                                              */
/* ------------------------------------------------------------------ */

static float dense_dot(bool avx2, const void *a, op_kind ka, const void *b, op_kind kb, int64_t n,
                       const dense_alg *alg) {
#ifdef MM_X86
    if (avx2) return dense_dot_avx2(a, ka, b, kb, n, alg);
#endif
    (void)avx2;
    return dense_dot_portable(a, ka, b, kb, n, alg);
}

static int32_t i2s_dot(const mm_job *j, const uint8_t *w, const int8_t *q, int64_t K) {
#ifdef MM_X86
    if (j->avx2) switch (j->i8dot) {
        case BN_I8DOT_AVX_VNNI: return i2s_dot_avxvnni(w, q, K);
        default: return i2s_dot_avx2(w, q, K);
        }
#endif
    (void)j;
    return i2s_dot_portable(w, q, K);
}

static void tq_lanes(bool avx2, uint32_t type, const uint8_t *blk, const int8_t *q, const int16_t *bsums,
                     int32_t lanes[8]) {
    uint8_t c[QK_K];
#ifdef MM_X86
    if (avx2) {
        tq_lanes_avx2(type, blk, q, bsums, lanes);
        return;
    }
#endif
    (void)avx2;
    if (type == BN_TYPE_TQ2_0) tq2_codes(blk, c);
    else tq1_codes(blk, c);
    q8k_lanes_portable(c, q, bsums, lanes);
}

static void q8_0_lanes(bool avx2, const int8_t *x, const int8_t *y, int32_t lanes[8]) {
#ifdef MM_X86
    if (avx2) {
        q8_0_lanes_avx2(x, y, lanes);
        return;
    }
#endif
    (void)avx2;
    q8_0_lanes_portable(x, y, lanes);
}

/* ------------------------------------------------------------------ */
/* One output element per type                                         */
/* ------------------------------------------------------------------ */

/* docs/specs/i2s.md: y = ((float)acc / s) · scale. */
static float elem_i2s(const mm_job *j, int64_t r, int64_t t) {
    int32_t acc = i2s_dot(j, j->w + (size_t)r * j->row_bytes, j->q8 + t * j->K, j->K) - j->ai32[t];
    return ((float)acc / j->af[t]) * j->w_scale;
}

static void elem4_i2s(const mm_job *j, int64_t r, int64_t t, float out[4]) {
    int32_t acc[4];
    const uint8_t *w = j->w + (size_t)r * j->row_bytes;
#ifdef MM_X86
    if (j->avx2 && j->i8dot == BN_I8DOT_AVX_VNNI) i2s_dot4_avxvnni(w, j->q8 + t * j->K, j->K, acc);
    else if (j->avx2) i2s_dot4_avx2(w, j->q8 + t * j->K, j->K, acc);
    else
#endif
        for (int u = 0; u < 4; u++) acc[u] = i2s_dot_portable(w, j->q8 + (t + u) * j->K, j->K);
    for (int u = 0; u < 4; u++) out[u] = ((float)(acc[u] - j->ai32[t + u]) / j->af[t + u]) * j->w_scale;
}

/* Q8_K blocks against TQ1_0/TQ2_0 blocks: ggml's generic code sums
 * (float)sumi·d in one float (PLAIN); its AVX2 kernel keeps 8 float lanes. */
static float elem_tq(const mm_job *j, int64_t r, int64_t t) {
    const int64_t nb = j->K / QK_K;
    const size_t bb = j->ti->block_bytes;
    const uint8_t *w = j->w + (size_t)r * j->row_bytes;
    const int8_t *q = j->q8 + t * j->K;
    const float *dy = j->af + t * nb;
    const int16_t *bs = j->ai16 + t * (j->K / 16);
#ifdef MM_X86
    if (j->avx2 && j->order != BN_SUM_PLAIN) return tq_row_avx2(j->ti->type, w, bb, q, dy, bs, nb);
#endif
    float acc[8] = {0}, sumf = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * bb;
        int32_t lanes[8];
        tq_lanes(j->avx2, j->ti->type, blk, q + b * QK_K, bs + b * 16, lanes);
        const float d = dy[b] * bn_f16_to_f32(load_u16(blk + bb - 2));
        if (j->order == BN_SUM_PLAIN) {
            int32_t s = 0;
            for (int k = 0; k < 8; k++) s += lanes[k];
            sumf = sumf + (float)s * d;
        } else {
            for (int k = 0; k < 8; k++) acc[k] = fmaf((float)lanes[k], d, acc[k]);
        }
    }
    return j->order == BN_SUM_PLAIN ? sumf : reduce_lanes(acc, 8, false);
}

/* block_q8_0: f16 d, int8 qs[32]. GGML: fma per lane, hsum_float_8. */
static float elem_q8_0(const mm_job *j, int64_t r, int64_t t) {
    const int64_t nb = j->K / QK8_0;
    const uint8_t *w = j->w + (size_t)r * j->row_bytes;
    const int8_t *q = j->q8 + t * j->K;
    const float *dy = j->af + t * nb;
    float acc[8] = {0}, sumf = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * 34;
        int32_t lanes[8];
        q8_0_lanes(j->avx2, (const int8_t *)blk + 2, q + b * QK8_0, lanes);
        const float d = bn_f16_to_f32(load_u16(blk)) * dy[b];
        if (j->order == BN_SUM_PLAIN) {
            int32_t s = 0;
            for (int k = 0; k < 8; k++) s += lanes[k];
            sumf = sumf + (float)s * d;
        } else {
            for (int k = 0; k < 8; k++) acc[k] = fmaf(d, (float)lanes[k], acc[k]);
        }
    }
    return j->order == BN_SUM_PLAIN ? sumf : reduce_lanes(acc, 8, false);
}

/* Rows [r, r+n) of token t: 8 rows at a time on the AVX2 level under the
 * fma orders, else one element at a time. */
static void rows_q8_0(const mm_job *j, int64_t r, int n, int64_t t, float *out) {
#ifdef MM_X86
    if (j->avx2 && j->order != BN_SUM_PLAIN) {
        const int64_t nb = j->K / QK8_0;
        q8_0_rows_avx2(j->w + (size_t)r * j->row_bytes, j->row_bytes, j->q8 + t * j->K, j->af + t * nb, nb, n, out);
        return;
    }
#endif
    for (int i = 0; i < n; i++) out[i] = elem_q8_0(j, r + i, t);
}

/* How a dense weight row is read. */
static op_kind weight_kind(const mm_job *j) {
    return j->ti->type == BN_TYPE_F16 ? OP_F16 : j->ti->type == BN_TYPE_BF16 ? OP_BF16 : OP_F32;
}

static float elem_dense(const mm_job *j, int64_t r, int64_t t) {
    const op_kind wk = weight_kind(j);
#ifdef MM_X86
    /* F16 weights in ggml_vec_dot_f16's 16-lane order on the AVX-512 level
     * (i8dot AVX512_VNNI implies AVX-512 F/BW/VL); rows_dense takes a decoded
     * token's rows through here one at a time (see dense_vec16_f16_512) */
    if (j->avx2 && j->i8dot == BN_I8DOT_AVX512_VNNI && wk == OP_F16 && j->xk == OP_F32 &&
        j->alg.kind == DENSE_VEC && j->alg.lanes == 16)
        return dense_vec16_f16_512((const uint16_t *)(j->w + (size_t)r * j->row_bytes), j->x + t * j->K, j->K,
                                   &j->alg);
#endif
    return dense_dot(j->avx2, j->w + (size_t)r * j->row_bytes, wk, j->x + t * j->K, j->xk, j->K, &j->alg);
}

static void elem4_dense(const mm_job *j, int64_t r, int64_t t, float out[4]) {
    const op_kind wk = weight_kind(j);
    const void *w = j->w + (size_t)r * j->row_bytes;
#ifdef MM_X86
    if (j->avx2 && j->alg.kind == DENSE_TINY && j->xk == OP_F32) {
        dense_tiny4_avx2(w, wk, j->x + t * j->K, j->K, j->alg.lanes, out);
        return;
    }
#endif
    for (int u = 0; u < 4; u++) out[u] = dense_dot(j->avx2, w, wk, j->x + (t + u) * j->K, j->xk, j->K, &j->alg);
}

/* Rows [r, r+n) (n <= 8) of token t; the same bits as n elem_dense calls. */
static void rows_dense(const mm_job *j, int64_t r, int n, int64_t t, float *out) {
    int i = 0;
#ifdef MM_X86
    if (j->avx2 && j->alg.kind == DENSE_TINY && j->xk == OP_F32) {
        const op_kind wk = weight_kind(j);
        const uint8_t *w = j->w + (size_t)r * j->row_bytes;
        const float *x = j->x + t * j->K;
        if (n == 8 && wk == OP_F16 && j->alg.lanes == 16 && j->i8dot == BN_I8DOT_AVX512_VNNI) {
            dense_tiny_rows8_f16_512(w, j->row_bytes, x, j->K, out);
            return;
        }
        for (; i + 4 <= n; i += 4)
            dense_tiny_rows4_avx2(w + (size_t)i * j->row_bytes, j->row_bytes, wk, x, j->K, j->alg.lanes, out + i);
    }
#endif
    for (; i < n; i++) out[i] = elem_dense(j, r + i, t);
}

static const type_info TYPES[] = {
    {BN_TYPE_F32, 1, 4, ACT_DENSE, elem_dense, elem4_dense, rows_dense},
    {BN_TYPE_F16, 1, 2, ACT_DENSE, elem_dense, elem4_dense, rows_dense},
    /* BF16 weights widen exactly and meet f32 activations in the dense orders */
    {BN_TYPE_BF16, 1, 2, ACT_DENSE, elem_dense, elem4_dense, rows_dense},
    {BN_TYPE_Q8_0, QK8_0, 34, ACT_Q8_0, elem_q8_0, NULL, rows_q8_0},
    {BN_TYPE_TQ1_0, QK_K, 54, ACT_Q8_K, elem_tq, NULL, NULL},
    {BN_TYPE_TQ2_0, QK_K, 66, ACT_Q8_K, elem_tq, NULL, NULL},
    {BN_TYPE_I2_S, QK_I2S, 32, ACT_I8_TOKEN, elem_i2s, elem4_i2s, NULL},
};

static const type_info *find_type(uint32_t type) {
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].type == type) return &TYPES[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Activation quantization (one token per call)                        */
/* ------------------------------------------------------------------ */

/* docs/specs/i2s.md: amax in double, s = (float)(127/amax), q = clamp(round(x·s)).
 * Inlined into one quantizer per rounding, so the hot loop has no branch on
 * the mode and calls no function per element. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void quant_i8_token_with(int (*round_fn)(float), const float *x, int64_t K, int8_t *q, float *s_out,
                                       int32_t *sum_out) {
    double amax = 1e-5;
    for (int64_t i = 0; i < K; i++) {
        double a = fabs((double)x[i]);
        if (a > amax) amax = a;
    }
    const float s = (float)(127.0 / amax);
    int32_t sum = 0;
    for (int64_t i = 0; i < K; i++) {
        int v = round_fn(x[i] * s);
        v = v > 127 ? 127 : v < -128 ? -128 : v;
        q[i] = (int8_t)v;
        sum += v;
    }
    *s_out = s;
    *sum_out = sum;
}

static int round_half_away(float v) { return (int)lroundf(v); }

static void quant_i8_token_even(const float *x, int64_t K, int8_t *q, float *s_out, int32_t *sum_out) {
    quant_i8_token_with(nearest_int, x, K, q, s_out, sum_out);
}

static void quant_i8_token_away(const float *x, int64_t K, int8_t *q, float *s_out, int32_t *sum_out) {
    quant_i8_token_with(round_half_away, x, K, q, s_out, sum_out);
}

#ifdef MM_X86
/* quant_i8_token_even, 8 floats at a time: |x| max in float (exact, and
 * converted to double it is the same amax; vmaxps returns its second
 * operand for a NaN, so a NaN is skipped as `a > amax` skips it), then
 * nearest_int's very operations (x·s, + 1.5·2^23, the low mantissa bits),
 * the clamp and the sum: the same codes, scale and Σq. */
AVX2_FN static void quant_i8_token_even_avx2(const float *x, int64_t K, int8_t *q, float *s_out, int32_t *sum_out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 vmax = _mm256_set1_ps(0.0f);
    int64_t i = 0;
    for (; i + 8 <= K; i += 8) vmax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), vmax);
    float lanes[8];
    _mm256_storeu_ps(lanes, vmax);
    double amax = 1e-5;
    for (int l = 0; l < 8; l++)
        if ((double)lanes[l] > amax) amax = lanes[l];
    for (; i < K; i++) {
        const double a = fabs((double)x[i]);
        if (a > amax) amax = a;
    }
    const float s = (float)(127.0 / amax);
    const __m256 vs = _mm256_set1_ps(s), magic = _mm256_set1_ps(12582912.f);
    const __m256i mant = _mm256_set1_epi32(0x007fffff), half = _mm256_set1_epi32(0x00400000);
    const __m256i hi = _mm256_set1_epi32(127), lo = _mm256_set1_epi32(-128);
    __m256i vsum = _mm256_setzero_si256();
    for (i = 0; i + 8 <= K; i += 8) {
        const __m256 f = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), magic);
        __m256i v = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(f), mant), half);
        v = _mm256_max_epi32(_mm256_min_epi32(v, hi), lo);
        vsum = _mm256_add_epi32(vsum, v);
        const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(q + i), _mm_packs_epi16(w16, w16));
    }
    int32_t sum = hsum_i32x8(vsum);
    for (; i < K; i++) {
        int v = nearest_int(x[i] * s);
        v = v > 127 ? 127 : v < -128 ? -128 : v;
        q[i] = (int8_t)v;
        sum += v;
    }
    *s_out = s;
    *sum_out = sum;
}
#endif

static i8_token_fn *const I8_QUANTIZERS[] = {
    [BN_ROUND_HALF_EVEN] = quant_i8_token_even,
    [BN_ROUND_HALF_AWAY] = quant_i8_token_away,
};

/* ggml's quantize_row_q8_K_ref (docs/specs/ternary-llamacpp.md). */
static void quant_q8_k(const float *x, int64_t K, int8_t *q, float *d, int16_t *bsums) {
    for (int64_t b = 0; b < K / QK_K; b++, x += QK_K, q += QK_K, bsums += 16) {
        float amax = 0.0f, max = 0.0f;
        for (int i = 0; i < QK_K; i++) {
            float ax = fabsf(x[i]);
            if (ax > amax) amax = ax, max = x[i];
        }
        if (amax == 0.0f) {
            d[b] = 0.0f;
            memset(q, 0, QK_K);
            memset(bsums, 0, 16 * sizeof *bsums);
            continue;
        }
        const float iscale = -127.f / max;
        for (int i = 0; i < QK_K; i++) {
            int v = nearest_int(iscale * x[i]);
            q[i] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += q[16 * g + i];
            bsums[g] = (int16_t)s;
        }
        d[b] = 1 / iscale;
    }
}

/* ggml's x86 quantize_row_q8_0: id = 127/amax, round half to even; d is
 * stored as f16, kept here as the float it widens to. */
static void quant_q8_0(const float *x, int64_t K, int8_t *q, float *d) {
    for (int64_t b = 0; b < K / QK8_0; b++, x += QK8_0, q += QK8_0) {
        float amax = 0.0f;
        for (int i = 0; i < QK8_0; i++) amax = fmaxf(amax, fabsf(x[i]));
        d[b] = bn_f16_to_f32(bn_f32_to_f16(amax / 127.f));
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        for (int i = 0; i < QK8_0; i++) q[i] = (int8_t)nearest_int(x[i] * id);
    }
}

static void quant_task(void *ctx, int64_t t0, int64_t t1) {
    const mm_job *j = ctx;
    const int64_t K = j->K;
    for (int64_t t = t0; t < t1; t++) {
        const float *x = j->x + t * K;
        int8_t *q = j->q8 + t * K;
        switch (j->ti->act) {
        case ACT_I8_TOKEN:
            j->quant_i8(x, K, q, j->af + t, j->ai32 + t);
            if (j->q8il) i2s_interleave(q, K, j->q8il + t * K);
            break;
        case ACT_Q8_K: quant_q8_k(x, K, q, j->af + t * (K / QK_K), j->ai16 + t * (K / 16)); break;
        case ACT_Q8_0: quant_q8_0(x, K, q, j->af + t * (K / QK8_0)); break;
        case ACT_DENSE: break;
        }
    }
}

/* Tokens [t0, t1) of x rounded to f16 and back into the scratch (af): what
 * OP_F32_AS_F16 reads element by element. */
static void round_f16_task(void *ctx, int64_t t0, int64_t t1) {
    const mm_job *j = ctx;
    for (int64_t i = t0 * j->K; i < t1 * j->K; i++) j->af[i] = bn_f16_to_f32(bn_f32_to_f16(j->x[i]));
}

/* The byte offset of row r's block pair p (64 bytes) in BN_LAYOUT_I2S_ROWS8:
 * its group of 8 rows (r / 8), the pair (512 bytes per pair of the group),
 * the row's place in the pair (r % 8). The one definition of the layout. */
static inline size_t i2s_rows8_offset(size_t row_bytes, int64_t r, size_t p) {
    return (size_t)(r / 8) * 8 * row_bytes + p * 512 + (size_t)(r % 8) * 64;
}

/* An I2_S shape the layout can hold: rows a multiple of 8, k of 256. */
static bool i2s_rows8_shape(const bn_weight *w) {
    return w->type == BN_TYPE_I2_S && w->n > 0 && w->n % 8 == 0 && w->k > 0 && w->k % 256 == 0;
}

#ifdef MM_X86
/* y[i] = ((float)(acc[i] - Σq) / s) * w_scale for n outputs of token t:
 * 8 or 4 lanes at a time, the same int32 subtraction, conversion, division
 * and product per lane as elem_i2s (scalar, the divisions cost as much as a
 * sixth of a prompt). */
VNNI512_FN static void i2s_scale_out(const mm_job *j, int64_t t, const int32_t *acc, int n, float *y) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v =
            _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(acc + i)), _mm256_set1_epi32(j->ai32[t])));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_div_ps(v, _mm256_set1_ps(j->af[t])), _mm256_set1_ps(j->w_scale)));
    }
    for (; i + 4 <= n; i += 4) {
        const __m128 v = _mm_cvtepi32_ps(_mm_sub_epi32(_mm_loadu_si128((const __m128i *)(acc + i)), _mm_set1_epi32(j->ai32[t])));
        _mm_storeu_ps(y + i, _mm_mul_ps(_mm_div_ps(v, _mm_set1_ps(j->af[t])), _mm_set1_ps(j->w_scale)));
    }
    for (; i < n; i++) y[i] = ((float)(acc[i] - j->ai32[t]) / j->af[t]) * j->w_scale;
}

/* Where row r's first block pair lies: row after row in the stored
 * layout; in BN_LAYOUT_I2S_ROWS8 in its group of 8 rows (r / 8), 64 bytes
 * per row of the group before it (r % 8). r is a multiple of 8 (decode) or
 * 4 (a tile), so a kernel's rows never leave their group: the pool's
 * chunks are multiples of ROW_TILE within each weight, whose rows are a
 * multiple of 8 in this layout. */
static inline const uint8_t *i2s_row_base(const mm_job *j, int64_t r) {
    return j->w + (j->rows8 ? i2s_rows8_offset(j->row_bytes, r, 0) : (size_t)r * j->row_bytes);
}

/* I2_S on the AVX-512 VNNI level: a decoded token takes 8 rows at a time
 * (i2s_rows8_decode512), the rest tiles of 4 rows x 4 tokens (i2s_tile512).
 * TILE_BYTES of rows (in L2) meet each group of 4 tokens (in L1) in turn, so
 * a token's outputs are written as one sequential run; tokens in the inner
 * loop wrote 16 bytes into each of T lines N floats apart, which share a few
 * L1 sets and missed on every store. */
VNNI512_FN static void rows_i2s_tile512(const mm_job *j, int64_t r0, int64_t r1) {
    const size_t rs = j->rows8 ? 64 : j->row_bytes, ps = j->rows8 ? 512 : 64;
    if (j->T == 1)
        for (; r0 + 8 <= r1; r0 += 8) {
            int32_t acc[8];
            i2s_rows8_decode512(i2s_row_base(j, r0), rs, ps, j->q8il, j->K, acc);
            i2s_scale_out(j, 0, acc, 8, j->y + r0);
        }
    int64_t tile = (int64_t)(TILE_BYTES / j->row_bytes) / 4 * 4;
    if (tile < 4) tile = 4;
    for (int64_t rb = r0; rb < r1; rb += tile)
        for (int64_t t = 0; t < j->T; t += 4)
            for (int64_t r = rb; r < rb + tile && r < r1; r += 4) {
                const int R = r1 - r < 4 ? (int)(r1 - r) : 4;
                const int U = j->T - t < 4 ? (int)(j->T - t) : 4;
                int32_t acc[4][4];
                i2s_tile512(i2s_row_base(j, r), rs, ps, j->q8il + t * j->K, j->K, R, U, acc);
                for (int u = 0; u < U; u++) i2s_scale_out(j, t + u, acc[u], R, j->y + (t + u) * j->N + r);
            }
}
#endif

/* Rows [r0, r1): TILE_BYTES of weight rows at a time see every token, so
 * each weight row is read from memory once per matmul and the tokens'
 * activations once per tile (not once per 8 rows: a 256-token prompt's
 * 2.6 MB of activations against the 128256-row lm_head). */
static void rows_task(void *ctx, int64_t r0, int64_t r1) {
    const mm_job *j = ctx;
#ifdef MM_X86
    if (j->q8il) { /* I2_S on the AVX-512 VNNI level */
        rows_i2s_tile512(j, r0, r1);
        return;
    }
#endif
    int64_t tile = (int64_t)(TILE_BYTES / j->row_bytes) / ROW_TILE * ROW_TILE;
    if (tile < ROW_TILE) tile = ROW_TILE;
    for (int64_t rb = r0; rb < r1; rb += tile) {
        const int64_t re = r1 - rb < tile ? r1 : rb + tile;
        int64_t t = 0;
        if (j->ti->dot4)
            for (; t + 4 <= j->T; t += 4)
                for (int64_t r = rb; r < re; r++) {
                    float out[4];
                    j->ti->dot4(j, r, t, out);
                    for (int u = 0; u < 4; u++) j->y[(t + u) * j->N + r] = out[u];
                }
        for (; t < j->T; t++) {
            int64_t r = rb;
            if (j->ti->dot_rows)
                for (; r < re; r += 8) {
                    const int n = re - r < 8 ? (int)(re - r) : 8;
                    float out[8];
                    j->ti->dot_rows(j, r, n, t, out);
                    for (int i = 0; i < n; i++) j->y[t * j->N + r + i] = out[i];
                }
            for (; r < re; r++) j->y[t * j->N + r] = j->ti->dot(j, r, t);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

size_t bn_matmul_scratch_bytes(const bn_weight *w, int64_t T) {
    const type_info *ti = w ? find_type(w->type) : NULL;
    scratch_hdr h;
    if (!ti || T < 1 || w->k < 1 || w->k % ti->block != 0 || !scratch_layout(ti, T, w->k, &h)) return 0;
    return h.total;
}

/* The summation of dense rows for an order (see the top comment). */
static void dense_plan(const type_info *ti, int64_t T, int64_t K, const bn_matmul_opts *o, mm_job *j) {
    const bool w16 = ti->type == BN_TYPE_F16;
    if (o->graph_T > 0) T = o->graph_T;
    if (o->order == BN_SUM_PLAIN) {
        j->alg = (dense_alg){DENSE_SEQ, 1, false, false, false};
        j->xk = o->act_f16 ? OP_F32_AS_F16 : OP_F32;
        return;
    }
    const int L = o->order == BN_SUM_GGML_AVX2 ? 8 : 16;
    if (o->f16_gemm && w16 && T >= 2 && K % L == 0) {
        j->alg = (dense_alg){DENSE_TINY, L, false, false, false};
        j->xk = OP_F32_AS_F16;
    } else if (T >= 2 && !o->act_f16 && K % L == 0) {
        j->alg = (dense_alg){DENSE_TINY, L, false, false, false};
        j->xk = OP_F32;
    } else {
        j->alg = (dense_alg){DENSE_VEC, L, L == 8, w16, o->order != BN_SUM_GGML_NOFMA};
        j->xk = (w16 || o->act_f16) ? OP_F32_AS_F16 : OP_F32;
    }
}

/* The best int8 dot kernel for a CPU's bn_cpu_int8_dot bits. */
static bn_i8dot i8dot_of(unsigned cpu) {
    return cpu & BN_CPU_AVX512_VNNI ? BN_I8DOT_AVX512_VNNI : cpu & BN_CPU_AVX_VNNI ? BN_I8DOT_AVX_VNNI : BN_I8DOT_MADDUBS;
}

static bn_status resolve_simd(bn_pool *pool, bn_simd want, bool *avx2, bn_error *err) {
    bn_simd s = want == BN_SIMD_AUTO ? bn_pool_simd(pool) : want;
    if (s != BN_SIMD_PORTABLE && s != BN_SIMD_AVX2)
        return bn_error_set(err, BN_ERR_INVALID, "matmul: unknown SIMD level %d", (int)s);
    if (s == BN_SIMD_AVX2 && bn_simd_best() != BN_SIMD_AVX2)
        return bn_error_set(err, BN_ERR_INVALID, "matmul: AVX2 kernels requested but this CPU lacks AVX2/FMA/F16C");
    *avx2 = s == BN_SIMD_AVX2;
    return BN_OK;
}

/* The weights of one bn_matmul_n call, each an mm_job sharing the
 * quantized activations, and their rows numbered one after another. */
typedef struct mm_jobs {
    int n;
    mm_job j[BN_MATMUL_MAX_WEIGHTS];
    int64_t first[BN_MATMUL_MAX_WEIGHTS + 1]; /* global index of each job's row 0; first[n] = all rows */
} mm_jobs;

/* Global rows [r0, r1): the part in each job. */
static void rows_task_n(void *ctx, int64_t r0, int64_t r1) {
    const mm_jobs *m = ctx;
    for (int i = 0; i < m->n; i++) {
        const int64_t a = r0 > m->first[i] ? r0 : m->first[i], b = r1 < m->first[i + 1] ? r1 : m->first[i + 1];
        if (a < b) rows_task((void *)&m->j[i], a - m->first[i], b - m->first[i]);
    }
}

bn_status bn_matmul_n(bn_pool *pool, int n, const bn_weight *w, const float *x, int64_t T, float *const *y,
                      const bn_matmul_opts *opts, void *scratch, size_t scratch_bytes, bn_error *err) {
    static const bn_matmul_opts plain = {.order = BN_SUM_PLAIN, .simd = BN_SIMD_AUTO};
    const bn_matmul_opts *o = opts ? opts : &plain;
    if (n < 1 || n > BN_MATMUL_MAX_WEIGHTS || !w || !y)
        return bn_error_set(err, BN_ERR_INVALID, "matmul: %d weights (1..%d) or NULL weight/output arrays", n,
                            BN_MATMUL_MAX_WEIGHTS);
    for (int i = 0; i < n; i++) {
        if (!w[i].data || !y[i])
            return bn_error_set(err, BN_ERR_INVALID, "matmul: NULL data or output of weight %d", i);
        if (w[i].layout != w[0].layout || w[i].layout > BN_LAYOUT_I2S_ROWS8)
            return bn_error_set(err, BN_ERR_INVALID, "matmul: weight %d has layout %u, weight 0 %u (one call shares it)",
                                i, (unsigned)w[i].layout, (unsigned)w[0].layout);
        if (w[i].layout == BN_LAYOUT_I2S_ROWS8 && !i2s_rows8_shape(&w[i]))
            return bn_error_set(err, BN_ERR_INVALID,
                                "matmul: weight %d (%s, k=%lld, n=%lld) cannot be in the 8-row I2_S layout", i,
                                bn_type_name(w[i].type), (long long)w[i].k, (long long)w[i].n);
        if (w[i].type != w[0].type || w[i].k != w[0].k)
            return bn_error_set(err, BN_ERR_INVALID,
                                "matmul: weight %d is %s k=%lld, weight 0 %s k=%lld (one call shares type and k)", i,
                                bn_type_name(w[i].type), (long long)w[i].k, bn_type_name(w[0].type),
                                (long long)w[0].k);
    }
    if (!x || !scratch) return bn_error_set(err, BN_ERR_INVALID, "matmul: NULL input or scratch");
    const type_info *ti = find_type(w->type);
    if (!ti)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "matmul: weight type %s has no matmul kernel",
                            bn_type_name(w->type));
    for (int i = 0; i < n; i++)
        if (T < 1 || w[i].n < 1 || w[i].k < 1 || w[i].k % ti->block != 0)
            return bn_error_set(err, BN_ERR_INVALID,
                                "matmul: bad shape %s k=%lld n=%lld T=%lld (k must be a positive multiple of %lld)",
                                bn_type_name(w->type), (long long)w[i].k, (long long)w[i].n, (long long)T,
                                (long long)ti->block);
    if (o->order > BN_SUM_GGML_NOFMA)
        return bn_error_set(err, BN_ERR_INVALID, "matmul: unknown summation order %d", (int)o->order);
    if ((unsigned)o->act_round >= sizeof I8_QUANTIZERS / sizeof I8_QUANTIZERS[0])
        return bn_error_set(err, BN_ERR_INVALID, "matmul: unknown activation rounding %d", (int)o->act_round);
    scratch_hdr h;
    if (!scratch_layout(ti, T, w->k, &h) || scratch_bytes < h.total || (uintptr_t)scratch % 8 != 0)
        return bn_error_set(err, BN_ERR_INVALID,
                            "matmul: scratch of %zu bytes at %p too small or misaligned (need %zu, 8-byte aligned)",
                            scratch_bytes, scratch, h.total);
    mm_jobs m = {.n = n};
    mm_job *j0 = &m.j[0];
    *j0 = (mm_job){.ti = ti, .w = w->data, .row_bytes = (size_t)(w->k / ti->block) * ti->block_bytes,
                   .K = w->k, .N = w->n, .T = T, .x = x, .y = y[0], .order = o->order};
    bn_status st = resolve_simd(pool, o->simd, &j0->avx2, err);
    if (st != BN_OK) return st;
    if ((unsigned)o->i8dot > BN_I8DOT_AVX_VNNI)
        return bn_error_set(err, BN_ERR_INVALID, "matmul: unknown int8 dot kernel %d", (int)o->i8dot);
    if (o->i8dot != BN_I8DOT_AUTO && !bn_i8dot_supported(o->i8dot))
        return bn_error_set(err, BN_ERR_INVALID, "matmul: int8 dot kernel %s requested but this CPU lacks it",
                            bn_i8dot_name(o->i8dot));
    if (o->i8dot != BN_I8DOT_AUTO) {
        j0->i8dot = o->i8dot;
    } else { /* the pool's record of the CPU: no feature query per matmul */
        j0->i8dot = i8dot_of(bn_pool_cpu_int8_dot(pool));
    }

    uint8_t *base = scratch;
    memcpy(base, &h, sizeof h);
    j0->q8 = (int8_t *)(base + h.q8_off);
    j0->af = (float *)(base + h.f_off);
    j0->ai32 = (int32_t *)(base + h.i_off);
    j0->ai16 = (int16_t *)(base + h.i_off);
#ifdef MM_X86
    if (ti->act == ACT_I8_TOKEN && j0->avx2 && j0->i8dot == BN_I8DOT_AVX512_VNNI) j0->q8il = (int8_t *)(base + h.il_off);
#endif
    /* the 8-row layout is read by the AVX-512 VNNI kernels alone */
    j0->rows8 = w->layout == BN_LAYOUT_I2S_ROWS8;
    if (j0->rows8 && !j0->q8il)
        return bn_error_set(err, BN_ERR_INVALID,
                            "matmul: an I2_S weight in the 8-row layout needs the AVX-512 VNNI kernels, not the %s "
                            "level's %s", j0->avx2 ? "AVX2" : "portable", bn_i8dot_name(j0->i8dot));
    if (ti->act == ACT_I8_TOKEN) {
        j0->quant_i8 = I8_QUANTIZERS[o->act_round];
#ifdef MM_X86
        if (j0->avx2 && o->act_round == BN_ROUND_HALF_EVEN) j0->quant_i8 = quant_i8_token_even_avx2;
#endif
    }
    if (ti->act == ACT_DENSE) {
        dense_plan(ti, T, w->k, o, j0);
        if (j0->xk == OP_F32_AS_F16) { /* round once here, not once per weight row: the same values */
            bn_pool_parallel_for(pool, T, 1, round_f16_task, j0);
            j0->x = j0->af;
            j0->xk = OP_F32;
        }
    } else {
        bn_pool_parallel_for(pool, T, 1, quant_task, j0);
    }
    /* the other weights: the same activations, their own rows, output and scale */
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            m.j[i] = *j0;
            m.j[i].w = w[i].data;
            m.j[i].N = w[i].n;
            m.j[i].y = y[i];
        }
        if (ti->act == ACT_I8_TOKEN) /* one float right after all the codes */
            memcpy(&m.j[i].w_scale, m.j[i].w + (size_t)(w[i].n * w[i].k / 4), sizeof m.j[i].w_scale);
        m.first[i + 1] = m.first[i] + w[i].n;
    }

    /* chunks of a quarter of a thread's share (8 on 2 threads), rounded to
     * ROW_TILE: claimed dynamically, they keep both threads busy to the end
     * of a matmul (every output element is computed alone, so the partition
     * never changes a bit). 2B-4T decode measured alike with 4 chunks and
     * no faster with 32 (ABBA runs, December 2026): the pool's spin is mostly the
     * caller's serial ops, not a matmul's uneven end */
    const int64_t rows = m.first[n], threads = bn_pool_size(pool);
    int64_t grain = (rows + threads * 4 - 1) / (threads * 4);
    grain = (grain + ROW_TILE - 1) / ROW_TILE * ROW_TILE;
    if (n == 1) bn_pool_parallel_for(pool, rows, grain, rows_task, j0);
    else bn_pool_parallel_for(pool, rows, grain, rows_task_n, &m);
    return BN_OK;
}

bool bn_weight_fits_i2s_rows8(const bn_weight *w) {
    return w && w->layout == BN_LAYOUT_ROWS && i2s_rows8_shape(w);
}

/* Row r of an I2_S weight in the 8-row layout, gathered into row (its
 * k/4 bytes as stored). */
static void i2s_rows8_gather(const bn_weight *w, int64_t r, uint8_t *row) {
    const size_t rb = (size_t)w->k / 4;
    for (size_t p = 0; p < rb / 64; p++) memcpy(row + p * 64, (const uint8_t *)w->data + i2s_rows8_offset(rb, r, p), 64);
}

void bn_weight_pack_i2s_rows8(bn_weight *w, void *data, void *tmp) {
    const size_t rb = (size_t)w->k / 4;
    for (int64_t g = 0; g < w->n / 8; g++) {
        uint8_t *group = (uint8_t *)data + (size_t)g * 8 * rb;
        /* the group's rows into tmp at their places; tmp starts where the group does */
        for (int64_t i = 0; i < 8; i++)
            for (size_t p = 0; p < rb / 64; p++)
                memcpy((uint8_t *)tmp + i2s_rows8_offset(rb, i, p), group + (size_t)i * rb + p * 64, 64);
        memcpy(group, tmp, 8 * rb);
    }
    w->layout = BN_LAYOUT_I2S_ROWS8;
}

bn_status bn_weight_dequantize_rows(const bn_weight *w, int64_t r0, int64_t count, float *out, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "dequantize: NULL weight");
    if (w->layout == BN_LAYOUT_ROWS) return bn_dequantize_rows(w->type, w->data, w->k, w->n, r0, count, out, err);
    if (w->layout != BN_LAYOUT_I2S_ROWS8 || !i2s_rows8_shape(w))
        return bn_error_set(err, BN_ERR_INVALID, "dequantize: a %s weight k=%lld n=%lld in layout %u",
                            bn_type_name(w->type), (long long)w->k, (long long)w->n, (unsigned)w->layout);
    if (r0 < 0 || count < 0 || r0 > w->n - count)
        return bn_error_set(err, BN_ERR_INVALID, "dequantize: rows [%lld, +%lld) of %lld", (long long)r0,
                            (long long)count, (long long)w->n);
    /* each row gathered into the stored layout with the tensor's scale after
     * it: a tensor of one row for bn_dequantize_rows */
    const size_t rb = (size_t)w->k / 4;
    uint8_t *row = malloc(rb + sizeof(float));
    if (!row) return bn_error_nomem(err, rb + sizeof(float), "dequantize: a row of %lld I2_S codes", (long long)w->k);
    memcpy(row + rb, (const uint8_t *)w->data + (size_t)w->n * rb, sizeof(float));
    bn_status st = BN_OK;
    for (int64_t i = 0; i < count && !st; i++) {
        i2s_rows8_gather(w, r0 + i, row);
        st = bn_dequantize_rows(BN_TYPE_I2_S, row, w->k, 1, 0, 1, out + i * w->k, err);
    }
    free(row);
    return st;
}

bn_status bn_matmul(bn_pool *pool, const bn_weight *w, const float *x, int64_t T, float *y,
                    const bn_matmul_opts *opts, void *scratch, size_t scratch_bytes, bn_error *err) {
    if (!w || !y) return bn_error_set(err, BN_ERR_INVALID, "matmul: NULL weight, data, input, output or scratch");
    return bn_matmul_n(pool, 1, w, x, T, &y, opts, scratch, scratch_bytes, err);
}

static const scratch_hdr *last_hdr(const void *scratch) {
    const scratch_hdr *h = scratch;
    return h && h->magic == SCRATCH_MAGIC && h->type == BN_TYPE_I2_S ? h : NULL;
}

const int8_t *bn_matmul_scratch_q8(const void *scratch, int64_t *T, int64_t *K) {
    const scratch_hdr *h = last_hdr(scratch);
    if (!h) return NULL;
    if (T) *T = h->T;
    if (K) *K = h->K;
    return (const int8_t *)((const uint8_t *)scratch + h->q8_off);
}

const float *bn_matmul_scratch_act_scales(const void *scratch) {
    const scratch_hdr *h = last_hdr(scratch);
    return h ? (const float *)((const uint8_t *)scratch + h->f_off) : NULL;
}

bool bn_i8dot_supported(bn_i8dot k) {
    switch (k) {
    case BN_I8DOT_AUTO: case BN_I8DOT_MADDUBS: return true;
#ifdef MM_X86
    case BN_I8DOT_AVX512_VNNI: return bn_cpu_has_avx512_vnni();
    case BN_I8DOT_AVX_VNNI: return bn_cpu_has_avx_vnni();
#else
    case BN_I8DOT_AVX512_VNNI: case BN_I8DOT_AVX_VNNI: return false;
#endif
    }
    return false;
}

bn_i8dot bn_i8dot_best(void) { return i8dot_of(bn_cpu_int8_dot()); }

const char *bn_i8dot_name(bn_i8dot k) {
    switch (k) {
    case BN_I8DOT_AUTO: return "auto";
    case BN_I8DOT_MADDUBS: return "maddubs";
    case BN_I8DOT_AVX512_VNNI: return "avx512-vnni";
    case BN_I8DOT_AVX_VNNI: return "avx-vnni";
    }
    return "unknown";
}

/* A concrete level is the caller's promise (bn_pool_simd checked it once):
 * attention calls these millions of times per prompt, so no CPU query here. */
static bool resolve_dot_simd(bn_simd simd) {
    if (simd == BN_SIMD_AUTO) simd = bn_simd_best();
    return simd == BN_SIMD_AVX2;
}

static dense_alg dot_alg(bn_sum_order order, bool tail_double) {
    if (order == BN_SUM_PLAIN) return (dense_alg){DENSE_SEQ, 1, false, false, false};
    const int L = order == BN_SUM_GGML_AVX2 ? 8 : 16;
    return (dense_alg){DENSE_VEC, L, L == 8, tail_double, order != BN_SUM_GGML_NOFMA};
}

/* How a bn_dot_kind sums and reads b: ggml_vec_dot order, or tinyBLAS
 * when the kind may take it and n is a multiple of the lanes. */
static void dot_plan(bn_dot_kind kind, bn_sum_order order, int64_t n, dense_alg *alg, op_kind *kb) {
    const bool f16 = kind != BN_DOT_F32 && kind != BN_DOT_F32_TINY;
    *alg = dot_alg(order, f16);
    *kb = kind == BN_DOT_F32 || kind == BN_DOT_F32_TINY ? OP_F32 : OP_F16;
    if (kind == BN_DOT_F16_F32) *kb = order == BN_SUM_PLAIN ? OP_F32 : OP_F32_AS_F16;
    if (kind != BN_DOT_F32 && kind != BN_DOT_F16 && alg->kind == DENSE_VEC && n % alg->lanes == 0) {
        *alg = (dense_alg){DENSE_TINY, alg->lanes, false, false, false}; /* tinyBLAS applies */
        if (kind == BN_DOT_F16_F32) *kb = OP_F32;
    }
}

void bn_dot_rows(bn_dot_kind kind, const void *a, int64_t stride, int64_t count, const void *b, int64_t n,
                 bn_sum_order order, bn_simd simd, float *out) {
    const bool f16 = kind != BN_DOT_F32 && kind != BN_DOT_F32_TINY;
    dense_alg alg;
    op_kind kb;
    dot_plan(kind, order, n, &alg, &kb);
    const bool avx2 = resolve_dot_simd(simd);
    const size_t row = (size_t)stride * (f16 ? sizeof(uint16_t) : sizeof(float));
    int64_t i = 0;
#ifdef MM_X86
    /* F16 x F16 in the 16-lane order, where the AVX-512 level exists (the
     * query reads libgcc's cpuid record, taken once per process) */
    if (avx2 && f16 && kb == OP_F16 && alg.kind == DENSE_VEC && alg.lanes == 16 && alg.tail_double &&
        count >= 4 && bn_cpu_has_avx512_vnni())
        for (; i + 4 <= count; i += 4)
            dot_f16_rows4_512((const uint8_t *)a + (size_t)i * row, row, b, n, out + i);
    if (avx2 && alg.kind == DENSE_VEC && alg.tail_double && n % (4 * alg.lanes) != 0)
        for (; i + 4 <= count; i += 4)
            vec_tail_double_rows4_avx2((const uint8_t *)a + (size_t)i * row, row, f16 ? OP_F16 : OP_F32, b, kb, n,
                                       &alg, out + i);
#endif
    for (; i < count; i++)
        out[i] = dense_dot(avx2, (const uint8_t *)a + (size_t)i * row, f16 ? OP_F16 : OP_F32, b, kb, n, &alg);
}

/* The single dot products: one row of bn_dot_rows. */
static float dot1(bn_dot_kind kind, const void *a, const void *b, int64_t n, bn_sum_order order, bn_simd simd) {
    float out;
    bn_dot_rows(kind, a, 0, 1, b, n, order, simd, &out);
    return out;
}

float bn_dot_f32(const float *a, const float *b, int64_t n, bn_sum_order order, bn_simd simd) {
    return dot1(BN_DOT_F32, a, b, n, order, simd);
}

float bn_dot_f16(const uint16_t *a, const uint16_t *b, int64_t n, bn_sum_order order, bn_simd simd) {
    return dot1(BN_DOT_F16, a, b, n, order, simd);
}

float bn_dot_f32_tiny(const float *a, const float *b, int64_t n, bn_sum_order order, bn_simd simd) {
    return dot1(BN_DOT_F32_TINY, a, b, n, order, simd);
}

float bn_dot_f16_tiny(const uint16_t *a, const uint16_t *b, int64_t n, bn_sum_order order, bn_simd simd) {
    return dot1(BN_DOT_F16_TINY, a, b, n, order, simd);
}

float bn_dot_f16_f32(const uint16_t *a, const float *b, int64_t n, bn_sum_order order, bn_simd simd) {
    return dot1(BN_DOT_F16_F32, a, b, n, order, simd);
}

void bn_dot_rows4(bn_dot_kind kind, const void *a, int64_t stride, int64_t count, const float *b, int64_t n,
                  bn_sum_order order, bn_simd simd, float *out, int64_t out_stride) {
#ifdef MM_X86
    dense_alg alg;
    op_kind kb;
    dot_plan(kind, order, n, &alg, &kb);
    const bool f16 = kind == BN_DOT_F16_F32;
    if ((f16 || kind == BN_DOT_F32_TINY) && alg.kind == DENSE_TINY && kb == OP_F32 && resolve_dot_simd(simd)) {
        /* tinyBLAS, b as float: one row x 4 vectors (dense_tiny4_avx2) */
        const size_t row = (size_t)stride * (f16 ? sizeof(uint16_t) : sizeof(float));
        for (int64_t i = 0; i < count; i++) {
            float o[4];
            dense_tiny4_avx2((const uint8_t *)a + (size_t)i * row, f16 ? OP_F16 : OP_F32, b, n, alg.lanes, o);
            for (int u = 0; u < 4; u++) out[u * out_stride + i] = o[u];
        }
        return;
    }
#endif
    for (int u = 0; u < 4; u++) bn_dot_rows(kind, a, stride, count, b + u * n, n, order, simd, out + u * out_stride);
}

/* ------------------------------------------------------------------ */
/* What runs, for receipts                                             */
/* ------------------------------------------------------------------ */

char *bn_matmul_kernel_name(uint32_t type, bn_simd want, char *buf, size_t size) {
    static const char *const acts[] = {[ACT_DENSE] = "f32", [ACT_I8_TOKEN] = "int8/token",
                                       [ACT_Q8_K] = "q8_k", [ACT_Q8_0] = "q8_0"};
    const type_info *ti = find_type(type);
    const bn_simd s = want == BN_SIMD_AUTO ? bn_simd_best() : want;
    char name[32];
    bn_type_name_lower(type, name, sizeof name);
    if (!ti) snprintf(buf, size, "%s: no kernel", name);
    else snprintf(buf, size, "%s x %s, %s", name, acts[ti->act], bn_simd_name(s));
    return buf;
}
