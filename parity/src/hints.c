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
#include "bitnet/matmul.h"
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
    const bn_model *model;         /* the subject's model; may be NULL */
    const bn_model *ref_model;     /* the reference's model; may be NULL */
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
    if (near && !strcmp(near, "-1")) { /* a sign, not a scale: said once (the weights may have said it already) */
        for (size_t i = 0; i < c->r->n_hints; i++)
            if (!strcmp(c->r->hints[i].name, "sign-flip")) return BN_OK;
        snprintf(msg, sizeof msg, "subject = −reference at %s: a sign flip (a negated weight), not a scale%s", c->tap,
                 is_projection_tap(c->kind) ? "; give -m MODEL to name the weight" : "");
        snprintf(ev, sizeof ev, "scale_fit %.9g leaves NMSE %.3g of the %.3g before the fit", m->scale, m->scale_nmse,
                 m->nmse);
        return add_hint(c, "sign-flip", msg, ev);
    }
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

/* -------------------------------------------------- weight-aware hints -- */

/* The classic export bugs, each a transformation B of a projection's weight
 * W [N rows, K inputs] (flat row-major, as dequantized) with its inverse.
 * Every one but the clamp moves elements only, so it is an index map. */
typedef enum wbug {
    WB_TRANSPOSE,      /* Wᵀ's data under W's shape (square: plainly transposed) */
    WB_HF_PERMUTE,     /* q/k rows within each head: NEOX halves -> interleaved pairs (HF `permute`) */
    WB_HF_UNPERMUTE,   /* the other way: interleaved pairs -> NEOX halves */
    WB_NEGATE,         /* −W */
    WB_I2S_LINEAR_HI,  /* I2_S codes packed 4 consecutive per byte, bits 7..6 first */
    WB_I2S_LINEAR_LO,  /* the same, bits 1..0 first */
    WB_I2S_SCALE_CLAMP,/* I2_S scale clamped to [1e-3, 1e3] (the engine's fault i2s-scale-clamp) */
    WB_COUNT
} wbug;

typedef struct wbug_def {
    const char *hint;   /* hint id */
    const char *stored; /* the weight "stored ..." with the bug */
    const char *used;   /* "the subject multiplies by " + this (%s: the weight's name) */
    const char *label;  /* B(W) in evidence */
    const char *undo;   /* B⁻¹(W) in evidence; NULL when B has no inverse */
} wbug_def;

static const wbug_def wbugs[WB_COUNT] = {
    [WB_TRANSPOSE] = {"transposed-weight", "transposed, mis-strided (Wᵀ's data under W's shape)", "the transpose of %s",
                      "Wᵀ", "Wᵀ"},
    [WB_HF_PERMUTE] = {"qk-permute", "with its rows permuted within each head as HF's `permute` does (NEOX halves → "
                       "interleaved pairs)", "%s with its rows permuted within each head as HF's `permute` does",
                       "permute(W)", "unpermute(W)"},
    [WB_HF_UNPERMUTE] = {"qk-permute", "with its rows permuted within each head the other way (interleaved pairs → "
                         "NEOX halves: HF's `permute` undone)", "%s with HF's `permute` undone within each head",
                         "unpermute(W)", "permute(W)"},
    [WB_NEGATE] = {"sign-flip", "negated (sign-flipped)", "%s negated", "−W", "−W"},
    [WB_I2S_LINEAR_HI] = {"i2s-packing", "with its I2_S codes packed 4 consecutive per byte (bits 7..6 first) "
                          "instead of bitnet.cpp's 128-element interleave", "%s decoded as 4 consecutive I2_S codes "
                          "per byte (bits 7..6 first)", "W packed linearly (hi-first)", "W read linearly (hi-first)"},
    [WB_I2S_LINEAR_LO] = {"i2s-packing", "with its I2_S codes packed 4 consecutive per byte (bits 1..0 first) "
                          "instead of bitnet.cpp's 128-element interleave", "%s decoded as 4 consecutive I2_S codes "
                          "per byte (bits 1..0 first)", "W packed linearly (lo-first)", "W read linearly (lo-first)"},
    [WB_I2S_SCALE_CLAMP] = {"i2s-scale-clamp", "with its I2_S scale clamped to [1e-3, 1e3]",
                            "%s with its I2_S scale clamped to [1e-3, 1e3]", "clamp(W)", NULL},
};

