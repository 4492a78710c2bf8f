// test_ops.cc — every op of the forward pass (engine/src/ops.h), the sampler
// and the tap registry checked on their own, in the style of ggml's
// test-backend-ops: each op against a reference computed here, on random
// inputs of several shapes (1 element, odd sizes, sizes that are not a
// multiple of the 8/16 SIMD lanes) and on edge inputs (zeros, ±0, huge and
// tiny magnitudes, ±inf and NaN where the op defines them).
//
// Two kinds of reference:
//  - the op's documented float order restated in scalar C++ (ops.h names
//    it: ggml's order): compared bit for bit, because ggml-compat numerics
//    must reproduce bitnet.cpp exactly;
//  - the mathematical value in double precision: compared with a stated
//    tolerance in ulps (single IEEE operations are exact: correctly rounded).
// Where the two disagree by design (an f32 intermediate that overflows), the
// test pins the documented behaviour and says so.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/quant.h"
#include "bitnet/sampler.h"
#include "bitnet/taps.h"
#include "ops.h"
}

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

uint32_t Bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

// Distance in units in the last place between two finite floats of any sign
// (adjacent floats are 1 apart, +0 and -0 are 0 apart).
int64_t UlpDistance(float a, float b) {
    auto key = [](float f) {
        const int64_t u = Bits(f);
        return u & 0x80000000u ? -(u & 0x7fffffff) : u;
    };
    return std::llabs(key(a) - key(b));
}

// The float nearest to a double, in ulps of the float: how far the op's
// result is from the correctly rounded mathematical value.
int64_t UlpFromExact(float got, double exact) { return UlpDistance(got, (float)exact); }

// Same bits, or both NaN (a NaN's payload is not specified).
::testing::AssertionResult SameFloat(float got, float want) {
    if (Bits(got) == Bits(want) || (std::isnan(got) && std::isnan(want))) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << got << " (0x" << std::hex << Bits(got) << ") != " << want << " (0x"
                                         << Bits(want) << ")" << std::dec;
}

std::vector<float> Random(size_t n, uint32_t seed, float lo = -4.0f, float hi = 4.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float &x : v) x = d(rng);
    return v;
}

// Row lengths: 1 element, below/at/above the 8 and 16 lanes, odd, and the
// head/FFN widths the models use.
const int64_t kWidths[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 127, 160, 256, 257};

// ------------------------------------------------------------------ rms_norm

// ops.h's order: squares in float, summed in double, mean rounded to float,
// scale = 1/sqrtf(mean + eps) in float, y = (x - mean_x) * scale.
void RmsNormGgmlOrder(float *y, const float *x, int64_t n, float eps, bool layernorm) {
    float mean_x = 0;
    if (layernorm) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += x[i];
        mean_x = (float)(s / (double)n);
    }
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i] - mean_x;
        sum += (double)(v * v);
    }
    const float scale = 1.0f / std::sqrt((float)(sum / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mean_x) * scale;
}

TEST(OpRmsNorm, BitExactWithTheGgmlOrderAndWithin3UlpOfDouble) {
    int64_t measured = 0;
    for (bool layernorm : {false, true})
        for (int64_t n : kWidths)
            for (int64_t T : {1, 3, 4, 9}) {  // 4 and 9: rows summed 4 side by side, and the rest
                const std::vector<float> x = Random((size_t)(T * n), (uint32_t)(n * 7 + T + layernorm));
                std::vector<float> y(x.size()), want(x.size());
                bn_op_rms_norm(y.data(), x.data(), T, n, 1e-5f, layernorm);
                int64_t worst = 0;
                for (int64_t t = 0; t < T; t++) {
                    RmsNormGgmlOrder(want.data() + t * n, x.data() + t * n, n, 1e-5f, layernorm);
                    double mean = 0, ss = 0;
                    if (layernorm) {
                        for (int64_t i = 0; i < n; i++) mean += x[t * n + i];
                        mean /= (double)n;
                    }
                    for (int64_t i = 0; i < n; i++) ss += (x[t * n + i] - mean) * (x[t * n + i] - mean);
                    const double inv = 1.0 / std::sqrt(ss / (double)n + 1e-5);
                    for (int64_t i = 0; i < n; i++) {
                        const size_t k = (size_t)(t * n + i);
                        ASSERT_TRUE(SameFloat(y[k], want[k])) << "n=" << n << " t=" << t << " i=" << i;
                        // layernorm's float mean is one more rounding: x - mean_x
                        // loses relative precision where x is close to the mean,
                        // so its bound is absolute (in units of the row's scale).
                        const double exact = (x[k] - mean) * inv;
                        if (layernorm) {
                            EXPECT_NEAR(y[k], exact, 4e-7 * inv * 4.0) << n;
                        } else {
                            worst = std::max(worst, UlpFromExact(y[k], exact));
                        }
                    }
                }
                // scale: 4 roundings (mean, +eps, sqrt, 1/x) ~ 2 ulp, then one product
                EXPECT_LE(worst, 3) << "n=" << n << " T=" << T;
                measured = std::max(measured, worst);
            }
    std::cout << "[ measured ] rms_norm: worst " << measured << " ulp from double\n";
}

TEST(OpRmsNorm, EdgeInputs) {
    const float eps = 1e-5f;
    // all zeros: scale = 1/sqrt(eps), finite; signs of zeros are kept
    std::vector<float> x = {0.0f, -0.0f, 0.0f}, y(3);
    bn_op_rms_norm(y.data(), x.data(), 1, 3, eps, false);
    EXPECT_EQ(Bits(y[0]), Bits(0.0f));
    EXPECT_EQ(Bits(y[1]), Bits(-0.0f));
    // a constant row normalizes to ±1 (exact up to the scale's roundings)
    x = {-3.0f, -3.0f, -3.0f, -3.0f, -3.0f};
    y.resize(5);
    bn_op_rms_norm(y.data(), x.data(), 1, 5, 0.0f, false);
    for (float v : y) EXPECT_LE(UlpDistance(v, -1.0f), 1) << v;
    // layernorm of a constant row: x - mean = 0 exactly, so 0 (not NaN)
    bn_op_rms_norm(y.data(), x.data(), 1, 5, eps, true);
    for (float v : y) EXPECT_EQ(v, 0.0f);
    // tiny magnitudes: the squares underflow to 0 in float, eps dominates,
    // y = x / sqrt(eps) as in double
    x = {1e-30f, -2e-30f, 3e-30f};
    y.resize(3);
    bn_op_rms_norm(y.data(), x.data(), 1, 3, eps, false);
    for (int i = 0; i < 3; i++) EXPECT_LE(UlpFromExact(y[i], x[i] / std::sqrt(1e-5)), 2) << i;
    // NaN anywhere in a row makes the whole row NaN, and only that row
    x = {1.0f, kNaN, 2.0f, 1.0f, 2.0f, 3.0f};
    y.resize(6);
    bn_op_rms_norm(y.data(), x.data(), 2, 3, eps, false);
    for (int i = 0; i < 3; i++) EXPECT_TRUE(std::isnan(y[i])) << i;
    for (int i = 3; i < 6; i++) EXPECT_TRUE(std::isfinite(y[i])) << i;
}

// Documented divergence from the mathematical value: ggml squares in float,
// so |x| above sqrt(FLT_MAX) ≈ 1.84e19 makes the sum +inf and the scale 0.
// The double value of the row [1e20, 1e20] is [1, 1]; ggml (and the engine)
// give [0, 0]. An inf element becomes NaN (inf * 0), the others 0.
TEST(OpRmsNorm, HugeMagnitudesOverflowAsInGgml) {
    std::vector<float> x = {1e20f, 1e20f}, y(2), want(2);
    bn_op_rms_norm(y.data(), x.data(), 1, 2, 1e-5f, false);
    RmsNormGgmlOrder(want.data(), x.data(), 2, 1e-5f, false);
    EXPECT_TRUE(SameFloat(y[0], want[0]));
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_EQ(y[1], 0.0f);
    // just below the overflow the result is still within 3 ulp of double
    x = {1e19f, -1e19f};
    bn_op_rms_norm(y.data(), x.data(), 1, 2, 1e-5f, false);
    EXPECT_LE(UlpDistance(y[0], 1.0f), 3) << y[0];
    EXPECT_LE(UlpDistance(y[1], -1.0f), 3) << y[1];
    x = {kInf, 1.0f};
    bn_op_rms_norm(y.data(), x.data(), 1, 2, 1e-5f, false);
    EXPECT_TRUE(std::isnan(y[0]));
    EXPECT_EQ(y[1], 0.0f);
}

