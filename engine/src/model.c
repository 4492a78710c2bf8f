/* model.c — binds a GGUF file as a model: architecture detection,
 * hyper-parameters, tensor look-up and validation of every shape against the
 * metadata. Nothing is copied or rescaled: weights stay in the mapping
 * (but for the lm_head copy bn_model_requantize_lm_head makes on request). */
#include "bitnet/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/quant.h"
#include "bitnet/threads.h"

static const struct {
    const char *name;
    bn_ffn_act act;
    bool rope_neox;
    bool sub_norms;
} arch_table[BN_ARCH_COUNT] = {
    [BN_ARCH_BITNET_B158] = {"bitnet-b1.58", BN_ACT_RELU2, true, true},
    [BN_ARCH_BITNET_25] = {"bitnet-25", BN_ACT_RELU2, true, true},
    [BN_ARCH_BITNET] = {"bitnet", BN_ACT_SILU, true, true},
    [BN_ARCH_LLAMA] = {"llama", BN_ACT_SILU, false, false},
};

static const char *const proj_names[BN_PROJ_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

const char *bn_arch_name(bn_arch a) { return (unsigned)a < BN_ARCH_COUNT ? arch_table[a].name : "?"; }
const char *bn_act_name(bn_ffn_act a) { return a == BN_ACT_RELU2 ? "relu2" : "silu"; }
const char *bn_proj_name(bn_proj p) { return (unsigned)p < BN_PROJ_COUNT ? proj_names[p] : "?"; }

/* Reads <arch>.<suffix> as an integer; `def` < 0 means required. */
static bn_status arch_int(const bn_gguf *g, const char *arch, const char *suffix, int64_t def,
                          int64_t *out, bn_error *err) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    bn_status st = bn_gguf_get_int(g, key, out, err);
    if (st == BN_ERR_NOT_FOUND && def >= 0) {
        *out = def;
        return BN_OK;
    }
    if (st == BN_ERR_NOT_FOUND) return bn_error_set(err, BN_ERR_INVALID, "required key %s is missing", key);
    if (st == BN_OK && *out <= 0)
        return bn_error_set(err, BN_ERR_INVALID, "key %s = %lld must be positive", key, (long long)*out);
    return st;
}

static bn_status arch_float(const bn_gguf *g, const char *arch, const char *suffix, double def, bool required,
                            float *out, bn_error *err) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v = def;
    bn_status st = bn_gguf_get_float(g, key, &v, err);
    if (st == BN_ERR_NOT_FOUND && !required) st = BN_OK;
    else if (st == BN_ERR_NOT_FOUND)
        return bn_error_set(err, BN_ERR_INVALID, "required key %s is missing", key);
    if (st != BN_OK) return st;
    if (!(v > 0) || !isfinite(v))
        return bn_error_set(err, BN_ERR_INVALID, "key %s = %g must be a positive finite number", key, v);
    *out = (float)v;
    return BN_OK;
}

static bn_status detect_arch(const bn_gguf *g, bn_arch *arch, bn_error *err) {
    bn_gguf_str s;
    bn_status st = bn_gguf_get_str(g, "general.architecture", &s, err);
    if (st == BN_ERR_NOT_FOUND)
        return bn_error_set(err, BN_ERR_INVALID, "key general.architecture is missing (not a model file?)");
    if (st) return st;
    for (int a = 0; a < BN_ARCH_COUNT; a++)
        if (strlen(arch_table[a].name) == s.len && !memcmp(arch_table[a].name, s.ptr, s.len)) {
            *arch = (bn_arch)a;
            return BN_OK;
        }
    return bn_error_set(err, BN_ERR_UNSUPPORTED,
                        "general.architecture '%.*s' is not supported (bitnet-b1.58, bitnet-25, bitnet, llama)",
                        (int)(s.len > 64 ? 64 : s.len), s.ptr);
}

/* <arch>.hidden_activation overrides the arch's default (the activation is a
 * property of the model: upstream llama.cpp ignoring it is the SiLU bug). */
