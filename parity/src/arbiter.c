/* arbiter.c — the independent Python reference as a third opinion at the
 * first divergent tap; see arbiter.h. The arbiter is a child process (no
 * shell: argv as given) writing a canonical trace of just that tap into a
 * scratch directory, which is read back like any other trace. */
#include "parity/arbiter.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/forward.h"
#include "child_process.h"

extern char **environ;

const char *parity_arbiter_verdict_name(parity_arbiter_verdict v) {
    switch (v) {
    case PARITY_ARBITER_SUBJECT: return "subject";
    case PARITY_ARBITER_REFERENCE: return "reference";
    case PARITY_ARBITER_BOTH: return "both";
    default: return "neither";
    }
}

void parity_arbiter_result_free(parity_arbiter_result *a) { free(a); }

/* "relu²" / "SiLU" as the messages spell the activations. */
static const char *act_label(const char *act) { return !strcmp(act, "relu2") ? "relu²" : !strcmp(act, "silu") ? "SiLU" : act; }

/* ---- the command line -------------------------------------------------------- */

/* A growing string (the token lists can be long). */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, long long v) {
    char tmp[32];
    const int k = snprintf(tmp, sizeof tmp, fmt, v);
    if (b->oom || k < 0) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        const size_t cap = b->cap ? 2 * b->cap + (size_t)k : 256;
        char *g = realloc(b->s, cap);
        if (!g) {
            b->oom = 1;
            return;
        }
        b->s = g, b->cap = cap;
    }
    memcpy(b->s + b->n, tmp, (size_t)k + 1);
    b->n += (size_t)k;
}

/* The prompt's ids ("1,2,3") and the later evaluations up to `last`
 * ("4;5"), as bitnet_ref.py trace --tokens / --evals take them. */
static bn_status token_args(const parity_tapview *subject, int64_t last, sbuf *prompt, sbuf *rest, bn_error *err) {
    parity_eval *ev;
    int64_t n;
    bn_status st = parity_trace_evals(parity_tapview_trace(subject), &ev, &n, err);
    if (st) return st;
    for (int64_t k = 0; k <= last && k < n; k++) {
        sbuf *b = k ? rest : prompt;
        if (k > 1) sb_add(b, ";", 0);
        for (int64_t i = 0; i < ev[k].n_tokens; i++) sb_add(b, i ? ",%lld" : "%lld", ev[k].tokens[i]);
    }
    free(ev);
    if (!prompt->s) sb_add(prompt, "", 0);
    if (!rest->s) sb_add(rest, "", 0);
    return prompt->oom || rest->oom ? bn_error_nomem(err, prompt->cap + rest->cap, "arbiter: the token lists") : BN_OK;
}

/* ---- comparing at the tap ------------------------------------------------------ */

/* Loads (eval k, tap) from v; *found 0 when v lacks it. */
static bn_status load(const parity_tapview *v, int64_t k, const char *tap, parity_tensor *t, int *found, bn_error *err) {
    const int64_t i = parity_tapview_find(v, k, tap);
    *found = i >= 0;
    return i >= 0 ? parity_tapview_load(v, k, i, t, err) : BN_OK;
}

/* side vs arbiter. A side that holds only the last rows of a [T, ...] tap
 * (a pruned dump: row0 > 0) is held against the arbiter's same rows. */
static bn_status judge(const parity_tensor *side, int found, const parity_tensor *arb, const parity_limits *lim,
                       parity_arbiter_side *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    if (!found || side->ndim != arb->ndim || !side->n) return BN_OK;
    size_t row = 1;
    for (int d = 1; d < side->ndim; d++) {
        if (side->shape[d] != arb->shape[d]) return BN_OK;
        row *= (size_t)side->shape[d];
    }
    const int64_t first_row = side->shape[0] == arb->shape[0] ? 0 : side->row0;
    if (first_row < 0 || first_row + side->shape[0] > arb->shape[0]) return BN_OK;
    bn_status st = parity_metrics_compute(side->data, arb->data + (size_t)first_row * row, side->n, NULL, &out->m, err);
    if (st) return st;
    out->compared = 1;
    out->check = parity_policy_check(lim, &out->m, NULL);
    return BN_OK;
}

/* The arbiter's trace of one tap: bitnet_ref.py trace on model_path, with
 * `activation` forced when not NULL. *at is the opened trace and its view. */