// ------------------------------------------------- mul_rows, add, scale

// One IEEE operation per element: the double value rounded to float is the
// exact answer (double has more than 2·24+2 bits, so rounding twice is
// harmless for +, ×), so these are compared bit for bit with double.
TEST(OpElementwise, MulRowsAddScaleAreCorrectlyRounded) {
    for (int64_t n : kWidths) {
        const int64_t T = 3;
        const std::vector<float> x = Random((size_t)(T * n), (uint32_t)n, -1e3f, 1e3f);
        const std::vector<float> w = Random((size_t)n, (uint32_t)n + 99, -2.0f, 2.0f);
        std::vector<float> y = x;
        bn_op_mul_rows(y.data(), w.data(), T, n);
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < n; i++)
                ASSERT_TRUE(SameFloat(y[t * n + i], (float)((double)x[t * n + i] * (double)w[i])))
                    << "mul_rows n=" << n << " t=" << t << " i=" << i;
        const std::vector<float> a = Random((size_t)n, (uint32_t)n + 1, -1e6f, 1e6f);
        y = x;
        bn_op_add(y.data(), a.data(), n);
        for (int64_t i = 0; i < n; i++)
            ASSERT_TRUE(SameFloat(y[i], (float)((double)x[i] + (double)a[i]))) << "add n=" << n << " i=" << i;
        for (int64_t i = n; i < T * n; i++) ASSERT_TRUE(SameFloat(y[i], x[i])) << "add wrote past n at " << i;
        y = x;
        bn_op_scale(y.data(), 0.1767767f, n);
        for (int64_t i = 0; i < n; i++)
            ASSERT_TRUE(SameFloat(y[i], (float)((double)x[i] * 0.1767767f))) << "scale n=" << n << " i=" << i;
        for (int64_t i = n; i < T * n; i++) ASSERT_TRUE(SameFloat(y[i], x[i])) << "scale wrote past n at " << i;
    }
}

TEST(OpElementwise, EdgeInputsFollowIeee) {
    // add: -0 + -0 = -0, -0 + 0 = +0, inf + -inf = NaN, NaN propagates,
    // FLT_MAX + FLT_MAX overflows to inf, the smallest subnormal survives
    std::vector<float> y = {-0.0f, -0.0f, kInf, kNaN, FLT_MAX, 1e-45f};
    const std::vector<float> x = {-0.0f, 0.0f, -kInf, 1.0f, FLT_MAX, 0.0f};
    bn_op_add(y.data(), x.data(), 6);
    EXPECT_EQ(Bits(y[0]), Bits(-0.0f));
    EXPECT_EQ(Bits(y[1]), Bits(0.0f));
    EXPECT_TRUE(std::isnan(y[2]));
    EXPECT_TRUE(std::isnan(y[3]));
    EXPECT_EQ(y[4], kInf);
    EXPECT_EQ(y[5], 1e-45f);
    // scale by -0: signs flip, inf * 0 = NaN
    y = {2.0f, -2.0f, kInf};
    bn_op_scale(y.data(), -0.0f, 3);
    EXPECT_EQ(Bits(y[0]), Bits(-0.0f));
    EXPECT_EQ(Bits(y[1]), Bits(0.0f));
    EXPECT_TRUE(std::isnan(y[2]));
    // mul_rows: tiny * tiny underflows to a signed zero, huge * huge to inf
    y = {1e-30f, -1e30f};
    const std::vector<float> w = {1e-30f, 1e30f};
    bn_op_mul_rows(y.data(), w.data(), 1, 2);
    EXPECT_EQ(Bits(y[0]), Bits(0.0f));
    EXPECT_EQ(y[1], -kInf);
    // n = 0 touches nothing
    y = {5.0f};
    bn_op_add(y.data(), x.data(), 0);
    bn_op_scale(y.data(), 3.0f, 0);
    bn_op_mul_rows(y.data(), w.data(), 0, 1);
    EXPECT_EQ(y[0], 5.0f);
}

// ------------------------------------------------------------- round_f16

// IEEE binary16 rounding to nearest even, computed in double: 11 significant
// bits for normal halves, a fixed quantum of 2^-24 below 2^-14, overflow to
// inf at 65520 (the midpoint between 65504 and 2^16).
double RoundToHalf(double x) {
    if (std::isnan(x)) return x;
    if (std::fabs(x) >= 65520.0) return std::copysign(INFINITY, x);
    if (x == 0) return x;
    int e;
    std::frexp(x, &e);  // |x| = m * 2^e, m in [0.5, 1)
    const double quantum = std::ldexp(1.0, std::max(e - 1, -14) - 10);
    return std::copysign(std::nearbyint(x / quantum) * quantum, x);
}

TEST(OpRoundF16, MatchesIeeeHalfRoundingEverywhere) {
    std::vector<float> x = Random(20000, 5, -70000.0f, 70000.0f);
    const std::vector<float> small = Random(20000, 6, -1e-4f, 1e-4f);  // half subnormals
    x.insert(x.end(), small.begin(), small.end());
    for (float v : {0.0f, -0.0f, 1.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 5.9604645e-8f /* 2^-24 */,
                    2.9802322e-8f /* 2^-25: tie to 0 */, 2.9802326e-8f /* just above: 2^-24 */,
                    6.1035156e-5f /* 2^-14 */, 1.0009766f /* 1 + 2^-10 */, 1.00048828125f /* tie to 1 */,
                    1.00146484375f /* tie to 1 + 2^-9 */, kInf, -kInf, 1e-45f, -1e-45f})
        x.push_back(v);
    std::vector<float> y = x;
    bn_op_round_f16(y.data(), (int64_t)y.size());
    for (size_t i = 0; i < x.size(); i++)
        ASSERT_TRUE(SameFloat(y[i], (float)RoundToHalf(x[i]))) << "x = " << x[i] << " (0x" << std::hex << Bits(x[i])
                                                                << ")";
    y = {kNaN};
    bn_op_round_f16(y.data(), 1);
    EXPECT_TRUE(std::isnan(y[0]));
    EXPECT_EQ(Bits(RoundToHalf(-0.0) == 0 ? -0.0f : 1.0f), Bits(-0.0f));  // the reference keeps -0
}

// ------------------------------------------------------------------ rope

// ggml's rope restated: cos/sin cache with theta multiplied up in float, and
// the rotation with the first product fused (ops.c, established on the
// shared traces).
void RopeGgmlOrder(float *x, int64_t T, int64_t nh, int64_t D, int64_t pos0, float base, bool neox) {
    const float theta_scale = std::pow(base, -2.0f / (float)D);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < nh; h++) {
            float theta = (float)(pos0 + t);
            float *v = x + (t * nh + h) * D;
            for (int64_t i = 0; i < D / 2; i++) {
                const int64_t a = neox ? i : 2 * i, b = neox ? i + D / 2 : 2 * i + 1;
                const float c = std::cos(theta), s = std::sin(theta), x0 = v[a], x1 = v[b];
                v[a] = std::fma(x0, c, -(x1 * s));
                v[b] = std::fma(x0, s, x1 * c);
                theta *= theta_scale;
            }
        }
}

