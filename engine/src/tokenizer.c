/* tokenizer.c — loading a vocabulary from GGUF metadata, special tokens,
 * decoding, the chat template. The two encoders live in tokenizer_bpe.c and
 * tokenizer_spm.c; behaviour follows llama.cpp's llama-vocab.cpp so that
 * token ids agree with bitnet.cpp / llama.cpp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_SCORES "tokenizer.ggml.scores"

/* ------------------------------------------------------------------ */
/* small helpers                                                      */

bn_status id_vec_push(id_vec *o, int32_t id, bn_error *err) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *v = realloc(o->v, cap * sizeof *v);
        if (!v) return bn_error_nomem(err, cap * sizeof *v, "tokenizer: a list of %zu token ids", cap);
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return BN_OK;
}

size_t utf8_get(const uint8_t *s, size_t n, uint32_t *cp) {
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (n == 0) return 0;
    uint8_t c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    uint32_t v = len == 1 ? c : (uint32_t)(c & (0x7F >> len));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min_cp[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* FNV-1a: token strings are short, so a byte loop is cheap enough. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static inline size_t str_len(const uint64_t *off, int32_t i) { return (size_t)(off[i + 1] - off[i] - 1); }

int32_t tok_map_get(const tok_map *m, const char *text, const uint64_t *off, const char *s, size_t len) {
    for (uint64_t i = hash_bytes(s, len) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slot[i];
        if (id < 0) return -1;
        if (str_len(off, id) == len && !memcmp(text + off[id], s, len)) return id;
    }
}

int32_t tok_map_find(const bn_tokenizer *tok, const char *s, size_t len) {
    return tok_map_get(&tok->map, tok->text, tok->text_off, s, len);
}

bn_status tok_map_build(tok_map *m, const char *text, const uint64_t *off, int32_t n, bn_error *err) {
    uint64_t cap = pow2_at_least((uint64_t)n * 2);
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot)
        return bn_error_nomem(err, cap * sizeof *m->slot, "tokenizer: the map of %d token texts", (int)n);
    memset(m->slot, 0xFF, cap * sizeof *m->slot);
    m->mask = cap - 1;
    for (int32_t id = 0; id < n; id++) {
        const char *s = text + off[id];
        size_t len = str_len(off, id);
        for (uint64_t i = hash_bytes(s, len) & m->mask;; i = (i + 1) & m->mask) {
            int32_t o = m->slot[i];
            if (o < 0 || (str_len(off, o) == len && !memcmp(text + off[o], s, len))) {
                m->slot[i] = id;
                break;
            }
        }
    }
    return BN_OK;
}

/* ------------------------------------------------------------------ */
/* loading                                                            */

typedef struct load_ctx {
    const bn_gguf *g;
    const char *path;
    bn_tokenizer *tok;
    bn_error *err;
} load_ctx;

/* Optional integer key; absent keeps *v. Range-checked against [lo, hi]. */
static bn_status opt_int(load_ctx *c, const char *key, int64_t lo, int64_t hi, int64_t *v) {
    int64_t x;
    bn_status st = bn_gguf_get_int(c->g, key, &x, c->err);
    if (st == BN_ERR_NOT_FOUND) {
        bn_error_clear(c->err);
        return BN_OK;
    }
    if (st != BN_OK) return st;
    if (x < lo || x > hi)
        return bn_error_set(c->err, BN_ERR_FORMAT, "%s: %s: %lld is out of range [%lld, %lld]", c->path,
                            key, (long long)x, (long long)lo, (long long)hi);
    *v = x;
    return BN_OK;
}

static bn_status opt_bool(load_ctx *c, const char *key, bool *v) {
    int64_t x = *v;
    bn_status st = opt_int(c, key, 0, 1, &x);
    *v = x != 0;
    return st;
}

static bn_status opt_id(load_ctx *c, const char *key, int32_t *id) {
    int64_t x = *id;
    bn_status st = opt_int(c, key, 0, c->tok->n_vocab - 1, &x);
    *id = (int32_t)x;
    return st;
}

/* Optional array of n_vocab elements; *kv = -1 when absent. */
static bn_status opt_vocab_arr(load_ctx *c, const char *key, bn_gguf_vtype type, int64_t *kv) {
    uint64_t count;
    bn_status st = bn_gguf_get_arr(c->g, key, type, kv, &count, c->err);
    if (st == BN_ERR_NOT_FOUND) {
        bn_error_clear(c->err);
        *kv = -1;
        return BN_OK;
    }
    if (st != BN_OK) return st;
    if (count != (uint64_t)c->tok->n_vocab)
        return bn_error_set(c->err, BN_ERR_FORMAT, "%s: %s: %llu elements but %s has %d", c->path, key,
                            (unsigned long long)count, KEY_TOKENS, c->tok->n_vocab);
    return BN_OK;
}

static bn_status load_kind(load_ctx *c) {
    bn_gguf_str s;
    bn_status st = bn_gguf_get_str(c->g, KEY_MODEL, &s, c->err);
    if (st == BN_ERR_NOT_FOUND)
        return bn_error_set(c->err, BN_ERR_NOT_FOUND, "%s: %s: missing (the file has no vocabulary)",
                            c->path, KEY_MODEL);
    if (st != BN_OK) return st;
    if (s.len == 4 && !memcmp(s.ptr, "gpt2", 4))
        c->tok->kind = BN_VOCAB_BPE;
    else if (s.len == 5 && !memcmp(s.ptr, "llama", 5))
        c->tok->kind = BN_VOCAB_SPM;
    else
        return bn_error_set(c->err, BN_ERR_UNSUPPORTED,
                            "%s: %s: unknown tokenizer model '%.*s' (supported: gpt2, llama)", c->path,
                            KEY_MODEL, (int)(s.len > 64 ? 64 : s.len), s.ptr);
    strcpy(c->tok->pre, "default");
    st = bn_gguf_get_str(c->g, KEY_PRE, &s, c->err);
    if (st == BN_ERR_NOT_FOUND) {
        bn_error_clear(c->err);
        return BN_OK;
    }
    if (st != BN_OK) return st;
    if (s.len >= sizeof c->tok->pre || memchr(s.ptr, 0, s.len))
        return bn_error_set(c->err, BN_ERR_UNSUPPORTED, "%s: %s: unsupported pre-tokenizer '%.*s'",
                            c->path, KEY_PRE, (int)(s.len > 64 ? 64 : s.len), s.ptr);
    memcpy(c->tok->pre, s.ptr, s.len);
    c->tok->pre[s.len] = 0;
    return BN_OK;
}

/* Copies every token string into one arena and checks it is UTF-8. */
static bn_status load_tokens(load_ctx *c) {
    int64_t kv;
    uint64_t count;
    bn_status st = bn_gguf_get_arr(c->g, KEY_TOKENS, BN_GGUF_STRING, &kv, &count, c->err);
    if (st == BN_ERR_NOT_FOUND)
        return bn_error_set(c->err, BN_ERR_FORMAT, "%s: %s: missing", c->path, KEY_TOKENS);
    if (st != BN_OK) return st;
    if (count == 0 || count > INT32_MAX / 2)
        return bn_error_set(c->err, BN_ERR_FORMAT, "%s: %s: %llu tokens", c->path, KEY_TOKENS,
                            (unsigned long long)count);
    bn_tokenizer *tok = c->tok;
    tok->n_vocab = (int32_t)count;
    tok->text_off = malloc((count + 1) * sizeof *tok->text_off);
    if (!tok->text_off)
        return bn_error_nomem(c->err, (count + 1) * sizeof *tok->text_off, "%s: the offsets of %llu tokens", c->path,
                              (unsigned long long)count);
    uint64_t total = 0; /* bounded by the file size, which the reader validated */
    for (uint64_t i = 0; i < count; i++) {
        tok->text_off[i] = total;
        total += bn_gguf_kv_str(c->g, kv, i).len + 1;
    }
    tok->text_off[count] = total;
    tok->text = malloc(total);
    if (!tok->text) return bn_error_nomem(c->err, total, "%s: the token texts", c->path);
    for (uint64_t i = 0; i < count; i++) {
        bn_gguf_str s = bn_gguf_kv_str(c->g, kv, i);
        char *d = tok->text + tok->text_off[i];
        memcpy(d, s.ptr, s.len);
        d[s.len] = 0;
        for (size_t k = 0; k < s.len;) {
            uint32_t cp;
            size_t n = utf8_get((const uint8_t *)d + k, s.len - k, &cp);
            if (!n || cp == 0)
                return bn_error_set(c->err, BN_ERR_FORMAT,
                                    "%s: %s[%llu]: not valid UTF-8 (byte %zu of the string)", c->path,
                                    KEY_TOKENS, (unsigned long long)i, k);
            k += n;
        }
    }
    return BN_OK;
}

static bn_status load_types_scores(load_ctx *c) {
    bn_tokenizer *tok = c->tok;
    int64_t kv_t, kv_s;
    bn_status st = opt_vocab_arr(c, KEY_TYPES, BN_GGUF_VTYPE_COUNT, &kv_t);
    if (st == BN_OK) st = opt_vocab_arr(c, KEY_SCORES, BN_GGUF_FLOAT32, &kv_s);
    if (st != BN_OK) return st;
    tok->type = malloc((size_t)tok->n_vocab);
    tok->score = calloc((size_t)tok->n_vocab, sizeof *tok->score);
    if (!tok->type || !tok->score)
        return bn_error_nomem(c->err, (unsigned long long)tok->n_vocab * (1 + sizeof *tok->score),
                              "%s: the token types and scores", c->path);
    bn_gguf_vtype et = kv_t >= 0 ? bn_gguf_kv_elem_type(c->g, kv_t) : BN_GGUF_INT32;
    if (et == BN_GGUF_STRING || et == BN_GGUF_FLOAT32 || et == BN_GGUF_FLOAT64 || et == BN_GGUF_ARRAY)
        return bn_error_set(c->err, BN_ERR_FORMAT, "%s: %s: array of %s, expected integers", c->path,
                            KEY_TYPES, bn_gguf_vtype_name(et));
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        int64_t t = kv_t >= 0 ? bn_gguf_kv_int(c->g, kv_t, (uint64_t)i) : BN_TOKEN_NORMAL;
        if (t < BN_TOKEN_UNDEFINED || t > BN_TOKEN_BYTE)
            return bn_error_set(c->err, BN_ERR_FORMAT, "%s: %s[%d]: unknown token type %lld", c->path,
                                KEY_TYPES, i, (long long)t);
        tok->type[i] = (uint8_t)t;
        if (kv_s >= 0) tok->score[i] = (float)bn_gguf_kv_float(c->g, kv_s, (uint64_t)i);
    }
    return BN_OK;
}

