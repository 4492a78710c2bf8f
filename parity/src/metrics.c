/* metrics.c — per-tap and logits metrics (contracts in parity/metrics.h).
 *
 * The tensor kernel is the hot path of `bitparity compare` (two 1 GB traces in
 * a few seconds), so it reads each element once and keeps every sum in eight
 * double lanes; the AVX2 kernel is the portable one written with intrinsics,
 * operation for operation, which is what makes the two bit-identical. */
#include "parity/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PARITY_HAVE_AVX2 1
#include <immintrin.h>
#endif

/* a*b+c must round twice in both kernels; clang would otherwise fuse it in
 * the portable one (GCC does not contract in ISO C mode). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

enum { S_ABS, S_D2, S_A2, S_B2, S_DB, S_B, N_SUM };
enum { C_NAN_A, C_NAN_B, C_INF_A, C_INF_B, C_NAN_BOTH, C_NAN_MISMATCH, C_INF_MISMATCH, C_SPECIAL, N_COUNT };
#define LANES 8

/* What one chunk contributes; combined in chunk order by acc_merge. */
typedef struct chunk_result {
    double sum[N_SUM];       /* over finite pairs, lanes already reduced 0..7 */
    double max_abs;          /* max |d| in the chunk (0 when no finite pair) */
    uint64_t ulp_sum;
    uint32_t ulp_max;
    uint32_t count[N_COUNT]; /* chunk-local counts (a chunk has ≤ 65536 elements) */
    uint32_t n_bitdiff, ulp_nonzero;
} chunk_result;

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static int is_special(uint32_t u) { return (u & 0x7f800000u) == 0x7f800000u; }
static int is_nan_bits(uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; }

/* Monotonic map float → uint32 with ±0 sharing one key: key = 2^31 ± |x|. */
static uint32_t ord_key(uint32_t u) {
    uint32_t mag = u & 0x7fffffffu;
    return (u >> 31) ? 0x80000000u - mag : 0x80000000u + mag;
}

static uint32_t key_distance(uint32_t ka, uint32_t kb) { return ka > kb ? ka - kb : kb - ka; }

uint32_t parity_ulp_distance(float x, float y) { return key_distance(ord_key(bits_of(x)), ord_key(bits_of(y))); }

/* Classifies a pair with a NaN or inf on either side. Only such pairs come
 * here, so the hot loops pay for one compare in the common case. */
static void count_special(uint32_t ua, uint32_t ub, uint32_t count[N_COUNT]) {
    int na = is_nan_bits(ua), nb = is_nan_bits(ub);
    int ia = is_special(ua) && !na, ib = is_special(ub) && !nb;
    count[C_SPECIAL]++;
    count[C_NAN_A] += (uint32_t)na;
    count[C_NAN_B] += (uint32_t)nb;
    count[C_INF_A] += (uint32_t)ia;
    count[C_INF_B] += (uint32_t)ib;
    count[C_NAN_BOTH] += (uint32_t)(na && nb);
    count[C_NAN_MISMATCH] += (uint32_t)(na != nb);
    count[C_INF_MISMATCH] += (uint32_t)(!na && !nb && (ia || ib) && ua != ub);
}

/* Sums the lanes in the one order both kernels use. */
static void reduce_lanes(double lane[N_SUM][LANES], double sum[N_SUM]) {
    for (int s = 0; s < N_SUM; s++) {
        double t = lane[s][0];
        for (int l = 1; l < LANES; l++) t += lane[s][l];
        sum[s] = t;
    }
}

