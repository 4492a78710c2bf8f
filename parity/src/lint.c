/* lint.c — the rules of `bitparity lint`; see lint.h and docs/lint.md. */
#include "parity/lint.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/model.h"
#include "bitnet/quant.h"

enum {
    R_ENGINE_BIND,
    R_HPARAMS,
    R_TENSOR_MISSING,
    R_SHAPE,
    R_ROPE_DIM,
    R_VOCAB,
    R_NORM_QUANTIZED,
    R_I2S_SCALE,
    R_I2S_CODE3,
    R_I2S_ROWS,
    R_I2S_LAYOUT,
    R_I2S_STATS,
    R_NO_ACT,
    R_PRE_MISSING,
    R_UNUSED,
    R_GAMMA_SCALED,
    R_GAMMA_RMS,
    R_COUNT
};

static const parity_lint_rule rules[R_COUNT] = {
    [R_ENGINE_BIND] = {"engine-refuses", PARITY_LINT_WARNING, "bitparity's engine cannot bind the file as a model (its message)"},
    [R_HPARAMS] = {"hparams-invalid", PARITY_LINT_ERROR, "architecture or hyper-parameter keys missing, mistyped or inconsistent"},
    [R_TENSOR_MISSING] = {"tensor-missing", PARITY_LINT_ERROR, "a tensor the architecture needs is absent"},
    [R_SHAPE] = {"shape-mismatch", PARITY_LINT_ERROR, "a tensor's shape disagrees with the hyper-parameters"},
    [R_ROPE_DIM] = {"rope-dim", PARITY_LINT_ERROR, "<arch>.rope.dimension_count differs from head_dim = embedding_length/head_count"},
    [R_VOCAB] = {"vocab-size", PARITY_LINT_ERROR, "vocabulary size (tokens, <arch>.vocab_size) differs from token_embd rows"},
    [R_NORM_QUANTIZED] = {"norm-quantized", PARITY_LINT_ERROR, "a norm weight stored in another type than F32"},
    [R_I2S_SCALE] = {"i2s-scale-invalid", PARITY_LINT_ERROR, "an I2_S tensor's scale is not finite or <= 0"},
    [R_I2S_CODE3] = {"i2s-code3", PARITY_LINT_ERROR, "an I2_S tensor uses the unused code 3"},
    [R_I2S_ROWS] = {"i2s-row-degenerate", PARITY_LINT_WARNING, "I2_S rows whose codes are all equal (all 0, all -1 or all +1)"},
    [R_I2S_LAYOUT] = {"i2s-code-layout", PARITY_LINT_WARNING, "I2_S code statistics differ between the four 32-element groups of a block"},
    [R_I2S_STATS] = {"i2s-code-stats", PARITY_LINT_WARNING, "an I2_S tensor's zero fraction or sign balance far from the other tensors'"},
    [R_NO_ACT] = {"bitnet-no-activation", PARITY_LINT_WARNING, "`bitnet` arch without <arch>.hidden_activation: SiLU runs"},
    [R_PRE_MISSING] = {"tokenizer-pre-missing", PARITY_LINT_WARNING, "a BPE vocabulary without tokenizer.ggml.pre"},
    [R_UNUSED] = {"unused-tensor", PARITY_LINT_WARNING, "a tensor the architecture does not use"},
    [R_GAMMA_SCALED] = {"norm-gamma-scaled", PARITY_LINT_WARNING, "a norm gamma of RMS >= sqrt(H)/2: it looks multiplied by sqrt(H)"},
    [R_GAMMA_RMS] = {"norm-gamma-rms", PARITY_LINT_INFO, "the RMS of each kind of norm gamma (small ones are legitimate)"},
};

const parity_lint_rule *parity_lint_rules(size_t *n) {
    *n = R_COUNT;
    return rules;
}

const char *parity_lint_severity_name(parity_lint_severity s) {
    return s == PARITY_LINT_ERROR ? "error" : s == PARITY_LINT_WARNING ? "warning" : "info";
}

/* ------------------------------------------------------------ context -- */

