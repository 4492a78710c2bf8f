// test_localize.cc — proof that the harness works: every seeded fault
// (bitparity trace --fault) is localized at the right tap, named by the right
// hint, and placed by the op-level replay; an unfaulted engine passes.
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/forward.h"
#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "parity/compare.h"
#include "parity/hints.h"
#include "parity/replay.h"
#include "parity/record.h"
#include "parity/trace.h"
}

namespace {

using bptest::Handle;
using bptest::TempDir;

const std::vector<int32_t> kP1 = {509, 12, 300, 45, 78, 260, 301, 99, 400, 13, 271, 88};

void Record(const std::string &model_path, bn_fault fault, const std::string &out, const char *taps = nullptr,
            bn_numerics numerics = BN_NUMERICS_GGML_COMPAT, const std::vector<int32_t> &tokens = kP1) {
    bn_error err{};
    bn_model *m = nullptr;
    ASSERT_OK(bn_model_load(model_path.c_str(), &m, &err), err);
    ModelPtr model(m);
    parity_record_opts o{};
    o.model_path = model_path.c_str();
    o.tokens = tokens.data();
    o.n_tokens = (int64_t)tokens.size();
    o.n_decode = 2;
    o.taps = taps;
    o.numerics = numerics;
    o.n_threads = 2;
    o.fault = fault;
    o.out_path = out.c_str();
    ASSERT_OK(parity_record(model.get(), &o, &err), err);
}

struct Outcome {
    bool pass = false;
    std::string first;                 // "e0 blk.0.attn_norm"
    std::vector<parity_hint> hints;    // copies of name/message
    std::vector<std::string> names, messages;
    std::string replay_first;          // op-level replay's first local tap
};

// Compares subject with reference under `policy`, adds hints and (when
// model_path is given) runs the op-level replay.
Outcome Diagnose(const std::string &subject, const std::string &reference, const char *policy,
                 const std::string &model_path = "") {
    Outcome out;
    bn_error err{};
    parity_trace *ts = nullptr, *tr = nullptr;
    EXPECT_OK(parity_trace_open(subject.c_str(), &ts, &err), err);
    EXPECT_OK(parity_trace_open(reference.c_str(), &tr, &err), err);
    TracePtr s(ts), r(tr);
    if (!ts || !tr) return out;  // reported above; the rest needs both traces
    parity_tapmap *ms = nullptr, *mr = nullptr;
    EXPECT_OK(parity_tapmap_for_trace(s.get(), &ms, &err), err);
    EXPECT_OK(parity_tapmap_for_trace(r.get(), &mr, &err), err);
    MapPtr map_s(ms), map_r(mr);
    parity_policy *pp = nullptr;
    EXPECT_OK(parity_policy_load_builtin(policy, &pp, &err), err);
    PolicyPtr pol(pp);
    if (!ms || !mr || !pp) return out;
    parity_compare_result *res = nullptr;
    parity_compare_opts o{};
    EXPECT_OK(parity_compare(s.get(), ms, r.get(), mr, pol.get(), &o, &res, &err), err);
    ResultPtr result(res);
    if (!res) return out;
    parity_tapview *vs = nullptr, *vr = nullptr;
    EXPECT_OK(parity_tapview_open(s.get(), ms, &vs, &err), err);
    EXPECT_OK(parity_tapview_open(r.get(), mr, &vr, &err), err);
    ViewPtr view_s(vs), view_r(vr);
    if (!vs || !vr) return out;
    bn_model *m = nullptr;
    if (!model_path.empty()) {
        EXPECT_OK(bn_model_load(model_path.c_str(), &m, &err), err);
    }
    ModelPtr model(m);
    EXPECT_OK(parity_hints_find(res, vs, vr, m, nullptr, &err), err);
    if (m && !res->pass) {
        parity_replay_opts ro{};
        ro.model = m;
        ro.mode = PARITY_REPLAY_OP;
        ro.n_threads = 2;
        parity_replay_result *rp = nullptr;
        EXPECT_OK(parity_replay(res, vs, vr, pol.get(), &ro, &rp, &err), err);
        ReplayPtr replay(rp);
        if (rp && rp->first_local >= 0)
            out.replay_first = "e" + std::to_string(rp->taps[rp->first_local].eval) + " " + rp->taps[rp->first_local].name;
    }
    out.pass = res->pass;
    if (res->first.found) out.first = "e" + std::to_string(res->first.eval) + " " + res->first.tap;
    for (size_t i = 0; i < res->n_hints; i++) {
        out.names.push_back(res->hints[i].name);
        out.messages.push_back(res->hints[i].message);
    }
    return out;
}

bool HasHint(const Outcome &o, const std::string &name, const std::string &in_message) {
    for (size_t i = 0; i < o.names.size(); i++)
        if (o.names[i] == name && o.messages[i].find(in_message) != std::string::npos) return true;
    return false;
}

std::string Hints(const Outcome &o) {
    std::string s;
    for (size_t i = 0; i < o.names.size(); i++) s += "\n  " + o.names[i] + ": " + o.messages[i];
    return s;
}

struct FaultCase {
    const char *fault;
    const char *first;      // expected first divergent tap
    const char *hint;       // expected hint name
    const char *hint_text;  // and a phrase of its message
};

// Each fault on the shared tiny I2_S model and on its fixture twin
// (fixtures/models/b158-i2s.gguf, prompt p1), which runs without ../shared.
class SeededFault : public ::testing::TestWithParam<std::tuple<bptest::ModelCase, FaultCase>> {};

TEST_P(SeededFault, IsLocalizedAndNamed) {
    const bptest::ModelCase &mc = std::get<0>(GetParam());
    REQUIRE_MODEL(model, mc);
    const FaultCase &fc = std::get<1>(GetParam());
    bn_fault fault;
    ASSERT_TRUE(bn_fault_parse(fc.fault, &fault));
    TempDir tmp;
    Record(model, BN_FAULT_NONE, tmp.file("base.npz"), nullptr, BN_NUMERICS_GGML_COMPAT, mc.prompt);
    Record(model, fault, tmp.file("faulted.npz"), nullptr, BN_NUMERICS_GGML_COMPAT, mc.prompt);
    Outcome o = Diagnose(tmp.file("faulted.npz"), tmp.file("base.npz"), "exact", model);
    EXPECT_FALSE(o.pass);
    EXPECT_EQ(o.first, fc.first);
    EXPECT_TRUE(HasHint(o, fc.hint, fc.hint_text)) << "hints:" << Hints(o);
    // The op-level replay computes every tap from the reference's inputs: the
    // first one still failing is where the fault acts.
    EXPECT_EQ(o.replay_first, fc.first);
}

const bptest::ModelCase kModels[] = {bptest::SharedTinyI2s(), bptest::FixtureB158I2s()};

INSTANTIATE_TEST_SUITE_P(
    Faults, SeededFault,
    ::testing::Combine(::testing::ValuesIn(kModels), ::testing::Values(FaultCase{"gamma-inv-sqrt-h", "e0 blk.0.attn_norm", "scale-factor", "1/√H"},
                      FaultCase{"silu", "e0 blk.0.ffn_act", "activation-swap",
                                "the subject computes SiLU(gate)·up where the reference computes relu(gate)²·up"},
                      FaultCase{"layernorm", "e0 blk.0.attn_norm", "layernorm-vs-rmsnorm", "subtracts the mean"},
                      FaultCase{"no-subnorm", "e0 blk.0.attn_sub_norm", "subnorm-missing", "sub-norm is skipped"},
                      FaultCase{"rope-normal", "e0 blk.0.attn_q_rope", "rope-pairing", "swapping rope halves"},
                      FaultCase{"rope-pos-shift", "e0 blk.0.attn_q_rope", "rope-positions", "off by +1"},
                      FaultCase{"qk-head-perm", "e0 blk.0.attn_q", "head-permutation", "permutation"},
                      FaultCase{"kv-f32", "e0 blk.0.attn_ctx", "f16-rounding", "f16 rounding of K/V"},
                      FaultCase{"nan", "e0 blk.1.ffn_sub_norm", "nan-origin", "NaN/Inf first appears"},
                      FaultCase{"transpose-wo", "e0 blk.0.attn_out", "transposed-weight",
                                "multiplies by the transpose of blk.0.attn_output.weight"})),
    [](const auto &info) {
        std::string s = std::get<1>(info.param).fault;
        for (char &c : s)
            if (c == '-') c = '_';
        return s + "_" + std::get<0>(info.param).label;
    });

// The tests below take one of the two models.
class SeededFaultOn : public ::testing::TestWithParam<bptest::ModelCase> {};

// Without a fault the engine agrees with itself bit for bit (exact policy),
// whatever the thread count of the two runs.
TEST_P(SeededFaultOn, NoFaultPasses) {
    REQUIRE_MODEL(model, GetParam());
    TempDir tmp;
    Record(model, BN_FAULT_NONE, tmp.file("a.npz"), nullptr, BN_NUMERICS_GGML_COMPAT, GetParam().prompt);
    Record(model, BN_FAULT_NONE, tmp.file("b.npz"), nullptr, BN_NUMERICS_GGML_COMPAT, GetParam().prompt);
    Outcome o = Diagnose(tmp.file("a.npz"), tmp.file("b.npz"), "exact");
    EXPECT_TRUE(o.pass) << o.first;
    EXPECT_TRUE(o.names.empty()) << Hints(o);
}

// I2_S weight scale clamped to [1e-3, 1e3]: invisible while every scale is
// inside the range, a factor of clamp(β)/β on the projection once one is not.
// The test writes a copy of the model whose blk.0.attn_q scale is 5e-4.
TEST_P(SeededFaultOn, I2sScaleClampShowsAsAFactorOfTwo) {
    REQUIRE_MODEL(model, GetParam());
    TempDir tmp;
    std::vector<uint8_t> bytes = bptest::ReadFile(model);
    bn_error err{};
    bn_gguf *g = nullptr;
    ASSERT_OK(bn_gguf_open_memory(bytes.data(), bytes.size(), "copy", &g, &err), err);
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, "blk.0.attn_q.weight");
    ASSERT_NE(t, nullptr);
    const size_t at = (size_t)(t->abs_offset + (uint64_t)t->nelem / 4);
    bn_gguf_close(g);
    const float small = 5e-4f;
    memcpy(bytes.data() + at, &small, sizeof small);
    const std::string patched = tmp.file("small-scale.gguf");
    bptest::WriteFile(patched, bytes);
    Record(patched, BN_FAULT_NONE, tmp.file("base.npz"), nullptr, BN_NUMERICS_GGML_COMPAT, GetParam().prompt);
    Record(patched, BN_FAULT_I2S_SCALE_CLAMP, tmp.file("faulted.npz"), nullptr, BN_NUMERICS_GGML_COMPAT,
           GetParam().prompt);
    Outcome o = Diagnose(tmp.file("faulted.npz"), tmp.file("base.npz"), "exact", patched);
    EXPECT_EQ(o.first, "e0 blk.0.attn_q");
    EXPECT_TRUE(HasHint(o, "scale-factor", "subject ≈ 2 × reference")) << Hints(o);
    EXPECT_TRUE(HasHint(o, "scale-factor", "weight scale")) << Hints(o);
    // with the model the clamp itself is named: x·clamp(W) reproduces the subject
    EXPECT_TRUE(HasHint(o, "i2s-scale-clamp", "the subject multiplies by blk.0.attn_q.weight with its I2_S scale "
                        "clamped to [1e-3, 1e3] (scale 0.0005)")) << Hints(o);
    EXPECT_EQ(o.replay_first, "e0 blk.0.attn_q");
}

