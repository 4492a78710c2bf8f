/* receipt.c — receipts: a small tree of maps, lists and scalars built from a
 * comparison, written as YAML (libyaml emitter) or JSON (docs/receipt.md). */
#include "parity/receipt.h"

#include "parity/doc.h"
#include "parity/receipt_schema.h"
#include "parity/arbiter.h"
#include "parity/replay.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet/atomic_file.h"
#include "bitnet/clock.h"
#include "bitnet/matmul.h"
#include "bitnet/quant.h"
#include "bitnet/sha256.h"

#ifndef BITPARITY_VERSION
#define BITPARITY_VERSION "unknown"
#endif
#ifndef BITPARITY_COMMIT
#define BITPARITY_COMMIT "unknown"
#endif

/* ---- the tree (parity/doc.h, keys checked against the schema) -------------------- */

/* Keys are ids into the schema table (receipt_schema.h); ITEM is a list item. */
typedef parity_receipt_key_id rkey;
#define ITEM PARITY_RK_COUNT

typedef parity_doc_node rnode;

/* The builder: the document's sticky allocation failure, and a key written
 * with a type other than the schema's in bad_key (a bug, reported as
 * INTERNAL). */
typedef struct rb {
    parity_doc_builder doc;
    rkey bad_key;
} rb;

struct parity_receipt {
    rnode *root;
};

/* The schema's name of key (NULL for a list item), after checking that a
 * node of kind fits its type (null fits every type). */
static const char *key_name(rb *b, rkey key, parity_doc_kind kind) {
    static const parity_receipt_type fits[] = {[PARITY_DOC_MAP] = PARITY_RT_MAP, [PARITY_DOC_LIST] = PARITY_RT_LIST,
                                               [PARITY_DOC_STR] = PARITY_RT_STR, [PARITY_DOC_INT] = PARITY_RT_INT,
                                               [PARITY_DOC_NUM] = PARITY_RT_NUM, [PARITY_DOC_BOOL] = PARITY_RT_BOOL};
    if (key == ITEM) return NULL;
    if (kind != PARITY_DOC_NULL && fits[kind] != parity_receipt_keys[key].type) b->bad_key = key;
    return parity_receipt_keys[key].key;
}

static rnode *r_map(rb *b, rnode *p, rkey key) { return parity_doc_map(&b->doc, p, key_name(b, key, PARITY_DOC_MAP)); }

static rnode *r_seq(rb *b, rnode *p, rkey key, int flow) {
    return parity_doc_list(&b->doc, p, key_name(b, key, PARITY_DOC_LIST), flow);
}

static void r_str(rb *b, rnode *p, rkey key, const char *s) {
    parity_doc_str(&b->doc, p, key_name(b, key, s ? PARITY_DOC_STR : PARITY_DOC_NULL), s);
}

static void r_int(rb *b, rnode *p, rkey key, int64_t v) { parity_doc_int(&b->doc, p, key_name(b, key, PARITY_DOC_INT), v); }

static void r_num(rb *b, rnode *p, rkey key, double v) { parity_doc_num(&b->doc, p, key_name(b, key, PARITY_DOC_NUM), v); }

static void r_bool(rb *b, rnode *p, rkey key, int v) { parity_doc_bool(&b->doc, p, key_name(b, key, PARITY_DOC_BOOL), v); }

static void r_num_or_null(rb *b, rnode *p, rkey key, double v) {
    parity_doc_num_or_null(&b->doc, p, key_name(b, key, isnan(v) ? PARITY_DOC_NULL : PARITY_DOC_NUM), v);
}

static void r_shape(rb *b, rnode *p, rkey key, int ndim, const int64_t *shape) {
    parity_doc_shape(&b->doc, p, key_name(b, key, PARITY_DOC_LIST), ndim, shape);
}

/* ---- content ---------------------------------------------------------------------- */

void parity_host_cpu(char *buf, size_t size) {
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v += 1 + (v[1] == ' ');
        size_t n = strcspn(v, "\n");
        snprintf(buf, size, "%.*s", (int)n, v);
        break;
    }
    fclose(f);
}

typedef struct build_ctx {
    rb b;
    const parity_receipt_input *in;
    const parity_compare_result *r;
    double t_hash;
    bn_error *err;
} build_ctx;

static void add_producer(build_ctx *c, rnode *p, const parity_trace *t) {
    static const rkey keys[] = {PARITY_RK_SIDE_PRODUCER_NAME, PARITY_RK_SIDE_PRODUCER_VERSION, PARITY_RK_SIDE_PRODUCER_COMMIT,
                                PARITY_RK_SIDE_PRODUCER_SOURCE};
    rnode *m = r_map(&c->b, p, PARITY_RK_SIDE_PRODUCER);
    char key[32];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        snprintf(key, sizeof key, "producer.%s", parity_receipt_keys[keys[i]].key);
        const char *v = parity_trace_get(t, key);
        if (v || i == 0) r_str(&c->b, m, keys[i], v);
    }
}

static const char *model_path(const parity_trace *t) {
    const char *p = parity_trace_get(t, "model.path");
    return p ? p : parity_trace_get(t, "model.file");
}

static const char *const storage_names[] = {[PARITY_STORAGE_FILE] = "file", [PARITY_STORAGE_KEPT] = "kept",
                                            [PARITY_STORAGE_MEMORY] = "memory"};