/* Special ids, flags, and the defaults llama.cpp applies per kind. */
static bn_status load_specials(load_ctx *c) {
    bn_tokenizer *tok = c->tok;
    bool spm = tok->kind == BN_VOCAB_SPM;
    bool llama3 = !strcmp(tok->pre, "llama-bpe") || !strcmp(tok->pre, "llama3") ||
                  !strcmp(tok->pre, "llama-v3");
    tok->bos = spm && tok->n_vocab > 1 ? 1 : -1;
    tok->eos = spm && tok->n_vocab > 2 ? 2 : -1;
    tok->unk = spm ? 0 : -1;
    tok->eot = tok->pad = -1;
    tok->add_bos = spm || llama3;
    tok->add_eos = false;
    tok->add_space_prefix = spm;
    tok->ignore_merges = llama3;
    bn_status st = opt_id(c, "tokenizer.ggml.bos_token_id", &tok->bos);
    if (st == BN_OK) st = opt_id(c, "tokenizer.ggml.eos_token_id", &tok->eos);
    if (st == BN_OK) st = opt_id(c, "tokenizer.ggml.eot_token_id", &tok->eot);
    if (st == BN_OK) st = opt_id(c, "tokenizer.ggml.unknown_token_id", &tok->unk);
    if (st == BN_OK) st = opt_id(c, "tokenizer.ggml.padding_token_id", &tok->pad);
    if (st == BN_OK) st = opt_bool(c, "tokenizer.ggml.add_bos_token", &tok->add_bos);
    if (st == BN_OK) st = opt_bool(c, "tokenizer.ggml.add_eos_token", &tok->add_eos);
    if (st == BN_OK) st = opt_bool(c, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix);
    if (st != BN_OK) return st;
    static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>"};
    for (size_t i = 0; tok->eot < 0 && i < sizeof eot_names / sizeof eot_names[0]; i++)
        tok->eot = tok_map_find(tok, eot_names[i], strlen(eot_names[i]));
    return BN_OK;
}

