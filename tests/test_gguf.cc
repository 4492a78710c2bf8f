// test_gguf.cc — the GGUF reader and writer: a hand-computed byte layout,
// round trips of every value type and several tensor types, facts of the
// shared model files, typed look-ups, writer input checks, and a hostile
// corpus of mutants derived from a valid file (GgufHostile, run under the
// sanitizers in CI).
#include "test_helpers.h"

extern "C" {
#include "bitnet/gguf.h"
#include "bitnet/quant.h"
}

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

using bptest::TempDir;

namespace {


std::string Str(bn_gguf_str s) { return s.ptr ? std::string(s.ptr, s.len) : std::string("<null>"); }

// Deterministic, position-dependent bytes so that swapped or shifted tensor
// data cannot compare equal.
std::vector<uint8_t> Pattern(size_t n, unsigned seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(i * 131u + seed * 29u + (i >> 8));
    return v;
}

struct TensorSpec {
    std::string name;
    uint32_t type;
    uint32_t n_dims;
    std::vector<int64_t> ne;
    uint64_t nbytes;  // hand-computed from docs/specs/i2s.md and ggml's block sizes
};

GgufPtr OpenFile(const std::string &path) {
    bn_gguf *g = nullptr;
    bn_error err;
    bn_status st = bn_gguf_open(path.c_str(), &g, &err);
    EXPECT_OK(st, err);
    return GgufPtr(g);
}

// Writes tensors with Pattern data (seed = index) after the caller's keys.
void WriteTensors(bn_gguf_writer *w, const std::vector<TensorSpec> &ts) {
    bn_error err;
    for (const auto &t : ts) ASSERT_OK(bn_gguf_writer_add_tensor(w, t.name.c_str(), t.type, t.n_dims, t.ne.data(), &err), err);
    for (size_t i = 0; i < ts.size(); i++) {
        std::vector<uint8_t> d = Pattern(ts[i].nbytes, (unsigned)i);
        ASSERT_OK(bn_gguf_writer_write_tensor(w, d.data(), d.size(), &err), err);
    }
}

// ---------------------------------------------------------------------------
// A byte layout computed by hand

TEST(GgufWriter, ByteLayoutOfAMinimalFile) {
    TempDir tmp;
    std::string path = tmp.file("min.gguf");
    bn_gguf_writer *w = nullptr;
    bn_error err;
    ASSERT_OK(bn_gguf_writer_open(path.c_str(), 0, &w, &err), err);
    uint8_t seven = 7;
    ASSERT_OK(bn_gguf_writer_add_scalar(w, "a", BN_GGUF_UINT8, &seven, &err), err);
    int64_t ne[1] = {1};
    ASSERT_OK(bn_gguf_writer_add_tensor(w, "t", BN_TYPE_F32, 1, ne, &err), err);
    const uint8_t data[4] = {1, 2, 3, 4};
    ASSERT_OK(bn_gguf_writer_write_tensor(w, data, 4, &err), err);
    ASSERT_OK(bn_gguf_writer_close(w, &err), err);

    // header 24 + kv (8 + 1 + 4 + 1 = 14) + tensor info (8 + 1 + 4 + 8 + 4 + 8 = 33)
    // = 71 bytes, padded to 96; 4 data bytes padded to 128.
    std::vector<uint8_t> want = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                 1, 0, 0, 0, 0, 0, 0, 0, 'a', 0, 0, 0, 0, 7,
                                 1, 0, 0, 0, 0, 0, 0, 0, 't', 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                 0, 0, 0, 0, 0, 0, 0, 0};
    want.resize(96, 0);
    want.insert(want.end(), data, data + 4);
    want.resize(128, 0);
    EXPECT_EQ(bptest::ReadFile(path), want);

    GgufPtr g = OpenFile(path);
    ASSERT_TRUE(g);
    EXPECT_EQ(bn_gguf_version(g.get()), 3u);
    EXPECT_EQ(bn_gguf_data_offset(g.get()), 96u);
    EXPECT_EQ(bn_gguf_alignment(g.get()), 32u);
    EXPECT_EQ(bn_gguf_file_size(g.get()), 128u);
    EXPECT_EQ(std::string(bn_gguf_path(g.get())), path);
    EXPECT_EQ(bn_gguf_kv_int(g.get(), 0, 0), 7);
    const bn_gguf_tensor *t = bn_gguf_tensor_at(g.get(), 0);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->abs_offset, 96u);
    EXPECT_EQ(t->nbytes, 4u);
    EXPECT_EQ(memcmp(t->data, data, 4), 0);
}

// Pieces of a tensor give the bytes of one whole write (synth streams big
// tensors this way); more than the declared size or a whole write after a
// piece is refused, and close refuses an unfinished tensor.
TEST(GgufWriter, TensorWrittenInPiecesEqualsOneWrite) {
    TempDir tmp;
    bn_error err;
    auto expect = [&](bn_status got, bn_status want, const char *sub) {
        EXPECT_EQ(got, want) << err.msg;
        EXPECT_NE(std::string(err.msg).find(sub), std::string::npos) << err.msg;
    };
    const int64_t ne[2] = {128, 3};  // I2_S: 96 code bytes + 32
    std::vector<uint8_t> d = Pattern(128 * 3 / 4 + 32, 9);
    auto write = [&](const std::string &path, bool pieces) {
        bn_gguf_writer *w = nullptr;
        ASSERT_OK(bn_gguf_writer_open(path.c_str(), 3, &w, &err), err);
        ASSERT_OK(bn_gguf_writer_add_tensor(w, "a", BN_TYPE_I2_S, 2, ne, &err), err);
        ASSERT_OK(bn_gguf_writer_add_tensor(w, "b", BN_TYPE_F32, 1, ne, &err), err);
        if (pieces) {
            ASSERT_OK(bn_gguf_writer_write_tensor_part(w, d.data(), 32, &err), err);
            expect(bn_gguf_writer_write_tensor(w, d.data(), 128, &err), BN_ERR_INVALID,
                   "whole data given after 32 partial bytes");
            expect(bn_gguf_writer_write_tensor_part(w, d.data() + 32, 97, &err), BN_ERR_INVALID,
                   "97 more bytes given after 32, 128 declared");
            ASSERT_OK(bn_gguf_writer_write_tensor_part(w, d.data() + 32, 64, &err), err);
            ASSERT_OK(bn_gguf_writer_write_tensor_part(w, d.data() + 96, 32, &err), err);
            ASSERT_OK(bn_gguf_writer_write_tensor_part(w, d.data(), 500, &err), err);
            ASSERT_OK(bn_gguf_writer_write_tensor_part(w, d.data(), 12, &err), err);
        } else {
            ASSERT_OK(bn_gguf_writer_write_tensor(w, d.data(), 128, &err), err);
            std::vector<uint8_t> b(d.begin(), d.begin() + 500);
            b.insert(b.end(), d.begin(), d.begin() + 12);
            ASSERT_OK(bn_gguf_writer_write_tensor(w, b.data(), b.size(), &err), err);
        }
        ASSERT_OK(bn_gguf_writer_close(w, &err), err);
    };
    d.resize(512);
    write(tmp.file("whole.gguf"), false);
    write(tmp.file("pieces.gguf"), true);
    EXPECT_EQ(bptest::ReadFile(tmp.file("whole.gguf")), bptest::ReadFile(tmp.file("pieces.gguf")));

    bn_gguf_writer *w = nullptr;
    std::string p3 = tmp.file("unfinished.gguf");
    ASSERT_OK(bn_gguf_writer_open(p3.c_str(), 3, &w, &err), err);
    ASSERT_OK(bn_gguf_writer_add_tensor(w, "a", BN_TYPE_I2_S, 2, ne, &err), err);
    ASSERT_OK(bn_gguf_writer_write_tensor_part(w, d.data(), 100, &err), err);
    expect(bn_gguf_writer_close(w, &err), BN_ERR_INVALID, "only 0 of 1 declared tensors were written");
}

// ---------------------------------------------------------------------------
// Round trip of every value type and four tensor types

struct RoundTripCase {
    uint32_t version;
    uint32_t alignment;  // 32 = default (no key written)
};

class GgufRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

const std::vector<TensorSpec> kRoundTripTensors = {
    {"tok.f32", BN_TYPE_F32, 2, {3, 5}, 60},
    {"w.f16", BN_TYPE_F16, 1, {7}, 14},
    {"w.i2s", BN_TYPE_I2_S, 2, {256, 3}, 256 * 3 / 4 + 32},
    {"w.tq2", BN_TYPE_TQ2_0, 3, {256, 2, 2}, 4 * 66},
    {std::string(63, 'n'), BN_TYPE_F32, 4, {2, 1, 3, 1}, 24},
};

const char *const kStrs[] = {"a", "", "日本語", "x y\tz"};

const uint8_t a_u8[] = {0, 1, 255};
const int8_t a_i8[] = {-128, 0, 127};
const uint16_t a_u16[] = {0, 1, 65535};
const int16_t a_i16[] = {-32768, 0, 32767};
const uint32_t a_u32[] = {0, 1, 4294967295u};
const int32_t a_i32[] = {INT32_MIN, 0, INT32_MAX};
const float a_f32[] = {-0.0f, 3.25f, 1e-30f};
const uint8_t a_bool[] = {1, 0, 1};
const uint64_t a_u64[] = {0, 1, UINT64_MAX};
const int64_t a_i64[] = {INT64_MIN, 0, INT64_MAX};
const double a_f64[] = {0.1, -2.5, 1e308};

