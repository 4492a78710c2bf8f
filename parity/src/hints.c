/* hints.c — named diagnoses of the first divergence, with the numbers behind
 * them; see hints.h. Every hint recomputes a candidate explanation from
 * recorded values and states how well the subject matches it, so a receipt
 * never asserts a cause it did not measure. */
#include "parity/hints.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/forward.h"
#include "bitnet/quant.h"
#include "bitnet/taps.h"

/* ------------------------------------------------------------ helpers -- */

typedef struct hint_ctx {
    parity_compare_result *r;
    const parity_tapview *sv, *rv; /* subject, reference */
    int64_t k;                     /* evaluation of the first divergence */
    const char *tap;               /* first divergent tap */
    const char *kind;              /* its name after "blk.N." */
    int layer;
    const parity_tap_result *tr;
    const bn_model *model;         /* may be NULL */
    bn_error *err;
} hint_ctx;

/* Loads `name` of evaluation k; *found = false when the view lacks it. */
static bn_status load_tap(const parity_tapview *v, int64_t k, const char *name, parity_tensor *t, bool *found,
                          bn_error *err) {
    memset(t, 0, sizeof *t);
    const int64_t i = parity_tapview_find(v, k, name);
    *found = i >= 0;
    return i >= 0 ? parity_tapview_load(v, k, i, t, err) : BN_OK;
}

/* Loads the same tap from both sides; false (and nothing held) unless both
 * exist with the same element count. */
static bool load_pair(hint_ctx *c, const char *name, parity_tensor *s, parity_tensor *r, bn_status *st) {
    bool fs, fr;
    *st = load_tap(c->sv, c->k, name, s, &fs, c->err);
    if (!*st) *st = load_tap(c->rv, c->k, name, r, &fr, c->err);
    if (!*st && fs && fr && s->n == r->n && s->n > 0) return true;
    parity_tensor_free(s);
    parity_tensor_free(r);
    return false;
}

/* Σ(a−b)²/Σb² in double. */
static double nmse_fd(const float *a, const double *b, size_t n) {
    double e = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = (double)a[i] - b[i];
        e += x * x;
        d += b[i] * b[i];
    }
    return d > 0 ? e / d : (e > 0 ? INFINITY : 0);
}

static double nmse_ff(const float *a, const float *b, size_t n) {
    double e = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = (double)a[i] - b[i];
        e += x * x;
        d += (double)b[i] * b[i];
    }
    return d > 0 ? e / d : (e > 0 ? INFINITY : 0);
}

static const char *kind_of(const char *tap) {
    if (strncmp(tap, "blk.", 4)) return tap;
    const char *dot = strchr(tap + 4, '.');
    return dot ? dot + 1 : tap;
}

static bn_status add_hint(hint_ctx *c, const char *name, const char *fmt_msg, const char *evidence) {
    return parity_compare_add_hint(c->r, name, fmt_msg, evidence, c->err);
}

/* A "better explanation" must beat the plain comparison by 100x and be
 * close in absolute terms. */
static bool explains(double nmse_candidate, double nmse_plain) {
    return nmse_candidate < 1e-6 && nmse_candidate * 100 < nmse_plain;
}

/* ------------------------------------------------------- NaN / tokens -- */

static bn_status hint_nan_origin(hint_ctx *c) {
    for (size_t i = 0; i < c->r->n_taps; i++) {
        const parity_tap_result *t = &c->r->taps[i];
        if (t->status != PARITY_TAP_PASS && t->status != PARITY_TAP_FAIL) continue;
        const size_t bad_a = t->m.nan_a + t->m.inf_a, bad_b = t->m.nan_b + t->m.inf_b;
        if (bad_a == 0 || bad_b != 0) continue;
        char msg[512], ev[512];
        snprintf(msg, sizeof msg, "NaN/Inf first appears in the subject at e%lld %s; every earlier tap is finite",
                 (long long)t->eval, t->name);
        snprintf(ev, sizeof ev, "%zu NaN and %zu Inf of %zu elements in the subject, none in the reference",
                 t->m.nan_a, t->m.inf_a, t->m.n);
        return add_hint(c, "nan-origin", msg, ev);
    }
    return BN_OK;
}

/* --------------------------------------------------------- scale fit -- */

typedef struct named_const {
    const char *name;
    double value;
} named_const;

/* The nearest named constant to s (within 2 %), or NULL. */
static const char *nearest_constant(double s, int64_t width, double *value) {
    const double w = (double)width;
    const named_const cands[] = {
        {"1/√H", 1 / sqrt(w)}, {"√H", sqrt(w)}, {"1/H", 1 / w}, {"H", w},        {"1/127", 1 / 127.0},
        {"127", 127},          {"1/2", 0.5},    {"2", 2},       {"1/√2", M_SQRT1_2}, {"√2", M_SQRT2},
        {"-1", -1},            {"1/4", 0.25},   {"4", 4},
    };
    const char *best = NULL;
    double best_err = 0.02;
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        const double err = fabs(s / cands[i].value - 1);
        if (err < best_err) best_err = err, best = cands[i].name, *value = cands[i].value;
    }
    return best;
}