typedef struct lint_ctx {
    const bn_gguf *g;
    parity_lint_result *r;
    size_t cap;
    bool oom;
    char arch[64];   /* general.architecture ("" when absent) */
    bool known_arch, sub_norms, scales, tied_only;
    bool hp_ok;      /* every hyper-parameter below read and consistent */
    int64_t H, L, F, nh, nkv, D;
    unsigned char *used; /* per tensor (file order) */
    int64_t n_missing;   /* tensor-missing findings, listed up to MISSING_LISTED */
} lint_ctx;

/* More missing tensors than this are counted in one last finding. */
#define MISSING_LISTED 16

static void add(lint_ctx *c, int rule, const char *subject, const char *fmt, ...) BN_PRINTF(4, 5);
static void add(lint_ctx *c, int rule, const char *subject, const char *fmt, ...) {
    if (c->oom) return;
    if (c->r->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        parity_lint_finding *f = realloc(c->r->findings, cap * sizeof *f);
        if (!f) {
            c->oom = true;
            return;
        }
        c->r->findings = f, c->cap = cap;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one line whatever the file's strings hold (keys and the architecture name are the file's bytes) */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20) *p = '?';
    parity_lint_finding *f = &c->r->findings[c->r->n];
    f->rule = &rules[rule];
    f->subject = strdup(subject);
    f->message = strdup(msg);
    if (!f->subject || !f->message) {
        free(f->subject), free(f->message);
        c->oom = true;
        return;
    }
    for (char *p = f->subject; *p; p++)
        if ((unsigned char)*p < 0x20) *p = '?';
    c->r->n++;
    c->r->count[rules[rule].severity]++;
}

/* The file-order index of tensor `name`, or -1 (a name search, then the
 * position, checked, so that a large file costs no linear scan per name). */
static int64_t tensor_index(const lint_ctx *c, const char *name) {
    const bn_gguf_tensor *t = bn_gguf_find_tensor(c->g, name), *first = bn_gguf_tensor_at(c->g, 0);
    if (!t) return -1;
    const int64_t i = t - first;
    if (bn_gguf_tensor_at(c->g, i) == t) return i;
    for (int64_t k = 0; k < bn_gguf_tensor_count(c->g); k++)
        if (bn_gguf_tensor_at(c->g, k) == t) return k;
    return -1;
}

/* <arch>.<suffix> as an integer: 1 read, 0 absent, -1 present but not an
 * integer (reported). */
static int arch_int(lint_ctx *c, const char *suffix, int64_t *out) {
    char key[160];
    bn_error e;
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    bn_status st = bn_gguf_get_int(c->g, key, out, &e);
    if (st == BN_ERR_NOT_FOUND) return 0;
    if (st) {
        add(c, R_HPARAMS, key, "%s", e.msg);
        return -1;
    }
    return 1;
}

/* ------------------------------------------------------ hyper-params -- */

static const struct {
    const char *name;
    bool sub_norms, scales, tied_only;
} arch_traits[] = {
    {"bitnet-b1.58", true, false, true},
    {"bitnet-25", true, false, true},
    {"bitnet", true, true, false},
    {"llama", false, false, false},
};