static void add_side(build_ctx *c, rnode *root, rkey key, const parity_trace *t, const parity_tapmap *m,
                     const char *hex, parity_receipt_storage storage) {
    rnode *s = r_map(&c->b, root, key);
    add_producer(c, s, t);
    r_str(&c->b, s, PARITY_RK_SIDE_NUMERICS, parity_trace_get(t, "settings.numerics"));
    r_str(&c->b, s, PARITY_RK_SIDE_WEIGHT_TYPE, parity_trace_weight_type(t));
    r_str(&c->b, s, PARITY_RK_SIDE_FAULT, parity_trace_get(t, "settings.fault"));
    r_str(&c->b, s, PARITY_RK_SIDE_TRACE, parity_trace_path(t));
    r_str(&c->b, s, PARITY_RK_SIDE_STORAGE, (unsigned)storage < 3 ? storage_names[storage] : NULL);
    r_int(&c->b, s, PARITY_RK_SIDE_SIZE_BYTES, (int64_t)npz_file_size(parity_trace_npz(t)));
    r_str(&c->b, s, PARITY_RK_SIDE_SHA256, hex[0] ? hex : NULL);
    r_str(&c->b, s, PARITY_RK_SIDE_LAYOUT, parity_trace_layout_name(parity_trace_layout(t)));
    rnode *mm = r_map(&c->b, s, PARITY_RK_SIDE_MAP);
    r_str(&c->b, mm, PARITY_RK_SIDE_MAP_NAME, parity_tapmap_name(m));
    r_str(&c->b, mm, PARITY_RK_SIDE_MAP_ORIGIN, parity_tapmap_origin(m));
    r_str(&c->b, mm, PARITY_RK_SIDE_MAP_SHA256, parity_tapmap_sha256(m));
    r_int(&c->b, s, PARITY_RK_SIDE_EVALUATIONS, parity_trace_eval_count(t));
    rnode *md = r_map(&c->b, s, PARITY_RK_SIDE_MODEL);
    r_str(&c->b, md, PARITY_RK_SIDE_MODEL_PATH, model_path(t));
    r_str(&c->b, md, PARITY_RK_SIDE_MODEL_SHA256, parity_trace_get(t, "model.sha256"));
}

/* Both traces are hashed at once, one per thread: for large traces the
 * hash costs more than the comparison. The bytes hashed are the ones opened
 * (mapped file or memory), so a trace recorded in memory has a digest too. */
typedef struct hash_job {
    const npz_reader *npz[2];
    const volatile sig_atomic_t *cancel;
    char hex[2][BN_SHA256_HEX_SIZE];
    bn_status st[2];
    bn_error err[2];
} hash_job;

static void hash_one(void *ctx, int64_t begin, int64_t end) {
    hash_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        uint8_t dg[BN_SHA256_DIGEST_SIZE];
        uint64_t size;
        const void *bytes = npz_bytes(j->npz[i], &size);
        j->st[i] = bn_sha256_memory(bytes, (size_t)size, j->cancel, dg, &j->err[i]);
        if (!j->st[i]) bn_sha256_hex(dg, j->hex[i]);
    }
}

static bn_status hash_traces(build_ctx *c, hash_job *j) {
    memset(j, 0, sizeof *j);
    if (!c->in->hash_traces) return BN_OK;
    j->npz[0] = parity_trace_npz(c->in->subject);
    j->npz[1] = parity_trace_npz(c->in->reference);
    j->cancel = c->in->cancel;
    const double t0 = bn_clock_seconds();
    bn_pool_parallel_for(c->in->pool, 2, 1, hash_one, j);
    c->t_hash = bn_clock_seconds() - t0;
    for (int i = 0; i < 2; i++)
        if (j->st[i]) {
            if (c->err) *c->err = j->err[i];
            return j->st[i];
        }
    return BN_OK;
}

static void add_evals(build_ctx *c, rnode *p, rkey key, const parity_trace *t) {
    rnode *s = r_seq(&c->b, p, key, 0);
    for (int64_t k = 0; k < parity_trace_eval_count(t); k++) {
        const parity_eval *e = parity_trace_eval(t, k);
        rnode *m = r_map(&c->b, s, ITEM);
        if (m) m->flow = 1;
        r_str(&c->b, m, PARITY_RK_EVAL_ID, e->id);
        rnode *tok = r_seq(&c->b, m, PARITY_RK_EVAL_TOKENS, 1);
        for (int64_t i = 0; i < e->n_tokens; i++) r_int(&c->b, tok, ITEM, e->tokens[i]);
        r_int(&c->b, m, PARITY_RK_EVAL_P0, e->p0);
    }
}

/* ---- the model file and the engine run ------------------------------------------ */

static void sha_u32(bn_sha256 *h, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    bn_sha256_update(h, b, sizeof b);
}

static void sha_u64(bn_sha256 *h, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    bn_sha256_update(h, b, sizeof b);
}

static void sha_str(bn_sha256 *h, const char *p, uint64_t n) {
    sha_u64(h, n);
    bn_sha256_update(h, p, (size_t)n);
}

static void sort_keys(const bn_gguf *g, int64_t *idx, int64_t n) {
    /* insertion sort: a tokenizer has a dozen keys, and qsort's comparator
     * could not reach g without a global */
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && strcmp(bn_gguf_kv_key(g, idx[j - 1]), bn_gguf_kv_key(g, idx[j])) > 0; j--) {
            int64_t t = idx[j];
            idx[j] = idx[j - 1], idx[j - 1] = t;
        }
}

bool parity_tokenizer_sha256(const bn_gguf *g, char hex[BN_SHA256_HEX_SIZE]) {
    static const char prefix[] = "tokenizer.ggml.";
    int64_t idx[64], n = 0;
    for (int64_t i = 0; i < bn_gguf_kv_count(g); i++) {
        if (strncmp(bn_gguf_kv_key(g, i), prefix, sizeof prefix - 1)) continue;
        if (n == (int64_t)(sizeof idx / sizeof idx[0])) return false; /* no tokenizer has so many keys */
        idx[n++] = i;
    }
    if (!n) return false;
    sort_keys(g, idx, n);
    bn_sha256 h;
    bn_sha256_init(&h);
    for (int64_t k = 0; k < n; k++) {
        const int64_t i = idx[k];
        const char *key = bn_gguf_kv_key(g, i);
        sha_str(&h, key, strlen(key));
        const bn_gguf_vtype t = bn_gguf_kv_type(g, i), et = bn_gguf_kv_elem_type(g, i);
        const uint64_t count = bn_gguf_kv_count_elems(g, i);
        sha_u32(&h, (uint32_t)t);
        if (t == BN_GGUF_ARRAY) sha_u32(&h, (uint32_t)et), sha_u64(&h, count);
        if (et == BN_GGUF_STRING)
            for (uint64_t j = 0; j < count; j++) {
                const bn_gguf_str s = bn_gguf_kv_str(g, i, j);
                sha_str(&h, s.ptr, s.len);
            }
        else if (bn_gguf_vtype_size(et)) /* scalars and numeric arrays: their little-endian bytes as stored */
            bn_sha256_update(&h, bn_gguf_kv_data(g, i), (size_t)(count * bn_gguf_vtype_size(et)));
    }
    uint8_t dg[BN_SHA256_DIGEST_SIZE];
    bn_sha256_final(&h, dg);
    bn_sha256_hex(dg, hex);
    return true;
}

