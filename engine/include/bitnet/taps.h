/* taps.h — named tap points of the forward pass (docs/design.md, "Canonical tap
 * names"). A tap set says which taps of a model are selected; the forward
 * pass calls the observe hook (record) and/or the inject hook (override the
 * value before the graph continues) only for selected taps, so an unselected
 * tap costs one predictable branch on a precomputed table. */
#ifndef BITNET_TAPS_H
#define BITNET_TAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-block taps in evaluation order, then the projections' int8 input taps
 * (`blk.N.<proj>.in_q8` / `.in_scale`, one pair per projection in bn_proj
 * order), then the global taps. */
typedef enum bn_tap_kind {
    BN_TAP_ATTN_NORM,
    BN_TAP_ATTN_Q,
    BN_TAP_ATTN_K,
    BN_TAP_ATTN_V,
    BN_TAP_ATTN_Q_ROPE,
    BN_TAP_ATTN_K_ROPE,
    BN_TAP_ATTN_SCORES, /* opt-in */
    BN_TAP_ATTN_PROBS,  /* opt-in */
    BN_TAP_ATTN_CTX,
    BN_TAP_ATTN_SUB_NORM,
    BN_TAP_ATTN_OUT,
    BN_TAP_FFN_INP,
    BN_TAP_FFN_NORM,
    BN_TAP_FFN_GATE,
    BN_TAP_FFN_UP,
    BN_TAP_FFN_ACT,
    BN_TAP_FFN_SUB_NORM,
    BN_TAP_FFN_OUT,
    BN_TAP_OUT,
    BN_TAP_IN_Q8_FIRST,                       /* + 2*proj: in_q8, + 2*proj + 1: in_scale (opt-in) */
    BN_TAP_BLOCK_KINDS = BN_TAP_IN_Q8_FIRST + 14,
    BN_TAP_TOKEN_EMBD = BN_TAP_BLOCK_KINDS,   /* global taps */
    BN_TAP_OUTPUT_NORM,
    BN_TAP_LOGITS,
    BN_TAP_KIND_COUNT
} bn_tap_kind;

typedef enum bn_tap_dtype { BN_TAP_F32, BN_TAP_I8 } bn_tap_dtype;

/* One firing of a tap. `data` is the engine's own buffer: an observer reads
 * it, an injector overwrites it (same dtype and shape). */
typedef struct bn_tap {
    const char *name;     /* "blk.3.attn_q", "logits" */
    int layer;            /* -1 for global taps */
    bn_tap_kind kind;
    int64_t eval;         /* evaluation index: 0 = first evaluation (prompt), 1.. decode steps */
    int64_t p0;           /* position of the first token of the evaluation */
    bn_tap_dtype dtype;
    int ndim;             /* 1..3 */
    int64_t shape[3];     /* row-major, token-major */
    void *data;
} bn_tap;

/* A hook returns BN_OK or an error that aborts the evaluation. */
typedef bn_status (*bn_tap_fn)(void *user, bn_tap *tap, bn_error *err);

typedef struct bn_tap_set bn_tap_set;

/* Builds the selection for a model with `n_layer` blocks from a
 * comma-separated list of globs (fnmatch: *, ?, [..]). globs == NULL selects
 * the default set: every tap except the opt-in ones (attn_scores,
 * attn_probs, in_q8, in_scale). A glob that matches no tap is an error (it
 * is almost always a typo). */
bn_status bn_tap_set_create(int64_t n_layer, const char *globs, bn_tap_set **out, bn_error *err);
void bn_tap_set_free(bn_tap_set *s);
/* The empty selection (nothing fires). */
bn_status bn_tap_set_none(int64_t n_layer, bn_tap_set **out, bn_error *err);

/* A copy of s to extend with bn_tap_set_add, or the empty selection when s
 * is NULL; n_layer must be s's block count (INVALID otherwise). */
bn_status bn_tap_set_copy(const bn_tap_set *s, int64_t n_layer, bn_tap_set **out, bn_error *err);
/* Selects one more tap; false (nothing changed) when the set has no such
 * tap (layer out of range, a global kind with a layer or the reverse). */
bool bn_tap_set_add(bn_tap_set *s, int layer, bn_tap_kind kind);

bool bn_tap_set_has(const bn_tap_set *s, int layer, bn_tap_kind kind);
/* Dense table for the forward pass: index (layer + 1) * BN_TAP_KIND_COUNT + kind. */
const bool *bn_tap_set_table(const bn_tap_set *s);
int64_t bn_tap_set_count(const bn_tap_set *s);

/* "attn_q", "attn_q.in_q8", "token_embd"... */
const char *bn_tap_kind_name(bn_tap_kind kind);
bool bn_tap_kind_opt_in(bn_tap_kind kind);
/* Writes the full name of (layer, kind) into buf; returns buf. */
char *bn_tap_name(char *buf, size_t size, int layer, bn_tap_kind kind);
/* Parses a canonical tap name; false when it is not one. */
bool bn_tap_parse(const char *name, int *layer, bn_tap_kind *kind);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_TAPS_H */
