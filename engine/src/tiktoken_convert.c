/* tiktoken_convert.c — a tiktoken rank file (LLaMA-3 / BitNet 2B-4T) to a
 * vocabulary-only GGUF the tokenizer loads (docs/specs/tokenizer.md).
 *
 * tiktoken stores no merges: its BPE merges whichever adjacent pair forms
 * the lowest-ranked token. The GGUF form needs an explicit merge list; like
 * Hugging Face's TikTokenConverter we emit, for every multi-byte token in
 * rank order, every split of it into two tokens (halves ordered by their
 * ranks). For LLaMA-3 that is the published 280147 merges. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define N_SPECIAL 256

/* LLaMA-3's named special tokens by offset from the first special id; the
 * others are <|reserved_special_token_K|>, K counting the unnamed ones. */
static const char *const special_names[] = {
    [0] = "<|begin_of_text|>", [1] = "<|end_of_text|>", [6] = "<|start_header_id|>",
    [7] = "<|end_header_id|>", [9] = "<|eot_id|>",
};
enum { SPECIAL_BOS = 0, SPECIAL_EOS = 1, SPECIAL_EOT = 9 };

/* One rank file in memory: token bytes by rank. */
typedef struct rank_table {
    const char *path;
    char *bytes;      /* arena: token bytes, each followed by a NUL */
    uint64_t *off;    /* [n + 1] offsets by rank */
    int32_t n;
    tok_map map;      /* bytes -> rank */
} rank_table;

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 with '=' padding; returns the decoded length or -1. */
static long b64_decode(const char *s, size_t n, char *out) {
    if (n == 0 || n % 4) return -1;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            bool tail = i + 4 == n && k >= 2 && s[i + k] == '=' && (k == 3 || s[i + 3] == '=');
            v[k] = tail ? 0 : b64_value(s[i + k]);
            pad += tail;
            if (v[k] < 0) return -1;
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (char)(x >> 16);
        if (pad < 2) out[o++] = (char)(x >> 8);
        if (pad < 1) out[o++] = (char)x;
    }
    return o;
}

static bn_status read_file(const char *path, char **buf, size_t *size, bn_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    long end = -1;
    if (fseek(f, 0, SEEK_END) == 0) end = ftell(f);
    char *b = end >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)end + 1) : NULL;
    bool ok = b && fread(b, 1, (size_t)end, f) == (size_t)end;
    fclose(f);
    if (!ok) {
        free(b);
        return bn_error_set(err, end < 0 ? BN_ERR_IO : BN_ERR_NOMEM, "%s: cannot read the file", path);
    }
    b[end] = 0;
    *buf = b;
    *size = (size_t)end;
    return BN_OK;
}

/* Parses one line "base64 rank" into *tok (decoded bytes) and *rank. */
static bn_status parse_line(const rank_table *t, const char *line, size_t len, size_t lineno, int32_t n,
                            char *tok, long *tok_len, int32_t *rank, bn_error *err) {
    const char *sp = memchr(line, ' ', len);
    char *end = NULL;
    long long r = -1;
    if (sp) {
        errno = 0;
        r = strtoll(sp + 1, &end, 10);
    }
    if (!sp || end == sp + 1 || end != line + len || errno || r < 0 || r >= n)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: line %zu: expected 'base64 rank' with a rank in [0, %d)",
                            t->path, lineno, n);
    *tok_len = b64_decode(line, (size_t)(sp - line), tok);
    if (*tok_len <= 0)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: line %zu: '%.*s' is not base64 of a non-empty token",
                            t->path, lineno, (int)(sp - line > 64 ? 64 : sp - line), line);
    *rank = (int32_t)r;
    return BN_OK;
}

/* Lines of buf[0..size) (a final newline optional, '\r\n' accepted). */
static size_t count_lines(const char *buf, size_t size) {
    size_t n = 0;
    for (size_t i = 0; i < size; i++) n += buf[i] == '\n';
    return n + (size > 0 && buf[size - 1] != '\n');
}

/* Fills t with the tokens of the file, by rank; checks ranks form a
 * permutation and tokens are distinct. */
