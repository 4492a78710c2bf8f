/* fuzz_cli_prompt.c — libFuzzer target for what a user types as a prompt:
 * `--tokens` id lists (cli_parse_id_list, cli_prompt_tokens) and `-p` text,
 * plain or wrapped in the chat template, tokenized with the byte-level BPE
 * vocabulary of `bitparity synth` (made once at start-up). The first input
 * byte picks the mode, the rest is the argument (cut at its first NUL, as
 * argv would be).
 *   id lists: an accepted list has one id per comma, each in [0, INT32_MAX]
 *             and equal to what cli_parse_i64 makes of its piece; a plain
 *             list of small decimals is never refused.
 *   text:     ids are in the vocabulary, BOS first; valid UTF-8 without the
 *             chat template detokenizes back to the text byte for byte. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/gguf.h"
#include "bitnet/quant.h"
#include "bitnet/synth.h"
#include "bitnet/tokenizer.h"
#include "commands.h"
#include "fuzz_support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fuzzing session's vocabulary: one per process, read-only after start-up. */
static bn_gguf *vocab_gguf;
static bn_tokenizer *vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char path[] = "/tmp/fuzz_cli_prompt.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    bn_synth_params p = {.shape = bn_synth_shape_find("tiny"), .arch = BN_ARCH_BITNET_B158, .type = BN_TYPE_I2_S,
                         .seed = 1};
    bn_error err;
    bool ok = bn_synth_write(&p, path, &err) == BN_OK && bn_gguf_open(path, &vocab_gguf, &err) == BN_OK &&
              bn_tokenizer_load(vocab_gguf, &vocab, &err) == BN_OK;
    unlink(path); /* the open mapping stays valid */
    if (!ok) {
        fprintf(stderr, "fuzz_cli_prompt: cannot make the synth vocabulary: %s\n", err.msg);
        abort();
    }
    return 0;
}

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). */
static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + len > n) return false;
        uint32_t cp = len == 1 ? c : c & (0xff >> (len + 1));
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

/* True when s is "d,d,...,d" with each d 1..9 decimal digits. */
static bool plain_id_list(const char *s) {
    int digits = 0;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            if (++digits > 9) return false;
        } else if (*s == ',' && digits) {
            digits = 0;
        } else {
            return false;
        }
    }
    return digits > 0;
}

static void check_id_list(const char *s) {
    int32_t *ids = NULL;
    int64_t n = 0;
    if (!cli_parse_id_list(s, &ids, &n)) {
        CHECK(ids == NULL && n == 0 && !plain_id_list(s));
        return;
    }
    int64_t commas = 0;
    for (const char *p = s; *p; p++) commas += *p == ',';
    CHECK(ids && n == commas + 1);
    const char *piece = s;
    for (int64_t i = 0; i < n; i++) {
        const char *end = strchr(piece, ',');
        size_t len = end ? (size_t)(end - piece) : strlen(piece);
        /* A piece may be long: leading zeros are digits like any other. */
        char *buf = malloc(len + 1);
        int64_t v;
        CHECK(buf != NULL);
        memcpy(buf, piece, len);
        buf[len] = '\0';
        CHECK(ids[i] >= 0 && cli_parse_i64(buf, &v) && v == ids[i]);
        free(buf);
        piece += len + 1;
    }
    free(ids);
    /* cli_prompt_tokens takes the list as given: same ids, no BOS. */
    bn_error err;
    int32_t *again = NULL;
    int64_t m = 0;
    CHECK(cli_prompt_tokens(vocab, NULL, s, false, &again, &m, &err) == BN_OK && m == n);
    free(again);
}

static void check_text(const char *text, bool chat) {
    int32_t *ids = NULL;
    int64_t n = 0;
    bn_error err;
    if (cli_prompt_tokens(vocab, text, NULL, chat, &ids, &n, &err) != BN_OK) {
        /* Only an empty prompt may fail: it tokenizes to nothing without BOS. */
        CHECK(ids == NULL && strchr(err.msg, '\n') == NULL);
        CHECK(!*text && !chat && !bn_tokenizer_add_bos(vocab));
        return;
    }
    CHECK(n >= 1 && ids);
    for (int64_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < bn_tokenizer_n_vocab(vocab));
    if (bn_tokenizer_add_bos(vocab)) CHECK(ids[0] == bn_token_bos(vocab));
    char *back = NULL;
    size_t len = 0;
    CHECK(bn_detokenize(vocab, ids, (size_t)n, true, chat, &back, &len, &err) == BN_OK && back[len] == '\0');
    if (!chat && valid_utf8((const unsigned char *)text, strlen(text)))
        CHECK(len == strlen(text) && memcmp(back, text, len) == 0);
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    char *arg = malloc(size);
    if (!arg) return 0;
    memcpy(arg, data + 1, size - 1);
    arg[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0: check_id_list(arg); break;
    case 1: check_text(arg, false); break;
    default: check_text(arg, true); break;
    }
    free(arg);
    return 0;
}
