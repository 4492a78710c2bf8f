/* matmul.h — y = W·x for every weight type of the engine, with the activation
 * handling and (optionally) the float summation order of the references.
 *
 * Activation handling follows the weight type:
 *   I2_S          per-token int8 (docs/specs/i2s.md), exact integer dot products;
 *   TQ1_0, TQ2_0  per-256-block Q8_K (docs/specs/ternary-llamacpp.md);
 *   Q8_0          per-32-block Q8_0 like ggml's x86 quantize_row_q8_0;
 *   F16, F32      dense float (F16 weights widened exactly to f32).
 *
 * Every output element is computed entirely by one thread, so results never
 * depend on the thread count, and the AVX2 and portable kernels give
 * bit-identical results (they implement the same arithmetic).
 *
 * Summation orders (BN_SUM_GGML, established on the shared bitnet.cpp traces,
 * which come from an AVX-512 build of ggml — see the comment in matmul.c):
 *   dense, T >= 2, f32 activations, K % 16 == 0: llamafile tinyBLAS, one
 *     16-lane FMA accumulator per output, halving-tree reduction;
 *   otherwise: ggml_vec_dot_f32 / ggml_vec_dot_f16 with 4 x 16-lane FMA
 *     accumulators (F16 weights: activations rounded to f16 first, because
 *     ggml converts them to its vec_dot_type).
 */
#ifndef BITNET_MATMUL_H
#define BITNET_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/status.h"
#include "bitnet/threads.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a weight's bytes are laid out in memory. */
typedef enum bn_weight_layout {
    BN_LAYOUT_ROWS = 0,  /* as stored in GGUF: row after row */
    BN_LAYOUT_I2S_ROWS8, /* I2_S codes regrouped by 8 rows (bn_weight_pack_i2s_rows8); the scale stays last */
} bn_weight_layout;

typedef struct bn_weight {
    uint32_t type;    /* ggml type id (bitnet/quant.h) */
    const void *data; /* the whole tensor (I2_S: codes, then the f32 scale) */
    int64_t k;        /* ne0 = inputs per row (multiple of the type's block) */
    int64_t n;        /* ne1 = outputs (rows) */
    uint32_t layout;  /* bn_weight_layout; 0 = as stored */
} bn_weight;

/* Whether w can take BN_LAYOUT_I2S_ROWS8: I2_S in the stored layout, rows a
 * multiple of 8 and k of 256 (whole 64-byte block pairs per row). */
bool bn_weight_fits_i2s_rows8(const bn_weight *w);

/* Regroups the codes of w (which must fit, see above) at data, w's own
 * bytes made writable by the caller, in place: rows 8r..8r+7 keep their
 * 8 x k/4 bytes, interleaved by 64-byte block pair (pair p of row 8r+i at
 * 512p + 64i), so that a decoded token reads each group of 8 rows as one
 * sequential stream, not 8 streams of k/4 bytes that the hardware
 * prefetcher barely follows. The scale and every integer sum stay as they
 * were: the same bits from every kernel that takes the layout. Sets
 * w->layout. tmp: 8 * k/4 bytes of scratch. */
void bn_weight_pack_i2s_rows8(bn_weight *w, void *data, void *tmp);

/* Rows [r0, r0 + count) of w as floats, whatever w's layout (quant.h's
 * bn_dequantize_rows for the stored one); out: [count, k]. INVALID on a
 * range outside w, UNSUPPORTED for a type without dequantization, NOMEM. */
bn_status bn_weight_dequantize_rows(const bn_weight *w, int64_t r0, int64_t count, float *out, bn_error *err);

typedef enum bn_sum_order {
    BN_SUM_PLAIN = 0,     /* float sums in index order: ggml's generic C code
                             for the quantized types; one sequential float
                             accumulator for F32/F16 */
    BN_SUM_GGML = 1,      /* ggml on AVX-512 (the shared bitnet.cpp traces):
                             16-lane orders for F32/F16; the quantized types
                             use ggml's AVX2 kernels (8 lanes), which ggml also
                             runs on AVX-512 machines */
    BN_SUM_GGML_AVX2 = 2, /* ggml built for AVX2 only: as GGML but with 8 lanes
                             and the AVX2 reductions for F32/F16 (read from
                             ggml's source; no trace to confirm it) */
    BN_SUM_GGML_NOFMA = 3, /* as GGML, but the float tail of ggml_vec_dot_f32
                             adds rounded products: upstream llama.cpp's build
                             (bitnet.cpp's compiler fuses `sumf += x*y` into an
                             fma; both established on the shared traces) */
} bn_sum_order;