static bn_status load_ranks(rank_table *t, char *buf, size_t size, bn_error *err) {
    size_t lines = count_lines(buf, size);
    if (lines == 0 || lines > INT32_MAX / 2)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %zu lines: not a tiktoken rank file", t->path, lines);
    int32_t n = (int32_t)lines;
    uint64_t *len = calloc((size_t)n, sizeof *len);    /* decoded length by rank, 0 = unseen */
    uint64_t *where = calloc((size_t)n, sizeof *where); /* offset into buf of the decoded bytes */
    t->off = malloc(((size_t)n + 1) * sizeof *t->off);
    t->bytes = malloc(size + (size_t)n + 1);
    if (!len || !where || !t->off || !t->bytes) {
        free(len);
        free(where);
        return bn_error_nomem(err, (unsigned long long)size + (unsigned long long)n * 16 + 1,
                              "%s: the tables of %zu ranks", t->path, (size_t)n);
    }
    bn_status st = BN_OK;
    size_t lineno = 0;
    for (size_t at = 0; at < size && st == BN_OK; lineno++) {
        char *nl = memchr(buf + at, '\n', size - at);
        size_t end = nl ? (size_t)(nl - buf) : size, l = end - at;
        if (l && buf[at + l - 1] == '\r') l--;
        long tl = 0;
        int32_t r = 0;
        /* base64 shrinks: decode in place over the line's own bytes */
        st = parse_line(t, buf + at, l, lineno + 1, n, buf + at, &tl, &r, err);
        if (st == BN_OK && len[r])
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: line %zu: rank %d appears twice", t->path, lineno + 1, r);
        if (st == BN_OK) {
            len[r] = (uint64_t)tl;
            where[r] = at;
        }
        at = end + 1;
    }
    uint64_t o = 0;
    for (int32_t r = 0; r < n && st == BN_OK; r++) {
        if (!len[r]) {
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: rank %d is missing", t->path, r);
            break;
        }
        t->off[r] = o;
        memcpy(t->bytes + o, buf + where[r], len[r]);
        t->bytes[o + len[r]] = 0;
        o += len[r] + 1;
    }
    t->off[n] = o;
    t->n = n;
    free(len);
    free(where);
    if (st == BN_OK) st = tok_map_build(&t->map, t->bytes, t->off, n, err);
    for (int32_t r = 0; r < n && st == BN_OK; r++) {
        size_t l = (size_t)(t->off[r + 1] - t->off[r] - 1);
        int32_t q = tok_map_get(&t->map, t->bytes, t->off, t->bytes + t->off[r], l);
        if (q != r) st = bn_error_set(err, BN_ERR_FORMAT, "%s: ranks %d and %d are the same token", t->path, r, q);
    }
    return st;
}

/* ------------------------------------------------------------------ */
/* strings of the GGUF                                                */

/* GPT-2 unicode form of bytes, malloc'ed. */
static char *to_unicode(const char *b, size_t n) {
    char *s = malloc(2 * n + 1);
    if (!s) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += utf8_put(s + k, gpt2_byte_to_cp((uint8_t)b[i]));
    s[k] = 0;
    return s;
}

typedef struct str_list {
    char **v;
    size_t n, cap;
} str_list;

static bool list_push(str_list *l, char *s) {
    if (!s) return false;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return false;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return true;
}

