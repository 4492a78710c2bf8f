/* fuzz_gguf.c — libFuzzer target for the GGUF reader: open arbitrary bytes,
 * then touch everything a successful open promises is safe to read (every
 * key, every element of every value, the first and last byte of every
 * tensor) and check the handle's invariants. A violated invariant traps. */
#include "bitnet/gguf.h"

#include <stdint.h>
#include <string.h>
#include "fuzz_support.h"

static uint64_t walk_kv(const bn_gguf *g, int64_t i) {
    const char *key = bn_gguf_kv_key(g, i);
    uint64_t sum = 0, n = bn_gguf_kv_count_elems(g, i);
    bn_gguf_vtype t = bn_gguf_kv_type(g, i), et = bn_gguf_kv_elem_type(g, i);
    bn_error err;
    CHECK(key && *key && bn_gguf_find_key(g, key) == i);
    CHECK(t < BN_GGUF_VTYPE_COUNT && et < BN_GGUF_VTYPE_COUNT && et != BN_GGUF_ARRAY);
    CHECK(t == BN_GGUF_ARRAY || (n == 1 && t == et));
    for (uint64_t j = 0; j < n; j++) {
        if (et == BN_GGUF_STRING) {
            bn_gguf_str s = bn_gguf_kv_str(g, i, j);
            CHECK(s.ptr != NULL);
            if (s.len) sum += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
        } else {
            sum += (uint64_t)bn_gguf_kv_int(g, i, j);
            double d = bn_gguf_kv_float(g, i, j);
            sum += d == d;
        }
    }
    int64_t iv;
    double dv;
    bn_gguf_str sv;
    uint64_t count;
    int64_t idx;
    sum += bn_gguf_get_int(g, key, &iv, &err) + bn_gguf_get_float(g, key, &dv, &err);
    sum += bn_gguf_get_str(g, key, &sv, &err);
    if (bn_gguf_get_arr(g, key, BN_GGUF_VTYPE_COUNT, &idx, &count, &err) == BN_OK)
        CHECK(idx == i && count == n);
    CHECK(strchr(err.msg, '\n') == NULL);
    return sum;
}

static uint64_t walk_tensor(const bn_gguf *g, int64_t i) {
    const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
    uint64_t size = bn_gguf_file_size(g);
    CHECK(t && t->name && strlen(t->name) < 64 && bn_gguf_find_tensor(g, t->name) == t);
    CHECK(t->n_dims >= 1 && t->n_dims <= BN_GGUF_MAX_DIMS && t->nelem >= 1 && t->nbytes >= 1);
    CHECK(t->abs_offset == bn_gguf_data_offset(g) + t->offset);
    CHECK(t->offset % bn_gguf_alignment(g) == 0);
    CHECK(t->abs_offset <= size && t->nbytes <= size - t->abs_offset);
    const uint8_t *d = t->data;
    return d[0] + d[t->nbytes - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_gguf *g = NULL;
    bn_error err;
    if (bn_gguf_open_memory(data, size, "fuzz", &g, &err) != BN_OK) {
        CHECK(g == NULL && err.code != BN_OK && strchr(err.msg, '\n') == NULL);
        CHECK(strncmp(err.msg, "fuzz: ", 6) == 0);
        return 0;
    }
    volatile uint64_t sink = 0;
    uint32_t v = bn_gguf_version(g);
    CHECK(v == 2 || v == 3);
    for (int64_t i = 0; i < bn_gguf_kv_count(g); i++) sink += walk_kv(g, i);
    for (int64_t i = 0; i < bn_gguf_tensor_count(g); i++) sink += walk_tensor(g, i);
    (void)sink;
    bn_gguf_close(g);
    return 0;
}
