/* synth.c — deterministic small models (see synth.h). */
#include "bitnet/synth.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/quant.h"

static const bn_synth_shape shapes[] = {
    {"tiny", 512, 256, 4, 512, 8, 2, 256, false},
    /* GQA 1:1, head_dim 64, n_ff not a multiple of 256 (F32 / I2_S only) */
    {"tiny-mha", 512, 256, 2, 384, 4, 4, 256, false},
    /* benchmarks: big enough that the matmuls dominate */
    {"bench", 512, 1024, 8, 2816, 16, 4, 512, false},
    /* 1bitLLM bitnet_b1_58-large (~700M): MHA, 16 heads of 96 */
    {"700m", 32002, 1536, 24, 4096, 16, 16, 2048, true},
    /* microsoft BitNet b1.58 2B-4T: 20 heads of 128, 5 kv heads, Llama-3 vocabulary size */
    {"2b4t", 128256, 2560, 30, 6912, 20, 5, 4096, true},
};

const bn_synth_shape *bn_synth_shape_find(const char *name) {
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) return &shapes[i];
    return NULL;
}

const char *bn_synth_shape_names(void) { return "tiny, tiny-mha, bench, 700m, 2b4t"; }

/* ------------------------------------------------------------ numbers -- */

/* splitmix64 of (stream, counter): every tensor has its own stream, so the
 * values do not depend on the order tensors are generated in. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct rng {
    uint64_t stream, n;
} rng;

static rng rng_for(uint64_t seed, uint64_t tensor) { return (rng){mix64(seed * 0x9e3779b97f4a7c15ull + tensor), 0}; }
static uint64_t rng_next(rng *r) { return mix64(r->stream + 0x9e3779b97f4a7c15ull * ++r->n); }
/* Uniform in [0, 1) with 24 bits: exact in float. */
static float rng_uniform(rng *r) { return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f); }
/* ≈ N(0, 1) by Irwin–Hall (sum of 12 uniforms − 6): no libm, so bit-identical everywhere. */
static float rng_normal(rng *r) {
    float s = 0;
    for (int i = 0; i < 12; i++) s += rng_uniform(r);
    return s - 6.0f;
}

/* ---------------------------------------------------------- vocabulary -- */

#define SYNTH_VOCAB 512 /* bytes + merges + 3 specials; larger shapes add fillers */
#define SYNTH_BYTES 256
#define SYNTH_MERGES 253

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the others
 * to U+0100 + k in byte order; the byte tokens are numbered in this table's
 * order (printable first), like the shared tiny models' vocabulary. */
static void byte_order(uint8_t order[256], uint32_t cp[256]) {
    int n = 0, extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (printable) order[n++] = (uint8_t)b, cp[b] = (uint32_t)b;
    }
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (!printable) order[n++] = (uint8_t)b, cp[b] = 256u + (uint32_t)extra++;
    }
}

static size_t utf8_put(char *out, uint32_t c) {
    if (c < 0x80) return out[0] = (char)c, 1;
    if (c < 0x800) return out[0] = (char)(0xC0 | (c >> 6)), out[1] = (char)(0x80 | (c & 63)), 2;
    out[0] = (char)(0xE0 | (c >> 12)), out[1] = (char)(0x80 | ((c >> 6) & 63)), out[2] = (char)(0x80 | (c & 63));
    return 3;
}

/* The text the merges are learned from (original prose, no third-party text). */
static const char corpus[] =
    "The quick brown fox jumps over the lazy dog. A parity tool compares two traces of the same model and "
    "tells where they start to disagree. When the output of a port is garbled, the first question is which "
    "layer went wrong, and the second is why. The norm weights may be scaled, the rope may be permuted, the "
    "activation may be the wrong one, or the scale of a ternary tensor may be clamped. Each of these leaves a "
    "mark in the numbers: a constant factor, a swapped half, a curve that bends where it should not. "
    "The engine records every intermediate value of the forward pass, the reference records the same values, "
    "and the driver reads both, maps the names onto each other, computes the errors and writes a receipt. "
    "In the morning the team reads the receipt and fixes the one line that was wrong, then runs the gate "
    "again and sees it pass. There is nothing more satisfying than a green check after a long day of "
    "searching. The model has four layers, eight heads and a small vocabulary; it is tiny, but it has the "
    "same shape as the large one, and the same mistakes show up in it in the same places. Tokens are made of "
    "bytes, and bytes are merged into pieces that appear often in this text: the, and, ing, tion, er, on, "
    "in, an, re, at, es, or, en, it, is, of, to, ed, al, ar, st, le, se, ou, ch, he, th, wh, sh. "
    "Numbers such as 2026, 1.58, 127 and 3.14159 appear too, with punctuation: (a, b), [x], {y}, \"z\"! "
    "Once upon a time there was a little engine that wanted to agree with its reference in every bit. "
    "It tried and it tried, and one day it did.\n";