/* Parses "<0xXX>"; -1 when the string has another form. */
int bn_token_byte_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char h = s[i];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'A' && h <= 'F' ? h - 'A' + 10
                : h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Byte tokens: BPE's single mapped bytes, SPM's <0xXX> (falling back to the
 * one-byte string, as llama.cpp's byte_to_token does). */
static void load_byte_ids(bn_tokenizer *tok) {
    for (int b = 0; b < 256; b++) {
        char s[8];
        if (tok->kind == BN_VOCAB_BPE) {
            tok->byte_id[b] = tok_map_find(tok, s, utf8_put(s, gpt2_byte_to_cp((uint8_t)b)));
        } else {
            snprintf(s, sizeof s, "<0x%02X>", b);
            int32_t id = tok_map_find(tok, s, 6);
            s[0] = (char)b;
            tok->byte_id[b] = id >= 0 ? id : tok_map_find(tok, s, 1);
        }
    }
}

/* The decoded bytes of one token into dst (room for text_len bytes, which
 * always suffices: decoding never lengthens a string). */
static bn_status decode_one(load_ctx *c, int32_t id, char *dst, size_t *n) {
    bn_tokenizer *tok = c->tok;
    const char *s = tok->text + tok->text_off[id];
    size_t len = tok_text_len(tok, id);
    int type = tok->type[id];
    *n = 0;
    if (type == BN_TOKEN_CONTROL || type == BN_TOKEN_UNKNOWN || type == BN_TOKEN_USER_DEFINED) {
        memcpy(dst, s, len);
        *n = len;
    } else if (type == BN_TOKEN_BYTE && tok->kind == BN_VOCAB_SPM) {
        int b = bn_token_byte_value(s, len);
        if (b < 0)
            return bn_error_set(c->err, BN_ERR_FORMAT, "%s: %s[%d]: byte token '%s' is not of the form <0xXX>",
                                c->path, KEY_TOKENS, id, s);
        dst[(*n)++] = (char)b;
    } else if (type == BN_TOKEN_NORMAL) {
        for (size_t k = 0; k < len;) {
            uint32_t cp;
            size_t m = utf8_get((const uint8_t *)s + k, len - k, &cp);
            int b = tok->kind == BN_VOCAB_BPE ? gpt2_cp_to_byte(cp) : -1;
            if (b >= 0)
                dst[(*n)++] = (char)b;
            else if (tok->kind == BN_VOCAB_SPM && cp == 0x2581)
                dst[(*n)++] = ' ';
            else /* outside GPT-2's byte image: kept as written */
                for (size_t j = 0; j < m; j++) dst[(*n)++] = s[k + j];
            k += m;
        }
    }
    return BN_OK;
}

static bn_status load_pieces(load_ctx *c) {
    bn_tokenizer *tok = c->tok;
    size_t cap = (size_t)tok->text_off[tok->n_vocab];
    tok->piece = malloc(cap);
    tok->piece_off = malloc(((size_t)tok->n_vocab + 1) * sizeof *tok->piece_off);
    if (!tok->piece || !tok->piece_off)
        return bn_error_nomem(c->err, cap + ((size_t)tok->n_vocab + 1) * sizeof *tok->piece_off,
                              "%s: the decoded token pieces", c->path);
    uint64_t at = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        size_t n;
        tok->piece_off[id] = at;
        bn_status st = decode_one(c, id, tok->piece + at, &n);
        if (st != BN_OK) return st;
        at += n;
    }
    tok->piece_off[tok->n_vocab] = at;
    return BN_OK;
}