// The rotation in double with theta_i = pos * base^(-2i/D) computed exactly.
void RopeDouble(std::vector<double> &out, const std::vector<float> &x, int64_t T, int64_t nh, int64_t D,
                int64_t pos0, double base, bool neox) {
    out.assign(x.begin(), x.end());
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < nh; h++)
            for (int64_t i = 0; i < D / 2; i++) {
                const int64_t a = (t * nh + h) * D + (neox ? i : 2 * i);
                const int64_t b = (t * nh + h) * D + (neox ? i + D / 2 : 2 * i + 1);
                const double th = (double)(pos0 + t) * std::pow(base, -2.0 * (double)i / (double)D);
                out[a] = x[a] * std::cos(th) - x[b] * std::sin(th);
                out[b] = x[a] * std::sin(th) + x[b] * std::cos(th);
            }
}

struct RopeShape {
    int64_t T, nh, D, pos0;
};

TEST(OpRope, BitExactWithTheGgmlOrderAndNearDouble) {
    double measured = 0;  // worst error / bound
    const RopeShape shapes[] = {{1, 1, 2, 0}, {1, 1, 2, 7}, {3, 2, 32, 0},  {5, 3, 64, 11},
                                {2, 8, 128, 100}, {1, 1, 6, 3}, {4, 1, 34, 40}, {1, 2, 256, 4000}};
    for (bool neox : {true, false})
        for (float base : {10000.0f, 500000.0f})
            for (const RopeShape &s : shapes) {
                const std::vector<float> x = Random((size_t)(s.T * s.nh * s.D), (uint32_t)(s.D + s.pos0));
                std::vector<float> y = x, want = x;
                bn_op_rope(y.data(), s.T, s.nh, s.D, s.pos0, base, neox);
                RopeGgmlOrder(want.data(), s.T, s.nh, s.D, s.pos0, base, neox);
                std::vector<double> exact;
                RopeDouble(exact, x, s.T, s.nh, s.D, s.pos0, base, neox);
                double worst = 0;
                for (size_t i = 0; i < x.size(); i++) {
                    ASSERT_TRUE(SameFloat(y[i], want[i])) << "D=" << s.D << " neox=" << neox << " i=" << i;
                    worst = std::max(worst, std::fabs(y[i] - exact[i]));
                }
                // theta is built by up to D/2 - 1 float multiplications, each
                // off by half an ulp: a relative theta error of ~D/2 · 6e-8,
                // i.e. an angle error of (pos0 + T) · D · 3e-8 rad; that angle
                // (values are |x| <= 4) bounds the error, measured at 0.26 of it.
                const double angle = (double)(s.pos0 + s.T) * (double)s.D * 3e-8 + 1e-7;
                measured = std::max(measured, worst / angle);
                EXPECT_LE(worst, angle) << "T=" << s.T << " D=" << s.D << " pos0=" << s.pos0
                                              << " neox=" << neox << " base=" << base;
            }
    std::cout << "[ measured ] rope: worst error " << measured << " of its bound\n";
}

TEST(OpRope, PositionZeroIsTheIdentityAndPairsKeepTheirNorm) {
    const int64_t D = 64, nh = 2;
    std::vector<float> x = Random((size_t)(nh * D), 42), y = x;
    bn_op_rope(y.data(), 1, nh, D, 0, 10000.0f, true);
    for (size_t i = 0; i < x.size(); i++) EXPECT_TRUE(SameFloat(y[i], x[i])) << i;
    for (bool neox : {true, false}) {
        y = x;
        bn_op_rope(y.data(), 1, nh, D, 17, 10000.0f, neox);
        for (int64_t h = 0; h < nh; h++)
            for (int64_t i = 0; i < D / 2; i++) {
                const int64_t a = h * D + (neox ? i : 2 * i), b = h * D + (neox ? i + D / 2 : 2 * i + 1);
                const double before = std::hypot((double)x[a], (double)x[b]);
                const double after = std::hypot((double)y[a], (double)y[b]);
                EXPECT_NEAR(after, before, 4e-7 * before) << "pair " << i << " neox " << neox;
            }
    }
}

// The two pairings are different ops: NEOX rotates (i, i + D/2), normal
// rotates (2i, 2i + 1). A vector with one non-zero element shows which
// partner receives the rotated part.
TEST(OpRope, PairingOfNeoxAndNormal) {
    const int64_t D = 8;
    for (bool neox : {true, false}) {
        std::vector<float> y(D, 0.0f);
        y[0] = 1.0f;
        bn_op_rope(y.data(), 1, 1, D, 1, 10000.0f, neox);
        const int64_t partner = neox ? D / 2 : 1;
        EXPECT_TRUE(SameFloat(y[0], std::cos(1.0f))) << neox;
        EXPECT_TRUE(SameFloat(y[partner], std::sin(1.0f))) << neox;
        for (int64_t i = 1; i < D; i++)
            if (i != partner) {
                EXPECT_EQ(y[i], 0.0f) << "neox " << neox << " i " << i;
            }
    }
}

// ----------------------------------------------------------- ggml_expf

// ggml documents ggml_v_expf as accurate to 1.45 ulp (ARM optimized-routines).
// Checked on 200k random arguments over the whole normal range, for the 8-
// and 16-lane variants, against exp in double.
TEST(OpGgmlExpf, Within2UlpOfExpOverTheNormalRange) {
    for (int lanes : {8, 16}) {
        std::mt19937 rng(lanes);
        std::uniform_real_distribution<float> d(-87.3f, 88.7f);
        int64_t worst = 0;
        float worst_x = 0;
        for (int i = 0; i < 200000; i++) {
            const float x = i < 1000 ? (float)(i - 500) * 0.173f : d(rng);
            const int64_t u = UlpFromExact(bn_op_ggml_expf(x, lanes), std::exp((double)x));
            if (u > worst) worst = u, worst_x = x;
        }
        EXPECT_LE(worst, 2) << lanes << " lanes, worst at x = " << worst_x;
        std::cout << "[ measured ] ggml_expf " << lanes << " lanes: worst " << worst << " ulp at x = " << worst_x
                  << "\n";
    }
}

TEST(OpGgmlExpf, EdgeInputs) {
    for (int lanes : {8, 16}) {
        EXPECT_EQ(bn_op_ggml_expf(0.0f, lanes), 1.0f) << lanes;
        EXPECT_EQ(bn_op_ggml_expf(-0.0f, lanes), 1.0f) << lanes;
        EXPECT_EQ(bn_op_ggml_expf(-kInf, lanes), 0.0f) << lanes;
        EXPECT_EQ(bn_op_ggml_expf(kInf, lanes), kInf) << lanes;
        EXPECT_TRUE(std::isnan(bn_op_ggml_expf(kNaN, lanes))) << lanes;
        EXPECT_EQ(bn_op_ggml_expf(89.0f, lanes), kInf) << lanes;   // e^89 > FLT_MAX
        EXPECT_EQ(bn_op_ggml_expf(-110.0f, lanes), 0.0f) << lanes; // e^-110 < 2^-150
        EXPECT_EQ(bn_op_ggml_expf(1e30f, lanes), kInf) << lanes;
        EXPECT_EQ(bn_op_ggml_expf(-1e30f, lanes), 0.0f) << lanes;
        // subnormal results: the absolute error is at most a couple of the
        // smallest subnormal (2^-149)
        for (float x : {-88.0f, -95.0f, -100.0f, -103.0f}) {
            const double want = std::exp((double)x);
            EXPECT_LE(std::fabs(bn_op_ggml_expf(x, lanes) - want), 2.0 * std::ldexp(1.0, -149) + 2e-7 * want)
                << lanes << " lanes, x = " << x;
        }
    }
}

// ------------------------------------------------------------- softmax

