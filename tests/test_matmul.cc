// test_matmul.cc — matmul kernels: hand-computed cases per type, summation
// orders, AVX2 vs portable and thread-count invariance, and every matmul node
// of the shared bitnet.cpp / llama.cpp traces recomputed from its recorded
// input (bit for bit).
#include "test_helpers.h"

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "bitnet/gguf.h"
#include "bitnet/matmul.h"
#include "bitnet/npz.h"
#include "bitnet/quant.h"
#include "bitnet/threads.h"
}

namespace {

using bptest::Handle;

uint32_t Bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

std::vector<bn_simd> Levels() {
    std::vector<bn_simd> v{BN_SIMD_PORTABLE};
    if (bn_simd_best() == BN_SIMD_AVX2) v.push_back(BN_SIMD_AVX2);
    return v;
}

// Runs bn_matmul with its own scratch; returns y [T,n].
std::vector<float> Matmul(bn_pool *pool, const bn_weight &w, const std::vector<float> &x, int64_t T,
                          bn_sum_order order, bn_simd simd = BN_SIMD_AUTO, bool act_f16 = false,
                          std::vector<uint8_t> *scratch_out = nullptr, bool f16_gemm = false) {
    size_t sb = bn_matmul_scratch_bytes(&w, T);
    EXPECT_GT(sb, 0u);
    std::vector<uint64_t> scratch(sb / 8 + 1);
    std::vector<float> y((size_t)(T * w.n), -1.0f);
    bn_matmul_opts o{};
    o.order = order, o.act_f16 = act_f16, o.simd = simd, o.f16_gemm = f16_gemm;
    bn_error err;
    bn_status st = bn_matmul(pool, &w, x.data(), T, y.data(), &o, scratch.data(), sb, &err);
    EXPECT_OK(st, err);
    if (scratch_out) {
        scratch_out->resize(sb);
        memcpy(scratch_out->data(), scratch.data(), sb);
    }
    return y;
}

// --- I2_S packing for hand-built weights (docs/specs/i2s.md) -------------------
std::vector<uint8_t> PackI2S(const std::vector<int> &w, float scale) {
    std::vector<uint8_t> out(w.size() / 4 + 32, 0);
    for (size_t e = 0; e < w.size(); e++) {
        size_t blk = e / 128, j = e % 128;
        out[blk * 32 + j % 32] |= (uint8_t)((w[e] + 1) << (6 - 2 * (j / 32)));
    }
    memcpy(&out[w.size() / 4], &scale, 4);
    return out;
}

TEST(MatmulI2S, HandComputedTwoRowsThreeTokens) {
    const int K = 128;
    std::vector<int> w(2 * K);
    for (int i = 0; i < K; i++) {
        w[i] = i == 5 ? -1 : i == 100 ? 0 : 1;  // row 0
        w[K + i] = i % 2 == 0 ? 1 : 0;          // row 1
    }
    std::vector<uint8_t> data = PackI2S(w, 0.5f);
    bn_weight W = {BN_TYPE_I2_S, data.data(), K, 2, BN_LAYOUT_ROWS};
    std::vector<float> x(3 * K, 0.0f);
    // token 0: amax 1.27 -> s = (float)(127/1.27) = 100; q = 127, 25, 25, ...
    x[0] = 1.27f;
    for (int i = 1; i < K; i++) x[i] = 0.25f;
    // token 1: amax 2 -> s = 63.5; -0.5*63.5 = -31.75 -> -32; x[3] -> 127
    for (int i = 0; i < K; i++) x[K + i] = -0.5f;
    x[K + 3] = 2.0f;
    // token 2: s = 100; 12.5 -> 12 and 37.5 -> 38 (round half to even)
    x[2 * K + 0] = 1.27f;
    x[2 * K + 1] = 0.125f;
    x[2 * K + 2] = 0.375f;
    for (bn_simd simd : Levels())
        for (bn_sum_order order : {BN_SUM_PLAIN, BN_SUM_GGML}) {
            std::vector<uint8_t> scratch;
            std::vector<float> y = Matmul(nullptr, W, x, 3, order, simd, false, &scratch);
            // row 0, token 0: 127 + 25*(125 - 1) = 3227; row 1: 127 + 25*63 = 1702
            EXPECT_EQ(Bits(y[0]), Bits(3227.0f / 100.0f * 0.5f));
            EXPECT_EQ(Bits(y[1]), Bits(1702.0f / 100.0f * 0.5f));
            // token 1: row 0: 127 - 32*124 = -3841; row 1: -32*64 = -2048
            EXPECT_EQ(Bits(y[2]), Bits(-3841.0f / 63.5f * 0.5f));
            EXPECT_EQ(Bits(y[3]), Bits(-2048.0f / 63.5f * 0.5f));
            // token 2: row 0: 127 + 12 + 38 = 177; row 1: 127 + 38 = 165
            EXPECT_EQ(Bits(y[4]), Bits(177.0f / 100.0f * 0.5f));
            EXPECT_EQ(Bits(y[5]), Bits(165.0f / 100.0f * 0.5f));
            int64_t T = 0, Kq = 0;
            const int8_t *q = bn_matmul_scratch_q8(scratch.data(), &T, &Kq);
            const float *s = bn_matmul_scratch_act_scales(scratch.data());
            ASSERT_NE(q, nullptr);
            ASSERT_NE(s, nullptr);
            EXPECT_EQ(T, 3);
            EXPECT_EQ(Kq, K);
            EXPECT_EQ(q[0], 127);
            EXPECT_EQ(q[1], 25);
            EXPECT_EQ(q[K + 0], -32);
            EXPECT_EQ(q[K + 3], 127);
            EXPECT_EQ(q[2 * K + 1], 12);
            EXPECT_EQ(q[2 * K + 2], 38);
            EXPECT_EQ(s[0], 100.0f);
            EXPECT_EQ(s[1], 63.5f);
        }
}

// The rounding of x·s to int8 is a named option: half to even as ggml
// (default), or half away from zero. s = 100, so x = ±k/8 lands on ties.
TEST(MatmulI2S, ActivationRoundingHalfEvenOrHalfAway) {
    const int K = 128;
    std::vector<uint8_t> data = PackI2S(std::vector<int>(K, 1), 1.0f);
    bn_weight W = {BN_TYPE_I2_S, data.data(), K, 1, BN_LAYOUT_ROWS};
    std::vector<float> x(K, 0.0f);
    x[0] = 1.27f;     // 127
    x[1] = 0.125f;    // 12.5
    x[2] = 0.375f;    // 37.5
    x[3] = 0.625f;    // 62.5
    x[4] = -0.125f;   // -12.5
    struct Case {
        bn_act_round round;
        int q[4];
    } cases[] = {{BN_ROUND_HALF_EVEN, {12, 38, 62, -12}}, {BN_ROUND_HALF_AWAY, {13, 38, 63, -13}}};
    const size_t sb = bn_matmul_scratch_bytes(&W, 1);
    std::vector<uint64_t> scratch(sb / 8 + 1);
    bn_error err{};
    for (const Case &c : cases)
        for (bn_simd simd : Levels()) {
            bn_matmul_opts o{};
            o.simd = simd;
            o.act_round = c.round;
            float y = 0;
            ASSERT_OK(bn_matmul(nullptr, &W, x.data(), 1, &y, &o, scratch.data(), sb, &err), err);
            const int8_t *q = bn_matmul_scratch_q8(scratch.data(), nullptr, nullptr);
            ASSERT_NE(q, nullptr);
            EXPECT_EQ(q[0], 127);
            int sum = 127;
            for (int i = 0; i < 4; i++) EXPECT_EQ(q[1 + i], c.q[i]) << "element " << 1 + i << " round " << c.round;
            for (int i = 0; i < 4; i++) sum += c.q[i];
            EXPECT_EQ(Bits(y), Bits((float)sum / 100.0f * 1.0f)) << "round " << c.round;
        }
    bn_matmul_opts bad{};
    bad.act_round = (bn_act_round)2;
    float y;
    EXPECT_EQ(bn_matmul(nullptr, &W, x.data(), 1, &y, &bad, scratch.data(), sb, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("rounding"), std::string::npos) << err.msg;
}

TEST(MatmulI2S, UnusedCode3DecodesAsZero) {
    std::vector<uint8_t> data(128 / 4 + 32, 0x55);  // every code 1 (weight 0)
    data[0] = 0xFF;                                 // elements 0, 32, 64, 96: code 3
    data[1] = 0x95;                                 // element 1: code 2 (+1)
    float scale = 2.0f;
    memcpy(&data[32], &scale, 4);
    bn_weight W = {BN_TYPE_I2_S, data.data(), 128, 1, BN_LAYOUT_ROWS};
    std::vector<float> x(128, 1.0f);
    x[0] = 1.27f;
    for (bn_simd simd : Levels()) {
        std::vector<float> y = Matmul(nullptr, W, x, 1, BN_SUM_PLAIN, simd);
        // s = 100: only element 1 counts: q = 100
        EXPECT_EQ(Bits(y[0]), Bits(100.0f / 100.0f * 2.0f)) << bn_simd_name(simd);
    }
}

// --- TQ2_0 / TQ1_0 / Q8_0 single blocks -------------------------------------
std::vector<float> TernaryActs() {
    std::vector<float> x(256, 0.5f);  // Q8_K: max = -2 -> iscale 63.5, 0.5 -> 31.75 -> 32
    x[7] = -2.0f;
    return x;
}

TEST(MatmulTernary, TQ2AndTQ1AllPlusOne) {
    // TQ2_0: 64 bytes of code 2 in every field, then f16 d = 0.5
    std::vector<uint8_t> tq2(66, 0xAA);
    tq2[64] = 0x00, tq2[65] = 0x38;
    // TQ1_0: five trits of 2 -> q = 242 -> byte ceil(242*256/243) = 255; four
    // trits of 2 (qh) -> q = 240 -> 253
    std::vector<uint8_t> tq1(54, 255);
    for (int j = 48; j < 52; j++) tq1[j] = 253;
    tq1[52] = 0x00, tq1[53] = 0x38;
    std::vector<float> x = TernaryActs();
    // Σ q = -127 + 255*32 = 8033; d_act = 1/63.5 (stored as 1/iscale)
    const float d = (1.0f / 63.5f) * 0.5f;
    for (auto *blk : {&tq2, &tq1}) {
        bn_weight W = {blk == &tq2 ? (uint32_t)BN_TYPE_TQ2_0 : (uint32_t)BN_TYPE_TQ1_0, blk->data(), 256, 1, BN_LAYOUT_ROWS};
        for (bn_simd simd : Levels()) {
            std::vector<float> y = Matmul(nullptr, W, x, 1, BN_SUM_PLAIN, simd);
            EXPECT_EQ(Bits(y[0]), Bits(8033.0f * d)) << bn_type_name(W.type) << " " << bn_simd_name(simd);
            // GGML: lane k holds positions 4k..4k+3 of each 32: 8 lanes of
            // 32 elements; lane 1 has x[7] -> -127 + 31*32 = 865, others 1024
            float l = 1024.0f * d, l1 = 865.0f * d;
            float v[8] = {l, l1, l, l, l, l, l, l};
            float t[4];
            for (int i = 0; i < 4; i++) t[i] = v[i] + v[i + 4];
            float expect = (t[0] + t[2]) + (t[1] + t[3]);
            y = Matmul(nullptr, W, x, 1, BN_SUM_GGML, simd);
            EXPECT_EQ(Bits(y[0]), Bits(expect)) << bn_type_name(W.type) << " " << bn_simd_name(simd);
        }
    }
}

TEST(MatmulQ8_0, OneBlockHandComputed) {
    std::vector<uint8_t> blk(34);
    blk[0] = 0x00, blk[1] = 0x3C;  // d = 1
    int sumw = 0;
    for (int i = 0; i < 32; i++) {
        blk[2 + i] = (uint8_t)(int8_t)(i - 16);
        sumw += i - 16;
    }
    bn_weight W = {BN_TYPE_Q8_0, blk.data(), 32, 1, BN_LAYOUT_ROWS};
    std::vector<float> x(32, 1.27f);  // amax 1.27: id = 127/1.27 = 100 -> q = 127
    const float dact = bn_f16_to_f32(bn_f32_to_f16(1.27f / 127.f));
    for (bn_simd simd : Levels()) {
        std::vector<float> y = Matmul(nullptr, W, x, 1, BN_SUM_PLAIN, simd);
        EXPECT_EQ(Bits(y[0]), Bits((float)(sumw * 127) * (1.0f * dact)));
    }
}

// --- dense orders -------------------------------------------------------------
TEST(MatmulDense, SummationOrdersDiffer) {
    // a[0] = 2^24 and a[1] = -2^24 cancel; the three 1s at 16, 32, 48 survive
    // or vanish depending on the order (see matmul.c):
    //   PLAIN (sequential): 3; tinyBLAS16 (prompt): lane 0 absorbs each 1 into
    //   2^24 -> 0; vec_dot 4x16 (decode): 1s meet in s1+s3 = 2 before 2^24 -> 2.
    const int K = 64;
    std::vector<float> w(K, 0.0f);
    w[0] = 16777216.0f, w[1] = -16777216.0f, w[16] = w[32] = w[48] = 1.0f;
    bn_weight W = {BN_TYPE_F32, w.data(), K, 1, BN_LAYOUT_ROWS};
    std::vector<float> x(2 * K, 1.0f);
    for (bn_simd simd : Levels()) {
        EXPECT_EQ(Matmul(nullptr, W, x, 2, BN_SUM_PLAIN, simd)[0], 3.0f);
        EXPECT_EQ(Matmul(nullptr, W, x, 2, BN_SUM_GGML, simd)[0], 0.0f);
        EXPECT_EQ(Matmul(nullptr, W, x, 1, BN_SUM_GGML, simd)[0], 2.0f);
        EXPECT_EQ(bn_dot_f32(w.data(), x.data(), K, BN_SUM_GGML, simd), 2.0f);
        EXPECT_EQ(bn_dot_f32(w.data(), x.data(), K, BN_SUM_PLAIN, simd), 3.0f);
    }
}

TEST(MatmulDense, F16WeightsAndActivationRounding) {
    const int K = 32;
    std::vector<uint16_t> w(2 * K);
    for (int i = 0; i < 2 * K; i++) w[i] = bn_f32_to_f16((float)(i % 5) - 2.0f);
    bn_weight W = {BN_TYPE_F16, w.data(), K, 2, BN_LAYOUT_ROWS};
    std::vector<float> x(K);
    for (int i = 0; i < K; i++) x[i] = 1.0f + 1.0f / 4096.0f;  // rounds to 1.0 in f16
    for (bn_simd simd : Levels()) {
        // row 0 = (-2,-1,0,1,2) repeated: Σ over 32 = -2-1+0+1+2 (x6) + (-2-1) = -3
        std::vector<float> y = Matmul(nullptr, W, x, 1, BN_SUM_PLAIN, simd, true);
        EXPECT_EQ(y[0], -3.0f);
        y = Matmul(nullptr, W, x, 1, BN_SUM_GGML, simd);  // decode: rounds x to f16
        EXPECT_EQ(y[0], -3.0f);
        y = Matmul(nullptr, W, x, 1, BN_SUM_PLAIN, simd);  // exact x: -3 * (1 + 2^-12)
        EXPECT_EQ(y[0], -3.0f * (1.0f + 1.0f / 4096.0f));
    }
}

// BF16 weights are widened exactly: a hand-computed row, on every SIMD level
// and summation order, and the tail that 8 or 16 lanes do not cover.
TEST(MatmulDense, BF16WeightsHandComputed) {
    const int K = 37;  // not a multiple of 8 or 16
    std::vector<uint16_t> w(2 * K);
    for (int i = 0; i < K; i++) {
        w[i] = bn_f32_to_bf16((float)(i % 3) - 1.0f);                        // -1, 0, 1, ...
        w[K + i] = bn_f32_to_bf16(i == 5 ? 1.0f + 1.0f / 128.0f : 0.0f);     // bf16 keeps 7 mantissa bits
    }
    EXPECT_EQ(bn_bf16_to_f32(w[K + 5]), 1.0f + 1.0f / 128.0f);
    bn_weight W = {BN_TYPE_BF16, w.data(), K, 2, BN_LAYOUT_ROWS};
    std::vector<float> x(K);
    for (int i = 0; i < K; i++) x[i] = (float)(i + 1);
    // row 0: Σ ((i mod 3) − 1)·(i + 1), small integers all along (exact in any order)
    double want0 = 0;
    for (int i = 0; i < K; i++) want0 += ((i % 3) - 1.0) * (i + 1.0);
    for (bn_simd simd : Levels())
        for (bn_sum_order order : {BN_SUM_PLAIN, BN_SUM_GGML, BN_SUM_GGML_AVX2, BN_SUM_GGML_NOFMA}) {
            std::vector<float> y = Matmul(nullptr, W, x, 1, order, simd);
            EXPECT_EQ(y[0], (float)want0) << bn_simd_name(simd) << " order " << order;  // small integers: exact
            EXPECT_EQ(y[1], 6.0f * (1.0f + 1.0f / 128.0f)) << bn_simd_name(simd) << " order " << order;
        }
}

TEST(MatmulErrors, RejectsBadShapesTypesAndScratch) {
    std::vector<uint8_t> data(64 / 4 + 32, 0);
    bn_weight W = {BN_TYPE_I2_S, data.data(), 64, 1, BN_LAYOUT_ROWS};  // K not a multiple of 128
    EXPECT_EQ(bn_matmul_scratch_bytes(&W, 1), 0u);
    std::vector<float> x(128), y(2);
    std::vector<uint64_t> scratch(1024);
    bn_error err;
    EXPECT_EQ(bn_matmul(nullptr, &W, x.data(), 1, y.data(), nullptr, scratch.data(), 8192, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("multiple of 128"), std::string::npos) << err.msg;
    W = {BN_TYPE_TL2, data.data(), 128, 1, BN_LAYOUT_ROWS};
    EXPECT_EQ(bn_matmul(nullptr, &W, x.data(), 1, y.data(), nullptr, scratch.data(), 8192, &err),
              BN_ERR_UNSUPPORTED);
    W = {BN_TYPE_I2_S, data.data(), 128, 1, BN_LAYOUT_ROWS};
    size_t need = bn_matmul_scratch_bytes(&W, 1);
    EXPECT_EQ(bn_matmul(nullptr, &W, x.data(), 1, y.data(), nullptr, scratch.data(), need - 1, &err),
              BN_ERR_INVALID);
    EXPECT_EQ(bn_matmul(nullptr, &W, x.data(), 0, y.data(), nullptr, scratch.data(), need, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_matmul_scratch_q8(scratch.data(), nullptr, nullptr), nullptr);  // never used
}

// --- AVX2 vs portable, thread counts: random tensors of every type -----------
struct RandomWeight {
    uint32_t type;
    int64_t k, n;
    std::vector<uint8_t> bytes;
};

RandomWeight MakeRandom(uint32_t type, int64_t k, int64_t n, std::mt19937 &rng) {
    RandomWeight r{type, k, n, {}};
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> scale(0.001f, 0.1f);
    auto f16 = [&](uint8_t *p) {
        uint16_t h = bn_f32_to_f16(scale(rng));
        memcpy(p, &h, 2);
    };
    switch (type) {
    case BN_TYPE_I2_S: {
        r.bytes.resize((size_t)(k * n / 4 + 32));
        for (auto &b : r.bytes) b = (uint8_t)byte(rng);  // includes code 3
        float s = 0.7f;
        memcpy(&r.bytes[(size_t)(k * n / 4)], &s, 4);
        break;
    }
    case BN_TYPE_TQ2_0:
    case BN_TYPE_TQ1_0:
    case BN_TYPE_Q8_0: {
        size_t bb = type == BN_TYPE_TQ2_0 ? 66 : type == BN_TYPE_TQ1_0 ? 54 : 34;
        size_t be = type == BN_TYPE_Q8_0 ? 32 : 256;
        size_t nblk = (size_t)(k * n) / be;
        r.bytes.resize(nblk * bb);
        for (auto &b : r.bytes) b = (uint8_t)byte(rng);
        for (size_t i = 0; i < nblk; i++) f16(&r.bytes[i * bb + (type == BN_TYPE_Q8_0 ? 0 : bb - 2)]);
        break;
    }
    case BN_TYPE_F16:
        r.bytes.resize((size_t)(k * n * 2));
        for (int64_t i = 0; i < k * n; i++) f16(&r.bytes[(size_t)i * 2]);
        break;
    case BN_TYPE_BF16: {
        r.bytes.resize((size_t)(k * n * 2));
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (int64_t i = 0; i < k * n; i++) {
            uint16_t h = bn_f32_to_bf16(nd(rng));
            memcpy(&r.bytes[(size_t)i * 2], &h, 2);
        }
        break;
    }
    default: {
        r.bytes.resize((size_t)(k * n * 4));
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (int64_t i = 0; i < k * n; i++) {
            float v = nd(rng);
            memcpy(&r.bytes[(size_t)i * 4], &v, 4);
        }
    }
    }
    return r;
}

// One pool per thread count (a pool that cannot be had fails the test).
std::vector<PoolPtr> PoolsOf(std::initializer_list<int> thread_counts) {
    std::vector<PoolPtr> pools;
    for (int t : thread_counts) {
        bn_pool *p = nullptr;
        bn_error err;
        EXPECT_OK(bn_pool_create(t, &p, &err), err);
        pools.emplace_back(p);
    }
    return pools;
}

TEST(MatmulDeterminism, SimdLevelsAndThreadCountsAgreeForEveryType) {
    std::mt19937 rng(1234);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t K = 768, N = 75;  // N not a multiple of the row tile
    const std::vector<PoolPtr> pools = PoolsOf({1, 2, 3, 7});
    for (uint32_t type :
         {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0, BN_TYPE_Q8_0, BN_TYPE_F16, BN_TYPE_BF16, BN_TYPE_F32}) {
        RandomWeight rw = MakeRandom(type, K, N, rng);
        bn_weight W = {type, rw.bytes.data(), K, N, BN_LAYOUT_ROWS};
        for (int64_t T : {1, 5}) {
            std::vector<float> x((size_t)(T * K));
            for (auto &v : x) v = nd(rng);
            for (bn_sum_order order : {BN_SUM_PLAIN, BN_SUM_GGML, BN_SUM_GGML_AVX2, BN_SUM_GGML_NOFMA})
                for (bool f16_gemm : {false, true}) {  // llama.cpp-compat's f16 x f16 tinyBLAS
                std::vector<float> ref = Matmul(pools[0].get(), W, x, T, order, BN_SIMD_PORTABLE, false, nullptr, f16_gemm);
                for (bn_simd simd : Levels())
                    for (auto &p : pools) {
                        std::vector<float> y = Matmul(p.get(), W, x, T, order, simd, false, nullptr, f16_gemm);
                        EXPECT_EQ(memcmp(y.data(), ref.data(), y.size() * 4), 0)
                            << bn_type_name(type) << " T=" << T << " order=" << order << " f16_gemm=" << f16_gemm
                            << " simd=" << bn_simd_name(simd) << " threads=" << bn_pool_size(p.get());
                    }
                // Sanity: every type is close to the float product of its
                // dequantized weights (quantization error only).
                if (order == BN_SUM_PLAIN) {
                    std::vector<float> wf((size_t)(K * N));
                    bn_error err;
                    ASSERT_OK(bn_dequantize_rows(type, rw.bytes.data(), K, N, 0, N, wf.data(), &err), err);
                    double num = 0, den = 0;
                    for (int64_t t = 0; t < T; t++)
                        for (int64_t j = 0; j < N; j++) {
                            double s = 0;
                            for (int64_t i = 0; i < K; i++) s += (double)wf[j * K + i] * x[t * K + i];
                            num += (s - ref[t * N + j]) * (s - ref[t * N + j]);
                            den += s * s;
                        }
                    EXPECT_LT(num / den, 1e-3) << bn_type_name(type);
                }
            }
        }
    }
}

// A pool of two threads (the CI machine's core count), or null on failure.
PoolPtr TwoThreadPool() {
    bn_pool *raw = nullptr;
    bn_error err;
    EXPECT_OK(bn_pool_create(2, &raw, &err), err);
    return PoolPtr(raw);
}

// The F16 lm_head of a decode step (ggml_vec_dot_f16: 4 x 16 lanes over
// steps of 64, the tail in double) on every kernel the CPU has, with K
// below, at and past multiples of 64: the tail and the register-held
// accumulators (and, on AVX-512 VNNI CPUs, the zmm kernel) must give the
// portable kernel's bits.
TEST(MatmulF16, DecodeRowsEqualPortableForEveryTail) {
    std::mt19937 rng(91);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    PoolPtr pool = TwoThreadPool();
    ASSERT_TRUE(pool);
    for (int64_t K : {16, 40, 64, 100, 1000, 2560, 2600}) {
        const int64_t N = 37;
        std::vector<uint16_t> w((size_t)(K * N));
        for (auto &h : w) h = bn_f32_to_f16(nd(rng));
        std::vector<float> x((size_t)K);
        for (auto &v : x) v = nd(rng) * 4.0f;
        bn_weight W = {BN_TYPE_F16, w.data(), K, N, BN_LAYOUT_ROWS};
        std::vector<float> ref = Matmul(pool.get(), W, x, 1, BN_SUM_GGML, BN_SIMD_PORTABLE);
        for (bn_simd simd : Levels()) {
            std::vector<float> y = Matmul(pool.get(), W, x, 1, BN_SUM_GGML, simd);
            EXPECT_EQ(memcmp(y.data(), ref.data(), y.size() * 4), 0) << "K=" << K << " simd=" << bn_simd_name(simd);
        }
        double s = 0;  // row 0 by hand: f16 products summed in double (the tail's rule) is within float rounding
        for (int64_t i = 0; i < K; i++)
            s += (double)bn_f16_to_f32(w[(size_t)i]) * bn_f16_to_f32(bn_f32_to_f16(x[(size_t)i]));
        EXPECT_NEAR(ref[0], s, 1e-4 * (1 + std::fabs(s))) << "K=" << K;
    }
}

// The Q8_0 rows kernel (8 rows of a token side by side, AVX2 level, the fma
// orders) against the portable kernel for every row count 1..17, K of 1, 3
// and 80 blocks (a 2B-4T lm_head row), 1 and 3 tokens: weights with every
// int8 value (-128, whose sign trick wraps as ggml's does, included), an
// all-zero row and a row of d = 0, activations at both ends of their range.
// Row 0 of one case is also summed by hand in ggml's order.
TEST(MatmulQ8_0, RowsKernelEqualsPortableForEveryRowCount) {
    std::mt19937 rng(808);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_int_distribution<int> byte(0, 255);
    PoolPtr pool = TwoThreadPool();
    ASSERT_TRUE(pool);
    for (int64_t K : {32, 96, 2560})
        for (int64_t N = 1; N <= 17; N++)
            for (int64_t T : {1, 3}) {
                const int64_t nb = K / 32;
                std::vector<uint8_t> w((size_t)(N * nb * 34));
                for (auto &b : w) b = (uint8_t)byte(rng);
                for (int64_t blk = 0; blk < N * nb; blk++) {
                    uint16_t d = bn_f32_to_f16(std::ldexp(1.0f + 0.5f * nd(rng), -7));
                    memcpy(&w[(size_t)blk * 34], &d, 2);
                }
                if (N > 2) {
                    memset(&w[(size_t)(1 * nb * 34)], 0, (size_t)(nb * 34));  // row 1: all zero
                    for (int64_t b = 0; b < nb; b++) memset(&w[(size_t)((2 * nb + b) * 34)], 0, 2);  // row 2: d = 0
                }
                std::vector<float> x((size_t)(T * K));
                for (auto &v : x) v = nd(rng);
                x[0] = 1e4f, x[(size_t)(K - 1)] = -1e4f;  // saturating blocks: q = +-127
                bn_weight W = {BN_TYPE_Q8_0, w.data(), K, N, BN_LAYOUT_ROWS};
                std::vector<float> ref = Matmul(pool.get(), W, x, T, BN_SUM_GGML, BN_SIMD_PORTABLE);
                for (bn_simd simd : Levels()) {
                    std::vector<float> y = Matmul(pool.get(), W, x, T, BN_SUM_GGML, simd);
                    EXPECT_EQ(memcmp(y.data(), ref.data(), y.size() * 4), 0)
                        << "K=" << K << " N=" << N << " T=" << T << " simd=" << bn_simd_name(simd);
                }
                if (N > 2) {
                    EXPECT_EQ(Bits(ref[1]), Bits(0.0f)) << "K=" << K;
                    EXPECT_EQ(Bits(ref[2]), Bits(0.0f)) << "K=" << K;
                }
                if (K == 96 && N == 1 && T == 1) {
                    // by hand: x quantized per block as ggml (d = f16(amax/127), q = round(x·127/amax)),
                    // lane k = Σ bytes 4k..4k+3 (one maddubs pair saturates only at -128·-128 twice),
                    // acc[k] = fma(d_w·d_x, lane, acc[k]) over the blocks, then the halving tree
                    float acc[8] = {0};
                    for (int64_t b = 0; b < nb; b++) {
                        float amax = 0;
                        for (int i = 0; i < 32; i++) amax = std::fmax(amax, std::fabs(x[(size_t)(b * 32 + i)]));
                        const float dx = bn_f16_to_f32(bn_f32_to_f16(amax / 127.f)), id = amax ? 127.f / amax : 0;
                        uint16_t dwh;
                        memcpy(&dwh, &w[(size_t)(b * 34)], 2);
                        const float d = bn_f16_to_f32(dwh) * dx;
                        for (int k = 0; k < 8; k++) {
                            int32_t lane = 0;
                            for (int p = 4 * k; p < 4 * k + 4; p += 2) {
                                int32_t pair = 0;
                                for (int e = p; e < p + 2; e++) {
                                    const int8_t wq = (int8_t)w[(size_t)(b * 34 + 2 + e)];
                                    int8_t xq = (int8_t)std::nearbyint(x[(size_t)(b * 32 + e)] * id);
                                    int8_t sx = wq < 0 ? (int8_t)-xq : wq ? xq : 0;  // _mm256_sign_epi8 wraps
                                    pair += (uint8_t)(wq < 0 ? -wq : wq) * sx;
                                }
                                lane += pair > 32767 ? 32767 : pair < -32768 ? -32768 : pair;
                            }
                            acc[k] = std::fma(d, (float)lane, acc[k]);
                        }
                    }
                    for (int h = 4; h >= 1; h /= 2)
                        for (int l = 0; l < h; l++) acc[l] += acc[l + h];
                    EXPECT_EQ(Bits(ref[0]), Bits(acc[0]));
                }
            }
}

// bn_matmul_n (Q, K, V or gate and up: one quantization, one pass over the
// pool) against one bn_matmul per weight, for 1 to 4 weights of different
// row counts (tile remainders included), batch 1 and 5, every SIMD level.
TEST(MatmulN, EqualsOneMatmulPerWeight) {
    std::mt19937 rng(77);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    PoolPtr pool = TwoThreadPool();
    ASSERT_TRUE(pool);
    bn_error err;
    const int64_t K = 512, rows[4] = {37, 64, 9, 130};
    for (uint32_t type : {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_Q8_0, BN_TYPE_F16, BN_TYPE_F32}) {
        std::vector<RandomWeight> rw;
        bn_weight W[4];
        for (int i = 0; i < 4; i++) {
            rw.push_back(MakeRandom(type, K, rows[i], rng));
            W[i] = {type, rw.back().bytes.data(), K, rows[i], BN_LAYOUT_ROWS};
        }
        for (int64_t T : {1, 5}) {
            std::vector<float> x((size_t)(T * K));
            for (auto &v : x) v = nd(rng);
            for (bn_simd simd : Levels())
                for (int n = 1; n <= 4; n++) {
                    size_t sb = bn_matmul_scratch_bytes(&W[0], T);
                    std::vector<uint64_t> scratch(sb / 8 + 1);
                    std::vector<std::vector<float>> y(4);
                    float *out[4];
                    for (int i = 0; i < n; i++) y[i].assign((size_t)(T * rows[i]), -1.0f), out[i] = y[i].data();
                    bn_matmul_opts o{};
                    o.order = BN_SUM_GGML, o.simd = simd;
                    ASSERT_OK(bn_matmul_n(pool.get(), n, W, x.data(), T, out, &o, scratch.data(), sb, &err), err);
                    for (int i = 0; i < n; i++) {
                        std::vector<float> want = Matmul(pool.get(), W[i], x, T, BN_SUM_GGML, simd);
                        EXPECT_EQ(memcmp(y[i].data(), want.data(), want.size() * 4), 0)
                            << bn_type_name(type) << " T=" << T << " n=" << n << " weight " << i << " "
                            << bn_simd_name(simd);
                    }
                }
        }
    }
    // one type and one k per call; 1..BN_MATMUL_MAX_WEIGHTS weights
    std::vector<float> x(K, 1.0f), y0(64), y1(64);
    float *out[2] = {y0.data(), y1.data()};
    RandomWeight a = MakeRandom(BN_TYPE_I2_S, K, 64, rng), b = MakeRandom(BN_TYPE_TQ2_0, K, 64, rng);
    bn_weight mixed[2] = {{BN_TYPE_I2_S, a.bytes.data(), K, 64, BN_LAYOUT_ROWS}, {BN_TYPE_TQ2_0, b.bytes.data(), K, 64, BN_LAYOUT_ROWS}};
    std::vector<uint64_t> scratch(bn_matmul_scratch_bytes(&mixed[1], 1) / 8 + 1);
    EXPECT_EQ(bn_matmul_n(pool.get(), 2, mixed, x.data(), 1, out, nullptr, scratch.data(), scratch.size() * 8, &err),
              BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("weight 1 is TQ2_0"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_matmul_n(pool.get(), 0, mixed, x.data(), 1, out, nullptr, scratch.data(), scratch.size() * 8, &err),
              BN_ERR_INVALID);
    EXPECT_EQ(bn_matmul_n(pool.get(), BN_MATMUL_MAX_WEIGHTS + 1, mixed, x.data(), 1, out, nullptr, scratch.data(),
                          scratch.size() * 8, &err),
              BN_ERR_INVALID);
}

// One token's rows side by side, every row count remainder, the portable
// bits: the last prompt position's logits in the batch's tinyBLAS order
// (graph_T = the whole prompt: 4 rows on AVX2, 8 F16 rows on AVX-512 VNNI
// CPUs) and a decoded token's (graph_T = 1, ggml_vec_dot order: 4 F16 rows
// on AVX-512 VNNI CPUs, with K's tails of 16 and 64 elements too).
TEST(MatmulDense, OneTokenOfABatchEqualsPortableForEveryRowCount) {
    std::mt19937 rng(19);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t graph_T : {8, 1})
    for (uint32_t type : {BN_TYPE_F16, BN_TYPE_F32, BN_TYPE_BF16})
        for (int64_t K : {16, 64, 80, 2560})
            for (int64_t N : {1, 3, 4, 7, 8, 9, 15, 17, 130}) {
                RandomWeight rw = MakeRandom(type, K, N, rng);
                bn_weight W = {type, rw.bytes.data(), K, N, BN_LAYOUT_ROWS};
                std::vector<float> x((size_t)K);
                for (auto &v : x) v = nd(rng);
                std::vector<float> ref;
                for (bn_simd simd : Levels())
                    for (bn_i8dot i8 : {BN_I8DOT_AUTO, BN_I8DOT_MADDUBS}) {
                        size_t sb = bn_matmul_scratch_bytes(&W, 1);
                        std::vector<uint64_t> scratch(sb / 8 + 1);
                        std::vector<float> y((size_t)N, -1.0f);
                        bn_matmul_opts o{};
                        o.order = BN_SUM_GGML, o.simd = simd, o.graph_T = graph_T, o.i8dot = i8;
                        bn_error err;
                        ASSERT_OK(bn_matmul(nullptr, &W, x.data(), 1, y.data(), &o, scratch.data(), sb, &err), err);
                        if (ref.empty() && graph_T == 1) ref = y;
                        if (ref.empty()) {
                            ref = y;
                            // row 0 by hand: one 16-lane fma chain, then the halving tree
                            std::vector<float> wf((size_t)K);
                            ASSERT_OK(bn_dequantize_rows(type, rw.bytes.data(), K, N, 0, 1, wf.data(), &err), err);
                            float lane[16] = {0};
                            for (int64_t i = 0; i < K; i++) lane[i % 16] = std::fma(wf[i], x[i], lane[i % 16]);
                            for (int w = 8; w >= 1; w /= 2)
                                for (int l = 0; l < w; l++) lane[l] += lane[l + w];
                            EXPECT_EQ(Bits(ref[0]), Bits(lane[0])) << bn_type_name(type) << " K=" << K;
                        }
                        EXPECT_EQ(memcmp(y.data(), ref.data(), y.size() * 4), 0)
                            << bn_type_name(type) << " K=" << K << " N=" << N << " " << bn_simd_name(simd)
                            << " i8dot=" << bn_i8dot_name(i8) << " graph_T=" << graph_T;
                    }
            }
}

// In the style of bitnet.cpp's scalar-vs-AVX2 check: every I2_S integer
// kernel this CPU has (portable, AVX2 maddubs, AVX-512 VNNI, AVX-VNNI),
// forced in turn, gives the portable kernel's bits — on thousands of random
// blocks and rows, all-zero rows and rows of one sign, activations at the
// int8 extremes, batch 1 and batches around the 4-token tile, several K
// (1, 8, 9 and 20 blocks: across the maddubs kernel's 8-block widening) and
// thread counts. The integer dot products are exact, so any difference is a
// kernel bug, not rounding.
TEST(MatmulI2S, EveryInt8KernelEqualsPortableBitForBit) {
    std::mt19937 rng(77);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_int_distribution<int> code(-1, 1);
    std::vector<std::pair<bn_simd, bn_i8dot>> paths;
    if (bn_simd_best() == BN_SIMD_AVX2)
        for (bn_i8dot k : {BN_I8DOT_MADDUBS, BN_I8DOT_AVX512_VNNI, BN_I8DOT_AVX_VNNI})
            if (bn_i8dot_supported(k)) paths.push_back({BN_SIMD_AVX2, k});
    if (paths.empty()) GTEST_SKIP() << "no SIMD int8 kernel on this CPU (portable only)";
    const std::vector<PoolPtr> pools = PoolsOf({1, 2, 3});
    int64_t blocks_checked = 0;
    // N: the 8-row tile of the AVX2 kernels and the 4-row tile of the
    // AVX-512 ones end with 1, 2 and 3 rows; T: their 4-token tile with 1-3
    for (int64_t K : {128, 1024, 1152, 2560})
    for (int64_t N : {65, 66, 67}) {
        std::vector<int> w((size_t)(K * N));
        for (int64_t r = 0; r < N; r++)
            for (int64_t i = 0; i < K; i++)
                w[(size_t)(r * K + i)] = r == 3 ? 0 : r == 4 ? 1 : r == 5 ? -1 : code(rng);  // zero / +1 / -1 rows
        std::vector<uint8_t> bytes = PackI2S(w, 0.75f);
        bn_weight W = {BN_TYPE_I2_S, bytes.data(), K, N, BN_LAYOUT_ROWS};
        for (int64_t T : {1, 2, 3, 4, 5, 6, 8, 11}) {
            std::vector<float> x((size_t)(T * K));
            for (auto &v : x) v = nd(rng);
            for (int64_t i = 0; i < K; i += 7) x[(size_t)i] = 40.0f;          // token 0 saturates to +127 there
            if (T > 1)
                for (int64_t i = 0; i < K; i++) x[(size_t)(K + i)] = -1.0f;  // token 1: all -127
            std::vector<float> ref = Matmul(pools[0].get(), W, x, T, BN_SUM_GGML, BN_SIMD_PORTABLE);
            EXPECT_EQ(Bits(ref[3]), Bits(0.0f));  // the all-zero row (token 0)
            for (auto [simd, k] : paths)
                for (auto &p : pools) {
                    size_t sb = bn_matmul_scratch_bytes(&W, T);
                    std::vector<uint64_t> scratch(sb / 8 + 1);
                    std::vector<float> y((size_t)(T * N), -1.0f);
                    bn_matmul_opts o{};
                    o.order = BN_SUM_GGML, o.simd = simd, o.i8dot = k;
                    bn_error err;
                    ASSERT_OK(bn_matmul(p.get(), &W, x.data(), T, y.data(), &o, scratch.data(), sb, &err), err);
                    EXPECT_EQ(memcmp(y.data(), ref.data(), y.size() * 4), 0)
                        << "K=" << K << " N=" << N << " T=" << T << " kernel=" << bn_i8dot_name(k)
                        << " threads=" << bn_pool_size(p.get());
                    blocks_checked += T * N * K / 128;
                }
        }
    }
    EXPECT_GT(blocks_checked, 10000);
    // a kernel the CPU lacks, or an unknown one, is refused
    std::vector<uint8_t> one = PackI2S(std::vector<int>(128, 1), 1.0f);
    bn_weight W1 = {BN_TYPE_I2_S, one.data(), 128, 1, BN_LAYOUT_ROWS};
    std::vector<float> x(128, 1.0f), y(1);
    std::vector<uint64_t> scratch(bn_matmul_scratch_bytes(&W1, 1) / 8 + 1);
    bn_matmul_opts o{};
    o.i8dot = (bn_i8dot)9;
    bn_error err;
    EXPECT_EQ(bn_matmul(nullptr, &W1, x.data(), 1, y.data(), &o, scratch.data(), scratch.size() * 8, &err),
              BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("unknown int8 dot kernel 9"), std::string::npos) << err.msg;
    EXPECT_STREQ(bn_i8dot_name(BN_I8DOT_AVX512_VNNI), "avx512-vnni");
    EXPECT_TRUE(bn_i8dot_supported(bn_i8dot_best()));
}

// BN_LAYOUT_I2S_ROWS8 (the layout a model read into memory gets on an
// AVX-512 VNNI CPU): the bytes move, the products do not. Against the stored
// layout on the portable kernel, bit for bit: every K from one block pair per
// row (where the layout is the stored one) to the 2B-4T widths, groups of 8
// rows with zero and one-sign rows, batch 1 (the 8-row decode kernel) and
// batches around the 4 x 4 tile, 1-3 threads, several weights in one call;
// the rows read back as floats; and every way to misuse the layout refused.
TEST(MatmulI2S, RowGroupsOf8GiveTheStoredLayoutsBits) {
    if (!bn_i8dot_supported(BN_I8DOT_AVX512_VNNI)) GTEST_SKIP() << "no AVX-512 VNNI: the 8-row layout is not used";
    std::mt19937 rng(2024);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_int_distribution<int> code(-1, 1);
    const std::vector<PoolPtr> pools = PoolsOf({1, 2, 3});
    auto random_weight = [&](int64_t K, int64_t N) {
        std::vector<int> w((size_t)(K * N));
        for (int64_t r = 0; r < N; r++)
            for (int64_t i = 0; i < K; i++)
                w[(size_t)(r * K + i)] = r == 1 ? 0 : r == 2 ? 1 : r == 6 ? -1 : code(rng);
        return PackI2S(w, 0.625f);
    };
    int64_t outputs_checked = 0;
    for (int64_t K : {256, 512, 768, 2560, 6912})
        for (int64_t N : {8, 16, 72}) {
            std::vector<uint8_t> stored = random_weight(K, N), packed = stored;
            bn_weight S = {BN_TYPE_I2_S, stored.data(), K, N, BN_LAYOUT_ROWS}, P = S;
            P.data = packed.data();
            ASSERT_TRUE(bn_weight_fits_i2s_rows8(&P));
            std::vector<uint8_t> tmp((size_t)(2 * K));
            bn_weight_pack_i2s_rows8(&P, packed.data(), tmp.data());
            EXPECT_EQ(P.layout, (uint32_t)BN_LAYOUT_I2S_ROWS8);
            EXPECT_FALSE(bn_weight_fits_i2s_rows8(&P));  // already regrouped
            // one block pair per row: the same bytes; more: moved, the scale in place
            EXPECT_EQ(stored == packed, K == 256) << "K=" << K;
            EXPECT_EQ(memcmp(stored.data() + N * K / 4, packed.data() + N * K / 4, 4), 0);
            // row 8g + i's pair p at 512p + 64i of its group
            const int64_t r = N - 3, pair = K / 256 - 1;
            EXPECT_EQ(memcmp(packed.data() + (r / 8) * 2 * K + pair * 512 + (r % 8) * 64,
                             stored.data() + r * (K / 4) + pair * 64, 64),
                      0);
            for (int64_t T : {1, 2, 4, 5, 9}) {
                std::vector<float> x((size_t)(T * K));
                for (auto &v : x) v = nd(rng);
                const std::vector<float> ref = Matmul(pools[0].get(), S, x, T, BN_SUM_GGML, BN_SIMD_PORTABLE);
                for (auto &pool : pools) {
                    const std::vector<float> y = Matmul(pool.get(), P, x, T, BN_SUM_GGML);
                    EXPECT_EQ(memcmp(y.data(), ref.data(), y.size() * 4), 0)
                        << "K=" << K << " N=" << N << " T=" << T << " threads=" << bn_pool_size(pool.get());
                    outputs_checked += T * N;
                }
            }
            // read back as floats: every row, and a range inside a group
            std::vector<float> want((size_t)(N * K)), got((size_t)(N * K));
            bn_error err;
            ASSERT_OK(bn_dequantize_rows(BN_TYPE_I2_S, stored.data(), K, N, 0, N, want.data(), &err), err);
            ASSERT_OK(bn_weight_dequantize_rows(&P, 0, N, got.data(), &err), err);
            EXPECT_TRUE(want == got) << "K=" << K << " N=" << N;
            ASSERT_OK(bn_weight_dequantize_rows(&P, 3, 2, got.data(), &err), err);
            EXPECT_EQ(memcmp(got.data(), want.data() + 3 * K, (size_t)(2 * K) * 4), 0);
            EXPECT_EQ(bn_weight_dequantize_rows(&P, N - 1, 2, got.data(), &err), BN_ERR_INVALID);
        }
    EXPECT_GT(outputs_checked, 20000);

    // Q, K and V of one layer in one call: each weight's own rows and output
    const int64_t K = 1024;
    std::vector<std::vector<uint8_t>> stored, packed;
    std::vector<bn_weight> S, P;
    for (int64_t n : {32, 8, 16}) {
        stored.push_back(random_weight(K, n));
        packed.push_back(stored.back());
    }
    std::vector<uint8_t> tmp((size_t)(2 * K));
    for (size_t i = 0; i < stored.size(); i++) {
        const int64_t n = (int64_t)(stored[i].size() - 4) * 4 / K;
        S.push_back({BN_TYPE_I2_S, stored[i].data(), K, n, BN_LAYOUT_ROWS});
        P.push_back(S.back());
        P.back().data = packed[i].data();
        bn_weight_pack_i2s_rows8(&P.back(), packed[i].data(), tmp.data());
    }
    for (int64_t T : {1, 6}) {
        std::vector<float> x((size_t)(T * K));
        for (auto &v : x) v = nd(rng);
        std::vector<std::vector<float>> y(3);
        float *ys[3];
        for (int i = 0; i < 3; i++) y[i].assign((size_t)(T * P[i].n), -1.0f), ys[i] = y[i].data();
        const size_t sb = bn_matmul_scratch_bytes(&P[0], T);
        std::vector<uint64_t> scratch(sb / 8 + 1);
        bn_matmul_opts o{};
        o.order = BN_SUM_GGML;
        bn_error err;
        ASSERT_OK(bn_matmul_n(pools[1].get(), 3, P.data(), x.data(), T, ys, &o, scratch.data(), sb, &err), err);
        for (int i = 0; i < 3; i++)
            EXPECT_TRUE(y[i] == Matmul(nullptr, S[i], x, T, BN_SUM_GGML, BN_SIMD_PORTABLE)) << "weight " << i;

        // misuse: the layout on a kernel that does not read it, layouts mixed in one call
        for (auto [simd, k] : {std::pair{BN_SIMD_PORTABLE, BN_I8DOT_AUTO}, std::pair{BN_SIMD_AVX2, BN_I8DOT_MADDUBS}}) {
            o.simd = simd, o.i8dot = k;
            EXPECT_EQ(bn_matmul(pools[1].get(), &P[0], x.data(), T, ys[0], &o, scratch.data(), sb, &err),
                      BN_ERR_INVALID);
            EXPECT_NE(std::string(err.msg).find("needs the AVX-512 VNNI kernels"), std::string::npos) << err.msg;
        }
        o = bn_matmul_opts{};
        bn_weight mixed[2] = {P[0], S[1]};
        EXPECT_EQ(bn_matmul_n(nullptr, 2, mixed, x.data(), T, ys, &o, scratch.data(), sb, &err), BN_ERR_INVALID);
        EXPECT_NE(std::string(err.msg).find("layout"), std::string::npos) << err.msg;
    }
    // shapes and types the layout does not fit
    std::vector<uint8_t> odd = random_weight(256, 12);
    bn_weight W12 = {BN_TYPE_I2_S, odd.data(), 256, 12, BN_LAYOUT_ROWS};
    EXPECT_FALSE(bn_weight_fits_i2s_rows8(&W12));  // 12 rows
    W12.n = 8, W12.k = 128;
    EXPECT_FALSE(bn_weight_fits_i2s_rows8(&W12));  // one block per row
    W12.k = 256, W12.type = BN_TYPE_TQ2_0;
    EXPECT_FALSE(bn_weight_fits_i2s_rows8(&W12));
    W12 = {BN_TYPE_I2_S, odd.data(), 256, 12, BN_LAYOUT_I2S_ROWS8};  // claimed, but 12 rows
    std::vector<float> x(256, 1.0f), y(12);
    std::vector<uint64_t> scratch(bn_matmul_scratch_bytes(&W12, 1) / 8 + 1);
    bn_error err;
    EXPECT_EQ(bn_matmul(nullptr, &W12, x.data(), 1, y.data(), nullptr, scratch.data(), scratch.size() * 8, &err),
              BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("cannot be in the 8-row I2_S layout"), std::string::npos) << err.msg;
}

TEST(MatmulDot, SimdLevelsAgreeOnAttentionDots) {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t n : {1, 7, 16, 32, 63, 64, 100, 128, 256, 257}) {
        std::vector<float> a(n), b(n);
        std::vector<uint16_t> a16(n), b16(n);
        for (int64_t i = 0; i < n; i++) {
            a[i] = nd(rng), b[i] = nd(rng);
            a16[i] = bn_f32_to_f16(a[i]), b16[i] = bn_f32_to_f16(b[i]);
        }
        for (bn_sum_order o : {BN_SUM_PLAIN, BN_SUM_GGML, BN_SUM_GGML_AVX2, BN_SUM_GGML_NOFMA}) {
            float r1 = bn_dot_f32(a.data(), b.data(), n, o, BN_SIMD_PORTABLE);
            float r2 = bn_dot_f16(a16.data(), b16.data(), n, o, BN_SIMD_PORTABLE);
            float r3 = bn_dot_f16_f32(a16.data(), b.data(), n, o, BN_SIMD_PORTABLE);
            float r4 = bn_dot_f32_tiny(a.data(), b.data(), n, o, BN_SIMD_PORTABLE);
            float r5 = bn_dot_f16_tiny(a16.data(), b16.data(), n, o, BN_SIMD_PORTABLE);
            double exact = 0;
            for (int64_t i = 0; i < n; i++) exact += (double)a[i] * b[i];
            EXPECT_NEAR(r1, exact, 1e-4 * n) << n;
            EXPECT_NEAR(r4, exact, 1e-4 * n) << n;
            EXPECT_NEAR(r5, r2, 1e-4 * n) << n;  // the same f16 products, another order
            for (bn_simd s : Levels()) {
                EXPECT_EQ(Bits(bn_dot_f32(a.data(), b.data(), n, o, s)), Bits(r1)) << n << " " << o;
                EXPECT_EQ(Bits(bn_dot_f16(a16.data(), b16.data(), n, o, s)), Bits(r2)) << n << " " << o;
                EXPECT_EQ(Bits(bn_dot_f16_f32(a16.data(), b.data(), n, o, s)), Bits(r3)) << n << " " << o;
                EXPECT_EQ(Bits(bn_dot_f32_tiny(a.data(), b.data(), n, o, s)), Bits(r4)) << n << " " << o;
                EXPECT_EQ(Bits(bn_dot_f16_tiny(a16.data(), b16.data(), n, o, s)), Bits(r5)) << n << " " << o;
            }
        }
    }
}

// bn_dot_rows (rows a stride apart, 4 at a time where their tails are summed
// side by side) against one portable single dot per row: every kind, order,
// tail length (n mod 64) and row-count remainder.
TEST(MatmulDot, DotRowsEqualSingleDotsForEveryTailAndCount) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t stride = 272, max_rows = 9;
    std::vector<float> a(stride * max_rows), b(stride);
    std::vector<uint16_t> a16(a.size()), b16(b.size());
    // magnitudes from f16 subnormals to 65504, so that the products span more
    // than a double's 53 bits and a changed order of the double tail shows
    std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
    const float scales[] = {1.0f, 300.0f, 6e-8f, 65000.0f, 1e-4f, 1.0f, 30000.0f};
    for (size_t i = 0; i < a.size(); i++) a[i] = ud(rng) * scales[i % 7], a16[i] = bn_f32_to_f16(a[i]);
    for (size_t i = 0; i < b.size(); i++) b[i] = nd(rng) * (i % 5 == 0 ? 1e-3f : 1.0f), b16[i] = bn_f32_to_f16(b[i]);
    int64_t checked = 0;
    for (int64_t n : {16, 32, 48, 64, 80, 96, 112, 128, 130, 160, 256}) {
        for (bn_sum_order o : {BN_SUM_PLAIN, BN_SUM_GGML, BN_SUM_GGML_AVX2, BN_SUM_GGML_NOFMA}) {
            for (int64_t count = 1; count <= max_rows; count++) {
                for (bn_dot_kind kind : {BN_DOT_F32, BN_DOT_F16, BN_DOT_F32_TINY, BN_DOT_F16_TINY, BN_DOT_F16_F32}) {
                    const bool f16 = kind != BN_DOT_F32 && kind != BN_DOT_F32_TINY;
                    const void *rows = f16 ? (const void *)a16.data() : (const void *)a.data();
                    const void *vec = kind == BN_DOT_F16 || kind == BN_DOT_F16_TINY ? (const void *)b16.data()
                                                                                      : (const void *)b.data();
                    std::vector<float> want(count);
                    for (int64_t r = 0; r < count; r++) {
                        const float *ar = &a[r * stride];
                        const uint16_t *ar16 = &a16[r * stride];
                        switch (kind) {
                        case BN_DOT_F32: want[r] = bn_dot_f32(ar, b.data(), n, o, BN_SIMD_PORTABLE); break;
                        case BN_DOT_F16: want[r] = bn_dot_f16(ar16, b16.data(), n, o, BN_SIMD_PORTABLE); break;
                        case BN_DOT_F32_TINY: want[r] = bn_dot_f32_tiny(ar, b.data(), n, o, BN_SIMD_PORTABLE); break;
                        case BN_DOT_F16_TINY: want[r] = bn_dot_f16_tiny(ar16, b16.data(), n, o, BN_SIMD_PORTABLE); break;
                        case BN_DOT_F16_F32: want[r] = bn_dot_f16_f32(ar16, b.data(), n, o, BN_SIMD_PORTABLE); break;
                        }
                    }
                    for (bn_simd s : Levels()) {
                        std::vector<float> got(count, -1.0f);
                        bn_dot_rows(kind, rows, stride, count, vec, n, o, s, got.data());
                        for (int64_t r = 0; r < count; r++)
                            ASSERT_EQ(Bits(got[r]), Bits(want[r]))
                                << "kind " << kind << " order " << o << " n " << n << " count " << count << " row "
                                << r << " " << bn_simd_name(s);
                        ++checked;
                    }
                }
            }
        }
    }
    EXPECT_GE(checked, 11 * 4 * 9 * 5);
}

// --- shared traces -----------------------------------------------------------
struct Node {
    std::string name, op, file, src0, src1;
    int64_t ne[4];
};

struct Trace {
    NpzPtr npz;
    bool Open(const std::string &path) {
        npz_reader *r = nullptr;
        bn_error err;
        EXPECT_OK(npz_open(path.c_str(), &r, &err), err);
        npz.reset(r);
        return r != nullptr;
    }
    std::vector<Node> Index(const std::string &ev) {
        std::vector<Node> out;
        int64_t i = npz_find(npz.get(), (ev + "/index.tsv").c_str());
        if (i < 0) return out;
        std::string text(npz_member_at(npz.get(), i)->size, '\0');
        bn_error err;
        EXPECT_OK(npz_read(npz.get(), i, text.data(), text.size(), &err), err);
        std::istringstream in(text);
        std::string line;
        std::map<std::string, int> col;
        for (bool header = true; std::getline(in, line); header = false) {
            std::vector<std::string> f;
            std::stringstream ls(line);
            std::string cell;
            while (std::getline(ls, cell, '\t')) f.push_back(cell);
            if (header) {
                for (size_t c = 0; c < f.size(); c++) col[f[c]] = (int)c;
                continue;
            }
            Node n;
            n.name = f[col["name"]], n.op = f[col["op"]], n.file = ev + "/" + f[col["file"]];
            n.src0 = col.count("src0") ? f[col["src0"]] : "";
            n.src1 = col.count("src1") ? f[col["src1"]] : "";
            for (int d = 0; d < 4; d++) n.ne[d] = std::stoll(f[col["ne" + std::to_string(d)]]);
            out.push_back(n);
        }
        return out;
    }
    std::vector<float> Load(const std::string &member) {
        int64_t i = npz_find(npz.get(), member.c_str());
        EXPECT_GE(i, 0) << member;
        if (i < 0) return {};
        npz_array a{};
        bn_error err;
        bn_status st = npz_load_array(npz.get(), i, &a, &err);
        EXPECT_OK(st, err);
        if (st) return {};
        std::vector<float> v((const float *)a.data, (const float *)a.data + a.info.nelem);
        EXPECT_EQ(a.info.dtype, NPZ_F32);
        npz_array_free(&a);
        return v;
    }
};

// Counts elements of y that differ bitwise from ref.
int64_t Mismatches(const std::vector<float> &y, const std::vector<float> &ref) {
    EXPECT_EQ(y.size(), ref.size());
    int64_t bad = 0;
    for (size_t i = 0; i < y.size() && i < ref.size(); i++) bad += Bits(y[i]) != Bits(ref[i]);
    return bad;
}

// Largest |y - ref| in units of the spacing of floats at the node's largest
// |ref| (an element-wise ulp count explodes where sums cancel to near zero).
double MaxErrInNodeUlps(const std::vector<float> &y, const std::vector<float> &ref) {
    float top = 0.0f;
    double worst = 0.0;
    for (float r : ref) top = std::max(top, std::fabs(r));
    for (size_t i = 0; i < y.size() && i < ref.size(); i++)
        worst = std::max(worst, std::fabs((double)y[i] - ref[i]));
    return worst / (std::nextafter(top, INFINITY) - top);
}

bn_weight WeightOf(const bn_gguf *g, const std::string &name) {
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, name.c_str());
    EXPECT_NE(t, nullptr) << name;
    if (!t) return {BN_TYPE_F32, nullptr, 0, 0, BN_LAYOUT_ROWS};
    return {t->type, t->data, t->ne[0], t->ne[1], BN_LAYOUT_ROWS};
}

// Every weight MUL_MAT node of a bitnet.cpp trace (src0 is a model tensor),
// recomputed from the recorded src1 node; returns the number of nodes checked.
int CheckWeightNodes(const std::string &trace_rel, const std::string &model_rel, bn_sum_order order,
                     std::vector<bn_pool *> pools, int64_t *elements) {
    std::string tp = bptest::SharedPath(trace_rel), mp = bptest::SharedPath(model_rel);
    Trace tr;
    if (!tr.Open(tp)) return 0;
    bn_gguf *g = nullptr;
    bn_error err;
    EXPECT_OK(bn_gguf_open(mp.c_str(), &g, &err), err);
    GgufPtr gh(g);
    if (!g) return 0;
    int checked = 0;
    for (const char *ev : {"e0", "e1", "e2"}) {
        std::vector<Node> nodes = tr.Index(ev);
        std::map<std::string, std::string> last;  // node name -> latest member
        for (const Node &n : nodes) {
            if (n.op == "MUL_MAT" && bn_gguf_find_tensor(g, n.src0.c_str())) {
                bn_weight W = WeightOf(g, n.src0);
                std::vector<float> x = tr.Load(last[n.src1]);
                std::vector<float> ref = tr.Load(n.file);
                int64_t T = n.ne[1];
                EXPECT_EQ((int64_t)x.size(), T * W.k);
                for (bn_pool *p : pools)
                    for (bn_simd simd : Levels()) {
                        std::vector<float> y = Matmul(p, W, x, T, order, simd);
                        EXPECT_EQ(Mismatches(y, ref), 0) << trace_rel << " " << ev << " " << n.name << " "
                                                         << bn_type_name(W.type) << " " << bn_simd_name(simd)
                                                         << " threads=" << bn_pool_size(p);
                    }
                *elements += (int64_t)ref.size();
                checked++;
            }
            last[n.name] = n.file;
        }
    }
    return checked;
}

struct Pools {
    std::vector<PoolPtr> owned;
    std::vector<bn_pool *> raw;
    explicit Pools(std::initializer_list<int> sizes) : owned(PoolsOf(sizes)) {
        for (const auto &p : owned) raw.push_back(p.get());
    }
};

TEST(MatmulTrace, BitnetCppI2SNodesBitExact) {
    REQUIRE_SHARED(trace, "reference-traces/bitnetcpp/i2s/p1.npz");
    REQUIRE_SHARED(model, "models/tiny-bitnet-i2s.gguf");
    Pools pools({1, 2, 3, 7});
    int64_t elements = 0;
    // 28 I2_S projections per evaluation plus the F16 lm_head, 3 evaluations
    int n = CheckWeightNodes("reference-traces/bitnetcpp/i2s/p1.npz", "models/tiny-bitnet-i2s.gguf",
                             BN_SUM_GGML, pools.raw, &elements);
    EXPECT_EQ(n, 3 * 29);
    EXPECT_GT(elements, 0);
}

TEST(MatmulTrace, BitnetCppF32NodesBitExactWithGgmlOrder) {
    REQUIRE_SHARED(trace, "reference-traces/bitnetcpp/f32/p1.npz");
    REQUIRE_SHARED(model, "models/tiny-bitnet-f32.gguf");
    Pools pools({1, 2});
    int64_t elements = 0;
    int n = CheckWeightNodes("reference-traces/bitnetcpp/f32/p1.npz", "models/tiny-bitnet-f32.gguf",
                             BN_SUM_GGML, pools.raw, &elements);
    EXPECT_EQ(n, 3 * 29);
}

TEST(MatmulTrace, BitnetCppF32PlainOrderIsNotBitExact) {
    // The order matters: the plain order reproduces only part of the prompt's
    // Qcur-0 (it is a float sum in another order), which is why GGML exists.
    REQUIRE_SHARED(trace, "reference-traces/bitnetcpp/f32/p1.npz");
    REQUIRE_SHARED(model, "models/tiny-bitnet-f32.gguf");
    Trace tr;
    ASSERT_TRUE(tr.Open(trace));
    bn_gguf *g = nullptr;
    bn_error err;
    ASSERT_OK(bn_gguf_open(model.c_str(), &g, &err), err);
    GgufPtr gh(g);
    std::vector<float> x = tr.Load("e0/0002_attn_norm-0.npy"), ref = tr.Load("e0/0003_Qcur-0.npy");
    bn_weight W = WeightOf(g, "blk.0.attn_q.weight");
    std::vector<float> plain = Matmul(nullptr, W, x, 12, BN_SUM_PLAIN);
    std::vector<float> avx2 = Matmul(nullptr, W, x, 12, BN_SUM_GGML_AVX2);
    EXPECT_GT(Mismatches(plain, ref), 1000);
    EXPECT_GT(Mismatches(avx2, ref), 1000);
    EXPECT_LE(MaxErrInNodeUlps(plain, ref), 16.0);  // same numbers up to rounding
    EXPECT_EQ(Mismatches(Matmul(nullptr, W, x, 12, BN_SUM_GGML), ref), 0);
}

// kq-N = k-N (F16 cache view [kvh][cell][D]) · f16(q-N [h][t][D]);
// kqv-N = v-N ([kvh][D][cell]) · softmax ([h][t][cell]): prompt f32, decode f16.
void CheckAttention(const std::string &trace_rel, int64_t *checked) {
    std::string tp = bptest::SharedPath(trace_rel);
    Trace tr;
    ASSERT_TRUE(tr.Open(tp));
    for (const char *ev : {"e0", "e1", "e2"}) {
        std::vector<Node> nodes = tr.Index(ev);
        std::map<std::string, Node> last;
        for (const Node &n : nodes) {
            bool kq = n.name.rfind("kq-", 0) == 0, kqv = n.name.rfind("kqv-", 0) == 0;
            if (n.op == "MUL_MAT" && (kq || kqv)) {
                const Node &a = last[n.src0], &b = last[n.src1];
                std::vector<float> av = tr.Load(a.file), bv = tr.Load(b.file), ref = tr.Load(n.file);
                const int64_t K = a.ne[0], rows = a.ne[1], kvh = a.ne[2];
                const int64_t T = b.ne[1], nh = b.ne[2];
                ASSERT_EQ(n.ne[0], rows);
                ASSERT_EQ(n.ne[1], T);
                // a is F16 data widened; b is f32 (probs of a prompt) or to be rounded
                std::vector<uint16_t> a16(av.size()), b16(bv.size());
                for (size_t i = 0; i < av.size(); i++) a16[i] = bn_f32_to_f16(av[i]);
                for (size_t i = 0; i < bv.size(); i++) b16[i] = bn_f32_to_f16(bv[i]);
                std::vector<float> y(ref.size());
                for (bn_simd simd : Levels()) {
                    for (int64_t h = 0; h < nh; h++)
                        for (int64_t t = 0; t < T; t++)
                            for (int64_t r = 0; r < rows; r++) {
                                const uint16_t *ar = &a16[(size_t)(((h / (nh / kvh)) * rows + r) * K)];
                                const size_t bo = (size_t)((h * T + t) * K);
                                y[(size_t)((h * T + t) * rows + r)] =
                                    kqv && T > 1 ? bn_dot_f16_f32(ar, &bv[bo], K, BN_SUM_GGML, simd)
                                                 : bn_dot_f16(ar, &b16[bo], K, BN_SUM_GGML, simd);
                            }
                    EXPECT_EQ(Mismatches(y, ref), 0) << trace_rel << " " << ev << " " << n.name << " "
                                                     << bn_simd_name(simd);
                }
                ++*checked;
            }
            last[n.name] = n;
        }
    }
}

TEST(MatmulTrace, BitnetCppAttentionProductsBitExact) {
    REQUIRE_SHARED(t1, "reference-traces/bitnetcpp/i2s/p1.npz");
    REQUIRE_SHARED(t2, "reference-traces/bitnetcpp/f32/p1.npz");
    int64_t checked = 0;
    CheckAttention("reference-traces/bitnetcpp/i2s/p1.npz", &checked);
    CheckAttention("reference-traces/bitnetcpp/f32/p1.npz", &checked);
    EXPECT_EQ(checked, 2 * 3 * 4 * 2);  // 2 traces x 3 evals x 4 layers x (kq, kqv)
}

// llama.cpp's index has no src columns: the input of each projection is the
// latest node of the name its graph feeds it from.
std::string LlamaInput(const std::string &node, std::string *weight) {
    static const struct {
        const char *prefix, *input, *tensor;
    } map[] = {{"Qcur-", "attn_norm-", "attn_q"},       {"Kcur-", "attn_norm-", "attn_k"},
               {"Vcur-", "attn_norm-", "attn_v"},       {"attn_out-", "attn_sub_norm-", "attn_output"},
               {"ffn_gate-", "ffn_norm-", "ffn_gate"},  {"ffn_up-", "ffn_norm-", "ffn_up"},
               {"ffn_down-", "ffn_sub_norm-", "ffn_down"}};
    for (const auto &m : map) {
        size_t len = strlen(m.prefix);
        if (node.compare(0, len, m.prefix) == 0) {
            std::string layer = node.substr(len);
            *weight = "blk." + layer + "." + m.tensor + ".weight";
            return m.input + layer;
        }
    }
    return "";
}

void CheckLlamaTernary(const std::string &trace_rel, const std::string &model_rel, uint32_t type) {
    Trace tr;
    ASSERT_TRUE(tr.Open(bptest::SharedPath(trace_rel)));
    bn_gguf *g = nullptr;
    bn_error err;
    ASSERT_OK(bn_gguf_open(bptest::SharedPath(model_rel).c_str(), &g, &err), err);
    GgufPtr gh(g);
    Pools pools({1, 3});
    std::map<std::string, std::string> last;
    int checked = 0;
    double plain_ulp = 0;
    int64_t plain_bad = 0, total = 0;
    for (const Node &n : tr.Index("e0")) {
        std::string wname, in = n.op == "MUL_MAT" ? LlamaInput(n.name, &wname) : "";
        if (!in.empty()) {
            bn_weight W = WeightOf(g, wname);
            EXPECT_EQ(W.type, type) << wname;
            std::vector<float> x = tr.Load(last[in]), ref = tr.Load(n.file);
            for (bn_pool *p : pools.raw)
                for (bn_simd simd : Levels())
                    EXPECT_EQ(Mismatches(Matmul(p, W, x, n.ne[1], BN_SUM_GGML, simd), ref), 0)
                        << trace_rel << " " << n.name << " " << bn_simd_name(simd);
            std::vector<float> plain = Matmul(nullptr, W, x, n.ne[1], BN_SUM_PLAIN);
            plain_ulp = std::max(plain_ulp, MaxErrInNodeUlps(plain, ref));
            plain_bad += Mismatches(plain, ref);
            total += (int64_t)ref.size();
            checked++;
        }
        last[n.name] = n.file;
    }
    EXPECT_EQ(checked, 28);
    // The plain per-block order (ggml's generic C) is a few ulp away at most.
    EXPECT_GT(plain_bad, 0);
    EXPECT_LE(plain_ulp, 8.0);
    std::printf("%s: plain order differs in %lld of %lld elements, max %.2f ulp of the node's max\n",
                trace_rel.c_str(), (long long)plain_bad, (long long)total, plain_ulp);
}

TEST(MatmulTrace, LlamaCppTQ2NodesBitExact) {
    REQUIRE_SHARED(t, "reference-traces/llamacpp/tq2_0-p1.npz");
    REQUIRE_SHARED(m, "models/tiny-bitnet-llamacpp-tq2_0.gguf");
    CheckLlamaTernary("reference-traces/llamacpp/tq2_0-p1.npz", "models/tiny-bitnet-llamacpp-tq2_0.gguf",
                      BN_TYPE_TQ2_0);
}

TEST(MatmulTrace, LlamaCppTQ1NodesBitExact) {
    REQUIRE_SHARED(t, "reference-traces/llamacpp/tq1_0-p1.npz");
    REQUIRE_SHARED(m, "models/tiny-bitnet-llamacpp-tq1_0.gguf");
    CheckLlamaTernary("reference-traces/llamacpp/tq1_0-p1.npz", "models/tiny-bitnet-llamacpp-tq1_0.gguf",
                      BN_TYPE_TQ1_0);
}

}  // namespace
