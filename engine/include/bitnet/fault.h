/* fault.h — seeded bugs (bitparity trace --fault NAME): each reproduces a
 * real porting mistake, so that the parity driver can be shown to localize
 * and name it (tests/test_localize.cc, ci/demo.sh).
 *
 * The forward pass and the kernels know nothing about faults. A fault is
 * applied before the context is made, in one of three ways (the table in
 * fault.c gives each fault's way):
 *   - a transform of the bound model: a copy whose hyper-parameters or
 *     weights carry the mistake (norm weights scaled, SiLU for relu², the
 *     other RoPE pairing, LayerNorm, sub-norms dropped, I2_S scales clamped,
 *     attn_output transposed);
 *   - a context option that is a genuine numeric variant (f32 K/V cache,
 *     int8 activations rounded half away from zero, RoPE positions shifted);
 *   - an edit of a tapped value on the tap stream (Q/K heads permuted, a NaN
 *     injected), through the observe and inject hooks of the context (so not
 *     in a BITPARITY_NO_TAPS benchmark build, which has no taps).
 *
 *     bn_ctx_params p = bn_ctx_params_init();
 *     p.observe = ...;                  // set hooks first: the fault wraps them
 *     bn_faulted *f;
 *     bn_fault_apply(m, BN_FAULT_SILU, &p, &f, &err);
 *     bn_ctx_create(bn_faulted_model(f), &p, &ctx, &err);
 *     ...
 *     bn_ctx_free(ctx);
 *     bn_faulted_free(f);               // after the context that uses it
 */
#ifndef BITNET_FAULT_H
#define BITNET_FAULT_H

#include <stdbool.h>

#include "bitnet/forward.h"
#include "bitnet/model.h"
#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* The CLI name of a fault ("silu", "none"); "?" when f is out of range. */
const char *bn_fault_name(bn_fault f);

/* Parses a CLI name; false (and *out untouched) when it names no fault. */
bool bn_fault_parse(const char *s, bn_fault *out);

/* One line saying what the fault does, for help texts, and where it does
 * nothing when that can be (i2s-scale-clamp, round-away); "?" when f is out
 * of range. */
const char *bn_fault_description(bn_fault f);

/* Where the fault first shows in a trace of a model with sub-norms and every
 * tap selected (opt-in ones included): a tap name ("blk.0.ffn_act",
 * "blk.1.ffn_sub_norm"). For a fault that bites only on some models
 * (i2s-scale-clamp, round-away: the description says which), the tap where
 * it shows on a model it bites at block 0's first projection, as on
 * fixtures/models/b158-i2s-edge.gguf; "nowhere" for BN_FAULT_NONE, "?" when f
 * is out of range. */
const char *bn_fault_first_tap(bn_fault f);

/* A fault applied to one model: owns the transformed copy of the model and
 * the state of the tap edits. */
typedef struct bn_faulted bn_faulted;

/* Applies fault f to model m and to the context parameters *p. On success
 * *out is the applied fault: create the context with bn_faulted_model(*out)
 * and the updated *p, and free *out only after that context. m and the tap
 * sets and hook state *p refers to must outlive *out. BN_FAULT_NONE changes
 * nothing (the model is m itself). Fails with INVALID (f out of range),
 * UNSUPPORTED (the model cannot carry the fault, e.g. transpose-wo with a
 * non-square attn_output) or NOMEM (naming what and how many bytes); *p is
 * then unchanged and *out NULL. */
bn_status bn_fault_apply(const bn_model *m, bn_fault f, bn_ctx_params *p, bn_faulted **out, bn_error *err);

/* The model to create the context with (m itself, or its faulted copy). */
const bn_model *bn_faulted_model(const bn_faulted *f);

/* Frees the copy and the hook state; NULL is a no-op. */
void bn_faulted_free(bn_faulted *f);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_FAULT_H */