// ops.h's order: scale, max, ggml expf over full vectors of `lanes` with a
// halving-tree sum per vector added in double, libm expf on the tail, then
// one multiplication by (float)(1/sum).
void SoftmaxGgmlOrder(float *x, int64_t n, float scale, int lanes) {
    float max = -kInf;
    for (int64_t i = 0; i < n; i++) {
        x[i] *= scale;
        max = std::max(max, x[i]);
    }
    double sum = 0;
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes) {
        float v[16];
        for (int l = 0; l < lanes; l++) v[l] = x[i + l] = bn_op_ggml_expf(x[i + l] - max, lanes);
        for (int w = lanes / 2; w >= 1; w /= 2)
            for (int l = 0; l < w; l++) v[l] = v[l] + v[l + w];
        sum += (double)v[0];
    }
    for (; i < n; i++) {
        x[i] = std::exp(x[i] - max);
        sum += (double)x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t k = 0; k < n; k++) x[k] *= inv;
}

TEST(OpSoftmax, BitExactWithTheGgmlOrderAndNearDouble) {
    int64_t measured = 0;
    for (int lanes : {8, 16})
        for (int64_t n : kWidths)
            for (float scale : {1.0f, 0.17677669f}) {
                const std::vector<float> x = Random((size_t)n, (uint32_t)(n + lanes), -12.0f, 12.0f);
                std::vector<float> y = x, want = x;
                bn_op_softmax_ggml(y.data(), n, scale, lanes, BN_SIMD_AUTO);
                SoftmaxGgmlOrder(want.data(), n, scale, lanes);
                double max = -INFINITY, sum = 0;
                for (float v : x) max = std::max(max, (double)v * scale);
                for (float v : x) sum += std::exp((double)v * scale - max);
                int64_t worst = 0;
                double total = 0;
                for (int64_t i = 0; i < n; i++) {
                    ASSERT_TRUE(SameFloat(y[i], want[i])) << "n=" << n << " lanes=" << lanes << " i=" << i;
                    // The exponent's argument is rounded in float twice (x·scale,
                    // then - max), each off by up to 2^-24 of its magnitude: an
                    // absolute argument error of (|x·s| + |max| + |x·s - max|)·2^-24,
                    // i.e. that many ulps of relative error in the result
                    // (measured up to 18 ulp at |x·s - max| = 24). On top:
                    // exp (<= 2 ulp), the tree sums, 1/sum and the product (~4).
                    const double arg = (double)x[i] * scale - max;
                    const double slack = std::fabs(arg) + (scale != 1.0f ? std::fabs((double)x[i] * scale) + std::fabs(max) : 0);
                    const int64_t u = UlpFromExact(y[i], std::exp(arg) / sum);
                    EXPECT_LE((double)u, 6.0 + slack) << "n=" << n << " lanes=" << lanes << " i=" << i << " arg=" << arg;
                    worst = std::max(worst, u);
                    total += y[i];
                }
                EXPECT_NEAR(total, 1.0, 1e-6 * (double)n) << "n=" << n;
                measured = std::max(measured, worst);
            }
    std::cout << "[ measured ] softmax: worst " << measured << " ulp from double\n";
}

TEST(OpSoftmax, MaskedColumnsHugeLogitsAndOneElement) {
    for (int lanes : {8, 16}) {
        // one element: exactly 1
        std::vector<float> x = {-3.5f};
        bn_op_softmax_ggml(x.data(), 1, 1.0f, lanes, BN_SIMD_AUTO);
        EXPECT_EQ(x[0], 1.0f);
        // -inf columns (the causal mask) get exactly 0; one survivor gets 1
        x.assign(20, -kInf);
        x[13] = 2.0f;
        bn_op_softmax_ggml(x.data(), 20, 0.125f, lanes, BN_SIMD_AUTO);
        for (int i = 0; i < 20; i++) EXPECT_EQ(Bits(x[i]), Bits(i == 13 ? 1.0f : 0.0f)) << i;
        // huge logits: the max is subtracted first, so no overflow
        x = {1e30f, 1e30f, -1e30f, 1e30f};
        bn_op_softmax_ggml(x.data(), 4, 1.0f, lanes, BN_SIMD_AUTO);
        EXPECT_LE(UlpDistance(x[0], 1.0f / 3.0f), 2) << x[0];
        EXPECT_EQ(x[1], x[0]);
        EXPECT_EQ(x[2], 0.0f);
        // equal logits: uniform, to the ulp
        x.assign(17, 0.25f);
        bn_op_softmax_ggml(x.data(), 17, 1.0f, lanes, BN_SIMD_AUTO);
        for (float v : x) EXPECT_LE(UlpFromExact(v, 1.0 / 17.0), 2) << v;
    }
}

// The 16-lane ggml expf as first written here (libm fmaf and ldexpf): the
// engine's replaces ldexpf by one rounding of an exact double product.
float ExpfAvx512LaneWithLdexp(float x) {
    const float r = 0x1.8p23f;
    const float z = std::fma(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                      std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                             u, std::fma(0x1.ffffecp-1f, b, 1.0f));
    if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : kInf;
    if (std::isnan(n)) return kNaN;
    return std::ldexp(j, (int)n);
}

// Every x from -110 to 90 in steps of 2^-10 (subnormal and overflowing
// results included) gives ldexpf's bits; softmax and SiLU give the same
// bits with the FMA instruction (AVX2 level) and with libm's fmaf.
TEST(OpSoftmax, FmaAndPortableLevelsAgreeBitForBit) {
    int64_t checked = 0;
    for (float x = -110.0f; x <= 90.0f; x += 0x1p-10f, checked++)
        ASSERT_EQ(Bits(bn_op_ggml_expf(x, 16)), Bits(ExpfAvx512LaneWithLdexp(x))) << x;
    EXPECT_GT(checked, 200000);
    if (bn_simd_best() != BN_SIMD_AVX2) GTEST_SKIP() << "CPU without AVX2/FMA: portable only";
    for (int lanes : {8, 16})
        for (int64_t n : kWidths) {
            std::vector<float> x = Random((size_t)n, (uint32_t)(7 * n + lanes), -90.0f, 90.0f);
            if (n > 3) x[1] = -kInf, x[2] = 1e30f;
            std::vector<float> a = x, b = x;
            bn_op_softmax_ggml(a.data(), n, 0.5f, lanes, BN_SIMD_PORTABLE);
            bn_op_softmax_ggml(b.data(), n, 0.5f, lanes, BN_SIMD_AVX2);
            EXPECT_EQ(memcmp(a.data(), b.data(), a.size() * 4), 0) << "softmax n=" << n << " lanes=" << lanes;
            const std::vector<float> u = Random((size_t)n, (uint32_t)(3 * n + lanes), -4.0f, 4.0f);
            std::vector<float> ya(x.size()), yb(x.size());
            bn_op_glu(ya.data(), x.data(), u.data(), 1, n, false, lanes, BN_SIMD_PORTABLE);
            bn_op_glu(yb.data(), x.data(), u.data(), 1, n, false, lanes, BN_SIMD_AVX2);
            EXPECT_EQ(memcmp(ya.data(), yb.data(), ya.size() * 4), 0) << "silu n=" << n << " lanes=" << lanes;
            // relu²: the AVX2 level's maxps against the portable select, with
            // -0, NaN, infinities and overflow spread over the vector part
            std::vector<float> g = Random((size_t)(3 * n), (uint32_t)(5 * n + lanes)), up = Random(g.size(), 9u);
            const float edges[] = {-0.0f, kNaN, kInf, -kInf, 1e20f, 1e-30f, -1e-45f, 0.0f};
            for (size_t k = 0; k < g.size(); k += 3) g[k] = edges[(k / 3) % 8];
            if (g.size() > 5) up[5] = kNaN;
            std::vector<float> ra(g.size()), rb(g.size());
            bn_op_glu(ra.data(), g.data(), up.data(), 3, n, true, lanes, BN_SIMD_PORTABLE);
            bn_op_glu(rb.data(), g.data(), up.data(), 3, n, true, lanes, BN_SIMD_AVX2);
            EXPECT_EQ(memcmp(ra.data(), rb.data(), ra.size() * 4), 0) << "relu2 n=" << n << " lanes=" << lanes;
        }
}