/* Character classes of the pre-split: letters, digits, spaces, the rest. */
static int char_class(char ch) {
    const unsigned char c = (unsigned char)ch;
    if ((c | 32) >= 'a' && (c | 32) <= 'z') return 0;
    if (c >= '0' && c <= '9') return 1;
    if (c == ' ' || c == '\n') return 2;
    return c >= 0x80 ? 0 : 3;
}

typedef struct vocab {
    int64_t n;                  /* the shape's n_vocab (>= SYNTH_VOCAB) */
    char **tokens;              /* [n] token strings in GPT-2 unicode form */
    char *merges[SYNTH_MERGES]; /* "left right" in rank order */
    int32_t *types;             /* [n] 1 normal, 3 control */
    int n_merges;
} vocab;

static void vocab_free(vocab *v) {
    for (int64_t i = 0; v->tokens && i < v->n; i++) free(v->tokens[i]);
    for (int i = 0; i < SYNTH_MERGES; i++) free(v->merges[i]);
    free(v->tokens), free(v->types);
}

static char *str_cat3(const char *a, const char *sep, const char *b) {
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *s = malloc(la + ls + lb + 1);
    if (s) memcpy(s, a, la), memcpy(s + la, sep, ls), memcpy(s + la + ls, b, lb + 1);
    return s;
}

/* Learns SYNTH_MERGES merges over words of the corpus (a word keeps its
 * leading space, as the GPT-2 pre-split does): each step merges the most
 * frequent adjacent pair, ties to the smallest ids. */
