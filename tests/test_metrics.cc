// test_metrics.cc — parity/metrics.h: every field on hand-computed vectors,
// NaN/Inf handling, determinism across thread counts and SIMD kernels, and
// the logits metrics against figures computed once with numpy.
#include "test_helpers.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

extern "C" {
#include "bitnet/threads.h"
#include "parity/metrics.h"
}

namespace {


const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

parity_metrics Compute(const std::vector<float> &a, const std::vector<float> &b, bn_pool *pool = nullptr) {
    parity_metrics m;
    bn_error err;
    bn_status st = parity_metrics_compute(a.data(), b.data(), a.size(), pool, &m, &err);
    EXPECT_OK(st, err);
    return m;
}

PoolPtr MakePool(int threads, bn_simd simd) {
    bn_pool *p = nullptr;
    bn_error err;
    EXPECT_OK(bn_pool_create(threads, &p, &err), err);
    if (p) {
        EXPECT_OK(bn_pool_set_simd(p, simd, &err), err);
    }
    return PoolPtr(p);
}

// The LCG of the numpy script below: 23-bit values scaled into [-4, 4), so
// every value is exact in float32 and identical in C++ and numpy.
struct Lcg {
    uint64_t s = 12345;
    float next() {
        s = (1103515245u * s + 12345u) % 2147483648u;
        return (float)((double)(s >> 8) / 8388608.0 * 8 - 4);
    }
};

uint64_t Bits(double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

// Field-by-field bit equality (doubles by bit pattern so NaN/inf compare).
void ExpectIdentical(const parity_metrics &x, const parity_metrics &y, const char *what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(x.n, y.n);
    EXPECT_EQ(x.n_finite, y.n_finite);
    EXPECT_EQ(x.nan_a, y.nan_a);
    EXPECT_EQ(x.nan_b, y.nan_b);
    EXPECT_EQ(x.inf_a, y.inf_a);
    EXPECT_EQ(x.inf_b, y.inf_b);
    EXPECT_EQ(x.nan_mismatch, y.nan_mismatch);
    EXPECT_EQ(x.inf_mismatch, y.inf_mismatch);
    EXPECT_EQ(x.n_bitdiff, y.n_bitdiff);
    EXPECT_EQ(x.bit_identical, y.bit_identical);
    const double *dx[] = {&x.max_abs, &x.mean_abs, &x.rms_err, &x.nmse, &x.nmse_llama, &x.nmse_var,
                          &x.cosine, &x.rel_rms, &x.scale, &x.scale_nmse, &x.ulp_mean};
    const double *dy[] = {&y.max_abs, &y.mean_abs, &y.rms_err, &y.nmse, &y.nmse_llama, &y.nmse_var,
                          &y.cosine, &y.rel_rms, &y.scale, &y.scale_nmse, &y.ulp_mean};
    for (size_t i = 0; i < sizeof dx / sizeof dx[0]; i++) EXPECT_EQ(Bits(*dx[i]), Bits(*dy[i])) << "double #" << i;
    EXPECT_EQ(x.worst_index, y.worst_index);
    EXPECT_EQ(Bits(x.worst_a), Bits(y.worst_a));
    EXPECT_EQ(Bits(x.worst_b), Bits(y.worst_b));
    EXPECT_EQ(x.ulp_n, y.ulp_n);
    EXPECT_EQ(x.ulp_nonzero, y.ulp_nonzero);
    EXPECT_EQ(x.ulp_max, y.ulp_max);
}

TEST(Metrics, HandComputedVector) {
    // d = a-b = [0, -0.5, 1, 0.25, 0]; Σd² = 1.3125, Σb² = 7.3125, Σa² = 14.25.
    std::vector<float> a = {1.0f, -2.0f, 3.0f, 0.5f, 0.0f}, b = {1.0f, -1.5f, 2.0f, 0.25f, -0.0f};
    parity_metrics m = Compute(a, b);
    EXPECT_EQ(m.n, 5u);
    EXPECT_EQ(m.n_finite, 5u);
    EXPECT_EQ(m.max_abs, 1.0);
    EXPECT_EQ(m.worst_index, 2u);
    EXPECT_EQ(m.worst_a, 3.0f);
    EXPECT_EQ(m.worst_b, 2.0f);
    // numpy (A, B float64 copies, d = A-B, s = (A*B).sum()/(B*B).sum()):
    //   abs(d).mean(), sqrt((d*d).mean()), (d*d).sum()/(B*B).sum(), (d*d).sum()/(A*A).sum(),
    //   (d*d).mean()/B.var(), (A*B).sum()/sqrt((A*A).sum()*(B*B).sum()), s, ((A-s*B)**2).sum()/((s*B)**2).sum()
    EXPECT_NEAR(m.mean_abs, 0.35, 1e-15);
    EXPECT_NEAR(m.rms_err, 0.51234753829798, 1e-14);
    EXPECT_NEAR(m.nmse, 0.1794871794871795, 1e-15);        // 1.3125/7.3125 = 7/39
    EXPECT_NEAR(m.nmse_llama, 0.09210526315789473, 1e-15); // 1.3125/14.25
    EXPECT_NEAR(m.nmse_var, 0.19589552238805974, 1e-14);
    EXPECT_NEAR(m.cosine, 0.9918697838003707, 1e-14);
    EXPECT_NEAR(m.rel_rms, 0.42365927286816174, 1e-14);
    EXPECT_NEAR(m.scale, 1.3846153846153846, 1e-14); // 10.125/7.3125 = 18/13
    EXPECT_NEAR(m.scale_nmse, 0.016460905349794237, 1e-13);
    // -0 vs +0 differ in bits but not in value or ulps; the other three are
    // 2^22, 2^22 and 2^23 ulps apart (mantissa steps of 1.5↔2, 2↔3, 0.25↔0.5).
    EXPECT_EQ(m.n_bitdiff, 4u);
    EXPECT_EQ(m.bit_identical, 0);
    EXPECT_EQ(m.ulp_n, 5u);
    EXPECT_EQ(m.ulp_nonzero, 3u);
    EXPECT_EQ(m.ulp_max, 8388608u);
    EXPECT_DOUBLE_EQ(m.ulp_mean, (4194304.0 * 2 + 8388608.0) / 5);
    EXPECT_EQ(m.nan_a + m.nan_b + m.inf_a + m.inf_b + m.nan_mismatch + m.inf_mismatch, 0u);
}

TEST(Metrics, NanAndInfAreCountedAndExcluded) {
    std::vector<float> a = {kNaN, 1.0f, kInf, -kInf, 2.0f, kNaN, 5.0f};
    std::vector<float> b = {kNaN, 1.0f, kInf, kInf, kNaN, 3.0f, 4.0f};
    parity_metrics m = Compute(a, b);
    EXPECT_EQ(m.nan_a, 2u);
    EXPECT_EQ(m.nan_b, 2u);
    EXPECT_EQ(m.nan_mismatch, 2u); // indices 4 and 5
    EXPECT_EQ(m.inf_a, 2u);
    EXPECT_EQ(m.inf_b, 2u);
    EXPECT_EQ(m.inf_mismatch, 1u); // -inf vs +inf; +inf vs +inf matches
    EXPECT_EQ(m.n_finite, 2u);     // indices 1 and 6
    EXPECT_EQ(m.max_abs, 1.0);
    EXPECT_EQ(m.worst_index, 6u);
    EXPECT_DOUBLE_EQ(m.nmse, 1.0 / 17.0);
    EXPECT_DOUBLE_EQ(m.mean_abs, 0.5);
    // ulps over the 4 pairs without NaN: 0, 0, 2·0x7f800000 (−inf to +inf), 2^21 (4 → 5).
    EXPECT_EQ(m.ulp_n, 4u);
    EXPECT_EQ(m.ulp_nonzero, 2u);
    EXPECT_EQ(m.ulp_max, 0xff000000u);
    EXPECT_DOUBLE_EQ(m.ulp_mean, (4278190080.0 + 2097152.0) / 4);
    EXPECT_EQ(m.n_bitdiff, 4u); // the NaN pair has one payload on both sides
}

TEST(Metrics, IdenticalArrays) {
    Lcg g;
    std::vector<float> a(1000);
    for (float &x : a) x = g.next();
    a[17] = kNaN;
    a[18] = -0.0f;
    parity_metrics m = Compute(a, a);
    EXPECT_EQ(m.bit_identical, 1);
    EXPECT_EQ(m.n_bitdiff, 0u);
    EXPECT_EQ(m.nmse, 0.0);
    EXPECT_EQ(m.nmse_llama, 0.0);
    EXPECT_EQ(m.max_abs, 0.0);
    EXPECT_EQ(m.ulp_max, 0u);
    EXPECT_EQ(m.ulp_nonzero, 0u);
    EXPECT_EQ(m.ulp_n, 999u);
    EXPECT_EQ(m.n_finite, 999u);
    EXPECT_EQ(m.nan_mismatch, 0u);
    EXPECT_EQ(m.nan_a, 1u);
    EXPECT_EQ(m.scale, 1.0);
    EXPECT_EQ(m.scale_nmse, 0.0);
    EXPECT_NEAR(m.cosine, 1.0, 1e-15);
    EXPECT_EQ(m.worst_index, 0u); // all distances 0: the first finite pair
}

TEST(Metrics, DifferentNanPayloadIsNotBitIdentical) {
    uint32_t q1 = 0x7fc00001u, q2 = 0x7fc00002u;
    float n1, n2;
    memcpy(&n1, &q1, 4);
    memcpy(&n2, &q2, 4);
    parity_metrics m = Compute({n1, 1.0f}, {n2, 1.0f});
    EXPECT_EQ(m.bit_identical, 0);
    EXPECT_EQ(m.n_bitdiff, 1u);
    EXPECT_EQ(m.nan_mismatch, 0u);
    EXPECT_EQ(m.ulp_n, 1u);
}

TEST(Metrics, NegativeZeroVsPositiveZero) {
    parity_metrics m = Compute({-0.0f}, {0.0f});
    EXPECT_EQ(m.bit_identical, 0);
    EXPECT_EQ(m.n_bitdiff, 1u);
    EXPECT_EQ(m.ulp_max, 0u);
    EXPECT_EQ(m.ulp_nonzero, 0u);
    EXPECT_EQ(m.max_abs, 0.0);
    EXPECT_EQ(m.nmse, 0.0);   // 0/0 by convention
    EXPECT_EQ(m.cosine, 1.0); // both all-zero
    EXPECT_EQ(m.scale, 0.0);
    EXPECT_EQ(parity_ulp_distance(-0.0f, 0.0f), 0u);
    EXPECT_EQ(parity_ulp_distance(-1e-45f, 1e-45f), 2u); // smallest subnormals straddle zero
    EXPECT_EQ(parity_ulp_distance(3.4028235e38f, kInf), 1u);
}

TEST(Metrics, ZeroReferenceConventions) {
    parity_metrics m = Compute({1.0f, 0.0f}, {0.0f, 0.0f});
    EXPECT_TRUE(std::isinf(m.nmse));
    EXPECT_EQ(m.nmse_llama, 1.0);
    EXPECT_EQ(m.cosine, 0.0);
    EXPECT_EQ(m.scale, 0.0);
    EXPECT_TRUE(std::isinf(m.scale_nmse));
    parity_metrics e = Compute({}, {});
    EXPECT_EQ(e.n, 0u);
    EXPECT_EQ(e.worst_index, (size_t)PARITY_NO_INDEX);
    EXPECT_EQ(e.cosine, 1.0);
}

TEST(Metrics, ScaleFitFindsConstantFactor) {
    Lcg g;
    std::vector<float> b(4096), a(4096), a2(4096);
    for (size_t i = 0; i < b.size(); i++) {
        b[i] = g.next();
        a[i] = 0.0198f * b[i]; // ≈ 1/√2560: the norm-weight bug the hint names
        a2[i] = 2.0f * b[i];
    }
    parity_metrics m = Compute(a, b);
    EXPECT_NEAR(m.scale, 0.0198, 0.0198 * 1e-7);
    EXPECT_LT(m.scale_nmse, 1e-13); // only float32 rounding of the product remains
    EXPECT_NEAR(m.nmse, (1 - 0.0198) * (1 - 0.0198), 1e-6);
    EXPECT_NEAR(m.cosine, 1.0, 1e-12);
    parity_metrics m2 = Compute(a2, b);
    EXPECT_EQ(m2.scale, 2.0); // exact: every product and sum is exact in double
    EXPECT_EQ(m2.scale_nmse, 0.0);
}

// Data for the large comparisons: noise plus specials at fixed places.
void MakeLarge(size_t n, std::vector<float> &a, std::vector<float> &b) {
    Lcg g;
    a.resize(n);
    b.resize(n);
    // Divisions give full 24-bit mantissas, so lane sums round and any change
    // in summation order shows up in the last bits.
    for (size_t i = 0; i < n; i++) {
        b[i] = g.next() / 3.0f + 0.1f;
        a[i] = b[i] + g.next() / 7000.0f;
    }
    for (size_t i = 777; i < n; i += 1000003) {
        a[i] = kNaN;
        b[i + 1] = kInf;
        a[i + 2] = -kInf;
        b[i + 2] = -kInf;
    }
}

TEST(Metrics, LargeIsIdenticalAcrossThreadsAndKernels) {
    std::vector<float> a, b;
    const size_t n = 5 * 1000 * 1000 + 3; // 77 chunks, the last one partial
    MakeLarge(n, a, b);
    parity_metrics single = Compute(a, b, nullptr);
    bool have_avx2 = bn_simd_best() == BN_SIMD_AVX2;
    for (bn_simd simd : {BN_SIMD_PORTABLE, BN_SIMD_AVX2}) {
        if (simd == BN_SIMD_AVX2 && !have_avx2) continue;
        for (int threads : {1, 2, 4}) {
            PoolPtr pool = MakePool(threads, simd);
            parity_metrics m = Compute(a, b, pool.get());
            std::string what = std::string(bn_simd_name(simd)) + " x" + std::to_string(threads);
            ExpectIdentical(single, m, what.c_str());
        }
    }
    if (!have_avx2) GTEST_SKIP() << "no AVX2: only the portable kernel was compared";
}

// Neumaier-compensated long double sum: an error far below double rounding,
// so the reference resolves 1 − cosine to its last bits.
struct ExactSum {
    long double s = 0, c = 0;
    void add(long double x) {
        long double t = s + x;
        c += fabsl(s) >= fabsl(x) ? (s - t) + x : (x - t) + s;
        s = t;
    }
    long double get() const { return s + c; }
};

TEST(Metrics, LargeMatchesCompensatedReference) {
    std::vector<float> a, b;
    const size_t n = 3 * PARITY_METRICS_CHUNK + 4321;
    MakeLarge(n, a, b);
    ExactSum d2s, b2s, a2s, abs_, sabs;
    long double mx = 0;
    size_t nf = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!std::isfinite(a[i]) || !std::isfinite(b[i])) continue;
        long double x = a[i], y = b[i], d = x - y;
        d2s.add(d * d);
        b2s.add(y * y);
        a2s.add(x * x);
        abs_.add(x * y);
        sabs.add(fabsl(d));
        if (fabsl(d) > mx) mx = fabsl(d), worst = i;
        nf++;
    }
    long double d2 = d2s.get(), b2 = b2s.get(), a2 = a2s.get(), ab = abs_.get();
    parity_metrics m = Compute(a, b);
    EXPECT_EQ(m.n_finite, nf);
    EXPECT_EQ(m.max_abs, (double)mx);
    EXPECT_EQ(m.worst_index, worst);
    EXPECT_NEAR(m.nmse, (double)(d2 / b2), 1e-13 * (double)(d2 / b2));
    EXPECT_NEAR(m.nmse_llama, (double)(d2 / a2), 1e-13 * (double)(d2 / a2));
    EXPECT_NEAR(m.mean_abs, (double)(sabs.get() / nf), 1e-12 * (double)(sabs.get() / nf));
    EXPECT_NEAR(1 - m.cosine, (double)(1 - ab / sqrtl(a2 * b2)), 1.2e-16); // 1 ulp of cosine near 1
    EXPECT_NEAR(m.scale, (double)(ab / b2), 1e-15);
    EXPECT_EQ(m.nan_a, 1u);
    EXPECT_EQ(m.inf_b, 2u);
    EXPECT_EQ(m.inf_mismatch, 1u); // b = +inf against a finite value; (-inf, -inf) matches
}