// ----------------------------------------------------------------- glu

TEST(OpGlu, Relu2IsTwoCorrectlyRoundedProducts) {
    for (int64_t n : kWidths) {
        const int64_t T = 2;
        const std::vector<float> g = Random((size_t)(T * n), (uint32_t)n * 3), u = Random((size_t)(T * n), (uint32_t)n * 5);
        std::vector<float> y(g.size());
        bn_op_glu(y.data(), g.data(), u.data(), T, n, true, 16, BN_SIMD_AUTO);
        for (size_t k = 0; k < y.size(); k++) {
            const float r = g[k] > 0 ? g[k] : 0.0f;
            ASSERT_TRUE(SameFloat(y[k], (float)((double)(float)((double)r * r) * u[k]))) << "n=" << n << " k=" << k;
            // and within 1 ulp of relu(g)²·u in double (two roundings)
            EXPECT_LE(UlpFromExact(y[k], (double)r * r * u[k]), 1) << k;
        }
    }
}

// A NaN gate gives 0 under relu², exactly as ggml's relu (x > 0 ? x : 0)
// does: a NaN born in ffn_gate does not reach ffn_act through the gate.
TEST(OpGlu, Relu2EdgeInputs) {
    const std::vector<float> g = {-0.0f, -1.0f, kNaN, 1e20f, 1e-30f, kInf, 2.0f}, u = {3.0f, -2.0f, 1.0f, 1.0f, 1.0f, 1.0f, kNaN};
    std::vector<float> y(g.size());
    bn_op_glu(y.data(), g.data(), u.data(), 1, (int64_t)g.size(), true, 8, BN_SIMD_AUTO);
    EXPECT_EQ(Bits(y[0]), Bits(0.0f));
    EXPECT_EQ(Bits(y[1]), Bits(-0.0f));  // 0 * -2
    EXPECT_EQ(Bits(y[2]), Bits(0.0f));   // relu(NaN) = 0 in ggml's definition
    EXPECT_EQ(y[3], kInf);               // (1e20)² overflows in float
    EXPECT_EQ(y[4], 0.0f);               // (1e-30)² underflows
    EXPECT_EQ(y[5], kInf);
    EXPECT_TRUE(std::isnan(y[6]));       // the up value still propagates NaN
}

// SiLU: ggml_v_silu (x / (1 + ggml_v_expf(-x))) on full vectors of `lanes`,
// libm expf on each row's tail.
TEST(OpGlu, SiluBitExactWithTheGgmlOrderAndNearDouble) {
    int64_t measured = 0;
    for (int lanes : {8, 16})
        for (int64_t n : kWidths) {
            const int64_t T = 2;
            const std::vector<float> g = Random((size_t)(T * n), (uint32_t)n * 11, -20.0f, 20.0f);
            const std::vector<float> u = Random((size_t)(T * n), (uint32_t)n * 13);
            std::vector<float> y(g.size());
            bn_op_glu(y.data(), g.data(), u.data(), T, n, false, lanes, BN_SIMD_AUTO);
            const int64_t vec_end = n / lanes * lanes;
            int64_t worst = 0;
            for (int64_t t = 0; t < T; t++)
                for (int64_t i = 0; i < n; i++) {
                    const size_t k = (size_t)(t * n + i);
                    const float e = i < vec_end ? bn_op_ggml_expf(-g[k], lanes) : std::exp(-g[k]);
                    ASSERT_TRUE(SameFloat(y[k], g[k] / (1.0f + e) * u[k]))
                        << "n=" << n << " lanes=" << lanes << " t=" << t << " i=" << i;
                    const double exact = (double)g[k] / (1.0 + std::exp(-(double)g[k])) * u[k];
                    worst = std::max(worst, UlpFromExact(y[k], exact));
                }
            // exp (<= 2 ulp, scaled by |g| e^-g/(1+e^-g) <= |g|... bounded
            // by the measured 4 at |g| <= 20), 1 +, /, × u
            EXPECT_LE(worst, 8) << "n=" << n << " lanes=" << lanes;
            measured = std::max(measured, worst);
        }
    std::cout << "[ measured ] silu·up: worst " << measured << " ulp from double\n";
}

// Documented divergence: for gate < -88.72, e^-gate overflows float, so
// silu(gate) = gate / inf = -0 where the true value is tiny but non-zero
// (silu(-89) = -89·e^-89 ≈ -2.0e-37, a normal float). ggml computes the same
// -0; the absolute error is below 1e-36.
TEST(OpGlu, SiluEdgeInputs) {
    for (int lanes : {8, 16})
        for (bool vector : {false, true}) {
            // a row of 1 is all libm tail; a row of 16 puts element 0 in a vector
            const int64_t n = vector ? 16 : 1;
            auto silu = [&](float g) {
                std::vector<float> row((size_t)n, 1.0f), up((size_t)n, 1.0f), y((size_t)n);
                row[0] = g;
                bn_op_glu(y.data(), row.data(), up.data(), 1, n, false, lanes, BN_SIMD_AUTO);
                return y[0];
            };
            const std::string where = std::to_string(lanes) + (vector ? " lanes, vector" : " lanes, libm tail");
            EXPECT_EQ(Bits(silu(0.0f)), Bits(0.0f)) << where;
            EXPECT_EQ(Bits(silu(-0.0f)), Bits(-0.0f)) << where;
            EXPECT_LE(UlpFromExact(silu(1.0f), 1.0 / (1.0 + std::exp(-1.0))), 3) << where;
            EXPECT_EQ(silu(100.0f), 100.0f) << where;  // 1 + e^-100 rounds to 1
            EXPECT_EQ(silu(kInf), kInf) << where;
            EXPECT_TRUE(std::isnan(silu(-kInf))) << where;  // -inf / inf
            EXPECT_TRUE(std::isnan(silu(kNaN))) << where;
            for (float g : {-89.0f, -1e30f}) {
                const float v = silu(g);
                EXPECT_EQ(Bits(v), Bits(-0.0f)) << where << " g=" << g;
                EXPECT_LT(std::fabs((double)v - (double)g * std::exp((double)g)), 1e-36) << where << " g=" << g;
            }
            // just above the overflow the value is still accurate
            EXPECT_LE(UlpFromExact(silu(-88.0f), -88.0 / (1.0 + std::exp(88.0))), 8) << where;
        }
}

// ------------------------------------------------------------- sampler

using SamplerPtr = bptest::Handle<bn_sampler, bn_sampler_free>;

SamplerPtr MakeSampler(float temp, int32_t top_k, float top_p, uint64_t seed, int32_t n_vocab) {
    bn_sampler_params p{temp, top_k, top_p, seed};
    bn_sampler *s = nullptr;
    bn_error err{};
    EXPECT_OK(bn_sampler_create(&p, n_vocab, &s, &err), err);
    return SamplerPtr(s);
}

std::vector<int> Counts(bn_sampler *s, const std::vector<float> &logits, int draws) {
    std::vector<int> c(logits.size(), 0);
    for (int i = 0; i < draws; i++) c[(size_t)bn_sampler_sample(s, logits.data())]++;
    return c;
}

// Observed frequency of each id within 5 standard deviations of the
// probability (the draws are seeded: the outcome is fixed, the bound says
// the generator is not biased).
void ExpectFrequencies(const std::vector<int> &counts, const std::vector<double> &p, int draws,
                       const std::string &what) {
    for (size_t i = 0; i < p.size(); i++) {
        const double sd = std::sqrt(p[i] * (1 - p[i]) / draws);
        EXPECT_NEAR((double)counts[i] / draws, p[i], 5 * sd + 1e-12) << what << " id " << i;
    }
}

