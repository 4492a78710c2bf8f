/* read_pass.h — the benchmark's one STREAM-like read, shared by
 * bench/stream.c (a 4 GiB buffer of its own) and bench/decode_paired.c (the
 * tensors of a loaded model), so that both bounds come from the same loop.
 *
 * The bytes are a list of spans read as one run: each of THREADS threads
 * reads one contiguous part of it (as a decode step streams the weights
 * once), summing 8-byte words into 8 independent sums, so the loop is bound
 * by loads, not by adds. A pass is timed from the threads' common start to
 * the last join; the best of several passes counts. Header-only: the two
 * helpers are built by different CMake projects. */
#ifndef BITPARITY_BENCH_READ_PASS_H
#define BITPARITY_BENCH_READ_PASS_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define READ_PASS_MAX_THREADS 256

typedef struct read_span {
    const uint8_t *p;
    uint64_t n;
} read_span;

typedef struct read_part {
    const read_span *spans;
    int64_t n_spans;
    uint64_t lo, hi; /* this thread's bytes of the spans taken as one run */
    uint64_t sum;
    pthread_barrier_t *start;
} read_part;

static void *read_pass_thread(void *arg) {
    read_part *r = arg;
    pthread_barrier_wait(r->start);
    uint64_t s[8] = {0}, at = 0;
    for (int64_t i = 0; i < r->n_spans && at < r->hi; at += r->spans[i].n, i++) {
        const uint64_t b = r->lo > at ? r->lo - at : 0, e = r->hi < at + r->spans[i].n ? r->hi - at : r->spans[i].n;
        if (b >= e) continue;
        const uint8_t *p = r->spans[i].p + b;
        const uint64_t words = (e - b) / 8;
        for (uint64_t w = 0; w + 8 <= words; w += 8)
            for (int k = 0; k < 8; k++) {
                uint64_t v;
                memcpy(&v, p + 8 * (w + (uint64_t)k), 8);
                s[k] += v;
            }
    }
    r->sum = s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7];
    return NULL;
}

static inline double read_pass_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds of the fastest of `passes` reads of the spans' `total` bytes on
 * `threads` threads (1..READ_PASS_MAX_THREADS); *check takes the sums, so
 * that no read can be optimized away. */
static inline double read_pass_best(const read_span *spans, int64_t n_spans, uint64_t total, int threads, int passes,
                                    uint64_t *check) {
    double best = 1e30;
    for (int pass = 0; pass < passes; pass++) {
        pthread_t tid[READ_PASS_MAX_THREADS];
        read_part parts[READ_PASS_MAX_THREADS];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
        const uint64_t per = total / (uint64_t)threads / 64 * 64;
        for (int t = 0; t < threads; t++) {
            parts[t] = (read_part){spans, n_spans, per * (uint64_t)t, t + 1 == threads ? total : per * (uint64_t)(t + 1),
                                   0, &start};
            pthread_create(&tid[t], NULL, read_pass_thread, &parts[t]);
        }
        pthread_barrier_wait(&start);
        const double t0 = read_pass_now();
        for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL), *check ^= parts[t].sum;
        const double s = read_pass_now() - t0;
        best = s < best ? s : best;
        pthread_barrier_destroy(&start);
    }
    return best;
}

#endif /* BITPARITY_BENCH_READ_PASS_H */
