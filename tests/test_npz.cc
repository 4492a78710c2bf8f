// test_npz.cc — the zip/npy container: writer -> reader and numpy round trips,
// numpy-written archives, ZIP64, and hostile archives (suite NpzHostile).
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>

#include <zlib.h>

#include "test_helpers.h"

extern "C" {
#include "bitnet/npz.h"
#include "bitnet/quant.h"
}

using bptest::TempDir;

namespace {


NpzPtr Open(const std::string &path, bn_status *st, bn_error *err) {
    npz_reader *r = nullptr;
    *st = npz_open(path.c_str(), &r, err);
    return NpzPtr(r);
}

NpzPtr OpenMem(const std::vector<uint8_t> &buf, bn_status *st, bn_error *err) {
    npz_reader *r = nullptr;
    *st = npz_open_memory(buf.data(), buf.size(), "mem.npz", &r, err);
    return NpzPtr(r);
}

// Runs a Python script with Debian's numpy; returns its stdout (test fails on a
// non-zero exit).
std::string Python(const TempDir &dir, const std::string &script) {
    bptest::WriteFile(dir.file("script.py"), script.data(), script.size());
    auto r = bptest::RunShell(std::string(BITPARITY_PYTHON) + " '" + dir.file("script.py") + "'");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
}

// Contents of the sample archive: one array per dtype plus raw bytes.
struct Sample {
    std::vector<float> f32;     // [3,4] k * 0.5 - 2
    std::vector<uint16_t> f16;  // [5] f16 of k * 0.25 - 0.5
    std::vector<int8_t> i8;     // [2,128] -128..127
    std::vector<int32_t> i32;   // [4] k * 1000003 - 7
    std::vector<double> f64;    // [2] 1/3, -1e300
    Sample() {
        for (int k = 0; k < 12; k++) f32.push_back(k * 0.5f - 2.0f);
        for (int k = 0; k < 5; k++) f16.push_back(bn_f32_to_f16(k * 0.25f - 0.5f));
        for (int k = 0; k < 256; k++) i8.push_back((int8_t)(k - 128));
        for (int k = 0; k < 4; k++) i32.push_back(k * 1000003 - 7);
        f64 = {1.0 / 3.0, -1e300};
    }
};

const char kMeta[] = "trace: bitparity/v1\nnote: raw bytes member\n";

void AddSample(npz_writer *w) {
    Sample s;
    bn_error err{};
    const int64_t s34[] = {3, 4}, s5[] = {5}, s2x128[] = {2, 128}, s4[] = {4}, s2[] = {2}, s05[] = {0, 5};
    const float scalar = 42.5f;
    EXPECT_OK(npz_writer_add_array(w, "e0/f32.npy", NPZ_F32, s34, 2, s.f32.data(), &err), err);
    EXPECT_OK(npz_writer_add_array(w, "e0/f16.npy", NPZ_F16, s5, 1, s.f16.data(), &err), err);
    EXPECT_OK(npz_writer_add_array(w, "e0/blk.0.attn_q.in_q8.npy", NPZ_I8, s2x128, 2, s.i8.data(), &err),
              err);
    EXPECT_OK(npz_writer_add_array(w, "e1/i32.npy", NPZ_I32, s4, 1, s.i32.data(), &err), err);
    EXPECT_OK(npz_writer_add_array(w, "e1/f64.npy", NPZ_F64, s2, 1, s.f64.data(), &err), err);
    EXPECT_OK(npz_writer_add_array(w, "scalar.npy", NPZ_F32, nullptr, 0, &scalar, &err), err);
    EXPECT_OK(npz_writer_add_array(w, "empty.npy", NPZ_F32, s05, 2, nullptr, &err), err);
    // a duplicate is refused and does not poison the writer
    EXPECT_EQ(npz_writer_add_array(w, "e0/f32.npy", NPZ_F32, s34, 2, s.f32.data(), &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("duplicate member 'e0/f32.npy'"), std::string::npos) << err.msg;
    EXPECT_OK(npz_writer_add_bytes(w, "meta.yaml", kMeta, sizeof kMeta - 1, &err), err);
    EXPECT_EQ(npz_writer_count(w), 8);
}

void WriteSample(const std::string &path, npz_compression comp) {
    bn_error err{};
    npz_writer *w = nullptr;
    ASSERT_OK(npz_writer_open(path.c_str(), comp, &w, &err), err);
    AddSample(w);
    ASSERT_OK(npz_writer_close(w, &err), err);
}

template <class T>
std::vector<T> LoadAs(const npz_reader *r, const char *name, npz_dtype dtype, std::vector<int64_t> shape) {
    bn_error err{};
    int64_t i = npz_find(r, name);
    EXPECT_GE(i, 0) << name;
    npz_array a{};
    EXPECT_OK(npz_load_array(r, i, &a, &err), err);
    EXPECT_EQ(a.info.dtype, dtype) << name;
    EXPECT_EQ(a.info.ndim, (int)shape.size()) << name;
    for (size_t d = 0; d < shape.size() && d < NPZ_MAX_DIMS; d++)
        EXPECT_EQ(a.info.shape[d], shape[d]) << name;
    std::vector<T> v(a.info.nelem);
    if (a.info.nelem) memcpy(v.data(), a.data, a.info.nbytes);
    npz_array_free(&a);
    return v;
}

void CheckSample(const std::string &path, uint16_t method) {
    bn_status st;
    bn_error err{};
    NpzPtr r = Open(path, &st, &err);
    ASSERT_OK(st, err);
    Sample s;
    ASSERT_EQ(npz_count(r.get()), 8);
    EXPECT_STREQ(npz_member_at(r.get(), 0)->name, "e0/f32.npy");  // file order kept
    EXPECT_EQ(npz_member_at(r.get(), 0)->method, method);
    EXPECT_EQ(LoadAs<float>(r.get(), "e0/f32.npy", NPZ_F32, {3, 4}), s.f32);
    EXPECT_EQ(LoadAs<uint16_t>(r.get(), "e0/f16.npy", NPZ_F16, {5}), s.f16);
    EXPECT_EQ(LoadAs<int8_t>(r.get(), "e0/blk.0.attn_q.in_q8.npy", NPZ_I8, {2, 128}), s.i8);
    EXPECT_EQ(LoadAs<int32_t>(r.get(), "e1/i32.npy", NPZ_I32, {4}), s.i32);
    EXPECT_EQ(LoadAs<double>(r.get(), "e1/f64.npy", NPZ_F64, {2}), s.f64);
    EXPECT_EQ(LoadAs<float>(r.get(), "scalar.npy", NPZ_F32, {}), std::vector<float>{42.5f});
    EXPECT_TRUE(LoadAs<float>(r.get(), "empty.npy", NPZ_F32, {0, 5}).empty());
    int64_t mi = npz_find(r.get(), "meta.yaml");
    ASSERT_GE(mi, 0);
    std::string meta(npz_member_at(r.get(), mi)->size, '\0');
    EXPECT_OK(npz_read(r.get(), mi, meta.data(), meta.size(), &err), err);
    EXPECT_EQ(meta, kMeta);
    EXPECT_EQ(npz_find(r.get(), "e0/f32"), -1);
    EXPECT_EQ(npz_find(r.get(), "nope.npy"), -1);
}

// --- round trips ------------------------------------------------------------

TEST(Npz, WriterReaderRoundTripDeflate) {
    TempDir dir;
    WriteSample(dir.file("a.npz"), NPZ_DEFLATE_FAST);
    CheckSample(dir.file("a.npz"), 8);
}

TEST(Npz, WriterReaderRoundTripStored) {
    TempDir dir;
    WriteSample(dir.file("a.npz"), NPZ_STORED);
    CheckSample(dir.file("a.npz"), 0);
}

// An anonymous writer holds the very bytes a file writer publishes, and
// close_open reads them back without anything on disk.
TEST(Npz, AnonymousWriterMatchesTheFileByteForByte) {
    TempDir dir;
    for (npz_compression comp : {NPZ_STORED, NPZ_DEFLATE_FAST}) {
        WriteSample(dir.file("a.npz"), comp);
        bn_error err{};
        npz_writer *w = nullptr;
        ASSERT_OK(npz_writer_open_anonymous("sample in memory", comp, &w, &err), err);
        AddSample(w);
        npz_reader *raw = nullptr;
        ASSERT_OK(npz_writer_close_open(w, &raw, &err), err);
        NpzPtr r(raw);
        EXPECT_STREQ(npz_path(r.get()), "sample in memory");
        uint64_t size = 0;
        const uint8_t *bytes = static_cast<const uint8_t *>(npz_bytes(r.get(), &size));
        EXPECT_EQ(std::vector<uint8_t>(bytes, bytes + size), bptest::ReadFile(dir.file("a.npz")));
        EXPECT_EQ(npz_count(r.get()), 8);
        // a file writer's close_open opens the published file
        ASSERT_OK(npz_writer_open(dir.file("b.npz").c_str(), comp, &w, &err), err);
        AddSample(w);
        ASSERT_OK(npz_writer_close_open(w, &raw, &err), err);
        NpzPtr b(raw);
        EXPECT_STREQ(npz_path(b.get()), dir.file("b.npz").c_str());
        EXPECT_EQ(npz_count(b.get()), 8);
    }
    EXPECT_EQ(bptest::ReadFile(dir.file("a.npz")), bptest::ReadFile(dir.file("b.npz")));
}

TEST(Npz, NpyHeaderIsNumpyLayout) {
    // numpy's own header for a (3, 4) float32: 64-byte aligned, ends in '\n'.
    TempDir dir;
    WriteSample(dir.file("a.npz"), NPZ_STORED);
    bn_status st;
    bn_error err{};
    NpzPtr r = Open(dir.file("a.npz"), &st, &err);
    ASSERT_OK(st, err);
    char buf[128];
    uint64_t got = 0;
    ASSERT_OK(npz_read_prefix(r.get(), 0, buf, sizeof buf, &got, &err), err);
    ASSERT_EQ(got, 128u);
    const char want[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    EXPECT_EQ(std::string(buf + 10, sizeof want - 1), want);
    // 10 + 60 + '\n' padded to 128: header_len 118, spaces, then '\n'
    EXPECT_EQ((uint8_t)buf[8], 118);
    EXPECT_EQ(buf[9], 0);
    EXPECT_EQ(buf[126], ' ');
    EXPECT_EQ(buf[127], '\n');
}

TEST(Npz, NumpyLoadsWriterOutput) {
    for (npz_compression comp : {NPZ_DEFLATE_FAST, NPZ_STORED}) {
        TempDir dir;
        WriteSample(dir.file("a.npz"), comp);
        std::string out = Python(dir, R"PY(
import numpy as np, zipfile, sys
path = sys.argv[0].replace('script.py', 'a.npz')
z = zipfile.ZipFile(path)
print('testzip', z.testzip())
print('methods', sorted(set(i.compress_type for i in z.infolist())))
d = np.load(path)
print('files', ' '.join(d.files))
print('f32', d['e0/f32'].dtype.str, d['e0/f32'].shape, d['e0/f32'].sum())
print('f16', d['e0/f16'].dtype.str, d['e0/f16'].tolist())
q = d['e0/blk.0.attn_q.in_q8']
print('i8', q.dtype.str, q.shape, int(q.astype(np.int64).sum()), int(q[1, 127]))
print('i32', d['e1/i32'].tolist())
print('f64', repr(d['e1/f64'][0]), d['e1/f64'][1])
print('scalar', d['scalar'].shape, float(d['scalar']))
print('empty', d['empty'].shape)
print('meta', repr(z.read('meta.yaml').decode()))
import io
b = io.BytesIO(); np.save(b, d['e0/f32'])
print('same_bytes_as_np_save', z.read('e0/f32.npy') == b.getvalue())
)PY");
        std::string method = comp == NPZ_STORED ? "[0]" : "[8]";
        EXPECT_NE(out.find("testzip None\n"), std::string::npos) << out;
        EXPECT_NE(out.find("methods " + method + "\n"), std::string::npos) << out;
        EXPECT_NE(out.find("files e0/f32 e0/f16 e0/blk.0.attn_q.in_q8 e1/i32 e1/f64 scalar empty meta.yaml"),
                  std::string::npos)
            << out;
        EXPECT_NE(out.find("f32 <f4 (3, 4) 9.0\n"), std::string::npos) << out;  // sum of k/2-2, k<12
        EXPECT_NE(out.find("f16 <f2 [-0.5, -0.25, 0.0, 0.25, 0.5]\n"), std::string::npos) << out;
        EXPECT_NE(out.find("i8 |i1 (2, 128) -128 127\n"), std::string::npos) << out;
        EXPECT_NE(out.find("i32 [-7, 999996, 1999999, 3000002]\n"), std::string::npos) << out;
        EXPECT_NE(out.find("f64 0.3333333333333333 -1e+300\n"), std::string::npos) << out;
        EXPECT_NE(out.find("scalar () 42.5\n"), std::string::npos) << out;
        EXPECT_NE(out.find("empty (0, 5)\n"), std::string::npos) << out;
        EXPECT_NE(out.find("same_bytes_as_np_save True\n"), std::string::npos) << out;
        EXPECT_NE(out.find("meta 'trace: bitparity/v1\\nnote: raw bytes member\\n'"), std::string::npos)
            << out;
    }
}

// numpy.savez / savez_compressed (force_zip64 local headers) and npy format
// 2.0 / 3.0 members written by numpy.lib.format.
TEST(Npz, ReadsNumpyWrittenArchives) {
    TempDir dir;
    Python(dir, R"PY(
import numpy as np, zipfile, sys
d = sys.argv[0].replace('script.py', '')
arrs = dict(a=np.arange(24, dtype='<f4').reshape(2, 3, 4) * 0.5,
            h=np.array([1.5, -2.0, 65504.0], dtype='<f2'),
            q=np.arange(-5, 5, dtype='i1').reshape(2, 5),
            i=np.array([[7, -9]], dtype='<i4'),
            big=np.linspace(0, 1, 100000, dtype='<f4'))
np.savez(d + 'plain.npz', **arrs)
np.savez_compressed(d + 'comp.npz', **arrs)
with zipfile.ZipFile(d + 'v23.npz', 'w', zipfile.ZIP_DEFLATED) as z:
    with z.open('v2.npy', 'w') as f:
        np.lib.format.write_array(f, np.arange(6, dtype='<f4').reshape(3, 2), version=(2, 0))
    with z.open('v3.npy', 'w') as f:
        np.lib.format.write_array(f, np.arange(4, dtype='<i4'), version=(3, 0))
)PY");
    for (const char *name : {"plain.npz", "comp.npz"}) {
        bn_status st;
        bn_error err{};
        NpzPtr r = Open(dir.file(name), &st, &err);
        ASSERT_OK(st, err) << name;
        ASSERT_EQ(npz_count(r.get()), 5);
        EXPECT_EQ(npz_member_at(r.get(), 0)->method, strcmp(name, "comp.npz") == 0 ? 8 : 0);
        auto a = LoadAs<float>(r.get(), "a.npy", NPZ_F32, {2, 3, 4});
        for (int k = 0; k < 24; k++) EXPECT_EQ(a[k], k * 0.5f);
        auto h = LoadAs<uint16_t>(r.get(), "h.npy", NPZ_F16, {3});
        EXPECT_EQ(bn_f16_to_f32(h[0]), 1.5f);
        EXPECT_EQ(bn_f16_to_f32(h[2]), 65504.0f);
        EXPECT_EQ(LoadAs<int8_t>(r.get(), "q.npy", NPZ_I8, {2, 5}),
                  (std::vector<int8_t>{-5, -4, -3, -2, -1, 0, 1, 2, 3, 4}));
        EXPECT_EQ(LoadAs<int32_t>(r.get(), "i.npy", NPZ_I32, {1, 2}), (std::vector<int32_t>{7, -9}));
        auto big = LoadAs<float>(r.get(), "big.npy", NPZ_F32, {100000});
        EXPECT_EQ(big[0], 0.0f);
        EXPECT_EQ(big[99999], 1.0f);
    }
    bn_status st;
    bn_error err{};
    NpzPtr r = Open(dir.file("v23.npz"), &st, &err);
    ASSERT_OK(st, err);
    EXPECT_EQ(LoadAs<float>(r.get(), "v2.npy", NPZ_F32, {3, 2}), (std::vector<float>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(LoadAs<int32_t>(r.get(), "v3.npy", NPZ_I32, {4}), (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(Npz, ChunkedReadDeliversEverythingAndStopsOnCallbackError) {
    TempDir dir;
    bn_error err{};
    npz_writer *w = nullptr;
    std::vector<float> big(300000);
    for (size_t k = 0; k < big.size(); k++) big[k] = std::sin((float)k);
    const int64_t shape[] = {(int64_t)big.size()};
    ASSERT_OK(npz_writer_open(dir.file("b.npz").c_str(), NPZ_DEFLATE_FAST, &w, &err), err);
    ASSERT_OK(npz_writer_add_array(w, "big.npy", NPZ_F32, shape, 1, big.data(), &err), err);
    ASSERT_OK(npz_writer_close(w, &err), err);
    bn_status st;
    NpzPtr r = Open(dir.file("b.npz"), &st, &err);
    ASSERT_OK(st, err);
    struct Acc {
        std::string bytes;
        int calls = 0;
        int fail_at = -1;
    } acc;
    auto fn = [](void *ud, const void *data, size_t n, bn_error *e) -> bn_status {
        auto *a = static_cast<Acc *>(ud);
        if (a->calls++ == a->fail_at) return bn_error_set(e, BN_ERR_IO, "consumer gave up");
        a->bytes.append(static_cast<const char *>(data), n);
        return BN_OK;
    };
    ASSERT_OK(npz_read_chunks(r.get(), 0, fn, &acc, &err), err);
    EXPECT_GT(acc.calls, 2);  // 1.2 MB arrives in pieces
    npz_array_info info;
    ASSERT_OK(npz_array_info_at(r.get(), 0, &info, &err), err);
    ASSERT_EQ(acc.bytes.size(), info.data_offset + big.size() * 4);
    EXPECT_EQ(memcmp(acc.bytes.data() + info.data_offset, big.data(), big.size() * 4), 0);
    Acc stop;
    stop.fail_at = 1;
    EXPECT_EQ(npz_read_chunks(r.get(), 0, fn, &stop, &err), BN_ERR_IO);
    EXPECT_STREQ(err.msg, "consumer gave up");
    EXPECT_EQ(stop.calls, 2);
}

// More than 65535 members: ZIP64 end records both ways.
TEST(Npz, Zip64ManyMembers) {
    TempDir dir;
    const int n = 70000;
    bn_error err{};
    npz_writer *w = nullptr;
    ASSERT_OK(npz_writer_open(dir.file("many.npz").c_str(), NPZ_STORED, &w, &err), err);
    for (int k = 0; k < n; k++) {
        char name[32];
        snprintf(name, sizeof name, "e%d/t.npy", k);
        const int32_t v = k * 3;
        const int64_t shape[] = {1};
        ASSERT_OK(npz_writer_add_array(w, name, NPZ_I32, shape, 1, &v, &err), err);
    }
    ASSERT_OK(npz_writer_close(w, &err), err);
    bn_status st;
    NpzPtr r = Open(dir.file("many.npz"), &st, &err);
    ASSERT_OK(st, err);
    ASSERT_EQ(npz_count(r.get()), n);
    EXPECT_EQ(LoadAs<int32_t>(r.get(), "e69999/t.npy", NPZ_I32, {1}), std::vector<int32_t>{69999 * 3});
    std::string out = Python(dir, R"PY(
import numpy as np, zipfile, sys
d = sys.argv[0].replace('script.py', '')
z = zipfile.ZipFile(d + 'many.npz')
print('count', len(z.infolist()))
print('last', int(np.load(d + 'many.npz')['e69999/t'][0]))
with zipfile.ZipFile(d + 'py.npz', 'w') as o:
    for k in range(70000):
        o.writestr('m%d' % k, b'x%d' % k)
)PY");
    EXPECT_NE(out.find("count 70000\nlast 209997\n"), std::string::npos) << out;
    NpzPtr p = Open(dir.file("py.npz"), &st, &err);
    ASSERT_OK(st, err);
    ASSERT_EQ(npz_count(p.get()), 70000);
    int64_t i = npz_find(p.get(), "m65537");
    ASSERT_EQ(i, 65537);
    char buf[16] = {};
    EXPECT_OK(npz_read(p.get(), i, buf, sizeof buf, &err), err);
    EXPECT_STREQ(buf, "x65537");
}

// --- hand-built archives -------------------------------------------------------

void Put16(std::vector<uint8_t> &b, uint32_t v) {
    b.push_back(v & 0xFF);
    b.push_back((v >> 8) & 0xFF);
}
void Put32(std::vector<uint8_t> &b, uint32_t v) {
    Put16(b, v & 0xFFFF);
    Put16(b, v >> 16);
}
void Put64(std::vector<uint8_t> &b, uint64_t v) {
    Put32(b, (uint32_t)v);
    Put32(b, (uint32_t)(v >> 32));
}
uint32_t Get32(const std::vector<uint8_t> &b, size_t at) {
    return b[at] | b[at + 1] << 8 | b[at + 2] << 16 | (uint32_t)b[at + 3] << 24;
}
void Set32(std::vector<uint8_t> &b, size_t at, uint32_t v) {
    for (int k = 0; k < 4; k++) b[at + k] = (uint8_t)(v >> (8 * k));
}

// One stored member whose central entry keeps its sizes and offset in a ZIP64
// extra field (0xFFFFFFFF in the 32-bit slots), as writers do past 4 GiB.
std::vector<uint8_t> StoredZip64Extra(const std::string &name, const std::string &data) {
    std::vector<uint8_t> b;
    const uint32_t crc = (uint32_t)crc32(0, (const Bytef *)data.data(), (uInt)data.size());
    Put32(b, 0x04034b50);
    Put16(b, 45), Put16(b, 0), Put16(b, 0), Put16(b, 0), Put16(b, 0x21);
    Put32(b, crc), Put32(b, (uint32_t)data.size()), Put32(b, (uint32_t)data.size());
    Put16(b, (uint32_t)name.size()), Put16(b, 0);
    b.insert(b.end(), name.begin(), name.end());
    b.insert(b.end(), data.begin(), data.end());
    size_t cd = b.size();
    Put32(b, 0x02014b50);
    Put16(b, 45), Put16(b, 45), Put16(b, 0), Put16(b, 0), Put16(b, 0), Put16(b, 0x21);
    Put32(b, crc), Put32(b, 0xFFFFFFFF), Put32(b, 0xFFFFFFFF);
    Put16(b, (uint32_t)name.size()), Put16(b, 28), Put16(b, 0), Put16(b, 0), Put16(b, 0);
    Put32(b, 0), Put32(b, 0xFFFFFFFF);
    b.insert(b.end(), name.begin(), name.end());
    Put16(b, 1), Put16(b, 24), Put64(b, data.size()), Put64(b, data.size()), Put64(b, 0);
    size_t cd_size = b.size() - cd;
    Put32(b, 0x06054b50);
    Put32(b, 0), Put16(b, 1), Put16(b, 1), Put32(b, (uint32_t)cd_size), Put32(b, (uint32_t)cd);
    Put16(b, 0);
    return b;
}

TEST(Npz, Zip64ExtraFieldsInCentralDirectory) {
    auto buf = StoredZip64Extra("hello.txt", "zip64 extra fields");
    bn_status st;
    bn_error err{};
    NpzPtr r = OpenMem(buf, &st, &err);
    ASSERT_OK(st, err);
    const npz_member *m = npz_member_at(r.get(), 0);
    EXPECT_EQ(m->size, 18u);
    EXPECT_EQ(m->comp_size, 18u);
    EXPECT_EQ(m->local_offset, 0u);
    char out[18];
    ASSERT_OK(npz_read(r.get(), 0, out, sizeof out, &err), err);
    EXPECT_EQ(std::string(out, 18), "zip64 extra fields");
}

// --- hostile archives ------------------------------------------------------------

// The sample archive (deflated) in memory, with the offsets tests patch.
struct Victim {
    std::vector<uint8_t> buf;
    size_t eocd, cd;  // EOCD and first central entry
    size_t data0;     // first member's data
    Victim() {
        TempDir dir;
        WriteSample(dir.file("v.npz"), NPZ_DEFLATE_FAST);
        buf = bptest::ReadFile(dir.file("v.npz"));
        eocd = buf.size() - 22;
        cd = Get32(buf, eocd + 16);
        data0 = 30 + strlen("e0/f32.npy");
    }
};

// Opens buf and reads every member (as an array when it has a .npy name);
// returns the first failure's status and message.
bn_status OpenAndReadAll(const std::vector<uint8_t> &buf, std::string *msg) {
    bn_error err{};
    npz_reader *raw = nullptr;
    bn_status st = npz_open_memory(buf.data(), buf.size(), "hostile.npz", &raw, &err);
    NpzPtr r(raw);
    for (int64_t i = 0; !st && i < npz_count(r.get()); i++) {
        const npz_member *m = npz_member_at(r.get(), i);
        if (strstr(m->name, ".npy")) {
            npz_array a;
            st = npz_load_array(r.get(), i, &a, &err);
            npz_array_free(&a);
        } else {
            std::vector<uint8_t> out(m->size);
            st = npz_read(r.get(), i, out.data(), out.size(), &err);
        }
    }
    *msg = err.msg;
    return st;
}

#define EXPECT_HOSTILE(buf, status, substr)                        \
    do {                                                           \
        std::string msg_;                                          \
        EXPECT_EQ(OpenAndReadAll((buf), &msg_), (status)) << msg_; \
        EXPECT_NE(msg_.find(substr), std::string::npos) << msg_;   \
    } while (0)

TEST(NpzHostile, VictimIsValid) {
    Victim v;
    std::string msg;
    EXPECT_EQ(OpenAndReadAll(v.buf, &msg), BN_OK) << msg;
}

TEST(NpzHostile, TruncatedAtEveryLength) {
    Victim v;
    for (size_t len = 0; len < v.buf.size(); len++) {
        std::vector<uint8_t> t(v.buf.begin(), v.buf.begin() + len);
        std::string msg;
        bn_status st = OpenAndReadAll(t, &msg);
        EXPECT_NE(st, BN_OK) << "length " << len;
        EXPECT_NE(msg.find("hostile.npz"), std::string::npos) << msg;
    }
    EXPECT_HOSTILE(std::vector<uint8_t>(v.buf.begin(), v.buf.begin() + 10), BN_ERR_FORMAT,
                   "too small for a zip");
    EXPECT_HOSTILE(std::vector<uint8_t>(v.buf.begin(), v.buf.end() - 1), BN_ERR_FORMAT,
                   "no end-of-central-directory record");
}

TEST(NpzHostile, BadEndRecord) {
    Victim v;
    auto b = v.buf;
    Set32(b, v.eocd + 16, (uint32_t)b.size());  // directory offset past its end
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "runs past its end record");
    b = v.buf;
    b[v.eocd + 10] = 0xFF, b[v.eocd + 11] = 0xFF, b[v.eocd + 8] = 0xFF, b[v.eocd + 9] = 0xFF;
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "claims 65535 members");
    b = v.buf;
    b[v.eocd + 4] = 1;  // disk number
    EXPECT_HOSTILE(b, BN_ERR_UNSUPPORTED, "multi-disk");
    b = v.buf;
    Set32(b, v.cd, 0x12345678);
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "central directory entry 0 at offset");
    // a ZIP64 locator pointing past the file
    b = v.buf;
    std::vector<uint8_t> loc;
    Put32(loc, 0x07064b50), Put32(loc, 0), Put64(loc, 1ull << 40), Put32(loc, 1);
    b.insert(b.begin() + v.eocd, loc.begin(), loc.end());
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "ZIP64 end record offset 1099511627776");
}

TEST(NpzHostile, MemberOffsetsAndSizes) {
    Victim v;
    auto b = v.buf;
    Set32(b, v.cd + 42, (uint32_t)b.size() + 100);  // local header past EOF
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "member 'e0/f32.npy': data");
    b = v.buf;
    Set32(b, v.cd + 20, 0xFFFFFF00);  // compressed size past the directory
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "runs past the central directory");
    b = v.buf;
    Set32(b, v.cd + 24, 0xFFFFFF00);  // 4 GiB from ~100 deflated bytes
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "is impossible for");
    b = v.buf;
    Set32(b, v.cd + 42, 1);  // local header somewhere inside member data
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "bad local header signature at offset 1");
    b = v.buf;
    b[30] ^= 0x20;  // local name differs from the central one
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "disagrees with the central directory");
    b = v.buf;
    b[v.cd + 10] = 12;  // bzip2
    EXPECT_HOSTILE(b, BN_ERR_UNSUPPORTED, "compression method 12");
    b = v.buf;
    b[v.cd + 8] |= 1;
    EXPECT_HOSTILE(b, BN_ERR_UNSUPPORTED, "encrypted");
    b = v.buf;
    Set32(b, v.cd + 20, 0xFFFFFFFF);  // ZIP64 marker without the extra field
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "ZIP64 extra field");
}