TEST(Sampler, ArgmaxTakesTheLowestIdOnTies) {
    EXPECT_EQ(bn_argmax(std::vector<float>{1, 3, 3, 2}.data(), 4), 1);
    EXPECT_EQ(bn_argmax(std::vector<float>{-kInf, -kInf}.data(), 2), 0);
    EXPECT_EQ(bn_argmax(std::vector<float>{-1e30f, -0.0f, 0.0f}.data(), 3), 1);  // -0 == +0: a tie
    EXPECT_EQ(bn_argmax(std::vector<float>{7}.data(), 1), 0);
    EXPECT_EQ(bn_argmax(std::vector<float>{1, kInf, kInf}.data(), 3), 1);
    // a NaN never compares greater: it is skipped unless it is at index 0
    EXPECT_EQ(bn_argmax(std::vector<float>{1, kNaN, 2}.data(), 3), 2);
}

TEST(Sampler, GreedyIsArgmaxWhateverTheOtherSettings) {
    const std::vector<float> logits = Random(1000, 3);
    const int32_t best = bn_argmax(logits.data(), 1000);
    for (float temp : {0.0f, -1.0f}) {
        SamplerPtr s = MakeSampler(temp, 5, 0.1f, 7, 1000);
        ASSERT_TRUE(s);
        for (int i = 0; i < 10; i++) EXPECT_EQ(bn_sampler_sample(s.get(), logits.data()), best);
    }
}

TEST(Sampler, TopKOneIsArgmaxAndTiesGoToTheLowestId) {
    std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f, 2.0f};
    for (uint64_t seed : {1ull, 2ull, 3ull}) {
        SamplerPtr s = MakeSampler(1.5f, 1, 1.0f, seed, 5);
        ASSERT_TRUE(s);
        for (int i = 0; i < 50; i++) EXPECT_EQ(bn_sampler_sample(s.get(), logits.data()), 1);
    }
}

TEST(Sampler, SameSeedSameSequenceAndSeedsDiffer) {
    const std::vector<float> logits = Random(300, 9, -2.0f, 2.0f);
    auto draw = [&](uint64_t seed) {
        SamplerPtr s = MakeSampler(1.0f, 0, 1.0f, seed, 300);
        std::vector<int32_t> v;
        if (!s) return v;  // reported by MakeSampler
        for (int i = 0; i < 64; i++) v.push_back(bn_sampler_sample(s.get(), logits.data()));
        return v;
    };
    EXPECT_EQ(draw(42), draw(42));
    EXPECT_NE(draw(42), draw(43));
    EXPECT_NE(draw(0), draw(1));  // seed 0 is a valid seed, not "unseeded"
}

// Temperature sampling draws from softmax(logits / T): frequencies over
// 40000 draws for T = 0.5, 1 and 3 on 4 tokens.
TEST(Sampler, TemperatureFrequenciesFollowTheSoftmax) {
    const std::vector<float> logits = {1.0f, 0.0f, -0.5f, 2.0f};
    const int draws = 40000;
    for (float temp : {0.5f, 1.0f, 3.0f}) {
        SamplerPtr s = MakeSampler(temp, 0, 1.0f, 1234, 4);
        ASSERT_TRUE(s);
        std::vector<double> p(4);
        double z = 0;
        for (size_t i = 0; i < 4; i++) z += p[i] = std::exp(logits[i] / (double)temp);
        for (double &v : p) v /= z;
        ExpectFrequencies(Counts(s.get(), logits, draws), p, draws, "T=" + std::to_string(temp));
    }
}

// top-k keeps the k largest logits and renormalizes; top-p then keeps the
// smallest prefix (by probability, descending) whose mass reaches p.
TEST(Sampler, TopKAndTopPCutAndRenormalize) {
    const int draws = 40000;
    // probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1
    const std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
    {
        SamplerPtr s = MakeSampler(1.0f, 2, 1.0f, 5, 4);
        ASSERT_TRUE(s);
        ExpectFrequencies(Counts(s.get(), logits, draws), {0, 0.5 / 0.8, 0, 0.3 / 0.8}, draws, "top-k 2");
    }
    {
        SamplerPtr s = MakeSampler(1.0f, 0, 0.75f, 6, 4);  // 0.5 < 0.75 <= 0.8: keeps two
        ASSERT_TRUE(s);
        ExpectFrequencies(Counts(s.get(), logits, draws), {0, 0.5 / 0.8, 0, 0.3 / 0.8}, draws, "top-p 0.75");
    }
    {
        SamplerPtr s = MakeSampler(1.0f, 0, 0.9f, 7, 4);  // 0.8 < 0.9 <= 0.95: keeps three
        ASSERT_TRUE(s);
        ExpectFrequencies(Counts(s.get(), logits, draws), {0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95}, draws,
                          "top-p 0.9");
    }
    {
        SamplerPtr s = MakeSampler(1.0f, 3, 0.5f, 8, 4);  // top-k 3, then p = 0.5: the first alone
        ASSERT_TRUE(s);
        for (int i = 0; i < 100; i++) EXPECT_EQ(bn_sampler_sample(s.get(), logits.data()), 1);
    }
    {
        SamplerPtr s = MakeSampler(1.0f, 100, 1.0f, 9, 4);  // k > vocabulary: all tokens
        ASSERT_TRUE(s);
        ExpectFrequencies(Counts(s.get(), logits, draws), {0.15, 0.5, 0.05, 0.3}, draws, "top-k 100");
    }
}

// -inf logits (a banned token) are never drawn; a finite vocabulary with
// one huge logit always draws it.
TEST(Sampler, MaskedTokensAreNeverDrawn) {
    std::vector<float> logits = {-kInf, 0.0f, -kInf, 0.0f, -kInf};
    SamplerPtr s = MakeSampler(1.0f, 0, 1.0f, 11, 5);
    ASSERT_TRUE(s);
    std::vector<int> c = Counts(s.get(), logits, 4000);
    EXPECT_EQ(c[0] + c[2] + c[4], 0);
    EXPECT_GT(c[1], 1700);
    EXPECT_GT(c[3], 1700);
    logits = {0.0f, 1e30f, 0.0f};
    SamplerPtr h = MakeSampler(1.0f, 0, 1.0f, 12, 3);
    ASSERT_TRUE(h);
    for (int i = 0; i < 100; i++) EXPECT_EQ(bn_sampler_sample(h.get(), logits.data()), 1);
}

TEST(Sampler, CreateRejectsBadParameters) {
    bn_error err{};
    bn_sampler *s = reinterpret_cast<bn_sampler *>(0x1);
    bn_sampler_params p{1.0f, 0, 1.0f, 0};
    EXPECT_EQ(bn_sampler_create(&p, 0, &s, &err), BN_ERR_INVALID);
    EXPECT_EQ(s, nullptr);
    EXPECT_NE(std::string(err.msg).find("vocabulary"), std::string::npos) << err.msg;
    for (bn_sampler_params bad : {bn_sampler_params{kNaN, 0, 1.0f, 0}, bn_sampler_params{kInf, 0, 1.0f, 0},
                                  bn_sampler_params{1.0f, 0, 0.0f, 0}, bn_sampler_params{1.0f, 0, -0.5f, 0},
                                  bn_sampler_params{1.0f, 0, kNaN, 0}}) {
        EXPECT_EQ(bn_sampler_create(&bad, 10, &s, &err), BN_ERR_INVALID) << bad.temp << " " << bad.top_p;
        EXPECT_EQ(s, nullptr);
    }
    bn_sampler_free(nullptr);  // no-op
}

// ---------------------------------------------------------- tap registry

const int kBlockDefault = 17;  // per-block kinds minus attn_scores, attn_probs (and the 14 in_q8/in_scale)