static bn_status read_activation(const bn_gguf *g, const char *arch, bn_ffn_act *act, bn_error *err) {
    char key[160];
    snprintf(key, sizeof key, "%s.hidden_activation", arch);
    bn_gguf_str s;
    bn_status st = bn_gguf_get_str(g, key, &s, err);
    if (st == BN_ERR_NOT_FOUND) return BN_OK;
    if (st) return st;
    if ((s.len == 5 && !memcmp(s.ptr, "relu2", 5)) || (s.len == 12 && !memcmp(s.ptr, "squared_relu", 12)))
        *act = BN_ACT_RELU2;
    else if ((s.len == 4 && !memcmp(s.ptr, "silu", 4)) || (s.len == 5 && !memcmp(s.ptr, "swish", 5)))
        *act = BN_ACT_SILU;
    else
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "key %s = '%.*s' is not a supported activation (relu2, silu)",
                            key, (int)(s.len > 32 ? 32 : s.len), s.ptr);
    return BN_OK;
}

static bn_status read_hparams(const bn_gguf *g, bn_hparams *hp, bn_error *err) {
    bn_status st = detect_arch(g, &hp->arch, err);
    if (st) return st;
    const char *a = arch_table[hp->arch].name;
    hp->act = arch_table[hp->arch].act;
    hp->rope_neox = arch_table[hp->arch].rope_neox;
    hp->sub_norms = arch_table[hp->arch].sub_norms;
    int64_t rope_dim = 0;
    if ((st = arch_int(g, a, "embedding_length", -1, &hp->n_embd, err)) ||
        (st = arch_int(g, a, "block_count", -1, &hp->n_layer, err)) ||
        (st = arch_int(g, a, "feed_forward_length", -1, &hp->n_ff, err)) ||
        (st = arch_int(g, a, "attention.head_count", -1, &hp->n_head, err)) ||
        (st = arch_int(g, a, "attention.head_count_kv", hp->n_head, &hp->n_head_kv, err)) ||
        (st = arch_int(g, a, "context_length", 2048, &hp->n_ctx_train, err)) ||
        (st = arch_int(g, a, "vocab_size", 0, &hp->n_vocab, err)) ||
        (st = arch_float(g, a, "rope.freq_base", 10000.0, false, &hp->rope_base, err)) ||
        (st = arch_float(g, a, "attention.layer_norm_rms_epsilon", 0, true, &hp->norm_eps, err)) ||
        (st = read_activation(g, a, &hp->act, err)))
        return st;
    if (hp->n_layer > 4096 || hp->n_head > 4096 || hp->n_embd > (1 << 20) || hp->n_ff > (1 << 22))
        return bn_error_set(err, BN_ERR_INVALID, "%s: absurd hyper-parameters (layers %lld, heads %lld, embd %lld, ff %lld)",
                            a, (long long)hp->n_layer, (long long)hp->n_head, (long long)hp->n_embd,
                            (long long)hp->n_ff);
    if (hp->n_embd % hp->n_head)
        return bn_error_set(err, BN_ERR_INVALID, "%s.attention.head_count = %lld does not divide embedding_length %lld",
                            a, (long long)hp->n_head, (long long)hp->n_embd);
    if (hp->n_head % hp->n_head_kv)
        return bn_error_set(err, BN_ERR_INVALID,
                            "%s.attention.head_count_kv = %lld does not divide head_count %lld", a,
                            (long long)hp->n_head_kv, (long long)hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((st = arch_int(g, a, "rope.dimension_count", hp->head_dim, &rope_dim, err))) return st;
    if (rope_dim != hp->head_dim)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "%s.rope.dimension_count = %lld but head_dim = embedding_length/head_count = %lld "
                            "(partial RoPE is not supported)",
                            a, (long long)rope_dim, (long long)hp->head_dim);
    if (hp->head_dim % 2)
        return bn_error_set(err, BN_ERR_INVALID, "head_dim %lld is odd: RoPE needs pairs", (long long)hp->head_dim);
    return BN_OK;
}

/* Finds `name` and checks its shape is exactly {ne0, ne1} (ne1 = 0: 1-D). */
static bn_status find_shaped(const bn_gguf *g, const char *name, int64_t ne0, int64_t ne1, bool optional,
                             const bn_gguf_tensor **out, bn_error *err) {
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, name);
    *out = t;
    if (!t) {
        if (optional) return BN_OK;
        return bn_error_set(err, BN_ERR_INVALID, "tensor %s is missing", name);
    }
    uint32_t want_dims = ne1 ? 2 : 1;
    bool ok = t->n_dims <= want_dims + 0 && t->ne[0] == ne0 && t->ne[1] == (ne1 ? ne1 : 1) && t->ne[2] == 1 &&
              t->ne[3] == 1;
    if (!ok)
        return bn_error_set(err, BN_ERR_INVALID,
                            "tensor %s has shape [%lld, %lld, %lld, %lld] but the metadata implies [%lld, %lld]",
                            name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                            (long long)t->ne[3], (long long)ne0, (long long)(ne1 ? ne1 : 1));
    return BN_OK;
}