static bn_status vocab_build(vocab *v, int64_t n_vocab, bn_error *err) {
    v->n = n_vocab;
    v->tokens = calloc((size_t)n_vocab, sizeof *v->tokens);
    v->types = calloc((size_t)n_vocab, sizeof *v->types);
    if (!v->tokens || !v->types)
        return bn_error_nomem(err, (unsigned long long)n_vocab * (sizeof *v->tokens + sizeof *v->types),
                              "synth: a vocabulary of %lld tokens", (long long)n_vocab);
    uint8_t order[256];
    uint32_t cp[256];
    int id_of_byte[256];
    byte_order(order, cp);
    for (int i = 0; i < SYNTH_BYTES; i++) {
        char buf[4];
        size_t n = utf8_put(buf, cp[order[i]]);
        v->tokens[i] = strndup(buf, n);
        v->types[i] = 1;
        id_of_byte[order[i]] = i;
    }
    const size_t len = sizeof corpus - 1;
    int *sym = malloc(len * sizeof *sym);      /* symbol sequence; -1 = word boundary */
    int *count = calloc((size_t)SYNTH_VOCAB * SYNTH_VOCAB, sizeof *count);
    if (!sym || !count) {
        free(sym), free(count);
        return bn_error_nomem(err, len * sizeof *sym + (unsigned long long)SYNTH_VOCAB * SYNTH_VOCAB * sizeof *count,
                              "synth: the merge statistics");
    }
    bool *start = malloc(len * sizeof *start); /* symbol begins a pre-split piece */
    if (!start) {
        free(sym), free(count);
        return bn_error_nomem(err, len * sizeof *start, "synth: the piece starts");
    }
    for (size_t i = 0; i < len; i++) {
        sym[i] = id_of_byte[(uint8_t)corpus[i]];
        start[i] = i == 0 || corpus[i] == ' ' || corpus[i] == '\n' ||
                   (corpus[i - 1] != ' ' && char_class(corpus[i]) != char_class(corpus[i - 1]));
    }
    size_t n = len;
    int next = SYNTH_BYTES;
    for (int m = 0; m < SYNTH_MERGES; m++) {
        memset(count, 0, (size_t)SYNTH_VOCAB * SYNTH_VOCAB * sizeof *count);
        for (size_t i = 0; i + 1 < n; i++)
            if (!start[i + 1]) count[sym[i] * SYNTH_VOCAB + sym[i + 1]]++;
        int best = -1;
        for (int p = 0; p < SYNTH_VOCAB * SYNTH_VOCAB; p++)
            if (count[p] >= 1 && (best < 0 || count[p] > count[best])) best = p;
        if (best < 0) break;
        const int a = best / SYNTH_VOCAB, b = best % SYNTH_VOCAB;
        v->tokens[next] = str_cat3(v->tokens[a], "", v->tokens[b]);
        v->merges[m] = str_cat3(v->tokens[a], " ", v->tokens[b]);
        v->types[next] = 1;
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            start[w] = start[i];
            if (i + 1 < n && sym[i] == a && sym[i + 1] == b && !start[i + 1]) sym[w++] = next, i++;
            else sym[w++] = sym[i];
        }
        n = w;
        next++;
        v->n_merges = m + 1;
    }
    free(sym), free(count), free(start);
    if (v->n_merges != SYNTH_MERGES)
        return bn_error_set(err, BN_ERR_INTERNAL, "synth: the corpus yields only %d merges", v->n_merges);
    /* Larger vocabularies (the real models' sizes) are filled with normal
     * tokens no merge produces ('<' is not in the corpus): the embedding and
     * lm_head get their real shapes while tokenization stays the 512-token one. */
    const int64_t first_special = n_vocab - 3;
    for (int64_t i = SYNTH_BYTES + SYNTH_MERGES; i < first_special; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "<filler%lld>", (long long)i);
        v->tokens[i] = strdup(buf);
        v->types[i] = 1;
    }
    static const char *const specials[3] = {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"};
    for (int i = 0; i < 3; i++) {
        v->tokens[first_special + i] = strdup(specials[i]);
        v->types[first_special + i] = 3;
    }
    for (int64_t i = 0; i < n_vocab; i++)
        if (!v->tokens[i]) return bn_error_nomem(err, 16, "synth: token text %lld", (long long)i);
    return BN_OK;
}

/* ------------------------------------------------------------- tensors -- */

typedef enum { W_TERNARY, W_GAMMA, W_SUBNORM, W_EMBED } wkind;

typedef struct tensor_spec {
    char name[64];
    wkind kind;
    uint32_t type;
    int64_t ne0, ne1; /* ne1 = 1 for vectors */
} tensor_spec;

/* The values of one tensor, generated in order a piece at a time: the
 * per-tensor scale is drawn first, then every element from the same stream,
 * so the pieces concatenate to the values of one whole-tensor pass. */
typedef struct filler {
    rng r;
    float beta;
    wkind kind;
    bool dense;     /* bn_synth_shape.dense_draws */
    uint64_t lanes; /* dense: the unused 16-bit lanes of the last draw */
    int n_lanes;
} filler;

/* Uniform in [0, 1) with 16 bits, four from each draw (dense shapes). */
static inline float filler_u16(filler *f) {
    if (f->n_lanes == 0) f->lanes = rng_next(&f->r), f->n_lanes = 4;
    const float u = (float)(f->lanes & 0xffff) * (1.0f / 65536.0f);
    f->lanes >>= 16, f->n_lanes--;
    return u;
}

static filler filler_start(const tensor_spec *t, uint64_t seed, uint64_t index, bool dense) {
    filler f = {rng_for(seed, index), 0, t->kind, dense, 0, 0};
    f.beta = 0.02f + 0.03f * rng_uniform(&f.r); /* per-tensor scale */
    return f;
}

