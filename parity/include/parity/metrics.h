/* metrics.h — how far a subject tensor is from a reference tensor.
 *
 * parity_metrics_compute(a = subject, b = reference) reduces two float32 arrays
 * to the per-tap statistics of docs/design.md plus the anchors' own variants
 * (docs/specs/metrics.md), so a receipt can be read next to llama.cpp's output:
 *
 *   nmse        Σ(a−b)²/Σb²                 docs/design.md (normalised by the reference)
 *   nmse_llama  Σ(a−b)²/Σa²                 test-backend-ops (a = backend under test)
 *   nmse_var    mean((a−b)²)/var(b)         convert check-nmse.py (population variance)
 *
 * NaN-aware: every floating statistic is taken over the pairs where both
 * values are finite; NaN and ±inf are counted separately, and an inf must be
 * matched by the same inf on the other side (inf_mismatch).
 *
 * Determinism: the input is cut into fixed chunks of PARITY_METRICS_CHUNK
 * elements; inside a chunk element j is accumulated (in double) into lane
 * j mod 8, lanes are summed 0..7, and chunk partials are summed in chunk
 * order. The portable and AVX2 kernels follow that exact order with the same
 * IEEE operations (no FMA), so results are bit-identical for every thread
 * count and either kernel.
 */
#ifndef PARITY_METRICS_H
#define PARITY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/status.h"
#include "bitnet/threads.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PARITY_METRICS_CHUNK 65536 /* elements per deterministic chunk */
#define PARITY_NO_INDEX SIZE_MAX   /* worst_index when there is no finite pair */

typedef struct parity_metrics {
    size_t n;            /* elements compared */
    size_t n_finite;     /* pairs with both values finite: the domain of all double fields */
    size_t nan_a, nan_b; /* NaN count in subject / reference */
    size_t inf_a, inf_b; /* ±inf count in subject / reference */
    size_t nan_mismatch; /* pairs with a NaN on exactly one side */
    size_t inf_mismatch; /* non-NaN pairs with an inf that the other side does not equal */
    size_t n_bitdiff;    /* elements whose 32-bit patterns differ */
    int bit_identical;   /* 1 iff memcmp(a, b) == 0: -0 != +0, NaNs must carry the same payload */

    double max_abs;  /* max |a−b| */
    double mean_abs; /* mean |a−b| */
    double rms_err;  /* sqrt(mean (a−b)²) */
    double nmse;        /* Σ(a−b)²/Σb²; 0 when both sums are 0, +inf when only Σb² is */
    double nmse_llama;  /* Σ(a−b)²/Σa²; same conventions */
    double nmse_var;    /* mean((a−b)²)/var(b); same conventions */
    double cosine;      /* Σab/√(Σa²Σb²), evaluated as ±√(1 − Σ(a−s·b)²/Σa²) so that 1 − cosine
                         * keeps its precision near 1; 1 when both are all zero, 0 when one is */
    double rel_rms;     /* rms_err / rms(b) = √nmse */
    double scale;       /* s = argmin_s ‖a − s·b‖ = Σab/Σb² (0 when Σb² = 0) */
    double scale_nmse;  /* Σ(a − s·b)²/Σ(s·b)²: what is left once the scale is explained */

    size_t worst_index;   /* first flat index where |a−b| = max_abs, or PARITY_NO_INDEX */
    float worst_a, worst_b; /* the two values there */

    /* ULP distance |ord(a) − ord(b)| with ord the ordered-integer view of a
     * float (±0 both map to 0, so -0 vs +0 is 0 ulp; +inf is one ulp above
     * FLT_MAX). Taken over pairs where neither value is NaN. */
    size_t ulp_n;      /* pairs in the ulp domain */
    size_t ulp_nonzero; /* pairs with distance > 0 */
    uint32_t ulp_max;
    double ulp_mean;
} parity_metrics;

/* Compares a (subject) with b (reference), n floats each, into *out. pool may
 * be NULL (one thread); its SIMD level (bn_pool_simd) picks the kernel. The
 * result does not depend on the pool size or the kernel. n = 0 is valid (all
 * counts 0, distances 0, cosine 1). INVALID for NULL arrays with n > 0;
 * NOMEM when the per-chunk scratch (≈ 112 bytes per 65536 elements) cannot be
 * allocated. */
bn_status parity_metrics_compute(const float *a, const float *b, size_t n, bn_pool *pool,
                                 parity_metrics *out, bn_error *err);