TEST(TapRegistry, KindNamesAreUniqueAndRoundTrip) {
    std::set<std::string> names;
    for (int k = 0; k < BN_TAP_KIND_COUNT; k++) {
        const std::string name = bn_tap_kind_name((bn_tap_kind)k);
        EXPECT_NE(name, "?") << k;
        EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
    }
    EXPECT_STREQ(bn_tap_kind_name(BN_TAP_KIND_COUNT), "?");
    EXPECT_STREQ(bn_tap_kind_name((bn_tap_kind)-1), "?");
    EXPECT_STREQ(bn_tap_kind_name(BN_TAP_FFN_ACT), "ffn_act");
    EXPECT_STREQ(bn_tap_kind_name((bn_tap_kind)(BN_TAP_IN_Q8_FIRST + 13)), "ffn_down.in_scale");
    char buf[64];
    for (int layer = -1; layer < 12; layer++)
        for (int k = 0; k < BN_TAP_KIND_COUNT; k++) {
            const bool global = k >= BN_TAP_BLOCK_KINDS;
            if (global != (layer < 0)) continue;
            bn_tap_name(buf, sizeof buf, layer, (bn_tap_kind)k);
            int l = -7;
            bn_tap_kind kind{};
            ASSERT_TRUE(bn_tap_parse(buf, &l, &kind)) << buf;
            EXPECT_EQ(l, layer) << buf;
            EXPECT_EQ(kind, (bn_tap_kind)k) << buf;
        }
    EXPECT_STREQ(bn_tap_name(buf, sizeof buf, 3, BN_TAP_ATTN_Q), "blk.3.attn_q");
    EXPECT_STREQ(bn_tap_name(buf, sizeof buf, -1, BN_TAP_LOGITS), "logits");
    // a short buffer is truncated, never overrun
    char tiny[6];
    EXPECT_STREQ(bn_tap_name(tiny, sizeof tiny, 3, BN_TAP_ATTN_Q), "blk.3");
}

TEST(TapRegistry, ParseRejectsWhatIsNotATapName) {
    int l;
    bn_tap_kind k;
    for (const char *bad : {"", "attn_q", "blk.0.logits", "blk..attn_q", "blk.x.attn_q", "blk.-1.attn_q",
                            "blk.0.attn_q.in_q9", "blk.0", "blk.0.", "blk.2000000.attn_q", "logits ",
                            "LOGITS", "blk.0.attn_q.in_scale.x", "token_embd.weight"})
        EXPECT_FALSE(bn_tap_parse(bad, &l, &k)) << "'" << bad << "'";
}

TEST(TapRegistry, OptInKinds) {
    int opt_in = 0;
    for (int k = 0; k < BN_TAP_KIND_COUNT; k++) opt_in += bn_tap_kind_opt_in((bn_tap_kind)k);
    EXPECT_EQ(opt_in, 2 + 14);
    EXPECT_TRUE(bn_tap_kind_opt_in(BN_TAP_ATTN_SCORES));
    EXPECT_TRUE(bn_tap_kind_opt_in(BN_TAP_ATTN_PROBS));
    EXPECT_TRUE(bn_tap_kind_opt_in(BN_TAP_IN_Q8_FIRST));
    EXPECT_FALSE(bn_tap_kind_opt_in(BN_TAP_LOGITS));
    EXPECT_FALSE(bn_tap_kind_opt_in(BN_TAP_OUT));
}

int64_t CountSelected(const bn_tap_set *s, int64_t n_layer) {
    int64_t n = 0;
    for (int layer = -1; layer < n_layer; layer++)
        for (int k = 0; k < BN_TAP_KIND_COUNT; k++) {
            const bool has = bn_tap_set_has(s, layer, (bn_tap_kind)k);
            // the dense table says the same
            EXPECT_EQ(has, bn_tap_set_table(s)[(layer + 1) * BN_TAP_KIND_COUNT + k]) << layer << " " << k;
            n += has;
        }
    return n;
}

TapSetPtr Select(int64_t n_layer, const char *globs) {
    bn_tap_set *s = nullptr;
    bn_error err{};
    EXPECT_OK(bn_tap_set_create(n_layer, globs, &s, &err), err);
    return TapSetPtr(s);
}

TEST(TapRegistry, GlobSelection) {
    const int64_t L = 4;
    struct Case {
        const char *globs;
        int64_t count;
    } cases[] = {
        {nullptr, L * kBlockDefault + 3},
        {"*", L * (kBlockDefault + 2 + 14) + 3},
        {"logits", 1},
        {"logits,logits", 1},  // selected once
        {"logits,", 1},        // a trailing comma ends the list
        {"blk.*.attn_q", L},
        {"blk.[02].ffn_*", 2 * 5 + 2 * 7},  // ffn_inp..ffn_out (7) for 2 blocks, and the 5 ffn_* in_q8/in_scale... see below
        {"blk.3.*", kBlockDefault + 2 + 14},
        {"blk.?.out,token_embd", L + 1},
        {"*.in_q8", L * 7},
        {"blk.1.attn_q*", 1 + 1 + 2},  // attn_q, attn_q_rope, attn_q.in_q8, attn_q.in_scale
    };
    // ffn_* in a block: ffn_inp, ffn_norm, ffn_gate, ffn_up, ffn_act,
    // ffn_sub_norm, ffn_out (7) + ffn_gate/up/down.in_q8/in_scale (6) = 13
    cases[6].count = 2 * 13;
    for (const auto &c : cases) {
        TapSetPtr s = Select(L, c.globs);
        ASSERT_TRUE(s) << (c.globs ? c.globs : "(default)");
        EXPECT_EQ(bn_tap_set_count(s.get()), c.count) << (c.globs ? c.globs : "(default)");
        EXPECT_EQ(CountSelected(s.get(), L), c.count) << (c.globs ? c.globs : "(default)");
    }
    TapSetPtr def = Select(L, nullptr);
    EXPECT_FALSE(bn_tap_set_has(def.get(), 0, BN_TAP_ATTN_SCORES));
    EXPECT_TRUE(bn_tap_set_has(def.get(), 3, BN_TAP_FFN_SUB_NORM));
    EXPECT_TRUE(bn_tap_set_has(def.get(), -1, BN_TAP_LOGITS));
    // out of range queries are false, not out-of-bounds reads
    EXPECT_FALSE(bn_tap_set_has(def.get(), L, BN_TAP_OUT));
    EXPECT_FALSE(bn_tap_set_has(def.get(), -2, BN_TAP_LOGITS));
    EXPECT_FALSE(bn_tap_set_has(def.get(), 0, BN_TAP_KIND_COUNT));
    EXPECT_FALSE(bn_tap_set_has(nullptr, 0, BN_TAP_OUT));
    // a model without blocks still has its global taps
    TapSetPtr none_blocks = Select(0, nullptr);
    EXPECT_EQ(bn_tap_set_count(none_blocks.get()), 3);
}