// Three elements each; `v` = the same values as doubles, `bytes` = size of the
// array in the file (the raw data equals the host array on little-endian hosts).
const struct {
    const char *key;
    bn_gguf_vtype t;
    const void *p;
    size_t bytes;
    double v[3];
} kArrays[] = {
    {"a.u8", BN_GGUF_UINT8, a_u8, 3, {0, 1, 255}},
    {"a.i8", BN_GGUF_INT8, a_i8, 3, {-128, 0, 127}},
    {"a.u16", BN_GGUF_UINT16, a_u16, 6, {0, 1, 65535}},
    {"a.i16", BN_GGUF_INT16, a_i16, 6, {-32768, 0, 32767}},
    {"a.u32", BN_GGUF_UINT32, a_u32, 12, {0, 1, 4294967295.0}},
    {"a.i32", BN_GGUF_INT32, a_i32, 12, {-2147483648.0, 0, 2147483647.0}},
    {"a.f32", BN_GGUF_FLOAT32, a_f32, 12, {-0.0, 3.25, (double)1e-30f}},
    {"a.bool", BN_GGUF_BOOL, a_bool, 3, {1, 0, 1}},
    {"a.u64", BN_GGUF_UINT64, a_u64, 24, {0, 1, 18446744073709551615.0}},
    {"a.i64", BN_GGUF_INT64, a_i64, 24, {-9223372036854775808.0, 0, 9223372036854775807.0}},
    {"a.f64", BN_GGUF_FLOAT64, a_f64, 24, {0.1, -2.5, 1e308}},
};

void WriteRoundTrip(const std::string &path, const RoundTripCase &c) {
    bn_gguf_writer *w = nullptr;
    bn_error err;
    ASSERT_OK(bn_gguf_writer_open(path.c_str(), c.version, &w, &err), err);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = (1ull << 63) + 5;
    int64_t i64 = -(1ll << 62) - 3;
    double f64 = -1e300;
    ASSERT_OK(bn_gguf_writer_add_scalar(w, "s.u8", BN_GGUF_UINT8, &u8, &err), err);
    ASSERT_OK(bn_gguf_writer_add_scalar(w, "s.i8", BN_GGUF_INT8, &i8, &err), err);
    ASSERT_OK(bn_gguf_writer_add_scalar(w, "s.u16", BN_GGUF_UINT16, &u16, &err), err);
    ASSERT_OK(bn_gguf_writer_add_scalar(w, "s.i16", BN_GGUF_INT16, &i16, &err), err);
    ASSERT_OK(bn_gguf_writer_add_u32(w, "s.u32", 4000000000u, &err), err);
    ASSERT_OK(bn_gguf_writer_add_i32(w, "s.i32", -2000000000, &err), err);
    ASSERT_OK(bn_gguf_writer_add_f32(w, "s.f32", 1.5f, &err), err);
    ASSERT_OK(bn_gguf_writer_add_bool(w, "s.bool", true, &err), err);
    ASSERT_OK(bn_gguf_writer_add_str(w, "s.str", "héllo ✓", &err), err);
    ASSERT_OK(bn_gguf_writer_add_scalar(w, "s.u64", BN_GGUF_UINT64, &u64, &err), err);
    ASSERT_OK(bn_gguf_writer_add_scalar(w, "s.i64", BN_GGUF_INT64, &i64, &err), err);
    ASSERT_OK(bn_gguf_writer_add_scalar(w, "s.f64", BN_GGUF_FLOAT64, &f64, &err), err);
    ASSERT_OK(bn_gguf_writer_add_str(w, "s.empty", "", &err), err);
    if (c.alignment != 32) {
        ASSERT_OK(bn_gguf_writer_add_u32(w, "general.alignment", c.alignment, &err), err);
    }

    for (const auto &a : kArrays) ASSERT_OK(bn_gguf_writer_add_arr(w, a.key, a.t, a.p, 3, &err), err);
    ASSERT_OK(bn_gguf_writer_add_str_arr(w, "a.str", kStrs, 4, &err), err);
    ASSERT_OK(bn_gguf_writer_add_arr(w, "a.empty", BN_GGUF_INT32, nullptr, 0, &err), err);
    ASSERT_OK(bn_gguf_writer_add_str_arr(w, "a.empty_str", nullptr, 0, &err), err);
    WriteTensors(w, kRoundTripTensors);
    ASSERT_OK(bn_gguf_writer_close(w, &err), err);
}

int64_t Key(const bn_gguf *g, const char *key) {
    int64_t i = bn_gguf_find_key(g, key);
    EXPECT_GE(i, 0) << key;
    return i;
}

void CheckScalars(const bn_gguf *g) {
    const struct {
        const char *key;
        bn_gguf_vtype t;
        int64_t i;
        double f;
    } want[] = {
        {"s.u8", BN_GGUF_UINT8, 200, 200},
        {"s.i8", BN_GGUF_INT8, -100, -100},
        {"s.u16", BN_GGUF_UINT16, 60000, 60000},
        {"s.i16", BN_GGUF_INT16, -30000, -30000},
        {"s.u32", BN_GGUF_UINT32, 4000000000ll, 4e9},
        {"s.i32", BN_GGUF_INT32, -2000000000, -2e9},
        {"s.f32", BN_GGUF_FLOAT32, 1, 1.5},
        {"s.bool", BN_GGUF_BOOL, 1, 1},
        {"s.u64", BN_GGUF_UINT64, INT64_MAX, 9223372036854775813.0},  // kv_int saturates
        {"s.i64", BN_GGUF_INT64, -(1ll << 62) - 3, -4611686018427387907.0},
        {"s.f64", BN_GGUF_FLOAT64, INT64_MIN, -1e300},
    };
    for (const auto &w : want) {
        int64_t i = Key(g, w.key);
        EXPECT_EQ(bn_gguf_kv_type(g, i), w.t) << w.key;
        EXPECT_EQ(bn_gguf_kv_elem_type(g, i), w.t) << w.key;
        EXPECT_EQ(bn_gguf_kv_count_elems(g, i), 1u) << w.key;
        EXPECT_EQ(bn_gguf_kv_int(g, i, 0), w.i) << w.key;
        EXPECT_EQ(bn_gguf_kv_float(g, i, 0), w.f) << w.key;
        EXPECT_NE(bn_gguf_kv_data(g, i), nullptr) << w.key;
        EXPECT_EQ(bn_gguf_kv_str(g, i, 0).ptr, nullptr) << w.key;
    }
    int64_t s = Key(g, "s.str");
    EXPECT_EQ(bn_gguf_kv_type(g, s), BN_GGUF_STRING);
    EXPECT_EQ(Str(bn_gguf_kv_str(g, s, 0)), "héllo ✓");
    EXPECT_EQ(bn_gguf_kv_str(g, s, 0).len, 10u);  // UTF-8 bytes: é and ✓ take 2 and 3
    EXPECT_EQ(bn_gguf_kv_data(g, s), nullptr);
    EXPECT_EQ(bn_gguf_kv_str(g, Key(g, "s.empty"), 0).len, 0u);
    EXPECT_NE(bn_gguf_kv_str(g, Key(g, "s.empty"), 0).ptr, nullptr);
}

void CheckArrays(const bn_gguf *g) {
    for (const auto &w : kArrays) {
        int64_t i = Key(g, w.key);
        EXPECT_EQ(bn_gguf_kv_type(g, i), BN_GGUF_ARRAY) << w.key;
        EXPECT_EQ(bn_gguf_kv_elem_type(g, i), w.t) << w.key;
        ASSERT_EQ(bn_gguf_kv_count_elems(g, i), 3u) << w.key;
        for (uint64_t j = 0; j < 3; j++) EXPECT_EQ(bn_gguf_kv_float(g, i, j), w.v[j]) << w.key << "[" << j << "]";
        EXPECT_EQ(bn_gguf_kv_float(g, i, 3), 0.0) << "out of range";
        ASSERT_NE(bn_gguf_kv_data(g, i), nullptr);
        EXPECT_EQ(memcmp(bn_gguf_kv_data(g, i), w.p, w.bytes), 0) << w.key;
    }
    EXPECT_EQ(bn_gguf_kv_int(g, Key(g, "a.i64"), 0), INT64_MIN);
    EXPECT_EQ(bn_gguf_kv_int(g, Key(g, "a.u64"), 2), INT64_MAX);  // saturated
    int64_t s = Key(g, "a.str");
    EXPECT_EQ(bn_gguf_kv_type(g, s), BN_GGUF_ARRAY);
    EXPECT_EQ(bn_gguf_kv_elem_type(g, s), BN_GGUF_STRING);
    ASSERT_EQ(bn_gguf_kv_count_elems(g, s), 4u);
    for (uint64_t j = 0; j < 4; j++) EXPECT_EQ(Str(bn_gguf_kv_str(g, s, j)), kStrs[j]);
    EXPECT_EQ(bn_gguf_kv_str(g, s, 4).ptr, nullptr);
    EXPECT_EQ(bn_gguf_kv_data(g, s), nullptr);
    EXPECT_EQ(bn_gguf_kv_count_elems(g, Key(g, "a.empty")), 0u);
    EXPECT_EQ(bn_gguf_kv_elem_type(g, Key(g, "a.empty")), BN_GGUF_INT32);
    EXPECT_EQ(bn_gguf_kv_count_elems(g, Key(g, "a.empty_str")), 0u);
    EXPECT_EQ(bn_gguf_kv_elem_type(g, Key(g, "a.empty_str")), BN_GGUF_STRING);
}

