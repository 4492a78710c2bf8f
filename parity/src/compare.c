/* compare.c — two traces, tap by tap, under a policy (parity/compare.h). */
#include "parity/compare.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/clock.h"
#include "bitnet/forward.h"

const char *parity_tap_status_name(parity_tap_status s) {
    static const char *const names[PARITY_TAP_STATUS_COUNT] = {
        "pass", "fail", "shape-mismatch", "missing-reference", "missing-subject", "skipped"};
    return (unsigned)s < PARITY_TAP_STATUS_COUNT ? names[s] : "?";
}

/* ---- default policy ---------------------------------------------------------- */

const char *parity_trace_weight_type(const parity_trace *t) { return parity_trace_get(t, "model.weight_type"); }

const char *parity_trace_lm_head(const parity_trace *t) {
    const char *v = parity_trace_get(t, "settings.lm_head");
    return v ? v : "stored";
}

static int producer_is(const char *name, const char *what) { return name && !strcmp(name, what); }

/* False when both traces name their K/V cache type and the types differ: an
 * f16 cache against an f32 one is a legitimate difference, not a bug. */
static bool same_kv_cache(const parity_trace *a, const parity_trace *b) {
    const char *ka = parity_trace_get(a, "settings.kv_cache"), *kb = parity_trace_get(b, "settings.kv_cache");
    bn_kv_type a_k, a_v, b_k, b_v;
    return !ka || !kb || !bn_kv_type_parse(ka, &a_k, &a_v) || !bn_kv_type_parse(kb, &b_k, &b_v) ||
           (a_k == b_k && a_v == b_v);
}

const char *parity_compare_default_policy(const parity_trace *subject, const parity_trace *reference, char *why,
                                          size_t why_size) {
    const char *ps = parity_trace_get(subject, "producer.name"), *pr = parity_trace_get(reference, "producer.name");
    const char *ns = parity_trace_get(subject, "settings.numerics"), *nr = parity_trace_get(reference, "settings.numerics");
    const char *ws = parity_trace_weight_type(subject), *wr = parity_trace_weight_type(reference);
    /* Only what the traces record decides, never file names: a trace that does
     * not record its weight type shares the other's when both name the same
     * model file by its sha256. */
    const char *ss = parity_trace_get(subject, "model.sha256"), *rs = parity_trace_get(reference, "model.sha256");
    if (ss && rs && !strcmp(ss, rs)) {
        if (!ws) ws = wr;
        if (!wr) wr = ws;
    }
    /* a requantized lm_head (settings.lm_head) is a weight type of its own */
    const char *ls = parity_trace_lm_head(subject), *lr = parity_trace_lm_head(reference);
    const char *name, *reason;
    char buf[256];
    if (ws && wr && strcmp(ws, wr)) {
        name = "quantized";
        snprintf(buf, sizeof buf, "weight types differ (%s vs %s)", ws, wr);
        reason = buf;
    } else if (strcmp(ls, lr)) {
        name = "quantized";
        snprintf(buf, sizeof buf, "lm_head types differ (%s vs %s)", ls, lr);
        reason = buf;
    } else if (ps && pr && !strcmp(ps, pr) && ((!ns && !nr) || (ns && nr && !strcmp(ns, nr))) &&
               same_kv_cache(subject, reference)) {
        name = "exact";
        reason = "same producer and numerics";
    } else if ((producer_is(ps, "bitparity") && producer_is(pr, "bitparity-reference")) ||
               (producer_is(pr, "bitparity") && producer_is(ps, "bitparity-reference"))) {
        const char *w = ws ? ws : wr;
        const bool int8 = w && (!strcmp(w, "i2_s") || !strncmp(w, "tq", 2) || !strcmp(w, "q8_0"));
        const bool f32 = producer_is(ns, "f32") || producer_is(nr, "f32");
        name = int8 && f32 ? "reference-int8" : "reference";
        reason = int8 && f32 ? "engine vs the Python reference, f32 numerics with int8 activation steps"
                             : "engine vs the Python reference";
    } else if ((producer_is(ps, "bitparity") && producer_is(ns, "ggml-compat") && pr && !strncmp(pr, "bitnet.cpp", 10)) ||
               (producer_is(pr, "bitparity") && producer_is(nr, "ggml-compat") && ps && !strncmp(ps, "bitnet.cpp", 10))) {
        name = "ggml-compat";
        reason = "engine in ggml-compat numerics vs bitnet.cpp";
    } else if (((producer_is(ps, "bitparity") && producer_is(ns, "llama.cpp-compat") && pr && !strncmp(pr, "llama.cpp", 9)) ||
                (producer_is(pr, "bitparity") && producer_is(nr, "llama.cpp-compat") && ps && !strncmp(ps, "llama.cpp", 9))) &&
               same_kv_cache(subject, reference)) {
        name = "exact"; /* bit-identical on every shared llama.cpp trace (tests/test_compare.cc) */
        reason = "engine in llama.cpp-compat numerics vs llama.cpp";
    } else {
        name = "cross-backend";
        reason = "different backends or numerics";
    }
    if (why)
        snprintf(why, why_size, "%s: subject %s%s%s, reference %s%s%s", reason, ps ? ps : "?", ns ? " " : "",
                 ns ? ns : "", pr ? pr : "?", nr ? " " : "", nr ? nr : "");
    return name;
}

