/* forward.c — the BitNet b1.58 forward pass, read top-down:
 *
 *   bn_ctx_eval  embeds the tokens, runs every block, the final norm and the
 *                lm_head;
 *   forward_block  one transformer block on one screen (below);
 *   attention      q·kᵀ, softmax, p·V over the KV cache for every (head, token).
 *
 * Every intermediate passes through a named tap (docs/design.md). A tap that is
 * not selected costs one branch on a precomputed table. Numerics follow
 * bitnet.cpp's ggml graph (docs/specs/bitnet-graph.md): in ggml-compat mode the
 * KV cache is f16, q is rounded to f16 before q·kᵀ, and single-token decode
 * rounds p and the lm_head input to f16. */
#include "bitnet/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bitnet/matmul.h"
#include "bitnet/quant.h"
#include "bitnet/threads.h"
#include "bits.h"
#include "ops.h"

/* Activation buffers for a batch of up to `cap` tokens (llama2.c's RunState). */
typedef struct bn_run {
    int64_t cap;      /* tokens the buffers hold */
    float *x;         /* [T, H]     residual stream */
    float *xn;        /* [T, H]     normed input of a sub-layer */
    float *q;         /* [T, nh*D]  queries */
    float *k;         /* [T, nkv*D] keys of this batch */
    float *v;         /* [T, nkv*D] values of this batch */
    float *ctxv;      /* [T, nh*D]  attention output, heads concatenated */
    float *proj;      /* [T, H]     output of the attention / down projection */
    float *gate;      /* [T, F] */
    float *up;        /* [T, F] */
    float *att;       /* [nh, T, n_kv] scores, then probs (n_kv = cache length, padded in ggml-compat) */
    float *tapbuf;    /* [nh, T, p0+T] compact copy for the attn_scores/probs taps */
    float *logits;    /* [logits_cap, V]: the rows of bn_ctx_eval_logits' range */
    int64_t logits_cap;
    void *mm_scratch; /* matmul scratch (int8 activations, scales, f16 copies) */
    size_t mm_scratch_bytes;
} bn_run;

/* The KV cache, K row-major per position and V transposed per dimension as
 * bitnet.cpp's cache; each in f16 or f32 (bn_ctx_params.kv_type, v_type). */
typedef struct bn_kv {
    void *mem;           /* the one allocation both caches live in (kv_alloc) */
    bool k_f16, v_f16;   /* which of the two arrays below each cache uses */
    uint16_t *k16, *v16; /* [L][n_ctx][nkv*D] and [L][nkv*D][n_ctx] */
    float *k32, *v32;    /* same layouts in f32 */
} bn_kv;

struct bn_ctx {
    const bn_model *m;
    bn_ctx_params p;
    bn_pool *pool;
    int64_t n_ctx;     /* KV capacity in positions */
    int64_t n_past;    /* positions filled */
    int64_t n_eval;    /* evaluations since reset (tap `eval` index) */
    int64_t T, p0;     /* current evaluation: tokens, first position */
    int64_t logits_first, n_logits; /* its tokens whose logits were computed */
    bn_kv kv;
    bn_run r;
    bool *tap_on;      /* [(L+1) * BN_TAP_KIND_COUNT]: observe or inject selected */
    bn_matmul_opts mm; /* summation order; act_f16 set per call */
    int lanes;         /* float lanes of the emulated ggml build (softmax, silu) */
    char tap_name[96];
};

static const char *const numerics_names[] = {"ggml-compat", "f32", "llama.cpp-compat"};
#define N_NUMERICS (int)(sizeof numerics_names / sizeof numerics_names[0])

const char *bn_numerics_name(bn_numerics n) { return (unsigned)n < N_NUMERICS ? numerics_names[n] : "?"; }

bool bn_numerics_parse(const char *s, bn_numerics *out) {
    for (int i = 0; i < N_NUMERICS; i++)
        if (!strcmp(s, numerics_names[i])) return *out = (bn_numerics)i, true;
    return false;
}

void bn_kv_types_resolve(bn_kv_type kv_type, bn_kv_type v_type, bn_numerics numerics, bn_kv_type *k, bn_kv_type *v) {
    *k = kv_type != BN_KV_AUTO ? kv_type : numerics == BN_NUMERICS_GGML_COMPAT ? BN_KV_F16 : BN_KV_F32;
    *v = v_type != BN_KV_AUTO ? v_type : *k;
}

/* "f16" or "f32" at *s (after an optional "K " / "V " label) -> *t; the rest after it. */
static const char *kv_word(const char *s, const char *label, bn_kv_type *t) {
    while (*s == ' ') s++;
    if (!strncmp(s, label, 2)) s += 2;
    if (strncmp(s, "f16", 3) && strncmp(s, "f32", 3)) return NULL;
    *t = s[1] == '1' ? BN_KV_F16 : BN_KV_F32;
    return s + 3;
}

bool bn_kv_type_parse(const char *s, bn_kv_type *k, bn_kv_type *v) {
    bn_kv_type a, b;
    const char *rest = kv_word(s, "K ", &a);
    if (!rest) return false;
    if (!*rest) return *k = *v = a, true;
    if (*rest != ',' || !(rest = kv_word(rest + 1, "V ", &b)) || *rest) return false;
    return *k = a, *v = b, true;
}

const char *bn_kv_cache_name(bn_kv_type kv_type, bn_kv_type v_type, bn_numerics numerics) {
    bn_kv_type k, v;
    bn_kv_types_resolve(kv_type, v_type, numerics, &k, &v);
    if (k == v) return k == BN_KV_F16 ? "f16" : "f32";
    return k == BN_KV_F16 ? "K f16, V f32" : "K f32, V f16";
}