void CheckTensors(const bn_gguf *g, uint64_t alignment, const std::vector<uint8_t> &file) {
    ASSERT_EQ(bn_gguf_tensor_count(g), (int64_t)kRoundTripTensors.size());
    uint64_t expect_off = 0;
    for (size_t i = 0; i < kRoundTripTensors.size(); i++) {
        const TensorSpec &s = kRoundTripTensors[i];
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, (int64_t)i);
        ASSERT_NE(t, nullptr);
        EXPECT_EQ(t, bn_gguf_find_tensor(g, s.name.c_str()));
        EXPECT_EQ(std::string(t->name), s.name);
        EXPECT_EQ(t->type, s.type);
        EXPECT_EQ(t->n_dims, s.n_dims);
        int64_t nelem = 1;
        for (uint32_t d = 0; d < 4; d++) {
            int64_t want = d < s.n_dims ? s.ne[d] : 1;
            EXPECT_EQ(t->ne[d], want) << s.name << " ne[" << d << "]";
            nelem *= want;
        }
        EXPECT_EQ(t->nelem, nelem);
        EXPECT_EQ(t->nbytes, s.nbytes) << s.name;
        EXPECT_EQ(t->offset, expect_off) << s.name;  // the writer packs in declaration order
        EXPECT_EQ(t->offset % alignment, 0u);
        EXPECT_EQ(t->abs_offset, bn_gguf_data_offset(g) + t->offset);
        std::vector<uint8_t> want = Pattern(s.nbytes, (unsigned)i);
        EXPECT_EQ(memcmp(t->data, want.data(), want.size()), 0) << s.name;
        // Padding up to the next aligned offset is zeros.
        uint64_t end = t->abs_offset + t->nbytes, padded = (end + alignment - 1) / alignment * alignment;
        ASSERT_LE(padded, file.size());
        for (uint64_t b = end; b < padded; b++) ASSERT_EQ(file[b], 0) << "padding after " << s.name << " at " << b;
        expect_off += (s.nbytes + alignment - 1) / alignment * alignment;
    }
    EXPECT_EQ(bn_gguf_data_offset(g) % alignment, 0u);
    EXPECT_EQ(bn_gguf_file_size(g), bn_gguf_data_offset(g) + expect_off);
    EXPECT_EQ(bn_gguf_find_tensor(g, "nope"), nullptr);
    EXPECT_EQ(bn_gguf_tensor_at(g, -1), nullptr);
    EXPECT_EQ(bn_gguf_tensor_at(g, (int64_t)kRoundTripTensors.size()), nullptr);
}

TEST_P(GgufRoundTrip, EveryValueTypeAndTensor) {
    const RoundTripCase c = GetParam();
    TempDir tmp;
    std::string path = tmp.file("rt.gguf");
    WriteRoundTrip(path, c);
    if (HasFatalFailure()) return;
    std::vector<uint8_t> bytes = bptest::ReadFile(path);
    ASSERT_GT(bytes.size(), 24u);

    bn_error err;
    bn_gguf *mem = nullptr;
    ASSERT_OK(bn_gguf_open_memory(bytes.data(), bytes.size(), "rt", &mem, &err), err);
    GgufPtr from_mem(mem);
    GgufPtr from_file = OpenFile(path);
    ASSERT_TRUE(from_file);
    for (const bn_gguf *g : {from_mem.get(), from_file.get()}) {
        EXPECT_EQ(bn_gguf_version(g), c.version);
        EXPECT_EQ(bn_gguf_alignment(g), c.alignment);
        EXPECT_EQ(bn_gguf_file_size(g), bytes.size());
        // 13 scalars + 12 arrays + 2 empty arrays (+ general.alignment), in file order.
        int64_t n_kv = 27 + (c.alignment != 32);
        ASSERT_EQ(bn_gguf_kv_count(g), n_kv);
        EXPECT_STREQ(bn_gguf_kv_key(g, 0), "s.u8");
        EXPECT_STREQ(bn_gguf_kv_key(g, n_kv - 1), "a.empty_str");
        EXPECT_EQ(bn_gguf_kv_key(g, n_kv), nullptr);
        EXPECT_EQ(bn_gguf_kv_type(g, -1), BN_GGUF_VTYPE_COUNT);
        for (int64_t i = 0; i < n_kv; i++) EXPECT_EQ(bn_gguf_find_key(g, bn_gguf_kv_key(g, i)), i);
        EXPECT_EQ(bn_gguf_find_key(g, "s.u"), -1);
        CheckScalars(g);
        CheckArrays(g);
        CheckTensors(g, c.alignment, bytes);
    }
}

INSTANTIATE_TEST_SUITE_P(Versions, GgufRoundTrip,
                         ::testing::Values(RoundTripCase{3, 32}, RoundTripCase{3, 64}, RoundTripCase{2, 32},
                                           RoundTripCase{2, 64}),
                         [](const auto &info) {
                             return "v" + std::to_string(info.param.version) + "_align" +
                                    std::to_string(info.param.alignment);
                         });

// ---------------------------------------------------------------------------
// Typed look-ups