/* The element of W that lands at flat position i of B(W) (inverse: of
 * B⁻¹(W)); heads nh for the q/k permutations. */
static int64_t wbug_source(wbug b, bool inverse, int64_t i, int64_t N, int64_t K, int64_t nh) {
    switch (b) {
    case WB_TRANSPOSE: return inverse ? (i % K) * N + i / K : (i % N) * K + i / N;
    case WB_HF_PERMUTE:
    case WB_HF_UNPERMUTE: {
        const int64_t D = N / nh, r = i / K, g = r / D, q = r % D;
        const bool interleave = (b == WB_HF_PERMUTE) != inverse; /* rows become interleaved pairs */
        const int64_t src = interleave ? (q % 2) * (D / 2) + q / 2 : 2 * (q % (D / 2)) + q / (D / 2);
        return (g * D + src) * K + i % K;
    }
    case WB_I2S_LINEAR_HI:
    case WB_I2S_LINEAR_LO: {
        /* bitnet.cpp: element s·32 + t of 128-block b sits in byte b·32 + t at bit shift 6 − 2s; a linear
         * packing puts element j in byte j/4 at shift 6 − 2(j mod 4) (hi-first) or 2(j mod 4) (lo-first). */
        const bool hi = b == WB_I2S_LINEAR_HI;
        if (inverse) { /* the bytes read linearly: position i holds the interleaved element of its byte/shift */
            const int64_t byte = i / 4, s = hi ? i % 4 : 3 - i % 4;
            return (byte / 32) * 128 + s * 32 + byte % 32;
        }
        const int64_t blk = i / 128, s = (i % 128) / 32, t = i % 32; /* W packed linearly, read interleaved */
        return (blk * 32 + t) * 4 + (hi ? s : 3 - s);
    }
    default: return i;
    }
}

/* I2_S keeps its scale in the float after the codes. */
static float i2s_scale(const bn_weight *w) {
    float s;
    memcpy(&s, (const uint8_t *)w->data + w->n * w->k / 4, sizeof s);
    return s;
}

/* out = B(W) (or B⁻¹(W)); false when B does not apply to this weight. */
static bool wbug_apply(wbug b, bool inverse, const bn_weight *w, bn_proj p, const bn_hparams *hp, const float *W,
                       float *out) {
    const int64_t N = w->n, K = w->k, n = N * K;
    int64_t nh = 1;
    double factor = 1;
    switch (b) {
    case WB_HF_PERMUTE:
    case WB_HF_UNPERMUTE:
        if (p != BN_PROJ_Q && p != BN_PROJ_K) return false;
        nh = p == BN_PROJ_Q ? hp->n_head : hp->n_head_kv;
        if (nh < 1 || N % nh || (N / nh) % 2) return false;
        break;
    case WB_NEGATE: factor = -1; break;
    case WB_I2S_LINEAR_HI:
    case WB_I2S_LINEAR_LO:
        if (w->type != BN_TYPE_I2_S || n % 128) return false;
        break;
    case WB_I2S_SCALE_CLAMP: {
        if (w->type != BN_TYPE_I2_S || inverse) return false;
        const float s = i2s_scale(w);
        if (!(s < 1e-3f || s > 1e3f)) return false;
        factor = (double)(s < 1e-3f ? 1e-3f : 1e3f) / s;
        break;
    }
    default: break;
    }
    for (int64_t i = 0; i < n; i++) out[i] = (float)(W[wbug_source(b, inverse, i, N, K, nh)] * factor);
    return true;
}

/* y [T, N] = x [T, K] times the dense weight W [N, K] quantized back into
 * w's own type, through the engine's matmul: the activations are quantized
 * as the engine quantizes them, so a right candidate reproduces a tap to
 * rounding (NMSE ~1e-14). scale: a `bitnet` arch's per-tensor scale. */
static bn_status project_as_engine(hint_ctx *c, const bn_weight *w, const float *W, float scale, const float *x,
                                   int64_t T, float *y) {
    uint64_t nbytes = 0;
    bn_status st = bn_type_tensor_nbytes(w->type, w->k, w->k * w->n, &nbytes, c->err);
    if (st) return st;
    bn_weight q = {.type = w->type, .k = w->k, .n = w->n};
    const size_t scratch_bytes = bn_matmul_scratch_bytes(w, T);
    void *data = malloc((size_t)nbytes), *scratch = malloc(scratch_bytes ? scratch_bytes : 1);
    if (!data || !scratch)
        st = bn_error_nomem(c->err, (size_t)nbytes + scratch_bytes, "hints: a candidate weight for %s", c->tap);
    if (!st) st = bn_quantize(w->type, W, w->k, w->n, data, (size_t)nbytes, c->err);
    q.data = data;
    if (!st) st = bn_matmul(NULL, &q, x, T, y, NULL, scratch, scratch_bytes, c->err);
    for (int64_t i = 0; !st && scale != 1 && i < T * w->n; i++) y[i] *= scale;
    free(data), free(scratch);
    return st;
}