static void fill_next(filler *f, int64_t n, float *w) {
    if (f->dense) {
        for (int64_t i = 0; i < n; i++) {
            switch (f->kind) {
            case W_TERNARY: { /* selects, not branches: the draws are random */
                const float u = filler_u16(f), signed_beta = u < 0.655f ? -f->beta : f->beta;
                w[i] = u < 0.31f ? 0.0f : signed_beta;
                break;
            }
            case W_GAMMA: w[i] = 0.9f + 0.2f * filler_u16(f); break;
            case W_SUBNORM: w[i] = 0.5f + filler_u16(f); break;
            case W_EMBED: { /* Irwin–Hall of 4 (variance 1/3) scaled to N(0, 0.5²) */
                const float a = filler_u16(f), b = filler_u16(f), c = filler_u16(f), d = filler_u16(f);
                w[i] = (((a + b) + (c + d)) - 2.0f) * (0.5f * 1.7320508f);
                break;
            }
            }
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        switch (f->kind) {
        case W_TERNARY: {
            const float u = rng_uniform(&f->r);
            w[i] = u < 0.31f ? 0.0f : (u < 0.655f ? -f->beta : f->beta);
            break;
        }
        case W_GAMMA: w[i] = 0.9f + 0.2f * rng_uniform(&f->r); break;
        case W_SUBNORM: w[i] = 0.5f + rng_uniform(&f->r); break;
        case W_EMBED: w[i] = 0.5f * rng_normal(&f->r); break;
        }
    }
}

static int plan_tensors(const bn_synth_params *p, tensor_spec *ts) {
    const bn_synth_shape *s = p->shape;
    const int64_t H = s->n_embd, F = s->n_ff, D = s->n_embd / s->n_head, Dkv = s->n_head_kv * D;
    const bool sub = p->arch != BN_ARCH_LLAMA;
    const uint32_t emb_type = p->embd_type_given ? p->embd_type : p->type == BN_TYPE_I2_S ? BN_TYPE_F16 : BN_TYPE_F32;
    int n = 0;
#define ADD(kind_, type_, ne0_, ne1_, ...) \
    (snprintf(ts[n].name, sizeof ts[n].name, __VA_ARGS__), ts[n].kind = kind_, ts[n].type = type_, \
     ts[n].ne0 = ne0_, ts[n].ne1 = ne1_, n++)
    ADD(W_EMBED, emb_type, H, s->n_vocab, "token_embd.weight");
    ADD(W_GAMMA, BN_TYPE_F32, H, 1, "output_norm.weight");
    for (int il = 0; il < s->n_layer; il++) {
        ADD(W_GAMMA, BN_TYPE_F32, H, 1, "blk.%d.attn_norm.weight", il);
        ADD(W_TERNARY, p->type, H, H, "blk.%d.attn_q.weight", il);
        ADD(W_TERNARY, p->type, H, Dkv, "blk.%d.attn_k.weight", il);
        ADD(W_TERNARY, p->type, H, Dkv, "blk.%d.attn_v.weight", il);
        if (sub) ADD(W_SUBNORM, BN_TYPE_F32, H, 1, "blk.%d.attn_sub_norm.weight", il);
        ADD(W_TERNARY, p->type, H, H, "blk.%d.attn_output.weight", il);
        ADD(W_GAMMA, BN_TYPE_F32, H, 1, "blk.%d.ffn_norm.weight", il);
        ADD(W_TERNARY, p->type, H, F, "blk.%d.ffn_gate.weight", il);
        ADD(W_TERNARY, p->type, H, F, "blk.%d.ffn_up.weight", il);
        if (sub) ADD(W_SUBNORM, BN_TYPE_F32, F, 1, "blk.%d.ffn_sub_norm.weight", il);
        ADD(W_TERNARY, p->type, F, H, "blk.%d.ffn_down.weight", il);
    }
#undef ADD
    return n;
}

static uint32_t file_type_of(uint32_t type) {
    switch (type) {
    case BN_TYPE_I2_S: return 40; /* bitnet.cpp's MOSTLY_I2_S */
    case BN_TYPE_TQ1_0: return 36;
    case BN_TYPE_TQ2_0: return 37;
    case BN_TYPE_BF16: return 32; /* llama.cpp's MOSTLY_BF16 */
    default: return 0;
    }
}

static bn_status write_metadata(bn_gguf_writer *w, const bn_synth_params *p, const vocab *v, bn_error *err) {
    const bn_synth_shape *s = p->shape;
    const char *a = bn_arch_name(p->arch);
    char key[128];
    bn_status st;
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
    char name[64];
    snprintf(name, sizeof name, "bitparity-synth-%s", s->name);
    if ((st = bn_gguf_writer_add_str(w, "general.architecture", a, err)) ||
        (st = bn_gguf_writer_add_str(w, "general.name", name, err)) ||
        (st = bn_gguf_writer_add_u32(w, "general.file_type", file_type_of(p->type), err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("vocab_size"), (uint32_t)s->n_vocab, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)s->n_ctx, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)s->n_embd, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)s->n_layer, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)s->n_ff, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("rope.dimension_count"), (uint32_t)(s->n_embd / s->n_head), err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)s->n_head, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv, err)) ||
        (st = bn_gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f, err)) ||
        (st = bn_gguf_writer_add_f32(w, KEY("rope.freq_base"), 500000.0f, err)))
        return st;
    if (p->arch == BN_ARCH_BITNET && (st = bn_gguf_writer_add_str(w, KEY("hidden_activation"), "relu2", err)))
        return st;
