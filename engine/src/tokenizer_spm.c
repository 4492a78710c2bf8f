/* tokenizer_spm.c — SentencePiece-style encoding as llama.cpp's
 * llm_tokenizer_spm_session does it: spaces become U+2581, the text is cut
 * into UTF-8 characters, and the adjacent pair whose concatenation is the
 * token with the highest score is merged first (leftmost on ties) until no
 * pair forms a token; a symbol that is not a token falls back to <0xXX>
 * byte tokens. A binary heap keeps it O(n log n). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* Maps a score to a heap key: a higher score gives a lower key, and equal
 * scores (+0 and -0 included) equal keys, as llama.cpp compares floats. */
static uint32_t spm_key(float score) {
    uint32_t u;
    if (score == 0.0f) score = 0.0f;
    memcpy(&u, &score, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending with the float */
    return ~u;
}

typedef struct spm_work {
    const char *text;  /* escaped text */
    uint32_t *start;   /* [n_sym] byte offset of each symbol */
    uint32_t *len;     /* [n_sym] bytes; 0 once merged into its left neighbour */
    int32_t *prev;     /* [n_sym] linked list of live symbols */
    int32_t *next;
    tok_heap heap;     /* [3 * n_sym]: n_sym - 1 initial pairs + 2 per merge */
} spm_work;

static void spm_try(const bn_tokenizer *tok, spm_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    size_t size = w->len[l] + w->len[r];
    int32_t id = tok_map_find(tok, w->text + w->start[l], size);
    if (id >= 0) tok_heap_push(&w->heap, (tok_bigram){spm_key(tok->score[id]), l, r, (int32_t)size, 0, id});
}

/* The escaped text: optional leading U+2581, every ' ' as U+2581. */
static char *escape(const char *text, size_t len, bool prefix, size_t *n_out) {
    static const char lower_block[3] = {'\xE2', '\x96', '\x81'};
    size_t spaces = prefix;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    char *o = malloc(len + 2 * spaces + 1);
    if (!o) return NULL;
    size_t n = 0;
    if (prefix) {
        memcpy(o, lower_block, 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(o + n, lower_block, 3);
            n += 3;
        } else {
            o[n++] = text[i];
        }
    }
    *n_out = n;
    return o;
}

/* Symbols are UTF-8 characters by their lead byte, unvalidated, as in
 * llama.cpp (a stray continuation byte is a symbol of its own). */
static size_t cut_symbols(spm_work *w, size_t n) {
    static const uint8_t lead_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t k = 0;
    for (size_t off = 0; off < n; k++) {
        size_t len = lead_len[(uint8_t)w->text[off] >> 4];
        if (len > n - off) len = n - off;
        w->start[k] = (uint32_t)off;
        w->len[k] = (uint32_t)len;
        w->prev[k] = (int32_t)k - 1;
        off += len;
        w->next[k] = off < n ? (int32_t)k + 1 : -1;
    }
    return k;
}

static bn_status emit(const bn_tokenizer *tok, const spm_work *w, id_vec *out, bn_error *err) {
    bn_status st = BN_OK;
    for (int32_t i = 0; i != -1 && st == BN_OK; i = w->next[i]) {
        int32_t id = tok_map_find(tok, w->text + w->start[i], w->len[i]);
        if (id >= 0) {
            st = id_vec_push(out, id, err);
            continue;
        }
        for (size_t j = 0; j < w->len[i] && st == BN_OK; j++) {
            int32_t b = tok->byte_id[(uint8_t)w->text[w->start[i] + j]];
            if (b < 0) b = tok->unk; /* a vocabulary without byte tokens */
            if (b >= 0) st = id_vec_push(out, b, err);
        }
    }
    return st;
}

bn_status spm_encode(const bn_tokenizer *tok, const char *text, size_t len, bool prefix,
                     id_vec *out, bn_error *err) {
    if (len > (INT32_MAX - 4) / 3) /* symbol offsets and sizes are 32-bit */
        return bn_error_set(err, BN_ERR_INVALID, "tokenize: text of %zu bytes is too long", len);
    size_t n = 0;
    char *esc = escape(text, len, prefix, &n);
    spm_work w = {.text = esc};
    if (esc && n > 0) {
        w.start = malloc(n * sizeof *w.start);
        w.len = malloc(n * sizeof *w.len);
        w.prev = malloc(n * sizeof *w.prev);
        w.next = malloc(n * sizeof *w.next);
        w.heap.v = malloc(3 * n * sizeof *w.heap.v);
    }
    bn_status st = BN_OK;
    if (!esc || (n > 0 && (!w.start || !w.len || !w.prev || !w.next || !w.heap.v)))
        st = bn_error_nomem(err, (unsigned long long)n * (4 * sizeof *w.start + 3 * sizeof *w.heap.v),
                            "tokenizer: the work tables for %zu bytes of text", len);
    if (st == BN_OK && n > 0) {
        size_t n_sym = cut_symbols(&w, n);
        for (size_t i = 1; i < n_sym; i++) spm_try(tok, &w, (int32_t)i - 1, (int32_t)i);
        while (w.heap.n) {
            tok_bigram b = tok_heap_pop(&w.heap);
            if (w.len[b.left] == 0 || w.len[b.right] == 0 || w.len[b.left] + w.len[b.right] != (uint32_t)b.check)
                continue;
            w.len[b.left] += w.len[b.right];
            w.len[b.right] = 0;
            w.next[b.left] = w.next[b.right];
            if (w.next[b.right] >= 0) w.prev[w.next[b.right]] = b.left;
            spm_try(tok, &w, w.prev[b.left], b.left);
            spm_try(tok, &w, b.left, w.next[b.left]);
        }
        st = emit(tok, &w, out, err);
    }
    free(w.start);
    free(w.len);
    free(w.prev);
    free(w.next);
    free(w.heap.v);
    free(esc);
    return st;
}