typedef struct special_key {
    size_t len;
    int32_t id;
} special_key;

static int cmp_special(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Tokens the partition step looks for, longest first as in llama.cpp. */
static bn_status load_special_list(load_ctx *c) {
    bn_tokenizer *tok = c->tok;
    int32_t n = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        int t = tok->type[id];
        n += (t == BN_TOKEN_CONTROL || t == BN_TOKEN_USER_DEFINED || t == BN_TOKEN_UNKNOWN) && tok_text_len(tok, id) > 0;
    }
    special_key *keys = malloc(((size_t)n + 1) * sizeof *keys);
    tok->special = malloc(((size_t)n + 1) * sizeof *tok->special);
    if (!keys || !tok->special) {
        free(keys);
        return bn_error_nomem(c->err, ((size_t)n + 1) * (sizeof *keys + sizeof *tok->special),
                              "%s: the table of %d special tokens", c->path, (int)n);
    }
    n = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        int t = tok->type[id];
        if ((t == BN_TOKEN_CONTROL || t == BN_TOKEN_USER_DEFINED || t == BN_TOKEN_UNKNOWN) && tok_text_len(tok, id) > 0)
            keys[n++] = (special_key){tok_text_len(tok, id), id};
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_special);
    for (int32_t i = 0; i < n; i++) tok->special[i] = keys[i].id;
    tok->n_special = n;
    free(keys);
    return BN_OK;
}

