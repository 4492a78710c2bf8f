/* replay.c — the engine re-run with the reference's values injected, which
 * says where an error is born; see replay.h. */
#include "parity/replay.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/forward.h"
#include "bitnet/session.h"
#include "bitnet/taps.h"

typedef struct replay_ctx {
    const parity_tapview *rv;
    const parity_trace *rt;    /* the reference trace: its evaluations are replayed */
    const parity_policy *policy;
    parity_replay_result *out;
    size_t cap;
    /* the reference value of the tap being fired (observe, then inject) */
    int64_t cached_eval;
    char cached_name[64];
    parity_tensor cached;
    bool cached_found;
} replay_ctx;

/* The reference's value of (eval, name), loaded once per tap firing. */
static bn_status replay_ref(replay_ctx *c, const bn_tap *tap, bn_error *err) {
    if (c->cached_eval == tap->eval && !strcmp(c->cached_name, tap->name)) return BN_OK;
    parity_tensor_free(&c->cached);
    c->cached_eval = tap->eval;
    snprintf(c->cached_name, sizeof c->cached_name, "%s", tap->name);
    const int64_t i = parity_tapview_find(c->rv, tap->eval, tap->name);
    c->cached_found = i >= 0;
    return i >= 0 ? parity_tapview_load(c->rv, tap->eval, i, &c->cached, err) : BN_OK;
}

/* The rows of the engine's tap that the reference covers: a pruned
 * reference holds only the last rows. false when shapes disagree. */
static bool replay_rows(const replay_ctx *c, const bn_tap *tap, size_t *offset) {
    size_t n = 1;
    for (int d = 0; d < tap->ndim; d++) n *= (size_t)tap->shape[d];
    if (!c->cached_found || tap->dtype != BN_TAP_F32 || c->cached.n > n || c->cached.n == 0) return false;
    *offset = n - c->cached.n;
    return true;
}

static bn_status replay_observe(void *user, bn_tap *tap, bn_error *err) {
    replay_ctx *c = user;
    size_t off;
    bn_status st = replay_ref(c, tap, err);
    if (st || !replay_rows(c, tap, &off)) return st;
    parity_metrics m;
    if ((st = parity_metrics_compute((const float *)tap->data + off, c->cached.data, c->cached.n, NULL, &m, err)))
        return st;
    const parity_limits lim = parity_policy_resolve(c->policy, tap->name);
    const parity_check chk = parity_policy_check(&lim, &m, NULL);
    parity_replay_result *o = c->out;
    if (o->n_taps == c->cap) {
        const size_t cap = c->cap ? 2 * c->cap : 256;
        parity_replay_tap *t = realloc(o->taps, cap * sizeof *t);
        if (!t) return bn_error_nomem(err, cap * sizeof *t, "replay: the results of %zu taps", cap);
        o->taps = t, c->cap = cap;
    }
    parity_replay_tap *rt = &o->taps[o->n_taps++];
    memset(rt, 0, sizeof *rt);
    rt->eval = tap->eval;
    snprintf(rt->name, sizeof rt->name, "%s", tap->name);
    rt->layer = tap->layer;
    rt->pass = chk.pass;
    rt->nmse = m.nmse;
    rt->check = chk;
    if (!chk.pass && o->first_local < 0) o->first_local = (int64_t)o->n_taps - 1;
    return BN_OK;
}

static bn_status replay_inject(void *user, bn_tap *tap, bn_error *err) {
    replay_ctx *c = user;
    size_t off;
    bn_status st = replay_ref(c, tap, err);
    if (!st && replay_rows(c, tap, &off)) memcpy((float *)tap->data + off, c->cached.data, c->cached.n * sizeof(float));
    return st;
}

/* The session's evaluations: the reference's, which must be consecutive. */
static bn_status replay_step(void *user, int64_t k, const bn_ctx *ctx, bn_session_step *step, bn_error *err) {
    replay_ctx *c = user;
    if (k >= parity_trace_eval_count(c->rt)) return BN_OK;
    const parity_eval *ev = parity_trace_eval(c->rt, k);
    if (ev->p0 != bn_ctx_n_past(ctx))
        return bn_error_set(err, BN_ERR_INVALID, "replay: %s evaluation e%lld starts at position %lld, the replay is "
                            "at %lld", parity_trace_path(c->rt), (long long)k, (long long)ev->p0,
                            (long long)bn_ctx_n_past(ctx));
    *step = (bn_session_step){.tokens = ev->tokens, .n_tokens = ev->n_tokens};
    return BN_OK;
}