static const char *const proj_taps[] = {"attn_q", "attn_k", "attn_v", "attn_out", "ffn_gate", "ffn_up", "ffn_out"};
static const char *const proj_inputs[] = {"attn_norm", "attn_norm", "attn_norm", "attn_sub_norm",
                                          "ffn_norm",  "ffn_norm",  "ffn_sub_norm"};

/* What one model's weight says about the failing projection. role 0: the
 * subject's model (the file the user has): the reference reproduced by
 * B⁻¹(stored) means the file holds B(W); the subject reproduced by B(stored)
 * while the reference matches the stored weight means the subject's engine
 * uses it wrongly. role 1: the reference's model: the subject reproduced by
 * B(W_ref). One hint at most; *found tells. */
static bn_status weight_candidates(hint_ctx *c, const bn_model *m, int role, bn_proj p, const parity_tensor *x,
                                   const parity_tensor *s, const parity_tensor *r, const char *in_name, bool *found) {
    const bn_weight *w = &m->layers[c->layer].w[p];
    const int64_t T = x->shape[0], N = w->n, K = w->k;
    if (x->shape[1] != K || s->n != (size_t)(T * N) || r->n != s->n) return BN_OK;
    const float scale = m->layers[c->layer].has_scale[p] ? m->layers[c->layer].w_scale[p] : 1.0f;
    float *W = malloc((size_t)(N * K) * sizeof *W), *B = malloc((size_t)(N * K) * sizeof *B),
          *y0 = malloc((size_t)(T * N) * sizeof *y0), *y = malloc((size_t)(T * N) * sizeof *y);
    bn_status st = BN_OK;
    if (!W || !B || !y0 || !y)
        st = bn_error_nomem(c->err, 2 * (size_t)(N * K + T * N) * sizeof *W, "hints: the weights of %s", c->tap);
    if (!st) st = bn_weight_dequantize_rows(w, 0, N, W, c->err);
    if (!st) st = project_as_engine(c, w, W, scale, x->data, T, y0);
    const double e_s0 = st ? 0 : nmse_ff(s->data, y0, s->n), e_r0 = st ? 0 : nmse_ff(r->data, y0, r->n);
    char wname[64];
    snprintf(wname, sizeof wname, "blk.%d.%s.weight", c->layer, bn_proj_name(p));
    const char *whose = role ? "the reference's model" : "the subject's model";
    for (int b = 0; !st && !*found && b < WB_COUNT; b++)
        for (int inverse = 0; !st && !*found && inverse < 2; inverse++) {
            if (role == 1 && inverse) continue; /* the reference's weight: only B(W_ref) can be the subject's */
            if (!wbug_apply((wbug)b, inverse, w, p, &m->hp, W, B)) continue;
            st = project_as_engine(c, w, B, scale, x->data, T, y);
            if (st) break;
            const double e_s = nmse_ff(s->data, y, s->n), e_r = nmse_ff(r->data, y, r->n);
            const wbug_def *d = &wbugs[b];
            const bool square = N == K;
            const char *stored = b == WB_TRANSPOSE && square ? "transposed" : d->stored;
            char msg[640], ev[640], used[256];
            if (role == 0 && inverse && explains(e_r, e_r0) && e_s0 < 1e-6) {
                snprintf(msg, sizeof msg, "%s: the subject's model stores %s %s: the reference is reproduced from "
                         "it with that undone", c->tap, wname, stored);
                snprintf(ev, sizeof ev, "from the reference's %s and %s's %s: reference vs x·W as stored NMSE %.3g, "
                         "vs x·%s %.3g; subject vs x·W as stored %.3g", in_name, whose, wname, e_r0,
                         b == WB_TRANSPOSE && !square ? "(W's data read as [K, N], transposed)" : d->undo, e_r,
                         e_s0);
            } else if (role == 0 && !inverse && explains(e_s, e_s0) && e_r0 < 1e-6) {
                snprintf(used, sizeof used, d->used, wname);
                if (b == WB_TRANSPOSE && !square)
                    snprintf(used, sizeof used, "%s mis-strided (Wᵀ's data under W's shape)", wname);
                snprintf(msg, sizeof msg, "%s: the subject multiplies by %s", c->tap, used);
                snprintf(ev, sizeof ev, "from the reference's %s and %s's %s: subject vs x·%s NMSE %.3g, vs x·W as "
                         "stored %.3g; reference vs x·W as stored %.3g", in_name, whose, wname, d->label, e_s, e_s0,
                         e_r0);
            } else if (role == 1 && explains(e_s, e_s0) && e_r0 < 1e-6) {
                snprintf(msg, sizeof msg, "%s: the subject computes with the reference model's %s %s", c->tap, wname,
                         stored);
                snprintf(ev, sizeof ev, "from the reference's %s and the reference's model's %s: subject vs x·%s "
                         "NMSE %.3g, vs x·W %.3g; reference vs x·W %.3g", in_name, wname, d->label, e_s, e_s0, e_r0);
            } else {
                continue;
            }
            if (b == WB_I2S_SCALE_CLAMP) {
                const size_t n = strlen(msg);
                snprintf(msg + n, sizeof msg - n, " (scale %g)", (double)i2s_scale(w));
            }
            st = add_hint(c, d->hint, msg, ev);
            *found = true;
        }
    free(W), free(B), free(y0), free(y);
    return st;
}