typedef struct arbiter_trace {
    parity_trace *trace;
    parity_tapmap *map;
    parity_tapview *view;
} arbiter_trace;

static void arbiter_trace_close(arbiter_trace *a) {
    parity_tapview_free(a->view);
    parity_tapmap_free(a->map);
    parity_trace_close(a->trace);
    memset(a, 0, sizeof *a);
}

typedef struct run_ctx {
    const parity_arbiter_opts *o;
    const char *model_path, *numerics, *kv, *tap;
    const char *prompt, *rest;
    char dir[4096];
} run_ctx;

static bn_status trace_arbiter(run_ctx *c, const char *activation, const char *name, arbiter_trace *at, bn_error *err) {
    char out[4200], log[4200];
    snprintf(out, sizeof out, "%s/%s.npz", c->dir, name);
    snprintf(log, sizeof log, "%s/%s.log", c->dir, name);
    const char *argv[24];
    int n = 0;
    argv[n++] = c->o->python, argv[n++] = c->o->script, argv[n++] = "trace", argv[n++] = "-m", argv[n++] = c->model_path;
    argv[n++] = "--tokens", argv[n++] = c->prompt, argv[n++] = "--evals", argv[n++] = c->rest;
    argv[n++] = "--numerics", argv[n++] = c->numerics, argv[n++] = "--taps", argv[n++] = c->tap;
    if (c->kv) argv[n++] = "--kv-type", argv[n++] = c->kv;
    if (activation) argv[n++] = "--activation", argv[n++] = activation;
    argv[n++] = "-o", argv[n++] = out, argv[n] = NULL;
    bn_status st = parity_run_child("arbiter", (char *const *)argv, log, c->o->cancel, err);
    remove(log);
    if (!st) st = parity_trace_open(out, &at->trace, err);
    if (!st) st = parity_tapmap_for_trace(at->trace, &at->map, err);
    if (!st) st = parity_tapview_open(at->trace, at->map, &at->view, err);
    remove(out); /* the open trace keeps its mapping; nothing is left behind */
    return st;
}

/* ---- the words ---------------------------------------------------------------- */

static void describe(parity_arbiter_result *a, const char *side_name) {
    char where[160], act[96] = "";
    snprintf(where, sizeof where, "e%lld %s", (long long)a->eval, a->tap);
    const int ffn_act = strstr(a->tap, "ffn_act") != NULL;
    if (ffn_act) snprintf(act, sizeof act, " on %s", act_label(a->activation));
    const parity_arbiter_side *s = &a->subject, *r = &a->reference;
    char other[256] = "";
    if (a->other_activation[0] && a->other.compared)
        snprintf(other, sizeof other, "; the %s trace computes %s (against the independent reference with %s forced: nmse %.3g%s)",
                 side_name, act_label(a->other_activation), act_label(a->other_activation), a->other.m.nmse,
                 a->other.check.pass ? "" : ", still outside the limits");
    switch (a->verdict) {
    case PARITY_ARBITER_SUBJECT:
    case PARITY_ARBITER_REFERENCE: {
        const int subject_agrees = a->verdict == PARITY_ARBITER_SUBJECT;
        snprintf(a->summary, sizeof a->summary,
                 "%s and the independent reference agree%s at %s (nmse %.3g); %s differs from both (nmse %.3g)%s",
                 subject_agrees ? "subject" : "the reference trace", act, where, (subject_agrees ? s : r)->m.nmse,
                 subject_agrees ? "the reference trace" : "the subject", (subject_agrees ? r : s)->m.nmse, other);
        break;
    }
    case PARITY_ARBITER_BOTH:
        snprintf(a->summary, sizeof a->summary,
                 "both agree with the independent reference at %s within policy %s (subject nmse %.3g, reference nmse "
                 "%.3g): it cannot tell which side is wrong",
                 where, a->policy, s->m.nmse, r->m.nmse);
        break;
    default:
        snprintf(a->summary, sizeof a->summary,
                 "neither agrees with the independent reference at %s (subject %s, reference %s): both differ from "
                 "the model file's declared math",
                 where, s->compared ? "compared" : "not comparable", r->compared ? "compared" : "not comparable");
        if (s->compared && r->compared)
            snprintf(a->summary, sizeof a->summary,
                     "neither agrees with the independent reference at %s (subject nmse %.3g, reference nmse %.3g, "
                     "policy %s): both differ from the model file's declared math",
                     where, s->m.nmse, r->m.nmse, a->policy);
    }
    snprintf(a->shows, sizeof a->shows,
             "the independent reference (reference/bitnet_ref.py, %s numerics) computed the declared math of the "
             "subject's model file %s (arch %s, FFN activation %s: %s); agreeing with it shows that a side computes "
             "what that file declares, not that the file is a correct export of the original model",
             a->numerics, a->model, a->arch, act_label(a->activation), a->activation_key);
}

