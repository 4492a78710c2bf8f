/* tokenizer_bpe.c — byte-level BPE: PCRE2 pre-split, GPT-2 byte mapping,
 * merges by rank with a binary heap over a linked list of symbols, so a
 * word of n bytes costs O(n log n) (llama.cpp's llm_tokenizer_bpe_session
 * is the behaviour matched, including its leftmost-first tie-break). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* docs/specs/tokenizer.md; PCRE2 with UTF|UCP runs them as written. */
static const char re_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const struct {
    const char *pre;
    const char *regex;
} pre_table[] = {
    {"llama-bpe", re_llama3}, {"llama3", re_llama3}, {"llama-v3", re_llama3},
    {"default", re_gpt2},     {"gpt2", re_gpt2},
};

bn_status bpe_compile(bn_tokenizer *tok, bn_error *err) {
    const char *regex = NULL;
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++)
        if (!strcmp(tok->pre, pre_table[i].pre)) regex = pre_table[i].regex;
    if (!regex)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "tokenizer.ggml.pre: pre-tokenizer '%s' is not supported "
                            "(llama-bpe, llama3, llama-v3, default, gpt2)", tok->pre);
    int code;
    PCRE2_SIZE at;
    tok->re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    if (!tok->re) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(code, msg, sizeof msg);
        return bn_error_set(err, BN_ERR_INTERNAL, "tokenizer: PCRE2 rejects the %s regex at %zu: %s",
                            tok->pre, (size_t)at, (const char *)msg);
    }
    /* JIT is an optimisation only: the interpreter gives the same matches. */
    (void)pcre2_jit_compile(tok->re, PCRE2_JIT_COMPLETE);
    return BN_OK;
}

/* ------------------------------------------------------------------ */
/* merges: the pair map and its loading                               */

static uint64_t pair_hash(uint64_t k) { /* splitmix64 finalizer */
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebull;
    return k ^ (k >> 31);
}

/* The first merge of a pair wins, as with llama.cpp's bpe_ranks.emplace. */
static void pair_insert(pair_map *m, int32_t l, int32_t r, int32_t rank, int32_t result) {
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    uint64_t i = pair_hash(key) & m->mask;
    while (m->key[i] && m->key[i] != key) i = (i + 1) & m->mask;
    if (m->key[i]) return;
    m->key[i] = key;
    m->rank[i] = rank;
    m->result[i] = result;
}

bool pair_find(const pair_map *m, int32_t l, int32_t r, int32_t *rank, int32_t *result) {
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    for (uint64_t i = pair_hash(key) & m->mask; m->key[i]; i = (i + 1) & m->mask)
        if (m->key[i] == key) {
            *rank = m->rank[i];
            *result = m->result[i];
            return true;
        }
    return false;
}

#define KEY_MERGES "tokenizer.ggml.merges"

/* Resolves merge "a b" (split at the first space after the first byte, as
 * llama.cpp does); returns why it is invalid, or NULL. buf holds 2*max_len. */
static const char *resolve_merge(const bn_tokenizer *tok, bn_gguf_str s, char *buf, size_t max_len,
                                 int32_t *l, int32_t *r, int32_t *res) {
    const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
    if (!sp) return "is not two tokens separated by a space";
    size_t nl = (size_t)(sp - s.ptr), nr = s.len - nl - 1;
    *l = tok_map_find(tok, s.ptr, nl);
    *r = tok_map_find(tok, sp + 1, nr);
    *res = -1;
    if (nl + nr <= 2 * max_len) { /* longer cannot be a token */
        memcpy(buf, s.ptr, nl);
        memcpy(buf + nl, sp + 1, nr);
        *res = tok_map_find(tok, buf, nl + nr);
    }
    return *l < 0 ? "its left part is not a token" : *r < 0 ? "its right part is not a token"
           : *res < 0 ? "the merged string is not a token" : NULL;
}