static void read_hparams(lint_ctx *c) {
    bn_gguf_str s;
    bn_error e;
    bn_status st = bn_gguf_get_str(c->g, "general.architecture", &s, &e);
    if (st) {
        add(c, R_HPARAMS, "general.architecture", "%s",
            st == BN_ERR_NOT_FOUND ? "key general.architecture is missing (not a model file?)" : e.msg);
        return;
    }
    snprintf(c->arch, sizeof c->arch, "%.*s", (int)(s.len < 63 ? s.len : 63), s.ptr);
    for (size_t a = 0; a < sizeof arch_traits / sizeof arch_traits[0]; a++)
        if (!strcmp(c->arch, arch_traits[a].name) && strlen(c->arch) == s.len) {
            c->known_arch = true;
            c->sub_norms = arch_traits[a].sub_norms, c->scales = arch_traits[a].scales;
            c->tied_only = arch_traits[a].tied_only;
        }
    if (!c->known_arch) {
        add(c, R_HPARAMS, "general.architecture",
            "'%s' is not an architecture lint knows (bitnet-b1.58, bitnet-25, bitnet, llama): tensor rules skipped",
            c->arch);
        return;
    }
    static const char *const required[] = {"embedding_length", "block_count", "feed_forward_length",
                                           "attention.head_count"};
    int64_t *dst[] = {&c->H, &c->L, &c->F, &c->nh};
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        int got = arch_int(c, required[i], dst[i]);
        char key[160];
        snprintf(key, sizeof key, "%s.%s", c->arch, required[i]);
        if (got == 0) add(c, R_HPARAMS, key, "required key %s is missing", key);
        else if (got > 0 && (*dst[i] <= 0 || *dst[i] > (1 << 22)))
            add(c, R_HPARAMS, key, "%s = %lld is not a plausible size", key, (long long)*dst[i]), got = -1;
        ok = ok && got > 0;
    }
    if (!ok) return;
    int got = arch_int(c, "attention.head_count_kv", &c->nkv);
    if (got == 0) c->nkv = c->nh;
    if (got < 0) return;
    if (c->nkv <= 0 || c->nh % c->nkv || c->H % c->nh) {
        add(c, R_HPARAMS, "attention.head_count",
            "%s.attention.head_count = %lld, head_count_kv = %lld, embedding_length = %lld: head_count must divide "
            "embedding_length and head_count_kv head_count",
            c->arch, (long long)c->nh, (long long)c->nkv, (long long)c->H);
        return;
    }
    c->D = c->H / c->nh;
    int64_t rope;
    char key[160];
    snprintf(key, sizeof key, "%s.rope.dimension_count", c->arch);
    if (arch_int(c, "rope.dimension_count", &rope) > 0 && rope != c->D)
        add(c, R_ROPE_DIM, key,
            "%s = %lld but head_dim = embedding_length/head_count = %lld/%lld = %lld: RoPE would rotate %s of each head",
            key, (long long)rope, (long long)c->H, (long long)c->nh, (long long)c->D,
            rope < c->D ? "only part" : "past the end");
    c->hp_ok = c->L <= 4096;
}

/* -------------------------------------------------------------- shapes -- */

static bool is_norm(const char *name) {
    size_t n = strlen(name);
    return n >= 11 && !strcmp(name + n - 11, "norm.weight");
}

/* Marks `name` used and checks it is [ne0, ne1] (ne1 0: 1-D). */
static void expect(lint_ctx *c, const char *name, int64_t ne0, int64_t ne1, bool optional) {
    int64_t i = tensor_index(c, name);
    if (i < 0) {
        if (!optional && c->n_missing++ < MISSING_LISTED)
            add(c, R_TENSOR_MISSING, name, "tensor %s is missing (the %s architecture needs it)", name, c->arch);
        return;
    }
    c->used[i] = 1;
    const bn_gguf_tensor *t = bn_gguf_tensor_at(c->g, i);
    if (t->ne[0] != ne0 || t->ne[1] != (ne1 ? ne1 : 1) || t->ne[2] != 1 || t->ne[3] != 1) {
        if (ne1)
            add(c, R_SHAPE, name, "tensor %s has ne [%lld, %lld, %lld, %lld] but the hyper-parameters imply [%lld, %lld]",
                name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], (long long)ne0,
                (long long)ne1);
        else
            add(c, R_SHAPE, name, "tensor %s has ne [%lld, %lld, %lld, %lld] but the hyper-parameters imply [%lld]", name,
                (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], (long long)ne0);
    }
}

