/* fuzz_tiktoken.c — libFuzzer target for `bitparity convert tiktoken`: the
 * input is a tiktoken rank file (lines "base64(bytes) rank"), written to a
 * private temporary folder (the converter reads paths). A conversion that
 * succeeds must give a vocabulary-only GGUF that loads as a BPE tokenizer of
 * n_ranks + n_special tokens with BOS = n_ranks, and that tokenizes and
 * detokenizes a text of its own first token; one that fails must leave no
 * output and name the input file in one line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/gguf.h"
#include "bitnet/tokenizer.h"
#include "fuzz_support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* This process's scratch paths, set once at start-up. */
static const char *in_path, *out_path;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *const files[] = {"tokenizer.model", "vocab.gguf", NULL};
    const fuzz_scratch *s = fuzz_scratch_open("fuzz_tiktoken", files);
    in_path = s->path[0], out_path = s->path[1];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(in_path, "wb");
    CHECK(f && fwrite(data, 1, size, f) == size && fclose(f) == 0);
    bn_tiktoken_stats stats;
    bn_error err;
    if (bn_tiktoken_convert(in_path, out_path, &stats, NULL, &err) != BN_OK) {
        CHECK(access(out_path, F_OK) != 0 && strchr(err.msg, '\n') == NULL);
        CHECK(strncmp(err.msg, in_path, strlen(in_path)) == 0 || strstr(err.msg, "out of memory") != NULL);
        return 0;
    }
    bn_gguf *g = NULL;
    bn_tokenizer *tok = NULL;
    CHECK(bn_gguf_open(out_path, &g, &err) == BN_OK && bn_tokenizer_load(g, &tok, &err) == BN_OK);
    CHECK(bn_tokenizer_kind(tok) == BN_VOCAB_BPE && bn_tokenizer_n_vocab(tok) == stats.n_ranks + stats.n_special);
    CHECK(bn_token_bos(tok) == stats.n_ranks && bn_tokenizer_n_merges(tok) == stats.n_merges);
    size_t len = 0;
    const char *piece = bn_token_piece(tok, 0, &len);
    CHECK(piece != NULL);
    int32_t *ids = NULL;
    size_t n = 0;
    if (bn_tokenize(tok, piece, len, false, false, &ids, &n, &err) == BN_OK) {
        for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < bn_tokenizer_n_vocab(tok));
        char *back = NULL;
        size_t blen = 0;
        if (bn_detokenize(tok, ids, n, false, false, &back, &blen, &err) == BN_OK) free(back);
        free(ids);
    }
    bn_tokenizer_free(tok);
    bn_gguf_close(g);
    unlink(out_path);
    return 0;
}