bn_status bn_tokenizer_load(const bn_gguf *g, bn_tokenizer **out, bn_error *err) {
    *out = NULL;
    bn_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return bn_error_nomem(err, sizeof *tok, "%s: the tokenizer", bn_gguf_path(g));
    load_ctx c = {g, bn_gguf_path(g) ? bn_gguf_path(g) : "(gguf)", tok, err};
    bn_status st = load_kind(&c);
    if (st == BN_OK) st = load_tokens(&c);
    if (st == BN_OK) st = load_types_scores(&c);
    if (st == BN_OK) st = tok_map_build(&tok->map, tok->text, tok->text_off, tok->n_vocab, err);
    if (st == BN_OK) st = load_specials(&c);
    if (st == BN_OK && tok->kind == BN_VOCAB_BPE) st = bpe_load_merges(tok, g, c.path, err);
    if (st == BN_OK) st = load_pieces(&c);
    if (st == BN_OK) st = load_special_list(&c);
    if (st == BN_OK && tok->kind == BN_VOCAB_BPE && (st = bpe_compile(tok, err)) != BN_OK)
        bn_error_prefix(err, c.path);
    if (st == BN_OK) load_byte_ids(tok);
    if (st != BN_OK) {
        if (st == BN_ERR_INVALID) st = err->code = BN_ERR_FORMAT; /* a type mismatch in the file */
        bn_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return BN_OK;
}

void bn_tokenizer_free(bn_tokenizer *tok) {
    if (!tok) return;
    free(tok->text);
    free(tok->text_off);
    free(tok->piece);
    free(tok->piece_off);
    free(tok->type);
    free(tok->score);
    free(tok->map.slot);
    free(tok->pairs.key);
    free(tok->pairs.rank);
    free(tok->pairs.result);
    free(tok->special);
    pcre2_code_free(tok->re);
    free(tok);
}

/* ------------------------------------------------------------------ */
/* accessors                                                          */

bn_vocab_kind bn_tokenizer_kind(const bn_tokenizer *tok) { return tok->kind; }
const char *bn_tokenizer_pre(const bn_tokenizer *tok) { return tok->pre; }
int32_t bn_tokenizer_n_vocab(const bn_tokenizer *tok) { return tok->n_vocab; }
int32_t bn_tokenizer_n_merges(const bn_tokenizer *tok) { return tok->n_merges; }
bool bn_tokenizer_add_bos(const bn_tokenizer *tok) { return tok->add_bos; }
bool bn_tokenizer_add_eos(const bn_tokenizer *tok) { return tok->add_eos; }
int32_t bn_token_bos(const bn_tokenizer *tok) { return tok->bos; }
int32_t bn_token_eos(const bn_tokenizer *tok) { return tok->eos; }
int32_t bn_token_eot(const bn_tokenizer *tok) { return tok->eot; }
int32_t bn_token_unk(const bn_tokenizer *tok) { return tok->unk; }
int32_t bn_token_pad(const bn_tokenizer *tok) { return tok->pad; }

bool bn_token_is_eog(const bn_tokenizer *tok, int32_t id) {
    return id >= 0 && (id == tok->eos || id == tok->eot);
}

bn_token_type bn_token_type_of(const bn_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab) return BN_TOKEN_UNDEFINED;
    return (bn_token_type)tok->type[id];
}