TEST(TapRegistry, BadSelectionsAreErrors) {
    bn_error err{};
    bn_tap_set *s = reinterpret_cast<bn_tap_set *>(0x1);
    EXPECT_EQ(bn_tap_set_create(4, "blk.*.atn_q", &s, &err), BN_ERR_INVALID);
    EXPECT_EQ(s, nullptr);
    EXPECT_NE(std::string(err.msg).find("'blk.*.atn_q' matches no tap"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_tap_set_create(4, "blk.4.out", &s, &err), BN_ERR_INVALID);  // block 4 of 0..3
    EXPECT_EQ(bn_tap_set_create(4, "logits,,out", &s, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("empty"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_tap_set_create(4, ",logits", &s, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_tap_set_create(4, std::string(300, '*').c_str(), &s, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_tap_set_create(-1, nullptr, &s, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_tap_set_none(-1, &s, &err), BN_ERR_INVALID);
    EXPECT_EQ(s, nullptr);
    ASSERT_OK(bn_tap_set_none(4, &s, &err), err);
    TapSetPtr none(s);
    EXPECT_EQ(bn_tap_set_count(none.get()), 0);
    EXPECT_EQ(CountSelected(none.get(), 4), 0);
    bn_tap_set_free(nullptr);  // no-op
}

// Observe and inject through the forward pass of a fixture model (2 blocks,
// fixtures/models/b158-i2s.gguf): the hooks fire for exactly the selected
// taps, in evaluation order, with the documented name/layer/eval/p0/shape;
// a tap both observed and injected is observed first (the observer sees the
// computed value, the graph continues with the injected one); a hook's error
// aborts the evaluation with that error.
struct Fired {
    std::string name;
    int layer;
    bn_tap_kind kind;
    int64_t eval, p0;
    bn_tap_dtype dtype;
    std::vector<int64_t> shape;
    float first;
};

bn_status Collect(void *user, bn_tap *tap, bn_error *) {
    Fired f{tap->name, tap->layer, tap->kind, tap->eval, tap->p0, tap->dtype, {}, 0};
    for (int d = 0; d < tap->ndim; d++) f.shape.push_back(tap->shape[d]);
    f.first = tap->dtype == BN_TAP_F32 ? *(const float *)tap->data : (float)*(const int8_t *)tap->data;
    static_cast<std::vector<Fired> *>(user)->push_back(f);
    return BN_OK;
}

bn_status SetToSeven(void *, bn_tap *tap, bn_error *) {
    int64_t n = 1;
    for (int d = 0; d < tap->ndim; d++) n *= tap->shape[d];
    for (int64_t i = 0; i < n; i++) ((float *)tap->data)[i] = 7.0f;
    return BN_OK;
}

bn_status Refuse(void *, bn_tap *tap, bn_error *err) {
    return bn_error_set(err, BN_ERR_INVALID, "refused %s", tap->name);
}

class TapHooks : public ::testing::Test {
  protected:
    void SetUp() override {
        bn_error err{};
        bn_model *m = nullptr;
        ASSERT_OK(bn_model_load(bptest::SourcePath("fixtures/models/b158-i2s.gguf").c_str(), &m, &err), err);
        model.reset(m);
        ASSERT_EQ(m->hp.n_layer, 2);
    }
    // Runs p1's first 5 tokens then one more token.
    bn_status Run(bn_ctx_params p, bn_error *err) {
        bn_ctx *c = nullptr;
        bn_status st = bn_ctx_create(model.get(), &p, &c, err);
        if (st) return st;
        CtxPtr ctx(c);
        const int32_t prompt[5] = {188, 39, 72, 11, 258}, next = 220;
        if ((st = bn_ctx_eval(c, prompt, 5, err))) return st;
        return bn_ctx_eval(c, &next, 1, err);
    }
    ModelPtr model;
};

TEST_F(TapHooks, ObserveFiresExactlyTheSelectionInEvaluationOrder) {
    for (const char *globs : {(const char *)nullptr, "*", "blk.1.ffn_act,logits,blk.0.attn_q.in_q8"}) {
        const std::string what = globs ? globs : "(default)";
        TapSetPtr sel = Select(2, globs);
        ASSERT_TRUE(sel);
        std::vector<Fired> fired;
        bn_ctx_params p = bn_ctx_params_init();
        p.observe = sel.get(), p.observe_fn = Collect, p.observe_user = &fired;
        bn_error err{};
        ASSERT_OK(Run(p, &err), err);
        const int64_t per_eval = bn_tap_set_count(sel.get());
        ASSERT_EQ((int64_t)fired.size(), 2 * per_eval) << what;
        for (size_t i = 0; i < fired.size(); i++) {
            const Fired &f = fired[i];
            const int64_t eval = (int64_t)i / per_eval;
            EXPECT_EQ(f.eval, eval) << what << " " << f.name;
            EXPECT_EQ(f.p0, eval ? 5 : 0) << f.name;
            EXPECT_TRUE(bn_tap_set_has(sel.get(), f.layer, f.kind)) << f.name;
            char buf[64];
            EXPECT_EQ(f.name, bn_tap_name(buf, sizeof buf, f.layer, f.kind));
            // [T, width] (in_scale: [T]); scores/probs [n_head, T, p0 + T]
            const int64_t T = eval ? 1 : 5;
            if (f.shape.size() == 3) {
                EXPECT_EQ(f.shape[0], model->hp.n_head) << f.name;
                EXPECT_EQ(f.shape[1], T) << f.name;
                EXPECT_EQ(f.shape[2], f.p0 + T) << f.name;
            } else {
                EXPECT_EQ(f.shape[0], T) << f.name;
            }
            EXPECT_EQ(f.dtype, f.name.find(".in_q8") != std::string::npos ? BN_TAP_I8 : BN_TAP_F32) << f.name;
        }
        // evaluation order: token_embd first, output_norm and logits last,
        // blocks ascending, and within a block the always-on kinds in
        // bn_tap_kind order (the opt-in in_q8 taps fire inside projections)
        for (int64_t e = 0; e < 2; e++) {
            std::vector<const Fired *> order;
            for (int64_t i = 0; i < per_eval; i++) order.push_back(&fired[(size_t)(e * per_eval + i)]);
            if (!globs) {
                EXPECT_EQ(order.front()->name, "token_embd");
                EXPECT_EQ(order[(size_t)per_eval - 2]->name, "output_norm");
                EXPECT_EQ(order.back()->name, "logits");
            }
            auto rank = [](const Fired *f) { return f->layer >= 0 ? f->layer : f->kind == BN_TAP_TOKEN_EMBD ? -1 : 99; };
            const Fired *prev = nullptr;
            for (const Fired *f : order) {
                if (prev) {
                    EXPECT_LE(rank(prev), rank(f)) << prev->name << " fired before " << f->name;
                }
                if (f->layer >= 0 && bn_tap_kind_opt_in(f->kind)) continue;
                if (prev && prev->layer == f->layer && f->layer >= 0) {
                    EXPECT_LT(prev->kind, f->kind) << prev->name << " fired before " << f->name;
                }
                prev = f;
            }
        }
    }
}

TEST_F(TapHooks, ATapBothObservedAndInjectedIsObservedFirst) {
    TapSetPtr obs = Select(2, "blk.0.ffn_out,blk.0.out,logits"), inj = Select(2, "blk.0.ffn_out");
    ASSERT_TRUE(obs && inj);
    std::vector<Fired> plain, injected;
    bn_ctx_params p = bn_ctx_params_init();
    p.observe = obs.get(), p.observe_fn = Collect, p.observe_user = &plain;
    bn_error err{};
    ASSERT_OK(Run(p, &err), err);
    p.observe_user = &injected;
    p.inject = inj.get(), p.inject_fn = SetToSeven;
    ASSERT_OK(Run(p, &err), err);
    ASSERT_EQ(plain.size(), injected.size());
    ASSERT_EQ(plain.size(), 6u);
    // the observer saw the computed ffn_out, not the 7s
    EXPECT_EQ(injected[0].name, "blk.0.ffn_out");
    EXPECT_TRUE(SameFloat(injected[0].first, plain[0].first));
    EXPECT_NE(injected[0].first, 7.0f);
    // the graph continued with the 7s: out = ffn_inp + 7 changes, logits too
    EXPECT_NE(Bits(injected[1].first), Bits(plain[1].first));
    EXPECT_NE(Bits(injected[2].first), Bits(plain[2].first));
}

TEST_F(TapHooks, AHookErrorAbortsTheEvaluation) {
    TapSetPtr sel = Select(2, "blk.1.attn_v");
    ASSERT_TRUE(sel);
    for (bool inject : {false, true}) {
        bn_ctx_params p = bn_ctx_params_init();
        if (inject) p.inject = sel.get(), p.inject_fn = Refuse;
        else p.observe = sel.get(), p.observe_fn = Refuse;
        bn_error err{};
        EXPECT_EQ(Run(p, &err), BN_ERR_INVALID) << inject;
        EXPECT_STREQ(err.msg, "refused blk.1.attn_v") << inject;
    }
    // a selection without its hook is refused when the context is made
    bn_ctx_params p = bn_ctx_params_init();
    p.inject = sel.get();
    bn_ctx *c = reinterpret_cast<bn_ctx *>(0x1);
    bn_error err{};
    EXPECT_EQ(bn_ctx_create(model.get(), &p, &c, &err), BN_ERR_INVALID);
    EXPECT_EQ(c, nullptr);
}

}  // namespace
