/* fuzz_trace_meta.c — libFuzzer target for a trace's meta.yaml: the input
 * is the meta.yaml member of an otherwise valid container (stored zip built
 * per input, so the zip layer never stops it) that also holds canonical taps
 * and ggml-nodes indexes for e0 and e1. Either layout the text asks for can
 * then open fully; whatever opens is walked (trace_walk.h), whatever fails
 * must say so in one line naming the container. */
#include <stdint.h>
#include <string.h>

#include "parity/trace.h"
#include "stored_zip.h"
#include "trace_walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char index_tsv[] = "seq\tname\top\ttype\tne0\tne1\tne2\tne3\tfile\n"
                                "0\tinp_embd\tGET_ROWS\tf32\t4\t2\t1\t1\t0000_inp_embd.npy\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t npy_2x4[256], npy_2x8[256], npy_1x4[256];
    const int64_t s24[2] = {2, 4}, s28[2] = {2, 8}, s14[2] = {1, 4};
    size_t n24 = stored_zip_npy_f32(s24, 2, 0.5f, npy_2x4, sizeof npy_2x4),
           n28 = stored_zip_npy_f32(s28, 2, -3.0f, npy_2x8, sizeof npy_2x8),
           n14 = stored_zip_npy_f32(s14, 2, 7.0f, npy_1x4, sizeof npy_1x4);
    CHECK(n24 && n28 && n14);
    const stored_zip_member members[] = {
        {"e0/attn_norm.npy", npy_2x4, n24},
        {"e0/logits.npy", npy_2x8, n28},
        {"e1/attn_norm.npy", npy_1x4, n14},
        {"e1/logits.npy", npy_2x8, n28},
        {"e0/0000_inp_embd.npy", npy_2x4, n24},
        {"e0/index.tsv", index_tsv, sizeof index_tsv - 1},
        {"e1/0000_inp_embd.npy", npy_1x4, n14},
        {"e1/index.tsv", index_tsv, sizeof index_tsv - 1},
        {"meta.yaml", data, size},
    };
    size_t len;
    uint8_t *zip = stored_zip_build(members, (int)(sizeof members / sizeof *members), &len);
    if (!zip) return 0;
    parity_trace *t = NULL;
    bn_error err;
    if (parity_trace_open_memory(zip, len, "fuzz.npz", &t, &err) == BN_OK) {
        trace_walk(t);
        parity_trace_close(t);
    } else {
        trace_walk_check_error(t, &err, "fuzz.npz");
    }
    free(zip);
    return 0;
}