static void chunk_portable(const float *a, const float *b, size_t len, chunk_result *r) {
    double lane[N_SUM][LANES] = {{0}};
    double mx = 0;
    uint64_t ulp_sum = 0;
    uint32_t ulp_max = 0, ulp_nonzero = 0, n_bitdiff = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t ua = bits_of(a[i]), ub = bits_of(b[i]);
        int special = is_special(ua) || is_special(ub);
        int nan_pair = 0;
        if (special) {
            count_special(ua, ub, r->count);
            nan_pair = is_nan_bits(ua) || is_nan_bits(ub);
        }
        /* Non-finite pairs add +0.0 to every lane, exactly as the masked
         * vector lanes do. */
        double da = special ? 0.0 : (double)a[i], db = special ? 0.0 : (double)b[i];
        double d = da - db, ad = fabs(d);
        size_t l = i % LANES;
        lane[S_ABS][l] += ad;
        lane[S_D2][l] += d * d;
        lane[S_A2][l] += da * da;
        lane[S_B2][l] += db * db;
        lane[S_DB][l] += d * db;
        lane[S_B][l] += db;
        mx = ad > mx ? ad : mx;
        uint32_t dist = nan_pair ? 0 : key_distance(ord_key(ua), ord_key(ub));
        ulp_sum += dist;
        ulp_max = dist > ulp_max ? dist : ulp_max;
        ulp_nonzero += dist != 0;
        n_bitdiff += ua != ub;
    }
    reduce_lanes(lane, r->sum);
    r->max_abs = mx;
    r->ulp_sum = ulp_sum;
    r->ulp_max = ulp_max;
    r->ulp_nonzero = ulp_nonzero;
    r->n_bitdiff = n_bitdiff;
}

#ifdef PARITY_HAVE_AVX2
#define AVX2_TARGET __attribute__((target("avx2,popcnt")))

/* Widens 8 floats (special lanes already zeroed) to two double vectors:
 * elements 0..3 → lanes 0..3, 4..7 → lanes 4..7. */
AVX2_TARGET static void widen(__m256 v, __m256d *lo, __m256d *hi) {
    *lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    *hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
}

typedef struct avx2_acc {
    __m256d sum[N_SUM][2]; /* [s][0] = lanes 0..3, [s][1] = lanes 4..7 */
    __m256d mx;
    __m256i ulp_sum;       /* 4 × u64 */
    __m256i ulp_max;       /* 8 × u32 */
} avx2_acc;

/* One group of 8 pairs; the caller pads a short tail with zeros (a +0 pair
 * changes no sum, count or maximum). */
AVX2_TARGET static void group_avx2(const float *a, const float *b, avx2_acc *acc, chunk_result *r) {
    const __m256i expo = _mm256_set1_epi32(0x7f800000), absm = _mm256_set1_epi32(0x7fffffff);
    __m256i ua = _mm256_loadu_si256((const __m256i *)a), ub = _mm256_loadu_si256((const __m256i *)b);
    __m256i special = _mm256_or_si256(_mm256_cmpeq_epi32(_mm256_and_si256(ua, expo), expo),
                                      _mm256_cmpeq_epi32(_mm256_and_si256(ub, expo), expo));
    __m256i nan_pair = _mm256_setzero_si256();
    if (!_mm256_testz_si256(special, special)) {
        for (int j = 0; j < LANES; j++) {
            uint32_t xa = bits_of(a[j]), xb = bits_of(b[j]);
            if (is_special(xa) || is_special(xb)) count_special(xa, xb, r->count);
        }
        nan_pair = _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_and_si256(ua, absm), expo),
                                   _mm256_cmpgt_epi32(_mm256_and_si256(ub, absm), expo));
    }
    __m256 fa = _mm256_andnot_ps(_mm256_castsi256_ps(special), _mm256_castsi256_ps(ua));
    __m256 fb = _mm256_andnot_ps(_mm256_castsi256_ps(special), _mm256_castsi256_ps(ub));
    __m256d va[2], vb[2];
    widen(fa, &va[0], &va[1]);
    widen(fb, &vb[0], &vb[1]);
    const __m256d sign = _mm256_set1_pd(-0.0);
    for (int h = 0; h < 2; h++) {
        __m256d d = _mm256_sub_pd(va[h], vb[h]), ad = _mm256_andnot_pd(sign, d);
        acc->sum[S_ABS][h] = _mm256_add_pd(acc->sum[S_ABS][h], ad);
        acc->sum[S_D2][h] = _mm256_add_pd(acc->sum[S_D2][h], _mm256_mul_pd(d, d));
        acc->sum[S_A2][h] = _mm256_add_pd(acc->sum[S_A2][h], _mm256_mul_pd(va[h], va[h]));
        acc->sum[S_B2][h] = _mm256_add_pd(acc->sum[S_B2][h], _mm256_mul_pd(vb[h], vb[h]));
        acc->sum[S_DB][h] = _mm256_add_pd(acc->sum[S_DB][h], _mm256_mul_pd(d, vb[h]));
        acc->sum[S_B][h] = _mm256_add_pd(acc->sum[S_B][h], vb[h]);
        acc->mx = _mm256_max_pd(acc->mx, ad);
    }
    /* ord_key: 2^31 + (sign ? −mag : mag), the negation done as (m ^ s) − s. */
    const __m256i bias = _mm256_set1_epi32((int)0x80000000u);
    __m256i sa = _mm256_srai_epi32(ua, 31), sb = _mm256_srai_epi32(ub, 31);
    __m256i ka = _mm256_add_epi32(bias, _mm256_sub_epi32(_mm256_xor_si256(_mm256_and_si256(ua, absm), sa), sa));
    __m256i kb = _mm256_add_epi32(bias, _mm256_sub_epi32(_mm256_xor_si256(_mm256_and_si256(ub, absm), sb), sb));
    __m256i dist = _mm256_sub_epi32(_mm256_max_epu32(ka, kb), _mm256_min_epu32(ka, kb));
    dist = _mm256_andnot_si256(nan_pair, dist);
    acc->ulp_max = _mm256_max_epu32(acc->ulp_max, dist);
    __m256i wide = _mm256_add_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(dist)),
                                    _mm256_cvtepu32_epi64(_mm256_extracti128_si256(dist, 1)));
    acc->ulp_sum = _mm256_add_epi64(acc->ulp_sum, wide);
    unsigned eq_bits = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(ua, ub)));
    unsigned zero_dist = (unsigned)_mm256_movemask_ps(
        _mm256_castsi256_ps(_mm256_cmpeq_epi32(dist, _mm256_setzero_si256())));
    r->n_bitdiff += LANES - (uint32_t)__builtin_popcount(eq_bits);
    r->ulp_nonzero += LANES - (uint32_t)__builtin_popcount(zero_dist);
}