/* Which tap of the comparison is blk.N.out of evaluation k. */
static const parity_tap_result *result_tap(const parity_compare_result *r, int64_t k, const char *name) {
    for (size_t i = 0; i < r->n_taps; i++)
        if (r->taps[i].eval == k && !strcmp(r->taps[i].name, name)) return &r->taps[i];
    return NULL;
}

static bn_status classify_blocks(parity_compare_result *r, parity_replay_result *o, bn_error *err) {
    o->blocks = calloc((size_t)(r->n_evals * (size_t)(r->n_layer > 0 ? r->n_layer : 1)), sizeof *o->blocks);
    if (!o->blocks)
        return bn_error_nomem(err, (size_t)(r->n_evals * (size_t)(r->n_layer > 0 ? r->n_layer : 1)) * sizeof *o->blocks,
                              "replay: the block verdicts");
    for (size_t e = 0; e < r->n_evals; e++)
        for (int l = 0; l < r->n_layer; l++) {
            const int64_t k = r->evals[e].eval;
            int failed = 0;
            for (size_t i = 0; i < r->n_taps; i++)
                failed |= r->taps[i].eval == k && r->taps[i].layer == l &&
                          (r->taps[i].status == PARITY_TAP_FAIL || r->taps[i].status == PARITY_TAP_SHAPE_MISMATCH);
            if (!failed) continue;
            char out_name[64];
            snprintf(out_name, sizeof out_name, "blk.%d.out", l);
            const parity_tap_result *t = result_tap(r, k, out_name);
            const parity_replay_tap *rt = NULL;
            for (size_t i = 0; i < o->n_taps; i++)
                if (o->taps[i].eval == k && !strcmp(o->taps[i].name, out_name)) rt = &o->taps[i];
            if (!rt) continue;
            o->blocks[o->n_blocks++] = (parity_replay_block){k, l, 1, !rt->pass, t ? t->m.nmse : NAN, rt->nmse};
        }
    return BN_OK;
}

/* One hint that says where the error is born. */
static bn_status replay_hint(parity_compare_result *r, const parity_replay_result *o, bn_error *err) {
    char msg[512], ev[512];
    if (o->mode == PARITY_REPLAY_BLOCK) {
        const parity_replay_block *first = NULL;
        size_t local = 0, inherited = 0;
        for (size_t i = 0; i < o->n_blocks; i++) {
            local += o->blocks[i].local, inherited += !o->blocks[i].local;
            if (o->blocks[i].local && !first) first = &o->blocks[i];
        }
        if (!o->n_blocks) return BN_OK;
        if (first)
            snprintf(msg, sizeof msg, "replay: e%lld blk.%d has a local error (its output fails even from the "
                     "reference's input); %zu failing block(s) only inherit errors", (long long)first->eval,
                     first->layer, inherited);
        else
            snprintf(msg, sizeof msg, "replay: every failing block passes when it starts from the reference's "
                     "input: the errors are inherited from before the first block (embedding) or accumulate from "
                     "differences below the policy's limits");
        snprintf(ev, sizeof ev, "%zu failing block(s): %zu local, %zu inherited%s", o->n_blocks, local, inherited,
                 first ? "" : "");
        if (first) {
            const size_t n = strlen(ev);
            snprintf(ev + n, sizeof ev - n, "; blk.%d.out NMSE %.3g in the comparison, %.3g replayed", first->layer,
                     first->nmse_compared, first->nmse_replayed);
        }
        return parity_compare_add_hint(r, "replay-local-block", msg, ev, err);
    }
    if (o->first_local < 0)
        return parity_compare_add_hint(r, "replay-local-op",
                                       "replay: every tap passes when computed from the reference's own inputs: "
                                       "the differences accumulate from sub-threshold errors",
                                       "op-level replay, every tap injected", err);
    const parity_replay_tap *t = &o->taps[o->first_local];
    size_t later = 0;
    for (size_t i = (size_t)o->first_local + 1; i < o->n_taps; i++) later += !o->taps[i].pass;
    snprintf(msg, sizeof msg, "replay: e%lld %s is computed wrongly from the reference's own inputs: this op is "
             "where the error is born", (long long)t->eval, t->name);
    snprintf(ev, sizeof ev, "op-level replay: %s = %.6g > %.6g there (NMSE %.3g); %zu later tap(s) also fail on "
             "their own", t->check.metric ? t->check.metric : "?", t->check.value, t->check.limit, t->nmse, later);
    return parity_compare_add_hint(r, "replay-local-op", msg, ev, err);
}

