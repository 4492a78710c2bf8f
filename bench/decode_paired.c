/* decode_paired.c — decode held against the read bandwidth of the same
 * second, in one process, for bench/run.sh.
 *
 *   decode_paired MODEL [ROUNDS (default 24)] [TOKENS (default 8)] [THREADS (default 2)]
 *
 * Why: the bound of bench/run.sh's headline fraction is a stream pass of
 * another process, and on a shared host the read bandwidth changes level
 * from one process and minute to the next (33-38 or 55-65 GB/s on the CI
 * kind of VM), so a decode run of one level is often held against a bound
 * of the other. Here both share the process, the pages and the second:
 * every round reads every tensor of the loaded model once (the bytes a
 * decoded token reads, on the same THREADS threads, as bench/stream.c
 * reads its buffer: each thread one contiguous half, 8 independent sums;
 * the best of 3 passes), then decodes TOKENS tokens; a round's bound is
 * one token per read pass, so its fraction is the pass's time over a
 * token's. The tokens take the positions of bench/run.sh's decode runs
 * (64 after a 16-token prompt, then a new sequence: attention's share
 * grows with the position). The model is read into memory (--load
 * memory, run's default), the context has run's capacity.
 *
 * Prints one line per round; the rounds of the host's low and high
 * bandwidth levels (inprocess_low_level, inprocess_high_level: two levels
 * when the fastest read beats the slowest by more than 1.4x, else all
 * rounds in inprocess_one_level); inprocess_bandwidth_gb_s,
 * inprocess_decode_tok_s and decode_fraction_of_inprocess_bound (medians
 * over all rounds) and decode_fraction_of_inprocess_bound_range. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bitnet/forward.h"
#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "bitnet/session.h"
#include "read_pass.h"

#define READ_PASSES 3
#define PROMPT 16
#define DECODED 64 /* bench/run.sh's decode runs: 64 tokens after a 16-token prompt */

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: decode_paired MODEL [ROUNDS] [TOKENS] [THREADS]\n");
        return 2;
    }
    const int rounds = argc > 2 ? atoi(argv[2]) : 24, tokens = argc > 3 ? atoi(argv[3]) : 8,
              threads = argc > 4 ? atoi(argv[4]) : 2;
    if (rounds < 1 || rounds > 1000 || tokens < 1 || tokens > DECODED || DECODED % tokens || threads < 1 ||
        threads > READ_PASS_MAX_THREADS) {
        fprintf(stderr, "decode_paired: ROUNDS in 1..1000, TOKENS a divisor of %d, THREADS in 1..%d\n", DECODED,
                READ_PASS_MAX_THREADS);
        return 2;
    }
    bn_error err = {0};
    bn_model *m = NULL;
    bn_ctx *c = NULL;
    read_span *spans = NULL;
    double *bw = calloc((size_t)rounds, sizeof *bw), *rate = calloc((size_t)rounds, sizeof *rate),
           *frac = calloc((size_t)rounds, sizeof *frac);
    bn_status st = bw && rate && frac ? bn_model_load_with(argv[1], BN_GGUF_LOAD_MEMORY, &m, &err)
                                      : bn_error_set(&err, BN_ERR_NOMEM, "out of memory");
    bn_ctx_params cp = bn_ctx_params_init();
    cp.n_threads = threads;
    if (!st) { /* the capacity `run` gives this many positions */
        bn_session_params sp = {.ctx = cp, .n_positions = PROMPT + DECODED};
        cp.n_ctx = bn_session_n_ctx(m, &sp);
        st = bn_ctx_create(m, &cp, &c, &err);
    }
    const int64_t n_tensors = st ? 0 : bn_gguf_tensor_count(m->gguf);
    if (!st && !(spans = calloc((size_t)n_tensors, sizeof *spans)))
        st = bn_error_set(&err, BN_ERR_NOMEM, "out of memory");
    uint64_t total = 0, check = 0;
    for (int64_t i = 0; i < n_tensors && !st; i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(m->gguf, i);
        spans[i] = (read_span){t->data, t->nbytes};
        total += t->nbytes;
    }
    /* ids 100, 101, ... as bench/run.sh's prompts (wrapped into a small vocabulary) */
    const int64_t V = st ? 1 : m->hp.n_vocab;
    int32_t prompt[PROMPT];
    int64_t next = 100 + PROMPT;
    for (int i = 0; i < PROMPT; i++) prompt[i] = (int32_t)((100 + i) % V);
    for (int r = 0; r < rounds && !st; r++) {
        /* the positions of bench/run.sh's decode runs, over and over: a new
         * sequence (its prompt not timed) every DECODED tokens */
        if (bn_ctx_n_past(c) >= PROMPT + DECODED || r == 0) {
            bn_ctx_reset(c);
            if ((st = bn_ctx_eval_logits(c, prompt, PROMPT, PROMPT - 1, 1, &err))) break;
        }
        const double read_s = read_pass_best(spans, n_tensors, total, threads, READ_PASSES, &check);
        const double t0 = read_pass_now();
        for (int k = 0; k < tokens && !st; k++) {
            const int32_t tok = (int32_t)(next++ % V);
            st = bn_ctx_eval_logits(c, &tok, 1, 0, 1, &err);
        }
        if (st) break;
        const double decode_s = (read_pass_now() - t0) / tokens; /* one token */
        bw[r] = (double)total / read_s / 1e9;
        rate[r] = 1.0 / decode_s;
        frac[r] = read_s / decode_s;
        printf("round %d: read %.2f GB/s (bound %.2f tok/s), decode %.2f tok/s, %.4f of the bound\n", r + 1, bw[r],
               1.0 / read_s, rate[r], frac[r]);
    }
    if (st) goto done;
    printf("bytes_per_token: %llu\n", (unsigned long long)total);
    /* the host's levels (33-38 and 55-65 GB/s on the CI kind of VM; a
     * level's own rounds differ by up to ~1.2x): two when the fastest read
     * beats the slowest by more than 1.4x, split at their geometric mean */
    double lo_bw = bw[0], hi_bw = bw[0];
    for (int r = 1; r < rounds; r++) lo_bw = bw[r] < lo_bw ? bw[r] : lo_bw, hi_bw = bw[r] > hi_bw ? bw[r] : hi_bw;
    const bool two_levels = hi_bw > 1.4 * lo_bw;
    const double split = two_levels ? sqrt(lo_bw * hi_bw) : hi_bw;
    for (int level = 0; level < 2; level++) {
        double lb[1000], lf[1000];
        int n = 0;
        for (int r = 0; r < rounds; r++)
            if ((bw[r] > split) == (level == 1)) lb[n] = bw[r], lf[n] = frac[r], n++;
        /* one level seen: which of the host's it is, the read rate says */
        if (n)
            printf("inprocess_%s_level: %d rounds, read %.2f GB/s, decode at %.4f of the bound (medians)\n",
                   !two_levels ? "one" : level ? "high" : "low", n, median(lb, n), median(lf, n));
    }
    printf("inprocess_bandwidth_gb_s: %.2f\n", median(bw, rounds));
    printf("inprocess_decode_tok_s: %.2f\n", median(rate, rounds));
    const double frac_median = median(frac, rounds); /* frac is sorted from here on */
    printf("decode_fraction_of_inprocess_bound: %.4f\n", frac_median);
    printf("decode_fraction_of_inprocess_bound_range: %.4f %.4f\n", frac[0], frac[rounds - 1]);
    fprintf(stderr, "decode_paired: %d rounds of %d tokens, %d threads (checksum %llx)\n", rounds, tokens, threads,
            (unsigned long long)check);
done:
    if (st) fprintf(stderr, "decode_paired: %s\n", err.msg);
    free(spans), free(bw), free(rate), free(frac);
    bn_ctx_free(c);
    bn_model_free(m);
    return st ? bn_status_exit_code(st) : 0;
}