static bool is_norm_tap(const char *kind) {
    return !strcmp(kind, "attn_norm") || !strcmp(kind, "ffn_norm") || !strcmp(kind, "attn_sub_norm") ||
           !strcmp(kind, "ffn_sub_norm") || !strcmp(kind, "output_norm");
}

static bool is_projection_tap(const char *kind) {
    static const char *const k[] = {"attn_q", "attn_k", "attn_v", "attn_out", "ffn_gate", "ffn_up", "ffn_out"};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(kind, k[i])) return true;
    return false;
}

static bn_status hint_scale(hint_ctx *c) {
    const parity_metrics *m = &c->tr->m;
    if (c->tr->status != PARITY_TAP_FAIL || !(m->scale_nmse < 1e-4 && m->scale_nmse * 100 < m->nmse) ||
        fabs(m->scale - 1) < 1e-3)
        return BN_OK;
    const int64_t width = c->tr->shape[c->tr->ndim - 1];
    double v = 0;
    const char *near = nearest_constant(m->scale, width, &v);
    char msg[512], ev[512];
    int n = snprintf(msg, sizeof msg, "subject ≈ %.6g × reference at %s", m->scale, c->tap);
    if (near) n += snprintf(msg + n, sizeof msg - (size_t)n, " (≈ %s = %.6g, H = %lld)", near, v, (long long)width);
    if (is_norm_tap(c->kind)) snprintf(msg + n, sizeof msg - (size_t)n, ": norm weight scaling");
    else if (is_projection_tap(c->kind))
        snprintf(msg + n, sizeof msg - (size_t)n, ": the projection's weight scale (I2_S tensor scale, TQ block scales "
                 "or a `.scale` tensor) is read or clamped differently");
    snprintf(ev, sizeof ev, "scale_fit %.9g leaves NMSE %.3g of the %.3g before the fit", m->scale, m->scale_nmse,
             m->nmse);
    return add_hint(c, "scale-factor", msg, ev);
}

/* --------------------------------------------------------- activation -- */

static bn_status hint_activation(hint_ctx *c) {
    if (strcmp(c->kind, "ffn_act")) return BN_OK;
    char gname[64], uname[64];
    snprintf(gname, sizeof gname, "blk.%d.ffn_gate", c->layer);
    snprintf(uname, sizeof uname, "blk.%d.ffn_up", c->layer);
    parity_tensor g = {0}, u = {0}, sa = {0}, ra = {0}, dummy = {0};
    bool fg, fu;
    bn_status st = load_tap(c->rv, c->k, gname, &g, &fg, c->err);
    if (!st) st = load_tap(c->rv, c->k, uname, &u, &fu, c->err);
    const bool ok = !st && fg && fu && g.n == u.n && load_pair(c, c->tap, &sa, &ra, &st) && sa.n == g.n;
    double *relu2 = ok ? malloc(g.n * sizeof *relu2) : NULL, *silu = ok ? malloc(g.n * sizeof *silu) : NULL;
    if (relu2 && silu) {
        for (size_t i = 0; i < g.n; i++) {
            const double x = g.data[i], r = x > 0 ? x : 0;
            relu2[i] = r * r * u.data[i];
            silu[i] = x / (1 + exp(-x)) * u.data[i];
        }
        const double s_relu = nmse_fd(sa.data, relu2, g.n), s_silu = nmse_fd(sa.data, silu, g.n);
        const double r_relu = nmse_fd(ra.data, relu2, g.n), r_silu = nmse_fd(ra.data, silu, g.n);
        const char *subj = s_silu < 1e-6 && s_silu < s_relu ? "SiLU(gate)·up" : s_relu < 1e-6 ? "relu(gate)²·up" : NULL;
        const char *ref = r_silu < 1e-6 && r_silu < r_relu ? "SiLU(gate)·up" : r_relu < 1e-6 ? "relu(gate)²·up" : NULL;
        if (subj && ref && strcmp(subj, ref)) {
            char msg[512], ev[512];
            snprintf(msg, sizeof msg, "FFN activation: the subject computes %s where the reference computes %s",
                     subj, ref);
            snprintf(ev, sizeof ev,
                     "recomputed from the reference's %s/%s: subject NMSE vs relu² %.3g, vs SiLU %.3g; "
                     "reference vs relu² %.3g, vs SiLU %.3g",
                     gname, uname, s_relu, s_silu, r_relu, r_silu);
            st = add_hint(c, "activation-swap", msg, ev);
        }
    } else if (ok) {
        st = bn_error_nomem(c->err, 2 * g.n * sizeof *relu2, "hints: the recomputed activations of %s", c->tap);
    }
    free(relu2), free(silu);
    parity_tensor_free(&g), parity_tensor_free(&u), parity_tensor_free(&sa), parity_tensor_free(&ra);
    parity_tensor_free(&dummy);
    return st;
}