/* Norm weights must be F32: they are never quantized (bitnet-graph.md). */
static bn_status bind_norm(const bn_gguf *g, const char *name, int64_t n, bool optional, const float **out,
                           bn_error *err) {
    const bn_gguf_tensor *t;
    *out = NULL;
    bn_status st = find_shaped(g, name, n, 0, optional, &t, err);
    if (st || !t) return st;
    if (t->type != BN_TYPE_F32)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "tensor %s is %s: norm weights must be F32", name,
                            bn_type_name(t->type));
    *out = t->data;
    return BN_OK;
}

static bn_status bind_weight(const bn_gguf *g, const char *name, int64_t k, int64_t n, bn_weight *w,
                             bn_error *err) {
    const bn_gguf_tensor *t;
    bn_status st = find_shaped(g, name, k, n, false, &t, err);
    if (st) return st;
    *w = (bn_weight){.type = t->type, .data = t->data, .k = k, .n = n};
    return BN_OK;
}

static bn_status bind_layer(const bn_gguf *g, const bn_hparams *hp, int il, bn_layer *L, bn_error *err) {
    const int64_t H = hp->n_embd, F = hp->n_ff, Dq = hp->n_head * hp->head_dim,
                  Dkv = hp->n_head_kv * hp->head_dim;
    const int64_t shape[BN_PROJ_COUNT][2] = {{H, Dq}, {H, Dkv}, {H, Dkv}, {Dq, H}, {H, F}, {H, F}, {F, H}};
    char name[96];
    bn_status st;
#define NAME(fmt) (snprintf(name, sizeof name, "blk.%d." fmt, il), name)
    if ((st = bind_norm(g, NAME("attn_norm.weight"), H, false, &L->attn_norm, err)) ||
        (st = bind_norm(g, NAME("ffn_norm.weight"), H, false, &L->ffn_norm, err)) ||
        (st = bind_norm(g, NAME("attn_sub_norm.weight"), Dq, !hp->sub_norms, &L->attn_sub_norm, err)) ||
        (st = bind_norm(g, NAME("ffn_sub_norm.weight"), F, !hp->sub_norms, &L->ffn_sub_norm, err)))
        return st;
#undef NAME
    for (int p = 0; p < BN_PROJ_COUNT; p++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", il, proj_names[p]);
        if ((st = bind_weight(g, name, shape[p][0], shape[p][1], &L->w[p], err))) return st;
        /* `bitnet` arch: an optional [1] scale multiplied after the projection. */
        snprintf(name, sizeof name, "blk.%d.%s.scale", il, proj_names[p]);
        const float *scale;
        if ((st = bind_norm(g, name, 1, true, &scale, err))) return st;
        L->has_scale[p] = scale != NULL;
        L->w_scale[p] = scale ? scale[0] : 1.0f;
        if (scale && !isfinite(scale[0]))
            return bn_error_set(err, BN_ERR_INVALID, "tensor %s holds %g", name, (double)scale[0]);
    }
    return BN_OK;
}

static bn_status bind_model(bn_model *m, bn_error *err) {
    const bn_gguf *g = m->gguf;
    bn_hparams *hp = &m->hp;
    bn_status st = read_hparams(g, hp, err);
    if (st) return st;
    const bn_gguf_tensor *emb = bn_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return bn_error_set(err, BN_ERR_INVALID, "tensor token_embd.weight is missing");
    if (emb->n_dims != 2 || emb->ne[0] != hp->n_embd)
        return bn_error_set(err, BN_ERR_INVALID,
                            "tensor token_embd.weight has ne[0] = %lld but embedding_length = %lld",
                            (long long)emb->ne[0], (long long)hp->n_embd);
    if (hp->n_vocab == 0) hp->n_vocab = emb->ne[1];
    if (emb->ne[1] != hp->n_vocab)
        return bn_error_set(err, BN_ERR_INVALID, "%s.vocab_size = %lld but token_embd.weight has %lld rows",
                            bn_arch_name(hp->arch), (long long)hp->n_vocab, (long long)emb->ne[1]);
    m->token_embd = emb;
    if ((st = bind_norm(g, "output_norm.weight", hp->n_embd, false, &m->output_norm, err))) return st;
    /* bitnet.cpp's bitnet-b1.58 builder always uses token_embd as lm_head. */
    const bn_gguf_tensor *out = NULL;
    if (hp->arch != BN_ARCH_BITNET_B158 && hp->arch != BN_ARCH_BITNET_25)
        if ((st = find_shaped(g, "output.weight", hp->n_embd, hp->n_vocab, true, &out, err))) return st;
    m->tied_output = out == NULL;
    if (!out) out = emb;
    m->lm_head = (bn_weight){.type = out->type, .data = out->data, .k = hp->n_embd, .n = hp->n_vocab};
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return bn_error_nomem(err, (unsigned long long)hp->n_layer * sizeof *m->layers, "%s: the tables of %lld layers",
                              bn_gguf_path(g), (long long)hp->n_layer);
    for (int il = 0; il < hp->n_layer; il++)
        if ((st = bind_layer(g, hp, il, &m->layers[il], err))) return st;
    return BN_OK;
}