/* With a model (the subject's, the reference's or both): the failing
 * projection recomputed from the reference's recorded input with the weight
 * as stored and with each classic export bug applied or undone (wbugs);
 * the candidate that reproduces one side while the stored weight reproduces
 * the other names the bug. */
static bn_status hint_weights(hint_ctx *c) {
    size_t p = 0;
    while (p < BN_PROJ_COUNT && strcmp(c->kind, proj_taps[p])) p++;
    if (p == BN_PROJ_COUNT || c->layer < 0) return BN_OK;
    const bn_model *models[2] = {c->model, c->ref_model};
    char in_name[64];
    snprintf(in_name, sizeof in_name, "blk.%d.%s", c->layer, proj_inputs[p]);
    parity_tensor x = {0}, s = {0}, r = {0};
    bool fx, found = false;
    bn_status st = load_tap(c->rv, c->k, in_name, &x, &fx, c->err);
    if (!st && fx && x.ndim == 2 && load_pair(c, c->tap, &s, &r, &st))
        for (int role = 0; !st && !found && role < 2; role++)
            if (models[role] && c->layer < models[role]->hp.n_layer)
                st = weight_candidates(c, models[role], role, (bn_proj)p, &x, &s, &r, in_name, &found);
    parity_tensor_free(&x), parity_tensor_free(&s), parity_tensor_free(&r);
    return st;
}

/* ------------------------------------------- per-channel ratio (traces) -- */

/* The model's gamma of a norm tap, or NULL. */
static const float *norm_gamma(const bn_model *m, const char *kind, int layer, int64_t width) {
    if (!m) return NULL;
    const float *g = NULL;
    if (!strcmp(kind, "output_norm")) g = m->output_norm;
    else if (layer >= 0 && layer < m->hp.n_layer) {
        const bn_layer *l = &m->layers[layer];
        g = !strcmp(kind, "attn_norm") ? l->attn_norm : !strcmp(kind, "ffn_norm") ? l->ffn_norm
            : !strcmp(kind, "attn_sub_norm") ? l->attn_sub_norm : !strcmp(kind, "ffn_sub_norm") ? l->ffn_sub_norm
            : NULL;
    }
    const int64_t n = !strcmp(kind, "ffn_sub_norm") ? m->hp.n_ff : !strcmp(kind, "attn_sub_norm")
                      ? m->hp.n_head * m->hp.head_dim : m->hp.n_embd;
    return g && n == width ? g : NULL;
}

/* subject = c_i · reference per channel i, the same c_i on every token (two
 * or more) while no single constant fits: a per-channel weight differs —
 * a norm's gamma. With the subject's model, a gamma of all ones says the
 * ratio is 1/γ of the reference (a sub-norm's weights replaced by ones);
 * with the reference's model the ratio is checked against γ_s/γ_r. */