// The real divergence in the shared traces: upstream llama.cpp computes SiLU
// for a relu² model. The engine (which honours bitnet.hidden_activation) vs
// llama.cpp's trace: first divergence at blk.0.ffn_act, and the hint says
// which side computes what.
TEST(SeededFault, LlamaCppSiluTraceIsDiagnosed) {
    REQUIRE_SHARED(model, "models/tiny-bitnet-llamacpp-f32.gguf");
    REQUIRE_SHARED(trace, "reference-traces/llamacpp/silu-f32-p1.npz");
    TempDir tmp;
    Record(model, BN_FAULT_NONE, tmp.file("engine.npz"), nullptr, BN_NUMERICS_F32, {509, 1, 100, 200, 300, 400, 500, 7});
    Outcome o = Diagnose(tmp.file("engine.npz"), trace, "cross-backend");
    EXPECT_FALSE(o.pass);
    EXPECT_EQ(o.first, "e0 blk.0.ffn_act");
    EXPECT_TRUE(HasHint(o, "activation-swap",
                        "the subject computes relu(gate)²·up where the reference computes SiLU(gate)·up"))
        << Hints(o);
}

// int8 rounding mode: codes that differ by one exactly at x·s = k + 0.5. The
// traces are written by hand (the tiny models have no exact ties).
TEST(Hints, Int8RoundingModeFromTheInQ8Taps) {
    TempDir tmp;
    // s = 127 / max|x| = 1: x·s is x itself, and 2.5, -3.5, 0.5 are ties.
    const std::vector<float> x = {2.5f, -3.5f, 0.5f, 127.0f, 1.25f, -0.5f, 7.0f, 3.0f};
    const std::vector<int8_t> even = {2, -4, 0, 127, 1, 0, 7, 3}, away = {3, -4, 1, 127, 1, -1, 7, 3};
    const float scale = 1.0f;
    auto write = [&](const std::string &path, const std::vector<int8_t> &q, float out_bias) {
        bn_error err{};
        parity_trace_writer *w = nullptr;
        ASSERT_OK(parity_trace_writer_open(path.c_str(), NPZ_STORED, &w, &err), err);
        const int64_t row[2] = {1, 8}, one[1] = {1};
        std::vector<float> y = {1.0f + out_bias, 2.0f, 3.0f, 4.0f};
        const int64_t yshape[2] = {1, 4};
        ASSERT_OK(parity_trace_writer_add_tap(w, 0, "blk.0.attn_norm", NPZ_F32, row, 2, x.data(), &err), err);
        ASSERT_OK(parity_trace_writer_add_tap(w, 0, "blk.0.attn_q.in_q8", NPZ_I8, row, 2, q.data(), &err), err);
        ASSERT_OK(parity_trace_writer_add_tap(w, 0, "blk.0.attn_q.in_scale", NPZ_F32, one, 1, &scale, &err), err);
        ASSERT_OK(parity_trace_writer_add_tap(w, 0, "blk.0.attn_q", NPZ_F32, yshape, 2, y.data(), &err), err);
        const int32_t tok = 5;
        parity_eval ev{};
        ev.tokens = &tok;
        ev.n_tokens = 1;
        parity_trace_meta meta{};
        meta.producer_name = "bitparity";
        meta.numerics = "ggml-compat";
        meta.evals = &ev;
        meta.n_evals = 1;
        ASSERT_OK(parity_trace_writer_finish(w, &meta, &err), err);
    };
    write(tmp.file("subject.npz"), away, 0.25f);
    write(tmp.file("reference.npz"), even, 0.0f);
    Outcome o = Diagnose(tmp.file("subject.npz"), tmp.file("reference.npz"), "exact");
    EXPECT_EQ(o.first, "e0 blk.0.attn_q.in_q8");
    EXPECT_TRUE(HasHint(o, "int8-rounding", "rounds halves away from zero")) << Hints(o);
}

// Different token ids: nothing else is compared and the diagnosis says why.
TEST_P(SeededFaultOn, TokenizationMismatchStopsTheComparison) {
    REQUIRE_MODEL(model, GetParam());
    TempDir tmp;
    std::vector<int32_t> other = GetParam().prompt;
    other[3] = 46;
    Record(model, BN_FAULT_NONE, tmp.file("a.npz"), "logits", BN_NUMERICS_GGML_COMPAT, GetParam().prompt);
    Record(model, BN_FAULT_NONE, tmp.file("b.npz"), "logits", BN_NUMERICS_GGML_COMPAT, other);
    Outcome o = Diagnose(tmp.file("a.npz"), tmp.file("b.npz"), "exact");
    EXPECT_FALSE(o.pass);
    EXPECT_TRUE(o.first.empty());
    EXPECT_TRUE(HasHint(o, "tokenization-mismatch", "different token ids")) << Hints(o);
}

INSTANTIATE_TEST_SUITE_P(Models, SeededFaultOn, ::testing::ValuesIn(kModels), bptest::ModelCaseName());

}  // namespace