/* Streaming form for traces read piece by piece: begin, add pieces in order,
 * end. Gives bit for bit the result of one compute over the concatenation,
 * provided every piece but the last has a length that is a multiple of
 * PARITY_METRICS_CHUNK (add returns INVALID otherwise). */
typedef struct parity_metrics_acc {
    size_t n;              /* elements added so far */
    int open_tail;         /* a piece of non-chunk-multiple length was added: no more pieces */
    double sum[6];         /* Σ|d|, Σd², Σa², Σb², Σd·b, Σb over finite pairs (d = a−b) */
    double max_abs;        /* max |d| so far */
    size_t worst_index;    /* first index with |d| = max_abs, PARITY_NO_INDEX while none */
    float worst_a, worst_b;
    size_t count[8];       /* nan_a, nan_b, inf_a, inf_b, nan_both, nan_mismatch, inf_mismatch, special pairs */
    size_t n_bitdiff, ulp_nonzero;
    uint64_t ulp_sum;
    uint32_t ulp_max;
} parity_metrics_acc;

/* Resets acc to the empty comparison. */
void parity_metrics_begin(parity_metrics_acc *acc);

/* Adds the next n elements of both arrays (see the chunk rule above). */
bn_status parity_metrics_add(parity_metrics_acc *acc, const float *a, const float *b, size_t n,
                             bn_pool *pool, bn_error *err);

/* Derives every field of *out from what was added. acc stays valid. */
void parity_metrics_end(const parity_metrics_acc *acc, parity_metrics *out);

/* ---- logits [T, V] -------------------------------------------------------- */

#define PARITY_TOPK_MAX 10

/* One position (row) of the logits, everything in float64 as llama.cpp's
 * `perplexity --kl-divergence` does with base log-probs lb and current la:
 *   kld = Σ_{i: lb_i > −16} e^{lb_i} (lb_i − la_i)   (KL(b‖a), nats)
 * A row holding NaN or +inf on either side is `valid = 0`: kld = +inf, every
 * agreement 0, dp excluded from the Δp statistics. −inf logits are legitimate
 * (probability 0). */
typedef struct parity_logits_pos {
    int valid;            /* both rows free of NaN and +inf */
    uint32_t top_a, top_b; /* argmax of each row, lowest index on ties */
    int same_top;         /* top_a == top_b (llama.cpp "same top p") */
    int top1_agree;       /* b[top_a] == max b: the subject picks one of the reference's top tokens */
    double top5_overlap;  /* |top5(a) ∩ top5(b)| / 5 (ties broken by lower index) */
    double top10_overlap; /* same for k = 10 (k = V when V < k) */
    double kld;           /* KL(b‖a) as above */
    double dp;            /* Δp = p_a(top_b) − p_b(top_b) */
} parity_logits_pos;

typedef struct parity_logits_summary {
    size_t n_pos;        /* positions T */
    size_t n_invalid;    /* rows with NaN or +inf */
    double top1_agree;   /* fraction of positions with top1_agree */
    double top5_overlap, top10_overlap; /* mean over positions */
    double same_top_p, same_top_p_err; /* fraction, √(p(1−p)/(T−1)) */
    double kld_mean, kld_mean_err;     /* llama.cpp: err = √((Σk²/T − mean²)/(T−1)) when T > 10, else 0 */
    double kld_min, kld_p01, kld_p05, kld_p10, kld_median, kld_p90, kld_p95, kld_p99, kld_p999, kld_max;
    double dp_mean, dp_rms, dp_max_abs; /* over valid positions */
} parity_logits_summary;

/* Compares subject logits a with reference logits b, both [T, V] row-major.
 * per_pos (T entries) may be NULL. Percentiles follow llama.cpp: sort, p =
 * f·(T−1), linear interpolation between neighbours. Rows run on the pool;
 * results do not depend on it. T = 0 gives an all-zero summary. INVALID for
 * V = 0 (with T > 0) or NULL arrays; NOMEM when T doubles of scratch cannot be
 * allocated. */
bn_status parity_logits_compute(const float *a, const float *b, size_t T, size_t V, bn_pool *pool,
                                parity_logits_pos *per_pos, parity_logits_summary *out, bn_error *err);

/* llama.cpp's percentile of a sorted array: f <= 0 → first, f >= 1 → last,
 * else linear interpolation at f·(n−1). n = 0 gives 0. */
double parity_percentile(const double *sorted, size_t n, double f);

/* Ordered-integer ULP distance between two non-NaN floats (±0 are 0 apart). */
uint32_t parity_ulp_distance(float x, float y);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_METRICS_H */