AVX2_TARGET static void chunk_avx2(const float *a, const float *b, size_t len, chunk_result *r) {
    avx2_acc acc;
    for (int s = 0; s < N_SUM; s++) acc.sum[s][0] = acc.sum[s][1] = _mm256_setzero_pd();
    acc.mx = _mm256_setzero_pd();
    acc.ulp_sum = acc.ulp_max = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + LANES <= len; i += LANES) group_avx2(a + i, b + i, &acc, r);
    if (i < len) {
        float ta[LANES] = {0}, tb[LANES] = {0};
        memcpy(ta, a + i, (len - i) * sizeof(float));
        memcpy(tb, b + i, (len - i) * sizeof(float));
        group_avx2(ta, tb, &acc, r);
    }
    double lane[N_SUM][LANES], mx[4];
    for (int s = 0; s < N_SUM; s++) {
        _mm256_storeu_pd(&lane[s][0], acc.sum[s][0]);
        _mm256_storeu_pd(&lane[s][4], acc.sum[s][1]);
    }
    reduce_lanes(lane, r->sum);
    _mm256_storeu_pd(mx, acc.mx);
    r->max_abs = fmax(fmax(mx[0], mx[1]), fmax(mx[2], mx[3]));
    uint64_t us[4];
    uint32_t um[LANES];
    _mm256_storeu_si256((__m256i *)us, acc.ulp_sum);
    _mm256_storeu_si256((__m256i *)um, acc.ulp_max);
    r->ulp_sum = us[0] + us[1] + us[2] + us[3];
    for (int l = 0; l < LANES; l++) r->ulp_max = um[l] > r->ulp_max ? um[l] : r->ulp_max;
}
#endif

typedef void (*chunk_fn)(const float *a, const float *b, size_t len, chunk_result *r);

typedef struct chunk_job {
    const float *a, *b;
    size_t n;
    chunk_fn kernel;
    chunk_result *out; /* one per chunk */
} chunk_job;

static void run_chunk_range(void *ctx, int64_t begin, int64_t end) {
    const chunk_job *job = ctx;
    for (int64_t c = begin; c < end; c++) {
        size_t off = (size_t)c * PARITY_METRICS_CHUNK;
        size_t len = job->n - off < PARITY_METRICS_CHUNK ? job->n - off : PARITY_METRICS_CHUNK;
        /* Accumulate on the stack: neighbouring chunks' results share cache
         * lines, and per-element writes there would ping-pong between cores. */
        chunk_result r;
        memset(&r, 0, sizeof r);
        job->kernel(job->a + off, job->b + off, len, &r);
        job->out[c] = r;
    }
}

