/* trace_writer_public.c — bitparity.h: the trace writer for foreign engines.
 *
 * A thin, checking layer over parity_trace_writer (trace.c), which does the
 * streaming and the atomic publication. What this layer adds is what a
 * foreign engine gets wrong and would otherwise only learn at compare time:
 * a tap name that is not canonical, a token dimension that is not the
 * evaluation's, a tap written twice, a producer name that claims to be
 * bitparity's engine. It owns copies of every string and token list, since
 * meta.yaml is only written at close.
 */
#include "bitparity.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/sha256.h"
#include "bitnet/taps.h"
#include "parity/trace.h"

/* The settable meta.yaml keys, in the order parity_trace_meta has them. */
enum meta_key {
    KEY_PRODUCER_VERSION,
    KEY_PRODUCER_COMMIT,
    KEY_MODEL_PATH,
    KEY_MODEL_SHA256,
    KEY_MODEL_ARCH,
    KEY_MODEL_WEIGHT_TYPE,
    KEY_NUMERICS,
    KEY_KV_CACHE,
    KEY_COUNT
};

static const char *const key_names[KEY_COUNT] = {
    "producer.version", "producer.commit", "model.path", "model.sha256", "model.arch", "model.weight_type",
    "numerics", "kv_cache",
};

typedef struct eval_record {
    char id[24];
    int32_t *tokens; /* [n_tokens], owned */
    int64_t n_tokens;
    int64_t p0;
} eval_record;

struct bitparity_trace_writer {
    parity_trace_writer *trace;
    char *path;
    char *producer;
    char *values[KEY_COUNT]; /* owned, NULL when unset */
    eval_record *evals;      /* [n_evals] */
    int64_t n_evals, cap_evals;
    char **eval_taps; /* the current evaluation's tap names, to refuse a second write */
    int64_t n_eval_taps, cap_eval_taps;
};

static void free_eval_taps(bitparity_trace_writer *w) {
    for (int64_t i = 0; i < w->n_eval_taps; i++) free(w->eval_taps[i]);
    w->n_eval_taps = 0;
}

static void writer_free(bitparity_trace_writer *w) {
    if (!w) return;
    free_eval_taps(w);
    free(w->eval_taps);
    for (int64_t i = 0; i < w->n_evals; i++) free(w->evals[i].tokens);
    free(w->evals);
    for (int i = 0; i < KEY_COUNT; i++) free(w->values[i]);
    free(w->producer);
    free(w->path);
    free(w);
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

bn_status bitparity_trace_writer_open(const char *path, const char *producer_name, bitparity_trace_writer **out,
                                      bn_error *err) {
    if (!out) return bn_error_set(err, BN_ERR_INVALID, "bitparity_trace_writer_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return bn_error_set(err, BN_ERR_INVALID, "bitparity_trace_writer_open: empty path");
    if (!producer_name || !*producer_name)
        return bn_error_set(err, BN_ERR_INVALID, "%s: empty producer name (name your engine)", path);
    if (strcmp(producer_name, "bitparity") == 0)
        return bn_error_set(err, BN_ERR_INVALID,
                            "%s: producer name 'bitparity' is reserved for bitparity's own engine (compare "
                            "--replay re-runs it for such traces); name your engine",
                            path);
    bitparity_trace_writer *w = calloc(1, sizeof *w);
    if (!w) return bn_error_nomem(err, sizeof *w, "%s: trace writer", path);
    w->path = dup_string(path);
    w->producer = dup_string(producer_name);
    if (!w->path || !w->producer) {
        writer_free(w);
        return bn_error_nomem(err, strlen(path) + strlen(producer_name) + 2, "%s: trace writer names", path);
    }
    bn_status st = parity_trace_writer_open(path, NPZ_STORED, &w->trace, err);
    if (st) {
        writer_free(w);
        return st;
    }
    *out = w;
    return BN_OK;
}

static bool is_sha256_hex(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]) || isupper((unsigned char)s[n])) return false;
    return n == 64;
}

bn_status bitparity_trace_writer_set(bitparity_trace_writer *w, const char *key, const char *value, bn_error *err) {
    if (!w || !key || !value)
        return bn_error_set(err, BN_ERR_INVALID, "bitparity_trace_writer_set: NULL writer, key or value");
    int k = 0;
    while (k < KEY_COUNT && strcmp(key_names[k], key) != 0) k++;
    if (k == KEY_COUNT)
        return bn_error_set(err, BN_ERR_INVALID,
                            "%s: unknown metadata key '%s' (producer.version, producer.commit, model.path, "
                            "model.sha256, model.arch, model.weight_type, numerics, kv_cache)",
                            w->path, key);
    if (!*value || strchr(value, '\n'))
        return bn_error_set(err, BN_ERR_INVALID, "%s: %s: the value must be one non-empty line", w->path, key);
    if (k == KEY_MODEL_SHA256 && !is_sha256_hex(value))
        return bn_error_set(err, BN_ERR_INVALID, "%s: model.sha256 '%s' is not 64 lowercase hex digits", w->path,
                            value);
    char *copy = dup_string(value);
    if (!copy) return bn_error_nomem(err, strlen(value) + 1, "%s: value of %s", w->path, key);
    free(w->values[k]);
    w->values[k] = copy;
    return BN_OK;
}

