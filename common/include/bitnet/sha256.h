/* sha256.h — SHA-256 (FIPS 180-4) for model files, traces and policies.
 *
 * Receipts identify every input by the sha256 of its bytes, so the same digest
 * must come out of a streaming hash (NPZ members as they are written), of a
 * buffer (an embedded policy) and of a whole file (a model, hashed over mmap).
 */
#ifndef BITNET_SHA256_H
#define BITNET_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BN_SHA256_DIGEST_SIZE 32
#define BN_SHA256_HEX_SIZE 65 /* 64 lowercase hex digits + NUL */

/* The running hash: nettle's sha256_ctx (sha256.c checks that it fits),
 * kept opaque so that includers need no nettle headers. */
typedef struct bn_sha256 {
    union {
        uint64_t align;
        unsigned char bytes[160];
    } impl;
} bn_sha256;

/* Starts a new hash. */
void bn_sha256_init(bn_sha256 *s);

/* Absorbs n bytes; any split of the input into calls gives the same digest.
 * data may be NULL when n == 0. */
void bn_sha256_update(bn_sha256 *s, const void *data, size_t n);

/* Pads, writes the 32-byte digest to out and leaves s unusable until the next
 * bn_sha256_init. */
void bn_sha256_final(bn_sha256 *s, uint8_t out[BN_SHA256_DIGEST_SIZE]);

/* One-shot digest of a buffer. */
void bn_sha256_buffer(const void *data, size_t n, uint8_t out[BN_SHA256_DIGEST_SIZE]);

/* Writes the digest as 64 lowercase hex digits plus NUL (the receipt form). */
void bn_sha256_hex(const uint8_t digest[BN_SHA256_DIGEST_SIZE], char out[BN_SHA256_HEX_SIZE]);

/* Digest of n bytes in memory, polling *cancel (NULL: never) every 16 MiB:
 * BN_ERR_CANCELLED when found set. data may be NULL when n == 0. */
bn_status bn_sha256_memory(const void *data, size_t n, const volatile sig_atomic_t *cancel,
                           uint8_t out[BN_SHA256_DIGEST_SIZE], bn_error *err);

/* Digest of a whole file, read through mmap (an empty file hashes without
 * mapping). BN_ERR_IO naming the path when it cannot be opened or mapped;
 * BN_ERR_CANCELLED when *cancel (NULL: never) is found set, which is polled
 * every 16 MiB (a model of gigabytes takes seconds to hash). */
bn_status bn_sha256_file(const char *path, const volatile sig_atomic_t *cancel, uint8_t out[BN_SHA256_DIGEST_SIZE],
                         bn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_SHA256_H */
