/* fuzz_trace_index.c — libFuzzer target for the ggml-nodes container index
 * (e{k}/index.tsv, written by reference/dumpers or by anyone): the input is
 * e0/index.tsv of an otherwise valid ggml-nodes container (stored zip built
 * per input) whose meta.yaml lists one evaluation and which holds the first
 * three node arrays of a real bitnet.cpp dump, so rows naming them resolve
 * and load. Whatever opens is walked (trace_walk.h); whatever fails must say
 * so in one line naming the container. */
#include <stdint.h>
#include <string.h>

#include "parity/trace.h"
#include "stored_zip.h"
#include "trace_walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char meta_yaml[] = "trace: bitparity/v1\n"
                                "producer: {name: bitnet.cpp}\n"
                                "layout: ggml-nodes\n"
                                "evaluations:\n"
                                "  - {id: e0, tokens: [509, 12], p0: 0}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t npy_a[256], npy_b[256], npy_c[256];
    const int64_t s24[2] = {2, 4}, s4[1] = {4};
    size_t na = stored_zip_npy_f32(s24, 2, 0.25f, npy_a, sizeof npy_a),
           nb = stored_zip_npy_f32(s24, 2, -1.0f, npy_b, sizeof npy_b),
           nc = stored_zip_npy_f32(s4, 1, 2.0f, npy_c, sizeof npy_c);
    CHECK(na && nb && nc);
    const stored_zip_member members[] = {
        {"e0/0000_inp_embd.npy", npy_a, na},
        {"e0/0001_norm-0.npy", npy_b, nb},
        {"e0/0002_attn_norm-0.npy", npy_c, nc},
        {"e0/logits.npy", npy_a, na},
        {"e0/index.tsv", data, size},
        {"meta.yaml", meta_yaml, sizeof meta_yaml - 1},
    };
    size_t len;
    uint8_t *zip = stored_zip_build(members, (int)(sizeof members / sizeof *members), &len);
    if (!zip) return 0;
    parity_trace *t = NULL;
    bn_error err;
    if (parity_trace_open_memory(zip, len, "fuzz.npz", &t, &err) == BN_OK) {
        CHECK(parity_trace_layout(t) == PARITY_LAYOUT_GGML_NODES && parity_trace_eval_count(t) == 1);
        trace_walk(t);
        parity_trace_close(t);
    } else {
        trace_walk_check_error(t, &err, "fuzz.npz");
    }
    free(zip);
    return 0;
}