bn_status bitparity_trace_writer_set_model_file(bitparity_trace_writer *w, const char *model_path, bn_error *err) {
    if (!w || !model_path)
        return bn_error_set(err, BN_ERR_INVALID, "bitparity_trace_writer_set_model_file: NULL writer or path");
    uint8_t digest[BN_SHA256_DIGEST_SIZE];
    char hex[BN_SHA256_HEX_SIZE];
    bn_status st = bn_sha256_file(model_path, NULL, digest, err);
    if (st) return st;
    bn_sha256_hex(digest, hex);
    st = bitparity_trace_writer_set(w, "model.sha256", hex, err);
    return st ? st : bitparity_trace_writer_set(w, "model.path", model_path, err);
}

bn_status bitparity_trace_writer_begin_evaluation(bitparity_trace_writer *w, const int32_t *tokens,
                                                  int64_t n_tokens, int64_t p0, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "bitparity_trace_writer_begin_evaluation: NULL writer");
    if (!tokens || n_tokens <= 0 || n_tokens > (int64_t)1 << 24 || p0 < 0 || p0 > (int64_t)1 << 40)
        return bn_error_set(err, BN_ERR_INVALID, "%s: e%lld: needs 1 or more tokens and p0 >= 0 (got %lld at %lld)",
                            w->path, (long long)w->n_evals, (long long)n_tokens, (long long)p0);
    if (w->n_evals == w->cap_evals) {
        int64_t cap = w->cap_evals ? w->cap_evals * 2 : 16;
        eval_record *e = realloc(w->evals, (size_t)cap * sizeof *e);
        if (!e) return bn_error_nomem(err, (size_t)cap * sizeof *e, "%s: evaluation list", w->path);
        w->evals = e;
        w->cap_evals = cap;
    }
    eval_record *e = &w->evals[w->n_evals];
    e->tokens = malloc((size_t)n_tokens * sizeof *tokens);
    if (!e->tokens)
        return bn_error_nomem(err, (size_t)n_tokens * sizeof *tokens, "%s: tokens of e%lld", w->path,
                              (long long)w->n_evals);
    memcpy(e->tokens, tokens, (size_t)n_tokens * sizeof *tokens);
    e->n_tokens = n_tokens;
    e->p0 = p0;
    snprintf(e->id, sizeof e->id, "e%lld", (long long)w->n_evals);
    w->n_evals++;
    free_eval_taps(w);
    return BN_OK;
}

/* The checks every tap passes before its bytes go to the file. */
static bn_status check_tap(bitparity_trace_writer *w, const char *tap, bool int8, const void *data,
                           const int64_t *shape, int ndim, bn_error *err) {
    if (!tap) return bn_error_set(err, BN_ERR_INVALID, "%s: NULL tap name", w->path);
    if (w->n_evals == 0)
        return bn_error_set(err, BN_ERR_INVALID, "%s: tap %s written before bitparity_trace_writer_begin_evaluation",
                            w->path, tap);
    int64_t k = w->n_evals - 1;
    int layer;
    bn_tap_kind kind;
    if (!bn_tap_parse(tap, &layer, &kind))
        return bn_error_set(err, BN_ERR_INVALID,
                            "%s: e%lld: '%s' is not a canonical tap name (docs/taps.md: token_embd, "
                            "blk.N.attn_norm, ..., output_norm, logits)",
                            w->path, (long long)k, tap);
    bool is_q8 = kind >= BN_TAP_IN_Q8_FIRST && kind < BN_TAP_BLOCK_KINDS && (kind - BN_TAP_IN_Q8_FIRST) % 2 == 0;
    if (is_q8 != int8)
        return bn_error_set(err, BN_ERR_INVALID, "%s: e%lld: tap %s holds %s data (use %s)", w->path, (long long)k,
                            tap, is_q8 ? "int8" : "float32",
                            is_q8 ? "bitparity_trace_writer_write_tap_int8" : "bitparity_trace_writer_write_tap");
    if (!data || !shape || ndim < 1 || ndim > 4)
        return bn_error_set(err, BN_ERR_INVALID, "%s: e%lld: tap %s: NULL data/shape or ndim %d not in 1..4",
                            w->path, (long long)k, tap, ndim);
    for (int d = 0; d < ndim; d++)
        if (shape[d] <= 0 || shape[d] > (int64_t)1 << 40)
            return bn_error_set(err, BN_ERR_INVALID, "%s: e%lld: tap %s: dimension %d is %lld", w->path,
                                (long long)k, tap, d, (long long)shape[d]);
    /* docs/taps.md: token-major, except the attention matrices [nh, T, p0+T]. */
    int token_dim = (kind == BN_TAP_ATTN_SCORES || kind == BN_TAP_ATTN_PROBS) ? 1 : 0;
    if (token_dim >= ndim || shape[token_dim] != w->evals[k].n_tokens)
        return bn_error_set(err, BN_ERR_INVALID,
                            "%s: e%lld: tap %s: dimension %d must be the evaluation's %lld tokens (got %lld, "
                            "ndim %d; docs/taps.md)",
                            w->path, (long long)k, tap, token_dim, (long long)w->evals[k].n_tokens,
                            token_dim < ndim ? (long long)shape[token_dim] : -1LL, ndim);
    for (int64_t i = 0; i < w->n_eval_taps; i++)
        if (strcmp(w->eval_taps[i], tap) == 0)
            return bn_error_set(err, BN_ERR_INVALID, "%s: e%lld: tap %s written twice", w->path, (long long)k, tap);
    return BN_OK;
}

