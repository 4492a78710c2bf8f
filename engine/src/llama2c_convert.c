/* llama2c_convert.c — llama2.c checkpoints (Karpathy's run.c format) to a
 * GGUF of the llama architecture with a SentencePiece-style vocabulary
 * (docs/specs/llama2c.md has the format). Weights are copied as they
 * are: llama2.c stores every matrix output-major, which is GGUF's
 * ne = [in, out] layout, and uses the interleaved (normal) RoPE of llama. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bitnet/convert.h"
#include "bitnet/tokenizer.h"
#include "bitnet/gguf.h"
#include "bitnet/quant.h"
#include "tokenizer_internal.h"

typedef struct l2c_config {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    bool shared_classifier;
} l2c_config;

static bn_status read_file(const char *path, uint8_t **buf, size_t *size, size_t max, bn_error *err) {
    struct stat stt;
    if (stat(path, &stt) != 0) return bn_error_set(err, BN_ERR_IO, "%s: cannot open", path);
    if ((uint64_t)stt.st_size > max)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %lld bytes is larger than the %zu this converter accepts", path,
                            (long long)stt.st_size, max);
    FILE *f = fopen(path, "rb");
    if (!f) return bn_error_set(err, BN_ERR_IO, "%s: cannot open", path);
    *size = (size_t)stt.st_size;
    *buf = malloc(*size ? *size : 1);
    bn_status st = BN_OK;
    if (!*buf) st = bn_error_nomem(err, (unsigned long long)*size, "%s: the file's contents", path);
    else if (fread(*buf, 1, *size, f) != *size) st = bn_error_set(err, BN_ERR_IO, "%s: read failed", path);
    fclose(f);
    if (st) free(*buf), *buf = NULL;
    return st;
}

/* Element counts of the checkpoint's arrays, in file order. */
enum { T_EMB, T_RMS_ATT, T_WQ, T_WK, T_WV, T_WO, T_RMS_FFN, T_W1, T_W2, T_W3, T_RMS_FINAL, T_FREQ, T_WCLS, T_COUNT };

static bn_status parse_config(const uint8_t *buf, size_t size, const char *path, l2c_config *c, uint64_t counts[T_COUNT],
                              bn_error *err) {
    if (size < 28) return bn_error_set(err, BN_ERR_FORMAT, "%s: %zu bytes is too short for the 28-byte header", path, size);
    int32_t h[7];
    memcpy(h, buf, sizeof h);
    /* vocab_size < 0 means a separate classifier; INT32_MIN has no positive
     * twin and is as implausible as 0 */
    const int32_t vocab = h[5] == INT32_MIN ? 0 : h[5] < 0 ? -h[5] : h[5];
    *c = (l2c_config){h[0], h[1], h[2], h[3], h[4], vocab, h[6], h[5] > 0};
    const char *names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    const int32_t vals[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len};
    for (int i = 0; i < 7; i++)
        if (vals[i] <= 0 || vals[i] > (1 << 20))
            return bn_error_set(err, BN_ERR_FORMAT, "%s: header field %s = %d is not a plausible value", path, names[i], h[i]);
    if (c->dim % c->n_heads || c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: dim %d, n_heads %d, n_kv_heads %d do not divide evenly", path, c->dim,
                            c->n_heads, c->n_kv_heads);
    const uint64_t L = (uint64_t)c->n_layers, D = (uint64_t)c->dim, Hd = (uint64_t)c->hidden_dim,
                   V = (uint64_t)c->vocab_size, kv = D / (uint64_t)c->n_heads * (uint64_t)c->n_kv_heads,
                   hs = D / (uint64_t)c->n_heads;
    const uint64_t n[T_COUNT] = {V * D,  L * D,  L * D * D,  L * D * kv, L * D * kv, L * D * D, L * D,
                                 L * Hd * D, L * D * Hd, L * Hd * D, D, (uint64_t)c->seq_len * hs, c->shared_classifier ? 0 : V * D};
    /* Each count is below 2^61, but their sum times 4 can pass 2^64 and wrap
     * onto the real file size (dim = n_layers = 2^20 do it with a 4 MB file):
     * stop summing before the byte count would overflow. */
    const uint64_t max_total = (UINT64_MAX - 28) / 4;
    uint64_t total = 0;
    bool huge = false;
    for (int i = 0; i < T_COUNT; i++) {
        counts[i] = n[i];
        if (n[i] > max_total - total) huge = true;
        else total += n[i];
    }
    if (huge || 28 + total * 4 != size) {
        char implied[32] = "more than 2^64";
        if (!huge) snprintf(implied, sizeof implied, "%llu", (unsigned long long)(28 + total * 4));
        return bn_error_set(err, BN_ERR_FORMAT,
                            "%s: the header (dim %d, hidden %d, %d layers, %d heads, %d kv heads, vocab %d, seq %d) "
                            "implies %s bytes but the file has %zu",
                            path, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
                            c->seq_len, implied, size);
    }
    return BN_OK;
}