bn_ctx_params bn_ctx_params_init(void) {
    return (bn_ctx_params){.n_threads = 1, .numerics = BN_NUMERICS_GGML_COMPAT};
}

/* ---------------------------------------------------------------- taps -- */

static bn_status fire_tap(bn_ctx *c, int layer, bn_tap_kind kind, void *data, bn_tap_dtype dt, int ndim,
                          int64_t s0, int64_t s1, int64_t s2, bn_error *err) {
    bn_tap tap = {.name = bn_tap_name(c->tap_name, sizeof c->tap_name, layer, kind),
                  .layer = layer, .kind = kind, .eval = c->n_eval, .p0 = c->p0, .dtype = dt,
                  .ndim = ndim, .shape = {s0, s1, s2}, .data = data};
    /* Observe first: a replay records what the graph computed, then injects
     * the reference's value for the rest of the graph to use. */
    bn_status st;
    if (bn_tap_set_has(c->p.observe, layer, kind) && (st = c->p.observe_fn(c->p.observe_user, &tap, err)))
        return st;
    if (bn_tap_set_has(c->p.inject, layer, kind) && (st = c->p.inject_fn(c->p.inject_user, &tap, err))) return st;
    return BN_OK;
}

/* TAP(layer, kind, buffer, rows, cols): fire a [rows, cols] float32 tap.
 * BITPARITY_NO_TAPS (a benchmark-only build) compiles every tap out, to
 * measure what an unselected tap costs. */
#ifdef BITPARITY_NO_TAPS
#define TAP_ON(layer, kind) ((void)(layer), false)
#else
#define TAP_ON(layer, kind) (c->tap_on[((layer) + 1) * BN_TAP_KIND_COUNT + (kind)])
#endif
#define TAP(layer, kind, buf, rows, cols)                                                           \
    do {                                                                                          \
        if (TAP_ON(layer, kind)) {                                                                \
            bn_status st_ = fire_tap(c, layer, kind, buf, BN_TAP_F32, 2, rows, cols, 0, err);     \
            if (st_) return st_;                                                                  \
        }                                                                                         \
    } while (0)

/* -------------------------------------------------------------- matmul -- */

/* The matmul options of a weight of `type` in this context. */
static bn_matmul_opts matmul_opts(const bn_ctx *c, uint32_t type) {
    bn_matmul_opts mo = c->mm;
    /* ggml converts activations to f16 for F16 weights when its
     * single-token path (vec_dot_f16) runs; the path is the whole batch's
     * (c->T) even when only some of its rows are computed. */
    mo.act_f16 = c->p.numerics != BN_NUMERICS_F32 && type == BN_TYPE_F16 && c->T == 1;
    mo.f16_gemm = c->p.numerics == BN_NUMERICS_LLAMACPP_COMPAT;
    mo.graph_T = c->T;
    return mo;
}

/* What follows projection p's matmul into y[T, w.n]: the optional `bitnet`
 * per-tensor scale, then the int8 input taps of ternary projections (read
 * from the matmul scratch, so before the next matmul). */
static bn_status after_matmul(bn_ctx *c, int il, bn_proj p, const bn_weight *w, int64_t T, float *y, bn_error *err) {
    bn_status st;
    if (il >= 0 && c->m->layers[il].has_scale[p]) bn_op_scale(y, c->m->layers[il].w_scale[p], T * w->n);
    if (il >= 0 && w->type == BN_TYPE_I2_S) {
        const bn_tap_kind kq = (bn_tap_kind)(BN_TAP_IN_Q8_FIRST + 2 * p), ks = (bn_tap_kind)(kq + 1);
        if (TAP_ON(il, kq) && (st = fire_tap(c, il, kq, (void *)bn_matmul_scratch_q8(c->r.mm_scratch, NULL, NULL), BN_TAP_I8,
                                             2, T, w->k, 0, err)))
            return st;
        if (TAP_ON(il, ks) && (st = fire_tap(c, il, ks, (void *)bn_matmul_scratch_act_scales(c->r.mm_scratch),
                                             BN_TAP_F32, 1, T, 0, 0, err)))
            return st;
    }
    return BN_OK;
}

/* y[T, w.n] = x[T, w.k] · Wᵀ, then after_matmul. */
static bn_status project_rows(bn_ctx *c, int il, bn_proj p, const bn_weight *w, const float *x, int64_t T,
                              float *y, bn_error *err) {
    const bn_matmul_opts mo = matmul_opts(c, w->type);
    bn_status st = bn_matmul(c->pool, w, x, T, y, &mo, c->r.mm_scratch, c->r.mm_scratch_bytes, err);
    return st ? st : after_matmul(c, il, p, w, T, y, err);
}

/* Projections ps[0..n) of layer il, which all read x[T, k]: y[i] = x · Wᵀ,
 * then per projection after_matmul and its output tap taps[i], in the order
 * one projection at a time fired them. Weights of one type and k are one
 * bn_matmul_n: one quantization of x and one pass over the pool (for a
 * decoded token Q, K and V are 3.8k rows of 0.4-1.6 MB each; a pool
 * synchronization per matrix cost a tenth of the step). */