TEST(NpzHostile, CrcAndDeflateStream) {
    Victim v;
    auto b = v.buf;
    Set32(b, v.cd + 16, Get32(b, v.cd + 16) ^ 1);
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "member 'e0/f32.npy': CRC-32 mismatch");
    b = v.buf;
    b[v.data0] = 0xFF;  // block type 3 does not exist
    EXPECT_HOSTILE(b, BN_ERR_FORMAT,
                   "member 'e0/f32.npy': bad deflate stream after 0 bytes: invalid block type");
    b = v.buf;
    Set32(b, v.cd + 20, Get32(b, v.cd + 20) / 2);  // stream cut in half
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "deflate stream truncated");
    b = v.buf;
    Set32(b, v.cd + 24, Get32(b, v.cd + 24) - 4);  // declared smaller than it inflates
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "inflates to more than the declared 172 bytes");
    b = v.buf;
    Set32(b, v.cd + 24, Get32(b, v.cd + 24) + 4);  // declared larger
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "inflates to 176 bytes, declared 180");
}

TEST(NpzHostile, DuplicateNames) {
    auto a = StoredZip64Extra("x.npy", "1");
    // Two copies of the same central entry: build by hand from the template.
    std::vector<uint8_t> b(a.begin(), a.begin() + 36);  // local header + name + data
    size_t cd = b.size();
    std::vector<uint8_t> entry(a.begin() + 36, a.end() - 22);
    b.insert(b.end(), entry.begin(), entry.end());
    b.insert(b.end(), entry.begin(), entry.end());
    Put32(b, 0x06054b50), Put32(b, 0), Put16(b, 2), Put16(b, 2);
    Put32(b, (uint32_t)(2 * entry.size())), Put32(b, (uint32_t)cd), Put16(b, 0);
    EXPECT_HOSTILE(b, BN_ERR_FORMAT, "member 'x.npy': duplicate member name");
}