static chunk_fn pick_kernel(bn_pool *pool) {
#ifdef PARITY_HAVE_AVX2
    if (bn_pool_simd(pool) == BN_SIMD_AVX2) return chunk_avx2;
#else
    (void)pool;
#endif
    return chunk_portable;
}

/* First index of the chunk whose |a−b| equals the chunk maximum. Runs once
 * per add, on the one chunk that holds the new worst element. */
static size_t find_worst(const float *a, const float *b, size_t len, double max_abs) {
    for (size_t i = 0; i < len; i++) {
        uint32_t ua = bits_of(a[i]), ub = bits_of(b[i]);
        if (is_special(ua) || is_special(ub)) continue;
        if (fabs((double)a[i] - (double)b[i]) == max_abs) return i;
    }
    return 0; /* unreachable when max_abs came from this chunk */
}

void parity_metrics_begin(parity_metrics_acc *acc) {
    memset(acc, 0, sizeof *acc);
    acc->worst_index = PARITY_NO_INDEX;
}

/* Adds chunk r; returns 1 when it holds a new worst element (strictly
 * larger, so earlier chunks win ties, or the first finite pair at all). */
static int acc_merge(parity_metrics_acc *acc, const chunk_result *r, size_t len) {
    for (int s = 0; s < N_SUM; s++) acc->sum[s] += r->sum[s];
    for (int c = 0; c < N_COUNT; c++) acc->count[c] += r->count[c];
    acc->n_bitdiff += r->n_bitdiff;
    acc->ulp_nonzero += r->ulp_nonzero;
    acc->ulp_sum += r->ulp_sum;
    acc->ulp_max = r->ulp_max > acc->ulp_max ? r->ulp_max : acc->ulp_max;
    int has_finite = len > r->count[C_SPECIAL];
    int first = acc->worst_index == PARITY_NO_INDEX && has_finite;
    if (!first && !(r->max_abs > acc->max_abs)) return 0;
    acc->max_abs = r->max_abs;
    acc->worst_index = 0; /* placeholder until the caller locates it */
    return 1;
}

bn_status parity_metrics_add(parity_metrics_acc *acc, const float *a, const float *b, size_t n,
                             bn_pool *pool, bn_error *err) {
    if (n == 0) return BN_OK;
    if (!acc || !a || !b) return bn_error_set(err, BN_ERR_INVALID, "parity_metrics_add: NULL argument");
    if (acc->open_tail)
        return bn_error_set(err, BN_ERR_INVALID,
                            "parity_metrics_add: piece at element %zu follows a piece whose length is not a "
                            "multiple of %d",
                            acc->n, PARITY_METRICS_CHUNK);
    size_t n_chunks = n / PARITY_METRICS_CHUNK + (n % PARITY_METRICS_CHUNK != 0);
    chunk_result *parts = malloc(n_chunks * sizeof *parts);
    if (!parts)
        return bn_error_set(err, BN_ERR_NOMEM, "parity_metrics_add: %zu chunk partials", n_chunks);
    chunk_job job = {a, b, n, pick_kernel(pool), parts};
    bn_pool_parallel_for(pool, (int64_t)n_chunks, 1, run_chunk_range, &job);
    size_t worst_chunk = SIZE_MAX;
    for (size_t c = 0; c < n_chunks; c++) {
        size_t off = c * PARITY_METRICS_CHUNK;
        size_t len = n - off < PARITY_METRICS_CHUNK ? n - off : PARITY_METRICS_CHUNK;
        if (acc_merge(acc, &parts[c], len)) worst_chunk = c;
    }
    free(parts);
    if (worst_chunk != SIZE_MAX) {
        size_t off = worst_chunk * PARITY_METRICS_CHUNK;
        size_t len = n - off < PARITY_METRICS_CHUNK ? n - off : PARITY_METRICS_CHUNK;
        size_t i = off + find_worst(a + off, b + off, len, acc->max_abs);
        acc->worst_index = acc->n + i;
        acc->worst_a = a[i];
        acc->worst_b = b[i];
    }
    acc->n += n;
    acc->open_tail = n % PARITY_METRICS_CHUNK != 0;
    return BN_OK;
}

