/* session.c — the loop behind record, replay, run and perplexity; see
 * session.h. */
#include "bitnet/session.h"

int64_t bn_session_n_ctx(const bn_model *m, const bn_session_params *p) {
    if (p->ctx.n_ctx > 0) return p->ctx.n_ctx;
    /* The model's own context unless the sequence needs more: a smaller cache
     * would change ggml-compat's KV padding, and with it the sums' order,
     * against a recording made at the default. */
    const int64_t n_default = bn_ctx_model_n_ctx(m);
    if (p->n_positions <= 0) return n_default;
    const int64_t n_grown = p->n_positions <= n_default ? n_default : p->n_positions < BN_CTX_MAX ? p->n_positions
                                                                                                   : BN_CTX_MAX;
    /* Then no more than the sequence needs, rounded up to 256 positions: the
     * transposed V cache keeps one row of n_ctx positions per dim, and a
     * decoded token reads a few cache lines of each, 8 KB apart at n_ctx 4096
     * (2B-4T: decode ~6 % slower than with the rows 512 bytes apart). The
     * sums' order depends on the capacity only through min(padded length,
     * n_ctx), and a multiple of 256 that holds every position is at least
     * any padded length the sequence reaches (both paddings, 32 and 256,
     * divide 256): every evaluation sees the KV length n_grown gives. */
    const int64_t n_fit = (p->n_positions + 255) / 256 * 256;
    return n_fit < n_grown ? n_fit : n_grown;
}

bn_status bn_session_run(const bn_model *m, const bn_session_params *p, bn_error *err) {
    bn_ctx_params cp = p->ctx;
    cp.n_ctx = bn_session_n_ctx(m, p);
    bn_faulted *faulted = NULL;
    bn_ctx *c = NULL;
    bn_status st = bn_fault_apply(m, p->fault, &cp, &faulted, err);
    if (!st) st = bn_ctx_create(bn_faulted_model(faulted), &cp, &c, err);
    for (int64_t k = 0; !st; k++) {
        bn_session_step step = {0};
        st = p->step(p->user, k, c, &step, err);
        if (st || step.n_tokens <= 0) break;
        if (step.reset) bn_ctx_reset(c);
        st = step.n_logits ? bn_ctx_eval_logits(c, step.tokens, step.n_tokens, step.logits_first, step.n_logits, err)
                           : bn_ctx_eval(c, step.tokens, step.n_tokens, err);
    }
    bn_ctx_free(c);
    bn_faulted_free(faulted);
    return st;
}