/* ---- result bookkeeping --------------------------------------------------------- */

void parity_compare_result_free(parity_compare_result *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_taps; i++) free(r->taps[i].name), free(r->taps[i].ref_source);
    for (size_t i = 0; i < r->n_evals; i++) free(r->evals[i].growth);
    for (size_t i = 0; i < r->n_hints; i++) free(r->hints[i].name), free(r->hints[i].message), free(r->hints[i].evidence);
    free(r->taps);
    free(r->evals);
    free(r->hints);
    free(r);
}

bn_status parity_compare_add_hint(parity_compare_result *r, const char *name, const char *message,
                                  const char *evidence, bn_error *err) {
    parity_hint *h = realloc(r->hints, (r->n_hints + 1) * sizeof *h);
    if (!h) return bn_error_nomem(err, (r->n_hints + 1) * sizeof *h, "compare: the list of %zu hints", r->n_hints + 1);
    r->hints = h;
    h += r->n_hints;
    *h = (parity_hint){strdup(name), strdup(message), strdup(evidence ? evidence : "")};
    if (!h->name || !h->message || !h->evidence) {
        free(h->name), free(h->message), free(h->evidence);
        return bn_error_nomem(err, strlen(name) + strlen(message) + (evidence ? strlen(evidence) : 0) + 3,
                              "compare: hint %s", name);
    }
    r->n_hints++;
    return BN_OK;
}

typedef struct cmp_ctx {
    const parity_tapview *view[2]; /* subject, reference */
    const parity_policy *policy;
    bn_pool *pool;
    const volatile sig_atomic_t *cancel;
    parity_compare_result *r;
    size_t cap_taps;
    bn_error *err;
    bn_progress_sink progress; /* told per subject tap: stage "comparing" */
    int64_t taps_done, taps_total;
    parity_f32_buf buf[2]; /* each side's arrays, reused tap after tap */
} cmp_ctx;

static parity_tap_result *new_tap(cmp_ctx *c, int64_t k, const char *name, parity_tap_status status) {
    parity_compare_result *r = c->r;
    if (r->n_taps == c->cap_taps) {
        size_t cap = c->cap_taps ? 2 * c->cap_taps : 256;
        parity_tap_result *p = realloc(r->taps, cap * sizeof *p);
        if (!p) return NULL;
        r->taps = p;
        c->cap_taps = cap;
    }
    parity_tap_result *t = &r->taps[r->n_taps];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return NULL;
    r->n_taps++;
    t->eval = k;
    t->layer = parity_tap_layer(name);
    t->status = status;
    t->check.pass = 1;
    return t;
}

/* ---- loading both sides at once ------------------------------------------------- */

typedef struct load_job {
    const parity_tapview *view[2];
    int64_t k, idx[2];
    parity_tensor tensor[2];
    parity_f32_buf *buf; /* [2] the comparison's buffers, one per side */
    bn_status st[2];
    bn_error err[2];
} load_job;

static void load_side(void *ctx, int64_t begin, int64_t end) {
    load_job *j = ctx;
    for (int64_t s = begin; s < end; s++)
        j->st[s] = parity_tapview_load_into(j->view[s], j->k, j->idx[s], &j->tensor[s], &j->buf[s], &j->err[s]);
}

/* ---- one tap ---------------------------------------------------------------- */

/* The row dimension of a canonical shape: tokens are dim 0 of (T, C), dim 1
 * of the heads layout (nh, T, T_kv). */
static int row_dim(int ndim) { return ndim == 3 ? 1 : 0; }

/* Decides which rows of a and b line up: equal shapes compare whole; a row
 * subset (pruned graph) compares the rows both hold. 0 when they cannot. */