static void add_hparams(build_ctx *c, rnode *model, const bn_model *m) {
    const bn_hparams *hp = &m->hp;
    rnode *h = r_map(&c->b, model, PARITY_RK_MODEL_HPARAMS);
    r_str(&c->b, h, PARITY_RK_HP_ARCH, bn_arch_name(hp->arch));
    static const struct { rkey key; size_t off; } ints[] = {
        {PARITY_RK_HP_N_VOCAB, offsetof(bn_hparams, n_vocab)},   {PARITY_RK_HP_N_EMBD, offsetof(bn_hparams, n_embd)},
        {PARITY_RK_HP_N_LAYER, offsetof(bn_hparams, n_layer)},   {PARITY_RK_HP_N_FF, offsetof(bn_hparams, n_ff)},
        {PARITY_RK_HP_N_HEAD, offsetof(bn_hparams, n_head)},     {PARITY_RK_HP_N_HEAD_KV, offsetof(bn_hparams, n_head_kv)},
        {PARITY_RK_HP_HEAD_DIM, offsetof(bn_hparams, head_dim)}, {PARITY_RK_HP_N_CTX_TRAIN, offsetof(bn_hparams, n_ctx_train)},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v;
        memcpy(&v, (const char *)hp + ints[i].off, sizeof v);
        r_int(&c->b, h, ints[i].key, v);
    }
    r_str(&c->b, h, PARITY_RK_HP_ROPE_TYPE, hp->rope_neox ? "neox" : "normal");
    r_num(&c->b, h, PARITY_RK_HP_ROPE_BASE, hp->rope_base); /* floats: widened exactly */
    r_num(&c->b, h, PARITY_RK_HP_RMS_EPS, hp->norm_eps);
    r_str(&c->b, h, PARITY_RK_HP_ACTIVATION, bn_act_name(hp->act));
    r_bool(&c->b, h, PARITY_RK_HP_SUB_NORMS, hp->sub_norms);
    r_str(&c->b, h, PARITY_RK_HP_LM_HEAD, m->tied_output ? "tied" : "output");
    char type[32];
    r_str(&c->b, h, PARITY_RK_HP_LM_HEAD_TYPE, bn_type_name_lower(m->lm_head.type, type, sizeof type));
}

/* The tensor-type histogram, in ggml type id order. */
static void add_tensor_types(build_ctx *c, rnode *model, const bn_gguf *g) {
    enum { MAX_TYPE = 64 };
    int64_t count[MAX_TYPE] = {0}, bytes[MAX_TYPE] = {0}, total = 0;
    const int64_t n = bn_gguf_tensor_count(g);
    for (int64_t i = 0; i < n; i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        const uint32_t k = t->type < MAX_TYPE ? t->type : MAX_TYPE - 1; /* bound types are all < 64 */
        count[k]++, bytes[k] += (int64_t)t->nbytes, total += (int64_t)t->nbytes;
    }
    rnode *s = r_map(&c->b, model, PARITY_RK_MODEL_TENSORS);
    r_int(&c->b, s, PARITY_RK_TENSORS_COUNT, n);
    r_int(&c->b, s, PARITY_RK_TENSORS_BYTES, total);
    rnode *types = r_seq(&c->b, s, PARITY_RK_TENSORS_TYPES, 0);
    for (uint32_t k = 0; k < MAX_TYPE; k++) {
        if (!count[k]) continue;
        rnode *m = r_map(&c->b, types, ITEM);
        if (m) m->flow = 1;
        char type[32];
        r_str(&c->b, m, PARITY_RK_TT_TYPE, bn_type_name_lower(k, type, sizeof type));
        r_int(&c->b, m, PARITY_RK_TT_COUNT, count[k]);
        r_int(&c->b, m, PARITY_RK_TT_BYTES, bytes[k]);
    }
}

/* What only the model file says: null without it. */
static void add_model_file(build_ctx *c, rnode *model) {
    const bn_model *m = c->in->model;
    if (!m) {
        r_str(&c->b, model, PARITY_RK_MODEL_HPARAMS, NULL);
        r_str(&c->b, model, PARITY_RK_MODEL_TENSORS, NULL);
        r_str(&c->b, model, PARITY_RK_MODEL_TOKENIZER_SHA256, NULL);
        return;
    }
    add_hparams(c, model, m);
    add_tensor_types(c, model, m->gguf);
    char hex[BN_SHA256_HEX_SIZE];
    r_str(&c->b, model, PARITY_RK_MODEL_TOKENIZER_SHA256, parity_tokenizer_sha256(m->gguf, hex) ? hex : NULL);
}

/* The engine run that recorded the subject: which kernels and instruction
 * set. The recording's pool detects the level as the comparison's does
 * (bn_pool_simd), so in->simd is the level the engine ran. */