const char *bn_token_text(const bn_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) return NULL;
    if (len) *len = tok_text_len(tok, id);
    return tok->text + tok->text_off[id];
}

int32_t bn_token_lookup(const bn_tokenizer *tok, const char *s, size_t len) {
    return tok_map_find(tok, s, len);
}

const char *bn_token_piece(const bn_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) return NULL;
    if (len) *len = (size_t)(tok->piece_off[id + 1] - tok->piece_off[id]);
    return tok->piece + tok->piece_off[id];
}

/* ------------------------------------------------------------------ */
/* encoding: special-token partition, then the kind's encoder          */

typedef struct frag {
    size_t off, len; /* raw text span when id < 0 */
    int32_t id;      /* a special token, or -1 */
} frag;

typedef struct frag_vec {
    frag *v;
    size_t n, cap;
} frag_vec;

static bn_status frag_push(frag_vec *f, frag x, bn_error *err) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        frag *v = realloc(f->v, cap * sizeof *v);
        if (!v) return bn_error_nomem(err, cap * sizeof *v, "tokenizer: the pieces of a text (%zu)", cap);
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = x;
    return BN_OK;
}

/* First occurrence of needle (n >= 1 bytes) in hay, or NULL. */
static const char *find_bytes(const char *hay, size_t len, const char *needle, size_t n) {
    const char *end = hay + len;
    for (const char *p = hay; (size_t)(end - p) >= n; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) - n + 1);
        if (!p) return NULL;
        if (!memcmp(p, needle, n)) return p;
    }
    return NULL;
}

/* Splits every raw fragment of *cur around occurrences of token id into *next. */
static bn_status split_on(const bn_tokenizer *tok, const char *text, int32_t id, frag_vec *cur,
                          frag_vec *next, bn_error *err) {
    const char *s = tok->text + tok->text_off[id];
    size_t n = tok_text_len(tok, id);
    next->n = 0;
    bn_status st = BN_OK;
    for (size_t i = 0; i < cur->n && st == BN_OK; i++) {
        frag f = cur->v[i];
        while (f.id < 0 && f.len >= n && st == BN_OK) {
            const char *hit = find_bytes(text + f.off, f.len, s, n);
            if (!hit) break;
            size_t at = (size_t)(hit - text);
            if (at > f.off) st = frag_push(next, (frag){f.off, at - f.off, -1}, err);
            if (st == BN_OK) st = frag_push(next, (frag){at, n, id}, err);
            f.len -= at + n - f.off;
            f.off = at + n;
        }
        if (st == BN_OK && (f.id >= 0 || f.len > 0)) st = frag_push(next, f, err);
    }
    return st;
}

static bn_status partition(const bn_tokenizer *tok, const char *text, size_t len, bool parse_special,
                           frag_vec *out, bn_error *err) {
    frag_vec tmp = {0};
    bn_status st = frag_push(out, (frag){0, len, -1}, err);
    for (int32_t k = 0; k < tok->n_special && st == BN_OK; k++) {
        int32_t id = tok->special[k];
        if (!parse_special && tok->type[id] != BN_TOKEN_USER_DEFINED) continue;
        st = split_on(tok, text, id, out, &tmp, err);
        frag_vec swap = *out;
        *out = tmp;
        tmp = swap;
    }
    free(tmp.v);
    return st;
}

