// test_trace.cc — traces: the shared bitnet.cpp / llama.cpp ggml-nodes traces,
// the canonical writer (-> reader, -> numpy/yaml), Python-written canonical
// traces, and malformed meta.yaml / index.tsv (suite TraceMalformed).
#include <cmath>
#include <cstring>

#include "test_helpers.h"

extern "C" {
#include "bitnet/quant.h"
#include "parity/trace.h"
}

using bptest::TempDir;

namespace {


TracePtr OpenTrace(const std::string &path, bn_status *st, bn_error *err) {
    parity_trace *t = nullptr;
    *st = parity_trace_open(path.c_str(), &t, err);
    return TracePtr(t);
}

struct F32 {
    std::vector<float> v;
    npz_array_info info{};
};

F32 Load(const parity_trace *t, int64_t k, const std::string &name) {
    F32 out;
    bn_error err{};
    float *d = nullptr;
    EXPECT_OK(parity_trace_load_f32(t, k, name.c_str(), &d, &out.info, &err), err);
    if (d) out.v.assign(d, d + out.info.nelem);
    free(d);
    return out;
}

double Sum(const std::vector<float> &v) {
    double s = 0;
    for (float x : v) s += x;
    return s;
}

std::vector<int64_t> Shape(const npz_array_info &i) {
    return std::vector<int64_t>(i.shape, i.shape + i.ndim);
}

// numpy shape of a ggml node: ne reversed, leading 1s dropped (at least 1 dim).
std::vector<int64_t> ShapeOfNe(const int64_t ne[4]) {
    std::vector<int64_t> s = {ne[3], ne[2], ne[1], ne[0]};
    while (s.size() > 1 && s[0] == 1) s.erase(s.begin());
    return s;
}

// --- the shared traces --------------------------------------------------------

TEST(TracePtr, BitnetCppI2sP1Facts) {
    REQUIRE_SHARED(path, "reference-traces/bitnetcpp/i2s/p1.npz");
    bn_status st;
    bn_error err{};
    TracePtr t = OpenTrace(path, &st, &err);
    ASSERT_OK(st, err);
    EXPECT_EQ(parity_trace_layout(t.get()), PARITY_LAYOUT_GGML_NODES);
    EXPECT_EQ(npz_count(parity_trace_npz(t.get())), 469);
    ASSERT_EQ(parity_trace_eval_count(t.get()), 3);
    const parity_eval *e0 = parity_trace_eval(t.get(), 0);
    EXPECT_STREQ(e0->id, "e0");
    EXPECT_EQ(std::vector<int32_t>(e0->tokens, e0->tokens + e0->n_tokens),
              (std::vector<int32_t>{509, 12, 300, 45, 78, 260, 301, 99, 400, 13, 271, 88}));
    EXPECT_EQ(e0->p0, 0);
    const parity_eval *e2 = parity_trace_eval(t.get(), 2);
    EXPECT_EQ(e2->n_tokens, 1);
    EXPECT_EQ(e2->tokens[0], 184);
    EXPECT_EQ(e2->p0, 13);
    EXPECT_EQ(parity_trace_eval(t.get(), 3), nullptr);

    EXPECT_STREQ(parity_trace_get(t.get(), "producer.name"), "bitnet.cpp");
    EXPECT_STREQ(parity_trace_get(t.get(), "model.sha256"),
                 "e2ceb51649f0cccd2fb389a7cabc0c4fa68ed51e01fa9acd4c8a4357b8215db1");
    EXPECT_STREQ(parity_trace_get(t.get(), "settings.kv_cache"), "K f16, V f16");
    EXPECT_STREQ(parity_trace_get(t.get(), "layout"), "ggml-nodes");  // comment not included
    EXPECT_EQ(parity_trace_get(t.get(), "settings"), nullptr);        // a mapping, not a scalar
    int64_t threads = 0;
    EXPECT_OK(parity_trace_get_int(t.get(), "settings.threads", &threads, &err), err);
    EXPECT_EQ(threads, 2);
    EXPECT_EQ(parity_trace_get_int(t.get(), "settings.kv_cache", &threads, &err), BN_ERR_FORMAT);
    EXPECT_NE(std::string(err.msg).find("meta.yaml:10: settings.kv_cache: expected an integer"),
              std::string::npos)
        << err.msg;
    EXPECT_EQ(parity_trace_get_int(t.get(), "settings.nope", &threads, &err), BN_ERR_NOT_FOUND);
    int64_t ng = 0;
    const int32_t *g = parity_trace_greedy_tokens(t.get(), &ng);
    ASSERT_EQ(ng, 16);
    EXPECT_EQ(g[0], 381);
    EXPECT_EQ(g[1], 184);
    EXPECT_EQ(g[15], 161);
    EXPECT_EQ(parity_trace_tap_count(t.get()), 0);  // ggml-nodes lists nodes instead

    ASSERT_EQ(parity_trace_node_count(t.get(), 0), 154);
    const parity_node *n3 = parity_trace_node(t.get(), 0, 3);
    EXPECT_EQ(n3->seq, 3);
    EXPECT_STREQ(n3->name, "Qcur-0");
    EXPECT_STREQ(n3->op, "MUL_MAT");
    EXPECT_STREQ(n3->type, "f32");
    EXPECT_EQ(n3->ne[0], 256);
    EXPECT_EQ(n3->ne[1], 12);
    EXPECT_STREQ(n3->src0, "blk.0.attn_q.weight");
    EXPECT_STREQ(n3->src1, "attn_norm-0");
    EXPECT_STREQ(n3->member, "e0/0003_Qcur-0.npy");
    EXPECT_EQ(n3->line, 5);
    // "Qcur-0" names the matmul and the RoPE node: (name, op, order) tells them apart
    EXPECT_EQ(parity_trace_find_node(t.get(), 0, "Qcur-0", "MUL_MAT", 0), 3);
    EXPECT_EQ(parity_trace_find_node(t.get(), 0, "Qcur-0", "ROPE", 0), 5);
    EXPECT_EQ(parity_trace_find_node(t.get(), 0, "Qcur-0", nullptr, 1), 5);
    EXPECT_EQ(parity_trace_find_node(t.get(), 0, "Qcur-0", "MUL_MAT", 1), -1);

    // numpy: a = np.load(p)['e0/0003_Qcur-0']; a[0,:4], a[11,255], a.astype(f64).sum()
    F32 q = Load(t.get(), 0, n3->member);
    EXPECT_EQ(Shape(q.info), (std::vector<int64_t>{12, 256}));
    EXPECT_EQ(q.info.dtype, NPZ_F32);
    ASSERT_EQ(q.v.size(), 12u * 256u);
    EXPECT_EQ(q.v[0], -1.43695068359375f);
    EXPECT_EQ(q.v[1], 0.5356951951980591f);
    EXPECT_EQ(q.v[2], 0.19082704186439514f);
    EXPECT_EQ(q.v[3], 0.25865113735198975f);
    EXPECT_EQ(q.v[11 * 256 + 255], -0.3423589766025543f);
    EXPECT_NEAR(Sum(q.v), -59.28981288848445, 1e-9);
    // the same array by its file column
    EXPECT_EQ(Load(t.get(), 0, "0003_Qcur-0.npy").v, q.v);

    // f16 cache nodes were dumped converted to float32: k-0 holds the 12 rows
    // of Kcur-0 as f16 values (numpy: sum -37.821922302246094, 768 non-zeros).
    const parity_node *k0 = parity_trace_node(t.get(), 0, 16);
    EXPECT_STREQ(k0->name, "k-0");
    EXPECT_STREQ(k0->type, "f16");
    F32 k = Load(t.get(), 0, k0->member);
    EXPECT_EQ(Shape(k.info), (std::vector<int64_t>{2, 32, 32}));
    EXPECT_EQ(k.v[0], -0.6025390625f);
    EXPECT_EQ(k.v[1], -0.259521484375f);
    EXPECT_NEAR(Sum(k.v), -37.821922302246094, 1e-9);
    for (float x : k.v) EXPECT_EQ(bn_f16_to_f32(bn_f32_to_f16(x)), x);  // exactly representable in f16

    F32 logits = Load(t.get(), 2, "logits");
    EXPECT_EQ(Shape(logits.info), (std::vector<int64_t>{1, 512}));
    EXPECT_EQ(logits.v[0], -20.174161911010742f);
    EXPECT_NEAR(Sum(logits.v), -18.680786550045013, 1e-6);
    EXPECT_EQ(Shape(Load(t.get(), 0, "logits").info), (std::vector<int64_t>{12, 512}));

    float *d = nullptr;
    npz_array_info info;
    EXPECT_EQ(parity_trace_load_f32(t.get(), 1, "nope", &d, &info, &err), BN_ERR_NOT_FOUND);
    EXPECT_NE(std::string(err.msg).find("p1.npz: e1: no array 'nope' (tried e1/nope.npy, e1/nope and nope)"),
              std::string::npos)
        << err.msg;
    EXPECT_EQ(parity_trace_load_f32(t.get(), 3, "logits", &d, &info, &err), BN_ERR_INVALID);
    EXPECT_EQ(d, nullptr);
}

TEST(TracePtr, LlamaCppF32P1Facts) {
    REQUIRE_SHARED(path, "reference-traces/llamacpp/f32-p1.npz");
    bn_status st;
    bn_error err{};
    TracePtr t = OpenTrace(path, &st, &err);
    ASSERT_OK(st, err);
    ASSERT_EQ(parity_trace_eval_count(t.get()), 1);
    const parity_eval *e0 = parity_trace_eval(t.get(), 0);
    EXPECT_EQ(std::vector<int32_t>(e0->tokens, e0->tokens + e0->n_tokens),
              (std::vector<int32_t>{509, 1, 100, 200, 300, 400, 500, 7}));
    EXPECT_STREQ(parity_trace_get(t.get(), "producer.name"), "llama.cpp");
    EXPECT_STREQ(parity_trace_get(t.get(), "settings.flash_attn"), "false");
    int64_t ng = -1;
    EXPECT_EQ(parity_trace_greedy_tokens(t.get(), &ng), nullptr);
    EXPECT_EQ(ng, 0);
    ASSERT_EQ(parity_trace_node_count(t.get(), 0), 174);
    const parity_node *n0 = parity_trace_node(t.get(), 0, 0);
    EXPECT_STREQ(n0->name, "embd");
    EXPECT_STREQ(n0->op, "GET_ROWS");
    EXPECT_STREQ(n0->member, "e0/0000__embd.npy");
    EXPECT_EQ(n0->src0, nullptr);  // this index has no src columns
    const parity_node *last = parity_trace_node(t.get(), 0, 173);
    EXPECT_STREQ(last->name, "result_output");
    EXPECT_EQ(last->ne[0], 512);
    // numpy: np.load(p)['e0/logits'].astype(np.float64).sum()
    F32 logits = Load(t.get(), 0, "logits");
    EXPECT_EQ(Shape(logits.info), (std::vector<int64_t>{8, 512}));
    EXPECT_NEAR(Sum(logits.v), -1869.9377655088902, 1e-6);
}

// Every shared trace opens; every node loads with the shape its ne implies.
TEST(TracePtr, EverySharedTraceLoads) {
    const struct {
        const char *rel;
        int64_t members, evals, nodes_e0;
    } traces[] = {
        {"bitnetcpp/f32/p1.npz", 469, 3, 154},          {"bitnetcpp/f32/p1_1thread.npz", 313, 2, 154},
        {"bitnetcpp/f32/p1_kf32.npz", 313, 2, 154},     {"bitnetcpp/f32/p1_lastonly.npz", 157, 1, 154},
        {"bitnetcpp/f32/p2.npz", 469, 3, 154},          {"bitnetcpp/i2s/p1.npz", 469, 3, 154},
        {"bitnetcpp/i2s/p1_1thread.npz", 313, 2, 154},  {"bitnetcpp/i2s/p1_kf32.npz", 313, 2, 154},
        {"bitnetcpp/i2s/p1_lastonly.npz", 157, 1, 154}, {"bitnetcpp/i2s/p2.npz", 469, 3, 154},
        {"llamacpp/f32-p1.npz", 177, 1, 174},           {"llamacpp/silu-f32-p1.npz", 169, 1, 166},
        {"llamacpp/tq1_0-p1.npz", 177, 1, 174},         {"llamacpp/tq2_0-p1.npz", 177, 1, 174},
    };
    REQUIRE_SHARED(dir, "reference-traces");
    for (const auto &tr : traces) {
        SCOPED_TRACE(tr.rel);
        bn_status st;
        bn_error err{};
        TracePtr t = OpenTrace(dir + "/" + tr.rel, &st, &err);
        ASSERT_OK(st, err);
        EXPECT_EQ(npz_count(parity_trace_npz(t.get())), tr.members);
        ASSERT_EQ(parity_trace_eval_count(t.get()), tr.evals);
        EXPECT_EQ(parity_trace_node_count(t.get(), 0), tr.nodes_e0);
        int64_t listed = 0;
        for (int64_t k = 0; k < tr.evals; k++) {
            for (int64_t i = 0; i < parity_trace_node_count(t.get(), k); i++, listed++) {
                const parity_node *nd = parity_trace_node(t.get(), k, i);
                F32 a = Load(t.get(), k, nd->member);
                ASSERT_EQ(Shape(a.info), ShapeOfNe(nd->ne)) << nd->member;
                for (float x : a.v) ASSERT_FALSE(std::isnan(x)) << nd->member;
            }
            EXPECT_EQ(Load(t.get(), k, "logits").info.shape[1], 512);
        }
        // nodes + one logits, one index.tsv per evaluation, meta.yaml
        EXPECT_EQ(listed + 2 * tr.evals + 1, tr.members);
    }
}

// --- canonical writer ------------------------------------------------------------

struct CanonicalFixture {
    std::vector<float> embd0, embd1, logits0;  // [3,4], [1,4], [3,6]
    std::vector<int8_t> q8;                    // [3,8]
    std::vector<uint16_t> f16;                 // [2]
    CanonicalFixture() {
        for (int k = 0; k < 12; k++) embd0.push_back(k * 0.25f - 1);
        for (int k = 0; k < 4; k++) embd1.push_back(-(float)k);
        for (int k = 0; k < 18; k++) logits0.push_back(k * 1.5f);
        for (int k = 0; k < 24; k++) q8.push_back((int8_t)(k * 11 - 127));
        f16 = {bn_f32_to_f16(0.5f), bn_f32_to_f16(-3.0f)};
    }
    void Write(const std::string &path) {
        bn_error err{};
        parity_trace_writer *w = nullptr;
        ASSERT_OK(parity_trace_writer_open(path.c_str(), NPZ_DEFLATE_FAST, &w, &err), err);
        const int64_t s34[] = {3, 4}, s14[] = {1, 4}, s38[] = {3, 8}, s36[] = {3, 6}, s2[] = {2};
        EXPECT_OK(parity_trace_writer_add_tap(w, 0, "token_embd", NPZ_F32, s34, 2, embd0.data(), &err), err);
        EXPECT_OK(parity_trace_writer_add_tap(w, 0, "blk.0.attn_q.in_q8", NPZ_I8, s38, 2, q8.data(), &err),
                  err);
        EXPECT_OK(
            parity_trace_writer_add_tap(w, 0, "blk.0.attn_q.in_scale", NPZ_F16, s2, 1, f16.data(), &err),
            err);
        EXPECT_OK(parity_trace_writer_add_tap(w, 0, "logits", NPZ_F32, s36, 2, logits0.data(), &err), err);
        EXPECT_OK(parity_trace_writer_add_tap(w, 1, "token_embd", NPZ_F32, s14, 2, embd1.data(), &err), err);
        EXPECT_EQ(parity_trace_writer_add_tap(w, 1, "a/b", NPZ_F32, s14, 2, embd1.data(), &err),
                  BN_ERR_INVALID);
        EXPECT_EQ(parity_trace_writer_add_tap(w, 1, "token_embd", NPZ_F32, s14, 2, embd1.data(), &err),
                  BN_ERR_INVALID);
        EXPECT_NE(std::string(err.msg).find("duplicate member 'e1/token_embd.npy'"), std::string::npos)
            << err.msg;
        const int32_t tok0[] = {509, 12, 300}, tok1[] = {381}, greedy[] = {381, 184};
        const parity_eval evals[] = {{"ignored", tok0, 3, 0}, {nullptr, tok1, 1, 3}};
        parity_trace_meta m{};
        m.producer_name = "bitparity";
        m.producer_version = "0.1.0";
        m.producer_commit = "0123456789";   // digits only: must stay a string in YAML
        m.model_path = "tiny: model.gguf";  // needs quoting
        m.model_sha256 = "ab12";
        m.model_arch = "bitnet-b1.58";
        m.numerics = "ggml-compat";
        m.threads = 2;
        m.evals = evals;
        m.n_evals = 2;
        m.greedy_tokens = greedy;
        m.n_greedy = 2;
        ASSERT_OK(parity_trace_writer_finish(w, &m, &err), err);
    }
};

TEST(TracePtr, CanonicalWriterReaderRoundTrip) {
    TempDir dir;
    CanonicalFixture fx;
    fx.Write(dir.file("t.npz"));
    bn_status st;
    bn_error err{};
    TracePtr t = OpenTrace(dir.file("t.npz"), &st, &err);
    ASSERT_OK(st, err);
    EXPECT_EQ(parity_trace_layout(t.get()), PARITY_LAYOUT_CANONICAL);
    // meta.yaml is the last member
    const npz_reader *z = parity_trace_npz(t.get());
    EXPECT_STREQ(npz_member_at(z, npz_count(z) - 1)->name, "meta.yaml");
    ASSERT_EQ(parity_trace_eval_count(t.get()), 2);
    EXPECT_STREQ(parity_trace_eval(t.get(), 0)->id, "e0");
    EXPECT_EQ(parity_trace_eval(t.get(), 0)->n_tokens, 3);
    EXPECT_EQ(parity_trace_eval(t.get(), 0)->tokens[2], 300);
    EXPECT_EQ(parity_trace_eval(t.get(), 1)->p0, 3);
    ASSERT_EQ(parity_trace_tap_count(t.get()), 4);  // first-added order
    EXPECT_STREQ(parity_trace_tap_name(t.get(), 0), "token_embd");
    EXPECT_STREQ(parity_trace_tap_name(t.get(), 1), "blk.0.attn_q.in_q8");
    EXPECT_STREQ(parity_trace_tap_name(t.get(), 3), "logits");
    EXPECT_STREQ(parity_trace_get(t.get(), "trace"), "bitparity/v1");
    EXPECT_STREQ(parity_trace_get(t.get(), "producer.commit"), "0123456789");
    EXPECT_STREQ(parity_trace_get(t.get(), "model.path"), "tiny: model.gguf");
    EXPECT_STREQ(parity_trace_get(t.get(), "settings.fault"), "none");
    EXPECT_STREQ(parity_trace_get(t.get(), "settings.numerics"), "ggml-compat");
    int64_t n = 0;
    EXPECT_OK(parity_trace_get_int(t.get(), "settings.threads", &n, &err), err);
    EXPECT_EQ(n, 2);
    const int32_t *g = parity_trace_greedy_tokens(t.get(), &n);
    ASSERT_EQ(n, 2);
    EXPECT_EQ(g[1], 184);

    F32 e = Load(t.get(), 0, "token_embd");
    EXPECT_EQ(Shape(e.info), (std::vector<int64_t>{3, 4}));
    EXPECT_EQ(e.v, fx.embd0);
    EXPECT_EQ(Load(t.get(), 1, "token_embd").v, fx.embd1);
    F32 q = Load(t.get(), 0, "blk.0.attn_q.in_q8");  // int8 converted
    EXPECT_EQ(q.info.dtype, NPZ_I8);
    EXPECT_EQ(q.v[0], -127.0f);
    EXPECT_EQ(q.v[23], 126.0f);
    EXPECT_EQ(Load(t.get(), 0, "blk.0.attn_q.in_scale").v,
              (std::vector<float>{0.5f, -3.0f}));  // f16 converted
    npz_array raw;
    ASSERT_OK(parity_trace_load_raw(t.get(), 0, "blk.0.attn_q.in_q8", &raw, &err), err);
    EXPECT_EQ(raw.info.dtype, NPZ_I8);
    EXPECT_EQ(memcmp(raw.data, fx.q8.data(), 24), 0);
    npz_array_free(&raw);
    EXPECT_EQ(parity_trace_resolve(t.get(), 1, "logits"), -1);  // only e0 has logits here
}

TEST(TracePtr, CanonicalWriterOutputLoadsInPython) {
    TempDir dir;
    CanonicalFixture fx;
    fx.Write(dir.file("t.npz"));
    std::string script = R"PY(
import numpy as np, yaml, zipfile, sys
p = sys.argv[1]
d = np.load(p)
m = yaml.safe_load(zipfile.ZipFile(p).read('meta.yaml'))
print('keys', sorted(m))
print('commit', repr(m['producer']['commit']), 'path', repr(m['model']['path']), 'threads', repr(m['settings']['threads']))
print('evals', m['evaluations'])
print('taps', m['taps'], 'greedy', m['greedy_tokens'])
print('embd', d['e0/token_embd'].dtype.str, d['e0/token_embd'].shape, float(d['e0/token_embd'].sum()))
print('q8', d['e0/blk.0.attn_q.in_q8'].dtype.str, int(d['e0/blk.0.attn_q.in_q8'].astype(int).sum()))
print('scale', d['e0/blk.0.attn_q.in_scale'].tolist())
)PY";
    bptest::WriteFile(dir.file("s.py"), script.data(), script.size());
    auto r =
        bptest::RunShell(std::string(BITPARITY_PYTHON) + " " + dir.file("s.py") + " " + dir.file("t.npz"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string &out = r.out;
    EXPECT_NE(
        out.find("keys ['evaluations', 'greedy_tokens', 'layout', 'model', 'producer', 'settings', 'taps', "
                 "'trace']"),
        std::string::npos)
        << out;
    EXPECT_NE(out.find("commit '0123456789' path 'tiny: model.gguf' threads 2\n"), std::string::npos) << out;
    EXPECT_NE(
        out.find("evals [{'id': 'e0', 'tokens': [509, 12, 300], 'p0': 0}, {'id': 'e1', 'tokens': [381], "
                 "'p0': 3}]"),
        std::string::npos)
        << out;
    EXPECT_NE(
        out.find("taps ['token_embd', 'blk.0.attn_q.in_q8', 'blk.0.attn_q.in_scale', 'logits'] greedy [381, "
                 "184]"),
        std::string::npos)
        << out;
    EXPECT_NE(out.find("embd <f4 (3, 4) 4.5\n"), std::string::npos) << out;  // sum of k/4-1, k<12
    EXPECT_NE(out.find("q8 |i1 -12\n"), std::string::npos) << out;           // sum of 11k-127, k<24
    EXPECT_NE(out.find("scale [0.5, -3.0]\n"), std::string::npos) << out;
}

TEST(TracePtr, ReadsPythonWrittenCanonicalTrace) {
    // As reference/ writes it: numpy.savez_compressed, then meta.yaml appended,
    // no `taps` key (the tap order then comes from the e0/ members).
    TempDir dir;
    std::string script = R"PY(
import numpy as np, zipfile, sys
p = sys.argv[1]
np.savez_compressed(p, **{'e0/token_embd': np.arange(6, dtype='<f4').reshape(2, 3),
                          'e0/logits': np.full((2, 5), -1.25, dtype='<f4'),
                          'e1/token_embd': np.ones((1, 3), dtype='<f4')})
with zipfile.ZipFile(p, 'a', zipfile.ZIP_DEFLATED) as z:
    z.writestr('meta.yaml', 'trace: bitparity/v1\nlayout: canonical\nproducer: {name: bitparity-reference, version: 0.1.0}\n'
               'evaluations:\n  - {id: e0, tokens: [5, 6], p0: 0}\n  - {id: e1, tokens: [7], p0: 2}\n')
)PY";
    bptest::WriteFile(dir.file("s.py"), script.data(), script.size());
    auto r =
        bptest::RunShell(std::string(BITPARITY_PYTHON) + " " + dir.file("s.py") + " " + dir.file("t.npz"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    bn_status st;
    bn_error err{};
    TracePtr t = OpenTrace(dir.file("t.npz"), &st, &err);
    ASSERT_OK(st, err);
    EXPECT_STREQ(parity_trace_get(t.get(), "producer.name"), "bitparity-reference");
    ASSERT_EQ(parity_trace_tap_count(t.get()), 2);
    EXPECT_STREQ(parity_trace_tap_name(t.get(), 0), "token_embd");
    EXPECT_STREQ(parity_trace_tap_name(t.get(), 1), "logits");
    EXPECT_EQ(Load(t.get(), 0, "token_embd").v, (std::vector<float>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(Load(t.get(), 0, "logits").v, std::vector<float>(10, -1.25f));
    EXPECT_EQ(Load(t.get(), 1, "token_embd").v, std::vector<float>(3, 1.0f));
}

TEST(TracePtr, WriterRejectsIncompleteMeta) {
    TempDir dir;
    bn_error err{};
    parity_trace_writer *w = nullptr;
    ASSERT_OK(parity_trace_writer_open(dir.file("t.npz").c_str(), NPZ_STORED, &w, &err), err);
    const float x = 1;
    const int64_t s1[] = {1};
    ASSERT_OK(parity_trace_writer_add_tap(w, 1, "logits", NPZ_F32, s1, 1, &x, &err), err);
    const int32_t tok[] = {1};
    const parity_eval ev[] = {{nullptr, tok, 1, 0}};
    parity_trace_meta m{};
    m.evals = ev;
    m.n_evals = 1;  // but a tap was added for e1
    EXPECT_EQ(parity_trace_writer_finish(w, &m, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("taps were added for evaluation 1 but meta lists 1"),
              std::string::npos)
        << err.msg;
    EXPECT_TRUE(bptest::ReadFile(dir.file("t.npz")).empty());  // partial file removed
}

// --- malformed metadata -------------------------------------------------------------

// Writes an archive with the given meta.yaml and e{k}/index.tsv texts plus the
// node members they name (each a float32 [2]) and opens it as a trace.
bn_status OpenBuilt(const std::string &meta, const std::vector<std::string> &indexes,
                    const std::vector<std::string> &members, std::string *msg) {
    TempDir dir;
    bn_error err{};
    npz_writer *w = nullptr;
    std::string path = dir.file("bad.npz");
    if (npz_writer_open(path.c_str(), NPZ_DEFLATE_FAST, &w, &err)) return BN_ERR_INTERNAL;
    const float v[2] = {1, 2};
    const int64_t s2[] = {2};
    for (const auto &m : members) npz_writer_add_array(w, m.c_str(), NPZ_F32, s2, 1, v, &err);
    for (size_t k = 0; k < indexes.size(); k++) {
        std::string name = "e" + std::to_string(k) + "/index.tsv";
        npz_writer_add_bytes(w, name.c_str(), indexes[k].data(), indexes[k].size(), &err);
    }
    if (!meta.empty()) npz_writer_add_bytes(w, "meta.yaml", meta.data(), meta.size(), &err);
    if (npz_writer_close(w, &err)) return BN_ERR_INTERNAL;
    parity_trace *t = nullptr;
    bn_status st = parity_trace_open(path.c_str(), &t, &err);
    parity_trace_close(t);
    *msg = err.msg;
    return st;
}

const char kGoodMeta[] =
    "trace: bitparity/v1\n"
    "layout: ggml-nodes\n"
    "settings: {threads: 2}\n"
    "evaluations:\n"
    "  - {id: e0, tokens: [509, 12], p0: 0}\n";
const char kGoodIndex[] =
    "seq\tname\top\ttype\tne0\tne1\tne2\tne3\tfile\n"
    "0\tinp_embd\tGET_ROWS\tf32\t2\t1\t1\t1\t0000_inp_embd.npy\n"
    "1\tQcur-0\tMUL_MAT\tf32\t2\t1\t1\t1\t0001_Qcur-0.npy\n";
const std::vector<std::string> kGoodMembers = {"e0/0000_inp_embd.npy", "e0/0001_Qcur-0.npy"};

#define EXPECT_MALFORMED(meta, index, status, substr)                                   \
    do {                                                                                \
        std::string msg_;                                                               \
        EXPECT_EQ(OpenBuilt((meta), {(index)}, kGoodMembers, &msg_), (status)) << msg_; \
        EXPECT_NE(msg_.find(substr), std::string::npos) << msg_;                        \
    } while (0)

TEST(TraceMalformed, GoodBaselineOpens) {
    std::string msg;
    EXPECT_EQ(OpenBuilt(kGoodMeta, {kGoodIndex}, kGoodMembers, &msg), BN_OK) << msg;
}

TEST(TraceMalformed, MetaYaml) {
    const std::string head = "trace: bitparity/v1\nlayout: ggml-nodes\n";
    EXPECT_MALFORMED("", kGoodIndex, BN_ERR_FORMAT, "bad.npz: member 'meta.yaml' missing");
    EXPECT_MALFORMED(head + "evaluations: [unclosed\n", kGoodIndex, BN_ERR_FORMAT,
                     "bad.npz: meta.yaml:4:1: malformed YAML");
    EXPECT_MALFORMED("- just\n- a list\n", kGoodIndex, BN_ERR_FORMAT,
                     "meta.yaml:1: (root): expected a mapping");
    EXPECT_MALFORMED("layout: ggml-nodes\nevaluations: []\n", kGoodIndex, BN_ERR_FORMAT,
                     "trace: missing key");
    EXPECT_MALFORMED("trace: bitparity/v2\nlayout: ggml-nodes\n", kGoodIndex, BN_ERR_UNSUPPORTED,
                     "meta.yaml:1: trace: 'bitparity/v2' is not bitparity/v1");
    EXPECT_MALFORMED("trace: bitparity/v1\nlayout: onnx\n", kGoodIndex, BN_ERR_UNSUPPORTED,
                     "meta.yaml:2: layout: 'onnx' is neither canonical nor ggml-nodes");
    EXPECT_MALFORMED(head, kGoodIndex, BN_ERR_FORMAT, "evaluations: missing key");
    EXPECT_MALFORMED(head + "evaluations: {id: e0}\n", kGoodIndex, BN_ERR_FORMAT,
                     "meta.yaml:3: evaluations: expected a list, got a mapping");
    EXPECT_MALFORMED(head + "evaluations: []\n", kGoodIndex, BN_ERR_FORMAT, "need 1..");
    EXPECT_MALFORMED(head + "evaluations:\n  - {id: e0, tokens: abc, p0: 0}\n", kGoodIndex, BN_ERR_FORMAT,
                     "meta.yaml:4: evaluations[0].tokens: expected a list, got a scalar");
    EXPECT_MALFORMED(
        head + "evaluations:\n  - {id: e0, tokens: [1,\n      x], p0: 0}\n", kGoodIndex, BN_ERR_FORMAT,
        "meta.yaml:5: evaluations[0].tokens[1]: expected an integer in [0, 2147483647], got 'x'");
    EXPECT_MALFORMED(head + "evaluations:\n  - {id: e0, tokens: [\"12\"], p0: 0}\n", kGoodIndex,
                     BN_ERR_FORMAT, "evaluations[0].tokens[0]: expected an integer");
    EXPECT_MALFORMED(head + "evaluations:\n  - {id: e0, tokens: [1], p0: -3}\n", kGoodIndex, BN_ERR_FORMAT,
                     "evaluations[0].p0: expected an integer in [0, 2147483647], got '-3'");
    EXPECT_MALFORMED(head + "evaluations:\n  - {id: e1, tokens: [1], p0: 0}\n", kGoodIndex, BN_ERR_FORMAT,
                     "evaluations[0]: id must be 'e0'");
    EXPECT_MALFORMED(head + "evaluations:\n  - {id: e0, tokens: [1]}\n", kGoodIndex, BN_ERR_FORMAT,
                     "meta.yaml:4: evaluations[0]: missing key 'p0'");
    EXPECT_MALFORMED(head + "evaluations:\n  - {id: e0, tokens: [], p0: 0}\n", kGoodIndex, BN_ERR_FORMAT,
                     "evaluations[0].tokens: no tokens");
    EXPECT_MALFORMED(head + "evaluations:\n  - 7\n", kGoodIndex, BN_ERR_FORMAT,
                     "evaluations[0]: expected a mapping {id, tokens, p0}, got a scalar");
    EXPECT_MALFORMED(head + "settings:\n  threads: two\nevaluations:\n  - {id: e0, tokens: [1], p0: 0}\n",
                     kGoodIndex, BN_ERR_FORMAT,
                     "meta.yaml:4: settings.threads: expected an integer, got 'two'");
    EXPECT_MALFORMED(head + "trace: again\n", kGoodIndex, BN_ERR_FORMAT, "meta.yaml:3: trace: duplicate key");
    // a dotted key and a nested mapping flatten to one key: ambiguous, so refused
    EXPECT_MALFORMED(head + "settings.threads: 2\nsettings: {threads: 3}\n", kGoodIndex, BN_ERR_FORMAT,
                     "meta.yaml:4: settings.threads: duplicate key (also at line 3)");
    EXPECT_MALFORMED(head + "a: {b.c: x}\na.b: {c: y}\n", kGoodIndex, BN_ERR_FORMAT,
                     "meta.yaml:4: a.b.c: duplicate key (also at line 3)");
    EXPECT_MALFORMED(head + "[a]: 1\n", kGoodIndex, BN_ERR_FORMAT, "keys must be scalars");
    EXPECT_MALFORMED(std::string(kGoodMeta) + "greedy_tokens: [1, 2.5]\n", kGoodIndex, BN_ERR_FORMAT,
                     "greedy_tokens[1]: expected an integer");
    // an alias cycle is bounded by the depth limit, not followed forever
    EXPECT_MALFORMED(head + "a: &x {b: *x}\n", kGoodIndex, BN_ERR_FORMAT, "too large or too deep");
    {  // billion laughs: 1000 keys naming a 1000-key mapping is 10^6 visits, over budget
        std::string y = head + "a: &a {";
        for (int k = 0; k < 1000; k++) y += "k" + std::to_string(k) + ": {}, ";
        y += "}\nb: {";
        for (int k = 0; k < 1000; k++) y += "x" + std::to_string(k) + ": *a, ";
        y += "}\n";
        EXPECT_MALFORMED(y, kGoodIndex, BN_ERR_FORMAT, "meta.yaml:3: b.x63: mapping too large or too deep");
    }
    EXPECT_MALFORMED(head + "pad: \"" + std::string(1100000, 'x') + "\"\n", kGoodIndex, BN_ERR_FORMAT,
                     "member 'meta.yaml': 1100047 bytes, more than the 1048576 allowed");
    // canonical: taps must be names
    EXPECT_MALFORMED(
        "trace: bitparity/v1\nlayout: canonical\nevaluations:\n  - {id: e0, tokens: [1], p0: 0}\n"
        "taps: [token_embd, [x]]\n",
        kGoodIndex, BN_ERR_FORMAT, "meta.yaml:5: taps: item 1 must be a tap name");
}

TEST(TraceMalformed, IndexTsv) {
    const std::string hdr = "seq\tname\top\ttype\tne0\tne1\tne2\tne3\tfile\n";
    const std::string row0 = "0\tinp_embd\tGET_ROWS\tf32\t2\t1\t1\t1\t0000_inp_embd.npy\n";
    std::string msg;
    EXPECT_EQ(OpenBuilt(kGoodMeta, {}, kGoodMembers, &msg), BN_ERR_FORMAT);
    EXPECT_NE(msg.find("bad.npz: member 'e0/index.tsv' missing"), std::string::npos) << msg;
    EXPECT_MALFORMED(kGoodMeta, "seq\tname\top\ttype\tne0\tne1\tne2\tne3\n", BN_ERR_FORMAT,
                     "bad.npz: e0/index.tsv:1: missing column 'file'");
    EXPECT_MALFORMED(kGoodMeta, hdr + row0 + "1\tQcur-0\tMUL_MAT\tf32\t2\t1\t1\n", BN_ERR_FORMAT,
                     "e0/index.tsv:3: 7 columns, the header has 9");
    EXPECT_MALFORMED(kGoodMeta, hdr + "0\tinp_embd\tGET_ROWS\tf32\t2x\t1\t1\t1\t0000_inp_embd.npy\n",
                     BN_ERR_FORMAT, "e0/index.tsv:2: column ne0: bad number '2x'");
    EXPECT_MALFORMED(kGoodMeta, hdr + "0\tinp_embd\tGET_ROWS\tf32\t-2\t1\t1\t1\t0000_inp_embd.npy\n",
                     BN_ERR_FORMAT, "column ne0: bad number '-2'");
    EXPECT_MALFORMED(kGoodMeta, hdr + "\tinp_embd\tGET_ROWS\tf32\t2\t1\t1\t1\t0000_inp_embd.npy\n",
                     BN_ERR_FORMAT, "column seq: bad number ''");
    EXPECT_MALFORMED(kGoodMeta, hdr + row0 + row0, BN_ERR_FORMAT, "e0/index.tsv:3: seq 0 does not increase");
    EXPECT_MALFORMED(kGoodMeta, hdr + "0\tx\tOP\tf32\t2\t1\t1\t1\t0009_x.npy\n", BN_ERR_FORMAT,
                     "e0/index.tsv:2: member 'e0/0009_x.npy' is not in the archive");
    EXPECT_MALFORMED(kGoodMeta, hdr, BN_ERR_FORMAT, "e0/index.tsv:1: no nodes");
    EXPECT_MALFORMED(kGoodMeta, hdr + row0 + "1\ta\tb\tc\t1\t1\t1\t1\tf\textra\n", BN_ERR_FORMAT,
                     "10 columns, the header has 9");
    // CRLF line ends and a trailing blank line are fine
    std::string crlf =
        "seq\tname\top\ttype\tne0\tne1\tne2\tne3\tfile\r\n0\tinp_embd\tGET_ROWS\tf32\t2\t1\t1\t1\t"
        "0000_inp_embd.npy\r\n\n";
    EXPECT_EQ(OpenBuilt(kGoodMeta, {crlf}, kGoodMembers, &msg), BN_OK) << msg;
}

TEST(TraceMalformed, NotAZip) {
    TempDir dir;
    bptest::WriteFile(dir.file("x.npz"), "trace: bitparity/v1\n", 20);
    bn_status st;
    bn_error err{};
    TracePtr t = OpenTrace(dir.file("x.npz"), &st, &err);
    EXPECT_EQ(st, BN_ERR_FORMAT);
    EXPECT_EQ(t, nullptr);
    EXPECT_NE(std::string(err.msg).find("x.npz: 20 bytes is too small for a zip archive"), std::string::npos)
        << err.msg;
}

}  // namespace