static bn_status hint_channel_scale(hint_ctx *c) {
    if (c->tr->status != PARITY_TAP_FAIL) return BN_OK;
    parity_tensor s = {0}, r = {0};
    bn_status st = BN_OK;
    if (!load_pair(c, c->tap, &s, &r, &st) || s.ndim != 2 || s.shape[0] < 2) {
        parity_tensor_free(&s), parity_tensor_free(&r);
        return st;
    }
    const int64_t T = s.shape[0], W = s.shape[1];
    double *ratio = malloc((size_t)W * sizeof *ratio), *fit = malloc(s.n * sizeof *fit);
    bool *measured = malloc((size_t)W * sizeof *measured);
    if (!ratio || !fit || !measured)
        st = bn_error_nomem(c->err, ((size_t)W + s.n) * sizeof *ratio + (size_t)W, "hints: ratios of %s", c->tap);
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; !st && i < W; i++) { /* least-squares c_i per column */
        double sr = 0, rr = 0;
        for (int64_t t = 0; t < T; t++) {
            const double a = s.data[t * W + i], b = r.data[t * W + i];
            sr += a * b, rr += b * b;
        }
        ratio[i] = rr > 0 ? sr / rr : 0;
        measured[i] = rr > 0;
        if (rr > 0) lo = fmin(lo, ratio[i]), hi = fmax(hi, ratio[i]);
        for (int64_t t = 0; t < T; t++) fit[t * W + i] = ratio[i] * r.data[t * W + i];
    }
    if (!st && hi > lo && (hi - lo) > 1e-3 * fmax(fabs(hi), fabs(lo))) {
        const double plain = nmse_ff(s.data, r.data, s.n), e_fit = nmse_fd(s.data, fit, s.n);
        if (e_fit < 1e-10 && e_fit * 1e4 < plain) {
            char msg[640], ev[640];
            int n = snprintf(msg, sizeof msg, "%s: subject/reference is a constant per channel (from %.4g to %.4g, the "
                             "same on all %lld tokens): a per-channel weight differs, a norm's gamma",
                             c->tap, lo, hi, (long long)T);
            int e = snprintf(ev, sizeof ev, "one ratio per channel leaves NMSE %.3g of the %.3g before the fit",
                             e_fit, plain);
            const float *gs = norm_gamma(c->model, c->kind, c->layer, W);
            const float *gr = norm_gamma(c->ref_model, c->kind, c->layer, W);
            if (gs) {
                double dev = 0;
                for (int64_t i = 0; i < W; i++) dev = fmax(dev, fabs(gs[i] - 1.0));
                if (dev == 0)
                    snprintf(msg + n, sizeof msg - (size_t)n, "; the subject's model has %s.weight all ones: the ratio "
                             "is 1/γ of the reference's gamma (the norm's weights replaced by ones)", c->tap);
                double ee = 0, dd = 0; /* the ratio against γ_s/γ_r, on the channels it was measured on */
                for (int64_t i = 0; gr && i < W; i++) {
                    if (!measured[i]) continue; /* zero on every token (a dead relu² channel): no ratio */
                    const double want = gr[i] != 0 ? (double)gs[i] / gr[i] : 0;
                    ee += (ratio[i] - want) * (ratio[i] - want), dd += want * want;
                }
                if (gr)
                    snprintf(ev + e, sizeof ev - (size_t)e, "; ratio vs γ_subject/γ_reference from the two models: "
                             "NMSE %.3g", dd > 0 ? ee / dd : ee);
                else if (dev == 0)
                    snprintf(ev + e, sizeof ev - (size_t)e, "; %s.weight in the subject's model: %lld ones",
                             c->tap, (long long)W);
            }
            st = add_hint(c, "channel-scale", msg, ev);
        }
    }
    free(ratio), free(fit), free(measured);
    parity_tensor_free(&s), parity_tensor_free(&r);
    return st;
}

/* ------------------------------------- q/k rows permuted within heads -- */

static bool is_qk_tap(const char *kind) {
    return !strcmp(kind, "attn_q") || !strcmp(kind, "attn_k") || !strcmp(kind, "attn_q_rope") ||
           !strcmp(kind, "attn_k_rope");
}

typedef struct head_perm {
    int64_t D;        /* head_dim the permutation stays within */
    int64_t moved;    /* columns that are not in place */
    int64_t from, to; /* an example: subject row `from` (within its head) = reference row `to` */
    int hf;           /* 1: HF `permute` (subject interleaved, reference NEOX halves), 2: the other way, 0: other */
    double worst;     /* worst NMSE of a matched column */
} head_perm;

