/* stream.c — a STREAM-like read bandwidth for bench/run.sh: N threads each
 * sum their own contiguous part of one large buffer (beyond every cache),
 * as a decode step streams the weights once; the best of several passes.
 * Prints "bandwidth_gb_s: X" (1 GB = 1e9 bytes).
 *
 *   stream [THREADS (default 2)] [MIB (default 1024)] [PASSES (default 10)] */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct part {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
    pthread_barrier_t *start;
} part;

static void *read_part(void *arg) {
    part *w = arg;
    pthread_barrier_wait(w->start);
    /* 8 independent accumulators: the loop is bound by loads, not by adds */
    uint64_t s[8] = {0};
    for (size_t i = 0; i + 8 <= w->n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += w->p[i + k];
    w->sum = s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7];
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    const size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    const int passes = argc > 3 ? atoi(argv[3]) : 10;
    if (threads < 1 || threads > 256 || mib < 1 || passes < 1) {
        fprintf(stderr, "usage: stream [THREADS] [MIB] [PASSES]\n");
        return 2;
    }
    const size_t n = mib * 1024 * 1024 / sizeof(uint64_t);
    uint64_t *buf = aligned_alloc(64, n * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "stream: cannot allocate %zu MiB\n", mib);
        return 3;
    }
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9e3779b97f4a7c15ull; /* touch every page */
    double best = 0;
    uint64_t check = 0;
    for (int pass = 0; pass < passes; pass++) {
        pthread_t tid[256];
        part parts[256];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
        const size_t per = n / (size_t)threads / 8 * 8;
        for (int t = 0; t < threads; t++) {
            parts[t] = (part){buf + (size_t)t * per, per, 0, &start};
            pthread_create(&tid[t], NULL, read_part, &parts[t]);
        }
        pthread_barrier_wait(&start);
        const double t0 = now();
        for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL), check ^= parts[t].sum;
        const double gbs = (double)(per * (size_t)threads * sizeof *buf) / (now() - t0) / 1e9;
        if (gbs > best) best = gbs;
        pthread_barrier_destroy(&start);
    }
    printf("bandwidth_gb_s: %.2f\n", best);
    fprintf(stderr, "stream: %d threads, %zu MiB, best of %d passes (checksum %llx)\n", threads, mib, passes,
            (unsigned long long)check);
    free(buf);
    return 0;
}