bn_status bn_tokenize(const bn_tokenizer *tok, const char *text, size_t len, bool add_special,
                      bool parse_special, int32_t **ids, size_t *n_ids, bn_error *err) {
    *ids = NULL;
    *n_ids = 0;
    id_vec out = {0};
    frag_vec frags = {0};
    bn_status st = BN_OK;
    if (add_special && tok->add_bos && tok->bos >= 0) st = id_vec_push(&out, tok->bos, err);
    if (st == BN_OK && len > 0) st = partition(tok, text, len, parse_special, &frags, err);
    bool prev_special = true; /* SPM: the first fragment and those after a special get the prefix */
    for (size_t i = 0; i < frags.n && st == BN_OK; i++) {
        frag f = frags.v[i];
        if (f.id >= 0)
            st = id_vec_push(&out, f.id, err);
        else if (tok->kind == BN_VOCAB_BPE)
            st = bpe_encode(tok, text + f.off, f.len, &out, err);
        else
            st = spm_encode(tok, text + f.off, f.len, tok->add_space_prefix && prev_special, &out, err);
        prev_special = f.id >= 0;
    }
    if (st == BN_OK && add_special && tok->add_eos && tok->eos >= 0) st = id_vec_push(&out, tok->eos, err);
    free(frags.v);
    if (st != BN_OK) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return BN_OK;
}

/* ------------------------------------------------------------------ */
/* decoding                                                           */

typedef struct byte_buf {
    char *p;
    size_t n, cap;
} byte_buf;

static bn_status buf_put(byte_buf *b, const char *s, size_t n, bn_error *err) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return bn_error_nomem(err, cap, "tokenizer: the detokenized text");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return BN_OK;
}

bn_status bn_detokenize(const bn_tokenizer *tok, const int32_t *ids, size_t n_ids,
                        bool remove_special, bool render_special, char **text, size_t *len,
                        bn_error *err) {
    *text = NULL;
    *len = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return bn_error_set(err, BN_ERR_INVALID, "detokenize: ids[%zu] = %d is not in [0, %d)", i,
                                ids[i], tok->n_vocab);
    bool strip_space = tok->add_space_prefix; /* llama.cpp keeps it after a removed BOS */
    if (remove_special && tok->add_bos && n_ids > 0 && ids[0] == tok->bos) {
        strip_space = false;
        ids++;
        n_ids--;
    }
    if (remove_special && tok->add_eos && n_ids > 0 && ids[n_ids - 1] == tok->eos) n_ids--;
    byte_buf b = {0};
    bn_status st = buf_put(&b, "", 0, err);
    for (size_t i = 0; i < n_ids && st == BN_OK; i++) {
        int t = tok->type[ids[i]];
        size_t n = 0;
        const char *p = bn_token_piece(tok, ids[i], &n);
        if (!render_special && (t == BN_TOKEN_CONTROL || t == BN_TOKEN_UNKNOWN)) n = 0;
        if (strip_space && n > 0 && p[0] == ' ') {
            p++;
            n--;
        }
        strip_space = false;
        st = buf_put(&b, p, n, err);
    }
    if (st != BN_OK) {
        free(b.p);
        return st;
    }
    *text = b.p;
    *len = b.n;
    return BN_OK;
}

/* ------------------------------------------------------------------ */
/* chat template                                                      */

bn_status bn_chat_template_bitnet(const bn_chat_msg *msgs, size_t n_msgs, char **text,
                                  size_t *len, bn_error *err) {
    static const struct {
        const char *role, *before, *after;
    } roles[] = {
        {"system", "System: ", ""},
        {"user", "User: ", "<|eot_id|>Assistant: "},
        {"assistant", "", ""},
    };
    *text = NULL;
    *len = 0;
    byte_buf b = {0};
    bn_status st = buf_put(&b, "", 0, err);
    for (size_t i = 0; i < n_msgs && st == BN_OK; i++) {
        size_t r = 0;
        while (r < 3 && (!msgs[i].role || strcmp(msgs[i].role, roles[r].role))) r++;
        if (r == 3 || !msgs[i].content) {
            st = bn_error_set(err, BN_ERR_INVALID, "chat template: message %zu: %s", i,
                              r == 3 ? "role is not system, user or assistant" : "content is NULL");
            break;
        }
        st = buf_put(&b, roles[r].before, strlen(roles[r].before), err);
        if (st == BN_OK) st = buf_put(&b, msgs[i].content, strlen(msgs[i].content), err);
        if (st == BN_OK) st = buf_put(&b, roles[r].after, strlen(roles[r].after), err);
    }
    if (st != BN_OK) {
        free(b.p);
        return st;
    }
    *text = b.p;
    *len = b.n;
    return BN_OK;
}