static bn_status project_n(bn_ctx *c, int il, int n, const bn_proj *ps, const float *x, float *const *y,
                           const bn_tap_kind *taps, bn_error *err) {
    const bn_layer *L = &c->m->layers[il];
    const int64_t T = c->T;
    bn_weight w[BN_MATMUL_MAX_WEIGHTS];
    bool shared = true;
    for (int i = 0; i < n; i++) {
        w[i] = L->w[ps[i]];
        shared = shared && w[i].type == w[0].type && w[i].k == w[0].k;
    }
    bn_status st;
    if (shared) {
        const bn_matmul_opts mo = matmul_opts(c, w[0].type);
        if ((st = bn_matmul_n(c->pool, n, w, x, T, y, &mo, c->r.mm_scratch, c->r.mm_scratch_bytes, err))) return st;
    }
    for (int i = 0; i < n; i++) {
        if (shared) st = after_matmul(c, il, ps[i], &w[i], T, y[i], err);
        else st = project_rows(c, il, ps[i], &w[i], x, T, y[i], err);
        if (st) return st;
        TAP(il, taps[i], y[i], T, w[i].n);
    }
    return BN_OK;
}

static bn_status project(bn_ctx *c, int il, bn_proj p, const bn_weight *w, const float *x, float *y,
                         bn_error *err) {
    return project_rows(c, il, p, w, x, c->T, y, err);
}

/* A row-wise op over the batch's T rows of n: each row is computed alone,
 * so a prompt's rows are split over the pool (the bits do not depend on the
 * split); a single token runs in the caller. */
typedef struct rows_op {
    bn_ctx *c;
    bool glu;          /* true: y = glu(x, u); false: y = norm(x) * gamma */
    float *y;
    const float *x, *u, *gamma;
    int64_t n;
} rows_op;

static void rows_op_task(void *ctx, int64_t t0, int64_t t1) {
    const rows_op *o = ctx;
    const bn_hparams *hp = &o->c->m->hp;
    float *y = o->y + t0 * o->n;
    const float *x = o->x + t0 * o->n;
    if (o->glu) {
        bn_op_glu(y, x, o->u + t0 * o->n, t1 - t0, o->n, hp->act == BN_ACT_RELU2, o->c->lanes, bn_pool_simd(o->c->pool));
    } else {
        bn_op_rms_norm(y, x, t1 - t0, o->n, hp->norm_eps, hp->block_norm == BN_NORM_LAYER);
        bn_op_mul_rows(y, o->gamma, t1 - t0, o->n);
    }
}

static void run_rows_op(bn_ctx *c, rows_op *o) {
    if (c->T == 1) rows_op_task(o, 0, 1);
    else bn_pool_parallel_for(c->pool, c->T, 4, rows_op_task, o); /* 4 rows: bn_op_rms_norm's side-by-side sums */
}

/* Per-block norm: rms_norm(x) * gamma (or LayerNorm, as hp.block_norm says). */
static void norm(bn_ctx *c, float *y, const float *x, const float *gamma, int64_t n) {
    rows_op o = {.c = c, .glu = false, .y = y, .x = x, .gamma = gamma, .n = n};
    run_rows_op(c, &o);
}

/* ----------------------------------------------------------- attention -- */

enum { ATT_SCORES = 1, ATT_SOFTMAX = 2, ATT_PV = 4, ATT_PV4 = 8 /* rows are (head, 4 tokens) */ };

typedef struct attn_job {
    bn_ctx *c;
    int il;
    int64_t n_kv; /* columns per score row */
    int stages;   /* ATT_* steps to run on each row */
} attn_job;

/* Rows (head h, token t) of the attention of layer il: scaled scores over
 * the cache with the causal mask, softmax, then p·V. */