TEST(Metrics, StreamingEqualsOneCall) {
    std::vector<float> a, b;
    const size_t n = 5 * PARITY_METRICS_CHUNK + 99;
    MakeLarge(n, a, b);
    parity_metrics whole = Compute(a, b);
    parity_metrics_acc acc;
    bn_error err;
    parity_metrics_begin(&acc);
    const size_t piece = 2 * PARITY_METRICS_CHUNK;
    for (size_t off = 0; off < n; off += piece) {
        size_t len = n - off < piece ? n - off : piece;
        ASSERT_OK(parity_metrics_add(&acc, a.data() + off, b.data() + off, len, nullptr, &err), err);
    }
    parity_metrics streamed;
    parity_metrics_end(&acc, &streamed);
    ExpectIdentical(whole, streamed, "streamed");
    // A piece after a partial piece would shift the chunk grid: refused.
    EXPECT_EQ(parity_metrics_add(&acc, a.data(), b.data(), 10, nullptr, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("multiple of 65536"), std::string::npos) << err.msg;
}

TEST(Metrics, NullArraysAreInvalid) {
    parity_metrics m;
    bn_error err;
    EXPECT_EQ(parity_metrics_compute(nullptr, nullptr, 3, nullptr, &m, &err), BN_ERR_INVALID);
    EXPECT_EQ(parity_metrics_compute(nullptr, nullptr, 0, nullptr, &m, &err), BN_OK);
}

TEST(Metrics, PercentileIsLlamaCppInterpolation) {
    const double v[] = {1, 2, 3, 4};
    EXPECT_DOUBLE_EQ(parity_percentile(v, 4, 0.5), 2.5);
    EXPECT_DOUBLE_EQ(parity_percentile(v, 4, 0.99), 3.97); // p = 2.97
    EXPECT_DOUBLE_EQ(parity_percentile(v, 4, 0.0), 1.0);
    EXPECT_DOUBLE_EQ(parity_percentile(v, 4, 1.0), 4.0);
    EXPECT_DOUBLE_EQ(parity_percentile(v, 1, 0.3), 1.0);
    EXPECT_EQ(parity_percentile(v, 0, 0.5), 0.0);
}

// ---- logits --------------------------------------------------------------

constexpr size_t kT = 12, kV = 40;

// Mirrors the numpy script below (same LCG, same edits).
void MakeLogits(std::vector<float> &a, std::vector<float> &b) {
    Lcg g;
    a.assign(kT * kV, 0);
    b.assign(kT * kV, 0);
    for (float &x : b) x = g.next();
    for (size_t i = 0; i < kT * kV; i++) a[i] = b[i] + 0.03125f * g.next();
    float *b3 = &b[3 * kV], *a3 = &a[3 * kV];
    size_t imin = 0;
    for (size_t i = 1; i < kV; i++)
        if (b3[i] < b3[imin]) imin = i;
    a3[imin] = 10.0f; // subject's top moves to the reference's worst token
    float *b5 = &b[5 * kV], *a5 = &a[5 * kV];
    size_t j = 0;
    for (size_t i = 1; i < kV; i++)
        if (b5[i] > b5[j]) j = i;
    size_t j2 = j != kV - 1 ? kV - 1 : kV - 2;
    b5[j2] = b5[j]; // a tie in the reference...
    a5[j2] = 9.0f;  // ...and the subject picks its later member
    b[7 * kV + 0] = -kInf; // probability 0
    b[7 * kV + 1] = -12.5f; // log-prob ≈ -18.08 < -16: left out of the KL sum
    a[7 * kV + 1] = 3.0f;
}

/* numpy, once (A, B float64 copies of a, b; lsm = log-softmax per row):
 *   la, lb = lsm(A), lsm(B)
 *   kld = np.where(lb > -16, np.exp(lb) * (lb - la), 0).sum(1)
 *   dp  = np.exp(la[r, B.argmax(1)]) - np.exp(lb[r, B.argmax(1)])
 *   overlap_k = len(set(argsort(-A[t], 'stable')[:k]) & set(argsort(-B[t], 'stable')[:k])) / k
 *   percentiles: sort, p = f*(n-1), linear interpolation (llama.cpp)        */
const double kKld[kT] = {0.0021655332811753077, 0.0033756317971777895, 0.0013915578465060578, 4.335355101059963,
                         0.002064741185309214,  2.7520918625356727,    0.0014317875731259672, 0.07409901406757531,
                         0.0018798024455677145, 0.0031156961003889275, 0.001996365299821808,  0.0022408507216637903};
const double kDp[kT] = {0.010250590600740989, -0.01632097366944199,  -0.0037746205679455025, -0.14744840307256038,
                        -0.0013073604524084514, -0.11366927859793541, -0.013879914073167576, -0.021077933677561556,
                        -0.008170839503528371, -0.016525372834574004, -0.013277480586587814, 0.009246775016520992};
const int kSame[kT] = {1, 1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1};
const int kAgree[kT] = {1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1};
const double kOv5[kT] = {1.0, 1.0, 1.0, 0.8, 1.0, 1.0, 1.0, 0.8, 1.0, 0.8, 0.8, 1.0};
const double kOv10[kT] = {0.9, 0.9, 1.0, 0.9, 0.9, 1.0, 1.0, 0.8, 0.9, 1.0, 1.0, 1.0};

TEST(LogitsMetrics, MatchNumpyPerPosition) {
    std::vector<float> a, b;
    MakeLogits(a, b);
    std::vector<parity_logits_pos> pos(kT);
    parity_logits_summary s;
    bn_error err;
    ASSERT_OK(parity_logits_compute(a.data(), b.data(), kT, kV, nullptr, pos.data(), &s, &err), err);
    for (size_t t = 0; t < kT; t++) {
        SCOPED_TRACE("position " + std::to_string(t));
        EXPECT_EQ(pos[t].valid, 1);
        EXPECT_NEAR(pos[t].kld, kKld[t], 1e-12 * kKld[t]);
        EXPECT_NEAR(pos[t].dp, kDp[t], 1e-14);
        EXPECT_EQ(pos[t].same_top, kSame[t]);
        EXPECT_EQ(pos[t].top1_agree, kAgree[t]);
        EXPECT_DOUBLE_EQ(pos[t].top5_overlap, kOv5[t]);
        EXPECT_DOUBLE_EQ(pos[t].top10_overlap, kOv10[t]);
    }
    // Including the excluded b = -12.5 term would give 0.07409879800802505.
    EXPECT_GT(std::fabs(pos[7].kld - 0.07409879800802505), 1e-7);
}

TEST(LogitsMetrics, SummaryMatchesNumpy) {
    std::vector<float> a, b;
    MakeLogits(a, b);
    parity_logits_summary s;
    bn_error err;
    ASSERT_OK(parity_logits_compute(a.data(), b.data(), kT, kV, nullptr, nullptr, &s, &err), err);
    EXPECT_EQ(s.n_pos, kT);
    EXPECT_EQ(s.n_invalid, 0u);
    EXPECT_NEAR(s.kld_mean, 0.5984339953261623, 1e-12);
    EXPECT_NEAR(s.kld_mean_err, 0.40896554419767045, 1e-12);
    EXPECT_NEAR(s.kld_median, 0.002203192001419549, 1e-14); // = np.median
    EXPECT_NEAR(s.kld_p99, 4.161196144822292, 1e-11);       // = np.percentile(kld, 99)
    EXPECT_NEAR(s.kld_p90, 2.4842925776888642, 1e-11);
    EXPECT_NEAR(s.kld_max, 4.335355101059963, 1e-11);
    EXPECT_NEAR(s.kld_min, 0.0013915578465060578, 1e-14);
    EXPECT_NEAR(s.dp_rms, 0.05499069498093296, 1e-13);
    EXPECT_NEAR(s.dp_mean, -0.02799623428487076, 1e-13);
    EXPECT_NEAR(s.dp_max_abs, 0.14744840307256038, 1e-13);
    EXPECT_DOUBLE_EQ(s.same_top_p, 8.0 / 12);
    EXPECT_NEAR(s.same_top_p_err, 0.1421338109037403, 1e-15);
    EXPECT_DOUBLE_EQ(s.top1_agree, 9.0 / 12);
    EXPECT_NEAR(s.top5_overlap, 0.9333333333333335, 1e-15);
    EXPECT_NEAR(s.top10_overlap, 0.9416666666666668, 1e-15);
}

TEST(LogitsMetrics, SameOnAPool) {
    std::vector<float> a, b;
    MakeLogits(a, b);
    parity_logits_summary s1, s4;
    bn_error err;
    PoolPtr pool = MakePool(4, bn_simd_best());
    ASSERT_OK(parity_logits_compute(a.data(), b.data(), kT, kV, nullptr, nullptr, &s1, &err), err);
    ASSERT_OK(parity_logits_compute(a.data(), b.data(), kT, kV, pool.get(), nullptr, &s4, &err), err);
    EXPECT_EQ(memcmp(&s1, &s4, sizeof s1), 0);
}

TEST(LogitsMetrics, NanRowIsInvalidAndInfiniteKld) {
    std::vector<float> b = {1, 2, 3, 0, 1, 2}, a = b;
    a[4] = kNaN;
    std::vector<parity_logits_pos> pos(2);
    parity_logits_summary s;
    bn_error err;
    ASSERT_OK(parity_logits_compute(a.data(), b.data(), 2, 3, nullptr, pos.data(), &s, &err), err);
    EXPECT_EQ(pos[0].valid, 1);
    EXPECT_EQ(pos[0].kld, 0.0);
    EXPECT_EQ(pos[1].valid, 0);
    EXPECT_TRUE(std::isinf(pos[1].kld));
    EXPECT_EQ(s.n_invalid, 1u);
    EXPECT_TRUE(std::isinf(s.kld_max));
    EXPECT_EQ(s.kld_min, 0.0);
    EXPECT_DOUBLE_EQ(s.same_top_p, 0.5);
    EXPECT_EQ(s.dp_rms, 0.0); // the valid row is identical
}

TEST(LogitsMetrics, SmallVocabularyAndErrors) {
    std::vector<float> b = {0.0f, 1.0f, 2.0f}, a = {2.0f, 1.0f, 0.0f};
    std::vector<parity_logits_pos> pos(1);
    parity_logits_summary s;
    bn_error err;
    ASSERT_OK(parity_logits_compute(a.data(), b.data(), 1, 3, nullptr, pos.data(), &s, &err), err);
    EXPECT_EQ(pos[0].top_a, 0u);
    EXPECT_EQ(pos[0].top_b, 2u);
    EXPECT_DOUBLE_EQ(pos[0].top10_overlap, 1.0); // k = V = 3: the same three tokens
    EXPECT_DOUBLE_EQ(pos[0].top5_overlap, 1.0);
    EXPECT_EQ(parity_logits_compute(a.data(), b.data(), 1, 0, nullptr, nullptr, &s, &err), BN_ERR_INVALID);
    EXPECT_EQ(parity_logits_compute(nullptr, nullptr, 0, 0, nullptr, nullptr, &s, &err), BN_OK);
    EXPECT_EQ(s.n_pos, 0u);
}

}  // namespace
