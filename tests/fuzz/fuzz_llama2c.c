/* fuzz_llama2c.c — libFuzzer target for `bitparity convert llama2c`: the
 * input is a llama2.c checkpoint and its tokenizer.bin, as
 *   uint32 LE checkpoint length | checkpoint bytes | tokenizer bytes,
 * written to files in a private temporary folder (the converter reads
 * paths). A conversion that succeeds must give a GGUF that binds as a model
 * with a loadable vocabulary of the checkpoint's size; one that fails must
 * leave no output and say why in one line naming one of the inputs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/convert.h"
#include "bitnet/model.h"
#include "bitnet/tokenizer.h"
#include "fuzz_support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* This process's scratch paths, set once at start-up. */
static const char *ckpt_path, *tok_path, *out_path;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *const files[] = {"model.bin", "tok.bin", "out.gguf", NULL};
    const fuzz_scratch *s = fuzz_scratch_open("fuzz_llama2c", files);
    ckpt_path = s->path[0], tok_path = s->path[1], out_path = s->path[2];
    return 0;
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t n_ckpt = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    if (n_ckpt > size - 4) n_ckpt = size - 4;
    write_file(ckpt_path, data + 4, n_ckpt);
    write_file(tok_path, data + 4 + n_ckpt, size - 4 - n_ckpt);
    bn_error err;
    if (bn_llama2c_convert(ckpt_path, tok_path, out_path, NULL, &err) != BN_OK) {
        CHECK(access(out_path, F_OK) != 0); /* nothing left behind */
        CHECK(strchr(err.msg, '\n') == NULL);
        CHECK(strncmp(err.msg, ckpt_path, strlen(ckpt_path)) == 0 || strncmp(err.msg, tok_path, strlen(tok_path)) == 0 ||
              strstr(err.msg, "out of memory") != NULL);
        return 0;
    }
    int32_t vocab = 0;
    memcpy(&vocab, data + 4 + 20, 4); /* header field 5; negative = separate classifier */
    bn_model *m = NULL;
    CHECK(bn_model_load(out_path, &m, &err) == BN_OK);
    CHECK(m->hp.arch == BN_ARCH_LLAMA && m->hp.n_vocab == (vocab < 0 ? -(int64_t)vocab : vocab));
    bn_tokenizer *tok = NULL;
    CHECK(bn_tokenizer_load(m->gguf, &tok, &err) == BN_OK && bn_tokenizer_n_vocab(tok) == m->hp.n_vocab);
    bn_tokenizer_free(tok);
    bn_model_free(m);
    unlink(out_path);
    return 0;
}