static int align_rows(const parity_tensor *a, const parity_tensor *b, int64_t *r0, int64_t *r1) {
    if (a->ndim != b->ndim) return 0;
    int rd = row_dim(a->ndim);
    for (int d = 0; d < a->ndim; d++)
        if (d != rd && a->shape[d] != b->shape[d]) return 0;
    int64_t a0 = a->row0, a1 = a->row0 + a->shape[rd], b0 = b->row0, b1 = b->row0 + b->shape[rd];
    *r0 = a0 > b0 ? a0 : b0;
    *r1 = a1 < b1 ? a1 : b1;
    if (*r0 >= *r1) return 0;
    int whole = (*r0 == a0 && *r1 == a1) || (*r0 == b0 && *r1 == b1); /* one side holds the other */
    if (!whole) return 0;
    /* Rows are contiguous only in (T, C): a heads subset would need a gather. */
    return a->ndim != 3 || (a0 == b0 && a1 == b1);
}

static void record_shapes(parity_tap_result *t, const parity_tensor *a, const parity_tensor *b) {
    t->ndim = a->ndim;
    t->ref_ndim = b->ndim;
    memcpy(t->shape, a->shape, sizeof t->shape);
    memcpy(t->ref_shape, b->shape, sizeof t->ref_shape);
}

static bn_status measure(cmp_ctx *c, parity_tap_result *t, parity_eval_result *ev, const parity_tensor *a,
                         const parity_tensor *b) {
    int64_t r0, r1;
    if (!align_rows(a, b, &t->row_begin, &t->row_end)) {
        t->status = PARITY_TAP_SHAPE_MISMATCH;
        t->check = (parity_check){0, 0, "shape", (double)a->n, (double)b->n};
        return BN_OK;
    }
    r0 = t->row_begin;
    r1 = t->row_end;
    size_t width = a->ndim == 2 ? (size_t)a->shape[1] : 0;
    const float *pa = a->data, *pb = b->data;
    size_t n = a->n;
    if (a->ndim == 2) { /* contiguous rows [r0, r1) of each side */
        pa += (size_t)(r0 - a->row0) * width;
        pb += (size_t)(r0 - b->row0) * width;
        n = (size_t)(r1 - r0) * width;
    }
    double t0 = bn_clock_seconds();
    bn_status st = parity_metrics_compute(pa, pb, n, c->pool, &t->m, c->err);
    const parity_logits_summary *lg = NULL;
    if (!st && !strcmp(t->name, "logits") && a->ndim == 2) {
        st = parity_logits_compute(pa, pb, (size_t)(r1 - r0), width, c->pool, NULL, &ev->logits, c->err);
        ev->has_logits = !st;
        ev->logits_rows = r1 - r0;
        t->is_logits = 1;
        lg = &ev->logits;
    }
    c->r->t_metrics += bn_clock_seconds() - t0;
    if (st) return st;
    t->check = parity_policy_check(&t->lim, &t->m, lg);
    t->status = t->check.pass ? PARITY_TAP_PASS : PARITY_TAP_FAIL;
    return BN_OK;
}

static bn_status compare_tap(cmp_ctx *c, parity_eval_result *ev, int64_t k, int64_t i) {
    const char *name = parity_tapview_name(c->view[0], k, i);
    int64_t j = parity_tapview_find(c->view[1], k, name);
    parity_tap_result *t = new_tap(c, k, name, PARITY_TAP_MISSING_REFERENCE);
    if (!t) return bn_error_nomem(c->err, sizeof *t + strlen(name) + 1, "compare: the result of tap %s", name);
    if (j < 0) return BN_OK;
    t->ref_source = strdup(parity_tapview_source(c->view[1], k, j));
    t->lim = parity_policy_resolve(c->policy, name);
    if (t->lim.skip == 1) {
        t->status = PARITY_TAP_POLICY_SKIP;
        t->check.skipped = 1;
        return BN_OK;
    }
    load_job job = {{c->view[0], c->view[1]}, k, {i, j}, {{0}}, c->buf, {BN_OK, BN_OK}, {{0}}};
    double t0 = bn_clock_seconds();
    bn_pool_parallel_for(c->pool, 2, 1, load_side, &job);
    c->r->t_load += bn_clock_seconds() - t0;
    bn_status st = BN_OK;
    for (int s = 0; s < 2 && !st; s++)
        if (job.st[s]) {
            if (c->err) *c->err = job.err[s];
            st = job.st[s];
        }
    if (!st) {
        record_shapes(t, &job.tensor[0], &job.tensor[1]);
        st = measure(c, t, ev, &job.tensor[0], &job.tensor[1]);
    }
    parity_tensor_free(&job.tensor[0]);
    parity_tensor_free(&job.tensor[1]);
    return st;
}

/* ---- evaluations ---------------------------------------------------------------- */