static void check_shapes(lint_ctx *c) {
    if (bn_gguf_tensor_count(c->g) == 0) {
        add(c, R_TENSOR_MISSING, "(tensors)", "the file holds no tensors: a vocabulary-only GGUF, not a model");
        return;
    }
    const int64_t H = c->H, F = c->F, Dq = c->nh * c->D, Dkv = c->nkv * c->D;
    int64_t iemb = tensor_index(c, "token_embd.weight");
    int64_t V = iemb >= 0 ? bn_gguf_tensor_at(c->g, iemb)->ne[1] : 0;
    expect(c, "token_embd.weight", H, V ? V : 1, false);
    expect(c, "output_norm.weight", H, 0, false);
    if (c->tied_only) {
        if (tensor_index(c, "output.weight") >= 0)
            add(c, R_UNUSED, "output.weight",
                "tensor output.weight is not used: the %s architecture computes the logits with token_embd (tied), as "
                "bitnet.cpp does",
                c->arch);
    } else {
        expect(c, "output.weight", H, V ? V : 1, true);
    }
    static const char *const proj[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    const int64_t shape[7][2] = {{H, Dq}, {H, Dkv}, {H, Dkv}, {Dq, H}, {H, F}, {H, F}, {F, H}};
    char name[96];
    for (int64_t l = 0; l < c->L; l++) {
#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
        expect(c, NAME("blk.%lld.attn_norm.weight", (long long)l), H, 0, false);
        expect(c, NAME("blk.%lld.ffn_norm.weight", (long long)l), H, 0, false);
        if (c->sub_norms) {
            expect(c, NAME("blk.%lld.attn_sub_norm.weight", (long long)l), Dq, 0, false);
            expect(c, NAME("blk.%lld.ffn_sub_norm.weight", (long long)l), F, 0, false);
        }
        for (int p = 0; p < 7; p++) {
            expect(c, NAME("blk.%lld.%s.weight", (long long)l, proj[p]), shape[p][0], shape[p][1], false);
            if (c->scales) expect(c, NAME("blk.%lld.%s.scale", (long long)l, proj[p]), 1, 0, true);
        }
#undef NAME
    }
    if (c->n_missing > MISSING_LISTED)
        add(c, R_TENSOR_MISSING, "(tensors)", "%lld more tensors the %s architecture needs are missing",
            (long long)(c->n_missing - MISSING_LISTED), c->arch);
    for (int64_t i = 0; i < bn_gguf_tensor_count(c->g); i++) {
        const char *n = bn_gguf_tensor_at(c->g, i)->name;
        if (!c->used[i] && !(c->tied_only && !strcmp(n, "output.weight")))
            add(c, R_UNUSED, n, "tensor %s is not used by the %s architecture (a converter leftover or a misnamed tensor)",
                n, c->arch);
    }
}

/* ------------------------------------------------------ vocabulary -- */

static void check_vocab(lint_ctx *c) {
    int64_t iemb = tensor_index(c, "token_embd.weight");
    if (iemb < 0) return;
    const int64_t rows = bn_gguf_tensor_at(c->g, iemb)->ne[1];
    int64_t k = bn_gguf_find_key(c->g, "tokenizer.ggml.tokens");
    if (k >= 0 && bn_gguf_kv_type(c->g, k) == BN_GGUF_ARRAY) {
        const uint64_t n = bn_gguf_kv_count_elems(c->g, k);
        if ((int64_t)n != rows)
            add(c, R_VOCAB, "tokenizer.ggml.tokens",
                "tokenizer.ggml.tokens has %llu tokens but token_embd.weight has %lld rows: token ids %s", (unsigned long long)n,
                (long long)rows, (int64_t)n < rows ? "past the vocabulary have embeddings but no text (a dropped token?)"
                                                   : "past the embedding rows would read outside the table");
    }
    int64_t vs;
    char key[160];
    snprintf(key, sizeof key, "%s.vocab_size", c->arch);
    if (c->arch[0] && arch_int(c, "vocab_size", &vs) > 0 && vs != rows)
        add(c, R_VOCAB, key, "%s = %lld but token_embd.weight has %lld rows", key, (long long)vs, (long long)rows);
    bn_gguf_str model;
    bn_error e;
    if (!bn_gguf_get_str(c->g, "tokenizer.ggml.model", &model, &e) && model.len == 4 && !memcmp(model.ptr, "gpt2", 4) &&
        bn_gguf_find_key(c->g, "tokenizer.ggml.pre") < 0)
        add(c, R_PRE_MISSING, "tokenizer.ggml.pre",
            "tokenizer.ggml.pre is missing from a BPE (gpt2) vocabulary: llama.cpp then pre-tokenizes with its 'default' "
            "regex and splits text differently from the model's own tokenizer (llama-bpe for the BitNet models)");
}

/* ------------------------------------------------------------ activation -- */

static void check_activation(lint_ctx *c) {
    if (strcmp(c->arch, "bitnet")) return;
    if (bn_gguf_find_key(c->g, "bitnet.hidden_activation") >= 0) return;
    add(c, R_NO_ACT, "bitnet.hidden_activation",
        "arch 'bitnet' without bitnet.hidden_activation: SiLU will run in the FFN (bitnet.cpp, llama.cpp and this engine). "
        "BitNet b1.58 models are trained with relu²: run with SiLU, the 2B-4T model's wikitext perplexity is 99.8 instead "
        "of 17.1 (microsoft/BitNet #588, #602). Write bitnet.hidden_activation = relu2 unless the model really uses SiLU");
}

/* --------------------------------------------------------------- norms -- */

/* The norm kind of a name: the part before ".weight" after "blk.N.". */
static const char *norm_kind(const char *name, char *buf, size_t size) {
    const char *k = name;
    if (!strncmp(k, "blk.", 4) && (k = strchr(k + 4, '.'))) k++;
    else k = name;
    snprintf(buf, size, "%.*s", (int)(strlen(k) - 7), k);
    return buf;
}

typedef struct norm_stat {
    char kind[48];
    int n;
    double rms_min, rms_max;
} norm_stat;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Norm types, the √H test per tensor and the RMS of each kind. The test: an
 * RMSNorm output has unit RMS per element, and trained gammas stay O(1)
 * (≈ 1 in llama-style models, ≈ 1/√H = 0.02 in the 2B-4T model): a gamma
 * of RMS √H/2 or more has no use and is what multiplying by √H makes of
 * gammas near 1 (√H >= 8 in every model with H >= 64). Gammas near 1/√H
 * multiplied by √H become ≈ 1 and cannot be told from a model trained so. */
static void check_norms(lint_ctx *c) {
    norm_stat ks[8];
    int nk = 0;
    const double sqrt_h = c->H > 0 ? sqrt((double)c->H) : 0;
    for (int64_t i = 0; i < bn_gguf_tensor_count(c->g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(c->g, i);
        if (!is_norm(t->name)) continue;
        if (t->type != BN_TYPE_F32) {
            add(c, R_NORM_QUANTIZED, t->name,
                "tensor %s is %s: norm weights must stay F32 (bitnet.cpp and llama.cpp keep them F32; quantizing a "
                "gamma changes every activation after the norm)",
                t->name, bn_type_name(t->type));
            continue;
        }
        const float *v = t->data;
        double sq = 0;
        for (int64_t j = 0; j < t->nelem; j++) sq += (double)v[j] * v[j];
        const double rms = sqrt(sq / (double)t->nelem);
        if (sqrt_h > 0 && rms >= sqrt_h / 2)
            add(c, R_GAMMA_SCALED, t->name,
                "tensor %s: gamma RMS %.4g against sqrt(H) = %.4g: trained RMSNorm gammas are O(1) or smaller, this one "
                "looks multiplied by sqrt(H) (or another large factor) by the converter",
                t->name, rms, sqrt_h);
        char kind[48];
        norm_kind(t->name, kind, sizeof kind);
        int k = 0;
        while (k < nk && strcmp(ks[k].kind, kind)) k++;
        if (k == nk) {
            if (nk == 8) continue;
            snprintf(ks[nk].kind, sizeof ks[nk].kind, "%s", kind);
            ks[nk].n = 0, ks[nk].rms_min = ks[nk].rms_max = rms;
            nk++;
        }
        ks[k].n++;
        ks[k].rms_min = fmin(ks[k].rms_min, rms), ks[k].rms_max = fmax(ks[k].rms_max, rms);
    }
    for (int k = 0; k < nk; k++) {
        char subject[160];
        snprintf(subject, sizeof subject, "%s%.64s.weight", strcmp(ks[k].kind, "output_norm") ? "blk.*." : "", ks[k].kind);
        add(c, R_GAMMA_RMS, subject,
            "%s gamma RMS %.4g..%.4g over %d tensor(s) (H = %lld, 1/sqrt(H) = %.4g); small gammas (about 1/sqrt(H), "
            "e.g. 0.018 in the 2B-4T model) are legitimate before an int8 activation quantization, which rescales by "
            "max|x| anyway",
            subject, ks[k].rms_min, ks[k].rms_max, ks[k].n, (long long)c->H, sqrt_h > 0 ? 1 / sqrt_h : 0.0);
    }
}

/* ---------------------------------------------------------------- I2_S -- */

typedef struct i2s_stat {
    int64_t index;
    double zero, pos; /* fractions of 0 and +1 codes */
} i2s_stat;

/* One I2_S tensor: scale, code 3, degenerate rows, the four groups. */
static void check_i2s(lint_ctx *c, const bn_gguf_tensor *t, i2s_stat *out) {
    const uint8_t *codes = t->data;
    const int64_t nbytes = t->nelem / 4, ne0 = t->ne[0], rows = t->nelem / ne0, row_bytes = ne0 / 4;
    float scale;
    memcpy(&scale, codes + nbytes, sizeof scale);
    if (!isfinite(scale) || !(scale > 0))
        add(c, R_I2S_SCALE, t->name,
            "tensor %s has I2_S scale %g (at byte %llu of the tensor): weights would be %s", t->name, (double)scale,
            (unsigned long long)nbytes, isfinite(scale) ? (scale == 0 ? "all zero" : "sign-flipped") : "NaN/inf");
    int64_t n3 = 0, first3 = -1, group[4][3] = {{0}};
    for (int64_t b = 0; b < nbytes; b++)
        for (int g = 0; g < 4; g++) {
            const int code = (codes[b] >> (6 - 2 * g)) & 3;
            if (code == 3) {
                if (first3 < 0) first3 = b;
                n3++;
            } else {
                group[g][code]++;
            }
        }
    if (n3)
        add(c, R_I2S_CODE3, t->name,
            "tensor %s holds %lld I2_S codes 3 (first in byte %lld of the tensor): code 3 is never written by bitnet.cpp's "
            "quantizer and decodes as 0 — a different code table or a corrupt tensor",
            t->name, (long long)n3, (long long)first3);
    int64_t degenerate = 0, first_row = -1;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *p = codes + r * row_bytes;
        const uint8_t b0 = p[0];
        bool same = ((b0 >> 6) & 3) == (b0 & 3) && ((b0 >> 4) & 3) == (b0 & 3) && ((b0 >> 2) & 3) == (b0 & 3);
        for (int64_t j = 1; same && j < row_bytes; j++) same = p[j] == b0;
        if (same) {
            if (first_row < 0) first_row = r;
            degenerate++;
        }
    }
    if (degenerate && rows > 1)
        add(c, R_I2S_ROWS, t->name,
            "tensor %s has %lld of %lld rows whose codes are all equal (first: row %lld, code %d): with one scale per "
            "tensor such a row is all 0 or all ±scale — rows written with another scale or not written at all "
            "(llama-quantize I2_S with threads misplaces rows)",
            t->name, (long long)degenerate, (long long)rows, (long long)first_row,
            (codes[first_row * row_bytes] >> 6) & 3);
    /* Groups g = j div 32 of each 128-block share every statistic when the
     * layout is bitnet.cpp's; a wrong layout that mixes rows or blocks with
     * different statistics shows up as groups that differ beyond binomial
     * noise (6 sigma, and at least 0.05). */
    int64_t tot[3] = {0};
    for (int g = 0; g < 4; g++)
        for (int k = 0; k < 3; k++) tot[k] += group[g][k];
    const double n_all = (double)(tot[0] + tot[1] + tot[2]);
    out->zero = n_all > 0 ? tot[1] / n_all : 0, out->pos = n_all > 0 ? tot[2] / n_all : 0;
    int worst_g = -1, worst_k = 0;
    double worst = 1, worst_pg = 0, worst_p = 0, worst_limit = 0; /* deviation / limit of the worst group */
    for (int g = 0; g < 4 && n_all > 0; g++) {
        const double ng = (double)(group[g][0] + group[g][1] + group[g][2]);
        if (ng < 512) break;
        for (int k = 1; k <= 2; k++) {
            const double p = tot[k] / n_all, pg = group[g][k] / ng;
            const double limit = fmax(0.05, 6 * sqrt(p * (1 - p) / ng));
            if (fabs(pg - p) / limit > worst)
                worst = fabs(pg - p) / limit, worst_g = g, worst_k = k, worst_pg = pg, worst_p = p, worst_limit = limit;
        }
    }
    if (worst_g >= 0)
        add(c, R_I2S_LAYOUT, t->name,
            "tensor %s: the %s fraction of code group %d (elements %d..%d of each 128-block) is %.3f against %.3f "
            "over the tensor (limit ±%.3f): the codes do not look packed in bitnet.cpp's 128-element interleave",
            t->name, worst_k == 1 ? "zero" : "+1", worst_g, 32 * worst_g, 32 * worst_g + 31, worst_pg, worst_p, worst_limit);
}

static int cmp_stat_zero(const void *a, const void *b) { return cmp_double(&((const i2s_stat *)a)->zero, &((const i2s_stat *)b)->zero); }

static void check_i2s_all(lint_ctx *c, const volatile sig_atomic_t *cancel, bn_status *st, bn_error *err) {
    const int64_t nt = bn_gguf_tensor_count(c->g);
    i2s_stat *s = calloc((size_t)nt + 1, sizeof *s);
    if (!s) {
        c->oom = true;
        return;
    }
    int64_t n = 0;
    for (int64_t i = 0; i < nt && !*st; i++) {
        if ((*st = bn_cancel_check(cancel, err))) break;
        const bn_gguf_tensor *t = bn_gguf_tensor_at(c->g, i);
        if (t->type != BN_TYPE_I2_S) continue;
        s[n].index = i;
        check_i2s(c, t, &s[n++]);
    }
    /* Ternarized weights keep a similar zero fraction and sign balance in
     * every tensor (about 1/3 zeros, +1 as often as -1 in the shipped and
     * published models); a tensor 0.25 away from the median is suspicious. */
    if (!*st && n >= 3) {
        i2s_stat *sorted = malloc((size_t)n * sizeof *sorted);
        if (!sorted) {
            c->oom = true;
            free(s);
            return;
        }
        memcpy(sorted, s, (size_t)n * sizeof *s);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_stat_zero);
        const double med_zero = sorted[n / 2].zero;
        free(sorted);
        for (int64_t k = 0; k < n; k++) {
            const double nz = 1 - s[k].zero, balance = nz > 0 ? (2 * s[k].pos - nz) / nz : 0;
            const char *name = bn_gguf_tensor_at(c->g, s[k].index)->name;
            if (fabs(s[k].zero - med_zero) > 0.25 || fabs(balance) > 0.5)
                add(c, R_I2S_STATS, name,
                    "tensor %s: zero fraction %.3f (median of the %lld I2_S tensors %.3f), sign balance (n+ - n-)/n±0 = "
                    "%+.3f: far from the other tensors' statistics — a different code table or layout?",
                    name, s[k].zero, (long long)n, med_zero, balance);
        }
    }
    free(s);
}

