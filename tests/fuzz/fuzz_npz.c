/* fuzz_npz.c — libFuzzer target for the trace container: arbitrary bytes go
 * through the zip reader (every member read, .npy headers parsed, arrays
 * loaded) and through the trace layer (meta.yaml, index.tsv, node loads).
 * Whatever opens must keep its promises; a violated invariant traps. */
#include "bitnet/npz.h"
#include "parity/trace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace_walk.h"

static bn_status count_chunk(void *ud, const void *data, size_t n, bn_error *err) {
    (void)data;
    (void)err;
    *(uint64_t *)ud += n;
    return BN_OK;
}

static void walk_member(const npz_reader *r, int64_t i) {
    const npz_member *m = npz_member_at(r, i);
    bn_error err;
    CHECK(m && m->name && *m->name && npz_find(r, m->name) == i);
    uint64_t got = 0;
    if (npz_read_chunks(r, i, count_chunk, &got, &err) == BN_OK) CHECK(got == m->size);
    CHECK(strchr(err.msg, '\n') == NULL);
    npz_array a;
    if (npz_load_array(r, i, &a, &err) == BN_OK) {
        CHECK(a.info.data_offset + a.info.nbytes == m->size);
        CHECK(a.info.ndim >= 0 && a.info.ndim <= NPZ_MAX_DIMS);
        CHECK(a.info.nbytes == (uint64_t)a.info.nelem * npz_dtype_size(a.info.dtype));
        npz_array_free(&a);
    } else {
        CHECK(a.data == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_error err;
    npz_reader *r = NULL;
    if (npz_open_memory(data, size, "fuzz.npz", &r, &err) == BN_OK) {
        for (int64_t i = 0; i < npz_count(r); i++) walk_member(r, i);
        npz_close(r);
    } else {
        CHECK(r == NULL && strchr(err.msg, '\n') == NULL);
    }
    parity_trace *t = NULL;
    if (parity_trace_open_memory(data, size, "fuzz.npz", &t, &err) == BN_OK) {
        trace_walk(t);
        parity_trace_close(t);
    } else {
        trace_walk_check_error(t, &err, "fuzz.npz");
    }
    return 0;
}