bn_status bn_model_from_gguf(bn_gguf *g, bn_model **out, bn_error *err) {
    *out = NULL;
    bn_model *m = calloc(1, sizeof *m);
    if (!m) {
        bn_error_nomem(err, sizeof *m, "%s: the model", bn_gguf_path(g));
        bn_gguf_close(g);
        return BN_ERR_NOMEM;
    }
    m->gguf = g;
    bn_status st = bind_model(m, err);
    if (st) {
        bn_error_prefix(err, bn_gguf_path(g));
        bn_model_free(m);
        return st;
    }
    *out = m;
    return BN_OK;
}

/* A model read into memory, on a CPU with the AVX-512 VNNI kernels, gets
 * its I2_S projections regrouped by 8 rows (bn_weight_pack_i2s_rows8): a
 * decoded token then reads each group of 8 rows as one sequential stream
 * instead of 8 short ones. On a 2B-4T model, 2 threads, the same ids and
 * decode 7 % faster (median of 12 ABBA rounds; single rounds 0.89-1.51 on
 * this noisy host); in a microbenchmark of the kernel alone, 0.98-1.0 of a
 * plain read against 0.88-0.94. The integers, hence the bits, do not change. The embeddings
 * and the lm_head stay as stored (row lookups), and so does a mapped file
 * (its pages are the page cache's). */
static bn_status pack_i2s_rows8(bn_model *m, bn_error *err) {
    if (!bn_i8dot_supported(BN_I8DOT_AVX512_VNNI)) return BN_OK;
    size_t tmp_bytes = 0;
    for (int il = 0; il < m->hp.n_layer; il++)
        for (int p = 0; p < BN_PROJ_COUNT; p++)
            if (bn_weight_fits_i2s_rows8(&m->layers[il].w[p]) && (size_t)m->layers[il].w[p].k * 2 > tmp_bytes)
                tmp_bytes = (size_t)m->layers[il].w[p].k * 2; /* 8 rows of k/4 bytes */
    if (!tmp_bytes) return BN_OK;
    void *tmp = malloc(tmp_bytes);
    if (!tmp) return bn_error_nomem(err, tmp_bytes, "the I2_S row groups' scratch");
    bn_status st = bn_gguf_set_writable(m->gguf, true, err);
    for (int il = 0; !st && il < m->hp.n_layer; il++)
        for (int p = 0; p < BN_PROJ_COUNT; p++) {
            bn_weight *w = &m->layers[il].w[p];
            if (bn_weight_fits_i2s_rows8(w)) bn_weight_pack_i2s_rows8(w, (void *)(uintptr_t)w->data, tmp);
        }
    free(tmp);
    return st ? st : bn_gguf_set_writable(m->gguf, false, err);
}

bn_status bn_model_load_with(const char *path, bn_gguf_load how, bn_model **out, bn_error *err) {
    bn_gguf *g;
    *out = NULL;
    bn_status st = bn_gguf_open_with(path, how, &g, err);
    if (st) return st;
    if ((st = bn_model_from_gguf(g, out, err)) || how != BN_GGUF_LOAD_MEMORY) return st;
    if ((st = pack_i2s_rows8(*out, err))) {
        bn_error_prefix(err, path);
        bn_model_free(*out);
        *out = NULL;
    }
    return st;
}

