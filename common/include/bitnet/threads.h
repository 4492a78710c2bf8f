/* threads.h — a fixed pool of worker threads and a deterministic parallel-for.
 *
 * The pool also records the SIMD level of the machine (bitnet/simd.h), decided
 * once when the pool is created (bn_simd_best), so kernels never consult
 * global state: code that runs on a pool asks bn_pool_simd() and passes the
 * level down.
 *
 * Determinism: bn_pool_parallel_for splits [0, n) into the same chunks for
 * every thread count; which thread runs a chunk varies, so callers make each
 * chunk's result independent of the thread that computes it (the matmul
 * kernels compute every output element entirely inside one chunk).
 */
#ifndef BITNET_THREADS_H
#define BITNET_THREADS_H

#include <stdint.h>

#include "bitnet/simd.h"
#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BN_POOL_MAX_THREADS 256

typedef struct bn_pool bn_pool; /* a fixed set of worker threads */

/* Creates a pool that runs parallel_for on n_threads threads: the caller plus
 * n_threads-1 workers (n_threads = 1: no worker, everything runs inline on the
 * caller). The SIMD level is bn_simd_best(). INVALID when n_threads is
 * outside [1, BN_POOL_MAX_THREADS]; NOMEM/INTERNAL when threads cannot be
 * started (nothing is leaked). */
bn_status bn_pool_create(int n_threads, bn_pool **out, bn_error *err);

/* Stops and joins the workers and frees the pool. NULL is fine. Must not be
 * called while a parallel_for is running. */
void bn_pool_destroy(bn_pool *p);

/* Number of threads that run a parallel_for (>= 1); 1 for a NULL pool. */
int bn_pool_size(const bn_pool *p);

/* The pool's SIMD level (never AUTO); bn_simd_best() for a NULL pool. */
bn_simd bn_pool_simd(const bn_pool *p);

/* The CPU's int8 dot-product extensions (bn_cpu_int8_dot), recorded when
 * the pool was created; bn_cpu_int8_dot() for a NULL pool. */
unsigned bn_pool_cpu_int8_dot(const bn_pool *p);

/* Overrides the pool's SIMD level (tests, benchmarks). INVALID when the CPU
 * does not support `s` or `s` is BN_SIMD_AUTO. */
bn_status bn_pool_set_simd(bn_pool *p, bn_simd s, bn_error *err);

typedef void (*bn_range_fn)(void *ctx, int64_t begin, int64_t end);

/* Calls fn(ctx, begin, end) over [0, n) cut into the chunks [c*grain,
 * min(n, (c+1)*grain)) — the same chunks for every pool size — so that every
 * index is in exactly one call. Chunks run concurrently on the pool's threads
 * (the caller takes part); returns when all have finished. grain < 1 counts
 * as 1; n <= 0 calls nothing. A NULL pool runs every chunk inline, in order.
 * Not reentrant: fn must not call parallel_for on the same pool, and one
 * pool serves one caller thread at a time. */
void bn_pool_parallel_for(bn_pool *p, int64_t n, int64_t grain, bn_range_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_THREADS_H */