#undef KEY
    if ((st = bn_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", err)) ||
        (st = bn_gguf_writer_add_str(w, "tokenizer.ggml.pre", "llama-bpe", err)) ||
        (st = bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, (uint64_t)v->n,
                                         err)) ||
        (st = bn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, v->types, (uint64_t)v->n, err)) ||
        (st = bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                         (uint64_t)v->n_merges, err)) ||
        (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->n - 3, err)) ||
        (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->n - 2, err)) ||
        (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)v->n - 1, err)) ||
        (st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, err)) ||
        (st = bn_gguf_writer_add_u32(w, "general.quantization_version", 2, err)))
        return st;
    return BN_OK;
}

/* Elements generated and quantized per piece: bounds the memory of a
 * 2B-4T-sized model to a few MiB whatever its tensors' sizes. */
#define SYNTH_PIECE_ELEMS ((int64_t)1 << 20)

/* Streams one tensor in pieces of whole rows. Every type but I2_S quantizes
 * row by row, so a piece's bytes are the tensor's bytes of those rows. I2_S
 * keeps one scale (max|w|) after all the codes, and its codes depend only on
 * each weight's sign and |w| < 1e-6 (never on the scale's value, when it is
 * not 0: docs/specs/i2s.md): a piece is quantized alone, its codes written,
 * and the tensor's scale — the largest of the pieces' — written last with
 * the 28 padding bytes, giving the whole-tensor quantizer's bytes. */
static bn_status write_tensor_streamed(bn_gguf_writer *w, const bn_synth_params *p, const tensor_spec *t,
                                       uint64_t index, float *vals, uint8_t *bytes, size_t bytes_cap,
                                       bn_error *err) {
    const int64_t rows_per_piece = t->ne0 >= SYNTH_PIECE_ELEMS ? 1 : SYNTH_PIECE_ELEMS / t->ne0;
    const bool i2s = t->type == BN_TYPE_I2_S;
    filler f = filler_start(t, p->seed, index, p->shape->dense_draws);
    float scale = 0.0f;
    bn_status st = BN_OK;
    for (int64_t row = 0; row < t->ne1 && !st; row += rows_per_piece) {
        const int64_t rows = t->ne1 - row < rows_per_piece ? t->ne1 - row : rows_per_piece;
        uint64_t nbytes;
        if ((st = bn_type_tensor_nbytes(t->type, t->ne0, rows * t->ne0, &nbytes, err))) break;
        if ((st = bn_cancel_check(p->cancel, err))) break;
        fill_next(&f, rows * t->ne0, vals);
        if ((st = bn_quantize(t->type, vals, t->ne0, rows, bytes, bytes_cap, err))) break;
        if (i2s) {
            float piece_scale;
            nbytes = (uint64_t)(rows * t->ne0 / 4);
            memcpy(&piece_scale, bytes + nbytes, sizeof piece_scale);
            if (piece_scale > scale) scale = piece_scale;
        }
        st = bn_gguf_writer_write_tensor_part(w, bytes, nbytes, err);
    }
    if (!st && i2s) {
        uint8_t tail[32] = {0};
        memcpy(tail, &scale, sizeof scale);
        st = bn_gguf_writer_write_tensor_part(w, tail, sizeof tail, err);
    }
    return st;
}