/* ------------------------------------------------------------- driver -- */

/* The engine's verdict on a second handle of the same bytes (the binder
 * takes ownership of the handle it is given). */
static void check_bind(lint_ctx *c, bn_gguf *g2) {
    bn_model *m = NULL;
    bn_error e;
    bn_status st = bn_model_from_gguf(g2, &m, &e);
    if (st && st != BN_ERR_NOMEM) add(c, R_ENGINE_BIND, c->r->path, "the engine refuses the model: %s", e.msg);
    if (st == BN_ERR_NOMEM) c->oom = true;
    bn_model_free(m);
}

/* Lints g; g2 is a second handle of the same file for the binder (taken). */
static bn_status lint_gguf(const bn_gguf *g, bn_gguf *g2, const volatile sig_atomic_t *cancel, parity_lint_result **out,
                           bn_error *err) {
    *out = NULL;
    parity_lint_result *r = calloc(1, sizeof *r);
    lint_ctx c = {.g = g, .r = r};
    if (!r || !(r->path = strdup(bn_gguf_path(g))) || !(c.used = calloc((size_t)bn_gguf_tensor_count(g) + 1, 1))) {
        bn_gguf_close(g2);
        parity_lint_result_free(r);
        return bn_error_nomem(err, sizeof *r, "lint: the result");
    }
    bn_status st = BN_OK;
    check_bind(&c, g2);
    read_hparams(&c);
    if (c.hp_ok) check_shapes(&c);
    check_vocab(&c);
    check_activation(&c);
    check_norms(&c);
    check_i2s_all(&c, cancel, &st, err);
    free(c.used);
    if (!st && c.oom) st = bn_error_nomem(err, 0, "lint: the findings of %s", r->path);
    if (st) {
        parity_lint_result_free(r);
        return st;
    }
    /* rule-table order, then file order (stable: findings were added in file order within a rule) */
    for (size_t i = 1; i < r->n; i++)
        for (size_t j = i; j > 0 && r->findings[j - 1].rule > r->findings[j].rule; j--) {
            parity_lint_finding tmp = r->findings[j];
            r->findings[j] = r->findings[j - 1], r->findings[j - 1] = tmp;
        }
    *out = r;
    return BN_OK;
}