static void add_engine(build_ctx *c, rnode *root) {
    const bn_model *m = c->in->model;
    if (c->in->subject_storage == PARITY_STORAGE_FILE || !m) {
        r_str(&c->b, root, PARITY_RK_ENGINE, NULL);
        return;
    }
    char buf[96];
    rnode *e = r_map(&c->b, root, PARITY_RK_ENGINE);
    r_str(&c->b, e, PARITY_RK_ENGINE_SIMD, bn_simd_name(c->in->simd == BN_SIMD_AUTO ? bn_simd_best() : c->in->simd));
    const uint32_t proj = m->hp.n_layer > 0 ? m->layers[0].w[BN_PROJ_Q].type : m->lm_head.type;
    r_str(&c->b, e, PARITY_RK_ENGINE_MATMUL, bn_matmul_kernel_name(proj, c->in->simd, buf, sizeof buf));
    r_str(&c->b, e, PARITY_RK_ENGINE_LM_HEAD, bn_matmul_kernel_name(m->lm_head.type, c->in->simd, buf, sizeof buf));
}

static void add_header(build_ctx *c, rnode *root) {
    char buf[256];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    r_str(&c->b, root, PARITY_RK_RECEIPT, PARITY_RECEIPT_VERSION);
    r_str(&c->b, root, PARITY_RK_CREATED, buf);
    rnode *tool = r_map(&c->b, root, PARITY_RK_TOOL);
    r_str(&c->b, tool, PARITY_RK_TOOL_NAME, "bitparity");
    r_str(&c->b, tool, PARITY_RK_TOOL_VERSION, BITPARITY_VERSION);
    r_str(&c->b, tool, PARITY_RK_TOOL_COMMIT, BITPARITY_COMMIT);
    rnode *host = r_map(&c->b, root, PARITY_RK_HOST);
    parity_host_cpu(buf, sizeof buf);
    r_str(&c->b, host, PARITY_RK_HOST_CPU, buf);
    r_str(&c->b, host, PARITY_RK_HOST_SIMD, bn_simd_name(c->in->simd));
    r_int(&c->b, host, PARITY_RK_HOST_THREADS, c->in->threads);
    const parity_trace *mt = model_path(c->in->subject) ? c->in->subject : c->in->reference;
    rnode *model = r_map(&c->b, root, PARITY_RK_MODEL);
    r_str(&c->b, model, PARITY_RK_MODEL_PATH, model_path(mt));
    r_str(&c->b, model, PARITY_RK_MODEL_SHA256, parity_trace_get(mt, "model.sha256"));
    r_str(&c->b, model, PARITY_RK_MODEL_ARCH, parity_trace_get(mt, "model.arch"));
    add_model_file(c, model);
}

static void add_policy(build_ctx *c, rnode *root) {
    rnode *p = r_map(&c->b, root, PARITY_RK_POLICY);
    r_str(&c->b, p, PARITY_RK_POLICY_NAME, parity_policy_name(c->in->policy));
    r_str(&c->b, p, PARITY_RK_POLICY_ORIGIN, parity_policy_origin(c->in->policy));
    r_str(&c->b, p, PARITY_RK_POLICY_SHA256, parity_policy_sha256(c->in->policy));
    r_str(&c->b, p, PARITY_RK_POLICY_CHOICE, c->in->policy_choice ? c->in->policy_choice : "");
}

static const char *eval_id(int64_t k, char *buf, size_t size) {
    snprintf(buf, size, "e%lld", (long long)k);
    return buf;
}

/* Where something happened: evaluation k's tap, under the keys where[0..1]. */
static void add_place(build_ctx *c, rnode *m, const rkey where[2], int64_t k, const char *tap) {
    char id[24];
    r_str(&c->b, m, where[0], eval_id(k, id, sizeof id));
    r_str(&c->b, m, where[1], tap);
}

/* The first limit a value broke, under the keys broke[0..2] (metric, value,
 * limit). */
static void add_broken_limit(build_ctx *c, rnode *m, const rkey broke[3], const char *metric, double value,
                             double limit) {
    r_str(&c->b, m, broke[0], metric);
    r_num(&c->b, m, broke[1], value);
    r_num(&c->b, m, broke[2], limit);
}