static bn_status write_tap(bitparity_trace_writer *w, const char *tap, bool int8, const void *data,
                           const int64_t *shape, int ndim, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "bitparity_trace_writer_write_tap: NULL writer");
    bn_status st = check_tap(w, tap, int8, data, shape, ndim, err);
    if (st) return st;
    if (w->n_eval_taps == w->cap_eval_taps) {
        int64_t cap = w->cap_eval_taps ? w->cap_eval_taps * 2 : 64;
        char **t = realloc(w->eval_taps, (size_t)cap * sizeof *t);
        if (!t) return bn_error_nomem(err, (size_t)cap * sizeof *t, "%s: tap list", w->path);
        w->eval_taps = t;
        w->cap_eval_taps = cap;
    }
    char *name = dup_string(tap);
    if (!name) return bn_error_nomem(err, strlen(tap) + 1, "%s: tap name %s", w->path, tap);
    st = parity_trace_writer_add_tap(w->trace, w->n_evals - 1, tap, int8 ? NPZ_I8 : NPZ_F32, shape, ndim, data,
                                     err);
    if (st) {
        free(name);
        return st;
    }
    w->eval_taps[w->n_eval_taps++] = name;
    return BN_OK;
}

bn_status bitparity_trace_writer_write_tap(bitparity_trace_writer *w, const char *tap, const float *data,
                                           const int64_t *shape, int ndim, bn_error *err) {
    return write_tap(w, tap, false, data, shape, ndim, err);
}

bn_status bitparity_trace_writer_write_tap_int8(bitparity_trace_writer *w, const char *tap, const int8_t *data,
                                                const int64_t *shape, int ndim, bn_error *err) {
    return write_tap(w, tap, true, data, shape, ndim, err);
}

bn_status bitparity_trace_writer_close(bitparity_trace_writer *w, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "bitparity_trace_writer_close: NULL writer");
    if (w->n_evals == 0) {
        bn_error_set(err, BN_ERR_INVALID, "%s: no evaluation was begun: nothing to publish", w->path);
        bitparity_trace_writer_abort(w);
        return BN_ERR_INVALID;
    }
    parity_eval *evals = malloc((size_t)w->n_evals * sizeof *evals);
    if (!evals) {
        bn_error_nomem(err, (size_t)w->n_evals * sizeof *evals, "%s: evaluation table", w->path);
        bitparity_trace_writer_abort(w);
        return BN_ERR_NOMEM;
    }
    for (int64_t i = 0; i < w->n_evals; i++)
        evals[i] = (parity_eval){w->evals[i].id, w->evals[i].tokens, w->evals[i].n_tokens, w->evals[i].p0};
    parity_trace_meta meta = {
        .producer_name = w->producer,
        .producer_version = w->values[KEY_PRODUCER_VERSION],
        .producer_commit = w->values[KEY_PRODUCER_COMMIT],
        .model_path = w->values[KEY_MODEL_PATH],
        .model_sha256 = w->values[KEY_MODEL_SHA256],
        .model_arch = w->values[KEY_MODEL_ARCH],
        .model_weight_type = w->values[KEY_MODEL_WEIGHT_TYPE],
        .numerics = w->values[KEY_NUMERICS],
        .kv_cache = w->values[KEY_KV_CACHE],
        .threads = -1,
        .evals = evals,
        .n_evals = w->n_evals,
    };
    bn_status st = parity_trace_writer_finish(w->trace, &meta, err);
    w->trace = NULL; /* finish frees it in every case */
    free(evals);
    writer_free(w);
    return st;
}

void bitparity_trace_writer_abort(bitparity_trace_writer *w) {
    if (!w) return;
    parity_trace_writer_abort(w->trace);
    w->trace = NULL;
    writer_free(w);
}