/* tok512.bin: int32 max_token_length, then per token float score, int32
 * length, bytes. Spaces become U+2581 as in SentencePiece vocabularies. */
typedef struct l2c_vocab {
    char **tokens;
    float *scores;
    int32_t *types;
    int32_t n;
} l2c_vocab;

static void vocab_free(l2c_vocab *v) {
    for (int32_t i = 0; v->tokens && i < v->n; i++) free(v->tokens[i]);
    free(v->tokens), free(v->scores), free(v->types);
}

static int32_t token_type(int32_t id, const char *s, size_t len) {
    if (id == 0) return 2;                          /* <unk> */
    if (id == 1 || id == 2) return 3;               /* <s>, </s>: control */
    if (bn_token_byte_value(s, len) >= 0) return 6; /* byte fallback; "<0x9N>" is a normal token */
    return 1;
}

static bn_status parse_vocab(const uint8_t *buf, size_t size, const char *path, int32_t n, l2c_vocab *v, bn_error *err) {
    v->n = n;
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->scores = malloc((size_t)n * sizeof *v->scores);
    v->types = malloc((size_t)n * sizeof *v->types);
    if (!v->tokens || !v->scores || !v->types)
        return bn_error_nomem(err, (unsigned long long)n * (sizeof *v->tokens + sizeof *v->scores + sizeof *v->types),
                              "%s: the tables of %d tokens", path, n);
    size_t off = 4;
    for (int32_t i = 0; i < n; i++) {
        int32_t len;
        if (off + 8 > size) return bn_error_set(err, BN_ERR_FORMAT, "%s: truncated at token %d (byte offset %zu)", path, i, off);
        memcpy(&v->scores[i], buf + off, 4);
        memcpy(&len, buf + off + 4, 4);
        off += 8;
        if (len < 0 || (size_t)len > size - off)
            return bn_error_set(err, BN_ERR_FORMAT, "%s: token %d claims %d bytes at byte offset %zu", path, i, len, off - 4);
        /* GGUF strings are UTF-8, and the tokens are kept as C strings: refuse
         * what the tokenizer would later reject or what would be cut short. */
        for (size_t k = 0; k < (size_t)len;) {
            uint32_t cp;
            const size_t n_cp = utf8_get(buf + off + k, (size_t)len - k, &cp);
            if (!n_cp || cp == 0)
                return bn_error_set(err, BN_ERR_FORMAT, "%s: token %d: %s at byte offset %zu", path, i,
                                    n_cp ? "a NUL byte" : "not valid UTF-8", off + k);
            k += n_cp;
        }
        char *t = malloc((size_t)len * 3 + 1), *o = t;
        if (!t) return bn_error_nomem(err, (unsigned long long)len * 3 + 1, "%s: token %d", path, i);
        for (int32_t k = 0; k < len; k++) {
            if (buf[off + k] == ' ') memcpy(o, "\xe2\x96\x81", 3), o += 3;
            else *o++ = (char)buf[off + k];
        }
        *o = '\0';
        v->tokens[i] = t;
        v->types[i] = token_type(i, (const char *)buf + off, (size_t)len);
        off += (size_t)len;
    }
    if (off != size)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %zu trailing bytes after %d tokens", path, size - off, n);
    return BN_OK;
}

static bn_status write_kv(bn_gguf_writer *w, const l2c_config *c, const l2c_vocab *v, bn_error *err) {
    bn_status st;
    if ((st = bn_gguf_writer_add_str(w, "general.architecture", "llama", err)) ||
        (st = bn_gguf_writer_add_str(w, "general.name", "llama2.c checkpoint", err)) ||
        (st = bn_gguf_writer_add_u32(w, "llama.context_length", (uint32_t)c->seq_len, err)) ||
        (st = bn_gguf_writer_add_u32(w, "llama.embedding_length", (uint32_t)c->dim, err)) ||
        (st = bn_gguf_writer_add_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim, err)) ||
        (st = bn_gguf_writer_add_u32(w, "llama.block_count", (uint32_t)c->n_layers, err)) ||
        (st = bn_gguf_writer_add_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads, err)) ||
        (st = bn_gguf_writer_add_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads, err)) ||
        (st = bn_gguf_writer_add_u32(w, "llama.rope.dimension_count", (uint32_t)(c->dim / c->n_heads), err)) ||
        (st = bn_gguf_writer_add_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size, err)) ||
        (st = bn_gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, err)) ||
        (st = bn_gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f, err)) ||
        (st = bn_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama", err)) ||
        (st = bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, (uint64_t)v->n, err)) ||
        (st = bn_gguf_writer_add_arr(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, v->scores, (uint64_t)v->n, err)) ||
        (st = bn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, v->types, (uint64_t)v->n, err)) ||
        (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0, err)) ||
        (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1, err)) ||
        (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2, err)) ||
        (st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, err)) ||
        (st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false, err)))
        return st;
    return BN_OK;
}