static void attn_rows(void *arg, int64_t begin, int64_t end) {
    attn_job *job = arg;
    bn_ctx *c = job->c;
    const bn_hparams *hp = &c->m->hp;
    const int64_t D = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv, T = c->T, n_kv = job->n_kv;
    const int64_t kvd = nkv * D, gqa = nh / nkv;
    /* ggml's attention products (both compat modes; f32 mode sums plainly,
     * where every branch below is the same index-order sum):
     *  q·k, K f32: ggml_vec_dot_f32 (q is a strided view: no sgemm);
     *  q·k, K f16: q rounded to f16, then ggml_vec_dot_f16; upstream
     *       llama.cpp copies q to a contiguous f16 block first, so a
     *       prompt's goes through tinyBLAS f16 x f16;
     *  p·V, V f32: tinyBLAS for a prompt (sgemm serves n >= 2 only), else
     *       ggml_vec_dot_f32;
     *  p·V, V f16: a single token's p rounded to f16 and ggml_vec_dot_f16;
     *       a prompt's tinyBLAS f16 x f32 (bitnet.cpp) or, p rounded to
     *       f16, f16 x f16 (upstream llama.cpp). */
    const bool k16 = c->kv.k_f16, v16 = c->kv.v_f16, lcpp = c->p.numerics == BN_NUMERICS_LLAMACPP_COMPAT;
    const bool k_gemm16 = k16 && lcpp && T > 1, v_gemm16 = v16 && lcpp && T > 1;
    const bn_sum_order order = c->mm.order;
    const bn_simd simd = bn_pool_simd(c->pool);
    const float scale = 1.0f / sqrtf((float)D);
    if (job->stages & ATT_PV4) { /* p·V of 4 positions of a head at once: a prompt's tinyBLAS kinds only */
        const int64_t quads = (T + 3) / 4;
        for (int64_t row = begin; row < end; row++) {
            const int64_t h = row / quads, t0 = row % quads * 4, g = h / gqa;
            const int64_t off = ((int64_t)job->il * kvd + g * D) * c->n_ctx;
            for (int64_t t = t0; t < t0 + 4 && t < T; t++) {
                const float *att = c->r.att + (h * T + t) * n_kv;
                float *out = c->r.ctxv + t * nh * D + h * D;
                if (t == t0 && t0 + 4 <= T) { /* the 4 probability rows lie n_kv apart */
                    bn_dot_rows4(v16 ? BN_DOT_F16_F32 : BN_DOT_F32_TINY, v16 ? (const void *)(c->kv.v16 + off)
                                 : (const void *)(c->kv.v32 + off), c->n_ctx, D, att, n_kv, order, simd, out, nh * D);
                    break;
                }
                if (v16) bn_dot_rows(BN_DOT_F16_F32, c->kv.v16 + off, c->n_ctx, D, att, n_kv, order, simd, out);
                else bn_dot_rows(BN_DOT_F32_TINY, c->kv.v32 + off, c->n_ctx, D, att, n_kv, order, simd, out);
            }
        }
        return;
    }
    for (int64_t row = begin; row < end; row++) {
        const int64_t h = row / T, t = row % T, g = h / gqa, pos = c->p0 + t;
        float *att = c->r.att + (h * T + t) * n_kv;
        if (job->stages & ATT_SCORES) {
            const float *q = c->r.q + t * nh * D + h * D;
            uint16_t q16[1024]; /* ggml rounds q to f16 to meet the f16 K cache */
            if (k16) bn_f32_to_f16_n(q, q16, D, simd);
            /* cells 0..pos: q against each cached k row; later cells are the
             * causal mask (and the padded cells of ggml-compat) */
            const int64_t n_vis = pos + 1 < n_kv ? pos + 1 : n_kv;
            const int64_t off = (int64_t)job->il * c->n_ctx * kvd + g * D;
            if (k16) bn_dot_rows(k_gemm16 ? BN_DOT_F16_TINY : BN_DOT_F16, c->kv.k16 + off, kvd, n_vis, q16, D, order,
                                 simd, att);
            else bn_dot_rows(BN_DOT_F32, c->kv.k32 + off, kvd, n_vis, q, D, order, simd, att);
            for (int64_t j = 0; j < n_vis; j++) att[j] *= scale;
            for (int64_t j = n_vis; j < n_kv; j++) att[j] = -INFINITY;
        }
        if (job->stages & ATT_SOFTMAX) bn_op_softmax_ggml(att, n_kv, 1.0f, c->lanes, simd);
        if (!(job->stages & ATT_PV)) continue;
        /* p·V: V is stored transposed, one row of n_ctx positions per dim;
         * ggml rounds p to f16 only on its single-token path. */
        float *out = c->r.ctxv + t * nh * D + h * D;
        uint16_t p16[4096];
        const bool p_f16 = v16 && (T == 1 || v_gemm16);
        if (p_f16) bn_f32_to_f16_n(att, p16, n_kv, simd);
        /* one dot per dim d: row g·D + d of the transposed V cache */
        const int64_t off = ((int64_t)job->il * kvd + g * D) * c->n_ctx;
        if (!v16) bn_dot_rows(T > 1 ? BN_DOT_F32_TINY : BN_DOT_F32, c->kv.v32 + off, c->n_ctx, D, att, n_kv, order,
                              simd, out);
        else if (v_gemm16 || p_f16) bn_dot_rows(v_gemm16 ? BN_DOT_F16_TINY : BN_DOT_F16, c->kv.v16 + off, c->n_ctx, D,
                                                p16, n_kv, order, simd, out);
        else bn_dot_rows(BN_DOT_F16_F32, c->kv.v16 + off, c->n_ctx, D, att, n_kv, order, simd, out);
    }
}

/* Stores this batch's roped K and V rows into the cache of layer il. */
static void kv_store(bn_ctx *c, int il) {
    const bn_hparams *hp = &c->m->hp;
    const int64_t kvd = hp->n_head_kv * hp->head_dim;
    const bn_simd simd = bn_pool_simd(c->pool);
    /* K: the batch's rows of kvd are consecutive positions, one run */
    const int64_t ko = ((int64_t)il * c->n_ctx + c->p0) * kvd;
    if (c->kv.k_f16) bn_f32_to_f16_n(c->r.k, c->kv.k16 + ko, c->T * kvd, simd);
    else memcpy(c->kv.k32 + ko, c->r.k, (size_t)(c->T * kvd) * sizeof(float));
    /* V is transposed (one row of n_ctx positions per dim). A decoded
     * token's kvd values are converted as one run, then each stored into its
     * row (one call per dim cost more than the stores: 0.7 ms of a 2B-4T
     * token); a prompt's T positions of a dim land in one run of memory, so
     * they are gathered into `run` and converted as one. */
    if (c->T == 1) {
        for (int64_t i0 = 0; i0 < kvd; i0 += 1024) {
            const int64_t m = kvd - i0 < 1024 ? kvd - i0 : 1024;
            uint16_t h[1024];
            if (c->kv.v_f16) bn_f32_to_f16_n(c->r.v + i0, h, m, simd);
            for (int64_t i = 0; i < m; i++) {
                const int64_t vo = ((int64_t)il * kvd + i0 + i) * c->n_ctx + c->p0;
                if (c->kv.v_f16) c->kv.v16[vo] = h[i];
                else c->kv.v32[vo] = c->r.v[i0 + i];
            }
        }
        return;
    }
    for (int64_t i = 0; i < kvd; i++) {
        const int64_t vo = ((int64_t)il * kvd + i) * c->n_ctx + c->p0;
        for (int64_t t0 = 0; t0 < c->T; t0 += 256) {
            float run[256];
            const int64_t m = c->T - t0 < 256 ? c->T - t0 : 256;
            for (int64_t t = 0; t < m; t++) run[t] = c->r.v[(t0 + t) * kvd + i];
            if (c->kv.v_f16) bn_f32_to_f16_n(run, c->kv.v16 + vo + t0, m, simd);
            else memcpy(c->kv.v32 + vo + t0, run, (size_t)m * sizeof(float));
        }
    }
}