static void add_summary(build_ctx *c, rnode *root) {
    const parity_compare_result *r = c->r;
    rnode *s = r_map(&c->b, root, PARITY_RK_SUMMARY);
    r_str(&c->b, s, PARITY_RK_SUMMARY_VERDICT, r->pass ? "pass" : "fail");
    r_str(&c->b, s, PARITY_RK_SUMMARY_DIAGNOSIS, r->diagnosis[0] ? r->diagnosis : NULL);
    rnode *n = r_map(&c->b, s, PARITY_RK_SUMMARY_COUNTS);
    const parity_compare_counts *k = &r->counts;
    r_int(&c->b, n, PARITY_RK_COUNTS_TAPS, k->taps);
    r_int(&c->b, n, PARITY_RK_COUNTS_COMPARED, k->compared);
    r_int(&c->b, n, PARITY_RK_COUNTS_PASS, k->pass);
    r_int(&c->b, n, PARITY_RK_COUNTS_FAIL, k->fail);
    r_int(&c->b, n, PARITY_RK_COUNTS_BIT_IDENTICAL, k->bit_identical);
    r_int(&c->b, n, PARITY_RK_COUNTS_SHAPE_MISMATCH, k->shape_mismatch);
    r_int(&c->b, n, PARITY_RK_COUNTS_MISSING_REFERENCE, k->missing_reference);
    r_int(&c->b, n, PARITY_RK_COUNTS_MISSING_SUBJECT, k->missing_subject);
    r_int(&c->b, n, PARITY_RK_COUNTS_SKIPPED, k->policy_skip);
    rnode *e = r_map(&c->b, s, PARITY_RK_SUMMARY_EVALUATIONS);
    r_int(&c->b, e, PARITY_RK_EVALS_SUBJECT, r->n_evals_subject);
    r_int(&c->b, e, PARITY_RK_EVALS_REFERENCE, r->n_evals_reference);
    r_int(&c->b, e, PARITY_RK_EVALS_COMPARED, (int64_t)r->n_evals);
    if (r->first.found) {
        static const rkey where[] = {PARITY_RK_DIV_EVALUATION, PARITY_RK_DIV_TAP};
        static const rkey broke[] = {PARITY_RK_DIV_METRIC, PARITY_RK_DIV_VALUE, PARITY_RK_DIV_LIMIT};
        rnode *f = r_map(&c->b, s, PARITY_RK_SUMMARY_FIRST_DIVERGENCE);
        add_place(c, f, where, r->first.eval, r->first.tap);
        if (r->first.layer >= 0) r_int(&c->b, f, PARITY_RK_DIV_LAYER, r->first.layer);
        else r_str(&c->b, f, PARITY_RK_DIV_LAYER, NULL);
        add_broken_limit(c, f, broke, r->first.metric, r->first.value, r->first.limit);
    } else {
        r_str(&c->b, s, PARITY_RK_SUMMARY_FIRST_DIVERGENCE, NULL);
    }
    rnode *fe = r_seq(&c->b, s, PARITY_RK_SUMMARY_FAILING_EVALUATIONS, 1);
    for (size_t i = 0; i < r->n_evals; i++)
        if (r->evals[i].n_fail) r_str(&c->b, fe, ITEM, r->evals[i].id);
    rnode *h = r_seq(&c->b, s, PARITY_RK_SUMMARY_HINTS, 0);
    for (size_t i = 0; i < r->n_hints; i++) {
        rnode *m = r_map(&c->b, h, ITEM);
        r_str(&c->b, m, PARITY_RK_HINT_NAME, r->hints[i].name);
        r_str(&c->b, m, PARITY_RK_HINT_MESSAGE, r->hints[i].message);
        r_str(&c->b, m, PARITY_RK_HINT_EVIDENCE, r->hints[i].evidence);
    }
    rnode *acc = r_seq(&c->b, s, PARITY_RK_SUMMARY_ACCEPTED, 1);
    for (size_t i = 0; i < r->n_accepted; i++) r_str(&c->b, acc, ITEM, r->accepted[i]);
}

static void add_growth(build_ctx *c, rnode *root) {
    rnode *g = r_map(&c->b, root, PARITY_RK_GROWTH);
    r_str(&c->b, g, PARITY_RK_GROWTH_METRIC, "nmse");
    r_str(&c->b, g, PARITY_RK_GROWTH_REDUCE, "max over the layer's compared taps");
    r_int(&c->b, g, PARITY_RK_GROWTH_LAYERS, c->r->n_layer);
    rnode *s = r_seq(&c->b, g, PARITY_RK_GROWTH_EVALUATIONS, 0);
    for (size_t i = 0; i < c->r->n_evals; i++) {
        const parity_eval_result *e = &c->r->evals[i];
        rnode *m = r_map(&c->b, s, ITEM);
        r_str(&c->b, m, PARITY_RK_GROWTH_EVALUATION, e->id);
        rnode *v = r_seq(&c->b, m, PARITY_RK_GROWTH_NMSE_MAX, 1);
        for (int l = 0; l < c->r->n_layer; l++) r_num_or_null(&c->b, v, ITEM, e->growth[l]);
    }
}

static void add_metrics(build_ctx *c, rnode *p, const parity_tap_result *t) {
    const parity_metrics *m = &t->m;
    rnode *s = r_map(&c->b, p, PARITY_RK_TAP_METRICS);
    r_int(&c->b, s, PARITY_RK_M_N, (int64_t)m->n);
    r_int(&c->b, s, PARITY_RK_M_N_FINITE, (int64_t)m->n_finite);
    r_bool(&c->b, s, PARITY_RK_M_BIT_IDENTICAL, m->bit_identical);
    r_int(&c->b, s, PARITY_RK_M_N_BITDIFF, (int64_t)m->n_bitdiff);
    static const struct { rkey key; size_t off; } nums[] = {
        {PARITY_RK_M_MAX_ABS, offsetof(parity_metrics, max_abs)},       {PARITY_RK_M_MEAN_ABS, offsetof(parity_metrics, mean_abs)},
        {PARITY_RK_M_RMS_ERR, offsetof(parity_metrics, rms_err)},       {PARITY_RK_M_NMSE, offsetof(parity_metrics, nmse)},
        {PARITY_RK_M_NMSE_LLAMA, offsetof(parity_metrics, nmse_llama)}, {PARITY_RK_M_NMSE_VAR, offsetof(parity_metrics, nmse_var)},
        {PARITY_RK_M_COSINE, offsetof(parity_metrics, cosine)},         {PARITY_RK_M_REL_RMS, offsetof(parity_metrics, rel_rms)},
        {PARITY_RK_M_SCALE, offsetof(parity_metrics, scale)},           {PARITY_RK_M_SCALE_NMSE, offsetof(parity_metrics, scale_nmse)},
        {PARITY_RK_M_ULP_MEAN, offsetof(parity_metrics, ulp_mean)},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        double v;
        memcpy(&v, (const char *)m + nums[i].off, sizeof v);
        r_num(&c->b, s, nums[i].key, v);
    }
    r_int(&c->b, s, PARITY_RK_M_ULP_MAX, m->ulp_max);
    rnode *nan = r_seq(&c->b, s, PARITY_RK_M_NAN, 1), *inf = r_seq(&c->b, s, PARITY_RK_M_INF, 1);
    r_int(&c->b, nan, ITEM, (int64_t)m->nan_a), r_int(&c->b, nan, ITEM, (int64_t)m->nan_b);
    r_int(&c->b, inf, ITEM, (int64_t)m->inf_a), r_int(&c->b, inf, ITEM, (int64_t)m->inf_b);
    r_int(&c->b, s, PARITY_RK_M_NAN_MISMATCH, (int64_t)m->nan_mismatch);
    r_int(&c->b, s, PARITY_RK_M_INF_MISMATCH, (int64_t)m->inf_mismatch);
    if (m->worst_index == PARITY_NO_INDEX) return;
    rnode *w = r_map(&c->b, s, PARITY_RK_M_WORST);
    /* The index inside the compared rows, also as a position in the tap
     * (row = token index of the evaluation). */
    int64_t at[3] = {0}, idx = (int64_t)m->worst_index;
    int nd = t->ndim;
    if (nd == 2) at[0] = t->row_begin + idx / t->shape[1], at[1] = idx % t->shape[1];
    else for (int d = nd - 1; d >= 0; d--) at[d] = idx % t->shape[d], idx /= t->shape[d];
    r_shape(&c->b, w, PARITY_RK_WORST_AT, nd, at);
    r_num(&c->b, w, PARITY_RK_WORST_SUBJECT, m->worst_a);
    r_num(&c->b, w, PARITY_RK_WORST_REFERENCE, m->worst_b);
}

