/* session.h — the one loop that drives a context through a list of
 * evaluations. Recording a trace, replaying one, generating text and scoring
 * perplexity windows differ only in where each evaluation's tokens come from
 * and what is done with its logits; the context they run in (its KV
 * capacity, hence ggml-compat's KV padding and the order of attention's sums)
 * is decided here, once, so that a replay runs exactly as the recording did.
 *
 * The caller supplies the evaluations one at a time through a callback that
 * sees the context after the previous evaluation (its logits): a list known
 * in advance, greedy steps, sampled steps or independent windows. */
#ifndef BITNET_SESSION_H
#define BITNET_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet/fault.h"
#include "bitnet/forward.h"
#include "bitnet/model.h"
#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The next evaluation: n_tokens tokens appended at the context's position
 * (after emptying the KV cache when reset). n_tokens = 0 ends the run. */
typedef struct bn_session_step {
    const int32_t *tokens; /* must stay valid until the next callback */
    int64_t n_tokens;
    bool reset;
    /* Logits of tokens [logits_first, logits_first + n_logits) only
     * (bn_ctx_eval_logits); n_logits = 0: every token's. */
    int64_t logits_first, n_logits;
} bn_session_step;

/* Called before evaluation k (k = 0, 1, ...) and once after the last: c is
 * the context after evaluation k-1 (bn_ctx_logits, bn_ctx_n_past), fresh for
 * k = 0. Fills *step; a non-OK status stops the run with that status. */
typedef bn_status (*bn_session_step_fn)(void *user, int64_t k, const bn_ctx *c, bn_session_step *step,
                                        bn_error *err);

typedef struct bn_session_params {
    bn_ctx_params ctx;    /* threads, numerics, taps; n_ctx 0: decided as below */
    bn_fault fault;       /* a seeded fault applied to the model and ctx (bn_fault_apply); NONE: none */
    int64_t n_positions;  /* the most positions one sequence uses, when known in advance (0: unknown) */
    bn_session_step_fn step;
    void *user;
} bn_session_params;

/* The KV capacity a session runs with: ctx.n_ctx when set; else the model's
 * default (bn_ctx_model_n_ctx), grown to n_positions (at most BN_CTX_MAX)
 * when the sequence is known to need more, then cut to n_positions rounded
 * up to 256 when that is less. Every evaluation's KV length (ggml-compat's
 * and llama.cpp-compat's padded lengths, hence the order of attention's
 * sums) is the same as at the model's default: the cut only moves the
 * cache's rows closer together. */
int64_t bn_session_n_ctx(const bn_model *m, const bn_session_params *p);

/* Applies p->fault to (a copy of) m and the context params, creates a context
 * with bn_session_n_ctx, runs the evaluations the
 * step callback gives until it gives none, and frees the context. Stops at
 * the first failing evaluation (context full, token out of range) or
 * callback with its status. */
bn_status bn_session_run(const bn_model *m, const bn_session_params *p, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_SESSION_H */