/* Copies [nh, T, n_kv] scores/probs to the compact [nh, T, p0+T] tap
 * layout, fires the tap, and copies an injected value back. */
static bn_status tap_attention(bn_ctx *c, int il, bn_tap_kind kind, int64_t n_kv, bn_error *err) {
    const int64_t nh = c->m->hp.n_head, T = c->T, tk = c->p0 + T;
    const size_t row = (size_t)tk * sizeof(float);
    for (int64_t r = 0; r < nh * T; r++) memcpy(c->r.tapbuf + r * tk, c->r.att + r * n_kv, row);
    bn_status st = fire_tap(c, il, kind, c->r.tapbuf, BN_TAP_F32, 3, nh, T, tk, err);
    if (st) return st;
    for (int64_t r = 0; r < nh * T; r++) memcpy(c->r.att + r * n_kv, c->r.tapbuf + r * tk, row);
    return BN_OK;
}

static bn_status attention(bn_ctx *c, int il, bn_error *err) {
    kv_store(c, il);
    /* ggml-compat pads the cache length to 32 cells (bitnet.cpp's kv_self.n),
     * llama.cpp-compat to 256 (upstream's padding); the padding decides which
     * scores the softmax's vector lanes take and which its libm tail. */
    const int64_t used = c->p0 + c->T, pad = c->p.numerics == BN_NUMERICS_LLAMACPP_COMPAT ? 256
                                             : c->p.numerics == BN_NUMERICS_GGML_COMPAT     ? 32
                                                                                             : 1;
    const int64_t padded = (used + pad - 1) / pad * pad, n_kv = padded < c->n_ctx ? padded : c->n_ctx;
    const int64_t rows = c->m->hp.n_head * c->T;
    const bool tap_s = TAP_ON(il, BN_TAP_ATTN_SCORES), tap_p = TAP_ON(il, BN_TAP_ATTN_PROBS);
    /* a prompt's p·V with float probabilities (tinyBLAS f16 x f32 or f32 x
     * f32; not upstream llama.cpp's f16 x f16) takes 4 positions per V row */
    const bool pv4 = c->T >= 4 && !(c->kv.v_f16 && c->p.numerics == BN_NUMERICS_LLAMACPP_COMPAT);
    if (!tap_s && !tap_p) { /* one pass over each row keeps it in cache */
        attn_job job = {c, il, n_kv, ATT_SCORES | ATT_SOFTMAX | (pv4 ? 0 : ATT_PV)};
        bn_pool_parallel_for(c->pool, rows, 1, attn_rows, &job);
        if (pv4) {
            attn_job pv = {c, il, n_kv, ATT_PV4};
            bn_pool_parallel_for(c->pool, c->m->hp.n_head * ((c->T + 3) / 4), 1, attn_rows, &pv);
        }
        return BN_OK;
    }
    static const int steps[3] = {ATT_SCORES, ATT_SOFTMAX, ATT_PV};
    for (int s = 0; s < 3; s++) {
        attn_job job = {c, il, n_kv, steps[s]};
        bn_pool_parallel_for(c->pool, rows, 1, attn_rows, &job);
        bn_status st = BN_OK;
        if (s == 0 && tap_s) st = tap_attention(c, il, BN_TAP_ATTN_SCORES, n_kv, err);
        if (s == 1 && tap_p) st = tap_attention(c, il, BN_TAP_ATTN_PROBS, n_kv, err);
        if (st) return st;
    }
    return BN_OK;
}

/* --------------------------------------------------------------- block -- */

