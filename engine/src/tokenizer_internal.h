/* tokenizer_internal.h — what tokenizer.c, tokenizer_bpe.c, tokenizer_spm.c
 * and tiktoken_convert.c share. Not a public header. */
#ifndef BITNET_TOKENIZER_INTERNAL_H
#define BITNET_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bitnet/tokenizer.h"

/* Open-addressing hash from the strings of a table to their index. String
 * i is text[off[i] .. off[i+1] - 1): each is followed by one NUL byte. */
typedef struct tok_map {
    int32_t *slot; /* [mask+1] string index or -1 (empty) */
    uint64_t mask; /* capacity - 1, capacity a power of two >= 2 * n */
} tok_map;

/* Indexes n strings; a later duplicate replaces an earlier one. */
bn_status tok_map_build(tok_map *m, const char *text, const uint64_t *off, int32_t n, bn_error *err);
/* Index of the string equal to s[0..len), or -1. */
int32_t tok_map_get(const tok_map *m, const char *text, const uint64_t *off, const char *s, size_t len);

/* Open-addressing hash from an adjacent pair of BPE token ids to the merge. */
typedef struct pair_map {
    uint64_t *key;   /* [mask+1] (left << 32 | right) + 1; 0 = empty */
    int32_t *rank;   /* [mask+1] merge index (lower merges first) */
    int32_t *result; /* [mask+1] id of the merged token */
    uint64_t mask;
} pair_map;

struct bn_tokenizer {
    bn_vocab_kind kind;
    char pre[32];           /* pre-tokenizer name ("llama-bpe", "default", ...) */
    int32_t n_vocab;
    int32_t n_merges;

    char *text;             /* arena: every token's stored string, NUL-terminated */
    uint64_t *text_off;     /* [n_vocab + 1] offsets into text */
    char *piece;            /* arena: every token's decoded bytes */
    uint64_t *piece_off;    /* [n_vocab + 1] offsets into piece */
    uint8_t *type;          /* [n_vocab] bn_token_type */
    float *score;           /* [n_vocab] SPM scores (0 when absent) */

    tok_map map;            /* stored string -> id (the last id wins on duplicates) */
    pair_map pairs;         /* BPE merges */
    int32_t byte_id[256];   /* BPE: token of one byte; SPM: its <0xXX> token; -1 none */

    int32_t *special;       /* [n_special] control/user-defined/unknown ids, longest text first */
    int32_t n_special;

    int32_t bos, eos, eot, unk, pad; /* -1 = none */
    bool add_bos, add_eos;
    bool add_space_prefix;  /* SPM */
    bool ignore_merges;     /* BPE llama-bpe: a piece that is a token is emitted whole */

    pcre2_code *re;         /* BPE pre-tokenizer, JIT-compiled when available */
};

/* Growable id output. */
typedef struct id_vec {
    int32_t *v;
    size_t n, cap;
} id_vec;

bn_status id_vec_push(id_vec *o, int32_t id, bn_error *err);

/* Id of the token stored as s[0..len), or -1 (tok_map_get on tok->map). */
int32_t tok_map_find(const bn_tokenizer *tok, const char *s, size_t len);

/* A candidate merge of two adjacent symbols, for both encoders. */
typedef struct tok_bigram {
    uint32_t key;   /* lower pops first: BPE merge rank, SPM score mapped by spm_key */
    int32_t left;   /* symbol index: leftmost first on equal keys */
    int32_t right;
    int32_t check;  /* BPE: left id when queued; SPM: merged size (a change means stale) */
    int32_t check2; /* BPE: right id when queued */
    int32_t result; /* BPE: the merged token */
} tok_bigram;

/* Binary min-heap on (key, left); v has room for every push (callers size it). */
typedef struct tok_heap {
    tok_bigram *v;
    size_t n;
} tok_heap;

void tok_heap_push(tok_heap *h, tok_bigram b);
tok_bigram tok_heap_pop(tok_heap *h); /* h->n > 0 */

/* The merge of the adjacent pair (l, r): its rank and resulting token. */
bool pair_find(const pair_map *m, int32_t l, int32_t r, int32_t *rank, int32_t *result);

/* Length of token id's stored string. */
static inline size_t tok_text_len(const bn_tokenizer *tok, int32_t id) {
    return (size_t)(tok->text_off[id + 1] - tok->text_off[id] - 1);
}

/* Hash table capacity: a power of two >= n (and >= 16). */
static inline uint64_t pow2_at_least(uint64_t n) {
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * 68 others to U+0100.. in byte order. */
static inline uint32_t gpt2_byte_to_cp(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    if (b <= 32) return 256u + b;
    if (b <= 160) return 256u + 33u + (b - 127u);
    return 256u + 67u; /* 173 */
}

/* Inverse of gpt2_byte_to_cp; -1 for code points outside the image. */
static inline int gpt2_cp_to_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp < 256 || cp > 256 + 67) return -1;
    uint32_t n = cp - 256;
    if (n <= 32) return (int)n;
    if (n <= 66) return (int)(127 + n - 33);
    return 173;
}

/* Writes cp as UTF-8 into out (>= 4 bytes); returns the length. */
static inline size_t utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Strict decoder: the code point at s[0..n) and its length, or 0 when the
 * bytes are not well-formed UTF-8 (overlong, surrogate, > U+10FFFF, cut). */
size_t utf8_get(const uint8_t *s, size_t n, uint32_t *cp);

/* BPE (tokenizer_bpe.c): reads tokenizer.ggml.merges into tok->pairs; each
 * "a b" must name two tokens whose concatenation is a token. */
bn_status bpe_load_merges(bn_tokenizer *tok, const bn_gguf *g, const char *path, bn_error *err);
/* Compiles the pre-tokenizer regex for tok->pre. */
bn_status bpe_compile(bn_tokenizer *tok, bn_error *err);
/* Appends the tokens of one fragment of plain text (no specials in it). */
bn_status bpe_encode(const bn_tokenizer *tok, const char *text, size_t len, id_vec *out,
                     bn_error *err);

/* SPM (tokenizer_spm.c): appends the tokens of one fragment; `prefix`
 * prepends the U+2581 of add_space_prefix. */
bn_status spm_encode(const bn_tokenizer *tok, const char *text, size_t len, bool prefix,
                     id_vec *out, bn_error *err);

#endif