static void add_limits(build_ctx *c, rnode *p, const parity_limits *l) {
    static const struct { rkey key; size_t off; } nums[] = {
        {PARITY_RK_L_NMSE_MAX, offsetof(parity_limits, nmse_max)},         {PARITY_RK_L_NMSE_LLAMA_MAX, offsetof(parity_limits, nmse_llama_max)},
        {PARITY_RK_L_COSINE_MIN, offsetof(parity_limits, cosine_min)},     {PARITY_RK_L_MAX_ABS_MAX, offsetof(parity_limits, max_abs_max)},
        {PARITY_RK_L_REL_RMS_MAX, offsetof(parity_limits, rel_rms_max)},   {PARITY_RK_L_ULP_MAX, offsetof(parity_limits, ulp_max)},
        {PARITY_RK_L_KLD_MEAN_MAX, offsetof(parity_limits, kld_mean_max)}, {PARITY_RK_L_KLD_P99_MAX, offsetof(parity_limits, kld_p99_max)},
        {PARITY_RK_L_KLD_MAX_MAX, offsetof(parity_limits, kld_max_max)},   {PARITY_RK_L_TOP1_AGREE_MIN, offsetof(parity_limits, top1_agree_min)},
        {PARITY_RK_L_TOPK_OVERLAP_MIN, offsetof(parity_limits, topk_overlap_min)},
        {PARITY_RK_L_SAME_TOP_P_MIN, offsetof(parity_limits, same_top_p_min)},
    };
    rnode *s = r_map(&c->b, p, PARITY_RK_TAP_LIMITS);
    r_str(&c->b, s, PARITY_RK_L_RULE, l->rule ? l->rule : "defaults");
    r_int(&c->b, s, PARITY_RK_L_RULE_LINE, l->rule_line);
    if (l->bit_identical >= 0) r_bool(&c->b, s, PARITY_RK_L_BIT_IDENTICAL, l->bit_identical);
    if (l->allow_nan >= 0) r_bool(&c->b, s, PARITY_RK_L_ALLOW_NAN, l->allow_nan);
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        double v;
        memcpy(&v, (const char *)l + nums[i].off, sizeof v);
        if (!isnan(v)) r_num(&c->b, s, nums[i].key, v);
    }
}

static void add_tap(build_ctx *c, rnode *seq, const parity_tap_result *t) {
    char id[24];
    rnode *m = r_map(&c->b, seq, ITEM);
    r_str(&c->b, m, PARITY_RK_TAP_EVALUATION, eval_id(t->eval, id, sizeof id));
    r_str(&c->b, m, PARITY_RK_TAP_NAME, t->name);
    if (t->layer >= 0) r_int(&c->b, m, PARITY_RK_TAP_LAYER, t->layer);
    else r_str(&c->b, m, PARITY_RK_TAP_LAYER, NULL);
    r_str(&c->b, m, PARITY_RK_TAP_STATUS, parity_tap_status_name(t->status));
    if (t->ndim) r_shape(&c->b, m, PARITY_RK_TAP_SHAPE, t->ndim, t->shape);
    if (t->ref_ndim) r_shape(&c->b, m, PARITY_RK_TAP_REFERENCE_SHAPE, t->ref_ndim, t->ref_shape);
    if (t->ref_source) r_str(&c->b, m, PARITY_RK_TAP_REFERENCE_SOURCE, t->ref_source);
    if (t->status == PARITY_TAP_PASS || t->status == PARITY_TAP_FAIL) {
        int64_t rows[2] = {t->row_begin, t->row_end};
        r_shape(&c->b, m, PARITY_RK_TAP_ROWS, 2, rows);
        add_metrics(c, m, t);
    }
    if (t->status == PARITY_TAP_PASS || t->status == PARITY_TAP_FAIL || t->status == PARITY_TAP_POLICY_SKIP)
        add_limits(c, m, &t->lim);
    if (t->status == PARITY_TAP_FAIL || t->status == PARITY_TAP_SHAPE_MISMATCH) {
        rnode *f = r_map(&c->b, m, PARITY_RK_TAP_FAILED);
        if (f) f->flow = 1;
        static const rkey broke[] = {PARITY_RK_F_METRIC, PARITY_RK_F_VALUE, PARITY_RK_F_LIMIT};
        add_broken_limit(c, f, broke, t->check.metric, t->check.value, t->check.limit);
    }
}

