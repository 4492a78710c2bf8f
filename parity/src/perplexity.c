/* perplexity.c — windows of a text through a session, scored; see
 * perplexity.h. */
#include "parity/perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/session.h"
#include "parity/metrics.h"

typedef struct ppl_state {
    double nll_sum;
    int64_t n_scored;
    double *kld;        /* per scored position, when comparing */
    double *dp;
    int64_t n_kld, cap_kld, same_top;
    const parity_trace *base;
    parity_trace_writer *save;
} ppl_state;

/* Negative log-likelihood of `target` under one row of logits. */
static double row_nll(const float *logits, int64_t V, int32_t target) {
    double max = -INFINITY;
    for (int64_t i = 0; i < V; i++) max = logits[i] > max ? logits[i] : max;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) sum += exp((double)logits[i] - max);
    return -(((double)logits[target] - max) - log(sum));
}

static bn_status kld_window(ppl_state *s, int64_t k, const float *logits, int64_t T, int64_t V, bn_error *err) {
    float *base = NULL;
    npz_array_info info;
    bn_status st = parity_trace_load_f32(s->base, k, "logits", &base, &info, err);
    if (st) return st;
    if (info.nelem != T * V) {
        free(base);
        return bn_error_set(err, BN_ERR_INVALID, "--kld-base: window %lld has %lld logits, this run %lld (same text, "
                            "ctx and vocabulary?)", (long long)k, (long long)info.nelem, (long long)(T * V));
    }
    parity_logits_pos *pos = malloc((size_t)T * sizeof *pos);
    parity_logits_summary sum;
    if (!pos) st = bn_error_nomem(err, (size_t)T * sizeof *pos, "--kld-base: the per-position KLD of window %lld", (long long)k);
    /* positions 0..T-2 predict the window's tokens */
    if (!st) st = parity_logits_compute(logits, base, (size_t)(T - 1), (size_t)V, NULL, pos, &sum, err);
    if (!st && s->n_kld + T > s->cap_kld) {
        s->cap_kld = (s->n_kld + T) * 2;
        double *a = realloc(s->kld, (size_t)s->cap_kld * sizeof *a), *b = a ? realloc(s->dp, (size_t)s->cap_kld * sizeof *b) : NULL;
        if (a) s->kld = a;
        if (b) s->dp = b;
        if (!a || !b) st = bn_error_nomem(err, 2 * (size_t)s->cap_kld * sizeof *a, "--kld-base: %lld KLD values", (long long)s->cap_kld);
    }
    for (int64_t t = 0; !st && t < T - 1; t++) {
        s->kld[s->n_kld] = pos[t].kld;
        s->dp[s->n_kld++] = pos[t].dp;
        s->same_top += pos[t].same_top;
    }
    free(pos), free(base);
    return st;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The KLD statistics of every compared position (sorts s->kld). */
static void kld_summary(ppl_state *s, parity_ppl_result *out) {
    const int64_t n = s->n_kld;
    out->has_kld = s->base != NULL;
    out->n_kld = n;
    if (!n) return;
    double mean = 0, dp2 = 0;
    for (int64_t i = 0; i < n; i++) mean += s->kld[i], dp2 += s->dp[i] * s->dp[i];
    qsort(s->kld, (size_t)n, sizeof *s->kld, cmp_double);
    const double same = (double)s->same_top / (double)n;
    out->kld_mean = mean / (double)n;
    out->kld_median = parity_percentile(s->kld, (size_t)n, 0.5);
    out->kld_p99 = parity_percentile(s->kld, (size_t)n, 0.99);
    out->kld_max = s->kld[n - 1];
    out->same_top = same;
    out->same_top_err = n > 1 ? sqrt(same * (1 - same) / (double)(n - 1)) : 0.0;
    out->rms_dp = sqrt(dp2 / (double)n);
}

/* The text's windows as the session evaluates them, each from an empty
 * cache with BOS in front. */
typedef struct ppl_run {
    ppl_state *s;
    const parity_ppl_opts *o;
    const int32_t *ids;
    int64_t n_ids, chunk, n_windows, V;
    int32_t bos;
    int32_t *win;       /* [chunk + 1]: the window being evaluated */
    int64_t len;        /* its tokens after BOS */
    parity_eval *evals; /* [n_windows], for the saved logits */
    int64_t k, n_layer; /* the window being evaluated and the model's blocks, for progress */
    uint64_t bytes_saved; /* logits written so far, for progress */
} ppl_run;

/* The engine's per-block report, as layers of all windows. */
static void ppl_progress(void *user, const bn_progress *p) {
    const ppl_run *r = user;
    const bn_progress all = {"evaluating", "layers", r->k * r->n_layer + p->done, r->n_windows * r->n_layer,
                             r->bytes_saved};
    bn_progress_report(&r->o->progress, &all);
}

/* Scores window k (its logits are in c): NLL, saved logits, KLD. */
static bn_status score_window(ppl_run *r, int64_t k, const bn_ctx *c, bn_error *err) {
    ppl_state *s = r->s;
    const int64_t T = r->len + 1, V = r->V;
    const float *logits = bn_ctx_logits(c);
    for (int64_t t = 0; t < r->len; t++) s->nll_sum += row_nll(logits + t * V, V, r->win[t + 1]);
    s->n_scored += r->len;
    r->evals[k] = (parity_eval){.tokens = r->ids + k * r->chunk, .n_tokens = r->len, .p0 = 1};
    bn_status st = BN_OK;
    if (s->save) {
        const int64_t shape[2] = {T, V};
        st = parity_trace_writer_add_tap(s->save, k, "logits", NPZ_F32, shape, 2, logits, err);
        r->bytes_saved += (uint64_t)(T * V) * sizeof *logits;
    }
    if (!st && s->base) st = kld_window(s, k, logits, T, V, err);
    return st;
}

static bn_status ppl_step(void *user, int64_t k, const bn_ctx *c, bn_session_step *step, bn_error *err) {
    ppl_run *r = user;
    bn_status st = k > 0 ? score_window(r, k - 1, c, err) : BN_OK;
    r->k = k;
    if (st || k == r->n_windows) return st;
    const int64_t off = k * r->chunk;
    r->len = r->n_ids - off < r->chunk ? r->n_ids - off : r->chunk;
    r->win[0] = r->bos;
    memcpy(r->win + 1, r->ids + off, (size_t)r->len * sizeof *r->win);
    *step = (bn_session_step){.tokens = r->win, .n_tokens = r->len + 1, .reset = true};
    /* the window's last token predicts nothing scored: its logits are
     * computed only when saved logits or a KLD base keep every row */
    if (!r->s->save && !r->s->base) step->logits_first = 0, step->n_logits = r->len;
    return BN_OK;
}

static bn_status evaluate(const bn_model *m, const bn_tokenizer *tok, const int32_t *ids, int64_t n_ids,
                          const parity_ppl_opts *o, ppl_state *s, bn_error *err) {
    ppl_run r = {.s = s, .o = o, .ids = ids, .n_ids = n_ids, .chunk = o->ctx - 1, .V = m->hp.n_vocab,
                 .bos = bn_token_bos(tok), .n_layer = m->hp.n_layer};
    if (r.bos < 0) return bn_error_set(err, BN_ERR_INVALID, "the vocabulary has no BOS token");
    r.n_windows = (n_ids + r.chunk - 1) / r.chunk;
    bn_session_params sp = {.ctx = o->params, .step = ppl_step, .user = &r};
    sp.ctx.n_ctx = o->ctx;
    if (o->progress.fn) sp.ctx.progress = (bn_progress_sink){ppl_progress, &r};
    r.win = malloc((size_t)o->ctx * sizeof *r.win);
    r.evals = calloc((size_t)r.n_windows, sizeof *r.evals);
    bn_status st = r.win && r.evals ? bn_session_run(m, &sp, err)
                                    : bn_error_nomem(err, (size_t)o->ctx * sizeof *r.win + (size_t)r.n_windows * sizeof *r.evals,
                                                     "perplexity: %lld windows of %lld tokens", (long long)r.n_windows,
                                                     (long long)o->ctx);
    if (!st && o->progress.fn) ppl_progress(&r, &(bn_progress){.done = 0}); /* k = n_windows: all done */
    if (!st && s->save) {
        const parity_trace_meta meta = {.producer_name = "bitparity-perplexity", .producer_version = BITPARITY_VERSION,
                                        .producer_commit = BITPARITY_COMMIT, .model_arch = bn_arch_name(m->hp.arch),
                                        .numerics = bn_numerics_name(o->params.numerics),
                                        .lm_head = bn_model_lm_head_override(m),
                                        .threads = o->params.n_threads, .evals = r.evals, .n_evals = r.n_windows};
        st = parity_trace_writer_finish(s->save, &meta, err);
        s->save = NULL;
    }
    free(r.evals), free(r.win);
    return st;
}

bn_status parity_perplexity(const bn_model *m, const bn_tokenizer *tok, const char *text, size_t len,
                            const parity_ppl_opts *o, parity_ppl_result *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    if (o->ctx < 2 || o->ctx > PARITY_PPL_MAX_CTX)
        return bn_error_set(err, BN_ERR_INVALID, "perplexity: ctx %lld: must be 2..%d", (long long)o->ctx,
                            PARITY_PPL_MAX_CTX);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    ppl_state s = {.base = o->kld_base};
    bn_status st = bn_tokenize(tok, text, len, false, false, &ids, &n_ids, err);
    if (!st && n_ids == 0) st = bn_error_set(err, BN_ERR_INVALID, "no tokens to score");
    if (!st && o->save_logits) st = parity_trace_writer_open(o->save_logits, NPZ_DEFLATE_FAST, &s.save, err);
    if (!st && s.save) parity_trace_writer_set_cancel(s.save, o->params.cancel);
    if (!st) st = evaluate(m, tok, ids, (int64_t)n_ids, o, &s, err);
    if (!st) {
        out->n_scored = s.n_scored;
        out->ctx = o->ctx;
        out->n_windows = ((int64_t)n_ids + o->ctx - 2) / (o->ctx - 1);
        out->nll_per_token = s.nll_sum / (double)s.n_scored;
        out->perplexity = exp(out->nll_per_token);
        kld_summary(&s, out);
    }
    parity_trace_writer_abort(s.save);
    free(s.kld), free(s.dp), free(ids);
    return st;
}