/* --------------------------------------------------------------- norm -- */

/* The tap a norm reads: attn_norm <- blk.N-1.out (token_embd for N = 0),
 * ffn_norm <- ffn_inp, sub-norms <- attn_ctx / ffn_act, output_norm <- the
 * last block's out. */
static bool norm_input(const hint_ctx *c, char *buf, size_t size) {
    if (!strcmp(c->kind, "attn_norm")) {
        if (c->layer == 0) snprintf(buf, size, "token_embd");
        else snprintf(buf, size, "blk.%d.out", c->layer - 1);
    } else if (!strcmp(c->kind, "ffn_norm")) snprintf(buf, size, "blk.%d.ffn_inp", c->layer);
    else if (!strcmp(c->kind, "attn_sub_norm")) snprintf(buf, size, "blk.%d.attn_ctx", c->layer);
    else if (!strcmp(c->kind, "ffn_sub_norm")) snprintf(buf, size, "blk.%d.ffn_act", c->layer);
    else if (!strcmp(c->kind, "output_norm")) snprintf(buf, size, "blk.%d.out", c->r->n_layer - 1);
    else return false;
    return true;
}

/* Candidates built from the reference's input x and output y: gamma is
 * recovered per column as the median of y / (x·rms_scale). */
static bn_status hint_norm(hint_ctx *c) {
    char in_name[64];
    if (!is_norm_tap(c->kind) || !norm_input(c, in_name, sizeof in_name)) return BN_OK;
    parity_tensor x = {0}, sy = {0}, ry = {0};
    bool fx;
    bn_status st = load_tap(c->rv, c->k, in_name, &x, &fx, c->err);
    if (st || !fx || !load_pair(c, c->tap, &sy, &ry, &st) || x.n != ry.n || x.ndim != 2) {
        parity_tensor_free(&x), parity_tensor_free(&sy), parity_tensor_free(&ry);
        return st;
    }
    const int64_t T = x.shape[0], H = x.shape[1];
    double *gamma = calloc((size_t)H, sizeof *gamma), *rms = calloc((size_t)T, sizeof *rms),
           *ln = malloc(x.n * sizeof *ln), *col = malloc((size_t)T * sizeof *col), *ident = malloc(x.n * sizeof *ident);
    if (!gamma || !rms || !ln || !col || !ident)
        st = bn_error_nomem(c->err, ((size_t)H + 2 * (size_t)T + 2 * x.n) * sizeof *gamma,
                            "hints: the recomputed norms of %s", c->tap);
    for (int64_t t = 0; !st && t < T; t++) {
        double ss = 0;
        for (int64_t i = 0; i < H; i++) ss += (double)x.data[t * H + i] * x.data[t * H + i];
        rms[t] = 1 / sqrt(ss / (double)H + 1e-5);
    }
    for (int64_t i = 0; !st && i < H; i++) { /* median of y/(x·s) over tokens with |x| not tiny */
        int64_t n = 0;
        for (int64_t t = 0; t < T; t++) {
            const double xs = x.data[t * H + i] * rms[t];
            if (fabs(xs) > 1e-3) col[n++] = ry.data[t * H + i] / xs;
        }
        for (int64_t a = 1; a < n; a++)
            for (int64_t b = a; b > 0 && col[b - 1] > col[b]; b--) {
                double tmp = col[b];
                col[b] = col[b - 1], col[b - 1] = tmp;
            }
        gamma[i] = n ? col[n / 2] : 0;
    }
    for (int64_t t = 0; !st && t < T; t++) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < H; i++) mean += x.data[t * H + i];
        mean /= (double)H;
        for (int64_t i = 0; i < H; i++) var += (x.data[t * H + i] - mean) * (x.data[t * H + i] - mean);
        const double s = 1 / sqrt(var / (double)H + 1e-5);
        for (int64_t i = 0; i < H; i++) {
            ln[t * H + i] = (x.data[t * H + i] - mean) * s * gamma[i];
            ident[t * H + i] = x.data[t * H + i];
        }
    }
    if (!st) {
        const double plain = nmse_ff(sy.data, ry.data, sy.n), s_ln = nmse_fd(sy.data, ln, sy.n),
                     s_id = nmse_fd(sy.data, ident, sy.n);
        char msg[512], ev[512];
        if (explains(s_id, plain)) {
            const bool sub = strstr(c->kind, "sub_norm") != NULL;
            snprintf(msg, sizeof msg, "%s is skipped in the subject: its value equals the norm's input %s",
                     sub ? "the sub-norm" : "the norm", in_name);
            snprintf(ev, sizeof ev, "subject %s vs reference %s: NMSE %.3g (vs reference %s: %.3g)", c->tap, in_name,
                     s_id, c->tap, plain);
            st = add_hint(c, sub ? "subnorm-missing" : "norm-missing", msg, ev);
        } else if (s_ln < 1e-4 && s_ln * 100 < plain) {
            snprintf(msg, sizeof msg, "%s: the subject subtracts the mean (LayerNorm) where the reference uses RMSNorm",
                     c->tap);
            snprintf(ev, sizeof ev, "LayerNorm of the reference's %s with the recovered gamma: NMSE %.3g vs %.3g for "
                     "the reference's RMSNorm", in_name, s_ln, plain);
            st = add_hint(c, "layernorm-vs-rmsnorm", msg, ev);
        }
    }
    free(gamma), free(rms), free(ln), free(col), free(ident);
    parity_tensor_free(&x), parity_tensor_free(&sy), parity_tensor_free(&ry);
    return st;
}