static void add_logits(build_ctx *c, rnode *root) {
    static const struct { rkey key; size_t off; } nums[] = {
        {PARITY_RK_LG_TOP1_AGREE, offsetof(parity_logits_summary, top1_agree)},
        {PARITY_RK_LG_SAME_TOP_P, offsetof(parity_logits_summary, same_top_p)},
        {PARITY_RK_LG_TOP5_OVERLAP, offsetof(parity_logits_summary, top5_overlap)},
        {PARITY_RK_LG_TOP10_OVERLAP, offsetof(parity_logits_summary, top10_overlap)},
        {PARITY_RK_LG_KLD_MEAN, offsetof(parity_logits_summary, kld_mean)},
        {PARITY_RK_LG_KLD_MEDIAN, offsetof(parity_logits_summary, kld_median)},
        {PARITY_RK_LG_KLD_P99, offsetof(parity_logits_summary, kld_p99)},
        {PARITY_RK_LG_KLD_MAX, offsetof(parity_logits_summary, kld_max)},
        {PARITY_RK_LG_DP_MEAN, offsetof(parity_logits_summary, dp_mean)},
        {PARITY_RK_LG_DP_RMS, offsetof(parity_logits_summary, dp_rms)},
        {PARITY_RK_LG_DP_MAX_ABS, offsetof(parity_logits_summary, dp_max_abs)},
    };
    rnode *s = r_seq(&c->b, root, PARITY_RK_LOGITS, 0);
    for (size_t i = 0; i < c->r->n_evals; i++) {
        const parity_eval_result *e = &c->r->evals[i];
        if (!e->has_logits) continue;
        const parity_logits_summary *l = &e->logits;
        rnode *m = r_map(&c->b, s, ITEM);
        r_str(&c->b, m, PARITY_RK_LG_EVALUATION, e->id);
        for (size_t j = 0; j < c->r->n_taps; j++) /* the verdict of this evaluation's logits tap */
            if (c->r->taps[j].eval == e->eval && c->r->taps[j].is_logits)
                r_str(&c->b, m, PARITY_RK_LG_STATUS, parity_tap_status_name(c->r->taps[j].status));
        r_int(&c->b, m, PARITY_RK_LG_POSITIONS, (int64_t)l->n_pos);
        r_int(&c->b, m, PARITY_RK_LG_INVALID, (int64_t)l->n_invalid);
        for (size_t j = 0; j < sizeof nums / sizeof nums[0]; j++) {
            double v;
            memcpy(&v, (const char *)l + nums[j].off, sizeof v);
            r_num(&c->b, m, nums[j].key, v);
        }
    }
}

/* `replay`: where the errors are born (localize.h). */
static void add_replay(build_ctx *c, rnode *root) {
    const parity_replay_result *rp = c->in->replay;
    if (!rp) return;
    char id[24];
    rnode *r = r_map(&c->b, root, PARITY_RK_REPLAY);
    r_str(&c->b, r, PARITY_RK_RP_MODE, rp->mode == PARITY_REPLAY_OP ? "op" : "block");
    r_str(&c->b, r, PARITY_RK_RP_MODEL, c->in->replay_model);
    if (rp->first_local >= 0) {
        const parity_replay_tap *t = &rp->taps[rp->first_local];
        static const rkey where[] = {PARITY_RK_FL_EVALUATION, PARITY_RK_FL_TAP};
        static const rkey broke[] = {PARITY_RK_FL_METRIC, PARITY_RK_FL_VALUE, PARITY_RK_FL_LIMIT};
        rnode *f = r_map(&c->b, r, PARITY_RK_RP_FIRST_LOCAL);
        add_place(c, f, where, t->eval, t->name);
        add_broken_limit(c, f, broke, t->check.metric, t->check.value, t->check.limit);
    } else {
        r_str(&c->b, r, PARITY_RK_RP_FIRST_LOCAL, NULL);
    }
    rnode *blocks = r_seq(&c->b, r, PARITY_RK_RP_BLOCKS, 0);
    for (size_t i = 0; i < rp->n_blocks; i++) {
        const parity_replay_block *b = &rp->blocks[i];
        rnode *m = r_map(&c->b, blocks, ITEM);
        r_str(&c->b, m, PARITY_RK_RB_EVALUATION, eval_id(b->eval, id, sizeof id));
        r_int(&c->b, m, PARITY_RK_RB_LAYER, b->layer);
        r_str(&c->b, m, PARITY_RK_RB_ERROR, b->local ? "local" : "inherited");
        r_num_or_null(&c->b, m, PARITY_RK_RB_NMSE_COMPARED, b->nmse_compared);
        r_num(&c->b, m, PARITY_RK_RB_NMSE_REPLAYED, b->nmse_replayed);
    }
    rnode *taps = r_seq(&c->b, r, PARITY_RK_RP_FAILING_TAPS, 0);
    for (size_t i = 0; i < rp->n_taps; i++) {
        const parity_replay_tap *t = &rp->taps[i];
        if (t->pass) continue;
        rnode *m = r_map(&c->b, taps, ITEM);
        r_str(&c->b, m, PARITY_RK_RT_EVALUATION, eval_id(t->eval, id, sizeof id));
        r_str(&c->b, m, PARITY_RK_RT_TAP, t->name);
        r_num(&c->b, m, PARITY_RK_RT_NMSE, t->nmse);
    }
}

/* `arbiter`: which side the independent reference agrees with (arbiter.h). */
static void add_arbiter_side(build_ctx *c, rnode *a, rkey section, const rkey keys[3], const parity_arbiter_side *s) {
    rnode *m = r_map(&c->b, a, section);
    r_bool(&c->b, m, keys[0], s->compared && s->check.pass);
    r_num_or_null(&c->b, m, keys[1], s->compared ? s->m.nmse : NAN);
    r_num_or_null(&c->b, m, keys[2], s->compared ? s->m.max_abs : NAN);
}