/* Subject [T, W] equals reference up to one permutation of the columns
 * within each head of D, for the smallest D that works (the model's head_dim
 * first when known): every subject column equals (NMSE < 1e-10 over the
 * tokens) a reference column of the same head. */
static bool within_head_permutation(const parity_tensor *s, const parity_tensor *r, int64_t model_D, head_perm *out) {
    if (s->ndim != 2 || r->n != s->n) return false;
    const int64_t T = s->shape[0], W = s->shape[1];
    const int64_t dims[] = {model_D, 16, 32, 64, 128, 256};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int64_t D = dims[di];
        if (D < 2 || D > W || W % D || (di > 0 && D == model_D)) continue;
        head_perm h = {.D = D, .from = -1, .to = -1, .hf = 3};
        bool all = true;
        for (int64_t j = 0; all && j < W; j++) {
            const int64_t g = j / D;
            const int64_t q = j % D, hf = (q % 2) * (D / 2) + q / 2, unhf = 2 * (q % (D / 2)) + q / (D / 2);
            /* the HF rows first: of columns that tie (one token, zeros), the named permutation is kept */
            const int64_t order[3] = {hf, unhf, -1};
            int64_t best = -1;
            double best_e = INFINITY;
            for (int o = 0; o < 3 && !(best_e < 1e-10); o++)
                for (int64_t cand = o < 2 ? order[o] : 0; cand < (o < 2 ? order[o] + 1 : D); cand++) {
                    double e = 0, d = 0;
                    for (int64_t t = 0; t < T; t++) {
                        const double a = s->data[t * W + j], b = r->data[t * W + g * D + cand];
                        e += (a - b) * (a - b), d += b * b;
                    }
                    e = d > 0 ? e / d : e;
                    if (e < best_e) best_e = e, best = cand;
                }
            all = best_e < 1e-10;
            if (!all) break;
            h.worst = fmax(h.worst, best_e);
            if (best != q && h.moved++ == 0) h.from = q, h.to = best;
            if (best != hf) h.hf &= ~1;
            if (best != unhf) h.hf &= ~2;
        }
        if (all && h.moved > 0) {
            h.hf = h.hf == 1 ? 1 : h.hf == 2 ? 2 : 0;
            *out = h;
            return true;
        }
        if (di == 0 && all) return false; /* equal at the model's head_dim: nothing moved */
    }
    return false;
}

static const char *head_perm_name(const head_perm *h) {
    return h->hf == 1 ? "HF's `permute` interleave (the reference's NEOX halves as interleaved pairs)"
           : h->hf == 2 ? "HF's `permute` undone (the reference's interleaved pairs as NEOX halves)"
                        : "a permutation that is not HF's";
}

static bn_status hint_qk_rows(hint_ctx *c) {
    if (!is_qk_tap(c->kind)) return BN_OK;
    parity_tensor s = {0}, r = {0};
    bn_status st = BN_OK;
    head_perm h;
    const int64_t model_D = c->model ? c->model->hp.head_dim : c->ref_model ? c->ref_model->hp.head_dim : 0;
    if (load_pair(c, c->tap, &s, &r, &st) && within_head_permutation(&s, &r, model_D, &h)) {
        char msg[640], ev[640];
        snprintf(msg, sizeof msg, "%s equals the reference's up to a permutation of the rows within each head "
                 "(head_dim %lld): %s", c->tap, (long long)h.D, head_perm_name(&h));
        snprintf(ev, sizeof ev, "all %lld columns over %lld token(s) equal a column of the same head in the reference "
                 "(worst NMSE %.2g); %lld moved, e.g. row %lld of each head = the reference's row %lld; NMSE as "
                 "compared %.3g", (long long)s.shape[1], (long long)s.shape[0], h.worst, (long long)h.moved,
                 (long long)h.from, (long long)h.to, nmse_ff(s.data, r.data, s.n));
        st = add_hint(c, "qk-row-permutation", msg, ev);
    }
    parity_tensor_free(&s), parity_tensor_free(&r);
    return st;
}

/* ------------------------------------------- equivalent rotary layout -- */

static const parity_tap_result *tap_result(const parity_compare_result *r, int64_t eval, const char *name) {
    for (size_t j = 0; j < r->n_taps; j++)
        if (r->taps[j].eval == eval && !strcmp(r->taps[j].name, name)) return &r->taps[j];
    return NULL;
}

