/* forward.h — an inference context over a bound model: KV cache, scratch
 * buffers, thread pool, tap hooks, and the forward pass (forward.c). */
#ifndef BITNET_FORWARD_H
#define BITNET_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet/matmul.h"
#include "bitnet/model.h"
#include "bitnet/progress.h"
#include "bitnet/status.h"
#include "bitnet/taps.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ggml-compat: bitnet.cpp's CPU arithmetic (its AVX-512 ggml build): F16 KV
 * cache, the f16 roundings bitnet.cpp applies (q before q·kᵀ, p before p·V
 * in single-token decode, lm_head input in decode), KV length padded to 32 —
 * results can match bitnet.cpp bit for bit. f32: F32 KV cache, no f16
 * roundings, no padding, plain index-order sums. llama.cpp-compat: upstream
 * llama.cpp's CPU arithmetic (the same ggml orders, an f32 KV cache by
 * default, padded to 256 cells, and its sgemm rules: docs/design.md). */
typedef enum bn_numerics { BN_NUMERICS_GGML_COMPAT, BN_NUMERICS_F32, BN_NUMERICS_LLAMACPP_COMPAT } bn_numerics;

/* The K/V cache's element type. AUTO follows the numerics mode: f16 in
 * ggml-compat (with its KV padding and the f16 rounding of q and p), f32 in
 * the other modes. An explicit type overrides the mode for the attention only
 * (llama.cpp-compat with f16: upstream's f16 cache, its default). */
typedef enum bn_kv_type { BN_KV_AUTO, BN_KV_F16, BN_KV_F32 } bn_kv_type;

const char *bn_numerics_name(bn_numerics n);
/* The K and V cache types a context with bn_ctx_params' kv_type, v_type and
 * numerics uses: K AUTO is f16 under ggml-compat (bitnet.cpp's cache), f32
 * otherwise; V AUTO follows K. */
void bn_kv_types_resolve(bn_kv_type kv_type, bn_kv_type v_type, bn_numerics numerics, bn_kv_type *k, bn_kv_type *v);
/* The K and V cache types of "f16", "f32" (both), "K f32, V f16" (the
 * settings.kv_cache of a bitnet.cpp / llama.cpp dump) or "f32,f16" (K, V);
 * false for anything else. */
bool bn_kv_type_parse(const char *s, bn_kv_type *k, bn_kv_type *v);
/* settings.kv_cache of those parameters (resolved as above): "f16" or "f32",
 * or "K f32, V f16" when the two differ (the form bitnet.cpp's and llama.cpp's
 * dumps write); bn_kv_type_parse reads all three back. */
const char *bn_kv_cache_name(bn_kv_type kv_type, bn_kv_type v_type, bn_numerics numerics);
bool bn_numerics_parse(const char *s, bn_numerics *out);

typedef struct bn_ctx_params {
    int n_threads;             /* >= 1 */
    bn_numerics numerics;
    int64_t n_ctx;             /* KV capacity in positions; 0 = min(context_length, 4096) */
    bn_kv_type kv_type;        /* the K cache; BN_KV_AUTO: as the numerics mode says */
    bn_kv_type v_type;         /* the V cache; BN_KV_AUTO: as kv_type */
    int64_t rope_pos_offset;   /* added to every position RoPE sees (0: positions count from 0) */
    bn_act_round act_round;    /* rounding of I2_S int8 activations (bitnet/matmul.h) */
    const bn_tap_set *observe; /* NULL: nothing observed */
    bn_tap_fn observe_fn;
    void *observe_user;
    const bn_tap_set *inject;  /* NULL: nothing injected; a tap both observed and injected is observed first */
    bn_tap_fn inject_fn;
    void *inject_user;
    const volatile sig_atomic_t *cancel; /* NULL: never; polled before every block (status.h) */
    bn_progress_sink progress; /* told before every block: stage "evaluating", done = blocks of this
                                  evaluation finished, total = n_layer, unit "layers" */
} bn_ctx_params;

/* Defaults: 1 thread, ggml-compat, no taps, the K/V type of the mode, ggml's
 * rounding (half to even), positions from 0. */
bn_ctx_params bn_ctx_params_init(void);

typedef struct bn_ctx bn_ctx;

/* The largest KV capacity a context supports, in positions. */
#define BN_CTX_MAX 4096

/* The KV capacity n_ctx = 0 stands for: the model's context_length, at most
 * BN_CTX_MAX. Under ggml-compat the capacity caps the KV padding and so
 * decides the order of attention's sums: a run that must reproduce another
 * bit for bit uses the same capacity (bn_session_run owns that rule). */
int64_t bn_ctx_model_n_ctx(const bn_model *m);

bn_status bn_ctx_create(const bn_model *m, const bn_ctx_params *p, bn_ctx **out, bn_error *err);
void bn_ctx_free(bn_ctx *c);

/* Evaluates T tokens at positions n_past..n_past+T-1, appending them to the
 * KV cache; logits of every token are then in bn_ctx_logits ([T, V]).
 * Taps fire with eval = the number of earlier evaluations since the last
 * reset. Fails (and leaves the cache unchanged) when a token id is out of
 * range or the cache is full, and with BN_ERR_CANCELLED when the params'
 * cancel flag is found set before a block. */
bn_status bn_ctx_eval(bn_ctx *c, const int32_t *tokens, int64_t T, bn_error *err);

/* As bn_ctx_eval, but the lm_head runs only for tokens [logits_first,
 * logits_first + n_logits) of the batch (generation needs the last one):
 * those rows have the bits bn_ctx_eval gives them (the summation order stays
 * the whole batch's), and bn_ctx_logits holds just them, [n_logits, V].
 * When the logits tap is observed or injected every row is computed (the tap
 * is the batch's). The range must lie in [0, T) with n_logits >= 1. */
bn_status bn_ctx_eval_logits(bn_ctx *c, const int32_t *tokens, int64_t T, int64_t logits_first, int64_t n_logits,
                             bn_error *err);

/* The logits of the last evaluation: rows for tokens bn_ctx_logits_first ..
 * + bn_ctx_n_logits - 1 ([T, V] after bn_ctx_eval). */
const float *bn_ctx_logits(const bn_ctx *c);
int64_t bn_ctx_logits_first(const bn_ctx *c);
int64_t bn_ctx_n_logits(const bn_ctx *c);
/* Token t's row of the last evaluation's logits; NULL when not computed. */
const float *bn_ctx_logits_row(const bn_ctx *c, int64_t t);
int64_t bn_ctx_n_past(const bn_ctx *c);
int64_t bn_ctx_n_ctx(const bn_ctx *c);
/* Empties the KV cache and the evaluation counter. */
void bn_ctx_reset(bn_ctx *c);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_FORWARD_H */
