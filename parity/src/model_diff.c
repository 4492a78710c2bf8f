/* model_diff.c — metadata, tensor and activation diff of two GGUF models;
 * see model_diff.h. */
#include "parity/model_diff.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "bitnet/quant.h"
#include "parity/hints.h"
#include "parity/record.h"
#include "parity/tapmap.h"

static const char *const relation_names[PARITY_REL_COUNT] = {
    "equal", "scaled", "sign-flipped", "transposed", "mis-strided", "qk-permuted",
    "qk-unpermuted", "re-packed", "re-encoded", "per-channel-ratio", "different", "incomparable",
};

const char *parity_weight_relation_name(parity_weight_relation r) {
    return (unsigned)r < PARITY_REL_COUNT ? relation_names[r] : "?";
}

/* Tensors above this many elements are compared by their metrics alone (a
 * dense copy of each side would take gigabytes for a 2B model's token_embd). */
#define DENSE_MAX_ELEMS ((int64_t)1 << 26)

/* ----------------------------------------------------------- metadata -- */

static size_t elem_size(bn_gguf_vtype t) {
    switch (t) {
    case BN_GGUF_UINT8: case BN_GGUF_INT8: case BN_GGUF_BOOL: return 1;
    case BN_GGUF_UINT16: case BN_GGUF_INT16: return 2;
    case BN_GGUF_UINT32: case BN_GGUF_INT32: case BN_GGUF_FLOAT32: return 4;
    case BN_GGUF_UINT64: case BN_GGUF_INT64: case BN_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static void scalar_text(const bn_gguf *g, int64_t k, uint64_t j, bn_gguf_vtype t, char *buf, size_t size) {
    if (t == BN_GGUF_STRING) {
        bn_gguf_str s = bn_gguf_kv_str(g, k, j);
        snprintf(buf, size, "%.*s%s", (int)(s.len > 96 ? 96 : s.len), s.ptr, s.len > 96 ? "..." : "");
    } else if (t == BN_GGUF_FLOAT32 || t == BN_GGUF_FLOAT64) {
        snprintf(buf, size, "%.9g", bn_gguf_kv_float(g, k, j));
    } else if (t == BN_GGUF_BOOL) {
        snprintf(buf, size, "%s", bn_gguf_kv_int(g, k, j) ? "true" : "false");
    } else {
        snprintf(buf, size, "%lld", (long long)bn_gguf_kv_int(g, k, j));
    }
}

/* A value as short text: scalars as written, arrays as [TYPE x N]. */
static void kv_text(const bn_gguf *g, int64_t k, char *buf, size_t size) {
    if (bn_gguf_kv_type(g, k) != BN_GGUF_ARRAY) {
        scalar_text(g, k, 0, bn_gguf_kv_type(g, k), buf, size);
        return;
    }
    snprintf(buf, size, "[%s x %llu]", bn_gguf_vtype_name(bn_gguf_kv_elem_type(g, k)),
             (unsigned long long)bn_gguf_kv_count_elems(g, k));
}

static bool kv_equal(const bn_gguf *a, int64_t i, const bn_gguf *b, int64_t j) {
    const bn_gguf_vtype ta = bn_gguf_kv_type(a, i), ea = bn_gguf_kv_elem_type(a, i);
    const uint64_t n = bn_gguf_kv_count_elems(a, i);
    if (ta != bn_gguf_kv_type(b, j) || ea != bn_gguf_kv_elem_type(b, j) || n != bn_gguf_kv_count_elems(b, j)) return false;
    if (ea == BN_GGUF_STRING) {
        for (uint64_t e = 0; e < n; e++) {
            bn_gguf_str x = bn_gguf_kv_str(a, i, e), y = bn_gguf_kv_str(b, j, e);
            if (x.len != y.len || memcmp(x.ptr, y.ptr, x.len)) return false;
        }
        return true;
    }
    const size_t es = elem_size(ea);
    return es && !memcmp(bn_gguf_kv_data(a, i), bn_gguf_kv_data(b, j), es * n);
}

typedef struct diff_ctx {
    parity_model_diff *d;
    const bn_gguf *g[2];
    size_t kv_cap, t_cap;
    bool oom;
    bn_pool *pool;
    bn_error *err;
} diff_ctx;

static void add_kv(diff_ctx *c, const char *key, parity_diff_change ch, const char *old_v, const char *new_v) {
    if (c->oom) return;
    parity_model_diff *d = c->d;
    if (d->n_kv == c->kv_cap) {
        size_t cap = c->kv_cap ? 2 * c->kv_cap : 16;
        parity_kv_diff *p = realloc(d->kv, cap * sizeof *p);
        if (!p) {
            c->oom = true;
            return;
        }
        d->kv = p, c->kv_cap = cap;
    }
    parity_kv_diff *k = &d->kv[d->n_kv];
    *k = (parity_kv_diff){strdup(key), ch, old_v ? strdup(old_v) : NULL, new_v ? strdup(new_v) : NULL};
    d->n_kv++;
    if (!k->key || (old_v && !k->old_value) || (new_v && !k->new_value)) c->oom = true;
}

static void diff_metadata(diff_ctx *c) {
    char a[160], b[160];
    for (int64_t i = 0; i < bn_gguf_kv_count(c->g[0]); i++) {
        const char *key = bn_gguf_kv_key(c->g[0], i);
        int64_t j = bn_gguf_find_key(c->g[1], key);
        kv_text(c->g[0], i, a, sizeof a);
        if (j < 0) add_kv(c, key, PARITY_DIFF_REMOVED, a, NULL);
        else if (!kv_equal(c->g[0], i, c->g[1], j)) {
            kv_text(c->g[1], j, b, sizeof b);
            if (!strcmp(a, b)) snprintf(b + strlen(b), sizeof b - strlen(b), " (other content)");
            add_kv(c, key, PARITY_DIFF_CHANGED, a, b);
        }
    }
    for (int64_t j = 0; j < bn_gguf_kv_count(c->g[1]); j++) {
        const char *key = bn_gguf_kv_key(c->g[1], j);
        if (bn_gguf_find_key(c->g[0], key) >= 0) continue;
        kv_text(c->g[1], j, b, sizeof b);
        add_kv(c, key, PARITY_DIFF_ADDED, NULL, b);
    }
}

/* ------------------------------------------------------------ tensors -- */

static parity_tensor_diff *add_tensor(diff_ctx *c, const char *name, parity_diff_change ch, const bn_gguf_tensor *to,
                                      const bn_gguf_tensor *tn) {
    if (c->oom) return NULL;
    parity_model_diff *d = c->d;
    if (d->n_tensors == c->t_cap) {
        size_t cap = c->t_cap ? 2 * c->t_cap : 16;
        parity_tensor_diff *p = realloc(d->tensors, cap * sizeof *p);
        if (!p) {
            c->oom = true;
            return NULL;
        }
        d->tensors = p, c->t_cap = cap;
    }
    parity_tensor_diff *t = &d->tensors[d->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) {
        c->oom = true;
        return NULL;
    }
    d->n_tensors++;
    t->change = ch;
    t->relation = PARITY_REL_INCOMPARABLE;
    const bn_gguf_tensor *side[2] = {to, tn};
    for (int s = 0; s < 2; s++)
        if (side[s]) {
            t->type[s] = side[s]->type;
            t->n_dims[s] = (int)side[s]->n_dims;
            memcpy(t->ne[s], side[s]->ne, sizeof t->ne[s]);
        }
    return t;
}

/* The stored bytes that carry values: I2_S codes and scale, not its padding. */
static uint64_t value_bytes(const bn_gguf_tensor *t) {
    return t->type == BN_TYPE_I2_S ? (uint64_t)t->nelem / 4 + 4 : t->nbytes;
}

static bn_status dense(const bn_gguf_tensor *t, float **out, bn_error *err) {
    *out = malloc((size_t)t->nelem * sizeof **out);
    if (!*out) return bn_error_nomem(err, (size_t)t->nelem * sizeof **out, "diff: tensor %s", t->name);
    bn_status st = bn_dequantize_rows(t->type, t->data, t->ne[0], t->nelem / t->ne[0], 0, t->nelem / t->ne[0], *out, err);
    if (st) {
        bn_error_prefixf(err, "tensor %s", t->name);
        free(*out), *out = NULL;
    }
    return st;
}

/* I2_S codes read as 4 consecutive elements per byte, bits 7..6 first. */
static void decode_i2s_linear(const bn_gguf_tensor *t, float *dst) {
    static const float w[4] = {-1, 0, 1, 0};
    const uint8_t *p = t->data;
    float scale;
    memcpy(&scale, p + t->nelem / 4, sizeof scale);
    for (int64_t e = 0; e < t->nelem; e++) dst[e] = scale * w[(p[e / 4] >> (6 - 2 * (e % 4))) & 3];
}

static bool same_values(const float *a, const float *b, int64_t n) { return !memcmp(a, b, (size_t)n * sizeof *a); }

/* Rows [rows, cols] transposed into dst [cols, rows]. */
static void transpose(const float *src, int64_t rows, int64_t cols, float *dst) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

/* HF's `permute` (inverse = false): within each head of d rows, row
 * 2i + s of the result is row s·d/2 + i of the source; the inverse maps back. */
static void permute_heads(const float *src, int64_t rows, int64_t cols, int64_t n_head, bool inverse, float *dst) {
    const int64_t d = rows / n_head;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < d / 2; i++)
            for (int s = 0; s < 2; s++) {
                const int64_t a = h * d + 2 * i + s, b = h * d + s * (d / 2) + i;
                memcpy(dst + (inverse ? b : a) * cols, src + (inverse ? a : b) * cols, (size_t)cols * sizeof *dst);
            }
}

/* OLD's <arch>.<suffix> as an integer, or 0. */
static int64_t arch_int(const diff_ctx *c, const char *suffix) {
    bn_gguf_str arch;
    bn_error e;
    char key[160];
    int64_t n = 0;
    if (bn_gguf_get_str(c->g[0], "general.architecture", &arch, &e)) return 0;
    snprintf(key, sizeof key, "%.*s.%s", (int)(arch.len > 64 ? 64 : arch.len), arch.ptr, suffix);
    return bn_gguf_get_int(c->g[0], key, &n, &e) ? 0 : n;
}

/* The heads whose rows an attn_q / attn_k tensor holds (0 for other tensors). */
static int64_t head_count(const diff_ctx *c, const char *name) {
    if (strstr(name, ".attn_q.")) return arch_int(c, "attention.head_count");
    if (!strstr(name, ".attn_k.")) return 0;
    const int64_t nkv = arch_int(c, "attention.head_count_kv");
    return nkv ? nkv : arch_int(c, "attention.head_count");
}

/* Tries the candidate relations on dense values; the first that reproduces
 * NEW exactly names it. */
static bn_status find_relation(diff_ctx *c, parity_tensor_diff *t, const bn_gguf_tensor *to, const bn_gguf_tensor *tn,
                               const float *o, const float *n, bn_error *err) {
    const int64_t N = to->nelem, cols = to->ne[0], rows = N / cols;
    const parity_metrics *m = &t->m;
    if (m->n_bitdiff == 0) {
        t->relation = PARITY_REL_EQUAL;
        snprintf(t->detail, sizeof t->detail, "the same values after dequantization (%s -> %s), other stored bytes", bn_type_name(to->type),
                 bn_type_name(tn->type));
        return BN_OK;
    }
    if (m->nan_a + m->inf_a > m->nan_b + m->inf_b) {
        /* values the candidates could match by their NaN payloads alone */
        t->relation = PARITY_REL_DIFFERENT;
        snprintf(t->detail, sizeof t->detail, "NEW holds %zu NaN and %zu inf, OLD %zu and %zu (a non-finite scale?)",
                 m->nan_a, m->inf_a, m->nan_b, m->inf_b);
        return BN_OK;
    }
    bool all_zero = true;
    for (int64_t i = 0; i < N && all_zero; i++) all_zero = n[i] == 0;
    if (all_zero) {
        t->relation = PARITY_REL_SCALED;
        snprintf(t->detail, sizeof t->detail, "NEW = 0 x OLD: every value is zero (a zero scale or an unwritten tensor)");
        return BN_OK;
    }
    if (m->scale != 0 && m->scale_nmse < 1e-9) {
        t->factor = m->scale;
        t->relation = fabs(m->scale + 1) < 1e-6 ? PARITY_REL_SIGN_FLIPPED : PARITY_REL_SCALED;
        const double H = (double)arch_int(c, "embedding_length");
        snprintf(t->detail, sizeof t->detail, "NEW = %.6g x OLD (residual NMSE %.3g after the scale)%s", m->scale,
                 m->scale_nmse, H > 0 && fabs(m->scale * m->scale - H) < 0.01 * H ? " (the factor is sqrt(H))" : "");
        return BN_OK;
    }
    float *cand = malloc((size_t)N * sizeof *cand);
    if (!cand) return bn_error_nomem(err, (size_t)N * sizeof *cand, "diff: a candidate of tensor %s", t->name);
    if (to->n_dims == 2 && rows > 1) {
        transpose(o, rows, cols, cand);
        if (same_values(cand, n, N)) {
            const bool same_shape = tn->ne[0] == cols, square = rows == cols;
            t->relation = same_shape && !square ? PARITY_REL_MIS_STRIDED : PARITY_REL_TRANSPOSED;
            snprintf(t->detail, sizeof t->detail,
                     same_shape && !square ? "NEW holds OLD^T's data under OLD's shape [%lld, %lld] (a non-square weight "
                                             "stored transposed without its shape)"
                                           : "NEW = OLD^T (shape [%lld, %lld])",
                     (long long)cols, (long long)rows);
            free(cand);
            return BN_OK;
        }
    }
    const int64_t nh = tn->ne[0] == cols ? head_count(c, t->name) : 0;
    for (int inv = 0; nh > 0 && rows % nh == 0 && (rows / nh) % 2 == 0 && inv < 2; inv++) {
        permute_heads(o, rows, cols, nh, inv, cand);
        if (same_values(cand, n, N)) {
            t->relation = inv ? PARITY_REL_QK_UNPERMUTED : PARITY_REL_QK_PERMUTED;
            snprintf(t->detail, sizeof t->detail,
                     "rows permuted within each of %lld heads of %lld: %s", (long long)nh, (long long)(rows / nh),
                     inv ? "the inverse of HF's permute (interleaved pairs -> NEOX halves)"
                         : "HF's convert_llama_weights_to_hf permute (NEOX halves -> interleaved pairs)");
            free(cand);
            return BN_OK;
        }
    }
    if (to->type == BN_TYPE_I2_S && tn->type == BN_TYPE_I2_S) {
        for (int side = 0; side < 2; side++) {
            decode_i2s_linear(side ? to : tn, cand);
            if (same_values(cand, side ? n : o, N)) {
                t->relation = PARITY_REL_REPACKED;
                snprintf(t->detail, sizeof t->detail,
                         "%s's I2_S codes decode to %s's values when read 4 consecutive elements per byte (bits 7..6 "
                         "first) instead of bitnet.cpp's 128-element interleave",
                         side ? "OLD" : "NEW", side ? "NEW" : "OLD");
                free(cand);
                return BN_OK;
            }
        }
    }
    free(cand);
    if (to->type != tn->type && m->nmse < 1e-4) {
        t->relation = PARITY_REL_REENCODED;
        snprintf(t->detail, sizeof t->detail, "re-encoded %s -> %s: NMSE %.3g, max |diff| %.3g", bn_type_name(to->type),
                 bn_type_name(tn->type), m->nmse, m->max_abs);
        return BN_OK;
    }
    if (rows == 1) {
        double lo = INFINITY, hi = -INFINITY, sum = 0;
        int64_t k = 0;
        bool constant_new = true;
        for (int64_t i = 0; i < N; i++) {
            constant_new = constant_new && n[i] == n[0];
            if (o[i] == 0 || !isfinite(o[i]) || !isfinite(n[i])) continue;
            const double r = (double)n[i] / o[i];
            lo = fmin(lo, r), hi = fmax(hi, r), sum += r, k++;
        }
        if (k > 0) {
            t->relation = PARITY_REL_CHANNEL_RATIO;
            t->factor = sum / (double)k;
            snprintf(t->detail, sizeof t->detail, "NEW/OLD per channel %.4g..%.4g (mean %.4g)%s", lo, hi, t->factor,
                     constant_new ? (n[0] == 1 ? "; NEW is all ones (gamma replaced by ones)" : "; NEW is constant") : "");
            return BN_OK;
        }
    }
    t->relation = PARITY_REL_DIFFERENT;
    snprintf(t->detail, sizeof t->detail, "no known relation: NMSE %.3g, cosine %.6f, best scale %.4g", m->nmse, m->cosine,
             m->scale);
    return BN_OK;
}

/* One tensor in both files whose bytes differ (or whose type/shape does). */
static bn_status compare_tensor(diff_ctx *c, const bn_gguf_tensor *to, const bn_gguf_tensor *tn, bn_error *err) {
    parity_tensor_diff *t = add_tensor(c, to->name, PARITY_DIFF_CHANGED, to, tn);
    if (!t) return BN_OK;
    if (to->nelem != tn->nelem) {
        snprintf(t->detail, sizeof t->detail, "%lld elements in OLD, %lld in NEW", (long long)to->nelem, (long long)tn->nelem);
        return BN_OK;
    }
    const bool same_shape = !memcmp(to->ne, tn->ne, sizeof to->ne);
    const bool swapped = to->n_dims == 2 && tn->n_dims == 2 && to->ne[0] == tn->ne[1] && to->ne[1] == tn->ne[0];
    if (!same_shape && !swapped) {
        snprintf(t->detail, sizeof t->detail, "shapes differ: [%lld, %lld, %lld, %lld] -> [%lld, %lld, %lld, %lld]",
                 (long long)to->ne[0], (long long)to->ne[1], (long long)to->ne[2], (long long)to->ne[3],
                 (long long)tn->ne[0], (long long)tn->ne[1], (long long)tn->ne[2], (long long)tn->ne[3]);
        return BN_OK;
    }
    if (to->nelem > DENSE_MAX_ELEMS) {
        t->relation = PARITY_REL_DIFFERENT;
        snprintf(t->detail, sizeof t->detail, "%lld elements: too large to compare in memory; the bytes differ",
                 (long long)to->nelem);
        return BN_OK;
    }
    float *o = NULL, *n = NULL;
    bn_status st = dense(to, &o, err);
    if (!st) st = dense(tn, &n, err);
    if (!st) st = parity_metrics_compute(n, o, (size_t)to->nelem, c->pool, &t->m, err);
    if (!st) t->has_metrics = true;
    if (!st) st = find_relation(c, t, to, tn, o, n, err);
    free(o);
    free(n);
    return st;
}

static bn_status diff_tensors(diff_ctx *c, const volatile sig_atomic_t *cancel, bn_error *err) {
    parity_model_diff *d = c->d;
    d->n_tensor[0] = bn_gguf_tensor_count(c->g[0]), d->n_tensor[1] = bn_gguf_tensor_count(c->g[1]);
    bn_status st = BN_OK;
    for (int64_t i = 0; i < d->n_tensor[0] && !st && !c->oom; i++) {
        if ((st = bn_cancel_check(cancel, err))) break;
        const bn_gguf_tensor *to = bn_gguf_tensor_at(c->g[0], i), *tn = bn_gguf_find_tensor(c->g[1], to->name);
        if (!tn) add_tensor(c, to->name, PARITY_DIFF_REMOVED, to, NULL);
        else if (to->type == tn->type && !memcmp(to->ne, tn->ne, sizeof to->ne) &&
                 !memcmp(to->data, tn->data, value_bytes(to)))
            d->n_identical++;
        else
            st = compare_tensor(c, to, tn, err);
    }
    for (int64_t j = 0; j < d->n_tensor[1] && !st && !c->oom; j++) {
        const bn_gguf_tensor *tn = bn_gguf_tensor_at(c->g[1], j);
        if (!bn_gguf_find_tensor(c->g[0], tn->name)) add_tensor(c, tn->name, PARITY_DIFF_ADDED, NULL, tn);
    }
    return st;
}

/* --------------------------------------------------------- activations -- */

static bn_status record(const parity_model_diff_opts *o, const char *path, const bn_model *m, parity_trace **out,
                        bn_error *err) {
    parity_record_opts ro = {.model_path = path, .tokens = o->tokens, .n_tokens = o->n_tokens,
                             .numerics = BN_NUMERICS_GGML_COMPAT, .n_threads = o->threads, .cancel = o->cancel};
    return parity_record_open(m, &ro, out, err);
}

/* Records both models on the tokens and compares NEW (subject) against OLD
 * (reference); a model the engine refuses skips this part (act_skipped). */
static bn_status diff_activations(diff_ctx *c, const parity_model_diff_opts *o, bn_error *err) {
    parity_model_diff *d = c->d;
    bn_model *m[2] = {NULL, NULL};
    for (int s = 0; s < 2; s++) {
        bn_error e;
        bn_status bst = bn_model_load(d->path[s], &m[s], &e);
        if (bst == BN_ERR_NOMEM || bst == BN_ERR_CANCELLED) {
            bn_model_free(m[0]);
            *err = e;
            return bst;
        }
        if (bst) snprintf(d->bind_error[s], sizeof d->bind_error[s], "%s", e.msg);
    }
    if (d->bind_error[0][0] || d->bind_error[1][0]) {
        snprintf(d->act_skipped, sizeof d->act_skipped, "the engine cannot bind %s: %s",
                 d->bind_error[0][0] ? "OLD" : "NEW", d->bind_error[0][0] ? d->bind_error[0] : d->bind_error[1]);
    } else if (!o->tokens || o->n_tokens <= 0) {
        snprintf(d->act_skipped, sizeof d->act_skipped, "no tokens to run");
    }
    if (d->act_skipped[0]) {
        bn_model_free(m[0]), bn_model_free(m[1]);
        return BN_OK;
    }
    parity_trace *t[2] = {NULL, NULL};
    parity_tapmap *map[2] = {NULL, NULL};
    parity_tapview *v[2] = {NULL, NULL};
    bn_status st = BN_OK;
    for (int s = 0; s < 2 && !st; s++) {
        bn_error e;
        st = record(o, d->path[s], m[s], &t[s], &e);
        /* tokens the model cannot run (an id past its vocabulary): the weight part still stands */
        if (st == BN_ERR_INVALID) {
            snprintf(d->act_skipped, sizeof d->act_skipped, "the engine cannot run the tokens: %s", e.msg);
            st = BN_OK;
            break;
        }
        if (st) *err = e;
    }
    const bool run = !st && !d->act_skipped[0];
    for (int s = 0; s < 2 && run && !st; s++) st = parity_tapmap_for_trace(t[s], &map[s], err);
    if (run && !st) {
        const char *policy = o->policy ? o->policy : parity_compare_default_policy(t[1], t[0], NULL, 0);
        snprintf(d->policy, sizeof d->policy, "%s", policy);
        st = parity_policy_load_builtin(policy, &d->act_policy, err);
    }
    const parity_compare_opts co = {.pool = c->pool, .cancel = o->cancel};
    if (run && !st) st = parity_compare(t[1], map[1], t[0], map[0], d->act_policy, &co, &d->act, err);
    for (int s = 0; s < 2 && run && !st; s++) st = parity_tapview_open(t[1 - s], map[1 - s], &v[s], err);
    if (run && !st) st = parity_hints_find(d->act, v[0], v[1], m[1], m[0], err);
    if (run && !st) d->act_ran = true;
    for (int s = 0; s < 2; s++) {
        parity_tapview_free(v[s]);
        parity_tapmap_free(map[s]);
        parity_trace_close(t[s]);
        bn_model_free(m[s]);
    }
    return st;
}

/* ------------------------------------------------------------- driver -- */

static bn_status hash(const char *path, const volatile sig_atomic_t *cancel, char hex[BN_SHA256_HEX_SIZE], bn_error *err) {
    uint8_t digest[BN_SHA256_DIGEST_SIZE];
    bn_status st = bn_sha256_file(path, cancel, digest, err);
    if (!st) bn_sha256_hex(digest, hex);
    return st;
}

static void decide(parity_model_diff *d) {
    const bool weights_same = d->n_tensors == 0;
    if (d->act_ran) {
        d->equivalent = d->act->pass;
        if (d->act->pass)
            snprintf(d->verdict, sizeof d->verdict, "equivalent: the activations agree under policy %s%s%s", d->policy,
                     weights_same ? "" : " although tensors differ", d->n_kv ? " (the metadata differs)" : "");
        else if (d->act->first.found)
            snprintf(d->verdict, sizeof d->verdict, "not equivalent: activations diverge first at e%lld %s (%s %.3g > %.3g)",
                     (long long)d->act->first.eval, d->act->first.tap, d->act->first.metric, d->act->first.value,
                     d->act->first.limit);
        else
            snprintf(d->verdict, sizeof d->verdict, "not equivalent: %s",
                     d->act->diagnosis[0] ? d->act->diagnosis : "the activation comparison failed");
        return;
    }
    d->equivalent = weights_same && d->n_kv == 0;
    snprintf(d->verdict, sizeof d->verdict, "%s (activations not compared: %s)",
             d->equivalent ? "equivalent: the same metadata and tensor values"
                           : weights_same ? "not equivalent: the metadata differs" : "not equivalent: tensors differ",
             d->act_skipped);
}

bn_status parity_model_diff_run(const parity_model_diff_opts *o, parity_model_diff **out, bn_error *err) {
    *out = NULL;
    if (!o || !o->old_path || !o->new_path || o->threads < 1)
        return bn_error_set(err, BN_ERR_INVALID, "diff: two model paths and threads >= 1 are needed");
    parity_model_diff *d = calloc(1, sizeof *d);
    if (!d) return bn_error_nomem(err, sizeof *d, "diff: the result");
    bn_gguf *g[2] = {NULL, NULL};
    diff_ctx c = {.d = d, .err = err};
    bn_status st = BN_OK;
    if (!(d->path[0] = strdup(o->old_path)) || !(d->path[1] = strdup(o->new_path)) ||
        (o->n_tokens > 0 && !(d->tokens = malloc((size_t)o->n_tokens * sizeof *d->tokens))))
        st = bn_error_nomem(err, 0, "diff: the result");
    if (!st && o->n_tokens > 0) memcpy(d->tokens, o->tokens, (size_t)o->n_tokens * sizeof *d->tokens), d->n_tokens = o->n_tokens;
    for (int s = 0; s < 2 && !st; s++) st = bn_gguf_open(d->path[s], &g[s], err);
    for (int s = 0; s < 2 && !st; s++) st = hash(d->path[s], o->cancel, d->sha256[s], err);
    if (!st) st = bn_pool_create(o->threads, &c.pool, err);
    c.g[0] = g[0], c.g[1] = g[1];
    if (!st) diff_metadata(&c);
    if (!st) st = diff_tensors(&c, o->cancel, err);
    if (!st && c.oom) st = bn_error_nomem(err, 0, "diff: the tables of %s and %s", d->path[0], d->path[1]);
    if (!st) st = diff_activations(&c, o, err);
    bn_pool_destroy(c.pool);
    bn_gguf_close(g[0]);
    bn_gguf_close(g[1]);
    if (st) {
        parity_model_diff_free(d);
        return st;
    }
    decide(d);
    *out = d;
    return BN_OK;
}

/* ------------------------------------------------------------ document -- */

static const char *change_name(parity_diff_change c) {
    return c == PARITY_DIFF_ADDED ? "added" : c == PARITY_DIFF_REMOVED ? "removed" : "changed";
}

static void side_doc(const parity_model_diff *d, int s, parity_doc_builder *b, parity_doc_node *root, const char *key) {
    parity_doc_node *m = parity_doc_map(b, root, key);
    parity_doc_str(b, m, "path", d->path[s]);
    parity_doc_str(b, m, "sha256", d->sha256[s]);
    parity_doc_bool(b, m, "engine_binds", !d->bind_error[s][0]);
    if (d->bind_error[s][0]) parity_doc_str(b, m, "engine_error", d->bind_error[s]);
}

static void tensor_doc(const parity_tensor_diff *t, parity_doc_builder *b, parity_doc_node *list) {
    parity_doc_node *m = parity_doc_map(b, list, NULL);
    parity_doc_str(b, m, "name", t->name);
    parity_doc_str(b, m, "change", change_name(t->change));
    for (int s = 0; s < 2; s++) {
        if ((s == 0 && t->change == PARITY_DIFF_ADDED) || (s == 1 && t->change == PARITY_DIFF_REMOVED)) continue;
        parity_doc_str(b, m, s ? "new_type" : "old_type", bn_type_name(t->type[s]));
        parity_doc_shape(b, m, s ? "new_shape" : "old_shape", t->n_dims[s], t->ne[s]);
    }
    if (t->change != PARITY_DIFF_CHANGED) return;
    parity_doc_str(b, m, "relation", parity_weight_relation_name(t->relation));
    if (t->relation == PARITY_REL_SCALED || t->relation == PARITY_REL_CHANNEL_RATIO) parity_doc_num(b, m, "factor", t->factor);
    parity_doc_str(b, m, "detail", t->detail);
    if (!t->has_metrics) return;
    parity_doc_node *mm = parity_doc_map(b, m, "metrics");
    parity_doc_num(b, mm, "nmse", t->m.nmse);
    parity_doc_num(b, mm, "max_abs", t->m.max_abs);
    parity_doc_num(b, mm, "cosine", t->m.cosine);
    parity_doc_num(b, mm, "scale", t->m.scale);
    parity_doc_num(b, mm, "scale_nmse", t->m.scale_nmse);
    parity_doc_int(b, mm, "n_bitdiff", (int64_t)t->m.n_bitdiff);
}

static void activations_doc(const parity_model_diff *d, parity_doc_builder *b, parity_doc_node *root) {
    parity_doc_node *a = parity_doc_map(b, root, "activations");
    parity_doc_bool(b, a, "ran", d->act_ran);
    if (!d->act_ran) {
        parity_doc_str(b, a, "skipped", d->act_skipped);
        return;
    }
    parity_doc_node *tok = parity_doc_list(b, a, "tokens", 1);
    for (int64_t i = 0; i < d->n_tokens; i++) parity_doc_int(b, tok, NULL, d->tokens[i]);
    parity_doc_str(b, a, "policy", d->policy);
    parity_doc_bool(b, a, "pass", d->act->pass);
    parity_doc_node *n = parity_doc_map(b, a, "counts");
    parity_doc_int(b, n, "compared", d->act->counts.compared);
    parity_doc_int(b, n, "pass", d->act->counts.pass);
    parity_doc_int(b, n, "fail", d->act->counts.fail);
    parity_doc_int(b, n, "bit_identical", d->act->counts.bit_identical);
    if (d->act->first.found) {
        parity_doc_node *f = parity_doc_map(b, a, "first_divergence");
        parity_doc_int(b, f, "eval", d->act->first.eval);
        parity_doc_str(b, f, "tap", d->act->first.tap);
        parity_doc_str(b, f, "metric", d->act->first.metric);
        parity_doc_num(b, f, "value", d->act->first.value);
        parity_doc_num(b, f, "limit", d->act->first.limit);
    } else {
        parity_doc_null(b, a, "first_divergence");
    }
    if (d->act->diagnosis[0]) parity_doc_str(b, a, "diagnosis", d->act->diagnosis);
    parity_doc_node *h = parity_doc_list(b, a, "hints", 0);
    for (size_t i = 0; i < d->act->n_hints; i++) {
        if (!strcmp(d->act->hints[i].name, PARITY_DIFF_SAID_HINT)) continue;
        parity_doc_node *m = parity_doc_map(b, h, NULL);
        parity_doc_str(b, m, "name", d->act->hints[i].name);
        parity_doc_str(b, m, "message", d->act->hints[i].message);
        parity_doc_str(b, m, "evidence", d->act->hints[i].evidence);
    }
}

void parity_model_diff_to_doc(const parity_model_diff *d, parity_doc_builder *b, parity_doc_node *root) {
    parity_doc_str(b, root, "diff", "bitparity/diff-v1");
    side_doc(d, 0, b, root, "old");
    side_doc(d, 1, b, root, "new");
    parity_doc_node *v = parity_doc_map(b, root, "verdict");
    parity_doc_bool(b, v, "equivalent", d->equivalent);
    parity_doc_str(b, v, "reason", d->verdict);
    parity_doc_node *md = parity_doc_list(b, root, "metadata", 0);
    for (size_t i = 0; i < d->n_kv; i++) {
        parity_doc_node *m = parity_doc_map(b, md, NULL);
        parity_doc_str(b, m, "key", d->kv[i].key);
        parity_doc_str(b, m, "change", change_name(d->kv[i].change));
        if (d->kv[i].old_value) parity_doc_str(b, m, "old", d->kv[i].old_value);
        if (d->kv[i].new_value) parity_doc_str(b, m, "new", d->kv[i].new_value);
    }
    parity_doc_node *t = parity_doc_map(b, root, "tensors");
    parity_doc_int(b, t, "old_count", d->n_tensor[0]);
    parity_doc_int(b, t, "new_count", d->n_tensor[1]);
    parity_doc_int(b, t, "identical", d->n_identical);
    parity_doc_node *l = parity_doc_list(b, t, "differences", 0);
    for (size_t i = 0; i < d->n_tensors; i++) tensor_doc(&d->tensors[i], b, l);
    activations_doc(d, b, root);
}

void parity_model_diff_free(parity_model_diff *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_kv; i++) free(d->kv[i].key), free(d->kv[i].old_value), free(d->kv[i].new_value);
    for (size_t i = 0; i < d->n_tensors; i++) free(d->tensors[i].name);
    free(d->kv);
    free(d->tensors);
    parity_compare_result_free(d->act);
    parity_policy_free(d->act_policy);
    free(d->tokens);
    free(d->path[0]);
    free(d->path[1]);
    free(d);
}