static bn_status write_tensors(bn_gguf_writer *w, const bn_synth_params *p, const tensor_spec *ts, int n,
                               bn_error *err) {
    bn_status st = BN_OK;
    for (int i = 0; i < n && !st; i++) {
        const int64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        st = bn_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].ne1 > 1 ? 2 : 1, ne, err);
    }
    int64_t max_ne0 = 0;
    for (int i = 0; i < n; i++)
        if (ts[i].ne0 > max_ne0) max_ne0 = ts[i].ne0;
    /* a piece holds at most max(SYNTH_PIECE_ELEMS, one row) elements; 4 bytes
     * each is more than any type needs, + the I2_S tail */
    const size_t piece = (size_t)(max_ne0 > SYNTH_PIECE_ELEMS ? max_ne0 : SYNTH_PIECE_ELEMS);
    float *vals = st ? NULL : malloc(piece * sizeof *vals);
    const size_t bytes_cap = piece * sizeof(float) + 32;
    uint8_t *bytes = st ? NULL : malloc(bytes_cap);
    if (!st && (!vals || !bytes))
        st = bn_error_nomem(err, (unsigned long long)(piece * sizeof *vals + bytes_cap), "synth: the tensor pieces");
    uint64_t written = 0;
    for (int i = 0; i < n && !st; i++) {
        bn_progress_report(&p->progress, &(bn_progress){"writing", "tensors", i, n, written});
        uint64_t nbytes = 0;
        st = bn_type_tensor_nbytes(ts[i].type, ts[i].ne0, ts[i].ne0 * ts[i].ne1, &nbytes, err);
        if (!st) st = write_tensor_streamed(w, p, &ts[i], (uint64_t)i, vals, bytes, bytes_cap, err);
        written += nbytes;
    }
    if (!st) bn_progress_report(&p->progress, &(bn_progress){"writing", "tensors", n, n, written});
    free(vals), free(bytes);
    return st;
}

bn_status bn_synth_write(const bn_synth_params *p, const char *path, bn_error *err) {
    const bn_synth_shape *s = p->shape;
    if (!s) return bn_error_set(err, BN_ERR_INVALID, "synth: no shape given");
    if (p->type != BN_TYPE_F32 && p->type != BN_TYPE_BF16 && p->type != BN_TYPE_I2_S && p->type != BN_TYPE_TQ2_0 &&
        p->type != BN_TYPE_TQ1_0)
        return bn_error_set(err, BN_ERR_INVALID, "synth: --type must be f32, bf16, i2_s, tq2_0 or tq1_0");
    if (p->arch == BN_ARCH_LLAMA && p->type != BN_TYPE_F32)
        return bn_error_set(err, BN_ERR_INVALID, "synth: the llama arch takes --type f32 only");
    if (p->embd_type_given && p->embd_type != BN_TYPE_F16 && p->embd_type != BN_TYPE_F32)
        return bn_error_set(err, BN_ERR_INVALID, "synth: the token embedding type must be f16 or f32, not %s",
                            bn_type_name(p->embd_type));
    if (p->arch == BN_ARCH_LLAMA && p->embd_type_given && p->embd_type != BN_TYPE_F32)
        return bn_error_set(err, BN_ERR_INVALID, "synth: the llama arch takes an f32 token embedding only");
    if ((p->type == BN_TYPE_TQ1_0 || p->type == BN_TYPE_TQ2_0) && (s->n_ff % 256 || s->n_embd % 256))
        return bn_error_set(err, BN_ERR_INVALID, "synth: shape %s has rows that are not multiples of 256: %s needs them",
                            s->name, bn_type_name(p->type));
    vocab v = {0};
    tensor_spec *ts = calloc((size_t)(2 + 11 * s->n_layer), sizeof *ts);
    bn_gguf_writer *w = NULL;
    bn_status st = ts ? vocab_build(&v, s->n_vocab, err)
                      : bn_error_nomem(err, (unsigned long long)(2 + 11 * s->n_layer) * sizeof *ts, "synth: the tensor list");
    if (!st) st = bn_gguf_writer_open(path, 3, &w, err);
    if (!st) bn_gguf_writer_set_cancel(w, p->cancel);
    if (!st) st = write_metadata(w, p, &v, err);
    if (!st) st = write_tensors(w, p, ts, plan_tensors(p, ts), err);
    if (!st) {
        st = bn_gguf_writer_close(w, err);
        w = NULL;
    }
    if (w) bn_gguf_writer_abort(w);
    vocab_free(&v);
    free(ts);
    return st;
}