bn_status bpe_load_merges(bn_tokenizer *tok, const bn_gguf *g, const char *path, bn_error *err) {
    int64_t kv;
    uint64_t count;
    bn_status st = bn_gguf_get_arr(g, KEY_MERGES, BN_GGUF_STRING, &kv, &count, err);
    if (st == BN_ERR_NOT_FOUND)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %s: missing (required for model gpt2)", path, KEY_MERGES);
    if (st != BN_OK) return st;
    if (count > INT32_MAX / 4)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %s: %llu merges", path, KEY_MERGES, (unsigned long long)count);
    size_t max_len = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++)
        if (tok_text_len(tok, id) > max_len) max_len = tok_text_len(tok, id);
    uint64_t cap = pow2_at_least(count * 2 + 1);
    pair_map *m = &tok->pairs;
    m->key = calloc(cap, sizeof *m->key);
    m->rank = malloc(cap * sizeof *m->rank);
    m->result = malloc(cap * sizeof *m->result);
    m->mask = cap - 1;
    char *buf = malloc(2 * max_len + 1);
    if (!m->key || !m->rank || !m->result || !buf)
        st = bn_error_nomem(err, cap * (sizeof *m->key + sizeof *m->rank + sizeof *m->result) + 2 * max_len + 1,
                            "tokenizer: the merge table of %zu slots", (size_t)cap);
    for (uint64_t i = 0; i < count && st == BN_OK; i++) {
        bn_gguf_str s = bn_gguf_kv_str(g, kv, i);
        int32_t l, r, res;
        const char *why = resolve_merge(tok, s, buf, max_len, &l, &r, &res);
        if (why)
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: %s[%llu]: '%.*s': %s", path, KEY_MERGES,
                              (unsigned long long)i, (int)(s.len > 80 ? 80 : s.len), s.ptr, why);
        else
            pair_insert(m, l, r, (int32_t)i, res);
    }
    tok->n_merges = (int32_t)count;
    free(buf);
    return st;
}

/* ------------------------------------------------------------------ */
/* the symbol heap (shared with tokenizer_spm.c)                       */

static inline bool bigram_before(const tok_bigram *a, const tok_bigram *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

void tok_heap_push(tok_heap *h, tok_bigram b) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
}

tok_bigram tok_heap_pop(tok_heap *h) {
    tok_bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bigram_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n) h->v[i] = last;
    return top;
}

/* ------------------------------------------------------------------ */
/* scratch of one bpe_encode call                                     */

typedef struct bpe_work {
    char *mapped;      /* [2 * word] GPT-2 unicode form of the word (ignore_merges look-up) */
    int32_t *id;       /* [word] symbol token id; -1 no token, -2 merged away */
    int32_t *prev;     /* [word] linked list of live symbols */
    int32_t *next;
    tok_heap heap;     /* [3 * word]: n - 1 initial pairs + 2 per merge */
    size_t cap;        /* words up to cap bytes fit */
} bpe_work;

static bn_status work_reserve(bpe_work *w, size_t n, bn_error *err) {
    if (n <= w->cap) return BN_OK;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n) cap *= 2;
    char *mapped = realloc(w->mapped, 2 * cap);
    if (mapped) w->mapped = mapped;
    int32_t *id = realloc(w->id, cap * sizeof *id);
    if (id) w->id = id;
    int32_t *prev = realloc(w->prev, cap * sizeof *prev);
    if (prev) w->prev = prev;
    int32_t *next = realloc(w->next, cap * sizeof *next);
    if (next) w->next = next;
    tok_bigram *heap = realloc(w->heap.v, 3 * cap * sizeof *heap);
    if (heap) w->heap.v = heap;
    if (!mapped || !id || !prev || !next || !heap)
        return bn_error_nomem(err, (unsigned long long)cap * (3 * sizeof *heap + 4 * sizeof(int32_t)),
                              "tokenizer: the work tables for a word of %zu bytes", n);
    w->cap = cap;
    return BN_OK;
}

static void work_free(bpe_work *w) {
    free(w->mapped);
    free(w->id);
    free(w->prev);
    free(w->next);
    free(w->heap.v);
}

static void try_pair(const bn_tokenizer *tok, bpe_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || w->id[l] < 0 || w->id[r] < 0) return;
    int32_t rank, result;
    if (pair_find(&tok->pairs, w->id[l], w->id[r], &rank, &result))
        tok_heap_push(&w->heap, (tok_bigram){(uint32_t)rank, l, r, w->id[l], w->id[r], result});
}