TEST(GgufLookup, TypedGettersConvertOrNameBothTypes) {
    TempDir tmp;
    std::string path = tmp.file("rt.gguf");
    WriteRoundTrip(path, {3, 32});
    if (HasFatalFailure()) return;
    GgufPtr g = OpenFile(path);
    ASSERT_TRUE(g);
    bn_error err;
    int64_t i = 0;
    double d = 0;
    bn_gguf_str s{};
    uint64_t n = 0;
    int64_t idx = -1;

    EXPECT_OK(bn_gguf_get_int(g.get(), "s.i16", &i, &err), err);
    EXPECT_EQ(i, -30000);
    EXPECT_OK(bn_gguf_get_int(g.get(), "s.bool", &i, &err), err);
    EXPECT_EQ(i, 1);
    EXPECT_OK(bn_gguf_get_int(g.get(), "s.u32", &i, &err), err);
    EXPECT_EQ(i, 4000000000ll);
    EXPECT_EQ(bn_gguf_get_int(g.get(), "s.u64", &i, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("UINT64 value 9223372036854775813 does not fit int64"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_gguf_get_int(g.get(), "s.f32", &i, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("type FLOAT32 where an integer or BOOL was expected"), std::string::npos) << err.msg;
    EXPECT_NE(std::string(err.msg).find("(key 's.f32')"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_gguf_get_int(g.get(), "a.i32", &i, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("ARRAY of INT32"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_gguf_get_int(g.get(), "missing.key", &i, &err), BN_ERR_NOT_FOUND);
    EXPECT_NE(std::string(err.msg).find("key 'missing.key' not found"), std::string::npos) << err.msg;

    EXPECT_OK(bn_gguf_get_float(g.get(), "s.f32", &d, &err), err);
    EXPECT_EQ(d, 1.5);
    EXPECT_OK(bn_gguf_get_float(g.get(), "s.f64", &d, &err), err);
    EXPECT_EQ(d, -1e300);
    EXPECT_EQ(bn_gguf_get_float(g.get(), "s.i32", &d, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("INT32 where FLOAT32 or FLOAT64"), std::string::npos) << err.msg;

    EXPECT_OK(bn_gguf_get_str(g.get(), "s.str", &s, &err), err);
    EXPECT_EQ(Str(s), "héllo ✓");
    EXPECT_EQ(bn_gguf_get_str(g.get(), "a.str", &s, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("ARRAY of STRING where STRING"), std::string::npos) << err.msg;

    EXPECT_OK(bn_gguf_get_arr(g.get(), "a.str", BN_GGUF_STRING, &idx, &n, &err), err);
    EXPECT_EQ(n, 4u);
    EXPECT_EQ(idx, bn_gguf_find_key(g.get(), "a.str"));
    EXPECT_OK(bn_gguf_get_arr(g.get(), "a.f64", BN_GGUF_VTYPE_COUNT, &idx, &n, &err), err);
    EXPECT_EQ(n, 3u);
    EXPECT_EQ(bn_gguf_get_arr(g.get(), "a.f64", BN_GGUF_FLOAT32, &idx, &n, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("ARRAY of FLOAT64 where ARRAY of FLOAT32"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_gguf_get_arr(g.get(), "s.u8", BN_GGUF_VTYPE_COUNT, &idx, &n, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_gguf_get_arr(g.get(), "nope", BN_GGUF_UINT8, &idx, &n, &err), BN_ERR_NOT_FOUND);

    EXPECT_STREQ(bn_gguf_vtype_name(BN_GGUF_FLOAT64), "FLOAT64");
    EXPECT_STREQ(bn_gguf_vtype_name(BN_GGUF_VTYPE_COUNT), "unknown");
}

// ---------------------------------------------------------------------------
// Writer input validation

TEST(GgufWriter, RejectsBadInputAndRemovesPartialFiles) {
    TempDir tmp;
    std::string path = tmp.file("bad.gguf");
    bn_gguf_writer *w = nullptr;
    bn_error err;
    EXPECT_EQ(bn_gguf_writer_open(path.c_str(), 1, &w, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("cannot write GGUF version 1"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_gguf_writer_open((tmp.path() + "/no/such/dir.gguf").c_str(), 3, &w, &err), BN_ERR_IO);

    ASSERT_OK(bn_gguf_writer_open(path.c_str(), 3, &w, &err), err);
    auto expect = [&](bn_status got, bn_status want, const char *sub) {
        EXPECT_EQ(got, want) << err.msg;
        EXPECT_NE(std::string(err.msg).find(sub), std::string::npos) << "want '" << sub << "' in: " << err.msg;
        EXPECT_EQ(std::string(err.msg).rfind(path + ": ", 0), 0u) << err.msg;
    };
    ASSERT_OK(bn_gguf_writer_add_u32(w, "k", 1, &err), err);
    expect(bn_gguf_writer_add_u32(w, "k", 2, &err), BN_ERR_INVALID, "duplicate key 'k'");
    expect(bn_gguf_writer_add_str(w, "", "v", &err), BN_ERR_INVALID, "empty key");
    expect(bn_gguf_writer_add_u32(w, "general.alignment", 48, &err), BN_ERR_INVALID, "48 is not a nonzero power of two");
    expect(bn_gguf_writer_add_u32(w, "general.alignment", 0, &err), BN_ERR_INVALID, "0 is not a nonzero power of two");
    expect(bn_gguf_writer_add_i32(w, "general.alignment", 64, &err), BN_ERR_INVALID, "must be UINT32, not INT32");
    uint8_t two = 2;
    expect(bn_gguf_writer_add_scalar(w, "b", BN_GGUF_BOOL, &two, &err), BN_ERR_INVALID, "BOOL value 2");
    expect(bn_gguf_writer_add_scalar(w, "s", BN_GGUF_STRING, "x", &err), BN_ERR_INVALID, "not a numeric or BOOL type");
    expect(bn_gguf_writer_add_arr(w, "n", BN_GGUF_ARRAY, &two, 1, &err), BN_ERR_INVALID, "not a numeric or BOOL type");
    const char *strs[] = {"a", nullptr};
    expect(bn_gguf_writer_add_str_arr(w, "sa", strs, 2, &err), BN_ERR_INVALID, "string 1 is NULL");

    int64_t ne[5] = {128, 2, 1, 1, 1};
    ASSERT_OK(bn_gguf_writer_add_tensor(w, "t", BN_TYPE_I2_S, 2, ne, &err), err);
    expect(bn_gguf_writer_add_tensor(w, "t", BN_TYPE_F32, 1, ne, &err), BN_ERR_INVALID, "duplicate tensor 't'");
    expect(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_F32, 0, ne, &err), BN_ERR_INVALID, "n_dims 0");
    expect(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_F32, 5, ne, &err), BN_ERR_INVALID, "n_dims 5");
    expect(bn_gguf_writer_add_tensor(w, std::string(64, 'x').c_str(), BN_TYPE_F32, 1, ne, &err), BN_ERR_INVALID,
           "has 64 bytes");
    expect(bn_gguf_writer_add_tensor(w, "", BN_TYPE_F32, 1, ne, &err), BN_ERR_INVALID, "has 0 bytes");
    int64_t zero[2] = {4, 0}, neg[1] = {-4}, big[2] = {1ll << 40, 1ll << 40}, odd[1] = {100};
    expect(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_F32, 2, zero, &err), BN_ERR_INVALID, "ne[1] = 0");
    expect(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_F32, 1, neg, &err), BN_ERR_INVALID, "ne[0] = -4");
    expect(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_F32, 2, big, &err), BN_ERR_INVALID, "ne[1] = 1099511627776");
    expect(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_I2_S, 1, odd, &err), BN_ERR_INVALID,
           "not a multiple of the I2_S block size 128");
    expect(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_TL2, 1, ne, &err), BN_ERR_UNSUPPORTED, "TL2");
    expect(bn_gguf_writer_add_tensor(w, "u", 99, 1, ne, &err), BN_ERR_UNSUPPORTED, "unknown tensor type id");

    std::vector<uint8_t> d(128 * 2 / 4 + 32, 0);
    expect(bn_gguf_writer_write_tensor(w, d.data(), d.size() - 1, &err), BN_ERR_INVALID, "95 bytes given, 96 declared");
    ASSERT_OK(bn_gguf_writer_write_tensor(w, d.data(), d.size(), &err), err);
    expect(bn_gguf_writer_write_tensor(w, d.data(), d.size(), &err), BN_ERR_INVALID, "beyond the 1 declared tensors");
    expect(bn_gguf_writer_add_u32(w, "late", 1, &err), BN_ERR_INVALID, "added after tensor data");
    expect(bn_gguf_writer_add_tensor(w, "late", BN_TYPE_F32, 1, ne, &err), BN_ERR_INVALID, "declared after tensor data");
    ASSERT_OK(bn_gguf_writer_close(w, &err), err);
    GgufPtr g = OpenFile(path);  // the rejected calls left no trace
    ASSERT_TRUE(g);
    EXPECT_EQ(bn_gguf_kv_count(g.get()), 1);
    EXPECT_EQ(bn_gguf_tensor_count(g.get()), 1);

    // Unwritten tensors: close fails and removes the file; abort removes it too.
    std::string p2 = tmp.file("partial.gguf");
    ASSERT_OK(bn_gguf_writer_open(p2.c_str(), 3, &w, &err), err);
    ASSERT_OK(bn_gguf_writer_add_tensor(w, "t", BN_TYPE_F32, 1, ne, &err), err);
    EXPECT_EQ(bn_gguf_writer_close(w, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("only 0 of 1 declared tensors were written"), std::string::npos) << err.msg;
    EXPECT_NE(access(p2.c_str(), F_OK), 0);
    ASSERT_OK(bn_gguf_writer_open(p2.c_str(), 3, &w, &err), err);
    bn_gguf_writer_abort(w);
    EXPECT_NE(access(p2.c_str(), F_OK), 0);
}

// ---------------------------------------------------------------------------
// The shared model files. Expected numbers were computed once with
// /usr/bin/python3 and a 40-line struct.unpack GGUF parser written
// independently of gguf.c (header counts, per-type histogram, offsets, and
// selected values read straight from the bytes).

struct SharedFacts {
    const char *rel;
    const char *arch;
    int64_t n_kv, n_tensors;
    uint64_t data_offset, size;
    int n_f32, n_f16, n_i2s, n_tq1, n_tq2;
    uint64_t n_tokens;
};

const SharedFacts kShared[] = {
    {"models/tiny-bitnet-f32.gguf", "bitnet-b1.58", 21, 46, 14592, 9473280, 46, 0, 0, 0, 0, 512},
    {"models/tiny-bitnet-i2s.gguf", "bitnet-b1.58", 22, 46, 14624, 856224, 17, 1, 28, 0, 0, 512},
    {"models/tiny-bitnet-llamacpp-f32.gguf", "bitnet", 22, 46, 14560, 9473248, 46, 0, 0, 0, 0, 512},
    {"models/tiny-bitnet-llamacpp-silu-f32.gguf", "bitnet", 21, 46, 14496, 9473184, 46, 0, 0, 0, 0, 512},
    {"models/tiny-bitnet-llamacpp-tq1_0.gguf", "bitnet", 23, 46, 14592, 1030400, 18, 0, 0, 28, 0, 512},
    {"models/tiny-bitnet-llamacpp-tq2_0.gguf", "bitnet", 23, 46, 14592, 1134848, 18, 0, 0, 0, 28, 512},
    // Vocab only: no tensors, and the aligned data offset lies 3 bytes past the end.
    {"tokenizers/llama-spm/ggml-vocab-llama-spm.gguf", "llama", 22, 0, 723872, 723869, 0, 0, 0, 0, 0, 32000},
};

class GgufShared : public ::testing::TestWithParam<SharedFacts> {};

TEST_P(GgufShared, HeaderCountsAndTypes) {
    const SharedFacts &f = GetParam();
    REQUIRE_SHARED(path, f.rel);
    GgufPtr g = OpenFile(path);
    ASSERT_TRUE(g);
    bn_error err;
    EXPECT_EQ(bn_gguf_version(g.get()), 3u);
    EXPECT_EQ(bn_gguf_alignment(g.get()), 32u);
    EXPECT_EQ(bn_gguf_kv_count(g.get()), f.n_kv);
    EXPECT_EQ(bn_gguf_tensor_count(g.get()), f.n_tensors);
    EXPECT_EQ(bn_gguf_data_offset(g.get()), f.data_offset);
    EXPECT_EQ(bn_gguf_file_size(g.get()), f.size);
    bn_gguf_str arch{};
    ASSERT_OK(bn_gguf_get_str(g.get(), "general.architecture", &arch, &err), err);
    EXPECT_EQ(Str(arch), f.arch);
    std::map<uint32_t, int> hist;
    uint64_t end = 0;
    for (int64_t i = 0; i < bn_gguf_tensor_count(g.get()); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g.get(), i);
        hist[t->type]++;
        end = std::max(end, t->abs_offset + t->nbytes);
        EXPECT_EQ(bn_gguf_find_tensor(g.get(), t->name), t);
    }
    EXPECT_EQ(hist[BN_TYPE_F32], f.n_f32);
    EXPECT_EQ(hist[BN_TYPE_F16], f.n_f16);
    EXPECT_EQ(hist[BN_TYPE_I2_S], f.n_i2s);
    EXPECT_EQ(hist[BN_TYPE_TQ1_0], f.n_tq1);
    EXPECT_EQ(hist[BN_TYPE_TQ2_0], f.n_tq2);
    if (f.n_tensors) {
        EXPECT_EQ(end, f.size);  // every file ends with its last tensor
    }
    int64_t idx = -1;
    uint64_t n = 0;
    ASSERT_OK(bn_gguf_get_arr(g.get(), "tokenizer.ggml.tokens", BN_GGUF_STRING, &idx, &n, &err), err);
    EXPECT_EQ(n, f.n_tokens);
}

INSTANTIATE_TEST_SUITE_P(Files, GgufShared, ::testing::ValuesIn(kShared), [](const auto &info) {
    std::string s = info.param.rel;
    s = s.substr(s.rfind('/') + 1);
    for (char &c : s)
        if (!isalnum((unsigned char)c)) c = '_';
    return s;
});

TEST(GgufSharedFacts, TinyI2sModel) {
    REQUIRE_SHARED(path, "models/tiny-bitnet-i2s.gguf");
    GgufPtr g = OpenFile(path);
    ASSERT_TRUE(g);
    bn_error err;
    const bn_gguf_tensor *q = bn_gguf_find_tensor(g.get(), "blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->type, (uint32_t)BN_TYPE_I2_S);
    EXPECT_EQ(q->n_dims, 2u);
    EXPECT_EQ(q->ne[0], 256);
    EXPECT_EQ(q->ne[1], 256);
    EXPECT_EQ(q->nbytes, 256u * 256 / 4 + 32);
    EXPECT_EQ(q->offset, 264192u);
    EXPECT_EQ(static_cast<const uint8_t *>(q->data)[0], 69);
    float scale;
    memcpy(&scale, static_cast<const uint8_t *>(q->data) + 256 * 256 / 4, 4);
    EXPECT_EQ(scale, 0.050025928765535355f);
    const bn_gguf_tensor *e = bn_gguf_find_tensor(g.get(), "token_embd.weight");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e, bn_gguf_tensor_at(g.get(), 0));
    EXPECT_EQ(e->type, (uint32_t)BN_TYPE_F16);
    EXPECT_EQ(e->ne[0], 256);
    EXPECT_EQ(e->ne[1], 512);
    EXPECT_EQ(e->nbytes, 262144u);
    EXPECT_STREQ(bn_gguf_tensor_at(g.get(), 45)->name, "blk.3.ffn_down.weight");
    EXPECT_EQ(bn_gguf_tensor_at(g.get(), 45)->offset, 808800u);

    int64_t v = 0;
    ASSERT_OK(bn_gguf_get_int(g.get(), "general.file_type", &v, &err), err);
    EXPECT_EQ(v, 40);
    ASSERT_OK(bn_gguf_get_int(g.get(), "tokenizer.ggml.bos_token_id", &v, &err), err);
    EXPECT_EQ(v, 509);
    ASSERT_OK(bn_gguf_get_int(g.get(), "tokenizer.ggml.add_bos_token", &v, &err), err);
    EXPECT_EQ(v, 1);
    ASSERT_OK(bn_gguf_get_int(g.get(), "bitnet-b1.58.attention.head_count_kv", &v, &err), err);
    EXPECT_EQ(v, 2);
    double eps = 0;
    ASSERT_OK(bn_gguf_get_float(g.get(), "bitnet-b1.58.attention.layer_norm_rms_epsilon", &eps, &err), err);
    EXPECT_EQ(eps, 9.999999747378752e-06);
    int64_t idx;
    uint64_t n;
    ASSERT_OK(bn_gguf_get_arr(g.get(), "tokenizer.ggml.tokens", BN_GGUF_STRING, &idx, &n, &err), err);
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), idx, 0)), "!");
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), idx, 509)), "<|begin_of_text|>");
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), idx, 511)), "<|eot_id|>");
    ASSERT_OK(bn_gguf_get_arr(g.get(), "tokenizer.ggml.merges", BN_GGUF_STRING, &idx, &n, &err), err);
    EXPECT_EQ(n, 253u);
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), idx, 0)), "Ġ t");
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), idx, 252)), "Ġf orward");
}

