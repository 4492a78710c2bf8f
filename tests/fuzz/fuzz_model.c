/* fuzz_model.c — libFuzzer target for binding an untrusted GGUF as a model
 * (bn_model_from_gguf: architecture, hyper-parameters checked against every
 * tensor shape) and then running it: a model that binds must evaluate a
 * prompt and a decode step on a small context without reading outside its
 * tensors, whatever its shapes and types. Seeds: the fixture models (every
 * architecture and weight type). */
#include <stdint.h>
#include <string.h>

#include "bitnet/forward.h"
#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "fuzz_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_hparams(const bn_model *m) {
    const bn_hparams *hp = &m->hp;
    CHECK(hp->arch < BN_ARCH_COUNT && hp->n_vocab >= 1 && hp->n_embd >= 1 && hp->n_layer >= 1 && hp->n_ff >= 1);
    CHECK(hp->n_head >= 1 && hp->n_head_kv >= 1 && hp->n_head % hp->n_head_kv == 0);
    CHECK(hp->head_dim >= 1 && hp->head_dim * hp->n_head == hp->n_embd);
    CHECK(m->token_embd && m->output_norm && m->layers);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        CHECK(L->attn_norm && L->ffn_norm);
        CHECK(!hp->sub_norms || (L->attn_sub_norm && L->ffn_sub_norm));
        /* the norms' last elements are inside the file (ASan: inside the input) */
        volatile float sink = L->attn_norm[hp->n_embd - 1] + L->ffn_norm[hp->n_embd - 1];
        if (hp->sub_norms) sink += L->attn_sub_norm[hp->n_embd - 1] + L->ffn_sub_norm[hp->n_ff - 1];
        (void)sink;
    }
}

static void run(const bn_model *m) {
    bn_ctx_params p = bn_ctx_params_init();
    p.n_ctx = 4;
    bn_ctx *c = NULL;
    bn_error err;
    if (bn_ctx_create(m, &p, &c, &err) != BN_OK) {
        CHECK(c == NULL && strchr(err.msg, '\n') == NULL);
        return;
    }
    const int64_t V = m->hp.n_vocab;
    const int32_t prompt[2] = {0, (int32_t)(V - 1)}, next = (int32_t)(V / 2);
    CHECK(bn_ctx_eval(c, prompt, 2, &err) == BN_OK);
    volatile float sink = bn_ctx_logits(c)[2 * V - 1];
    CHECK(bn_ctx_eval(c, &next, 1, &err) == BN_OK && bn_ctx_n_past(c) == 3);
    sink += bn_ctx_logits(c)[V - 1];
    /* out of range and over capacity are refused, not evaluated */
    const int32_t bad = (int32_t)V;
    CHECK(bn_ctx_eval(c, &bad, 1, &err) != BN_OK && bn_ctx_n_past(c) == 3);
    CHECK(bn_ctx_eval(c, prompt, 2, &err) != BN_OK && bn_ctx_n_past(c) == 3);
    (void)sink;
    bn_ctx_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_gguf *g = NULL;
    bn_error err;
    if (bn_gguf_open_memory(data, size, "fuzz.gguf", &g, &err) != BN_OK) return 0;
    bn_model *m = NULL;
    /* The model takes g either way (frees it on failure). */
    if (bn_model_from_gguf(g, &m, &err) != BN_OK) {
        CHECK(m == NULL && strchr(err.msg, '\n') == NULL && strncmp(err.msg, "fuzz.gguf", 9) == 0);
        return 0;
    }
    check_hparams(m);
    run(m);
    bn_model_free(m);
    return 0;
}
