/* ops.h — element-wise and row operations of the forward pass, with the
 * float operations in the order ggml performs them (bitnet-graph.md), so
 * that ggml-compat results can be bit-identical. Internal to the engine. */
#ifndef BITNET_OPS_H
#define BITNET_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet/simd.h"

/* y[t] = x[t] / sqrt(mean(x[t]^2) + eps) for T rows of n; sum of float
 * squares accumulated in double, scale = 1.0f/sqrtf((float)mean + eps).
 * layernorm = true subtracts the row mean first (hp.block_norm = BN_NORM_LAYER). */
void bn_op_rms_norm(float *y, const float *x, int64_t T, int64_t n, float eps, bool layernorm);
/* y[t][i] *= w[i] */
void bn_op_mul_rows(float *y, const float *w, int64_t T, int64_t n);
/* y[i] += x[i] */
void bn_op_add(float *y, const float *x, int64_t n);
/* y[i] *= s */
void bn_op_scale(float *y, float s, int64_t n);
/* Rounds every value to f16 precision and back (ggml's f16 storage). */
void bn_op_round_f16(float *y, int64_t n);

/* RoPE over T rows of n_heads heads of D values; position of row t is
 * pos0 + t. neox: pairs (i, i + D/2); else (2i, 2i + 1). cos/sin of
 * theta_i = pos * base^(-2i/D) with theta built by repeated float
 * multiplication, as ggml's rope cache does. */
void bn_op_rope(float *x, int64_t T, int64_t n_heads, int64_t D, int64_t pos0, float base, bool neox);

/* ggml's vectorized expf (ggml_v_expf, max error 1.45 ulp) for a build with
 * `lanes` = 8 (AVX2) or 16 (AVX-512) float lanes, one lane in portable C
 * with identical bits. */
float bn_op_ggml_expf(float x, int lanes);

/* In-place softmax of one row of n logits with ggml's soft_max_ext: x*scale
 * (+ mask, already -inf in x for masked columns), max, exp via
 * ggml_v_expf in chunks of `lanes` (libm expf for the tail), each chunk's
 * tree sum added in double,
 * then multiplied by (float)(1/sum). simd: AVX2 (or AUTO on such a CPU) runs
 * the same code with fmaf as the FMA instruction; PORTABLE calls libm's
 * fmaf; the bits are the same. */
void bn_op_softmax_ggml(float *x, int64_t n, float scale, int lanes, bn_simd simd);

/* y = relu(g)^2 * u (relu2) or silu(g) * u (silu: ggml_v_silu on full
 * vectors of `lanes`, libm expf on each row's tail), T rows of n; simd as
 * for bn_op_softmax_ggml. */
void bn_op_glu(float *y, const float *g, const float *u, int64_t T, int64_t n, bool relu2, int lanes, bn_simd simd);

#endif