/* How x·s is rounded to the I2_S int8 activations: half to even as ggml
 * (nearest_int), or half away from zero as a port using lroundf does. */
typedef enum bn_act_round { BN_ROUND_HALF_EVEN = 0, BN_ROUND_HALF_AWAY = 1 } bn_act_round;

/* The int8 dot-product instructions of the AVX2 level's I2_S kernels. All
 * give the same integers (exact sums), hence the same bits; AUTO takes the
 * best the CPU has (bn_i8dot_best). The portable level ignores it. */
typedef enum bn_i8dot {
    BN_I8DOT_AUTO = 0,
    BN_I8DOT_MADDUBS = 1,      /* AVX2 vpmaddubsw + vpmaddwd */
    BN_I8DOT_AVX512_VNNI = 2,  /* vpdpbusd on 512-bit tiles of 4 rows x 4 tokens
                                  (AVX-512 F/BW/VL + VNNI) */
    BN_I8DOT_AVX_VNNI = 3,     /* vpdpbusd, AVX-VNNI (VEX) */
} bn_i8dot;

/* Whether this CPU runs kernel k (AUTO and MADDUBS: always; the VNNI ones
 * need the AVX2 level too). */
bool bn_i8dot_supported(bn_i8dot k);
/* AVX512_VNNI, else AVX_VNNI, else MADDUBS. */
bn_i8dot bn_i8dot_best(void);
/* "auto", "maddubs", "avx512-vnni", "avx-vnni" ("unknown" otherwise). */
const char *bn_i8dot_name(bn_i8dot k);

typedef struct bn_matmul_opts {
    bn_sum_order order;     /* see above */
    bool act_f16;           /* F32/F16 weights: round activations to f16 first
                               (always implied by GGML orders when ggml would) */
    bn_simd simd;           /* BN_SIMD_AUTO: the pool's level */
    bn_act_round act_round; /* I2_S weights; chooses the quantizer once per call */
    bool f16_gemm;          /* F16 weights, GGML orders, T >= 2: activations
                               rounded to f16, then tinyBLAS, as upstream
                               llama.cpp's sgemm takes only f16 x f16 (read from
                               its source; the shared traces have no F16 weights) */
    bn_i8dot i8dot;         /* I2_S integer kernel of the AVX2 level; AUTO: the best */
    int64_t graph_T;        /* the batch size the references' graph has, which
                               picks the F32/F16 summation (tinyBLAS for >= 2):
                               a caller computing only some rows of a batch
                               (the last position's logits) passes the whole
                               batch's T so those rows keep their bits; 0: T */
} bn_matmul_opts;

/* Bytes of caller-owned scratch bn_matmul needs for w and T tokens: a small
 * header, the quantized activations ([T,K] int8) and their scales ([T] for
 * I2_S, [T,K/256] + block sums for Q8_K, [T,K/32] for Q8_0), or a [T,K]
 * f16-rounded copy for F32/F16. 0 when the shape or type is invalid. */
size_t bn_matmul_scratch_bytes(const bn_weight *w, int64_t T);

/* y[t*n + j] = Σ_i W[j,i]·x[t*k + i] for t < T, j < n, with the activation
 * handling of W's type (opts NULL = BN_SUM_PLAIN, no f16 rounding, pool's SIMD
 * level). x: [T,k] floats, y: [T,n] floats (must not overlap x). scratch:
 * at least bn_matmul_scratch_bytes(w, T) bytes, 64-byte alignment
 * recommended. Never allocates. Fails with INVALID (bad shape, too little
 * scratch, a SIMD level the CPU lacks, an unknown order or rounding) or
 * UNSUPPORTED (type). pool may be NULL
 * (runs on the caller). */
bn_status bn_matmul(bn_pool *pool, const bn_weight *w, const float *x, int64_t T, float *y,
                    const bn_matmul_opts *opts, void *scratch, size_t scratch_bytes,
                    bn_error *err);

/* bn_matmul for n (1..BN_MATMUL_MAX_WEIGHTS) weights w[0..n) of one type and
 * one k that read the same x (Q, K and V; gate and up): y[i] = x · w[i]ᵀ.
 * The activations are quantized once and the rows of all the weights are
 * one pass over the pool, so the results are those of n bn_matmul calls, bit
 * for bit, with one synchronization instead of n. scratch as for w[0]. */
#define BN_MATMUL_MAX_WEIGHTS 4
bn_status bn_matmul_n(bn_pool *pool, int n, const bn_weight *w, const float *x, int64_t T, float *const *y,
                      const bn_matmul_opts *opts, void *scratch, size_t scratch_bytes, bn_error *err);