/* "bitnet.hidden_activation = relu2", or that the key is absent (the arch's
 * default then runs). */
static void activation_key(const bn_model *m, parity_arbiter_result *a) {
    char key[96];
    snprintf(key, sizeof key, "%s.hidden_activation", a->arch);
    bn_gguf_str v;
    bn_error e = {0};
    if (m && m->gguf && bn_gguf_find_key(m->gguf, key) >= 0 && !bn_gguf_get_str(m->gguf, key, &v, &e))
        snprintf(a->activation_key, sizeof a->activation_key, "%s = %.*s", key, (int)v.len, v.ptr);
    else
        snprintf(a->activation_key, sizeof a->activation_key, "no %s key, so the arch's default", key);
}

/* ---- the run ------------------------------------------------------------------ */

static bn_status arbitrate(run_ctx *c, const parity_compare_result *r, const parity_tapview *sv,
                           const parity_tapview *rv, const bn_model *m, parity_arbiter_result *a, bn_error *err) {
    arbiter_trace at = {0}, alt = {0};
    parity_tensor ts = {0}, tr = {0}, ta = {0}, tb = {0};
    parity_policy *policy = NULL;
    int fs = 0, fr = 0, fa = 0;
    bn_status st = trace_arbiter(c, NULL, "arbiter", &at, err);
    if (!st) {
        const char *act = parity_trace_get(at.trace, "settings.activation"), *arch = parity_trace_get(at.trace, "model.arch");
        snprintf(a->activation, sizeof a->activation, "%s", act ? act : "?");
        snprintf(a->arch, sizeof a->arch, "%s", arch ? arch : "?");
        activation_key(m, a);
        char why[256];
        snprintf(a->policy, sizeof a->policy, "%s",
                 parity_compare_default_policy(parity_tapview_trace(sv), at.trace, why, sizeof why));
        st = parity_policy_load_builtin(a->policy, &policy, err);
    }
    if (!st) st = load(at.view, r->first.eval, a->tap, &ta, &fa, err);
    if (!st && !fa)
        st = bn_error_set(err, BN_ERR_IO, "arbiter: its trace has no e%lld %s", (long long)r->first.eval, a->tap);
    if (!st) st = load(sv, r->first.eval, a->tap, &ts, &fs, err);
    if (!st) st = load(rv, r->first.eval, a->tap, &tr, &fr, err);
    parity_limits lim;
    if (!st) {
        lim = parity_policy_resolve(policy, a->tap);
        st = judge(&ts, fs, &ta, &lim, &a->subject, err);
    }
    if (!st) st = judge(&tr, fr, &ta, &lim, &a->reference, err);
    if (!st) {
        const int s_ok = a->subject.compared && a->subject.check.pass, r_ok = a->reference.compared && a->reference.check.pass;
        a->verdict = s_ok && r_ok ? PARITY_ARBITER_BOTH
                     : s_ok       ? PARITY_ARBITER_SUBJECT
                     : r_ok       ? PARITY_ARBITER_REFERENCE
                                  : PARITY_ARBITER_NEITHER;
    }
    /* An FFN activation that one side gets wrong: which one does it compute? */
    const int one_side = a->verdict == PARITY_ARBITER_SUBJECT || a->verdict == PARITY_ARBITER_REFERENCE;
    const char *other = !strcmp(a->activation, "relu2") ? "silu" : !strcmp(a->activation, "silu") ? "relu2" : NULL;
    if (!st && one_side && other && strstr(a->tap, "ffn_act")) {
        int fb = 0;
        st = trace_arbiter(c, other, "arbiter-other", &alt, err);
        if (!st) st = load(alt.view, r->first.eval, a->tap, &tb, &fb, err);
        if (!st && fb) {
            snprintf(a->other_activation, sizeof a->other_activation, "%s", other);
            const int subject_wrong = a->verdict == PARITY_ARBITER_REFERENCE;
            st = judge(subject_wrong ? &ts : &tr, subject_wrong ? fs : fr, &tb, &lim, &a->other, err);
        }
    }
    if (!st) describe(a, a->verdict == PARITY_ARBITER_REFERENCE ? "subject's" : "reference");
    parity_tensor_free(&ts), parity_tensor_free(&tr), parity_tensor_free(&ta), parity_tensor_free(&tb);
    parity_policy_free(policy);
    arbiter_trace_close(&at);
    arbiter_trace_close(&alt);
    return st;
}