static void list_free(str_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static bool push_tokens(const rank_table *t, str_list *tokens) {
    for (int32_t r = 0; r < t->n; r++)
        if (!list_push(tokens, to_unicode(t->bytes + t->off[r], (size_t)(t->off[r + 1] - t->off[r] - 1))))
            return false;
    for (int k = 0, reserved = 0; k < N_SPECIAL; k++) {
        char name[64];
        const char *fixed = k < (int)(sizeof special_names / sizeof special_names[0]) ? special_names[k] : NULL;
        if (!fixed) snprintf(name, sizeof name, "<|reserved_special_token_%d|>", reserved++);
        if (!list_push(tokens, strdup(fixed ? fixed : name))) return false;
    }
    return true;
}

typedef struct split {
    int32_t l, r; /* ranks of the two halves */
} split;

static int cmp_split(const void *a, const void *b) {
    const split *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

/* "left right" in unicode form. */
static char *merge_string(const rank_table *t, split s) {
    size_t nl = (size_t)(t->off[s.l + 1] - t->off[s.l] - 1), nr = (size_t)(t->off[s.r + 1] - t->off[s.r] - 1);
    char *a = to_unicode(t->bytes + t->off[s.l], nl), *b = to_unicode(t->bytes + t->off[s.r], nr);
    char *m = a && b ? malloc(strlen(a) + strlen(b) + 2) : NULL;
    if (m) sprintf(m, "%s %s", a, b);
    free(a);
    free(b);
    return m;
}

static bool push_merges(const rank_table *t, str_list *merges) {
    size_t max_len = 0;
    for (int32_t r = 0; r < t->n; r++) {
        size_t l = (size_t)(t->off[r + 1] - t->off[r] - 1);
        if (l > max_len) max_len = l;
    }
    split *local = malloc((max_len + 1) * sizeof *local);
    bool ok = local != NULL;
    for (int32_t r = 0; r < t->n && ok; r++) {
        const char *b = t->bytes + t->off[r];
        size_t len = (size_t)(t->off[r + 1] - t->off[r] - 1), k = 0;
        for (size_t i = 1; i < len; i++) {
            int32_t l = tok_map_get(&t->map, t->bytes, t->off, b, i);
            int32_t q = l >= 0 ? tok_map_get(&t->map, t->bytes, t->off, b + i, len - i) : -1;
            if (q >= 0) local[k++] = (split){l, q};
        }
        qsort(local, k, sizeof *local, cmp_split);
        for (size_t i = 0; i < k && ok; i++) ok = list_push(merges, merge_string(t, local[i]));
    }
    free(local);
    return ok;
}

static bn_status write_vocab(const char *out_path, const str_list *tokens, const str_list *merges, int32_t n_ranks,
                             const volatile sig_atomic_t *cancel, bn_error *err) {
    int32_t *types = malloc(tokens->n * sizeof *types);
    if (!types)
        return bn_error_nomem(err, (unsigned long long)tokens->n * sizeof *types, "%s: the token types", out_path);
    for (size_t i = 0; i < tokens->n; i++) types[i] = (int32_t)i < n_ranks ? BN_TOKEN_NORMAL : BN_TOKEN_CONTROL;
    bn_gguf_writer *w;
    bn_status st = bn_gguf_writer_open(out_path, 3, &w, err);
    if (st != BN_OK) {
        free(types);
        return st;
    }
    bn_gguf_writer_set_cancel(w, cancel);
    const char *const *tv = (const char *const *)tokens->v, *const *mv = (const char *const *)merges->v;
    st = bn_gguf_writer_add_str(w, "general.architecture", "llama", err);
    if (st == BN_OK) st = bn_gguf_writer_add_str(w, "general.name", "llama3-tiktoken-vocab", err);
    if (st == BN_OK) st = bn_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", err);
    if (st == BN_OK) st = bn_gguf_writer_add_str(w, "tokenizer.ggml.pre", "llama-bpe", err);
    if (st == BN_OK) st = bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tv, tokens->n, err);
    if (st == BN_OK) st = bn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types, tokens->n, err);
    if (st == BN_OK) st = bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", mv, merges->n, err);
    if (st == BN_OK) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n_ranks + SPECIAL_BOS), err);
    if (st == BN_OK) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n_ranks + SPECIAL_EOS), err);
    if (st == BN_OK) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)(n_ranks + SPECIAL_EOT), err);
    if (st == BN_OK) st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, err);
    if (st == BN_OK) st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false, err);
    free(types);
    if (st != BN_OK) {
        bn_gguf_writer_abort(w);
        return st;
    }
    return bn_gguf_writer_close(w, err);
}

bn_status bn_tiktoken_convert(const char *in_path, const char *out_path, bn_tiktoken_stats *stats,
                              const volatile sig_atomic_t *cancel, bn_error *err) {
    char *buf = NULL;
    size_t size = 0;
    rank_table t = {.path = in_path};
    str_list tokens = {0}, merges = {0};
    bn_status st = read_file(in_path, &buf, &size, err);
    if (st == BN_OK) st = load_ranks(&t, buf, size, err);
    free(buf);
    if (st == BN_OK && !(push_tokens(&t, &tokens) && push_merges(&t, &merges)))
        st = bn_error_nomem(err, (unsigned long long)size * 2, "%s: the vocabulary and merges", in_path);
    if (st == BN_OK) st = bn_cancel_check(cancel, err);
    if (st == BN_OK) st = write_vocab(out_path, &tokens, &merges, t.n, cancel, err);
    if (st == BN_OK && stats) *stats = (bn_tiktoken_stats){t.n, N_SPECIAL, (int64_t)merges.n};
    list_free(&tokens);
    list_free(&merges);
    free(t.bytes);
    free(t.off);
    free(t.map.slot);
    return st;
}