TEST(NpzHostile, RandomByteFlipsNeverCrash) {
    Victim v;
    std::mt19937 rng(1234);
    int failed = 0;
    const int iters = 3000;
    for (int it = 0; it < iters; it++) {
        auto b = v.buf;
        int flips = 1 + (int)(rng() % 4);
        for (int k = 0; k < flips; k++) b[rng() % b.size()] ^= (uint8_t)(1 + rng() % 255);
        std::string msg;
        if (OpenAndReadAll(b, &msg) != BN_OK) {
            failed++;
            EXPECT_NE(msg.find("hostile.npz"), std::string::npos) << msg;
        }
    }
    // Most bytes are member data guarded by the CRC; a few flips land in
    // fields nobody checks (timestamps, version made by, header padding).
    EXPECT_GT(failed, iters * 7 / 10);
}

// A .npy held in memory: magic, version 1.0, the dict, then `data` bytes.
std::vector<uint8_t> Npy(const std::string &dict, size_t data, uint8_t major = 1) {
    std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', major, 0};
    Put16(b, (uint32_t)dict.size());
    b.insert(b.end(), dict.begin(), dict.end());
    b.resize(b.size() + data);
    return b;
}

bn_status ParseNpy(const std::vector<uint8_t> &b, npz_array_info *info, std::string *msg) {
    bn_error err{};
    bn_status st = npz_parse_npy_header(b.data(), b.size(), b.size(), "t.npz: member 'x.npy'", info, &err);
    *msg = err.msg;
    return st;
}