/* One BitNet block on the residual stream x[T, H] (bitnet-graph.md). */
static bn_status forward_block(bn_ctx *c, int il, bn_error *err) {
    const bn_model *m = c->m;
    const bn_hparams *hp = &m->hp;
    const bn_layer *L = &m->layers[il];
    bn_run *r = &c->r;
    const int64_t T = c->T, H = hp->n_embd, F = hp->n_ff, D = hp->head_dim;
    const int64_t Dq = hp->n_head * D, Dkv = hp->n_head_kv * D;
    const int64_t rope_p0 = c->p0 + c->p.rope_pos_offset;
    bn_status st;

    /* attention */
    norm(c, r->xn, r->x, L->attn_norm, H);
    TAP(il, BN_TAP_ATTN_NORM, r->xn, T, H);
    {
        static const bn_proj qkv[3] = {BN_PROJ_Q, BN_PROJ_K, BN_PROJ_V};
        static const bn_tap_kind qkv_taps[3] = {BN_TAP_ATTN_Q, BN_TAP_ATTN_K, BN_TAP_ATTN_V};
        float *const qkv_out[3] = {r->q, r->k, r->v};
        if ((st = project_n(c, il, 3, qkv, r->xn, qkv_out, qkv_taps, err))) return st;
    }
    bn_op_rope(r->q, T, hp->n_head, D, rope_p0, hp->rope_base, hp->rope_neox);
    TAP(il, BN_TAP_ATTN_Q_ROPE, r->q, T, Dq);
    bn_op_rope(r->k, T, hp->n_head_kv, D, rope_p0, hp->rope_base, hp->rope_neox);
    TAP(il, BN_TAP_ATTN_K_ROPE, r->k, T, Dkv);
    if ((st = attention(c, il, err))) return st;
    TAP(il, BN_TAP_ATTN_CTX, r->ctxv, T, Dq);
    /* A block whose sub-norm weights were dropped (model.h) still fires the
     * sub-norm's tap, with the value unnormed, so traces keep their taps. */
    if (hp->sub_norms && L->attn_sub_norm) norm(c, r->ctxv, r->ctxv, L->attn_sub_norm, Dq);
    if (hp->sub_norms) TAP(il, BN_TAP_ATTN_SUB_NORM, r->ctxv, T, Dq);
    if ((st = project(c, il, BN_PROJ_O, &L->w[BN_PROJ_O], r->ctxv, r->proj, err))) return st;
    TAP(il, BN_TAP_ATTN_OUT, r->proj, T, H);
    bn_op_add(r->x, r->proj, T * H);
    TAP(il, BN_TAP_FFN_INP, r->x, T, H);

    /* feed-forward */
    norm(c, r->xn, r->x, L->ffn_norm, H);
    TAP(il, BN_TAP_FFN_NORM, r->xn, T, H);
    {
        static const bn_proj gate_up[2] = {BN_PROJ_GATE, BN_PROJ_UP};
        static const bn_tap_kind gate_up_taps[2] = {BN_TAP_FFN_GATE, BN_TAP_FFN_UP};
        float *const gate_up_out[2] = {r->gate, r->up};
        if ((st = project_n(c, il, 2, gate_up, r->xn, gate_up_out, gate_up_taps, err))) return st;
    }
    rows_op glu = {.c = c, .glu = true, .y = r->gate, .x = r->gate, .u = r->up, .n = F};
    run_rows_op(c, &glu);
    TAP(il, BN_TAP_FFN_ACT, r->gate, T, F);
    if (hp->sub_norms && L->ffn_sub_norm) norm(c, r->gate, r->gate, L->ffn_sub_norm, F);
    if (hp->sub_norms) TAP(il, BN_TAP_FFN_SUB_NORM, r->gate, T, F);
    if ((st = project(c, il, BN_PROJ_DOWN, &L->w[BN_PROJ_DOWN], r->gate, r->proj, err))) return st;
    TAP(il, BN_TAP_FFN_OUT, r->proj, T, H);
    bn_op_add(r->x, r->proj, T * H);
    TAP(il, BN_TAP_OUT, r->x, T, H);
    return BN_OK;
}

/* ---------------------------------------------------------- evaluation -- */

static bn_status run_alloc(bn_ctx *c, int64_t T, bn_error *err) {
    if (T <= c->r.cap) return BN_OK;
    const bn_hparams *hp = &c->m->hp;
    const int64_t H = hp->n_embd, F = hp->n_ff, Dq = hp->n_head * hp->head_dim,
                  Dkv = hp->n_head_kv * hp->head_dim;
    const int64_t n_kv = c->n_ctx;
    bn_run *r = &c->r;
    struct {
        float **p;
        int64_t n;
        const char *name;
    } bufs[] = {{&r->x, T * H, "x"},         {&r->xn, T * H, "xn"},     {&r->q, T * Dq, "q"},
                {&r->k, T * Dkv, "k"},       {&r->v, T * Dkv, "v"},     {&r->ctxv, T * Dq, "ctxv"},
                {&r->proj, T * H, "proj"},   {&r->gate, T * F, "gate"}, {&r->up, T * F, "up"},
                {&r->att, hp->n_head * T * n_kv, "att"}, {&r->tapbuf, hp->n_head * T * n_kv, "tapbuf"}};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(*bufs[i].p);
        *bufs[i].p = malloc((size_t)bufs[i].n * sizeof(float));
        if (!*bufs[i].p)
            return bn_error_set(err, BN_ERR_NOMEM, "activations '%s' for a batch of %lld tokens: cannot allocate %zu "
                                "bytes", bufs[i].name, (long long)T, (size_t)bufs[i].n * sizeof(float));
    }
    size_t need = 0;
    const bn_layer *L = &c->m->layers[0];
    for (int p = 0; p < BN_PROJ_COUNT && hp->n_layer > 0; p++) {
        size_t s = bn_matmul_scratch_bytes(&L->w[p], T);
        need = s > need ? s : need;
    }
    size_t s = bn_matmul_scratch_bytes(&c->m->lm_head, T);
    need = s > need ? s : need;
    free(r->mm_scratch);
    r->mm_scratch = malloc(need ? need : 1);
    if (!r->mm_scratch)
        return bn_error_set(err, BN_ERR_NOMEM, "matmul scratch for %lld tokens: cannot allocate %zu bytes", (long long)T,
                            need ? need : 1);
    r->mm_scratch_bytes = need;
    r->cap = T;
    return BN_OK;
}

/* The logits buffer holds n rows (it is [T, V] only when every row is asked for). */
static bn_status logits_alloc(bn_ctx *c, int64_t n, bn_error *err) {
    bn_run *r = &c->r;
    if (n <= r->logits_cap) return BN_OK;
    const size_t bytes = (size_t)n * (size_t)c->m->hp.n_vocab * sizeof(float);
    free(r->logits);
    r->logits = malloc(bytes);
    r->logits_cap = r->logits ? n : 0;
    if (!r->logits)
        return bn_error_set(err, BN_ERR_NOMEM, "logits of %lld tokens: cannot allocate %zu bytes", (long long)n, bytes);
    return BN_OK;
}