/* One pre-tokenized word: whole-word look-up (ignore_merges), else merges. */
static bn_status bpe_word(const bn_tokenizer *tok, const uint8_t *s, size_t n, bpe_work *w,
                          id_vec *out, bn_error *err) {
    bn_status st = work_reserve(w, n, err);
    if (st != BN_OK || n == 0) return st;
    if (tok->ignore_merges) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) m += utf8_put(w->mapped + m, gpt2_byte_to_cp(s[i]));
        int32_t id = tok_map_find(tok, w->mapped, m);
        if (id >= 0) return id_vec_push(out, id, err);
    }
    for (size_t i = 0; i < n; i++) {
        w->id[i] = tok->byte_id[s[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->heap.n = 0;
    for (size_t i = 1; i < n; i++) try_pair(tok, w, (int32_t)i - 1, (int32_t)i);
    while (w->heap.n) {
        tok_bigram b = tok_heap_pop(&w->heap);
        if (w->id[b.left] != b.check || w->id[b.right] != b.check2) continue;
        w->id[b.left] = b.result;
        w->id[b.right] = -2;
        w->next[b.left] = w->next[b.right];
        if (w->next[b.right] >= 0) w->prev[w->next[b.right]] = b.left;
        try_pair(tok, w, w->prev[b.left], b.left);
        try_pair(tok, w, b.left, w->next[b.left]);
    }
    /* A byte without a token is dropped, as llama.cpp drops it. */
    for (int32_t i = 0; i != -1 && st == BN_OK; i = w->next[i])
        if (w->id[i] >= 0) st = id_vec_push(out, w->id[i], err);
    return st;
}

/* ------------------------------------------------------------------ */
/* UTF-8 clean-up and the pre-split                                   */

/* llama.cpp decodes with a lenient decoder and replaces each byte it cannot
 * decode by U+FFFD; PCRE2 needs strictly valid UTF-8, so code points the
 * lenient decoder accepts but UTF-8 forbids (surrogates, > U+10FFFF) also
 * become U+FFFD here. Overlong forms are re-encoded, as llama.cpp does. */
static size_t lenient_cp(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (!(c & 0x80)) {
        *cp = c;
        return 1;
    }
    size_t len = !(c & 0x40) ? 0 : !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
    if (len == 0 || len > n) return 0;
    uint32_t v = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

static bool utf8_valid(const uint8_t *s, size_t n) {
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_get(s + i, n - i, &cp);
        if (!k) return false;
        i += k;
    }
    return true;
}

static bn_status sanitize(const char *text, size_t len, char **clean, size_t *clean_len, bn_error *err) {
    if (len > (SIZE_MAX - 1) / 3)
        return bn_error_set(err, BN_ERR_INVALID, "tokenize: text of %zu bytes is too long", len);
    char *o = malloc(3 * len + 1); /* each byte at worst becomes U+FFFD */
    if (!o) return bn_error_nomem(err, 3 * (unsigned long long)len + 1, "tokenizer: %zu bytes of text", len);
    const uint8_t *s = (const uint8_t *)text;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0xFFFD;
        size_t k = lenient_cp(s + i, len - i, &cp);
        if (k == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = 0xFFFD;
        n += utf8_put(o + n, cp);
        i += k ? k : 1;
    }
    *clean = o;
    *clean_len = n;
    return BN_OK;
}

static bn_status match_error(int rc, bn_error *err) {
    PCRE2_UCHAR msg[128];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return bn_error_set(err, BN_ERR_INTERNAL, "tokenize: PCRE2 match failed: %s", (const char *)msg);
}

/* Every span of text becomes a word: regex matches, and the text between
 * them (none with the LLaMA-3 regex, which matches every character). */
static bn_status split_words(const bn_tokenizer *tok, const char *s, size_t n, bpe_work *w, id_vec *out,
                             bn_error *err) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(tok->re, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_jit_stack *js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
    if (!md || !mc || !js) {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        pcre2_jit_stack_free(js);
        return bn_error_nomem(err, 64 * 1024, "tokenizer: the PCRE2 match data and JIT stack");
    }
    pcre2_jit_stack_assign(mc, NULL, js);
    bn_status st = BN_OK;
    size_t gap = 0, pos = 0; /* gap: start of text not yet emitted */
    while (pos < n && st == BN_OK) {
        int rc = pcre2_match(tok->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            st = match_error(rc, err);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) { /* an empty match: step over one character */
            pos = ov[0] + 1;
            while (pos < n && ((uint8_t)s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (ov[0] > gap) st = bpe_word(tok, (const uint8_t *)s + gap, ov[0] - gap, w, out, err);
        if (st == BN_OK) st = bpe_word(tok, (const uint8_t *)s + ov[0], ov[1] - ov[0], w, out, err);
        gap = pos = ov[1];
    }
    if (st == BN_OK && gap < n) st = bpe_word(tok, (const uint8_t *)s + gap, n - gap, w, out, err);
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    pcre2_jit_stack_free(js);
    return st;
}

bn_status bpe_encode(const bn_tokenizer *tok, const char *text, size_t len, id_vec *out,
                     bn_error *err) {
    char *clean = NULL;
    size_t n = len;
    bn_status st = BN_OK;
    if (!utf8_valid((const uint8_t *)text, len)) {
        st = sanitize(text, len, &clean, &n, err);
        if (st != BN_OK) return st;
    }
    bpe_work w = {0};
    st = split_words(tok, clean ? clean : text, n, &w, out, err);
    work_free(&w);
    free(clean);
    return st;
}
