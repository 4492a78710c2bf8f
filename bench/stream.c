/* stream.c — a STREAM-like read bandwidth for bench/run.sh: N threads each
 * sum their own contiguous part of one large buffer (beyond every cache),
 * as a decode step streams the weights once; the best of several passes
 * (bench/read_pass.h, the read bench/decode_paired.c makes of a model).
 * Prints "bandwidth_gb_s: X" (1 GB = 1e9 bytes).
 *
 *   stream [THREADS (default 2)] [MIB (default 1024)] [PASSES (default 10)] */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "read_pass.h"

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    const size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    const int passes = argc > 3 ? atoi(argv[3]) : 10;
    if (threads < 1 || threads > READ_PASS_MAX_THREADS || mib < 1 || passes < 1) {
        fprintf(stderr, "usage: stream [THREADS (1..%d)] [MIB] [PASSES]\n", READ_PASS_MAX_THREADS);
        return 2;
    }
    const size_t n = mib * 1024 * 1024 / sizeof(uint64_t);
    uint64_t *buf = aligned_alloc(64, n * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "stream: cannot allocate %zu MiB\n", mib);
        return 3;
    }
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9e3779b97f4a7c15ull; /* touch every page */
    const read_span all = {(const uint8_t *)buf, n * sizeof *buf};
    uint64_t check = 0;
    const double best = read_pass_best(&all, 1, all.n, threads, passes, &check);
    printf("bandwidth_gb_s: %.2f\n", (double)all.n / best / 1e9);
    fprintf(stderr, "stream: %d threads, %zu MiB, best of %d passes (checksum %llx)\n", threads, mib, passes,
            (unsigned long long)check);
    free(buf);
    return 0;
}