TEST(GgufSharedFacts, TinyF32TokenEmbedding) {
    REQUIRE_SHARED(path, "models/tiny-bitnet-f32.gguf");
    GgufPtr g = OpenFile(path);
    ASSERT_TRUE(g);
    const bn_gguf_tensor *e = bn_gguf_find_tensor(g.get(), "token_embd.weight");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->nbytes, 256u * 512 * 4);
    const float *f = static_cast<const float *>(e->data);
    EXPECT_EQ(f[0], -0.8019183874130249f);
    EXPECT_EQ(f[256 * 512 - 1], 0.008869846351444721f);
}

TEST(GgufSharedFacts, LlamaSpmVocab) {
    REQUIRE_SHARED(path, "tokenizers/llama-spm/ggml-vocab-llama-spm.gguf");
    GgufPtr g = OpenFile(path);
    ASSERT_TRUE(g);
    bn_error err;
    int64_t idx;
    uint64_t n;
    ASSERT_OK(bn_gguf_get_arr(g.get(), "tokenizer.ggml.tokens", BN_GGUF_STRING, &idx, &n, &err), err);
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), idx, 0)), "<unk>");
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), idx, 3)), "<0x00>");
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), idx, 29871)), "\xe2\x96\x81");
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), idx, 31999)), "给");
    ASSERT_OK(bn_gguf_get_arr(g.get(), "tokenizer.ggml.scores", BN_GGUF_FLOAT32, &idx, &n, &err), err);
    EXPECT_EQ(n, 32000u);
    EXPECT_EQ(bn_gguf_kv_float(g.get(), idx, 31999), -31740.0);
    ASSERT_OK(bn_gguf_get_arr(g.get(), "tokenizer.ggml.token_type", BN_GGUF_INT32, &idx, &n, &err), err);
    EXPECT_EQ(bn_gguf_kv_int(g.get(), idx, 0), 2);
    EXPECT_EQ(bn_gguf_kv_int(g.get(), idx, 3), 6);
    EXPECT_EQ(bn_gguf_find_tensor(g.get(), "token_embd.weight"), nullptr);
}

// ---------------------------------------------------------------------------
// Speed: a LLaMA-3-sized vocabulary (128256 strings) is indexed at open.

// A 128256-string vocabulary (LLaMA-3's size) opens and every string is
// reachable by index with the right contents. (Its speed is a benchmark's
// business, not a unit test's.)
TEST(GgufPtr, LargeVocabularyIndexesEveryString) {
    TempDir tmp;
    std::string path = tmp.file("vocab.gguf");
    const uint64_t n = 128256;
    std::vector<std::string> toks(n);
    std::vector<const char *> ptrs(n);
    for (uint64_t i = 0; i < n; i++) {
        toks[i] = "tok" + std::to_string(i);
        ptrs[i] = toks[i].c_str();
    }
    bn_gguf_writer *w = nullptr;
    bn_error err;
    ASSERT_OK(bn_gguf_writer_open(path.c_str(), 3, &w, &err), err);
    ASSERT_OK(bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", ptrs.data(), n, &err), err);
    ASSERT_OK(bn_gguf_writer_close(w, &err), err);
    GgufPtr g = OpenFile(path);
    ASSERT_TRUE(g);
    EXPECT_EQ(bn_gguf_kv_count_elems(g.get(), 0), n);
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) total += bn_gguf_kv_str(g.get(), 0, i).len;
    uint64_t want = 0;
    for (const auto &t : toks) want += t.size();
    EXPECT_EQ(total, want);
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), 0, 70000)), "tok70000");
    EXPECT_EQ(Str(bn_gguf_kv_str(g.get(), 0, 128255)), "tok128255");
}

// ---------------------------------------------------------------------------
// Hostile corpus: mutants of a valid file written by the writer.