bn_status parity_replay_applies(const parity_trace *subject, const char *model_sha256, bn_error *err) {
    const char *producer = parity_trace_get(subject, "producer.name");
    if (!producer || strcmp(producer, "bitparity"))
        return bn_error_set(err, BN_ERR_INVALID,
                            "--replay re-runs bitparity's engine, so it only speaks for traces bitparity recorded; "
                            "%s was produced by '%s', and a local/inherited verdict from bitparity's engine would "
                            "say nothing about it. Compare without --replay: the first divergence and the hints "
                            "stand on their own",
                            parity_trace_path(subject), producer ? producer : "an unnamed producer");
    const char *recorded = parity_trace_get(subject, "model.sha256");
    if (model_sha256 && recorded && strcmp(model_sha256, recorded))
        return bn_error_set(err, BN_ERR_INVALID,
                            "--replay: %s was recorded from a model with sha256 %.12s..., but the model given has "
                            "%.12s...: a replay on another model would classify other errors; pass the model the "
                            "subject was recorded from",
                            parity_trace_path(subject), recorded, model_sha256);
    return BN_OK;
}

bn_status parity_replay(parity_compare_result *r, const parity_tapview *subject, const parity_tapview *reference,
                        const parity_policy *policy, const parity_replay_opts *o, parity_replay_result **out,
                        bn_error *err) {
    *out = NULL;
    const parity_trace *st_trace = parity_tapview_trace(subject), *rt = parity_tapview_trace(reference);
    bn_status applies = parity_replay_applies(st_trace, o->model_sha256, err);
    if (applies) return applies;
    const char *numerics = o->numerics ? o->numerics : parity_trace_get(st_trace, "settings.numerics");
    const char *fault = o->fault ? o->fault : parity_trace_get(st_trace, "settings.fault");
    bn_session_params sp = {.ctx = bn_ctx_params_init()};
    sp.ctx.n_threads = o->n_threads > 0 ? o->n_threads : 1;
    sp.ctx.cancel = o->cancel;
    if (numerics && !bn_numerics_parse(numerics, &sp.ctx.numerics))
        return bn_error_set(err, BN_ERR_INVALID, "replay: unknown numerics '%s' in %s", numerics, parity_trace_path(st_trace));
    if (fault && !bn_fault_parse(fault, &sp.fault))
        return bn_error_set(err, BN_ERR_INVALID, "replay: unknown fault '%s' in %s", fault, parity_trace_path(st_trace));
    parity_replay_result *res = calloc(1, sizeof *res);
    replay_ctx c = {.rv = reference, .rt = rt, .policy = policy, .out = res, .cached_eval = -1};
    bn_tap_set *obs = NULL, *inj = NULL;
    bn_status st = res ? BN_OK : bn_error_nomem(err, sizeof *res, "replay: the result");
    if (!st) {
        res->mode = o->mode;
        res->first_local = -1;
        st = bn_tap_set_create(o->model->hp.n_layer, NULL, &obs, err);
    }
    if (!st) st = bn_tap_set_create(o->model->hp.n_layer, o->mode == PARITY_REPLAY_OP ? NULL : "token_embd,blk.*.out",
                                    &inj, err);
    for (int64_t k = 0; k < parity_trace_eval_count(rt); k++) sp.n_positions += parity_trace_eval(rt, k)->n_tokens;
    sp.step = replay_step, sp.user = &c;
    sp.ctx.observe = obs, sp.ctx.observe_fn = replay_observe, sp.ctx.observe_user = &c;
    sp.ctx.inject = inj, sp.ctx.inject_fn = replay_inject, sp.ctx.inject_user = &c;
    if (!st) st = bn_session_run(o->model, &sp, err);
    if (!st && o->mode == PARITY_REPLAY_BLOCK) st = classify_blocks(r, res, err);
    if (!st) st = replay_hint(r, res, err);
    parity_tensor_free(&c.cached);
    bn_tap_set_free(obs);
    bn_tap_set_free(inj);
    if (st) {
        parity_replay_result_free(res);
        return st;
    }
    *out = res;
    return BN_OK;
}

void parity_replay_result_free(parity_replay_result *r) {
    if (!r) return;
    free(r->taps);
    free(r->blocks);
    free(r);
}
