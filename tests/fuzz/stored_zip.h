/* stored_zip.h — builds a small stored (uncompressed) zip in memory, so a
 * fuzz target can put the fuzzer's bytes into one member of an otherwise
 * valid trace container and reach the parser behind the zip layer (a
 * mutated archive almost never keeps its CRCs and offsets consistent).
 * Header-only because each fuzz target is a single translation unit; the
 * library's npz writer only writes files, which is too slow per input. */
#ifndef BITPARITY_FUZZ_STORED_ZIP_H
#define BITPARITY_FUZZ_STORED_ZIP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define STORED_ZIP_MAX_MEMBERS 16

typedef struct stored_zip_member {
    const char *name;
    const void *data;
    size_t size;
} stored_zip_member;

static inline uint8_t *stored_zip_put16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static inline uint8_t *stored_zip_put32(uint8_t *p, uint32_t v) {
    p = stored_zip_put16(p, v & 0xffff);
    return stored_zip_put16(p, v >> 16);
}

/* Common part of a local (30-byte) and a central (46-byte) header from the
 * version field on: flags 0, method stored, time/date 0, CRC, sizes, name
 * length, extra length 0. */
static inline uint8_t *stored_zip_fields(uint8_t *p, uint32_t crc, uint32_t size, uint32_t name_len) {
    p = stored_zip_put16(p, 20); /* version needed */
    p = stored_zip_put16(p, 0);  /* flags */
    p = stored_zip_put16(p, 0);  /* method: stored */
    p = stored_zip_put32(p, 0);  /* time, date */
    p = stored_zip_put32(p, crc);
    p = stored_zip_put32(p, size); /* compressed */
    p = stored_zip_put32(p, size); /* uncompressed */
    p = stored_zip_put16(p, name_len);
    return stored_zip_put16(p, 0); /* extra */
}

/* A malloc'ed archive of the n members (n <= STORED_ZIP_MAX_MEMBERS, each
 * under 4 GiB), *len its size; NULL when out of memory. */
static inline uint8_t *stored_zip_build(const stored_zip_member *m, int n, size_t *len) {
    size_t total = 22, offsets[STORED_ZIP_MAX_MEMBERS];
    for (int i = 0; i < n; i++) total += 30 + 46 + 2 * strlen(m[i].name) + m[i].size;
    uint8_t *buf = malloc(total), *p = buf;
    if (!buf) return NULL;
    uint32_t crcs[STORED_ZIP_MAX_MEMBERS];
    for (int i = 0; i < n; i++) {
        uint32_t nlen = (uint32_t)strlen(m[i].name);
        crcs[i] = (uint32_t)crc32_z(0, m[i].data, m[i].size);
        offsets[i] = (size_t)(p - buf);
        p = stored_zip_put32(p, 0x04034b50);
        p = stored_zip_fields(p, crcs[i], (uint32_t)m[i].size, nlen);
        memcpy(p, m[i].name, nlen);
        p += nlen;
        if (m[i].size) memcpy(p, m[i].data, m[i].size);
        p += m[i].size;
    }
    size_t cd_offset = (size_t)(p - buf);
    for (int i = 0; i < n; i++) {
        uint32_t nlen = (uint32_t)strlen(m[i].name);
        p = stored_zip_put32(p, 0x02014b50);
        p = stored_zip_put16(p, 20); /* version made by */
        p = stored_zip_fields(p, crcs[i], (uint32_t)m[i].size, nlen);
        p = stored_zip_put16(p, 0); /* comment length */
        p = stored_zip_put16(p, 0); /* disk */
        p = stored_zip_put16(p, 0); /* internal attributes */
        p = stored_zip_put32(p, 0); /* external attributes */
        p = stored_zip_put32(p, (uint32_t)offsets[i]);
        memcpy(p, m[i].name, nlen);
        p += nlen;
    }
    size_t cd_size = (size_t)(p - buf) - cd_offset;
    p = stored_zip_put32(p, 0x06054b50);
    p = stored_zip_put32(p, 0); /* disk numbers */
    p = stored_zip_put16(p, (uint32_t)n);
    p = stored_zip_put16(p, (uint32_t)n);
    p = stored_zip_put32(p, (uint32_t)cd_size);
    p = stored_zip_put32(p, (uint32_t)cd_offset);
    p = stored_zip_put16(p, 0); /* comment length */
    *len = (size_t)(p - buf);
    return buf;
}

/* A version-1.0 .npy image of a C-order float32 array of `shape` filled
 * with `fill` + the element index (so conversions are visible), written to
 * out[cap]; returns its size, 0 when cap is too small. */
static inline size_t stored_zip_npy_f32(const int64_t *shape, int ndim, float fill, uint8_t *out, size_t cap) {
    char dims[96] = "";
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        size_t used = strlen(dims);
        snprintf(dims + used, sizeof dims - used, i ? ",%lld" : "%lld", (long long)shape[i]);
        n *= shape[i];
    }
    if (ndim == 1) strcat(dims, ","); /* numpy writes (4,) but (2,3) */
    char header[128];
    int hlen = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                        dims);
    size_t head = 10 + (size_t)hlen + 1, padded = (head + 63) / 64 * 64;
    size_t total = padded + (size_t)n * 4;
    if (total > cap) return 0;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    stored_zip_put16(out + 8, (uint32_t)(padded - 10));
    memcpy(out + 10, header, (size_t)hlen);
    memset(out + 10 + hlen, ' ', padded - 10 - (size_t)hlen - 1);
    out[padded - 1] = '\n';
    for (int64_t i = 0; i < n; i++) {
        float v = fill + (float)i;
        memcpy(out + padded + 4 * i, &v, 4);
    }
    return total;
}

#endif