/* The subject's K/V cache as bitnet_ref.py's --kv-type takes it (it honours
 * it in llama.cpp-compat only; ggml-compat is f16, f32 is f32): one type for
 * both, else NULL (its default). */
static const char *kv_arg(const parity_trace *subject, const char *numerics) {
    const char *kv = parity_trace_get(subject, "settings.kv_cache");
    bn_kv_type k, v;
    if (strcmp(numerics, "llama.cpp-compat") || !kv || !bn_kv_type_parse(kv, &k, &v) || k != v) return NULL;
    return k == BN_KV_F16 ? "f16" : k == BN_KV_F32 ? "f32" : NULL;
}

bn_status parity_arbiter_run(const parity_arbiter_opts *o, const parity_compare_result *r,
                             const parity_tapview *subject, const parity_tapview *reference, const bn_model *m,
                             const char *model_path, const char *numerics, parity_arbiter_result **out,
                             bn_error *err) {
    *out = NULL;
    if (!r->first.found || r->tokenization_mismatch)
        return bn_error_set(err, BN_ERR_INVALID, "arbiter: nothing to arbitrate (no divergent tap)");
    if (!o->python || !o->script || !o->tmp_dir || !model_path)
        return bn_error_set(err, BN_ERR_INVALID, "arbiter: needs the interpreter, the script, a scratch folder and the model");
    if (access(o->script, R_OK))
        return bn_error_set(err, BN_ERR_NOT_FOUND, "arbiter: %s: %s (give the reference with --arbiter-script)",
                            o->script, strerror(errno));
    const parity_trace *st_trace = parity_tapview_trace(subject);
    if (!numerics) numerics = parity_trace_get(st_trace, "settings.numerics");
    bn_numerics parsed;
    if (!numerics || !bn_numerics_parse(numerics, &parsed)) numerics = "f32";
    parity_arbiter_result *a = calloc(1, sizeof *a);
    if (!a) return bn_error_nomem(err, sizeof *a, "arbiter: the result");
    a->eval = r->first.eval;
    snprintf(a->tap, sizeof a->tap, "%s", r->first.tap);
    snprintf(a->model, sizeof a->model, "%s", model_path);
    snprintf(a->numerics, sizeof a->numerics, "%s", numerics);
    run_ctx c = {.o = o, .model_path = model_path, .numerics = a->numerics, .kv = kv_arg(st_trace, numerics), .tap = a->tap};
    sbuf prompt = {0}, rest = {0};
    bn_status st = token_args(subject, r->first.eval, &prompt, &rest, err);
    c.prompt = prompt.s, c.rest = rest.s;
    snprintf(c.dir, sizeof c.dir, "%s/bitparity-arbiter-XXXXXX", o->tmp_dir);
    if (!st && !mkdtemp(c.dir))
        st = bn_error_set(err, BN_ERR_IO, "arbiter: cannot make a scratch folder in %s: %s", o->tmp_dir, strerror(errno));
    else if (!st) {
        st = arbitrate(&c, r, subject, reference, m, a, err);
        rmdir(c.dir);
    }
    free(prompt.s), free(rest.s);
    /* The reference ran another file: the arbiter speaks for the subject's only. */
    const char *ss = parity_trace_get(st_trace, "model.sha256");
    const char *rs = parity_trace_get(parity_tapview_trace(reference), "model.sha256");
    if (!st && ss && rs && strcmp(ss, rs)) {
        const size_t n = strlen(a->shows);
        snprintf(a->shows + n, sizeof a->shows - n,
                 "; the reference trace was recorded from another model file (sha256 %.12s...): if that is the "
                 "original, the subject's file may be an export whose declared math is itself wrong (compare the "
                 "two files' metadata)",
                 rs);
    }
    if (st) {
        free(a);
        return st;
    }
    *out = a;
    return BN_OK;
}