/* Index of the first evaluation whose tokens or p0 differ (n when none). */
static int64_t first_token_mismatch(const parity_trace *s, const parity_trace *r, int64_t n, char *diag, size_t size) {
    for (int64_t k = 0; k < n; k++) {
        const parity_eval *a = parity_trace_eval(s, k), *b = parity_trace_eval(r, k);
        int64_t m = a->n_tokens < b->n_tokens ? a->n_tokens : b->n_tokens, at = -1;
        for (int64_t i = 0; i < m && at < 0; i++)
            if (a->tokens[i] != b->tokens[i]) at = i;
        if (at >= 0)
            snprintf(diag, size, "%s: token %lld is %d in the subject, %d in the reference", a->id, (long long)at,
                     a->tokens[at], b->tokens[at]);
        else if (a->n_tokens != b->n_tokens)
            snprintf(diag, size, "%s: %lld tokens in the subject, %lld in the reference", a->id,
                     (long long)a->n_tokens, (long long)b->n_tokens);
        else if (a->p0 != b->p0)
            snprintf(diag, size, "%s: p0 %lld in the subject, %lld in the reference", a->id, (long long)a->p0,
                     (long long)b->p0);
        else
            continue;
        return k;
    }
    return n;
}

static void finish_eval(cmp_ctx *c, parity_eval_result *ev, size_t first_tap) {
    for (size_t i = first_tap; i < c->r->n_taps; i++) {
        const parity_tap_result *t = &c->r->taps[i];
        if (t->status == PARITY_TAP_PASS) ev->n_pass++;
        if (t->status == PARITY_TAP_FAIL || t->status == PARITY_TAP_SHAPE_MISMATCH) ev->n_fail++;
        if ((t->status == PARITY_TAP_PASS || t->status == PARITY_TAP_FAIL) && t->layer >= 0 &&
            t->layer < c->r->n_layer && !isnan(t->m.nmse) &&
            (isnan(ev->growth[t->layer]) || t->m.nmse > ev->growth[t->layer]))
            ev->growth[t->layer] = t->m.nmse;
    }
}

static bn_status compare_eval(cmp_ctx *c, int64_t k) {
    parity_eval_result *ev = &c->r->evals[c->r->n_evals];
    const parity_eval *e = parity_trace_eval(parity_tapview_trace(c->view[0]), k);
    memset(ev, 0, sizeof *ev);
    ev->eval = k;
    snprintf(ev->id, sizeof ev->id, "%s", e->id);
    ev->n_tokens = e->n_tokens;
    ev->p0 = e->p0;
    ev->growth = malloc((size_t)(c->r->n_layer ? c->r->n_layer : 1) * sizeof *ev->growth);
    if (!ev->growth)
        return bn_error_nomem(c->err, (size_t)(c->r->n_layer ? c->r->n_layer : 1) * sizeof *ev->growth,
                              "compare: the error growth of %d layers", c->r->n_layer);
    for (int l = 0; l < c->r->n_layer; l++) ev->growth[l] = NAN;
    c->r->n_evals++;
    size_t first_tap = c->r->n_taps;
    bn_status st = BN_OK;
    for (int64_t i = 0; i < parity_tapview_count(c->view[0], k) && !st; i++) {
        bn_progress_report(&c->progress, &(bn_progress){"comparing", "taps", c->taps_done++, c->taps_total, 0});
        if (!(st = bn_cancel_check(c->cancel, c->err))) st = compare_tap(c, ev, k, i);
    }
    for (int64_t j = 0; j < parity_tapview_count(c->view[1], k) && !st; j++) {
        const char *name = parity_tapview_name(c->view[1], k, j);
        if (parity_tapview_find(c->view[0], k, name) >= 0) continue;
        parity_tap_result *t = new_tap(c, k, name, PARITY_TAP_MISSING_SUBJECT);
        if (!t || !(t->ref_source = strdup(parity_tapview_source(c->view[1], k, j))))
            st = bn_error_nomem(c->err, sizeof *t + 2 * strlen(name) + 2, "compare: the result of tap %s", name);
    }
    if (!st) finish_eval(c, ev, first_tap);
    return st;
}

static int max_layer(const parity_tapview *v) {
    int m = -1;
    int64_t n = parity_trace_eval_count(parity_tapview_trace(v));
    for (int64_t k = 0; k < n; k++)
        for (int64_t i = 0; i < parity_tapview_count(v, k); i++) {
            int l = parity_tap_layer(parity_tapview_name(v, k, i));
            if (l > m) m = l;
        }
    return m;
}