bn_status bn_model_load(const char *path, bn_model **out, bn_error *err) {
    return bn_model_load_with(path, BN_GGUF_LOAD_MMAP, out, err);
}

void bn_model_free(bn_model *m) {
    if (!m) return;
    bn_gguf_close(m->gguf);
    free(m->layers);
    free(m->lm_head_copy);
    free(m);
}

/* ---- a requantized lm_head ------------------------------------------------ */

#define REQUANT_ROWS 64     /* rows widened at a time: 640 KB of floats at the 2B-4T width */
#define REQUANT_GRAIN 1024  /* rows per pool chunk (one buffer each) */

typedef struct requant_job {
    bn_weight src;       /* the lm_head as stored */
    uint32_t type;       /* the copy's type */
    uint8_t *dst;        /* [n rows] of row_bytes */
    size_t row_bytes;
    _Atomic int failed;  /* a chunk could not get its buffer or convert */
} requant_job;

/* Rows [r0, r1) in chunks of REQUANT_ROWS: each row's bytes depend on that
 * row alone, so any split gives the same copy. */
static void requant_rows(void *ctx, int64_t r0, int64_t r1) {
    requant_job *j = ctx;
    const int64_t K = j->src.k;
    float *buf = malloc(sizeof(float) * (size_t)(REQUANT_ROWS * K));
    if (!buf) {
        j->failed = 1;
        return;
    }
    bn_error e;
    for (int64_t r = r0; r < r1; r += REQUANT_ROWS) {
        const int64_t n = r1 - r < REQUANT_ROWS ? r1 - r : REQUANT_ROWS;
        if (bn_weight_dequantize_rows(&j->src, r, n, buf, &e) ||
            bn_quantize(j->type, buf, K, n, j->dst + (size_t)r * j->row_bytes, (size_t)n * j->row_bytes, &e)) {
            j->failed = 1;
            break;
        }
    }
    free(buf);
}

bn_status bn_model_requantize_lm_head(bn_model *m, uint32_t type, int n_threads, bn_error *err) {
    if (type != BN_TYPE_Q8_0)
        return bn_error_set(err, BN_ERR_INVALID, "lm_head: requantizing to %s is not supported (q8_0 is)",
                            bn_type_name(type));
    if (m->lm_head_copy) return bn_error_set(err, BN_ERR_INVALID, "lm_head: already requantized");
    if (m->lm_head.type == type) return BN_OK;
    const bn_type_traits *from = bn_type_traits_get(m->lm_head.type);
    if (!from || from->ternary)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "lm_head: a %s lm_head is not requantized (f32, f16, bf16 are)",
                            bn_type_name(m->lm_head.type));
    uint64_t row_bytes, total;
    bn_status st = bn_type_tensor_nbytes(type, m->lm_head.k, m->lm_head.k, &row_bytes, err);
    if (!st) st = bn_type_tensor_nbytes(type, m->lm_head.k, m->lm_head.k * m->lm_head.n, &total, err);
    if (st) return st;
    requant_job j = {.src = m->lm_head, .type = type, .row_bytes = (size_t)row_bytes};
    bn_pool *pool = NULL;
    if ((st = bn_pool_create(n_threads, &pool, err))) return st;
    j.dst = malloc((size_t)total);
    if (j.dst) bn_pool_parallel_for(pool, m->lm_head.n, REQUANT_GRAIN, requant_rows, &j);
    bn_pool_destroy(pool);
    if (!j.dst) return bn_error_nomem(err, total, "lm_head: the %s copy", bn_type_name(type));
    if (j.failed) {
        free(j.dst);
        return bn_error_nomem(err, sizeof(float) * (unsigned long long)(REQUANT_ROWS * m->lm_head.k),
                              "lm_head: a buffer of %d widened rows", REQUANT_ROWS);
    }
    m->lm_head_copy = j.dst;
    m->lm_head.type = type;
    m->lm_head.data = j.dst;
    return BN_OK;
}

bool bn_model_lm_head_type_parse(const char *name, uint32_t *type) {
    if (!strcmp(name, "stored")) *type = 0;
    else if (!strcmp(name, "q8_0")) *type = BN_TYPE_Q8_0;
    else return false;
    return true;
}

const char *bn_model_lm_head_override(const bn_model *m) {
    if (!m->lm_head_copy) return NULL;
    switch (m->lm_head.type) {
    case BN_TYPE_Q8_0: return "q8_0";
    default: return "?";
    }
}