static void add_arbiter(build_ctx *c, rnode *root) {
    const parity_arbiter_result *a = c->in->arbiter;
    if (!a) return;
    char id[24];
    rnode *m = r_map(&c->b, root, PARITY_RK_ARBITER);
    r_str(&c->b, m, PARITY_RK_AR_VERDICT, parity_arbiter_verdict_name(a->verdict));
    r_str(&c->b, m, PARITY_RK_AR_SUMMARY, a->summary);
    r_str(&c->b, m, PARITY_RK_AR_SHOWS, a->shows);
    r_str(&c->b, m, PARITY_RK_AR_EVALUATION, eval_id(a->eval, id, sizeof id));
    r_str(&c->b, m, PARITY_RK_AR_TAP, a->tap);
    r_str(&c->b, m, PARITY_RK_AR_MODEL, a->model);
    r_str(&c->b, m, PARITY_RK_AR_ARCH, a->arch);
    r_str(&c->b, m, PARITY_RK_AR_ACTIVATION, a->activation);
    r_str(&c->b, m, PARITY_RK_AR_ACTIVATION_KEY, a->activation_key);
    r_str(&c->b, m, PARITY_RK_AR_NUMERICS, a->numerics);
    r_str(&c->b, m, PARITY_RK_AR_POLICY, a->policy);
    static const rkey subj[3] = {PARITY_RK_AR_S_AGREES, PARITY_RK_AR_S_NMSE, PARITY_RK_AR_S_MAX_ABS};
    static const rkey ref[3] = {PARITY_RK_AR_R_AGREES, PARITY_RK_AR_R_NMSE, PARITY_RK_AR_R_MAX_ABS};
    add_arbiter_side(c, m, PARITY_RK_AR_SUBJECT, subj, &a->subject);
    add_arbiter_side(c, m, PARITY_RK_AR_REFERENCE, ref, &a->reference);
    if (a->other_activation[0] && a->other.compared) {
        rnode *o = r_map(&c->b, m, PARITY_RK_AR_OTHER);
        r_str(&c->b, o, PARITY_RK_AR_O_ACTIVATION, a->other_activation);
        r_str(&c->b, o, PARITY_RK_AR_O_SIDE, a->verdict == PARITY_ARBITER_REFERENCE ? "subject" : "reference");
        r_bool(&c->b, o, PARITY_RK_AR_O_AGREES, a->other.check.pass);
        r_num(&c->b, o, PARITY_RK_AR_O_NMSE, a->other.m.nmse);
    } else {
        r_str(&c->b, m, PARITY_RK_AR_OTHER, NULL);
    }
}

static double microseconds(double s) { return round(s * 1e6) / 1e6; } /* clock noise is not data */

static void add_timings(build_ctx *c, rnode *root) {
    rnode *t = r_map(&c->b, root, PARITY_RK_TIMINGS);
    r_num(&c->b, t, PARITY_RK_T_OPEN, microseconds(c->in->t_open));
    r_num(&c->b, t, PARITY_RK_T_LOAD, microseconds(c->r->t_load));
    r_num(&c->b, t, PARITY_RK_T_METRICS, microseconds(c->r->t_metrics));
    r_num(&c->b, t, PARITY_RK_T_COMPARE, microseconds(c->r->t_total));
    r_num(&c->b, t, PARITY_RK_T_HASH, microseconds(c->t_hash));
}

bn_status parity_receipt_build(const parity_receipt_input *in, parity_receipt **out, bn_error *err) {
    *out = NULL;
    if (!in || !in->subject || !in->reference || !in->subject_map || !in->reference_map || !in->policy || !in->result)
        return bn_error_set(err, BN_ERR_INVALID, "receipt: incomplete input");
    build_ctx c = {{{0, 0}, ITEM}, in, in->result, 0, err};
    parity_receipt *r = calloc(1, sizeof *r);
    if (!r || !(r->root = parity_doc_root(&c.b.doc))) {
        free(r);
        return bn_error_nomem(err, sizeof *r + sizeof *r->root, "receipt: the document");
    }
    rnode *root = r->root;
    hash_job hashes;
    bn_status st = hash_traces(&c, &hashes);
    if (!st) {
        add_header(&c, root);
        add_engine(&c, root);
        add_side(&c, root, PARITY_RK_SUBJECT, in->subject, in->subject_map, hashes.hex[0], in->subject_storage);
        add_side(&c, root, PARITY_RK_REFERENCE, in->reference, in->reference_map, hashes.hex[1], PARITY_STORAGE_FILE);
        rnode *input = r_map(&c.b, root, PARITY_RK_INPUT);
        add_evals(&c, input, PARITY_RK_INPUT_EVALUATIONS, in->subject);
        if (c.r->tokenization_mismatch || c.r->diagnosis[0]) add_evals(&c, input, PARITY_RK_INPUT_REFERENCE_EVALUATIONS, in->reference);
        add_policy(&c, root);
        add_summary(&c, root);
        add_growth(&c, root);
        rnode *taps = r_seq(&c.b, root, PARITY_RK_TAPS, 0);
        for (size_t i = 0; i < c.r->n_taps; i++) add_tap(&c, taps, &c.r->taps[i]);
        add_logits(&c, root);
        add_replay(&c, root);
        add_arbiter(&c, root);
        add_timings(&c, root);
        if (c.b.doc.oom) st = bn_error_nomem(err, c.b.doc.oom_bytes, "receipt: a node of the document");
        else if (c.b.bad_key != ITEM)
            st = bn_error_set(err, BN_ERR_INTERNAL, "receipt: key %s.%s written with a type other than the schema's (%s)",
                              parity_receipt_keys[c.b.bad_key].section, parity_receipt_keys[c.b.bad_key].key,
                              parity_receipt_type_name(parity_receipt_keys[c.b.bad_key].type));
    }
    if (st) {
        parity_receipt_free(r);
        return st;
    }
    *out = r;
    return BN_OK;
}

bn_status parity_receipt_emit(const parity_receipt *r, parity_receipt_format fmt, FILE *f, bn_error *err) {
    bn_status st = parity_doc_emit(r->root, fmt == PARITY_RECEIPT_JSON ? PARITY_DOC_JSON : PARITY_DOC_YAML, f, err);
    if (st) bn_error_prefix(err, "receipt");
    return st;
}

bn_status parity_receipt_save(const parity_receipt *r, parity_receipt_format fmt, const char *path, bn_error *err) {
    return parity_doc_save(r->root, fmt == PARITY_RECEIPT_JSON ? PARITY_DOC_JSON : PARITY_DOC_YAML, path, err);
}

void parity_receipt_free(parity_receipt *r) {
    if (!r) return;
    parity_doc_free(r->root);
    free(r);
}
