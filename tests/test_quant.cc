// test_quant.cc — tensor types: scalar conversions, hand-built single blocks
// of every type, quantize/dequantize round trips, portable vs AVX2 kernels,
// error cases, and the shared tiny models (I2_S, TQ1_0, TQ2_0, F16 against
// the F32 source weights).
#include "test_helpers.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "bitnet/gguf.h"
#include "bitnet/quant.h"
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

namespace {

uint32_t Bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float FromBits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Every kernel level this CPU can run: portable always, AVX2 when present.
std::vector<bn_simd_level> Levels() {
    std::vector<bn_simd_level> v{BN_SIMD_PORTABLE};
    if (bn_simd_best() == BN_SIMD_AVX2) v.push_back(BN_SIMD_AVX2);
    return v;
}

// Dequantizes rows [row0, row0+nrows) at `level`, asserting success.
std::vector<float> Dequant(uint32_t type, const void *data, int64_t ne0, int64_t nrows_total, int64_t row0,
                           int64_t nrows, bn_simd_level level) {
    std::vector<float> out(static_cast<size_t>(ne0 * nrows), -12345.0f);
    bn_error err{};
    bn_status st = bn_dequantize_rows_ex(type, data, ne0, nrows_total, row0, nrows, out.data(), level, &err);
    EXPECT_EQ(st, BN_OK) << err.msg;
    return out;
}

std::vector<uint8_t> Quant(uint32_t type, const float *src, int64_t ne0, int64_t nrows) {
    uint64_t nbytes = 0;
    bn_error err{};
    EXPECT_EQ(bn_type_tensor_nbytes(type, ne0, ne0 * nrows, &nbytes, &err), BN_OK) << err.msg;
    std::vector<uint8_t> out(nbytes, 0xAB);
    bn_status st = bn_quantize(type, src, ne0, nrows, out.data(), out.size(), &err);
    EXPECT_EQ(st, BN_OK) << err.msg;
    return out;
}

// Expects a and b to hold the same float bit patterns, naming the first difference.
void ExpectSameBits(const std::vector<float> &a, const std::vector<float> &b, const std::string &what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); i++)
        if (Bits(a[i]) != Bits(b[i])) {
            ADD_FAILURE() << what << ": element " << i << ": " << a[i] << " (0x" << std::hex << Bits(a[i])
                          << ") vs " << b[i] << " (0x" << Bits(b[i]) << ")";
            return;
        }
}

// ---------------------------------------------------------------- scalars

TEST(QuantF16, DecodesSpecialValues) {
    EXPECT_EQ(bn_f16_to_f32(0x3c00), 1.0f);
    EXPECT_EQ(bn_f16_to_f32(0xc000), -2.0f);
    EXPECT_EQ(bn_f16_to_f32(0x7bff), 65504.0f);
    EXPECT_EQ(bn_f16_to_f32(0x0001), std::ldexp(1.0f, -24));        // smallest subnormal
    EXPECT_EQ(bn_f16_to_f32(0x03ff), 1023.0f * std::ldexp(1.0f, -24)); // largest subnormal
    EXPECT_EQ(bn_f16_to_f32(0x0400), std::ldexp(1.0f, -14));        // smallest normal
    EXPECT_EQ(Bits(bn_f16_to_f32(0x8000)), 0x80000000u);            // -0
    EXPECT_EQ(Bits(bn_f16_to_f32(0x8001)), Bits(-std::ldexp(1.0f, -24)));
    EXPECT_EQ(Bits(bn_f16_to_f32(0x7c00)), 0x7f800000u);            // +inf
    EXPECT_EQ(Bits(bn_f16_to_f32(0xfc00)), 0xff800000u);            // -inf
    EXPECT_EQ(Bits(bn_f16_to_f32(0x7e00)), 0x7fc00000u);            // quiet NaN
    EXPECT_EQ(Bits(bn_f16_to_f32(0x7c01)), 0x7fc02000u);            // signalling NaN: quieted, payload kept
    EXPECT_EQ(Bits(bn_f16_to_f32(0xfd55)), 0xffeaa000u);
}