/* The int8 activations [T,K] and per-token scales [T] (s = 127/amax) of the
 * last I2_S bn_matmul that used this scratch, for the in_q8/in_scale taps;
 * NULL when the last matmul in it was not I2_S. T and K are written when the
 * pointers are not NULL. */
const int8_t *bn_matmul_scratch_q8(const void *scratch, int64_t *T, int64_t *K);
const float *bn_matmul_scratch_act_scales(const void *scratch);

/* Dot products with ggml's orders, for the attention products of the
 * forward pass. BN_SUM_PLAIN: one float accumulator in index order.
 *   bn_dot_f32     GGML: ggml_vec_dot_f32 (what ggml uses for f32 x f32 when
 *                  tinyBLAS does not apply).
 *   bn_dot_f16     f16 x f16 (k·q with the q row already rounded to f16);
 *                  GGML: ggml_vec_dot_f16, tail summed in double.
 *   bn_dot_f16_f32 f16 x f32 (V·p of a prompt); GGML: tinyBLAS when n is a
 *                  multiple of the lane count, else ggml's fallback (b rounded
 *                  to f16, then bn_dot_f16).
 * simd: a concrete level the CPU supports (bn_pool_simd); AUTO detects. */
float bn_dot_f32(const float *a, const float *b, int64_t n, bn_sum_order order, bn_simd simd);
float bn_dot_f16(const uint16_t *a, const uint16_t *b, int64_t n, bn_sum_order order,
                 bn_simd simd);
float bn_dot_f16_f32(const uint16_t *a, const float *b, int64_t n, bn_sum_order order,
                     bn_simd simd);
/* f32 x f32 as ggml's tinyBLAS sums it (one FMA accumulator of the order's
 * lanes, then the halving-tree hsum) when n is a multiple of the lanes, else
 * as bn_dot_f32: upstream llama.cpp's p·V of a prompt, which goes through
 * tinyBLAS (contiguous probabilities, n >= 2 tokens). */
float bn_dot_f32_tiny(const float *a, const float *b, int64_t n, bn_sum_order order, bn_simd simd);
/* f16 x f16 as tinyBLAS sums it when n is a multiple of the lanes, else as
 * bn_dot_f16: upstream llama.cpp's prompt attention over an f16 cache. */
float bn_dot_f16_tiny(const uint16_t *a, const uint16_t *b, int64_t n, bn_sum_order order, bn_simd simd);

/* Which of the dot products above bn_dot_rows computes. */
typedef enum bn_dot_kind {
    BN_DOT_F32,      /* bn_dot_f32 */
    BN_DOT_F16,      /* bn_dot_f16 */
    BN_DOT_F32_TINY, /* bn_dot_f32_tiny */
    BN_DOT_F16_TINY, /* bn_dot_f16_tiny */
    BN_DOT_F16_F32,  /* bn_dot_f16_f32 (b is float) */
} bn_dot_kind;

/* out[i] = the `kind` dot product of row i of a (rows `stride` elements
 * apart, f32 or f16 as the kind says) with b, for i < count: the bits of
 * count separate calls, with the SIMD level and summation resolved once
 * (attention's q·k over the cache and p·V over the dims). */
void bn_dot_rows(bn_dot_kind kind, const void *a, int64_t stride, int64_t count, const void *b, int64_t n,
                 bn_sum_order order, bn_simd simd, float *out);

/* bn_dot_rows for four vectors b + u·n (u < 4, floats: BN_DOT_F32_TINY or
 * BN_DOT_F16_F32) into out + u·out_stride: the bits of four bn_dot_rows
 * calls; where tinyBLAS applies, each row of a is loaded once for the four
 * (a prompt's p·V, four query positions of one head at a time). */
void bn_dot_rows4(bn_dot_kind kind, const void *a, int64_t stride, int64_t count, const float *b, int64_t n,
                  bn_sum_order order, bn_simd simd, float *out, int64_t out_stride);

/* The kernel bn_matmul runs for weights of `type` at SIMD level `want`
 * (AUTO: this CPU's best, as the pool detects it), for receipts:
 * "<weight> x <activations>, <level>" with the weight type as ggml spells it,
 * e.g. "i2_s x int8/token, avx2", "f32 x f32, portable"; "<type>: no kernel"
 * for a type bn_matmul refuses. Writes at most size bytes to buf; returns buf. */
char *bn_matmul_kernel_name(uint32_t type, bn_simd want, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_MATMUL_H */