bn_status bn_ctx_eval(bn_ctx *c, const int32_t *tokens, int64_t T, bn_error *err) {
    return bn_ctx_eval_logits(c, tokens, T, 0, T, err);
}

bn_status bn_ctx_eval_logits(bn_ctx *c, const int32_t *tokens, int64_t T, int64_t logits_first, int64_t n_logits,
                             bn_error *err) {
    const bn_model *m = c->m;
    const bn_hparams *hp = &m->hp;
    const int64_t H = hp->n_embd, V = hp->n_vocab;
    if (T <= 0) return bn_error_set(err, BN_ERR_INVALID, "nothing to evaluate (0 tokens)");
    if (c->n_past + T > c->n_ctx)
        return bn_error_set(err, BN_ERR_INVALID, "context full: %lld positions used + %lld tokens > n_ctx %lld",
                            (long long)c->n_past, (long long)T, (long long)c->n_ctx);
    for (int64_t t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return bn_error_set(err, BN_ERR_INVALID, "token id %d at index %lld is outside the vocabulary [0, %lld)",
                                tokens[t], (long long)t, (long long)V);
    if (T > 0 && (logits_first < 0 || n_logits < 1 || logits_first > T - n_logits))
        return bn_error_set(err, BN_ERR_INVALID, "logits of tokens [%lld, +%lld) asked of a batch of %lld tokens",
                            (long long)logits_first, (long long)n_logits, (long long)T);
    if (TAP_ON(-1, BN_TAP_LOGITS)) logits_first = 0, n_logits = T; /* the tap is the whole batch's */
    bn_status st = run_alloc(c, T, err);
    if (!st) st = logits_alloc(c, n_logits, err);
    if (st) return st;
    c->T = T;
    c->p0 = c->n_past;
    bn_run *r = &c->r;
    for (int64_t t = 0; t < T; t++)
        if ((st = bn_dequantize_rows(m->token_embd->type, m->token_embd->data, H, V, tokens[t], 1, r->x + t * H, err)))
            return st;
    TAP(-1, BN_TAP_TOKEN_EMBD, r->x, T, H);
    for (int il = 0; il < hp->n_layer; il++) {
        bn_progress_report(&c->p.progress, &(bn_progress){"evaluating", "layers", il, hp->n_layer, 0});
        if ((st = bn_cancel_check(c->p.cancel, err)) || (st = forward_block(c, il, err))) return st;
    }
    bn_op_rms_norm(r->xn, r->x, T, H, hp->norm_eps, false);
    bn_op_mul_rows(r->xn, m->output_norm, T, H);
    TAP(-1, BN_TAP_OUTPUT_NORM, r->xn, T, H);
    /* only the rows asked for: a prompt's lm_head is most of its cost */
    if ((st = project_rows(c, -1, BN_PROJ_COUNT, &m->lm_head, r->xn + logits_first * H, n_logits, r->logits, err)))
        return st;
    c->logits_first = logits_first, c->n_logits = n_logits;
    TAP(-1, BN_TAP_LOGITS, r->logits, T, V);
    c->n_past += T;
    c->n_eval++;
    return BN_OK;
}

/* ------------------------------------------------------------- context -- */

/* 2 MiB: the transparent huge page the KV cache is aligned to */
#define KV_HUGE ((size_t)2 << 20)

/* K and V in one zeroed allocation, each starting on a 2 MiB boundary (when
 * the cache holds at least two such pages), with transparent huge pages
 * asked for (a hint; nothing changes where the kernel gives none).
 * Why: a decoded token reads every layer's cached rows once,
 * a few hundred KB per layer spread over ~100 pages of 4 KB (V transposed:
 * one row of n_ctx positions per dim), and between two layers the weights'
 * stream has pushed those pages' translations out of the TLB. On the 2B-4T
 * shape (64 tokens after 16, per-stage clocks, 4 alternating pairs)
 * attention with the KV store took 1.6-2.0 ms of a decoded token on 4 KB
 * pages and 1.5-1.6 ms on huge pages, the same bits; the gap grows with the
 * positions cached. */
static bn_status kv_alloc(bn_ctx *c, bn_error *err) {
    const bn_hparams *hp = &c->m->hp;
    const size_t n = (size_t)hp->n_layer * (size_t)c->n_ctx * (size_t)(hp->n_head_kv * hp->head_dim);
    bn_kv_type kt, vt;
    bn_kv_types_resolve(c->p.kv_type, c->p.v_type, c->p.numerics, &kt, &vt);
    c->kv.k_f16 = kt == BN_KV_F16;
    c->kv.v_f16 = vt == BN_KV_F16;
    const size_t ke = c->kv.k_f16 ? sizeof(uint16_t) : sizeof(float), ve = c->kv.v_f16 ? sizeof(uint16_t) : sizeof(float);
    /* a cache under two huge pages (a small model's) stays on small pages:
     * its translations fit the TLB, and huge pages would only inflate it */
    const bool huge = n * (ke + ve) >= 2 * KV_HUGE;
    const size_t align = huge ? KV_HUGE : 64;
    const size_t k_span = align_up(n * ke, align), v_span = align_up(n * ve, align);
    /* calloc: zeroed (the padded cells ggml-compat reads must be finite), and
     * a large block comes fresh from the kernel, so untouched pages cost
     * nothing; the slack of one huge page aligns the start */
    c->kv.mem = calloc(1, k_span + v_span + (huge ? KV_HUGE : 0));
    if (!c->kv.mem)
        return bn_error_set(err, BN_ERR_NOMEM, "KV cache: cannot allocate %zu + %zu bytes (%lld positions, K %s, V %s)",
                            n * ke, n * ve, (long long)c->n_ctx, c->kv.k_f16 ? "f16" : "f32", c->kv.v_f16 ? "f16" : "f32");
    uint8_t *base = c->kv.mem;
    if (huge) {
        base = (uint8_t *)(uintptr_t)align_up((uintptr_t)c->kv.mem, KV_HUGE);
#ifdef MADV_HUGEPAGE
        (void)madvise(base, k_span + v_span, MADV_HUGEPAGE);
#endif
    }
    if (c->kv.k_f16) c->kv.k16 = (uint16_t *)base;
    else c->kv.k32 = (float *)base;
    if (c->kv.v_f16) c->kv.v16 = (uint16_t *)(base + k_span);
    else c->kv.v32 = (float *)(base + k_span);
    return BN_OK;
}

int64_t bn_ctx_model_n_ctx(const bn_model *m) {
    return m->hp.n_ctx_train < BN_CTX_MAX ? m->hp.n_ctx_train : BN_CTX_MAX;
}

bn_status bn_ctx_create(const bn_model *m, const bn_ctx_params *p, bn_ctx **out, bn_error *err) {
    *out = NULL;
    if (p->n_threads < 1 || p->n_threads > 512)
        return bn_error_set(err, BN_ERR_INVALID, "--threads %d: must be 1..512", p->n_threads);
    if (p->n_ctx > 4096)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "n_ctx %lld > 4096 is not supported yet", (long long)p->n_ctx);
    if (m->hp.head_dim > 1024)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "head_dim %lld > 1024 is not supported", (long long)m->hp.head_dim);
    if ((p->observe && !p->observe_fn) || (p->inject && !p->inject_fn))
        return bn_error_set(err, BN_ERR_INVALID, "a tap set was given without its hook");
    if ((unsigned)p->kv_type > BN_KV_F32 || (unsigned)p->v_type > BN_KV_F32 || (unsigned)p->act_round > BN_ROUND_HALF_AWAY)
        return bn_error_set(err, BN_ERR_INVALID, "unknown K/V type %d or activation rounding %d", (int)p->kv_type,
                            (int)p->act_round);
    bn_ctx *c = calloc(1, sizeof *c);
    if (!c) return bn_error_set(err, BN_ERR_NOMEM, "context: cannot allocate %zu bytes", sizeof *c);
    c->m = m;
    c->p = *p;
    c->n_ctx = p->n_ctx > 0 ? p->n_ctx : bn_ctx_model_n_ctx(m);
    /* ggml-compat reproduces the AVX-512 ggml build of the shared traces;
     * f32 mode sums in plain index order (no f16 rounding anywhere). */
    c->mm.order = p->numerics == BN_NUMERICS_F32               ? BN_SUM_PLAIN
                  : p->numerics == BN_NUMERICS_LLAMACPP_COMPAT ? BN_SUM_GGML_NOFMA
                                                               : BN_SUM_GGML;
    c->lanes = 16;
    c->mm.act_round = p->act_round;
    const int64_t slots = (m->hp.n_layer + 1) * BN_TAP_KIND_COUNT;
    bn_status st = BN_OK;
    c->tap_on = calloc((size_t)slots, sizeof *c->tap_on);
    if (!c->tap_on)
        st = bn_error_set(err, BN_ERR_NOMEM, "tap table: cannot allocate %zu bytes", (size_t)slots * sizeof *c->tap_on);
    for (int64_t i = 0; st == BN_OK && i < slots; i++)
        c->tap_on[i] = (p->observe && bn_tap_set_table(p->observe)[i]) || (p->inject && bn_tap_set_table(p->inject)[i]);
    if (st == BN_OK) st = kv_alloc(c, err);
    if (st == BN_OK) st = bn_pool_create(p->n_threads, &c->pool, err);
    if (st) {
        bn_ctx_free(c);
        return st;
    }
    *out = c;
    return BN_OK;
}

void bn_ctx_free(bn_ctx *c) {
    if (!c) return;
    bn_pool_destroy(c->pool);
    free(c->kv.mem);
    bn_run *r = &c->r;
    float *bufs[] = {r->x, r->xn, r->q, r->k, r->v, r->ctxv, r->proj, r->gate, r->up, r->att, r->tapbuf, r->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(r->mm_scratch);
    free(c->tap_on);
    free(c);
}

const float *bn_ctx_logits(const bn_ctx *c) { return c->r.logits; }
int64_t bn_ctx_logits_first(const bn_ctx *c) { return c->logits_first; }
int64_t bn_ctx_n_logits(const bn_ctx *c) { return c->n_logits; }

const float *bn_ctx_logits_row(const bn_ctx *c, int64_t t) {
    if (t < c->logits_first || t >= c->logits_first + c->n_logits) return NULL;
    return c->r.logits + (t - c->logits_first) * c->m->hp.n_vocab;
}
int64_t bn_ctx_n_past(const bn_ctx *c) { return c->n_past; }
int64_t bn_ctx_n_ctx(const bn_ctx *c) { return c->n_ctx; }

void bn_ctx_reset(bn_ctx *c) {
    c->n_past = 0;
    c->n_eval = 0;
}
