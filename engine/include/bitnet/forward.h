/* forward.h — an inference context over a bound model: KV cache, scratch
 * buffers, thread pool, tap hooks, and the forward pass (forward.c). */
#ifndef BITNET_FORWARD_H
#define BITNET_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet/model.h"
#include "bitnet/status.h"
#include "bitnet/taps.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ggml-compat: F16 KV cache, the f16 roundings bitnet.cpp applies (q before
 * q·kᵀ, p before p·V in single-token decode, lm_head input in decode), KV
 * length padded to 32 — results can match bitnet.cpp bit for bit.
 * f32: F32 KV cache, no f16 roundings, no padding. */
typedef enum bn_numerics { BN_NUMERICS_GGML_COMPAT, BN_NUMERICS_F32 } bn_numerics;

/* Seeded bugs (bitparity trace --fault): each reproduces a real porting
 * mistake so the parity driver can be shown to localize and name it. */
typedef enum bn_fault {
    BN_FAULT_NONE,
    BN_FAULT_GAMMA_INV_SQRT_H, /* norm weights scaled by 1/sqrt(H) */
    BN_FAULT_SILU,             /* SiLU instead of relu^2 */
    BN_FAULT_LAYERNORM,        /* LayerNorm (mean subtracted) instead of RMSNorm */
    BN_FAULT_NO_SUBNORM,       /* sub-norms skipped */
    BN_FAULT_I2S_SCALE_CLAMP,  /* ternary weight scale clamped to [1e-3, 1e3] and rescaled */
    BN_FAULT_ROPE_NORMAL,      /* RoPE pairing swapped (NEOX <-> normal) */
    BN_FAULT_ROPE_POS_SHIFT,   /* RoPE positions off by one */
    BN_FAULT_QK_HEAD_PERM,     /* Q heads permuted (pairs swapped) */
    BN_FAULT_ROUND_AWAY,       /* int8 activation rounding half away from zero */
    BN_FAULT_KV_F32,           /* K/V cache kept in f32 under ggml-compat */
    BN_FAULT_NAN,              /* a NaN appears in blk.1's FFN activation */
    BN_FAULT_TRANSPOSE_WO,     /* attn_output weights used transposed (square layers only) */
    BN_FAULT_COUNT
} bn_fault;

const char *bn_numerics_name(bn_numerics n);
bool bn_numerics_parse(const char *s, bn_numerics *out);
const char *bn_fault_name(bn_fault f);
bool bn_fault_parse(const char *s, bn_fault *out);

typedef struct bn_ctx_params {
    int n_threads;             /* >= 1 */
    bn_numerics numerics;
    int64_t n_ctx;             /* KV capacity in positions; 0 = min(context_length, 4096) */
    bn_fault fault;
    const bn_tap_set *observe; /* NULL: nothing observed */
    bn_tap_fn observe_fn;
    void *observe_user;
    const bn_tap_set *inject;  /* NULL: nothing injected; a tap both observed and injected is observed first */
    bn_tap_fn inject_fn;
    void *inject_user;
} bn_ctx_params;

/* Defaults: 1 thread, ggml-compat, no taps, no fault. */
bn_ctx_params bn_ctx_default_params(void);

typedef struct bn_ctx bn_ctx;

/* The largest KV capacity a context supports, in positions. */
#define BN_CTX_MAX 4096

/* The KV capacity n_ctx = 0 stands for: the model's context_length, at most
 * BN_CTX_MAX. Under ggml-compat the capacity caps the KV padding and so
 * decides the order of attention's sums: a run that must reproduce another
 * bit for bit uses the same capacity (bn_session_run owns that rule). */
int64_t bn_ctx_default_n_ctx(const bn_model *m);

bn_status bn_ctx_create(const bn_model *m, const bn_ctx_params *p, bn_ctx **out, bn_error *err);
void bn_ctx_free(bn_ctx *c);

/* Evaluates T tokens at positions n_past..n_past+T-1, appending them to the
 * KV cache; logits of every token are then in bn_ctx_logits ([T, V]).
 * Taps fire with eval = the number of earlier evaluations since the last
 * reset. Fails (and leaves the cache unchanged) when a token id is out of
 * range or the cache is full. */
bn_status bn_ctx_eval(bn_ctx *c, const int32_t *tokens, int64_t T, bn_error *err);

const float *bn_ctx_logits(const bn_ctx *c); /* [T, V] of the last evaluation */
int64_t bn_ctx_n_past(const bn_ctx *c);
int64_t bn_ctx_n_ctx(const bn_ctx *c);
/* Empties the KV cache and the evaluation counter. */
void bn_ctx_reset(bn_ctx *c);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_FORWARD_H */