/* The tensors in GGUF order, each pointing at its slice of the checkpoint. */
typedef struct l2c_tensor {
    char name[48];
    int64_t ne[2];
    uint32_t n_dims;
    const float *data;
} l2c_tensor;

static int plan(const l2c_config *c, const float *base, const uint64_t counts[T_COUNT], l2c_tensor *t) {
    const float *arr[T_COUNT];
    const float *p = base;
    for (int i = 0; i < T_COUNT; i++) arr[i] = p, p += counts[i];
    const int64_t D = c->dim, Hd = c->hidden_dim, V = c->vocab_size, kv = D / c->n_heads * c->n_kv_heads;
    int n = 0;
#define ADD(ne0, ne1, ptr, ...) \
    (snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__), t[n].ne[0] = ne0, t[n].ne[1] = ne1, t[n].n_dims = (ne1) > 1 ? 2 : 1, t[n].data = ptr, n++)
    ADD(D, V, arr[T_EMB], "token_embd.weight");
    ADD(D, 1, arr[T_RMS_FINAL], "output_norm.weight");
    if (!c->shared_classifier) ADD(D, V, arr[T_WCLS], "output.weight");
    for (int64_t l = 0; l < c->n_layers; l++) {
        ADD(D, 1, arr[T_RMS_ATT] + l * D, "blk.%d.attn_norm.weight", (int)l);
        ADD(D, D, arr[T_WQ] + l * D * D, "blk.%d.attn_q.weight", (int)l);
        ADD(D, kv, arr[T_WK] + l * D * kv, "blk.%d.attn_k.weight", (int)l);
        ADD(D, kv, arr[T_WV] + l * D * kv, "blk.%d.attn_v.weight", (int)l);
        ADD(D, D, arr[T_WO] + l * D * D, "blk.%d.attn_output.weight", (int)l);
        ADD(D, 1, arr[T_RMS_FFN] + l * D, "blk.%d.ffn_norm.weight", (int)l);
        ADD(D, Hd, arr[T_W1] + l * Hd * D, "blk.%d.ffn_gate.weight", (int)l);
        ADD(Hd, D, arr[T_W2] + l * D * Hd, "blk.%d.ffn_down.weight", (int)l);
        ADD(D, Hd, arr[T_W3] + l * Hd * D, "blk.%d.ffn_up.weight", (int)l);
    }
#undef ADD
    return n;
}

bn_status bn_llama2c_convert(const char *ckpt_path, const char *tok_path, const char *out_path,
                             const volatile sig_atomic_t *cancel, bn_error *err) {
    uint8_t *ck = NULL, *tk = NULL;
    size_t ck_size = 0, tk_size = 0;
    l2c_config c = {0};
    uint64_t counts[T_COUNT] = {0};
    l2c_vocab v = {0};
    l2c_tensor *t = NULL;
    bn_gguf_writer *w = NULL;
    bn_status st = read_file(ckpt_path, &ck, &ck_size, (size_t)1 << 34, err);
    if (!st) st = parse_config(ck, ck_size, ckpt_path, &c, counts, err);
    if (!st) st = read_file(tok_path, &tk, &tk_size, (size_t)1 << 28, err);
    if (!st) st = parse_vocab(tk, tk_size, tok_path, c.vocab_size, &v, err);
    if (!st && !(t = calloc((size_t)(3 + 9 * c.n_layers), sizeof *t)))
        st = bn_error_nomem(err, (unsigned long long)(3 + 9 * c.n_layers) * sizeof *t, "%s: the tensor list",
                            ckpt_path);
    /* The weights start right after the 28-byte header: copy them out
     * aligned rather than read floats through an unaligned pointer. */
    float *weights = NULL;
    if (!st && !(weights = malloc(ck_size - 28)))
        st = bn_error_nomem(err, (unsigned long long)(ck_size - 28), "%s: the weights", ckpt_path);
    if (!st) memcpy(weights, ck + 28, ck_size - 28);
    const int n = st ? 0 : plan(&c, weights, counts, t);
    if (!st) st = bn_cancel_check(cancel, err);
    if (!st) st = bn_gguf_writer_open(out_path, 3, &w, err);
    if (!st) bn_gguf_writer_set_cancel(w, cancel);
    if (!st) st = write_kv(w, &c, &v, err);
    for (int i = 0; i < n && !st; i++) st = bn_gguf_writer_add_tensor(w, t[i].name, BN_TYPE_F32, t[i].n_dims, t[i].ne, err);
    for (int i = 0; i < n && !st; i++)
        st = bn_gguf_writer_write_tensor(w, t[i].data, (uint64_t)(t[i].ne[0] * t[i].ne[1]) * 4, err);
    if (!st) st = bn_gguf_writer_close(w, err), w = NULL;
    if (w) bn_gguf_writer_abort(w);
    free(weights), free(t), free(ck), free(tk);
    vocab_free(&v);
    return st;
}