// Offsets of every field of a valid file, found by an independent walk, keyed
// "n_kv", "kv:<key>", "kv:<key>.type", ".elem", ".count", ".value",
// "t:<name>", "t:<name>.n_dims", ".ne0", ".ne1", ".type", ".offset".
std::map<std::string, size_t> Layout(const std::vector<uint8_t> &b) {
    std::map<std::string, size_t> at;
    size_t o = 24;
    auto u32 = [&](size_t p) { uint32_t v; memcpy(&v, &b[p], 4); return v; };
    auto u64 = [&](size_t p) { uint64_t v; memcpy(&v, &b[p], 8); return v; };
    auto str = [&]() { uint64_t n = u64(o); std::string s((const char *)&b[o + 8], n); o += 8 + n; return s; };
    const size_t esize[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    std::function<void(uint32_t)> value = [&](uint32_t t) {
        if (t == BN_GGUF_STRING) {
            str();
        } else if (t != BN_GGUF_ARRAY) {
            o += esize[t];
        }
    };
    at["n_tensors"] = 8;
    at["n_kv"] = 16;
    uint64_t n_t = u64(8), n_kv = u64(16);
    for (uint64_t i = 0; i < n_kv; i++) {
        size_t start = o;
        std::string k = "kv:" + str();
        at[k] = start;
        at[k + ".type"] = o;
        uint32_t t = u32(o);
        o += 4;
        if (t == BN_GGUF_ARRAY) {
            at[k + ".elem"] = o;
            at[k + ".count"] = o + 4;
            uint32_t et = u32(o);
            uint64_t n = u64(o + 4);
            o += 12;
            at[k + ".value"] = o;
            for (uint64_t j = 0; j < n; j++) value(et);
        } else {
            at[k + ".value"] = o;
            value(t);
        }
    }
    for (uint64_t i = 0; i < n_t; i++) {
        size_t start = o;
        std::string k = "t:" + str();
        at[k] = start;
        at[k + ".n_dims"] = o;
        uint32_t nd = u32(o);
        o += 4;
        for (uint32_t d = 0; d < nd; d++, o += 8) at[k + ".ne" + std::to_string(d)] = o;
        at[k + ".type"] = o;
        at[k + ".offset"] = o + 4;
        o += 12;
    }
    at["end"] = o;
    return at;
}

const std::string kLong = std::string(63, 'L');

std::vector<uint8_t> HostileBase() {
    TempDir tmp;
    std::string path = tmp.file("base.gguf");
    bn_gguf_writer *w = nullptr;
    bn_error err;
    EXPECT_OK(bn_gguf_writer_open(path.c_str(), 3, &w, &err), err);
    if (!w) return {};
    const int32_t arr[] = {1, 2, 3};
    const char *strs[] = {"x", "yz"};
    EXPECT_OK(bn_gguf_writer_add_u32(w, "general.alignment", 32, &err), err);
    EXPECT_OK(bn_gguf_writer_add_u32(w, "test.key_a", 7, &err), err);
    EXPECT_OK(bn_gguf_writer_add_u32(w, "test.key_b", 8, &err), err);
    EXPECT_OK(bn_gguf_writer_add_bool(w, "test.flag", true, &err), err);
    EXPECT_OK(bn_gguf_writer_add_str(w, "test.name", "tiny", &err), err);
    EXPECT_OK(bn_gguf_writer_add_arr(w, "test.arr", BN_GGUF_INT32, arr, 3, &err), err);
    EXPECT_OK(bn_gguf_writer_add_str_arr(w, "test.strs", strs, 2, &err), err);
    WriteTensors(w, {{"t.a", BN_TYPE_F32, 2, {4, 2}, 32},
                     {"t.b", BN_TYPE_I2_S, 2, {128, 2}, 96},
                     {"t.c", BN_TYPE_TQ2_0, 1, {256}, 66},
                     {kLong, BN_TYPE_F16, 1, {8}, 16}});
    EXPECT_OK(bn_gguf_writer_close(w, &err), err);
    return bptest::ReadFile(path);
}

struct Mutant {
    std::string name;
    std::function<void(std::vector<uint8_t> &)> edit;
    bn_status code;
    std::string expect;   // substring of the message
    int64_t offset = -1;  // expected "at byte offset N", or -1
};

void Put32(std::vector<uint8_t> &b, size_t at, uint32_t v) { memcpy(&b[at], &v, 4); }
void Put64(std::vector<uint8_t> &b, size_t at, uint64_t v) { memcpy(&b[at], &v, 8); }

// Opens `bytes` from an exact-size heap copy (so ASan sees any over-read)
// and through a file (mmap); both must fail with `code` and `expect`.
void ExpectRejected(const std::vector<uint8_t> &bytes, const std::string &label, bn_status code,
                    const std::string &expect, int64_t offset, bool via_file) {
    std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() ? bytes.size() : 1]);
    if (!bytes.empty()) memcpy(copy.get(), bytes.data(), bytes.size());
    bn_gguf *g = reinterpret_cast<bn_gguf *>(1);
    bn_error err;
    bn_status st = bn_gguf_open_memory(copy.get(), bytes.size(), "mutant.gguf", &g, &err);
    EXPECT_EQ(st, code) << label << ": " << err.msg;
    EXPECT_EQ(g, nullptr) << label;
    if (g) bn_gguf_close(g);
    std::string msg = err.msg;
    EXPECT_NE(msg.find(expect), std::string::npos) << label << ": want '" << expect << "' in: " << msg;
    EXPECT_EQ(msg.rfind("mutant.gguf: ", 0), 0u) << label << ": " << msg;
    EXPECT_NE(msg.find(" at byte offset "), std::string::npos) << label << ": " << msg;
    for (char ch : msg) EXPECT_GE((unsigned char)ch, 0x20) << label << ": control byte in: " << msg;
    if (offset >= 0) {
        EXPECT_NE(msg.find(" at byte offset " + std::to_string(offset) + " ("), std::string::npos)
            << label << ": want offset " << offset << " in: " << msg;
    }
    if (!via_file) return;
    TempDir tmp;
    std::string path = tmp.file("mutant.gguf");
    bptest::WriteFile(path, bytes);
    bn_error ferr;
    bn_gguf *fg = nullptr;
    EXPECT_EQ(bn_gguf_open(path.c_str(), &fg, &ferr), code) << label << ": " << ferr.msg;
    EXPECT_EQ(fg, nullptr);
    if (fg) bn_gguf_close(fg);
    // Same message, with the path as the file name.
    EXPECT_EQ(std::string(ferr.msg), path + msg.substr(strlen("mutant.gguf"))) << label;
}

TEST(GgufHostile, BaseFileIsValid) {
    std::vector<uint8_t> base = HostileBase();
    ASSERT_FALSE(base.empty());
    bn_gguf *g = nullptr;
    bn_error err;
    ASSERT_OK(bn_gguf_open_memory(base.data(), base.size(), "base", &g, &err), err);
    GgufPtr h(g);
    EXPECT_EQ(bn_gguf_kv_count(g), 7);
    EXPECT_EQ(bn_gguf_tensor_count(g), 4);
    auto at = Layout(base);
    EXPECT_EQ(bn_gguf_data_offset(g), (at["end"] + 31) / 32 * 32);
    EXPECT_EQ(bn_gguf_find_tensor(g, kLong.c_str())->nbytes, 16u);
}