/* num/den with the conventions of metrics.h: 0/0 = 0, x/0 = +inf. */
static double ratio(double num, double den) {
    if (den > 0) return num / den;
    return num > 0 ? INFINITY : 0.0;
}

/* Scale fit and cosine from one residual. Σ(a − s·b)² is a difference of
 * two large sums; of its two equal forms, Σd² − (Σdb)²/Σb² and
 * Σa² − (Σab)²/Σb², the one with the smaller leading sum keeps the
 * cancellation error below ~1e-16 of min(Σd², Σa²), for a ≈ b as well as for
 * a ≈ s·b with s far from 1. cos² = 1 − residual/Σa², so 1 − cosine is as
 * accurate as the residual (Σab/√(Σa²Σb²) would lose it near 1). */
static void fit_scale(const double *s, parity_metrics *m) {
    double ab = s[S_B2] + s[S_DB]; /* Σab = Σb² + Σ(a−b)b */
    if (!(s[S_B2] > 0)) {
        m->scale = 0.0;
        m->scale_nmse = ratio(s[S_A2], 0.0);
        m->cosine = s[S_A2] > 0 ? 0.0 : 1.0;
        return;
    }
    m->scale = ab / s[S_B2];
    double resid = s[S_D2] < s[S_A2] ? s[S_D2] - s[S_DB] * s[S_DB] / s[S_B2] : s[S_A2] - ab * ab / s[S_B2];
    resid = resid > 0 ? resid : 0.0;
    m->scale_nmse = ratio(resid, m->scale * m->scale * s[S_B2]);
    if (!(s[S_A2] > 0)) {
        m->cosine = 0.0;
        return;
    }
    double sin2 = resid / s[S_A2];
    m->cosine = copysign(sqrt(sin2 < 1 ? 1 - sin2 : 0.0), ab);
}

void parity_metrics_end(const parity_metrics_acc *acc, parity_metrics *m) {
    memset(m, 0, sizeof *m);
    const double *s = acc->sum;
    m->n = acc->n;
    m->n_finite = acc->n - acc->count[C_SPECIAL];
    m->nan_a = acc->count[C_NAN_A];
    m->nan_b = acc->count[C_NAN_B];
    m->inf_a = acc->count[C_INF_A];
    m->inf_b = acc->count[C_INF_B];
    m->nan_mismatch = acc->count[C_NAN_MISMATCH];
    m->inf_mismatch = acc->count[C_INF_MISMATCH];
    m->n_bitdiff = acc->n_bitdiff;
    m->bit_identical = acc->n_bitdiff == 0;

    double nf = (double)m->n_finite;
    m->max_abs = acc->max_abs;
    m->mean_abs = nf > 0 ? s[S_ABS] / nf : 0.0;
    m->rms_err = nf > 0 ? sqrt(s[S_D2] / nf) : 0.0;
    m->nmse = ratio(s[S_D2], s[S_B2]);
    m->nmse_llama = ratio(s[S_D2], s[S_A2]);
    double mean_b = nf > 0 ? s[S_B] / nf : 0.0;
    double var_b = nf > 0 ? s[S_B2] / nf - mean_b * mean_b : 0.0;
    m->nmse_var = ratio(nf > 0 ? s[S_D2] / nf : 0.0, var_b > 0 ? var_b : 0.0);
    m->rel_rms = sqrt(m->nmse);
    fit_scale(s, m);
    m->worst_index = acc->worst_index;
    m->worst_a = acc->worst_a;
    m->worst_b = acc->worst_b;
    size_t nan_any = acc->count[C_NAN_A] + acc->count[C_NAN_B] - acc->count[C_NAN_BOTH];
    m->ulp_n = acc->n - nan_any;
    m->ulp_nonzero = acc->ulp_nonzero;
    m->ulp_max = acc->ulp_max;
    m->ulp_mean = m->ulp_n > 0 ? (double)acc->ulp_sum / (double)m->ulp_n : 0.0;
}