/* Every failing tap is a q/k tap (before or after RoPE) equal to the
 * reference's up to a permutation within heads, and the attention of those
 * layers agrees from its scores on (attn_scores when recorded, else
 * attn_ctx): the two models are the same model in the two rotary layouts
 * (interleaved rows with normal RoPE = NEOX halves with NEOX RoPE). */
static bn_status hint_equivalent_layout(hint_ctx *c) {
    if (!is_qk_tap(c->kind)) return BN_OK;
    const parity_compare_result *res = c->r;
    const int64_t model_D = c->model ? c->model->hp.head_dim : c->ref_model ? c->ref_model->hp.head_dim : 0;
    size_t n_fail = 0, n_scores = 0, n_ctx = 0, n_hf = 0;
    bn_status st = BN_OK;
    bool ok = true;
    int64_t D = 0;
    for (size_t i = 0; ok && !st && i < res->n_taps; i++) {
        const parity_tap_result *t = &res->taps[i];
        if (t->status == PARITY_TAP_PASS || t->status == PARITY_TAP_MISSING_SUBJECT ||
            t->status == PARITY_TAP_MISSING_REFERENCE || t->status == PARITY_TAP_POLICY_SKIP)
            continue;
        ok = t->status == PARITY_TAP_FAIL && is_qk_tap(kind_of(t->name)) && t->layer >= 0;
        if (!ok) break;
        parity_tensor s = {0}, r = {0};
        bool fs, fr;
        head_perm h;
        st = load_tap(c->sv, t->eval, t->name, &s, &fs, c->err);
        if (!st) st = load_tap(c->rv, t->eval, t->name, &r, &fr, c->err);
        ok = !st && fs && fr && within_head_permutation(&s, &r, model_D, &h) && (!D || D == h.D);
        parity_tensor_free(&s), parity_tensor_free(&r);
        if (!ok) break;
        D = h.D, n_fail++, n_hf += h.hf != 0;
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_scores", t->layer);
        const parity_tap_result *sc = tap_result(res, t->eval, name);
        snprintf(name, sizeof name, "blk.%d.attn_ctx", t->layer);
        const parity_tap_result *cx = tap_result(res, t->eval, name);
        const bool sc_cmp = sc && (sc->status == PARITY_TAP_PASS || sc->status == PARITY_TAP_FAIL);
        const bool cx_cmp = cx && (cx->status == PARITY_TAP_PASS || cx->status == PARITY_TAP_FAIL);
        ok = sc_cmp || cx_cmp; /* the attention after it must have been compared (and passed: no other fail) */
        n_scores += sc_cmp, n_ctx += cx_cmp;
    }
    if (st || !ok || !n_fail) return st;
    const bool scores = n_scores == n_fail;
    char msg[512], ev[640];
    snprintf(msg, sizeof msg, "equivalent rotary layout: attention identical from %s on", scores ? "attn_scores"
             : "attn_ctx (attn_scores not recorded)");
    snprintf(ev, sizeof ev, "all %zu failing taps are q/k (before or after RoPE), each equal to the reference's up to a "
             "permutation of the rows within each head of %lld (%zu of them HF's `permute` interleave); %s pass%s "
             "in every such layer and evaluation, and no other tap fails", n_fail, (long long)D, n_hf,
             scores ? "attn_scores" : "attn_ctx", scores ? "" : "es");
    return add_hint(c, "equivalent-rotary-layout", msg, ev);
}

bool parity_hints_accept(parity_compare_result *r, const parity_policy *policy) {
    static const char *const equivalences[] = {"equivalent-rotary-layout"};
    if (r->pass || r->tokenization_mismatch) return false;
    for (size_t i = 0; i < r->n_hints; i++)
        for (size_t e = 0; e < sizeof equivalences / sizeof equivalences[0]; e++)
            if (!strcmp(r->hints[i].name, equivalences[e]) && parity_policy_accepts(policy, equivalences[e]) &&
                r->n_accepted < sizeof r->accepted / sizeof r->accepted[0]) {
                r->accepted[r->n_accepted++] = equivalences[e];
                r->pass = 1;
            }
    return r->pass != 0;
}


/* The products, in double, of two inputs x1, x2 [T, K] with the model's
 * projection w [K -> N] times `scale`: y1 = x1·Wᵀ, y2 = x2·Wᵀ. *y1 and *y2
 * [T, N] are the caller's to free. */