bn_status parity_lint_file(const char *path, const volatile sig_atomic_t *cancel, parity_lint_result **out,
                           bn_error *err) {
    bn_gguf *g, *g2;
    *out = NULL;
    bn_status st = bn_gguf_open(path, &g, err);
    if (st) return st;
    if ((st = bn_gguf_open(path, &g2, err))) {
        bn_gguf_close(g);
        return st;
    }
    st = lint_gguf(g, g2, cancel, out, err);
    bn_gguf_close(g);
    return st;
}

bn_status parity_lint_memory(const void *data, size_t size, const char *name, parity_lint_result **out,
                             bn_error *err) {
    bn_gguf *g, *g2;
    *out = NULL;
    bn_status st = bn_gguf_open_memory(data, size, name, &g, err);
    if (st) return st;
    if ((st = bn_gguf_open_memory(data, size, name, &g2, err))) {
        bn_gguf_close(g);
        return st;
    }
    st = lint_gguf(g, g2, NULL, out, err);
    bn_gguf_close(g);
    return st;
}

void parity_lint_to_doc(const parity_lint_result *r, parity_doc_builder *b, parity_doc_node *root) {
    parity_doc_str(b, root, "lint", "bitparity/lint-v1");
    parity_doc_str(b, root, "model", r->path);
    parity_doc_node *s = parity_doc_map(b, root, "summary");
    parity_doc_int(b, s, "error", (int64_t)r->count[PARITY_LINT_ERROR]);
    parity_doc_int(b, s, "warning", (int64_t)r->count[PARITY_LINT_WARNING]);
    parity_doc_int(b, s, "info", (int64_t)r->count[PARITY_LINT_INFO]);
    parity_doc_node *l = parity_doc_list(b, root, "findings", 0);
    for (size_t i = 0; i < r->n; i++) {
        parity_doc_node *f = parity_doc_map(b, l, NULL);
        parity_doc_str(b, f, "rule", r->findings[i].rule->id);
        parity_doc_str(b, f, "severity", parity_lint_severity_name(r->findings[i].rule->severity));
        parity_doc_str(b, f, "subject", r->findings[i].subject);
        parity_doc_str(b, f, "message", r->findings[i].message);
    }
}

void parity_lint_result_free(parity_lint_result *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) free(r->findings[i].subject), free(r->findings[i].message);
    free(r->findings);
    free(r->path);
    free(r);
}