/* --------------------------------------------------------------- RoPE -- */

typedef struct rope_cfg {
    int64_t D;
    double base;
    bool neox;
    int shift; /* position offset */
} rope_cfg;

static void rope_apply(const float *x, double *y, int64_t T, int64_t width, int64_t p0, const rope_cfg *r) {
    const int64_t heads = width / r->D;
    for (int64_t t = 0; t < T; t++) {
        const double pos = (double)(p0 + t + r->shift);
        for (int64_t h = 0; h < heads; h++) {
            const float *v = x + t * width + h * r->D;
            double *o = y + t * width + h * r->D;
            for (int64_t i = 0; i < r->D / 2; i++) {
                const int64_t a = r->neox ? i : 2 * i, b = r->neox ? i + r->D / 2 : 2 * i + 1;
                const double th = pos * pow(r->base, -2.0 * (double)i / (double)r->D);
                o[a] = v[a] * cos(th) - v[b] * sin(th);
                o[b] = v[a] * sin(th) + v[b] * cos(th);
            }
        }
    }
}

static const char *rope_name(const rope_cfg *r) { return r->neox ? "NEOX (i, i+D/2)" : "normal (2i, 2i+1)"; }

static bn_status hint_rope(hint_ctx *c) {
    if (strcmp(c->kind, "attn_q_rope") && strcmp(c->kind, "attn_k_rope")) return BN_OK;
    char pre[64];
    snprintf(pre, sizeof pre, "blk.%d.%s", c->layer, !strcmp(c->kind, "attn_q_rope") ? "attn_q" : "attn_k");
    parity_tensor xin = {0}, s = {0}, r = {0};
    bool fin;
    bn_status st = load_tap(c->rv, c->k, pre, &xin, &fin, c->err);
    if (st || !fin || !load_pair(c, c->tap, &s, &r, &st) || xin.n != r.n || xin.ndim != 2) {
        parity_tensor_free(&xin), parity_tensor_free(&s), parity_tensor_free(&r);
        return st;
    }
    const parity_eval *ev = parity_trace_eval(parity_tapview_trace(c->rv), c->k);
    const int64_t T = xin.shape[0], width = xin.shape[1], p0 = ev ? ev->p0 + (T < ev->n_tokens ? ev->n_tokens - T : 0) : 0;
    double *y = malloc(xin.n * sizeof *y);
    if (!y) st = bn_error_nomem(c->err, xin.n * sizeof *y, "hints: the recomputed RoPE of %s", c->tap);
    /* find the configuration that reproduces the reference ... */
    static const int64_t dims[] = {32, 64, 128, 80, 96, 256, 16};
    static const double bases[] = {10000, 500000, 1000000};
    rope_cfg ref = {0}, sub = {0};
    double best_ref = INFINITY;
    for (size_t di = 0; !st && di < sizeof dims / sizeof dims[0]; di++) {
        if (width % dims[di]) continue;
        for (size_t bi = 0; bi < sizeof bases / sizeof bases[0]; bi++)
            for (int neox = 0; neox < 2; neox++) {
                rope_cfg cfg = {dims[di], bases[bi], neox != 0, 0};
                rope_apply(xin.data, y, T, width, p0, &cfg);
                const double e = nmse_fd(r.data, y, r.n);
                if (e < best_ref) best_ref = e, ref = cfg;
            }
    }
    /* ... then the variant of it that reproduces the subject */
    double best_sub = INFINITY;
    if (!st && best_ref < 1e-8) {
        const rope_cfg variants[] = {{ref.D, ref.base, !ref.neox, 0}, {ref.D, ref.base, ref.neox, 1},
                                     {ref.D, ref.base, ref.neox, -1}, {ref.D, ref.base == 10000 ? 500000 : 10000, ref.neox, 0}};
        for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
            rope_apply(xin.data, y, T, width, p0, &variants[i]);
            const double e = nmse_fd(s.data, y, s.n);
            if (e < best_sub) best_sub = e, sub = variants[i];
        }
        const double plain = nmse_ff(s.data, r.data, s.n);
        if (explains(best_sub, plain)) {
            char msg[512], ev[512];
            if (sub.neox != ref.neox)
                snprintf(msg, sizeof msg, "RoPE pairing: the subject rotates %s pairs where the reference rotates %s "
                         "(matches the reference after swapping rope halves)", rope_name(&sub), rope_name(&ref));
            else if (sub.shift)
                snprintf(msg, sizeof msg, "RoPE positions are off by %+d in the subject", sub.shift);
            else
                snprintf(msg, sizeof msg, "RoPE base: the subject uses θ = %g where the reference uses %g", sub.base,
                         ref.base);
            snprintf(ev, sizeof ev, "from the reference's %s (head_dim %lld, base %g, p0 %lld): reference reproduced to "
                     "NMSE %.2g, subject to %.2g by the variant (plain NMSE %.3g)", pre, (long long)ref.D, ref.base,
                     (long long)p0, best_ref, best_sub, plain);
            st = add_hint(c, sub.neox != ref.neox ? "rope-pairing" : sub.shift ? "rope-positions" : "rope-base", msg, ev);
        }
    }
    free(y);
    parity_tensor_free(&xin), parity_tensor_free(&s), parity_tensor_free(&r);
    return st;
}