static void summarize(parity_compare_result *r) {
    parity_compare_counts *n = &r->counts;
    n->taps = (int64_t)r->n_taps;
    for (size_t i = 0; i < r->n_taps; i++) {
        const parity_tap_result *t = &r->taps[i];
        switch (t->status) {
        case PARITY_TAP_PASS: n->pass++; break;
        case PARITY_TAP_FAIL: n->fail++; break;
        case PARITY_TAP_SHAPE_MISMATCH: n->shape_mismatch++; break;
        case PARITY_TAP_MISSING_REFERENCE: n->missing_reference++; break;
        case PARITY_TAP_MISSING_SUBJECT: n->missing_subject++; break;
        default: n->policy_skip++; break;
        }
        if ((t->status == PARITY_TAP_PASS || t->status == PARITY_TAP_FAIL) && t->m.bit_identical) n->bit_identical++;
        if ((t->status == PARITY_TAP_FAIL || t->status == PARITY_TAP_SHAPE_MISMATCH) && !r->first.found)
            r->first = (parity_divergence){1, t->eval, t->name, t->layer, t->check.metric, t->check.value,
                                           t->check.limit, i};
    }
    n->compared = n->pass + n->fail;
    if (!n->compared && !r->diagnosis[0])
        snprintf(r->diagnosis, sizeof r->diagnosis, "no tap is present in both traces: check the tap map");
    r->pass = !r->diagnosis[0] && !n->fail && !n->shape_mismatch;
}

bn_status parity_compare(const parity_trace *subject, const parity_tapmap *subject_map,
                         const parity_trace *reference, const parity_tapmap *reference_map,
                         const parity_policy *policy, const parity_compare_opts *opts,
                         parity_compare_result **out, bn_error *err) {
    if (out) *out = NULL;
    if (!subject || !subject_map || !reference || !reference_map || !policy || !out)
        return bn_error_set(err, BN_ERR_INVALID, "compare: NULL argument");
    double t0 = bn_clock_seconds();
    parity_tapview *vs = NULL, *vr = NULL;
    parity_compare_result *r = calloc(1, sizeof *r);
    if (!r) return bn_error_nomem(err, sizeof *r, "compare: the result");
    bn_status st = parity_tapview_open(subject, subject_map, &vs, err);
    if (!st) st = parity_tapview_open(reference, reference_map, &vr, err);
    r->n_evals_subject = parity_trace_eval_count(subject);
    r->n_evals_reference = parity_trace_eval_count(reference);
    int64_t n = r->n_evals_subject < r->n_evals_reference ? r->n_evals_subject : r->n_evals_reference;
    if (!st && !(r->evals = calloc((size_t)(n ? n : 1), sizeof *r->evals)))
        st = bn_error_nomem(err, (size_t)(n ? n : 1) * sizeof *r->evals, "compare: the results of %lld evaluations",
                            (long long)n);
    if (!st) {
        int ls = max_layer(vs), lr = max_layer(vr);
        r->n_layer = 1 + (ls > lr ? ls : lr);
        char diag[160] = "";
        int64_t upto = first_token_mismatch(subject, reference, n, diag, sizeof diag);
        if (upto == 0) {
            r->tokenization_mismatch = 1;
            snprintf(r->diagnosis, sizeof r->diagnosis, "tokenization mismatch: %s", diag);
            st = parity_compare_add_hint(r, "tokenization-mismatch",
                                         "the two runs were given different token ids: compare tokenizers "
                                         "(BOS, pre-tokenizer, vocabulary) before activations",
                                         diag, err);
        } else if (upto < n) {
            snprintf(r->diagnosis, sizeof r->diagnosis, "decode diverged: %s (greedy choices differ; later "
                     "evaluations not compared)", diag);
        }
        cmp_ctx c = {.view = {vs, vr}, .policy = policy, .pool = opts ? opts->pool : NULL,
                     .cancel = opts ? opts->cancel : NULL, .r = r, .err = err};
        if (opts) c.progress = opts->progress;
        for (int64_t k = 0; k < upto; k++) c.taps_total += parity_tapview_count(vs, k);
        for (int64_t k = 0; k < upto && !st; k++) st = compare_eval(&c, k);
        if (!st) bn_progress_report(&c.progress, &(bn_progress){"comparing", "taps", c.taps_done, c.taps_total, 0});
        parity_f32_buf_free(&c.buf[0]);
        parity_f32_buf_free(&c.buf[1]);
    }
    parity_tapview_free(vs);
    parity_tapview_free(vr);
    if (st) {
        parity_compare_result_free(r);
        return st;
    }
    summarize(r);
    r->t_total = bn_clock_seconds() - t0;
    *out = r;
    return BN_OK;
}