static bn_status project_pair(hint_ctx *c, const bn_weight *w, double scale, const float *x1, const float *x2,
                              int64_t T, double **y1, double **y2) {
    const int64_t K = w->k, N = w->n;
    float *W = malloc((size_t)(N * K) * sizeof *W);
    *y1 = malloc((size_t)(T * N) * sizeof **y1), *y2 = malloc((size_t)(T * N) * sizeof **y2);
    bn_status st = BN_OK;
    if (!W || !*y1 || !*y2)
        st = bn_error_nomem(c->err, (size_t)(N * K) * sizeof *W + 2 * (size_t)(T * N) * sizeof **y1,
                            "hints: the products of %s with its weight", c->tap);
    if (!st) st = bn_weight_dequantize_rows(w, 0, N, W, c->err);
    for (int64_t t = 0; !st && t < T; t++)
        for (int64_t j = 0; j < N; j++) {
            double a = 0, b = 0;
            for (int64_t i = 0; i < K; i++) {
                a += (double)W[j * K + i] * x1[t * K + i]; /* row j of W: output j */
                b += (double)W[j * K + i] * x2[t * K + i];
            }
            (*y1)[t * N + j] = a * scale, (*y2)[t * N + j] = b * scale;
        }
    free(W);
    if (st) free(*y1), free(*y2), *y1 = *y2 = NULL;
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
    st = project_pair(c, w, scale, x.data, xn.data, T, &y, &yn);
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

/* ----------------------------------------------------- lm_head type -- */

/* The first divergence is the logits and the traces record different
 * lm_head types (settings.lm_head: `--lm-head q8_0`; absent = stored): the
 * difference is that quantization, which every earlier tap must then show
 * by being bit-identical. Measured: how many of them are. */
static bn_status hint_lm_head(hint_ctx *c) {
    if (strcmp(c->kind, "logits")) return BN_OK;
    const char *ls = parity_trace_lm_head(parity_tapview_trace(c->sv));
    const char *lr = parity_trace_lm_head(parity_tapview_trace(c->rv));
    if (!strcmp(ls, lr)) return BN_OK;
    size_t before = 0, same = 0;
    for (size_t i = 0; i < c->r->first.tap_index; i++) {
        const parity_tap_result *t = &c->r->taps[i];
        if (t->status != PARITY_TAP_PASS && t->status != PARITY_TAP_FAIL) continue;
        before++;
        same += t->m.bit_identical != 0;
    }
    char msg[512], ev[512];
    snprintf(msg, sizeof msg,
             "the subject's lm_head is %s and the reference's %s (settings.lm_head): the logits differ by that "
             "quantization%s",
             ls, lr, same == before ? ", every earlier tap is bit-identical" : ", but earlier taps differ too");
    snprintf(ev, sizeof ev, "%zu of %zu earlier taps bit-identical; e%lld logits nmse %.3g, cosine %.9f", same,
             before, (long long)c->k, c->tr->m.nmse, c->tr->m.cosine);
    return add_hint(c, "lm-head-type", msg, ev);
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

bn_status parity_hints_find(parity_compare_result *r, const parity_tapview *subject, const parity_tapview *reference,
                            const bn_model *model, const bn_model *reference_model, bn_error *err) {
    bn_status st = hint_model_mismatch(r, parity_tapview_trace(subject), parity_tapview_trace(reference), err);
    if (st) return st;
    /* A token mismatch is diagnosed by the comparison itself (nothing else is compared). */
    if (r->tokenization_mismatch) return BN_OK;
    if (r->pass || !r->first.found) return BN_OK;
    hint_ctx c = {.r = r, .sv = subject, .rv = reference, .k = r->first.eval, .tap = r->first.tap,
                  .kind = kind_of(r->first.tap), .layer = r->first.layer, .tr = &r->taps[r->first.tap_index],
                  .model = model, .ref_model = reference_model, .err = err};
    bn_status (*const analyzers[])(hint_ctx *) = {
        hint_nan_origin, hint_activation, hint_norm,  hint_rope,          hint_heads, hint_equivalent_layout,
        hint_weights,    hint_qk_rows,    hint_int8,  hint_channel_scale, hint_scale, hint_attention,
        hint_absent_subnorm, hint_lm_head};
    for (size_t i = 0; i < sizeof analyzers / sizeof analyzers[0] && !st; i++) st = analyzers[i](&c);
    return st;
}