/* ------------------------------------------------------ head permutation -- */

static bn_status hint_heads(hint_ctx *c) {
    if (strcmp(c->kind, "attn_q") && strcmp(c->kind, "attn_k") && strcmp(c->kind, "attn_v") &&
        strcmp(c->kind, "attn_q_rope") && strcmp(c->kind, "attn_k_rope"))
        return BN_OK;
    parity_tensor s = {0}, r = {0};
    bn_status st = BN_OK;
    if (!load_pair(c, c->tap, &s, &r, &st) || s.ndim != 2) {
        parity_tensor_free(&s), parity_tensor_free(&r);
        return st;
    }
    const int64_t T = s.shape[0], width = s.shape[1];
    static const int64_t dims[] = {128, 64, 32, 16};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0] && !st; di++) {
        const int64_t D = dims[di], nh = width / D;
        if (width % D || nh < 2) continue;
        int64_t moved = 0, matched = 0, first_from = -1, first_to = -1;
        for (int64_t h = 0; h < nh; h++) {
            int64_t best = -1;
            double best_e = INFINITY;
            for (int64_t g = 0; g < nh; g++) { /* head h of the subject vs head g of the reference */
                double e = 0, d = 0;
                for (int64_t t = 0; t < T; t++)
                    for (int64_t i = 0; i < D; i++) {
                        const double a = s.data[t * width + h * D + i], b = r.data[t * width + g * D + i];
                        e += (a - b) * (a - b), d += b * b;
                    }
                e = d > 0 ? e / d : e;
                if (e < best_e) best_e = e, best = g;
            }
            if (best_e < 1e-10) matched++;
            if (best_e < 1e-10 && best != h) {
                if (moved++ == 0) first_from = h, first_to = best;
            }
        }
        if (matched == nh && moved > 0) {
            char msg[512], ev[512];
            snprintf(msg, sizeof msg, "%s: the subject's heads are a permutation of the reference's (head_dim %lld)",
                     c->tap, (long long)D);
            snprintf(ev, sizeof ev, "all %lld heads match a reference head exactly; %lld are moved, e.g. subject head "
                     "%lld = reference head %lld", (long long)nh, (long long)moved, (long long)first_from,
                     (long long)first_to);
            st = add_hint(c, "head-permutation", msg, ev);
            break;
        }
    }
    parity_tensor_free(&s), parity_tensor_free(&r);
    return st;
}

/* --------------------------------------------------- attention roundings -- */

/* The attention output differs while its inputs (q/k after RoPE, v) agree:
 * the difference lives in the attention itself; a small one is the mark of
 * f16 rounding (an f16 KV cache, q or p rounded to f16) on one side. */
static bn_status hint_attention(hint_ctx *c) {
    if (strcmp(c->kind, "attn_ctx") && strcmp(c->kind, "attn_probs") && strcmp(c->kind, "attn_scores")) return BN_OK;
    static const char *const inputs[] = {"attn_q_rope", "attn_k_rope", "attn_v"};
    char name[64], agree[160] = "";
    size_t n = 0;
    for (size_t i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "blk.%d.%s", c->layer, inputs[i]);
        const parity_tap_result *t = NULL;
        for (size_t j = 0; j < c->r->n_taps; j++)
            if (c->r->taps[j].eval == c->k && !strcmp(c->r->taps[j].name, name)) t = &c->r->taps[j];
        if (!t || t->status != PARITY_TAP_PASS) return BN_OK;
        n += (size_t)snprintf(agree + n, sizeof agree - n, "%s%s", n ? ", " : "", inputs[i]);
    }
    const double nmse = c->tr->m.nmse;
    if (!(nmse < 1e-3)) return BN_OK;
    char msg[512], ev[512];
    snprintf(msg, sizeof msg, "%s differs while its inputs agree, by NMSE %.3g: the size of f16 rounding of K/V "
             "(the KV cache type), q or p on one side — compare the numerics modes of the two traces", c->tap, nmse);
    snprintf(ev, sizeof ev, "%s pass in e%lld; f16 has a relative step of 4.9e-4 (NMSE ≈ 1e-8..1e-6 once mixed)",
             agree, (long long)c->k);
    return add_hint(c, "f16-rounding", msg, ev);
}