bn_status parity_metrics_compute(const float *a, const float *b, size_t n, bn_pool *pool,
                                 parity_metrics *out, bn_error *err) {
    if (!out) return bn_error_set(err, BN_ERR_INVALID, "parity_metrics_compute: NULL output");
    parity_metrics_acc acc;
    parity_metrics_begin(&acc);
    bn_status st = parity_metrics_add(&acc, a, b, n, pool, err);
    if (st != BN_OK) return st;
    parity_metrics_end(&acc, out);
    return BN_OK;
}

/* ---- logits ----------------------------------------------------------------- */

/* Row maximum and its first index; returns 0 when the row holds NaN or +inf,
 * or nothing above −inf (no probability distribution). */
static int row_max(const float *x, size_t V, double *mx, uint32_t *arg) {
    double m = -INFINITY;
    uint32_t k = 0;
    for (size_t i = 0; i < V; i++) {
        if (isnan(x[i]) || x[i] == INFINITY) return 0;
        if (x[i] > m) {
            m = x[i];
            k = (uint32_t)i;
        }
    }
    *mx = m;
    *arg = k;
    return m > -INFINITY;
}

static double log_sum_exp(const float *x, size_t V, double mx) {
    double s = 0;
    for (size_t i = 0; i < V; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

/* Indices of the k largest values, best first, lower index first on ties. */
static size_t top_k(const float *x, size_t V, size_t k, uint32_t *idx) {
    size_t n = 0;
    for (size_t i = 0; i < V; i++) {
        if (n == k && !(x[i] > x[idx[k - 1]])) continue;
        size_t j = n < k ? n++ : k - 1;
        while (j > 0 && x[i] > x[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = (uint32_t)i;
    }
    return n;
}

static double overlap(const uint32_t *ta, const uint32_t *tb, size_t k) {
    size_t hits = 0;
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++) hits += ta[i] == tb[j];
    return k > 0 ? (double)hits / (double)k : 0.0;
}

static void logits_row(const float *a, const float *b, size_t V, parity_logits_pos *r) {
    memset(r, 0, sizeof *r);
    double ma = 0, mb = 0;
    int ok_a = row_max(a, V, &ma, &r->top_a), ok_b = row_max(b, V, &mb, &r->top_b);
    if (!ok_a || !ok_b) {
        r->kld = INFINITY;
        return;
    }
    r->valid = 1;
    r->same_top = r->top_a == r->top_b;
    r->top1_agree = b[r->top_a] == b[r->top_b];
    double lse_a = log_sum_exp(a, V, ma), lse_b = log_sum_exp(b, V, mb);
    double kld = 0;
    for (size_t i = 0; i < V; i++) {
        double lb = (double)b[i] - lse_b;
        if (lb > -16.0) kld += exp(lb) * (lb - ((double)a[i] - lse_a));
    }
    r->kld = kld;
    r->dp = exp((double)a[r->top_b] - lse_a) - exp((double)b[r->top_b] - lse_b);
    uint32_t ia[PARITY_TOPK_MAX], ib[PARITY_TOPK_MAX];
    size_t k = top_k(a, V, PARITY_TOPK_MAX, ia);
    top_k(b, V, PARITY_TOPK_MAX, ib);
    r->top5_overlap = overlap(ia, ib, k < 5 ? k : 5);
    r->top10_overlap = overlap(ia, ib, k);
}

typedef struct logits_job {
    const float *a, *b;
    size_t V;
    parity_logits_pos *pos;
} logits_job;

static void run_logits_rows(void *ctx, int64_t begin, int64_t end) {
    const logits_job *job = ctx;
    for (int64_t t = begin; t < end; t++)
        logits_row(job->a + (size_t)t * job->V, job->b + (size_t)t * job->V, job->V, &job->pos[t]);
}

double parity_percentile(const double *sorted, size_t n, double f) {
    if (n == 0) return 0.0;
    if (f <= 0) return sorted[0];
    if (f >= 1) return sorted[n - 1];
    double p = f * (double)(n - 1);
    size_t ip = (size_t)p;
    p -= (double)ip;
    size_t hi = ip + 1 < n ? ip + 1 : n - 1;
    return (1 - p) * sorted[ip] + p * sorted[hi];
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* llama.cpp's mean_and_uncertainty. */
static double mean_err(double sum, double sum2, size_t n) {
    double f = sum / (double)n, df = sum2 / (double)n - f * f;
    return df > 0 && n > 10 ? sqrt(df / (double)(n - 1)) : 0.0;
}

static void summarize(const parity_logits_pos *pos, size_t T, double *kld_sorted, parity_logits_summary *s) {
    double k1 = 0, k2 = 0, dp1 = 0, dp2 = 0;
    size_t same = 0, agree = 0;
    for (size_t t = 0; t < T; t++) {
        const parity_logits_pos *p = &pos[t];
        kld_sorted[t] = p->kld;
        k1 += p->kld;
        k2 += p->kld * p->kld;
        same += (size_t)p->same_top;
        agree += (size_t)p->top1_agree;
        s->top5_overlap += p->top5_overlap;
        s->top10_overlap += p->top10_overlap;
        s->n_invalid += (size_t)!p->valid;
        if (p->valid) {
            dp1 += p->dp;
            dp2 += p->dp * p->dp;
            s->dp_max_abs = fmax(s->dp_max_abs, fabs(p->dp));
        }
    }
    double n = (double)T;
    s->top1_agree = (double)agree / n;
    s->top5_overlap /= n;
    s->top10_overlap /= n;
    s->same_top_p = (double)same / n;
    s->same_top_p_err = T > 1 ? sqrt(s->same_top_p * (1 - s->same_top_p) / (n - 1)) : 0.0;
    s->kld_mean = k1 / n;
    s->kld_mean_err = mean_err(k1, k2, T);
    size_t nv = T - s->n_invalid;
    s->dp_mean = nv > 0 ? dp1 / (double)nv : 0.0;
    s->dp_rms = nv > 0 ? sqrt(dp2 / (double)nv) : 0.0;
    qsort(kld_sorted, T, sizeof *kld_sorted, cmp_double);
    static const struct { double f; size_t off; } q[] = {
        {0.0, offsetof(parity_logits_summary, kld_min)},     {0.001, offsetof(parity_logits_summary, kld_p01)},
        {0.05, offsetof(parity_logits_summary, kld_p05)},    {0.10, offsetof(parity_logits_summary, kld_p10)},
        {0.5, offsetof(parity_logits_summary, kld_median)},  {0.90, offsetof(parity_logits_summary, kld_p90)},
        {0.95, offsetof(parity_logits_summary, kld_p95)},    {0.99, offsetof(parity_logits_summary, kld_p99)},
        {0.999, offsetof(parity_logits_summary, kld_p999)},  {1.0, offsetof(parity_logits_summary, kld_max)},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        *(double *)((char *)s + q[i].off) = parity_percentile(kld_sorted, T, q[i].f);
}

bn_status parity_logits_compute(const float *a, const float *b, size_t T, size_t V, bn_pool *pool,
                                parity_logits_pos *per_pos, parity_logits_summary *out, bn_error *err) {
    if (!out) return bn_error_set(err, BN_ERR_INVALID, "parity_logits_compute: NULL output");
    memset(out, 0, sizeof *out);
    if (T == 0) return BN_OK;
    if (!a || !b || V == 0)
        return bn_error_set(err, BN_ERR_INVALID, "parity_logits_compute: %s", V == 0 ? "V = 0" : "NULL logits");
    if (V > UINT32_MAX || T > SIZE_MAX / V)
        return bn_error_set(err, BN_ERR_INVALID, "parity_logits_compute: [%zu, %zu] too large", T, V);
    parity_logits_pos *pos = per_pos ? per_pos : malloc(T * sizeof *pos);
    double *sorted = malloc(T * sizeof *sorted);
    if (!pos || !sorted) {
        if (!per_pos) free(pos);
        free(sorted);
        return bn_error_set(err, BN_ERR_NOMEM, "parity_logits_compute: scratch for %zu positions", T);
    }
    logits_job job = {a, b, V, pos};
    bn_pool_parallel_for(pool, (int64_t)T, 1, run_logits_rows, &job);
    out->n_pos = T;
    summarize(pos, T, sorted, out);
    if (!per_pos) free(pos);
    free(sorted);
    return BN_OK;
}
