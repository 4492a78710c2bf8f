/* threads.c — fixed worker pool (pthreads) with a chunked parallel-for.
 *
 * One job at a time: the caller publishes (fn, ctx, chunking), bumps the
 * generation and wakes the workers; everybody, caller included, claims chunk
 * numbers from one atomic counter until none are left; the caller then waits
 * until every worker has left the job, so ctx may live on its stack.
 *
 * Decoding one token runs a few dozen short jobs back to back, so sleeping
 * on a condition variable after each one costs more than the job: workers
 * and the caller first spin briefly on the atomic generation / busy count,
 * and only then block.
 */
#include "bitnet/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct bn_pool {
    int n_threads;            /* caller + workers */
    bn_simd simd;             /* decided at creation (bn_simd_best) */
    unsigned int8_dot;        /* bn_cpu_int8_dot at creation */
    pthread_t *workers;       /* [n_threads - 1] */
    int n_started;            /* workers actually running (for cleanup) */
    pthread_mutex_t mu;
    pthread_cond_t start_cv;  /* workers wait here for a new generation */
    pthread_cond_t done_cv;   /* the caller waits here for busy == 0 */
    atomic_uint_fast64_t generation; /* bumped once per job (under mu, read without it while spinning) */
    atomic_int busy;          /* workers still inside the job */
    bool stop;                /* guarded by mu */
    /* The current job; written by the caller before the generation bump. */
    bn_range_fn fn;
    void *ctx;
    int64_t n, grain, n_chunks;
    atomic_int_fast64_t next_chunk;
};

static void run_chunks(bn_pool *p) {
    for (;;) {
        int64_t c = atomic_fetch_add(&p->next_chunk, 1);
        if (c >= p->n_chunks) return;
        int64_t begin = c * p->grain;
        int64_t end = p->n - begin < p->grain ? p->n : begin + p->grain;
        p->fn(p->ctx, begin, end);
    }
}

/* Spin iterations before blocking: 10-100 microseconds (pause takes 10-140 cycles). */
#define SPIN_ROUNDS 2000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg) {
    bn_pool *p = arg;
    uint64_t seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->generation) == seen; i++) cpu_relax();
        if (atomic_load(&p->generation) == seen) {
            pthread_mutex_lock(&p->mu);
            while (!p->stop && atomic_load(&p->generation) == seen) pthread_cond_wait(&p->start_cv, &p->mu);
            const bool stop = p->stop;
            pthread_mutex_unlock(&p->mu);
            if (stop) return NULL;
        }
        seen = atomic_load(&p->generation);

        run_chunks(p);

        if (atomic_fetch_sub(&p->busy, 1) == 1) { /* the last one out wakes a blocked caller */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void stop_workers(bn_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->workers[i], NULL);
    p->n_started = 0;
}

bn_status bn_pool_create(int n_threads, bn_pool **out, bn_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > BN_POOL_MAX_THREADS)
        return bn_error_set(err, BN_ERR_INVALID, "threads: %d threads requested (allowed 1..%d)",
                            n_threads, BN_POOL_MAX_THREADS);
    bn_pool *p = calloc(1, sizeof *p);
    if (!p) return bn_error_nomem(err, sizeof *p, "threads: the pool");
    p->n_threads = n_threads;
    p->simd = bn_simd_best();
    p->int8_dot = bn_cpu_int8_dot();
    atomic_init(&p->next_chunk, 0);
    atomic_init(&p->generation, 0);
    atomic_init(&p->busy, 0);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            free(p);
            return bn_error_nomem(err, ((size_t)n_threads - 1) * sizeof *p->workers, "threads: %d workers",
                                  n_threads - 1);
        }
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    for (int i = 0; i < n_threads - 1; i++) {
        int rc = pthread_create(&p->workers[i], NULL, worker_main, p);
        if (rc != 0) {
            bn_pool_destroy(p);
            return bn_error_set(err, BN_ERR_INTERNAL, "threads: cannot start worker %d of %d: %s",
                                i + 1, n_threads - 1, strerror(rc));
        }
        p->n_started++;
    }
    *out = p;
    return BN_OK;
}

void bn_pool_destroy(bn_pool *p) {
    if (!p) return;
    stop_workers(p);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->start_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int bn_pool_size(const bn_pool *p) { return p ? p->n_threads : 1; }

bn_simd bn_pool_simd(const bn_pool *p) { return p ? p->simd : bn_simd_best(); }

unsigned bn_pool_cpu_int8_dot(const bn_pool *p) { return p ? p->int8_dot : bn_cpu_int8_dot(); }

bn_status bn_pool_set_simd(bn_pool *p, bn_simd s, bn_error *err) {
    if (s != BN_SIMD_PORTABLE && s != BN_SIMD_AVX2)
        return bn_error_set(err, BN_ERR_INVALID, "threads: SIMD level %d is not a concrete level", (int)s);
    if (s == BN_SIMD_AVX2 && bn_simd_best() != BN_SIMD_AVX2)
        return bn_error_set(err, BN_ERR_INVALID, "threads: this CPU lacks AVX2/FMA/F16C");
    p->simd = s;
    return BN_OK;
}

void bn_pool_parallel_for(bn_pool *p, int64_t n, int64_t grain, bn_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t n_chunks = n / grain + (n % grain != 0);
    if (!p || p->n_threads == 1 || n_chunks == 1) {
        for (int64_t c = 0; c < n_chunks; c++) {
            int64_t begin = c * grain;
            fn(ctx, begin, n - begin < grain ? n : begin + grain);
        }
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->grain = grain;
    p->n_chunks = n_chunks;
    atomic_store(&p->next_chunk, 0);
    atomic_store(&p->busy, p->n_started);
    atomic_fetch_add(&p->generation, 1); /* publishes the job to spinning workers */
    pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mu);

    run_chunks(p);

    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->busy) > 0; i++) cpu_relax();
    if (atomic_load(&p->busy) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->busy) > 0) pthread_cond_wait(&p->done_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