TEST(GgufHostile, Mutants) {
    const std::vector<uint8_t> base = HostileBase();
    ASSERT_FALSE(base.empty());
    auto at = Layout(base);
    const uint64_t data_off = (at["end"] + 31) / 32 * 32;
    auto u64_at = [&](const std::string &k, uint64_t v) {
        return [k, v, &at](std::vector<uint8_t> &b) { Put64(b, at.at(k), v); };
    };
    auto u32_at = [&](const std::string &k, uint32_t v) {
        return [k, v, &at](std::vector<uint8_t> &b) { Put32(b, at.at(k), v); };
    };
    auto off = [&](const std::string &k) { return (int64_t)at.at(k); };
    const uint64_t huge = 1ull << 60;
    uint64_t t_a, t_b;
    memcpy(&t_a, &base[at["t:t.a.offset"]], 8);
    memcpy(&t_b, &base[at["t:t.b.offset"]], 8);
    ASSERT_EQ(t_a, 0u);
    ASSERT_EQ(t_b, 32u);
    const std::string L = "t:" + kLong;

    std::vector<Mutant> ms = {
        {"magic", [](auto &b) { b[0] = 'X'; }, BN_ERR_FORMAT, "bad magic 58 47 55 46 (not a GGUF file)", 0},
        {"version 0", [](auto &b) { Put32(b, 4, 0); }, BN_ERR_UNSUPPORTED, "GGUF version 0 is not supported", 4},
        {"version 1", [](auto &b) { Put32(b, 4, 1); }, BN_ERR_UNSUPPORTED, "GGUF version 1 is not supported", 4},
        {"version 4", [](auto &b) { Put32(b, 4, 4); }, BN_ERR_UNSUPPORTED, "GGUF version 4 is not supported", 4},
        {"byte-swapped", [](auto &b) { Put32(b, 4, 0x03000000u); }, BN_ERR_UNSUPPORTED,
         "byte-swapped (big-endian) GGUF is not supported", 4},
        {"n_tensors -1", u64_at("n_tensors", ~0ull), BN_ERR_FORMAT, "negative n_tensors -1", 8},
        {"n_tensors huge", u64_at("n_tensors", huge), BN_ERR_FORMAT,
         "n_tensors 1152921504606846976 (at least 33 bytes each) and n_kv 7 (at least 14 bytes each) do not fit", 8},
        {"n_kv -1", u64_at("n_kv", ~0ull), BN_ERR_FORMAT, "negative n_kv -1", 16},
        {"n_kv huge", u64_at("n_kv", huge), BN_ERR_FORMAT, "n_kv 1152921504606846976 (at least 14 bytes each) does not fit", 16},
        {"n_kv INT64_MAX", u64_at("n_kv", (uint64_t)INT64_MAX), BN_ERR_FORMAT, "n_kv 9223372036854775807 (at least 14 bytes each) does not fit", 16},
        {"key length huge", u64_at("kv:general.alignment", 1ull << 63), BN_ERR_FORMAT,
         "key length 9223372036854775808 exceeds the", 24},
        {"key length 0", u64_at("kv:general.alignment", 0), BN_ERR_FORMAT, "empty key", 24},
        {"key with NUL", [&](auto &b) { b[at["kv:test.key_a"] + 8 + 4] = 0; }, BN_ERR_FORMAT,
         "key contains a NUL byte", off("kv:test.key_a")},
        {"duplicate key", [&](auto &b) { b[at["kv:test.key_b"] + 8 + 9] = 'a'; }, BN_ERR_FORMAT,
         "duplicate key (first at byte offset " + std::to_string(at["kv:test.key_a"]) + ")", off("kv:test.key_b")},
        {"value type 13", u32_at("kv:test.key_a.type", 13), BN_ERR_FORMAT, "unknown value type 13",
         off("kv:test.key_a.type")},
        {"control byte in a key", [&](auto &b) { b[at["kv:test.key_a"] + 8 + 4] = 0x1b; Put32(b, at["kv:test.key_a.type"], 13); },
         BN_ERR_FORMAT, "unknown value type 13 at byte offset " + std::to_string(at["kv:test.key_a.type"]) +
         " (key 'test?key_a')"},
        {"value type -1", u32_at("kv:test.key_a.type", 0xFFFFFFFFu), BN_ERR_FORMAT, "unknown value type 4294967295",
         off("kv:test.key_a.type")},
        {"nested array", u32_at("kv:test.arr.elem", BN_GGUF_ARRAY), BN_ERR_FORMAT, "nested array",
         off("kv:test.arr.elem")},
        {"array elem type 13", u32_at("kv:test.arr.elem", 13), BN_ERR_FORMAT, "unknown array element type 13",
         off("kv:test.arr.elem")},
        {"array count huge", u64_at("kv:test.arr.count", 1ull << 62), BN_ERR_FORMAT,
         "4611686018427387904 INT32 values (4 bytes each) do not fit", off("kv:test.arr.value")},
        {"string array count huge", u64_at("kv:test.strs.count", huge), BN_ERR_FORMAT,
         "1152921504606846976 strings (at least 8 bytes each) do not fit", off("kv:test.strs.value")},
        {"string value length huge", u64_at("kv:test.name.value", ~0ull), BN_ERR_FORMAT,
         "string length 18446744073709551615 exceeds", off("kv:test.name.value")},
        {"string element length huge", u64_at("kv:test.strs.value", 1ull << 40), BN_ERR_FORMAT,
         "string length 1099511627776 exceeds", off("kv:test.strs.value")},
        {"bool 2", [&](auto &b) { b[at["kv:test.flag.value"]] = 2; }, BN_ERR_FORMAT, "BOOL value 2 (must be 0 or 1)",
         off("kv:test.flag.value")},
        {"bool 255", [&](auto &b) { b[at["kv:test.flag.value"]] = 255; }, BN_ERR_FORMAT, "BOOL value 255",
         off("kv:test.flag.value")},
        {"alignment 48", u32_at("kv:general.alignment.value", 48), BN_ERR_FORMAT,
         "general.alignment 48 is not a nonzero power of two"},
        {"alignment 0", u32_at("kv:general.alignment.value", 0), BN_ERR_FORMAT,
         "general.alignment 0 is not a nonzero power of two"},
        {"alignment INT32", u32_at("kv:general.alignment.type", BN_GGUF_INT32), BN_ERR_FORMAT,
         "general.alignment has type INT32 (must be UINT32)"},
        {"alignment FLOAT32", u32_at("kv:general.alignment.type", BN_GGUF_FLOAT32), BN_ERR_FORMAT,
         "general.alignment has type FLOAT32 (must be UINT32)"},
        {"alignment 64 misplaces t.b", u32_at("kv:general.alignment.value", 64), BN_ERR_FORMAT,
         "tensor data offset 32 is not a multiple of the alignment 64", off("t:t.b.offset")},
        {"n_dims 0", u32_at("t:t.a.n_dims", 0), BN_ERR_FORMAT, "n_dims 0 (must be 1..4)", off("t:t.a.n_dims")},
        {"n_dims 5", u32_at("t:t.a.n_dims", 5), BN_ERR_FORMAT, "n_dims 5 (must be 1..4)", off("t:t.a.n_dims")},
        {"ne negative", u64_at("t:t.a.ne0", (uint64_t)-128), BN_ERR_FORMAT, "ne[0] = -128 (dimensions must be >= 1)",
         off("t:t.a.ne0")},
        {"ne 0", u64_at("t:t.a.ne1", 0), BN_ERR_FORMAT, "ne[1] = 0 (dimensions must be >= 1)", off("t:t.a.ne1")},
        {"ne overflow",
         [&](auto &b) {
             Put64(b, at["t:t.a.ne0"], 1ull << 40);
             Put64(b, at["t:t.a.ne1"], 1ull << 40);
         },
         BN_ERR_FORMAT, "element count overflows int64 at ne[1] = 1099511627776", off("t:t.a.ne1")},
        {"bytes overflow", u64_at("t:t.a.ne0", 1ull << 61), BN_ERR_FORMAT, "byte size overflows", off("t:t.a.type")},
        {"I2_S ne0 64", u64_at("t:t.b.ne0", 64), BN_ERR_FORMAT, "ne[0] = 64 is not a multiple of the I2_S block size 128",
         off("t:t.b.type")},
        {"TQ2_0 ne0 128", u64_at("t:t.c.ne0", 128), BN_ERR_FORMAT,
         "ne[0] = 128 is not a multiple of the TQ2_0 block size 256", off("t:t.c.type")},
        {"type 99", u32_at("t:t.a.type", 99), BN_ERR_UNSUPPORTED, "tensor type 99 (unknown): unknown tensor type id",
         off("t:t.a.type")},
        {"type TL1 (38)", u32_at("t:t.b.type", BN_TYPE_TL1), BN_ERR_UNSUPPORTED, "TL1 (bitnet.cpp LUT format",
         off("t:t.b.type")},
        {"type TL2 (39)", u32_at("t:t.b.type", BN_TYPE_TL2), BN_ERR_UNSUPPORTED, "TL2 (bitnet.cpp LUT format",
         off("t:t.b.type")},
        {"type Q8_K", u32_at("t:t.a.type", BN_TYPE_Q8_K), BN_ERR_UNSUPPORTED, "Q8_K is an activation type",
         off("t:t.a.type")},
        {"type Q4_0", u32_at("t:t.a.type", 2), BN_ERR_UNSUPPORTED, "Q4_0 is not a BitNet tensor type", off("t:t.a.type")},
        {"offset misaligned", u64_at("t:t.b.offset", 33), BN_ERR_FORMAT,
         "tensor data offset 33 is not a multiple of the alignment 32", off("t:t.b.offset")},
        {"offset beyond file", u64_at("t:t.b.offset", 1ull << 40), BN_ERR_FORMAT, "extends beyond the end of file",
         off("t:t.b.offset")},
        {"offset straddles end", u64_at("t:t.b.offset", base.size() - data_off - 32), BN_ERR_FORMAT,
         "extends beyond the end of file", off("t:t.b.offset")},
        {"offset wraps", u64_at("t:t.b.offset", ~31ull), BN_ERR_FORMAT, "extends beyond the end of file",
         off("t:t.b.offset")},
        {"overlap same offset", u64_at("t:t.b.offset", 0), BN_ERR_FORMAT, "overlaps tensor 't.a' [0, 32)",
         (int64_t)(data_off + 0)},
        {"overlap partial", u64_at("t:t.c.offset", 64), BN_ERR_FORMAT, "tensor data [64, 130) overlaps tensor 't.b' [32, 128)",
         (int64_t)(data_off + 64)},
        {"duplicate tensor name", [&](auto &b) { b[at["t:t.b"] + 8 + 2] = 'a'; }, BN_ERR_FORMAT, "duplicate tensor name",
         (int64_t)(data_off + 32)},
        {"tensor name 64 bytes", u64_at(L, 64), BN_ERR_FORMAT, "tensor name of 64 bytes (at most 63 allowed)", off(L)},
        {"tensor name empty", u64_at("t:t.a", 0), BN_ERR_FORMAT, "empty tensor name", off("t:t.a")},
        {"tensor name length huge", u64_at("t:t.a", 1ull << 50), BN_ERR_FORMAT,
         "tensor name length 1125899906842624 exceeds", off("t:t.a")},
        {"tensor name with NUL", [&](auto &b) { b[at["t:t.c"] + 8 + 1] = 0; }, BN_ERR_FORMAT,
         "tensor name contains a NUL byte", off("t:t.c")},
        {"one tensor too many", [&](auto &b) { Put64(b, 8, 5); }, BN_ERR_FORMAT, "(tensor 4)"},
        {"one kv too few", [&](auto &b) { Put64(b, 16, 6); }, BN_ERR_FORMAT, "n_dims 9 (must be 1..4)",
         off("kv:test.strs.type")},
        {"empty file", [](auto &b) { b.clear(); }, BN_ERR_FORMAT, "unexpected end of file reading magic", 0},
    };
    EXPECT_GE(ms.size(), 40u);
    for (const Mutant &m : ms) {
        std::vector<uint8_t> b = base;
        m.edit(b);
        ExpectRejected(b, m.name, m.code, m.expect, m.offset, true);
    }
}