/* ----------------------------------------------------------- int8 mode -- */

/* A projection differs while its float input agrees: with the in_q8 taps on
 * both sides, codes that differ by one exactly where x·s is a tie mean the
 * two sides round halves differently. */
static bn_status hint_int8(hint_ctx *c) {
    static const char *const projs[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    static const char *const taps[] = {"attn_q", "attn_k", "attn_v", "attn_out", "ffn_gate", "ffn_up", "ffn_out"};
    static const char *const inputs[] = {"attn_norm", "attn_norm", "attn_norm", "attn_sub_norm", "ffn_norm", "ffn_norm", "ffn_sub_norm"};
    size_t p = 0; /* the projection: from its output tap or its in_q8 tap */
    while (p < 7 && strcmp(c->kind, taps[p]) &&
           !(!strncmp(c->kind, projs[p], strlen(projs[p])) && !strcmp(c->kind + strlen(projs[p]), ".in_q8")))
        p++;
    if (p == 7) return BN_OK;
    char qn[64], sn[64], xn[64];
    snprintf(qn, sizeof qn, "blk.%d.%s.in_q8", c->layer, projs[p]);
    snprintf(sn, sizeof sn, "blk.%d.%s.in_scale", c->layer, projs[p]);
    snprintf(xn, sizeof xn, "blk.%d.%s", c->layer, inputs[p]);
    parity_tensor sq = {0}, rq = {0}, rs = {0}, x = {0};
    bool fs, fx;
    bn_status st = BN_OK;
    if (load_pair(c, qn, &sq, &rq, &st) && !(st = load_tap(c->rv, c->k, sn, &rs, &fs, c->err)) && fs &&
        !(st = load_tap(c->rv, c->k, xn, &x, &fx, c->err)) && fx && x.n == rq.n && rs.n > 0) {
        const size_t K = rq.n / rs.n;
        size_t diff = 0, off_by_one_ties = 0, away = 0;
        for (size_t i = 0; i < rq.n; i++) {
            if (sq.data[i] == rq.data[i]) continue;
            diff++;
            const float v = x.data[i] * rs.data[i / K];
            const bool tie = fabsf(v - truncf(v)) == 0.5f;
            if (tie && fabsf(sq.data[i] - rq.data[i]) == 1) {
                off_by_one_ties++;
                away += fabsf(sq.data[i]) > fabsf(rq.data[i]);
            }
        }
        if (diff && off_by_one_ties == diff) {
            char msg[512], ev[512];
            snprintf(msg, sizeof msg, "int8 rounding mode: the subject rounds halves %s where the reference rounds "
                     "them %s (%s)", away == diff ? "away from zero" : "differently",
                     away == diff ? "to even" : "its own way", qn);
            snprintf(ev, sizeof ev, "%zu codes differ, all by one and all where x·s is exactly k + 0.5", diff);
            st = add_hint(c, "int8-rounding", msg, ev);
        }
    }
    parity_tensor_free(&sq), parity_tensor_free(&rq), parity_tensor_free(&rs), parity_tensor_free(&x);
    return st;
}

/* ---------------------------------------------------- transposed weight -- */

/* The products, in double, of two inputs x1, x2 [T, K] with the model's
 * projection w [K -> N] times `scale`: y1 = x1·Wᵀ (the weight as stored),
 * y2 = x2·Wᵀ, or x2·W when `second_transposed` (a square weight used the
 * other way round). *y1 and *y2 [T, N] are the caller's to free. */
static bn_status project_pair(hint_ctx *c, const bn_weight *w, double scale, const float *x1, const float *x2,
                              bool second_transposed, int64_t T, double **y1, double **y2) {
    const int64_t K = w->k, N = w->n;
    float *W = malloc((size_t)(N * K) * sizeof *W);
    *y1 = malloc((size_t)(T * N) * sizeof **y1), *y2 = malloc((size_t)(T * N) * sizeof **y2);
    bn_status st = BN_OK;
    if (!W || !*y1 || !*y2)
        st = bn_error_nomem(c->err, (size_t)(N * K) * sizeof *W + 2 * (size_t)(T * N) * sizeof **y1,
                            "hints: the products of %s with its weight", c->tap);
    if (!st) st = bn_dequantize_rows(w->type, w->data, K, N, 0, N, W, c->err);
    for (int64_t t = 0; !st && t < T; t++)
        for (int64_t j = 0; j < N; j++) {
            double a = 0, b = 0;
            for (int64_t i = 0; i < K; i++) {
                a += (double)W[j * K + i] * x1[t * K + i]; /* row j of W: output j */
                b += (double)(second_transposed ? W[i * K + j] : W[j * K + i]) * x2[t * K + i]; /* or column j */
            }
            (*y1)[t * N + j] = a * scale, (*y2)[t * N + j] = b * scale;
        }
    free(W);
    if (st) free(*y1), free(*y2), *y1 = *y2 = NULL;
    return st;
}

/* With the model: the reference's input times the weight as stored and as
 * transposed; the subject matching the transposed product (and the
 * reference the stored one) means a transposed weight. Float products: the
 * int8 step of ternary weights leaves NMSE ~1e-5, far below the 1e-2 gap. */
static bn_status hint_transposed(hint_ctx *c) {
    static const char *const taps[] = {"attn_q", "attn_k", "attn_v", "attn_out", "ffn_gate", "ffn_up", "ffn_out"};
    static const char *const inputs[] = {"attn_norm", "attn_norm", "attn_norm", "attn_sub_norm", "ffn_norm", "ffn_norm", "ffn_sub_norm"};
    if (!c->model || c->layer < 0 || c->layer >= c->model->hp.n_layer) return BN_OK;
    size_t p = 0;
    while (p < 7 && strcmp(c->kind, taps[p])) p++;
    if (p == 7) return BN_OK;
    const bn_weight *w = &c->model->layers[c->layer].w[p];
    if (w->k != w->n) return BN_OK; /* only a square weight can be used transposed */
    char in_name[64];
    snprintf(in_name, sizeof in_name, "blk.%d.%s", c->layer, inputs[p]);
    parity_tensor x = {0}, s = {0}, r = {0};
    bool fx;
    bn_status st = load_tap(c->rv, c->k, in_name, &x, &fx, c->err);
    if (st || !fx || !load_pair(c, c->tap, &s, &r, &st) || x.ndim != 2 || x.shape[1] != w->k || s.n != x.n) {
        parity_tensor_free(&x), parity_tensor_free(&s), parity_tensor_free(&r);
        return st;
    }
    const int64_t T = x.shape[0];
    double *y = NULL, *yt = NULL;
    st = project_pair(c, w, 1.0, x.data, x.data, true, T, &y, &yt);
    if (!st) {
        const double s_t = nmse_fd(s.data, yt, s.n), s_n = nmse_fd(s.data, y, s.n), r_n = nmse_fd(r.data, y, r.n);
        if (s_t < 1e-3 && r_n < 1e-3 && s_n > 1e-2) {
            char msg[512], ev[512];
            snprintf(msg, sizeof msg, "%s: the subject multiplies by the transpose of blk.%d.%s.weight", c->tap,
                     c->layer, bn_proj_name((bn_proj)p));
            snprintf(ev, sizeof ev, "from the reference's %s and the model's weight: subject vs x·W NMSE %.3g, vs "
                     "x·Wᵀ %.3g; reference vs x·W %.3g", in_name, s_t, s_n, r_n);
            st = add_hint(c, "transposed-weight", msg, ev);
        }
    }
    free(y), free(yt);
    parity_tensor_free(&x), parity_tensor_free(&s), parity_tensor_free(&r);
    return st;
}

/* ------------------------------------------------- sub-norm not recorded -- */

/* The subject has no sub-norm tap where the reference has one, its input
 * (attn_ctx / ffn_act) agrees, and the projection after it is the first tap
 * to differ: the shape of a port without BitNet's sub-norms (a LLaMA block),
 * which feeds the un-normed value to the projection. With the model the hint
 * measures it: the subject's output against the projection of the input
 * without the norm, the reference's against the projection of its sub-norm
 * (float products; the int8 step leaves NMSE ~1e-5). Without the model it
 * states only what the traces show. */
static bn_status hint_absent_subnorm(hint_ctx *c) {
    const bool attn = !strcmp(c->kind, "attn_out");
    if (!attn && strcmp(c->kind, "ffn_out")) return BN_OK;
    char sub_name[64], in_name[64];
    snprintf(sub_name, sizeof sub_name, "blk.%d.%s", c->layer, attn ? "attn_sub_norm" : "ffn_sub_norm");
    snprintf(in_name, sizeof in_name, "blk.%d.%s", c->layer, attn ? "attn_ctx" : "ffn_act");
    if (parity_tapview_find(c->sv, c->k, sub_name) >= 0 || parity_tapview_find(c->rv, c->k, sub_name) < 0 ||
        parity_tapview_find(c->sv, c->k, in_name) < 0)
        return BN_OK;
    const bn_proj p = attn ? BN_PROJ_O : BN_PROJ_DOWN;
    const bn_weight *w = c->model && c->layer >= 0 && c->layer < c->model->hp.n_layer
                             ? &c->model->layers[c->layer].w[p] : NULL;
    char msg[512], ev[512];
    if (!w) {
        snprintf(msg, sizeof msg, "%s: the subject records no %s, which the reference applies before this "
                 "projection: BitNet's sub-norm is probably missing in the subject (a LLaMA block)", c->tap, sub_name);
        snprintf(ev, sizeof ev, "structure only: %s absent from the subject, present in the reference; %s agrees; "
                 "%s is the first tap to differ (give -m MODEL to measure it against the weights)", sub_name,
                 in_name, c->tap);
        return add_hint(c, "subnorm-missing", msg, ev);
    }
    parity_tensor x = {0}, xn = {0}, s = {0}, r = {0};
    bool fx, fn;
    bn_status st = load_tap(c->sv, c->k, in_name, &x, &fx, c->err);
    if (!st) st = load_tap(c->rv, c->k, sub_name, &xn, &fn, c->err);
    const int64_t K = w->k, N = w->n;
    if (st || !fx || !fn || !load_pair(c, c->tap, &s, &r, &st) || x.ndim != 2 || x.shape[1] != K || xn.n != x.n ||
        s.n != (size_t)(x.shape[0] * N)) {
        parity_tensor_free(&x), parity_tensor_free(&xn), parity_tensor_free(&s), parity_tensor_free(&r);
        return st;
    }
    const int64_t T = x.shape[0];
    const double scale = c->model->layers[c->layer].has_scale[p] ? c->model->layers[c->layer].w_scale[p] : 1.0;
    double *y = NULL, *yn = NULL;
    st = project_pair(c, w, scale, x.data, xn.data, false, T, &y, &yn);
    if (!st) {
        const double s_raw = nmse_fd(s.data, y, s.n), s_norm = nmse_fd(s.data, yn, s.n), r_norm = nmse_fd(r.data, yn, r.n);
        if (s_raw < 1e-3 && r_norm < 1e-3 && s_norm > 1e-2) {
            snprintf(msg, sizeof msg, "%s: the subject records no %s and projects %s unnormed: BitNet's sub-norm is "
                     "missing in the subject (a LLaMA block)", c->tap, sub_name, in_name);
            snprintf(ev, sizeof ev, "%s absent from the subject; with the model's blk.%d.%s.weight: subject %s vs "
                     "W·%s NMSE %.3g, vs W·(reference %s) %.3g; reference vs W·%s %.3g", sub_name, c->layer,
                     bn_proj_name(p), c->tap, in_name, s_raw, sub_name, s_norm, sub_name, r_norm);
            st = add_hint(c, "subnorm-missing", msg, ev);
        }
    }
    free(y), free(yn);
    parity_tensor_free(&x), parity_tensor_free(&xn), parity_tensor_free(&s), parity_tensor_free(&r);
    return st;
}

/* ------------------------------------------------------------- the set -- */

/* A warning rather than a diagnosis, so given whatever the verdict: two
 * traces of different model files differ in their weights before any op. */
static bn_status hint_model_mismatch(parity_compare_result *r, const parity_trace *st, const parity_trace *rt,
                                     bn_error *err) {
    const char *ss = parity_trace_get(st, "model.sha256"), *rs = parity_trace_get(rt, "model.sha256");
    if (!ss || !rs || !strcmp(ss, rs)) return BN_OK;
    const char *sp = parity_trace_get(st, "model.path"), *rp = parity_trace_get(rt, "model.path");
    if (!sp) sp = parity_trace_get(st, "model.file");
    if (!rp) rp = parity_trace_get(rt, "model.file");
    char msg[256], ev[512];
    snprintf(msg, sizeof msg, "the two traces were recorded from different model files (sha256 %.12s... vs "
             "%.12s...): differences can come from the weights, not from the engines", ss, rs);
    snprintf(ev, sizeof ev, "subject model %s sha256 %s; reference model %s sha256 %s", sp ? sp : "?", ss,
             rp ? rp : "?", rs);
    return parity_compare_add_hint(r, "model-mismatch", msg, ev, err);
}

bn_status parity_hints_find(parity_compare_result *r, const parity_tapview *subject,
                                const parity_tapview *reference, const bn_model *model, bn_error *err) {
    bn_status st = hint_model_mismatch(r, parity_tapview_trace(subject), parity_tapview_trace(reference), err);
    if (st) return st;
    /* A token mismatch is diagnosed by the comparison itself (nothing else is compared). */
    if (r->tokenization_mismatch) return BN_OK;
    if (r->pass || !r->first.found) return BN_OK;
    hint_ctx c = {.r = r, .sv = subject, .rv = reference, .k = r->first.eval, .tap = r->first.tap,
                  .kind = kind_of(r->first.tap), .layer = r->first.layer, .tr = &r->taps[r->first.tap_index],
                  .model = model, .err = err};
    bn_status (*const analyzers[])(hint_ctx *) = {hint_nan_origin, hint_activation, hint_norm,      hint_rope,
                                                  hint_heads,      hint_int8,       hint_transposed, hint_scale,
                                                  hint_attention,  hint_absent_subnorm};
    for (size_t i = 0; i < sizeof analyzers / sizeof analyzers[0] && !st; i++) st = analyzers[i](&c);
    return st;
}