TEST(NpzHostile, NpyHeaders) {
    npz_array_info info;
    std::string msg;
    // accepted spellings
    ASSERT_EQ(ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }\n", 48), &info, &msg),
              BN_OK)
        << msg;
    EXPECT_EQ(info.ndim, 2);
    EXPECT_EQ(info.shape[0], 3);
    EXPECT_EQ(info.shape[1], 4);
    EXPECT_EQ(info.nelem, 12);
    EXPECT_EQ(info.data_offset, 10u + 60u);  // magic+len, 59-byte dict, newline
    ASSERT_EQ(ParseNpy(Npy("{\"shape\":(5,),\"descr\":\"|i1\",\"fortran_order\":False}", 5), &info, &msg),
              BN_OK)
        << msg;
    EXPECT_EQ(info.dtype, NPZ_I8);
    EXPECT_EQ(info.ndim, 1);
    ASSERT_EQ(ParseNpy(Npy("{'descr': '<f2', 'fortran_order': False, 'shape': ()}", 2), &info, &msg), BN_OK)
        << msg;
    EXPECT_EQ(info.ndim, 0);
    EXPECT_EQ(info.nelem, 1);

    struct Case {
        std::string dict;
        size_t data;
        bn_status st;
        const char *substr;
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", 48, BN_ERR_UNSUPPORTED,
         "fortran_order"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }", 48, BN_ERR_UNSUPPORTED, "big-endian"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", 24, BN_ERR_UNSUPPORTED, "object arrays"},
        {"{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }", 6, BN_ERR_UNSUPPORTED,
         "dtype '<u2' not supported"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", 12, BN_ERR_FORMAT,
         "no structured dtypes"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 40, BN_ERR_FORMAT,
         "member 'x.npy': shape of 12 <f4 elements needs 48 data bytes, the member holds 40"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 0, BN_ERR_FORMAT,
         "shape product overflows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0, BN_ERR_FORMAT,
         "shape must be a tuple"},
        {"{'descr': '<f4', 'shape': (3,), }", 12, BN_ERR_FORMAT, "missing key"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", 12, BN_ERR_FORMAT,
         "unknown or repeated key"},
        {"{'descr': '<f4', 'descr': '<f4', 'shape': (3,)}", 12, BN_ERR_FORMAT, "unknown or repeated key"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4, BN_ERR_FORMAT,
         "at most 8 integers"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), } junk", 12, BN_ERR_FORMAT,
         "junk after the dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", 12, BN_ERR_FORMAT, "expected ',' or '}'"},
        {"['descr']", 12, BN_ERR_FORMAT, "expected '{'"},
        {"{'descr': '<f4', 'fortran_order': maybe, 'shape': (3,)}", 12, BN_ERR_FORMAT, "True or False"},
    };
    for (const auto &c : cases) {
        EXPECT_EQ(ParseNpy(Npy(c.dict, c.data), &info, &msg), c.st) << c.dict;
        EXPECT_NE(msg.find(c.substr), std::string::npos) << c.dict << " -> " << msg;
        EXPECT_NE(msg.find("t.npz: member 'x.npy'"), std::string::npos) << msg;
    }
    auto b = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 12);
    b[0] = 'X';
    EXPECT_EQ(ParseNpy(b, &info, &msg), BN_ERR_FORMAT);
    EXPECT_NE(msg.find("bad magic"), std::string::npos) << msg;
    EXPECT_EQ(ParseNpy(Npy("{}", 0, 4), &info, &msg), BN_ERR_UNSUPPORTED);
    EXPECT_NE(msg.find(".npy format 4.0 not supported"), std::string::npos) << msg;
    b = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 12);
    b[8] = 0xFF, b[9] = 0x7F;  // header length past the member
    EXPECT_EQ(ParseNpy(b, &info, &msg), BN_ERR_FORMAT);
    EXPECT_NE(msg.find("runs past the"), std::string::npos) << msg;
}