// Truncation at every byte of the header region and at sampled points of the
// data: rejected while a tensor's bytes are cut off; accepted once only the
// final padding is missing (tensors need not be followed by padding).
TEST(GgufHostile, TruncationAtEveryHeaderByte) {
    const std::vector<uint8_t> base = HostileBase();
    ASSERT_FALSE(base.empty());
    bn_gguf *g = nullptr;
    bn_error err;
    ASSERT_OK(bn_gguf_open_memory(base.data(), base.size(), "base", &g, &err), err);
    uint64_t data_off = bn_gguf_data_offset(g), last_end = 0;
    for (int64_t i = 0; i < bn_gguf_tensor_count(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        last_end = std::max(last_end, t->abs_offset + t->nbytes);
    }
    bn_gguf_close(g);
    std::vector<size_t> cuts;
    for (size_t n = 0; n <= data_off; n++) cuts.push_back(n);
    for (size_t n = data_off + 1; n < base.size(); n += 7) cuts.push_back(n);
    cuts.push_back(last_end - 1);
    cuts.push_back(last_end);
    cuts.push_back(base.size() - 1);
    int rejected = 0, accepted = 0;
    for (size_t n : cuts) {
        std::vector<uint8_t> b(base.begin(), base.begin() + n);
        if (n < last_end) {
            ExpectRejected(b, "cut at " + std::to_string(n), BN_ERR_FORMAT, "end of file", -1, false);
            rejected++;
        } else {
            std::unique_ptr<uint8_t[]> copy(new uint8_t[n]);
            memcpy(copy.get(), b.data(), n);
            EXPECT_OK(bn_gguf_open_memory(copy.get(), n, "cut", &g, &err), err) << "cut at " << n;
            bn_gguf_close(g);
            accepted++;
        }
    }
    EXPECT_GT(rejected, 300);
    EXPECT_GE(accepted, 2);
}

// Every single-byte value at every header position: no crash, and either a
// valid file or one well-formed error line.
TEST(GgufHostile, ByteFlipsInHeaderNeverCrash) {
    const std::vector<uint8_t> base = HostileBase();
    ASSERT_FALSE(base.empty());
    const size_t end = Layout(base)["end"];
    const uint8_t vals[] = {0x00, 0x01, 0x02, 0x09, 0x0d, 0x3f, 0x40, 0x7f, 0x80, 0xff};
    int errors = 0;
    for (size_t p = 0; p < end; p++)
        for (uint8_t v : vals) {
            std::unique_ptr<uint8_t[]> b(new uint8_t[base.size()]);
            memcpy(b.get(), base.data(), base.size());
            b[p] = v;
            bn_gguf *g = nullptr;
            bn_error err;
            bn_status st = bn_gguf_open_memory(b.get(), base.size(), "flip.gguf", &g, &err);
            if (st == BN_OK) {
                bn_gguf_close(g);
                continue;
            }
            errors++;
            std::string msg = err.msg;
            ASSERT_EQ(msg.rfind("flip.gguf: ", 0), 0u) << p << ": " << msg;
            ASSERT_NE(msg.find(" at byte offset "), std::string::npos) << p << ": " << msg;
            ASSERT_EQ(msg.find('\n'), std::string::npos);
        }
    EXPECT_GT(errors, 1000);
}

// The same errors whether the file is mapped or read into memory.
TEST(GgufHostile, OpenReportsIoErrors) {
    for (bn_gguf_load how : {BN_GGUF_LOAD_MMAP, BN_GGUF_LOAD_MEMORY}) {
        SCOPED_TRACE(how == BN_GGUF_LOAD_MMAP ? "mmap" : "memory");
        bn_gguf *g = reinterpret_cast<bn_gguf *>(1);
        bn_error err;
        EXPECT_EQ(bn_gguf_open_with("/nonexistent/x.gguf", how, &g, &err), BN_ERR_IO);
        EXPECT_EQ(g, nullptr);
        EXPECT_NE(std::string(err.msg).find("/nonexistent/x.gguf: cannot open"), std::string::npos) << err.msg;
        TempDir tmp;
        EXPECT_EQ(bn_gguf_open_with(tmp.path().c_str(), how, &g, &err), BN_ERR_IO);
        EXPECT_NE(std::string(err.msg).find("not a regular file"), std::string::npos) << err.msg;
        std::string empty = tmp.file("empty.gguf");
        bptest::WriteFile(empty, "", 0);
        EXPECT_EQ(bn_gguf_open_with(empty.c_str(), how, &g, &err), BN_ERR_FORMAT);
        EXPECT_NE(std::string(err.msg).find("unexpected end of file reading magic (needs 4 bytes, 0 left) at byte offset 0 (header)"),
                  std::string::npos)
            << err.msg;
    }
    bn_gguf *g = reinterpret_cast<bn_gguf *>(1);
    bn_error err;
    EXPECT_EQ(bn_gguf_open_with("/nonexistent/x.gguf", static_cast<bn_gguf_load>(7), &g, &err), BN_ERR_INVALID);
    EXPECT_EQ(g, nullptr);
    EXPECT_STREQ(err.msg, "/nonexistent/x.gguf: unknown load mode 7");
}

TEST(Gguf, LoadModeParses) {
    bn_gguf_load how = BN_GGUF_LOAD_MEMORY;
    EXPECT_TRUE(bn_gguf_load_parse("mmap", &how));
    EXPECT_EQ(how, BN_GGUF_LOAD_MMAP);
    EXPECT_TRUE(bn_gguf_load_parse("memory", &how));
    EXPECT_EQ(how, BN_GGUF_LOAD_MEMORY);
    for (const char *bad : {"", "MMAP", "mem", "memory ", "read"}) EXPECT_FALSE(bn_gguf_load_parse(bad, &how)) << bad;
}

// ---------------------------------------------------------------------------
// Fuzz seeds: tests/fuzz/seeds/gguf/ holds files produced by this writer code;
// BITPARITY_REGEN_SEEDS=1 rewrites them.

void WriteSeed(const std::string &path, int which) {
    bn_gguf_writer *w = nullptr;
    bn_error err;
    ASSERT_OK(bn_gguf_writer_open(path.c_str(), which == 3 ? 2 : 3, &w, &err), err);
    if (which == 1) {
        const uint8_t u8 = 9;
        const int8_t i8 = -9;
        const uint16_t u16 = 999;
        const int16_t i16 = -999;
        const uint64_t u64 = 99999;
        const int64_t i64 = -99999;
        const double f64 = 0.25;
        const float fa[] = {1.0f, -2.0f};
        const char *strs[] = {"<s>", "", "▁a"};
        ASSERT_OK(bn_gguf_writer_add_scalar(w, "u8", BN_GGUF_UINT8, &u8, &err), err);
        ASSERT_OK(bn_gguf_writer_add_scalar(w, "i8", BN_GGUF_INT8, &i8, &err), err);
        ASSERT_OK(bn_gguf_writer_add_scalar(w, "u16", BN_GGUF_UINT16, &u16, &err), err);
        ASSERT_OK(bn_gguf_writer_add_scalar(w, "i16", BN_GGUF_INT16, &i16, &err), err);
        ASSERT_OK(bn_gguf_writer_add_u32(w, "u32", 9, &err), err);
        ASSERT_OK(bn_gguf_writer_add_i32(w, "i32", -9, &err), err);
        ASSERT_OK(bn_gguf_writer_add_f32(w, "f32", 0.5f, &err), err);
        ASSERT_OK(bn_gguf_writer_add_bool(w, "b", false, &err), err);
        ASSERT_OK(bn_gguf_writer_add_str(w, "s", "str", &err), err);
        ASSERT_OK(bn_gguf_writer_add_scalar(w, "u64", BN_GGUF_UINT64, &u64, &err), err);
        ASSERT_OK(bn_gguf_writer_add_scalar(w, "i64", BN_GGUF_INT64, &i64, &err), err);
        ASSERT_OK(bn_gguf_writer_add_scalar(w, "f64", BN_GGUF_FLOAT64, &f64, &err), err);
        ASSERT_OK(bn_gguf_writer_add_arr(w, "fa", BN_GGUF_FLOAT32, fa, 2, &err), err);
        ASSERT_OK(bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", strs, 3, &err), err);
    } else if (which == 2) {
        ASSERT_OK(bn_gguf_writer_add_str(w, "general.architecture", "bitnet-b1.58", &err), err);
        WriteTensors(w, {{"f32", BN_TYPE_F32, 2, {4, 2}, 32},
                         {"f16", BN_TYPE_F16, 1, {8}, 16},
                         {"bf16", BN_TYPE_BF16, 1, {4}, 8},
                         {"q8", BN_TYPE_Q8_0, 1, {32}, 34},
                         {"i2s", BN_TYPE_I2_S, 2, {128, 2}, 96},
                         {"tq1", BN_TYPE_TQ1_0, 1, {256}, 54},
                         {"tq2", BN_TYPE_TQ2_0, 1, {256}, 66}});
    } else if (which == 3) {
        ASSERT_OK(bn_gguf_writer_add_u32(w, "general.alignment", 64, &err), err);
        WriteTensors(w, {{"w", BN_TYPE_F32, 4, {1, 2, 1, 2}, 16}});
    }
    ASSERT_OK(bn_gguf_writer_close(w, &err), err);
}

TEST(GgufFuzzSeeds, MatchTheWriter) {
    const char *names[] = {"empty.gguf", "kv-all.gguf", "tensors.gguf", "v2-align64.gguf"};
    const char *regen = getenv("BITPARITY_REGEN_SEEDS");
    TempDir tmp;
    size_t total = 0;
    for (int i = 0; i < 4; i++) {
        std::string fresh = tmp.file(names[i]);
        WriteSeed(fresh, i);
        if (HasFatalFailure()) return;
        std::string committed = bptest::SourcePath(std::string("tests/fuzz/seeds/gguf/") + names[i]);
        std::vector<uint8_t> want = bptest::ReadFile(fresh);
        if (regen && *regen == '1') bptest::WriteFile(committed, want);
        EXPECT_EQ(bptest::ReadFile(committed), want) << committed << " is stale: rerun with BITPARITY_REGEN_SEEDS=1";
        GgufPtr g = OpenFile(fresh);
        EXPECT_TRUE(g) << names[i];
        total += want.size();
    }
    EXPECT_LT(total, 20u * 1024);
}

}  // namespace