TEST(QuantF16, EncodesWithRoundToNearestEven) {
    const float u24 = std::ldexp(1.0f, -24);                         // f16 subnormal unit
    EXPECT_EQ(bn_f32_to_f16(1.0f), 0x3c00);
    EXPECT_EQ(bn_f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even (down)
    EXPECT_EQ(bn_f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02); // tie -> even (up)
    EXPECT_EQ(bn_f32_to_f16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
    EXPECT_EQ(bn_f32_to_f16(65504.0f), 0x7bff);
    EXPECT_EQ(bn_f32_to_f16(65519.996f), 0x7bff);
    EXPECT_EQ(bn_f32_to_f16(65520.0f), 0x7c00);                      // tie above max -> inf
    EXPECT_EQ(bn_f32_to_f16(1e9f), 0x7c00);
    EXPECT_EQ(bn_f32_to_f16(-1e9f), 0xfc00);
    EXPECT_EQ(bn_f32_to_f16(u24), 0x0001);
    EXPECT_EQ(bn_f32_to_f16(u24 / 2), 0x0000);                       // tie -> even 0
    EXPECT_EQ(bn_f32_to_f16(u24 * 1.5f), 0x0002);                    // tie -> even 2
    EXPECT_EQ(bn_f32_to_f16(u24 * 2.5f), 0x0002);
    EXPECT_EQ(bn_f32_to_f16(std::nextafter(u24 / 2, 1.0f)), 0x0001);
    EXPECT_EQ(bn_f32_to_f16(1023.5f * u24), 0x0400);                 // subnormal rounds up to normal
    EXPECT_EQ(bn_f32_to_f16(std::ldexp(1.0f, -30)), 0x0000);
    EXPECT_EQ(bn_f32_to_f16(-0.0f), 0x8000);
    EXPECT_EQ(bn_f32_to_f16(-std::ldexp(1.0f, -30)), 0x8000);
    EXPECT_EQ(bn_f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
    EXPECT_EQ(bn_f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
    EXPECT_EQ(bn_f32_to_f16(FromBits(0x7fc00000)), 0x7e00);          // ggml: canonical NaN
    EXPECT_EQ(bn_f32_to_f16(FromBits(0xff812345)), 0xfe00);
    for (uint32_t h = 0; h < 0x10000; h++) {                         // every non-NaN half round-trips
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        ASSERT_EQ(bn_f32_to_f16(bn_f16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
    }
}

#ifdef HAVE_X86
__attribute__((target("f16c"))) uint16_t HardwareF16(float f) { return _cvtss_sh(f, 0); }
__attribute__((target("f16c"))) float HardwareF32(uint16_t h) { return _cvtsh_ss(h); }

// F16C (round to nearest even) is an independent oracle for every non-NaN float.
TEST(QuantF16, MatchesF16cHardware) {
    if (bn_simd_best() != BN_SIMD_AVX2) GTEST_SKIP() << "CPU without F16C";  // that level implies F16C
    for (uint32_t h = 0; h < 0x10000; h++)
        ASSERT_EQ(Bits(bn_f16_to_f32(static_cast<uint16_t>(h))), Bits(HardwareF32(static_cast<uint16_t>(h))))
            << std::hex << h;
    uint64_t checked = 0;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 251) {  // a stride hitting every exponent and rounding case
        for (uint32_t d = 0; d < 3; d++) {
            float f = FromBits(static_cast<uint32_t>(u) + d);
            if (std::isnan(f)) continue;
            ASSERT_EQ(bn_f32_to_f16(f), HardwareF16(f)) << std::hex << Bits(f);
            checked++;
        }
    }
    EXPECT_GT(checked, 50000000u);
}
#endif

// The bulk conversion (the KV cache's K and V rows, the f16 q and p of
// attention) gives bn_f32_to_f16's bits at every level: over a stride of
// the whole float range, with NaNs (whose payload F16C would keep, so their
// chunk of 8 takes the scalar path) among ordinary values, and every tail.
TEST(QuantF16, BulkConversionEqualsScalar) {
    std::vector<float> x;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 65537) x.push_back(FromBits(static_cast<uint32_t>(u)));
    const float nan_payload = FromBits(0x7fa00001u), neg_nan = FromBits(0xffc01234u);
    for (float f : {0.0f, -0.0f, 65504.0f, 65520.0f, -65520.0f, 5.96e-8f, 2.98e-8f, 1e-10f, nan_payload, 1.0f, neg_nan})
        x.push_back(f);
    for (bn_simd_level level : Levels())
        for (size_t n : {x.size(), x.size() - 1, (size_t)7, (size_t)8, (size_t)9, (size_t)0}) {
            std::vector<uint16_t> y(n + 1, 0xabcd);
            bn_f32_to_f16_n(x.data(), y.data(), (int64_t)n, level);
            for (size_t i = 0; i < n; i++)
                ASSERT_EQ(y[i], bn_f32_to_f16(x[i])) << std::hex << Bits(x[i]) << " level " << level << " n " << n;
            EXPECT_EQ(y[n], 0xabcd) << "wrote past n";
        }
    EXPECT_EQ(bn_f32_to_f16(nan_payload), 0x7e00);  // ggml's NaN, not F16C's 0x7d00
}

TEST(QuantBF16, RoundsToEvenAndQuietsNaN) {
    EXPECT_EQ(bn_f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(bn_f32_to_bf16(FromBits(0x3f808000)), 0x3f80);  // tie, even stays
    EXPECT_EQ(bn_f32_to_bf16(FromBits(0x3f818000)), 0x3f82);  // tie, odd rounds up
    EXPECT_EQ(bn_f32_to_bf16(FromBits(0x3f808001)), 0x3f81);
    EXPECT_EQ(bn_f32_to_bf16(FromBits(0x3f807fff)), 0x3f80);
    EXPECT_EQ(bn_f32_to_bf16(FromBits(0x7f7fffff)), 0x7f80);  // FLT_MAX rounds to inf
    EXPECT_EQ(bn_f32_to_bf16(-0.0f), 0x8000);
    EXPECT_EQ(bn_f32_to_bf16(FromBits(0x7f800001)), 0x7fc0);  // signalling NaN made quiet
    EXPECT_EQ(bn_f32_to_bf16(FromBits(0xff812345)), 0xffc1);
    EXPECT_EQ(bn_f32_to_bf16(FromBits(0x7fc00000)), 0x7fc0);
    EXPECT_EQ(bn_bf16_to_f32(0x3f80), 1.0f);
    EXPECT_EQ(Bits(bn_bf16_to_f32(0xc0a1)), 0xc0a10000u);
}

// ------------------------------------------------------- single blocks

TEST(QuantBlocks, F32F16BF16Rows) {
    const float f32[4] = {1.5f, -0.0f, 3e38f, -7.25f};
    const uint8_t f16[8] = {0x00, 0x3c, 0x01, 0x00, 0x00, 0xfc, 0x00, 0xb8};  // 1, 2^-24, -inf, -0.5
    const uint8_t bf16[8] = {0x80, 0x3f, 0x49, 0xc0, 0x80, 0x7f, 0x00, 0x80};  // 1, -3.140625, inf, -0
    for (bn_simd_level lv : Levels()) {
        auto a = Dequant(BN_TYPE_F32, f32, 4, 1, 0, 1, lv);
        ExpectSameBits(a, {1.5f, -0.0f, 3e38f, -7.25f}, "F32");
        auto h = Dequant(BN_TYPE_F16, f16, 2, 2, 0, 2, lv);
        ExpectSameBits(h, {1.0f, std::ldexp(1.0f, -24), -INFINITY, -0.5f}, "F16");
        auto h1 = Dequant(BN_TYPE_F16, f16, 2, 2, 1, 1, lv);  // second row only
        ExpectSameBits(h1, {-INFINITY, -0.5f}, "F16 row 1");
        auto b = Dequant(BN_TYPE_BF16, bf16, 4, 1, 0, 1, lv);
        ExpectSameBits(b, {1.0f, -3.140625f, INFINITY, -0.0f}, "BF16");
    }
    // 17 halves: exercises the 8-wide AVX2 loop and its scalar tail.
    std::vector<uint8_t> many(34);
    std::vector<float> want(17);
    for (int i = 0; i < 17; i++) {
        uint16_t h = static_cast<uint16_t>(0x3c00 + 0x155 * i);
        many[2 * i] = static_cast<uint8_t>(h), many[2 * i + 1] = static_cast<uint8_t>(h >> 8);
        want[i] = bn_f16_to_f32(h);
    }
    for (bn_simd_level lv : Levels())
        ExpectSameBits(Dequant(BN_TYPE_F16, many.data(), 17, 1, 0, 1, lv), want, "F16x17");
}

TEST(QuantBlocks, Q8_0) {
    // d = 0.5 (f16 0x3800) then 32 int8.
    uint8_t blk[34] = {0x00, 0x38};
    const int8_t q[32] = {-128, -127, -1, 0, 1, 2, 127, 5, -5, 3};
    memcpy(blk + 2, q, 32);
    std::vector<float> want(32, 0.0f);
    const float vals[10] = {-64.0f, -63.5f, -0.5f, 0.0f, 0.5f, 1.0f, 63.5f, 2.5f, -2.5f, 1.5f};
    for (int i = 0; i < 10; i++) want[i] = vals[i];
    for (bn_simd_level lv : Levels())
        ExpectSameBits(Dequant(BN_TYPE_Q8_0, blk, 32, 1, 0, 1, lv), want, "Q8_0");

    // Quantizer: amax 127 -> d = 1, q = roundf(x) with halves away from zero.
    std::vector<float> x(32, 0.0f);
    const float xs[8] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, -127.0f, 0.2f};
    for (int i = 0; i < 8; i++) x[i] = xs[i];
    auto b = Quant(BN_TYPE_Q8_0, x.data(), 32, 1);
    ASSERT_EQ(b.size(), 34u);
    EXPECT_EQ(b[0], 0x00);
    EXPECT_EQ(b[1], 0x3c);  // d = 1.0
    const int8_t wantq[8] = {127, 3, -3, 1, -1, 1, -127, 0};
    for (int i = 0; i < 8; i++) EXPECT_EQ(static_cast<int8_t>(b[2 + i]), wantq[i]) << i;
    for (int i = 8; i < 32; i++) EXPECT_EQ(b[2 + i], 0) << i;
}

// I2_S: byte b of a 32-byte block holds elements b (bits 7-6), b+32, b+64, b+96.
TEST(QuantBlocks, I2S) {
    // Two rows of 128: row 1 is hand-made, row 0 all zero codes. Scale 0.25 at
    // byte nelem/4 = 64, then 28 padding bytes (garbage in real files).
    std::vector<uint8_t> t(64 + 32, 0x55);
    t[32 + 0] = 0x1B;  // codes 0,1,2,3 -> -1, 0, +1, 0 for elements 0, 32, 64, 96
    t[32 + 5] = 0x80;  // codes 2,0,0,0 -> +1, -1, -1, -1 for elements 5, 37, 69, 101
    t[32 + 31] = 0x9A; // codes 2,1,2,2 -> elements 31, 63, 95, 127
    const float scale = 0.25f;
    memcpy(t.data() + 64, &scale, 4);
    for (int i = 68; i < 96; i++) t[i] = 0xEE;
    std::vector<float> want(128, 0.0f);
    want[0] = -0.25f, want[64] = 0.25f;
    want[5] = 0.25f, want[37] = -0.25f, want[69] = -0.25f, want[101] = -0.25f;
    want[31] = 0.25f, want[95] = 0.25f, want[127] = 0.25f;
    for (bn_simd_level lv : Levels()) {
        ExpectSameBits(Dequant(BN_TYPE_I2_S, t.data(), 128, 2, 1, 1, lv), want, "I2_S row 1");
        ExpectSameBits(Dequant(BN_TYPE_I2_S, t.data(), 128, 2, 0, 1, lv), std::vector<float>(128, 0.0f),
                       "I2_S row 0");
    }
    // Quantizing the decoded values gives back the codes (code 3 -> 1), the
    // scale, and zero padding.
    std::vector<float> x(256, 0.0f);
    memcpy(x.data() + 128, want.data(), 128 * sizeof(float));
    auto q = Quant(BN_TYPE_I2_S, x.data(), 128, 2);
    ASSERT_EQ(q.size(), 96u);
    std::vector<uint8_t> expect = t;
    expect[32] = 0x19;
    for (int i = 68; i < 96; i++) expect[i] = 0;
    EXPECT_EQ(q, expect);
}

TEST(QuantBlocks, I2SQuantizerThresholdAndScale) {
    // bitnet.cpp: zero when |w| < 1e-6 (in double), else the sign; scale = max|w|.
    std::vector<float> x(128, 0.0f);
    x[0] = 1e-6f;    // as a float this is 9.99999997e-7 < 1e-6: zero
    x[1] = -1.1e-6f; // sign kept
    x[2] = 0.75f;
    x[3] = -2.0f;    // largest magnitude -> scale 2.0
    x[32] = 5e-7f;
    x[33] = -0.0f;
    auto q = Quant(BN_TYPE_I2_S, x.data(), 128, 1);
    ASSERT_EQ(q.size(), 64u);
    EXPECT_EQ(q[0], 0x55);  // codes 1,1,1,1
    EXPECT_EQ(q[1], 0x15);  // code 0 (negative), then zeros
    EXPECT_EQ(q[2], 0x95);  // code 2
    EXPECT_EQ(q[3], 0x15);
    float s;
    memcpy(&s, q.data() + 32, 4);
    EXPECT_EQ(s, 2.0f);
    for (int i = 36; i < 64; i++) EXPECT_EQ(q[i], 0) << i;
}

// TQ2_0: qs[64] then f16 d at the END; byte b: half b/32, field n (bits 2n)
// holds element 128*(b/32) + 32*n + b%32; value (code - 1) * d.
TEST(QuantBlocks, TQ2_0) {
    uint8_t blk[66];
    memset(blk, 0x55, 64);
    blk[64] = 0x00, blk[65] = 0x38;  // d = 0.5
    blk[0] = 0xE4;   // fields 0,1,2,3 -> -1, 0, +1, +2 (code 3 is (3-1)*d in ggml)
    blk[33] = 0x06;  // fields 2,1,0,0 -> elements 129, 161, 193, 225
    std::vector<float> want(256, 0.0f);
    want[0] = -0.5f, want[64] = 0.5f, want[96] = 1.0f;
    want[129] = 0.5f, want[193] = -0.5f, want[225] = -0.5f;
    for (bn_simd_level lv : Levels())
        ExpectSameBits(Dequant(BN_TYPE_TQ2_0, blk, 256, 1, 0, 1, lv), want, "TQ2_0");

    // Quantizer on ternary input with amax 0.5 rebuilds the block (without code 3).
    blk[0] = 0x64;  // element 96 back to code 1
    want[96] = 0.0f;
    auto q = Quant(BN_TYPE_TQ2_0, want.data(), 256, 1);
    EXPECT_EQ(q, std::vector<uint8_t>(blk, blk + 66));
}

// TQ1_0: qs[48] (5 trits per byte, base-3 fixed point), qh[4] (4 trits), f16 d.
TEST(QuantBlocks, TQ1_0) {
    uint8_t blk[54];
    memset(blk, 128, 48);     // 128 = ceil(121*256/243): trits 1,1,1,1,1 -> all zero
    memset(blk + 48, 127, 4); // 127 = ceil(120*256/243): trits 1,1,1,1 (+ pad 0)
    blk[52] = 0x00, blk[53] = 0x38;  // d = 0.5
    // trits (2,0,1,1,2): q = 2*81 + 0 + 9 + 3 + 2 = 176 -> ceil(176*256/243) = 186
    blk[3] = 186;       // elements 3, 35, 67, 99, 131
    blk[32 + 2] = 186;  // elements 162, 178, 194, 210, 226
    // qh trits (1,2,0,2), shifted: q = 47*3 = 141 -> ceil(141*256/243) = 149
    blk[48 + 1] = 149;  // elements 241, 245, 249, 253
    std::vector<float> want(256, 0.0f);
    want[3] = 0.5f, want[35] = -0.5f, want[131] = 0.5f;
    want[162] = 0.5f, want[178] = -0.5f, want[226] = 0.5f;
    want[245] = 0.5f, want[249] = -0.5f, want[253] = 0.5f;
    for (bn_simd_level lv : Levels())
        ExpectSameBits(Dequant(BN_TYPE_TQ1_0, blk, 256, 1, 0, 1, lv), want, "TQ1_0");
    auto q = Quant(BN_TYPE_TQ1_0, want.data(), 256, 1);
    EXPECT_EQ(q, std::vector<uint8_t>(blk, blk + 54));
}

TEST(QuantBlocks, ZeroScaleAndNegativeScaleSigns) {
    // 0 * negative d is -0: the kernels multiply, they do not select.
    uint8_t blk[66];
    memset(blk, 0x55, 64);
    blk[64] = 0x00, blk[65] = 0xb8;  // d = -0.5
    for (bn_simd_level lv : Levels()) {
        auto v = Dequant(BN_TYPE_TQ2_0, blk, 256, 1, 0, 1, lv);
        EXPECT_EQ(Bits(v[0]), 0x80000000u);
    }
    std::vector<float> zeros(256, 0.0f);
    auto q = Quant(BN_TYPE_TQ2_0, zeros.data(), 256, 1);  // amax 0: id = 0, codes 1, d = 0
    EXPECT_EQ(q[0], 0x55);
    EXPECT_EQ(q[64], 0);
    EXPECT_EQ(q[65], 0);
}

// Random bytes, including codes the quantizers never write and f16 scales
// that are inf, NaN or subnormal: both kernel levels must agree bit for bit.
TEST(QuantKernels, PortableAndAvx2AgreeOnRandomBytes) {
    if (bn_simd_best() != BN_SIMD_AVX2) GTEST_SKIP() << "CPU without AVX2";
    std::mt19937 rng(1234);
    const uint32_t types[] = {BN_TYPE_F32, BN_TYPE_F16, BN_TYPE_BF16, BN_TYPE_Q8_0,
                              BN_TYPE_I2_S, BN_TYPE_TQ1_0, BN_TYPE_TQ2_0};
    for (uint32_t type : types) {
        const int64_t ne0 = 768, nrows = 5;
        uint64_t nbytes = 0;
        bn_error err{};
        ASSERT_EQ(bn_type_tensor_nbytes(type, ne0, ne0 * nrows, &nbytes, &err), BN_OK);
        std::vector<uint8_t> data(nbytes);
        for (auto &b : data) b = static_cast<uint8_t>(rng());
        auto a = Dequant(type, data.data(), ne0, nrows, 1, 3, BN_SIMD_PORTABLE);
        auto b = Dequant(type, data.data(), ne0, nrows, 1, 3, BN_SIMD_AVX2);
        ASSERT_EQ(memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << bn_type_name(type);
    }
}

// The Q8_0 quantizer's AVX2 kernel (--lm-head q8_0, synth) against the
// scalar quantize_row_q8_0_ref port, byte for byte: random blocks at many
// scales, and blocks with ties (x*id = k + 0.5 either sign), -0, all zeros,
// one NaN, an inf, FLT_MAX, subnormals whose d's inverse overflows, and a
// d that is itself subnormal. Both runs of each block are hand-checked too
// where the answer is known.
TEST(QuantKernels, Q8_0QuantizerAvx2EqualsPortable) {
    if (bn_simd_best() != BN_SIMD_AVX2) GTEST_SKIP() << "CPU without AVX2";
    std::mt19937 rng(77);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_int_distribution<int> ex(-140, 120);
    std::vector<std::vector<float>> blocks;
    for (int i = 0; i < 3000; i++) {
        std::vector<float> b(32);
        const float s = std::ldexp(1.0f, ex(rng));
        for (auto &v : b) v = nd(rng) * s;
        blocks.push_back(b);
    }
    std::vector<float> ties(32);
    ties[0] = 127.0f;  // amax 127: d = 1, id = 1
    for (int j = 1; j < 32; j++) ties[j] = (j % 2 ? 1.0f : -1.0f) * (static_cast<float>(j / 2) + 0.5f);
    blocks.push_back(ties);
    std::vector<float> zeros(32, 0.0f), negz(32, -0.0f), withnan(32, 1.0f), withinf(32, 2.0f), big(32, 3e38f);
    withnan[5] = NAN, withinf[9] = -INFINITY, big[1] = -FLT_MAX;
    std::vector<float> subn(32, 1e-44f), dsub(32, 2e-37f);  // 1/d overflows; d subnormal, id finite
    subn[3] = -3e-44f, dsub[7] = -3.3e-37f;
    for (auto *b : {&zeros, &negz, &withnan, &withinf, &big, &subn, &dsub}) blocks.push_back(*b);
    std::vector<float> all;
    for (auto &b : blocks) all.insert(all.end(), b.begin(), b.end());
    const int64_t n_blocks = static_cast<int64_t>(blocks.size());
    std::vector<uint8_t> a(static_cast<size_t>(n_blocks) * 34), v(a.size());
    bn_error err{};
    ASSERT_EQ(bn_quantize_ex(BN_TYPE_Q8_0, all.data(), 32, n_blocks, a.data(), a.size(), BN_SIMD_PORTABLE, &err), BN_OK)
        << err.msg;
    ASSERT_EQ(bn_quantize_ex(BN_TYPE_Q8_0, all.data(), 32, n_blocks, v.data(), v.size(), BN_SIMD_AVX2, &err), BN_OK)
        << err.msg;
    for (int64_t b = 0; b < n_blocks; b++)
        ASSERT_EQ(memcmp(&a[static_cast<size_t>(b) * 34], &v[static_cast<size_t>(b) * 34], 34), 0) << "block " << b;
    const uint8_t *t = &v[3000 * 34];  // the ties: d = 1, halves away from zero
    EXPECT_EQ(t[0] | t[1] << 8, 0x3c00);
    for (int j = 1; j < 32; j++)
        EXPECT_EQ(static_cast<int8_t>(t[2 + j]), (j % 2 ? 1 : -1) * (j / 2 + 1)) << j;
    const uint8_t *nanb = &v[3003 * 34];  // withnan: the NaN stored as 0
    EXPECT_EQ(nanb[2 + 5], 0);
}

// ------------------------------------------------------------ errors

TEST(QuantErrors, UnsupportedTypes) {
    float out[256];
    bn_error err{};
    uint8_t buf[512] = {};
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_TL1, buf, 128, 1, 0, 1, out, &err), BN_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(err.msg).find("TL1"), std::string::npos) << err.msg;
    EXPECT_NE(std::string(err.msg).find("I2_S"), std::string::npos) << err.msg;  // suggests re-quantizing
    EXPECT_EQ(bn_dequantize_rows(99, buf, 128, 1, 0, 1, out, &err), BN_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(err.msg).find("99"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_quantize(BN_TYPE_Q8_K, out, 256, 1, buf, sizeof buf, &err), BN_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(err.msg).find("Q8_K"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_quantize(BN_TYPE_I8_S, out, 128, 1, buf, sizeof buf, &err), BN_ERR_UNSUPPORTED);
}

TEST(QuantErrors, RowsNotMultipleOfBlock) {
    float out[512];
    uint8_t buf[512] = {};
    bn_error err{};
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_I2_S, buf, 100, 1, 0, 1, out, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("not a multiple of the I2_S block size 128"), std::string::npos)
        << err.msg;
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_TQ2_0, buf, 128, 1, 0, 1, out, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("TQ2_0 block size 256"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_quantize(BN_TYPE_Q8_0, out, 48, 1, buf, sizeof buf, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("Q8_0 block size 32"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_F32, buf, 0, 1, 0, 1, out, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_F32, buf, -4, 1, 0, 1, out, &err), BN_ERR_INVALID);
}

TEST(QuantErrors, RowRangeAndOverflow) {
    float out[256];
    uint8_t buf[1024] = {};
    bn_error err{};
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_F32, buf, 4, 3, 2, 2, out, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("out of range"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_F32, buf, 4, 3, -1, 1, out, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_F32, buf, 4, 3, 0, -1, out, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_F32, buf, 4, 3, INT64_MAX, 1, out, &err), BN_ERR_INVALID);
    const int64_t huge = INT64_MAX / 128 * 128;
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_I2_S, buf, huge, 4, 0, 1, out, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_F32, nullptr, 4, 3, 0, 1, out, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_dequantize_rows_ex(BN_TYPE_F32, buf, 4, 3, 0, 1, out, static_cast<bn_simd_level>(7), &err),
              BN_ERR_INVALID);
    EXPECT_EQ(bn_dequantize_rows(BN_TYPE_F32, buf, 4, 3, 3, 0, out, &err), BN_OK);  // empty range
}

TEST(QuantErrors, DestinationTooSmall) {
    std::vector<float> x(256, 0.5f);
    std::vector<uint8_t> dst(100);
    bn_error err{};
    EXPECT_EQ(bn_quantize(BN_TYPE_I2_S, x.data(), 128, 2, dst.data(), 95, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("needs 96 bytes"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_quantize(BN_TYPE_TQ2_0, x.data(), 256, 1, dst.data(), 65, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("needs 66 bytes"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_quantize(BN_TYPE_I2_S, x.data(), 128, 2, dst.data(), 96, &err), BN_OK) << err.msg;
}

// ------------------------------------------------------- shared models


GgufPtr Open(const std::string &path) {
    bn_gguf *g = nullptr;
    bn_error err{};
    bn_status st = bn_gguf_open(path.c_str(), &g, &err);
    EXPECT_EQ(st, BN_OK) << err.msg;
    return GgufPtr(g);
}

int64_t Rows(const bn_gguf_tensor *t) { return t->nelem / t->ne[0]; }

std::vector<float> DequantTensor(const bn_gguf_tensor *t, bn_simd_level lv) {
    return Dequant(t->type, t->data, t->ne[0], Rows(t), 0, Rows(t), lv);
}

const float *F32Data(const bn_gguf *g, const char *name, int64_t nelem) {
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, name);
    EXPECT_NE(t, nullptr) << name;
    if (!t) return nullptr;
    EXPECT_EQ(t->type, static_cast<uint32_t>(BN_TYPE_F32)) << name;
    EXPECT_EQ(t->nelem, nelem) << name;
    return static_cast<const float *>(t->data);
}

// Every I2_S tensor decodes to the F32 source weights. The only bit-level
// difference allowed is the sign of zero: the source holds -0 where
// round(W/beta) was -0, and I2_S has a single zero code that decodes to +0.
TEST(QuantShared, I2SMatchesF32Source) {
    REQUIRE_SHARED(i2s_path, "models/tiny-bitnet-i2s.gguf");
    REQUIRE_SHARED(f32_path, "models/tiny-bitnet-f32.gguf");
    GgufPtr q = Open(i2s_path), f = Open(f32_path);
    ASSERT_TRUE(q && f);
    int tensors = 0;
    int64_t neg_zero = 0;
    for (int64_t i = 0; i < bn_gguf_tensor_count(q.get()); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(q.get(), i);
        if (t->type != BN_TYPE_I2_S) continue;
        const float *ref = F32Data(f.get(), t->name, t->nelem);
        ASSERT_NE(ref, nullptr);
        for (bn_simd_level lv : Levels()) {
            auto v = DequantTensor(t, lv);
            for (int64_t e = 0; e < t->nelem; e++) {
                uint32_t got = Bits(v[e]), want = Bits(ref[e]);
                if (want == 0x80000000u && got == 0) {
                    neg_zero += lv == BN_SIMD_PORTABLE;
                    continue;
                }
                ASSERT_EQ(got, want) << t->name << " element " << e;
            }
        }
        tensors++;
    }
    EXPECT_EQ(tensors, 28);  // 4 layers x 7 projections
    EXPECT_GT(neg_zero, 0);  // the source really has -0 entries (see above)
}

// TQ2_0 / TQ1_0 decode to code * f16(max|x| of the block), code = sign(x).
void CheckTernaryAgainstF32(const char *file, uint32_t type) {
    REQUIRE_SHARED(q_path, std::string("models/") + file);
    REQUIRE_SHARED(f32_path, "models/tiny-bitnet-f32.gguf");
    GgufPtr q = Open(q_path), f = Open(f32_path);
    ASSERT_TRUE(q && f);
    int tensors = 0;
    for (int64_t i = 0; i < bn_gguf_tensor_count(q.get()); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(q.get(), i);
        if (t->type != type) continue;
        const float *ref = F32Data(f.get(), t->name, t->nelem);
        ASSERT_NE(ref, nullptr);
        std::vector<float> want(static_cast<size_t>(t->nelem));
        for (int64_t b = 0; b < t->nelem; b += 256) {
            float amax = 0.0f;
            for (int j = 0; j < 256; j++) amax = std::max(amax, std::fabs(ref[b + j]));
            const float d = bn_f16_to_f32(bn_f32_to_f16(amax));
            for (int j = 0; j < 256; j++) {
                float x = ref[b + j];
                want[b + j] = static_cast<float>((x > 0) - (x < 0)) * d;
            }
        }
        for (bn_simd_level lv : Levels())
            ExpectSameBits(DequantTensor(t, lv), want, std::string(file) + " " + t->name);
        tensors++;
    }
    EXPECT_EQ(tensors, 28);
}

TEST(QuantShared, TQ2_0MatchesF32Source) {
    CheckTernaryAgainstF32("tiny-bitnet-llamacpp-tq2_0.gguf", BN_TYPE_TQ2_0);
}
TEST(QuantShared, TQ1_0MatchesF32Source) {
    CheckTernaryAgainstF32("tiny-bitnet-llamacpp-tq1_0.gguf", BN_TYPE_TQ1_0);
}

// quantize(dequantize(t)) rebuilds the stored bytes: all of them, except
// I2_S's 28 uninitialised padding bytes.
void CheckRoundTrip(const char *file, uint32_t type, const char *only = nullptr) {
    REQUIRE_SHARED(path, std::string("models/") + file);
    GgufPtr g = Open(path);
    ASSERT_TRUE(g);
    int tensors = 0;
    for (int64_t i = 0; i < bn_gguf_tensor_count(g.get()); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g.get(), i);
        if (t->type != type || (only && strcmp(t->name, only) != 0)) continue;
        auto v = DequantTensor(t, BN_SIMD_AUTO);
        auto q = Quant(type, v.data(), t->ne[0], Rows(t));
        ASSERT_EQ(q.size(), t->nbytes) << t->name;
        size_t cmp = type == BN_TYPE_I2_S ? q.size() - 28 : q.size();
        ASSERT_EQ(memcmp(q.data(), t->data, cmp), 0) << file << " " << t->name;
        tensors++;
    }
    EXPECT_EQ(tensors, only ? 1 : 28) << file;
}

TEST(QuantShared, I2SRoundTrip) { CheckRoundTrip("tiny-bitnet-i2s.gguf", BN_TYPE_I2_S); }
TEST(QuantShared, TQ2_0RoundTrip) { CheckRoundTrip("tiny-bitnet-llamacpp-tq2_0.gguf", BN_TYPE_TQ2_0); }
TEST(QuantShared, TQ1_0RoundTrip) { CheckRoundTrip("tiny-bitnet-llamacpp-tq1_0.gguf", BN_TYPE_TQ1_0); }
TEST(QuantShared, F16TokenEmbdRoundTrip) {
    CheckRoundTrip("tiny-bitnet-i2s.gguf", BN_TYPE_F16, "token_embd.weight");
}

// The two kernel levels agree on every tensor of the shared files, and on
// row sub-ranges (offsets inside the tensor, I2_S's tensor-wide scale).
TEST(QuantShared, PortableAndAvx2AgreeOnModels) {
    if (bn_simd_best() != BN_SIMD_AVX2) GTEST_SKIP() << "CPU without AVX2";
    const char *files[] = {"tiny-bitnet-i2s.gguf", "tiny-bitnet-llamacpp-tq2_0.gguf",
                           "tiny-bitnet-llamacpp-tq1_0.gguf", "tiny-bitnet-f32.gguf"};
    int tensors = 0;
    for (const char *file : files) {
        REQUIRE_SHARED(path, std::string("models/") + file);
        GgufPtr g = Open(path);
        ASSERT_TRUE(g);
        for (int64_t i = 0; i < bn_gguf_tensor_count(g.get()); i++) {
            const bn_gguf_tensor *t = bn_gguf_tensor_at(g.get(), i);
            auto a = DequantTensor(t, BN_SIMD_PORTABLE), b = DequantTensor(t, BN_SIMD_AVX2);
            ASSERT_EQ(memcmp(a.data(), b.data(), a.size() * 4), 0) << file << " " << t->name;
            int64_t rows = Rows(t), r0 = rows / 3, n = rows - r0 > 2 ? 2 : rows - r0;
            auto part = Dequant(t->type, t->data, t->ne[0], rows, r0, n, BN_SIMD_AVX2);
            ASSERT_EQ(memcmp(part.data(), a.data() + r0 * t->ne[0], part.size() * 4), 0)
                << file << " " << t->name;
            tensors++;
        }
    }
    EXPECT_GT(tensors, 150);
}

}  // namespace