// A member whose .npy disagrees with its size, through the whole reader.
TEST(NpzHostile, NpyShapeMismatchInArchive) {
    TempDir dir;
    bn_error err{};
    npz_writer *w = nullptr;
    ASSERT_OK(npz_writer_open(dir.file("m.npz").c_str(), NPZ_DEFLATE_FAST, &w, &err), err);
    auto npy = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 8), }", 60);
    ASSERT_OK(npz_writer_add_bytes(w, "e0/bad.npy", npy.data(), npy.size(), &err), err);
    ASSERT_OK(npz_writer_close(w, &err), err);
    std::string msg;
    EXPECT_HOSTILE(bptest::ReadFile(dir.file("m.npz")), BN_ERR_FORMAT,
                   "member 'e0/bad.npy': shape of 16 <f4 elements needs 64 data bytes, the member holds 60");
}

TEST(NpzHostile, MissingFileAndNotAZip) {
    bn_status st;
    bn_error err{};
    NpzPtr r = Open("/nonexistent/x.npz", &st, &err);
    EXPECT_EQ(st, BN_ERR_IO);
    EXPECT_NE(std::string(err.msg).find("/nonexistent/x.npz: cannot open"), std::string::npos) << err.msg;
    std::vector<uint8_t> text(1000, 'a');
    EXPECT_HOSTILE(text, BN_ERR_FORMAT, "no end-of-central-directory record in the last 1000 bytes");
}

}  // namespace
