// test_compare.cc — parity_compare end to end: engine traces (recorded here
// through parity_record) against the shared bitnet.cpp / llama.cpp traces and
// the Python reference, seeded faults, tokenization mismatch, and small
// hand-made traces whose numbers are computed by hand; receipts.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/model.h"
#include "parity/compare.h"
#include "parity/hints.h"
#include "parity/receipt.h"
#include "parity/record.h"
}

using bptest::Handle;

namespace {

const std::vector<int32_t> kBitnetP1 = {509, 12, 300, 45, 78, 260, 301, 99, 400, 13, 271, 88};
const std::vector<int32_t> kLlamaP1 = {509, 1, 100, 200, 300, 400, 500, 7};

// Records an engine trace of `model` (a path) into out.
void Record(const std::string &model, const std::vector<int32_t> &tokens, const std::string &out,
            bn_numerics numerics = BN_NUMERICS_GGML_COMPAT, bn_fault fault = BN_FAULT_NONE, const char *taps = nullptr,
            int64_t decode = 2) {
    bn_error err{};
    bn_model *m;
    ASSERT_OK(bn_model_load(model.c_str(), &m, &err), err);
    ModelPtr hold(m);
    parity_record_opts o{};
    o.model_path = model.c_str();
    o.tokens = tokens.data();
    o.n_tokens = (int64_t)tokens.size();
    o.n_decode = decode;
    o.taps = taps;
    o.numerics = numerics;
    o.n_threads = 2;
    o.fault = fault;
    o.out_path = out.c_str();
    ASSERT_OK(parity_record(m, &o, &err), err);
}

// Both traces, their automatic maps, a policy, and the comparison.
struct Compared {
    TracePtr s, r;
    MapPtr ms, mr;
    PolicyPtr policy;
    std::string policy_name;
    ResultPtr res;
};

void Compare(const std::string &subject, const std::string &reference, Compared *c, const char *policy = nullptr,
             int threads = 2) {
    bn_error err{};
    parity_trace *t;
    parity_tapmap *m;
    parity_policy *p;
    ASSERT_OK(parity_trace_open(subject.c_str(), &t, &err), err);
    c->s.reset(t);
    ASSERT_OK(parity_trace_open(reference.c_str(), &t, &err), err);
    c->r.reset(t);
    ASSERT_OK(parity_tapmap_for_trace(c->s.get(), &m, &err), err);
    c->ms.reset(m);
    ASSERT_OK(parity_tapmap_for_trace(c->r.get(), &m, &err), err);
    c->mr.reset(m);
    c->policy_name = policy ? policy : parity_compare_default_policy(c->s.get(), c->r.get(), nullptr, 0);
    ASSERT_OK(parity_policy_load_builtin(c->policy_name.c_str(), &p, &err), err);
    c->policy.reset(p);
    bn_pool *pool;
    ASSERT_OK(bn_pool_create(threads, &pool, &err), err);
    PoolPtr hold(pool);
    parity_compare_opts o{};
    o.pool = pool;
    parity_compare_result *r;
    ASSERT_OK(parity_compare(c->s.get(), c->ms.get(), c->r.get(), c->mr.get(), c->policy.get(), &o, &r, &err), err);
    c->res.reset(r);
}

// Taps present on both sides, counted independently of compare through the views.
int64_t MappedTaps(const Compared &c) {
    bn_error err{};
    parity_tapview *a, *b;
    EXPECT_OK(parity_tapview_open(c.s.get(), c.ms.get(), &a, &err), err);
    EXPECT_OK(parity_tapview_open(c.r.get(), c.mr.get(), &b, &err), err);
    if (!a || !b) {  // reported above; -1 never equals a count
        parity_tapview_free(a);
        parity_tapview_free(b);
        return -1;
    }
    int64_t n = 0;
    for (int64_t k = 0; k < (int64_t)c.res->n_evals; k++)
        for (int64_t i = 0; i < parity_tapview_count(a, k); i++)
            n += parity_tapview_find(b, k, parity_tapview_name(a, k, i)) >= 0;
    parity_tapview_free(a);
    parity_tapview_free(b);
    return n;
}

const parity_tap_result *FindTap(const parity_compare_result *r, int64_t k, const char *name) {
    for (size_t i = 0; i < r->n_taps; i++)
        if (r->taps[i].eval == k && !strcmp(r->taps[i].name, name)) return &r->taps[i];
    return nullptr;
}

}  // namespace

// ---- against bitnet.cpp: the engine in ggml-compat mode is bit-identical ----

// A bit-identical reference: bitnet.cpp's trace of a shared model, or (without
// ../shared) the Python reference's ggml-compat trace of a fixture model,
// which the engine also matches bit for bit (fixtures/README.md).
struct BitIdenticalCase {
    const char *label;
    bool shared;               // ../shared/{model, ref}, else fixtures/{models, expected}/...
    const char *model, *ref;
    std::vector<int32_t> prompt;
    const char *policy;        // nullptr: the default one, which must be `expect_policy`
    const char *expect_policy;
    int64_t compared, missing_subject;
};

void PrintTo(const BitIdenticalCase &c, std::ostream *os) { *os << c.label; }

class BitnetCpp : public ::testing::TestWithParam<BitIdenticalCase> {};

TEST_P(BitnetCpp, EngineIsBitIdenticalOnEveryMappedTap) {
    const BitIdenticalCase &bc = GetParam();
    const std::string model = bc.shared ? bptest::SharedPath(std::string("models/") + bc.model)
                                        : bptest::SourcePath(std::string("fixtures/models/") + bc.model);
    const std::string ref = bc.shared ? bptest::SharedPath(std::string("reference-traces/") + bc.ref)
                                      : bptest::SourcePath(std::string("fixtures/expected/") + bc.ref);
    if (model.empty() || ref.empty()) GTEST_SKIP() << "../shared/" << bc.model << " or " << bc.ref << " absent: skipped";
    std::string taps;  // a fixture's expected trace holds a few taps: record those
    if (!bc.shared) {
        bn_error err{};
        parity_trace *t = nullptr;
        ASSERT_OK(parity_trace_open(ref.c_str(), &t, &err), err);
        TracePtr hold(t);
        for (int64_t i = 0; i < parity_trace_tap_count(t); i++) taps += (i ? "," : "") + std::string(parity_trace_tap_name(t, i));
    }
    bptest::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(Record(model, bc.prompt, dir.file("e.npz"), BN_NUMERICS_GGML_COMPAT, BN_FAULT_NONE,
                                   bc.shared ? nullptr : taps.c_str()));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &c, bc.policy));
    const parity_compare_result *r = c.res.get();
    EXPECT_EQ(c.policy_name, bc.expect_policy);
    EXPECT_TRUE(r->pass) << r->diagnosis;
    EXPECT_EQ(r->n_evals, 3u);
    // shared: 71 default taps per evaluation are mapped (scores/probs are opt-in in the engine)
    EXPECT_EQ(r->counts.compared, bc.compared);
    EXPECT_EQ(r->counts.compared, MappedTaps(c));
    EXPECT_EQ(r->counts.bit_identical, r->counts.compared);
    EXPECT_EQ(r->counts.fail, 0);
    EXPECT_EQ(r->counts.missing_subject, bc.missing_subject);  // shared: attn_scores, attn_probs x 4 layers
    EXPECT_EQ(r->counts.missing_reference, 0);
    EXPECT_FALSE(r->first.found);
    for (size_t k = 0; k < r->n_evals; k++) {
        EXPECT_TRUE(r->evals[k].has_logits);
        EXPECT_EQ(r->evals[k].logits.kld_max, 0.0);
        EXPECT_EQ(r->evals[k].logits.top1_agree, 1.0);
        for (int l = 0; l < r->n_layer; l++) EXPECT_EQ(r->evals[k].growth[l], 0.0);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, BitnetCpp,
    ::testing::Values(
        BitIdenticalCase{"i2s", true, "tiny-bitnet-i2s.gguf", "bitnetcpp/i2s/p1.npz", kBitnetP1, nullptr, "ggml-compat",
                         3 * 71, 3 * 8},
        BitIdenticalCase{"f32", true, "tiny-bitnet-f32.gguf", "bitnetcpp/f32/p1.npz", kBitnetP1, nullptr, "ggml-compat",
                         3 * 71, 3 * 8},
        // 24 stored taps (fixtures/README.md); the default policy for engine vs
        // reference is `reference`, exact is asked for because both emulate ggml
        BitIdenticalCase{"fixture_b158_i2s", false, "b158-i2s.gguf", "b158-i2s.p1.compat.npz",
                         bptest::FixturePrompt("p1"), "exact", "exact", 3 * 24, 0}),
    [](const auto &info) { return std::string(info.param.label); });

TEST(CompareBitnetCpp, ScoresAndProbsToo) {
    REQUIRE_SHARED(model, "models/tiny-bitnet-i2s.gguf");
    REQUIRE_SHARED(ref, "reference-traces/bitnetcpp/i2s/p2.npz");
    const std::vector<int32_t> p2 = {509, 290, 290, 17, 256, 257, 258, 259, 100, 200, 300, 400, 500, 3, 66, 508};
    bptest::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(Record(model, p2, dir.file("e.npz"), BN_NUMERICS_GGML_COMPAT, BN_FAULT_NONE, "*"));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &c));
    const parity_compare_result *r = c.res.get();
    EXPECT_TRUE(r->pass);
    EXPECT_EQ(r->counts.compared, 3 * 79);  // every tap the map knows, scaled and masked kq included
    EXPECT_EQ(r->counts.bit_identical, 3 * 79);
    EXPECT_EQ(r->counts.missing_subject, 0);
    EXPECT_EQ(r->counts.missing_reference, 3 * 4 * 14);  // in_q8 / in_scale of 7 projections x 4 layers
    const parity_tap_result *s = FindTap(r, 1, "blk.2.attn_scores");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->shape[2], 17);                  // p0 + T = 16 + 1 columns of 32 cached
    EXPECT_EQ(s->m.inf_a, 0u);                   // a decode step sees every key
    const parity_tap_result *s0 = FindTap(r, 0, "blk.2.attn_scores");
    EXPECT_EQ(s0->m.inf_a, 8u * (16 * 15 / 2));  // the masked upper triangle of 8 heads, matched by -inf
    EXPECT_EQ(s0->m.inf_mismatch, 0u);
}

TEST(CompareBitnetCpp, PrunedLastLayerComparesTheLastRow) {
    REQUIRE_SHARED(model, "models/tiny-bitnet-i2s.gguf");
    REQUIRE_SHARED(ref, "reference-traces/bitnetcpp/i2s/p1_lastonly.npz");
    bptest::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(Record(model, kBitnetP1, dir.file("e.npz")));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &c));
    const parity_compare_result *r = c.res.get();
    EXPECT_TRUE(r->pass) << r->diagnosis;
    EXPECT_EQ(r->n_evals, 1u);
    EXPECT_EQ(r->counts.compared, 71);
    EXPECT_EQ(r->counts.shape_mismatch, 0);
    const parity_tap_result *before = FindTap(r, 0, "blk.3.attn_out"), *after = FindTap(r, 0, "blk.3.ffn_inp");
    const parity_tap_result *lg = FindTap(r, 0, "logits");
    ASSERT_TRUE(before && after && lg);
    EXPECT_EQ(before->row_begin, 0);
    EXPECT_EQ(before->row_end, 12);
    EXPECT_EQ(after->row_begin, 11);
    EXPECT_EQ(after->row_end, 12);
    EXPECT_EQ(after->m.n, 256u);
    EXPECT_TRUE(after->m.bit_identical);
    EXPECT_EQ(lg->row_begin, 11);
    EXPECT_EQ(r->evals[0].logits.n_pos, 1u);
    // bitnet.cpp's one-row output matmul rounds differently from the 12-row one.
    EXPECT_GT(lg->m.nmse, 0.0);
    EXPECT_LT(lg->m.nmse, 1e-6);
}

// ---- against upstream llama.cpp ----

TEST(CompareLlamaCpp, F32PassesCrossBackend) {
    REQUIRE_SHARED(model, "models/tiny-bitnet-llamacpp-f32.gguf");
    REQUIRE_SHARED(ref, "reference-traces/llamacpp/f32-p1.npz");
    bptest::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(Record(model, kLlamaP1, dir.file("e.npz"), BN_NUMERICS_F32));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &c));
    const parity_compare_result *r = c.res.get();
    EXPECT_EQ(c.policy_name, "cross-backend");
    EXPECT_TRUE(r->pass) << r->diagnosis;
    EXPECT_EQ(r->n_evals, 1u);  // llama.cpp traces hold e0 only
    EXPECT_EQ(r->n_evals_subject, 3);
    EXPECT_EQ(r->counts.compared, 71);
    EXPECT_EQ(r->evals[0].logits.top1_agree, 1.0);
    EXPECT_LT(r->evals[0].logits.kld_max, 1e-6);
}

// llama.cpp-compat numerics reproduce upstream llama.cpp bit for bit: every
// mapped tap of every shared trace, the opt-in attention scores and
// probabilities included, chosen automatically under the exact policy.
TEST(CompareLlamaCpp, CompatNumericsAreBitIdentical) {
    for (const char *name : {"f32", "tq2_0", "tq1_0", "silu-f32"}) {
        SCOPED_TRACE(name);
        REQUIRE_SHARED(model, std::string("models/tiny-bitnet-llamacpp-") + name + ".gguf");
        REQUIRE_SHARED(ref, std::string("reference-traces/llamacpp/") + name + "-p1.npz");
        for (const char *taps : {(const char *)nullptr, "blk.*"}) {
            bptest::TempDir dir;
            ASSERT_NO_FATAL_FAILURE(Record(model, kLlamaP1, dir.file("e.npz"), BN_NUMERICS_LLAMACPP_COMPAT,
                                           BN_FAULT_NONE, taps));
            Compared c;
            ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &c));
            const parity_compare_result *r = c.res.get();
            EXPECT_EQ(c.policy_name, "exact");
            EXPECT_TRUE(r->pass) << r->diagnosis;
            EXPECT_EQ(r->counts.compared, taps ? 76 : 71);  // 2 layers x 2 opt-in (scores, probs) more
            int identical = 0;
            for (size_t i = 0; i < r->n_taps; i++)
                if (r->taps[i].status == PARITY_TAP_PASS || r->taps[i].status == PARITY_TAP_FAIL) {
                    EXPECT_TRUE(r->taps[i].m.bit_identical) << r->taps[i].name << " nmse " << r->taps[i].m.nmse;
                    identical += r->taps[i].m.bit_identical;
                }
            EXPECT_EQ(identical, r->counts.compared);
            if (!taps) {  // blk.* records no logits
                EXPECT_EQ(r->evals[0].logits.top1_agree, 1.0);
            }
        }
    }
}

TEST(CompareLlamaCpp, SiluIsLocalizedToLayer0Activation) {
    REQUIRE_SHARED(model, "models/tiny-bitnet-llamacpp-f32.gguf");
    REQUIRE_SHARED(ref, "reference-traces/llamacpp/silu-f32-p1.npz");
    bptest::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(Record(model, kLlamaP1, dir.file("e.npz"), BN_NUMERICS_F32));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &c));
    const parity_compare_result *r = c.res.get();
    EXPECT_EQ(c.policy_name, "cross-backend");
    EXPECT_FALSE(r->pass);
    ASSERT_TRUE(r->first.found);
    EXPECT_EQ(r->first.eval, 0);
    EXPECT_STREQ(r->first.tap, "blk.0.ffn_act");
    EXPECT_EQ(r->first.layer, 0);
    EXPECT_STREQ(r->first.metric, "nmse");
    EXPECT_NEAR(r->first.value, 0.467, 0.001);
    EXPECT_EQ(r->first.limit, 1e-5);  // parity/policies/cross-backend.yaml
    // Everything before the activation agrees.
    for (size_t i = 0; i < r->first.tap_index; i++) EXPECT_EQ(r->taps[i].status, PARITY_TAP_PASS) << r->taps[i].name;
    ASSERT_EQ(r->n_evals, 1u);
    // error growth: the layer maximum, checked against the taps themselves
    for (int l = 0; l < r->n_layer; l++) {
        double mx = NAN;
        for (size_t i = 0; i < r->n_taps; i++)
            if (r->taps[i].layer == l && (std::isnan(mx) || r->taps[i].m.nmse > mx)) mx = r->taps[i].m.nmse;
        EXPECT_EQ(r->evals[0].growth[l], mx) << l;
    }
    EXPECT_GE(r->evals[0].growth[0], r->first.value);
    EXPECT_LT(r->evals[0].logits.top1_agree, 0.5);
}

TEST(CompareLlamaCpp, ResultDoesNotDependOnThreads) {
    REQUIRE_SHARED(model, "models/tiny-bitnet-llamacpp-f32.gguf");
    REQUIRE_SHARED(ref, "reference-traces/llamacpp/silu-f32-p1.npz");
    bptest::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(Record(model, kLlamaP1, dir.file("e.npz"), BN_NUMERICS_F32));
    Compared one, three;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &one, nullptr, 1));
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &three, nullptr, 3));
    ASSERT_EQ(one.res->n_taps, three.res->n_taps);
    for (size_t i = 0; i < one.res->n_taps; i++)
        EXPECT_EQ(memcmp(&one.res->taps[i].m, &three.res->taps[i].m, sizeof(parity_metrics)), 0) << one.res->taps[i].name;
    EXPECT_EQ(memcmp(&one.res->evals[0].logits, &three.res->evals[0].logits, sizeof(parity_logits_summary)), 0);
}

// ---- seeded faults against the clean engine trace ----

struct FaultCase {
    bn_fault fault;
    const char *first_tap;
};

// On the shared tiny I2_S model and on its fixture twin (no ../shared needed).
class Faults : public ::testing::TestWithParam<std::tuple<bptest::ModelCase, FaultCase>> {};

TEST_P(Faults, FirstDivergenceIsTheFaultyTap) {
    const bptest::ModelCase &mc = std::get<0>(GetParam());
    const FaultCase &fc = std::get<1>(GetParam());
    REQUIRE_MODEL(model, mc);
    bptest::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(Record(model, mc.prompt, dir.file("clean.npz")));
    ASSERT_NO_FATAL_FAILURE(
        Record(model, mc.prompt, dir.file("bad.npz"), BN_NUMERICS_GGML_COMPAT, fc.fault, nullptr, 0));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("bad.npz"), dir.file("clean.npz"), &c));
    const parity_compare_result *r = c.res.get();
    EXPECT_EQ(c.policy_name, "exact");  // same producer and numerics
    EXPECT_FALSE(r->pass);
    ASSERT_TRUE(r->first.found);
    EXPECT_EQ(r->first.eval, 0);
    EXPECT_STREQ(r->first.tap, fc.first_tap);
    EXPECT_STREQ(r->first.metric, "bit_diff_count");
    EXPECT_EQ(r->n_evals, 1u);  // the faulty trace has no decode steps
    EXPECT_EQ(std::string(r->evals[0].id), "e0");
}

INSTANTIATE_TEST_SUITE_P(Seeded, Faults,
                         ::testing::Combine(::testing::Values(bptest::SharedTinyI2s(), bptest::FixtureB158I2s()),
                                            ::testing::Values(FaultCase{BN_FAULT_GAMMA_INV_SQRT_H, "blk.0.attn_norm"},
                                                              FaultCase{BN_FAULT_SILU, "blk.0.ffn_act"},
                                                              FaultCase{BN_FAULT_ROPE_NORMAL, "blk.0.attn_q_rope"},
                                                              FaultCase{BN_FAULT_LAYERNORM, "blk.0.attn_norm"},
                                                              FaultCase{BN_FAULT_NO_SUBNORM, "blk.0.attn_sub_norm"})),
                         [](const auto &info) {
                             return std::to_string(info.index % 5) + "_" + std::get<0>(info.param).label;
                         });

// gamma / sqrt(H): 1/16 for the shared F32 model (H = 256), 1/8 for the
// fixture b158-f32 (H = 64).
class CompareFaults : public ::testing::TestWithParam<std::tuple<bptest::ModelCase, double>> {};

TEST_P(CompareFaults, NormScaleShowsInTheScaleFit) {
    const bptest::ModelCase &mc = std::get<0>(GetParam());
    REQUIRE_MODEL(model, mc);
    bptest::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(Record(model, mc.prompt, dir.file("clean.npz"), BN_NUMERICS_GGML_COMPAT, BN_FAULT_NONE, nullptr, 0));
    ASSERT_NO_FATAL_FAILURE(
        Record(model, mc.prompt, dir.file("bad.npz"), BN_NUMERICS_GGML_COMPAT, BN_FAULT_GAMMA_INV_SQRT_H, nullptr, 0));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("bad.npz"), dir.file("clean.npz"), &c));
    const parity_tap_result *t = &c.res->taps[c.res->first.tap_index];
    EXPECT_STREQ(t->name, "blk.0.attn_norm");
    EXPECT_NEAR(t->m.scale, std::get<1>(GetParam()), 1e-6);
    EXPECT_LT(t->m.scale_nmse, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Models, CompareFaults,
    ::testing::Values(std::make_tuple(bptest::ModelCase{"shared_f32", true, "tiny-bitnet-f32.gguf", kBitnetP1}, 1.0 / 16.0),
                      std::make_tuple(bptest::ModelCase{"fixture_b158_f32", false, "b158-f32.gguf",
                                                        bptest::FixturePrompt("p1")},
                                      1.0 / 8.0)),
    [](const auto &info) { return std::string(std::get<0>(info.param).label); });

// ---- the Python reference ----

// The shared F32 model against a trace the reference writes here, and (no
// ../shared, no Python) the fixture b158-f32 against the reference's
// expected f32 trace (fixtures/expected), recorded with the taps it holds.
class CompareReference : public ::testing::TestWithParam<std::tuple<bptest::ModelCase, int64_t>> {};

TEST_P(CompareReference, EngineF32PassesTheReferencePolicy) {
    const bptest::ModelCase &mc = std::get<0>(GetParam());
    REQUIRE_MODEL(model, mc);
    bptest::TempDir dir;
    std::string ref = dir.file("py.npz"), taps;
    if (mc.shared) {
        std::string ids;
        for (int32_t t : mc.prompt) ids += (ids.empty() ? "" : ",") + std::to_string(t);
        std::string cmd = std::string(BITPARITY_PYTHON) + " " + bptest::SourcePath("reference/bitnet_ref.py") +
                          " trace -m " + model + " --tokens " + ids + " --decode 2" + " --numerics f32 -o " + ref;
        bptest::RunResult py = bptest::RunShell(cmd);
        ASSERT_EQ(py.exit_code, 0) << py.err;
    } else {
        std::string stem = mc.file;
        ref = bptest::SourcePath("fixtures/expected/" + stem.substr(0, stem.size() - 5) + ".p1.f32.npz");
        bn_error err{};
        parity_trace *t = nullptr;
        ASSERT_OK(parity_trace_open(ref.c_str(), &t, &err), err);
        TracePtr hold(t);
        for (int64_t i = 0; i < parity_trace_tap_count(t); i++) taps += (i ? "," : "") + std::string(parity_trace_tap_name(t, i));
    }
    ASSERT_NO_FATAL_FAILURE(Record(model, mc.prompt, dir.file("e.npz"), BN_NUMERICS_F32, BN_FAULT_NONE,
                                   taps.empty() ? nullptr : taps.c_str()));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &c));
    const parity_compare_result *r = c.res.get();
    EXPECT_EQ(c.policy_name, "reference");
    EXPECT_TRUE(r->pass) << (r->first.found ? r->first.tap : r->diagnosis);
    EXPECT_EQ(r->n_evals, 3u);
    EXPECT_EQ(r->counts.compared, std::get<1>(GetParam()));
    EXPECT_EQ(r->counts.missing_reference + r->counts.missing_subject, 0);
    for (size_t i = 0; i < r->n_taps; i++) EXPECT_LT(r->taps[i].m.nmse, 1e-10) << r->taps[i].name;
}

INSTANTIATE_TEST_SUITE_P(
    Models, CompareReference,
    ::testing::Values(std::make_tuple(bptest::ModelCase{"shared_f32", true, "tiny-bitnet-f32.gguf", kBitnetP1},
                                      (int64_t)3 * 71),
                      // p1 stores 9 taps (fixtures/README.md)
                      std::make_tuple(bptest::ModelCase{"fixture_b158_f32", false, "b158-f32.gguf",
                                                        bptest::FixturePrompt("p1")},
                                      (int64_t)3 * 9)),
    [](const auto &info) { return std::string(std::get<0>(info.param).label); });

// ---- tokens ----

// Against bitnet.cpp's trace, or (no ../shared) the fixture's expected trace.
class CompareTokens : public ::testing::TestWithParam<bptest::ModelCase> {};

TEST_P(CompareTokens, MismatchStopsBeforeActivations) {
    REQUIRE_MODEL(model, GetParam());
    const std::string ref = GetParam().shared ? bptest::SharedPath("reference-traces/bitnetcpp/i2s/p1.npz")
                                              : bptest::SourcePath("fixtures/expected/b158-i2s.p1.compat.npz");
    if (ref.empty()) GTEST_SKIP() << "../shared/reference-traces/bitnetcpp/i2s/p1.npz absent: skipped";
    bptest::TempDir dir;
    std::vector<int32_t> other = GetParam().prompt;
    other[3] = 46;  // one id differs, as a different tokenizer would make it
    ASSERT_NO_FATAL_FAILURE(Record(model, other, dir.file("e.npz")));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &c));
    const parity_compare_result *r = c.res.get();
    EXPECT_FALSE(r->pass);
    EXPECT_TRUE(r->tokenization_mismatch);
    EXPECT_EQ(std::string(r->diagnosis), "tokenization mismatch: e0: token 3 is 46 in the subject, " +
                                             std::to_string(GetParam().prompt[3]) + " in the reference");
    EXPECT_EQ(r->n_taps, 0u);
    EXPECT_EQ(r->n_evals, 0u);
    EXPECT_FALSE(r->first.found);
    ASSERT_EQ(r->n_hints, 1u);
    EXPECT_STREQ(r->hints[0].name, "tokenization-mismatch");
}

INSTANTIATE_TEST_SUITE_P(Models, CompareTokens,
                         ::testing::Values(bptest::SharedTinyI2s(), bptest::FixtureB158I2s()),
                         bptest::ModelCaseName());

// ---- hand-made traces: the numbers are computed by hand ----

namespace {

struct Tap {
    const char *name;
    std::vector<int64_t> shape;
    std::vector<float> data;
};

void WriteTrace(const std::string &path, const char *producer, const std::vector<int32_t> &tokens,
                const std::vector<Tap> &taps) {
    bn_error err{};
    parity_trace_writer *w;
    ASSERT_OK(parity_trace_writer_open(path.c_str(), NPZ_STORED, &w, &err), err);
    for (const Tap &t : taps)
        ASSERT_OK(parity_trace_writer_add_tap(w, 0, t.name, NPZ_F32, t.shape.data(), (int)t.shape.size(), t.data.data(), &err), err);
    parity_eval ev{"e0", tokens.data(), (int64_t)tokens.size(), 0};
    parity_trace_meta m{};
    m.producer_name = producer;
    m.numerics = "f32";
    m.threads = -1;
    m.evals = &ev;
    m.n_evals = 1;
    ASSERT_OK(parity_trace_writer_finish(w, &m, &err), err);
}

}  // namespace

TEST(CompareSynthetic, StatusesAndHandComputedMetrics) {
    bptest::TempDir dir;
    const float nan = NAN;
    std::vector<Tap> s = {
        {"token_embd", {2, 3}, {1, 2, 3, 4, 5, 6}},
        {"blk.0.attn_norm", {2, 3}, {1, 2, 3, 4, 5, 7}},   // one element off by 1
        {"blk.0.attn_q", {2, 3}, {1, 2, 3, 4, 5, 6}},      // reference is (3, 2)
        {"blk.0.attn_k", {2, 2}, {1, nan, 3, 4}},          // NaN where the reference is finite
        {"blk.0.only_subject", {1}, {0}},
        {"blk.1.out", {2, 2}, {2, 4, 6, 8}},               // exactly 2x the reference
    };
    std::vector<Tap> r = {
        {"token_embd", {2, 3}, {1, 2, 3, 4, 5, 6}},
        {"blk.0.attn_norm", {2, 3}, {1, 2, 3, 4, 5, 6}},
        {"blk.0.attn_q", {3, 2}, {1, 2, 3, 4, 5, 6}},
        {"blk.0.attn_k", {2, 2}, {1, 2, 3, 4}},
        {"blk.1.out", {2, 2}, {1, 2, 3, 4}},
        {"blk.1.only_reference", {1}, {0}},
    };
    ASSERT_NO_FATAL_FAILURE(WriteTrace(dir.file("s.npz"), "bitparity", {1, 2}, s));
    ASSERT_NO_FATAL_FAILURE(WriteTrace(dir.file("r.npz"), "someone-else", {1, 2}, r));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("s.npz"), dir.file("r.npz"), &c, "reference"));
    const parity_compare_result *res = c.res.get();
    ASSERT_EQ(res->n_taps, 7u);
    const parity_tap_status want[] = {PARITY_TAP_PASS, PARITY_TAP_FAIL, PARITY_TAP_SHAPE_MISMATCH, PARITY_TAP_FAIL,
                                      PARITY_TAP_MISSING_REFERENCE, PARITY_TAP_FAIL, PARITY_TAP_MISSING_SUBJECT};
    for (size_t i = 0; i < 7; i++) EXPECT_EQ(res->taps[i].status, want[i]) << res->taps[i].name;
    const parity_tap_result *norm = &res->taps[1];
    EXPECT_DOUBLE_EQ(norm->m.nmse, 1.0 / 91.0);  // Σd² = 1, Σb² = 1+4+9+16+25+36
    EXPECT_EQ(norm->m.max_abs, 1.0);
    EXPECT_EQ(norm->m.worst_index, 5u);
    EXPECT_STREQ(norm->check.metric, "nmse");
    EXPECT_EQ(res->taps[3].m.nan_a, 1u);
    EXPECT_STREQ(res->taps[3].check.metric, "nan_count");
    EXPECT_DOUBLE_EQ(res->taps[5].m.scale, 2.0);
    EXPECT_DOUBLE_EQ(res->taps[5].m.nmse, 1.0);  // Σ(2b−b)²/Σb²
    EXPECT_EQ(res->counts.compared, 4);
    EXPECT_EQ(res->counts.pass, 1);
    EXPECT_EQ(res->counts.fail, 3);
    EXPECT_EQ(res->counts.bit_identical, 1);
    EXPECT_EQ(res->counts.shape_mismatch, 1);
    EXPECT_EQ(res->counts.missing_reference, 1);
    EXPECT_EQ(res->counts.missing_subject, 1);
    ASSERT_TRUE(res->first.found);
    EXPECT_STREQ(res->first.tap, "blk.0.attn_norm");
    EXPECT_EQ(res->first.layer, 0);
    EXPECT_DOUBLE_EQ(res->first.value, 1.0 / 91.0);
    EXPECT_EQ(res->first.limit, 1e-9);
    ASSERT_EQ(res->n_layer, 2);
    EXPECT_DOUBLE_EQ(res->evals[0].growth[0], 1.0 / 91.0);  // the NaN tap's nmse is over finite pairs: 0
    EXPECT_DOUBLE_EQ(res->evals[0].growth[1], 1.0);
}

TEST(CompareDefaultPolicy, FromProducersAndWeightTypes) {
    bptest::TempDir dir;
    auto trace = [&](const char *file, const char *body) {
        std::string path = dir.file(file);
        std::string cmd = std::string(BITPARITY_PYTHON) + " -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w'); "
                          "z.writestr('meta.yaml', sys.argv[2]); z.close()\" '" + path + "' '" +
                          "trace: bitparity/v1\nlayout: canonical\nevaluations:\n  - {id: e0, tokens: [1], p0: 0}\n" +
                          body + "'";
        EXPECT_EQ(bptest::RunShell(cmd).exit_code, 0);
        bn_error err{};
        parity_trace *t = nullptr;
        EXPECT_OK(parity_trace_open(path.c_str(), &t, &err), err);
        return TracePtr(t);
    };
    // What decides is what the traces record: producer, numerics, model.weight_type, model.sha256.
    TracePtr eng = trace("a.npz", "producer: {name: bitparity}\nsettings: {numerics: ggml-compat}\n"
                                  "model: {path: /m/tiny-bitnet-i2s.gguf, sha256: aaa, weight_type: i2_s}\n");
    TracePtr eng32 = trace("b.npz", "producer: {name: bitparity}\nsettings: {numerics: f32}\n"
                                    "model: {path: x/m.gguf, sha256: aaa, weight_type: i2_s}\n");
    TracePtr bnc = trace("c.npz", "producer: {name: bitnet.cpp}\nmodel: {file: tiny-bitnet-i2s.gguf, sha256: aaa}\n");
    TracePtr bnc32 = trace("d.npz", "producer: {name: bitnet.cpp}\nmodel: {file: m.gguf, sha256: bbb, weight_type: f32}\n");
    TracePtr lcpp = trace("e.npz", "producer: {name: llama.cpp}\nmodel: {file: tiny-bitnet-llamacpp-tq2_0.gguf, sha256: ccc}\n");
    TracePtr py = trace("f.npz", "producer: {name: bitparity-reference}\nsettings: {numerics: f32}\nmodel: {sha256: aaa}\n");
    ASSERT_TRUE(eng && eng32 && bnc && bnc32 && lcpp && py);
    char why[256];
    EXPECT_STREQ(parity_compare_default_policy(eng.get(), bnc.get(), why, sizeof why), "ggml-compat");
    EXPECT_STREQ(why, "engine in ggml-compat numerics vs bitnet.cpp: subject bitparity ggml-compat, reference bitnet.cpp");
    EXPECT_STREQ(parity_compare_default_policy(bnc.get(), eng.get(), nullptr, 0), "ggml-compat");
    EXPECT_STREQ(parity_compare_default_policy(eng32.get(), bnc.get(), nullptr, 0), "cross-backend");
    EXPECT_STREQ(parity_compare_default_policy(eng.get(), eng.get(), nullptr, 0), "exact");
    EXPECT_STREQ(parity_compare_default_policy(eng.get(), eng32.get(), nullptr, 0), "cross-backend");
    EXPECT_STREQ(parity_compare_default_policy(eng.get(), bnc32.get(), why, sizeof why), "quantized");
    EXPECT_EQ(std::string(why).rfind("weight types differ (i2_s vs f32)", 0), 0u) << why;
    // llama.cpp's dump records no weight type and names another model: unknown, not read off "tq2_0" in its name
    EXPECT_EQ(parity_trace_weight_type(lcpp.get()), nullptr);
    EXPECT_STREQ(parity_compare_default_policy(eng.get(), lcpp.get(), nullptr, 0), "cross-backend");
    // the reference's trace of the same model file (same sha256) shares the engine's declared i2_s
    EXPECT_STREQ(parity_compare_default_policy(eng32.get(), py.get(), nullptr, 0), "reference-int8");  // i2_s in f32
    EXPECT_EQ(parity_trace_weight_type(py.get()), nullptr);
    // settings.lm_head: absent and an explicit "stored" are the same run; q8_0 against either is its own weight type
    TracePtr stored = trace("h.npz", "producer: {name: bitparity}\nsettings: {numerics: ggml-compat, lm_head: stored}\n"
                                     "model: {sha256: aaa, weight_type: i2_s}\n");
    TracePtr q8 = trace("i.npz", "producer: {name: bitparity}\nsettings: {numerics: ggml-compat, lm_head: q8_0}\n"
                                 "model: {sha256: aaa, weight_type: i2_s}\n");
    ASSERT_TRUE(stored && q8);
    EXPECT_STREQ(parity_trace_lm_head(eng.get()), "stored");
    EXPECT_STREQ(parity_trace_lm_head(q8.get()), "q8_0");
    EXPECT_STREQ(parity_compare_default_policy(eng.get(), stored.get(), why, sizeof why), "exact") << why;
    EXPECT_STREQ(parity_compare_default_policy(stored.get(), bnc.get(), nullptr, 0), "ggml-compat");
    EXPECT_STREQ(parity_compare_default_policy(q8.get(), stored.get(), why, sizeof why), "quantized");
    EXPECT_EQ(std::string(why).rfind("lm_head types differ (q8_0 vs stored)", 0), 0u) << why;
    EXPECT_STREQ(parity_compare_default_policy(eng.get(), q8.get(), why, sizeof why), "quantized");
    EXPECT_EQ(std::string(why).rfind("lm_head types differ (stored vs q8_0)", 0), 0u) << why;
    // renaming the model file changes nothing (a file called ggml-model-i2_s.gguf is not taken for i2_s)
    for (const char *name : {"ggml-model-i2_s.gguf", "model.gguf", "tq1_0-f16-q8_0.gguf"}) {
        const std::string body = std::string("producer: {name: my-port}\nmodel: {file: ") + name + ", sha256: ddd}\n";
        TracePtr foreign = trace("g.npz", body.c_str());
        ASSERT_TRUE(foreign);
        EXPECT_STREQ(parity_compare_default_policy(foreign.get(), bnc32.get(), why, sizeof why), "cross-backend")
            << name << ": " << why;
    }
}

// ---- receipts ----

TEST(Receipt, YamlAndJsonLoadWithTheDocumentedKeys) {
    REQUIRE_SHARED(model, "models/tiny-bitnet-llamacpp-f32.gguf");
    REQUIRE_SHARED(ref, "reference-traces/llamacpp/silu-f32-p1.npz");
    bptest::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(Record(model, kLlamaP1, dir.file("e.npz"), BN_NUMERICS_F32));
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("e.npz"), ref, &c));
    bn_error err{};
    ASSERT_OK(parity_compare_add_hint(c.res.get(), "ffn-activation", "SiLU instead of relu²: \"quoted\"", "nmse 0.47", &err), err);
    parity_receipt_input in{c.s.get(), c.r.get(), c.ms.get(), c.mr.get(), c.policy.get(), "auto: test", c.res.get(),
                            2, BN_SIMD_PORTABLE, 1, nullptr, 0.25, nullptr, nullptr, nullptr, nullptr, nullptr, PARITY_STORAGE_FILE};
    parity_receipt *rc;
    ASSERT_OK(parity_receipt_build(&in, &rc, &err), err);
    Handle<parity_receipt, parity_receipt_free> hold(rc);
    ASSERT_OK(parity_receipt_save(rc, PARITY_RECEIPT_YAML, dir.file("r.yaml").c_str(), &err), err);
    ASSERT_OK(parity_receipt_save(rc, PARITY_RECEIPT_JSON, dir.file("r.json").c_str(), &err), err);
    const char *check =
        "import hashlib, json, sys, yaml\n"
        "y = yaml.safe_load(open(sys.argv[1])); j = json.load(open(sys.argv[2]))\n"
        "assert y == j\n"
        "for k in ['receipt','created','tool','host','model','subject','reference','input','policy','summary',\n"
        "          'error_growth','taps','logits','timings']: assert k in y, k\n"
        "assert y['receipt'] == 'bitparity/v1'\n"
        "assert set(y['tool']) >= {'version','commit'} and set(y['host']) >= {'cpu','simd','threads'}\n"
        "assert y['host']['simd'] == 'portable' and y['host']['threads'] == 2\n"
        "s = y['summary']; assert s['verdict'] == 'fail'\n"
        "fd = s['first_divergence']\n"
        "assert (fd['evaluation'], fd['tap'], fd['layer'], fd['metric']) == ('e0', 'blk.0.ffn_act', 0, 'nmse'), fd\n"
        "assert abs(fd['value'] - 0.467) < 1e-3 and fd['limit'] == 1e-5\n"
        "assert s['failing_evaluations'] == ['e0'] and s['counts']['compared'] == 71\n"
        "assert s['hints'] == [{'name': 'ffn-activation', 'message': 'SiLU instead of relu\\u00b2: \"quoted\"',\n"
        "                       'evidence': 'nmse 0.47'}]\n"
        "assert y['input']['evaluations'][0] == {'id': 'e0', 'tokens': [509, 1, 100, 200, 300, 400, 500, 7], 'p0': 0}\n"
        "assert y['policy']['name'] == 'cross-backend' and len(y['policy']['sha256']) == 64\n"
        "for side, path in (('subject', sys.argv[3]), ('reference', sys.argv[4])):\n"
        "    assert y[side]['sha256'] == hashlib.sha256(open(path, 'rb').read()).hexdigest(), side\n"
        "assert y['reference']['producer']['name'] == 'llama.cpp' and y['reference']['map']['name'] == 'llama.cpp'\n"
        "t = [t for t in y['taps'] if t['name'] == 'blk.0.ffn_act'][0]\n"
        "assert t['status'] == 'fail' and t['shape'] == [8, 512] and t['rows'] == [0, 8]\n"
        "assert set(t['metrics']) >= {'max_abs','mean_abs','rms_err','nmse','cosine','rel_rms','scale','worst'}\n"
        "assert t['limits']['nmse_max'] == 1e-5 and t['failed']['metric'] == 'nmse'\n"
        "g = y['error_growth']; assert g['layers'] == 4 and len(g['evaluations'][0]['nmse_max']) == 4\n"
        "assert g['evaluations'][0]['nmse_max'][0] >= fd['value']\n"
        "assert y['logits'][0]['evaluation'] == 'e0' and y['logits'][0]['positions'] == 8\n"
        "assert y['timings']['open_s'] == 0.25\n"
        "print('ok')\n";
    bptest::WriteFile(dir.file("check.py"), check, strlen(check));
    bptest::RunResult py = bptest::RunShell(std::string(BITPARITY_PYTHON) + " " + dir.file("check.py") + " " +
                                            dir.file("r.yaml") + " " + dir.file("r.json") + " " + dir.file("e.npz") +
                                            " " + ref);
    EXPECT_EQ(py.exit_code, 0) << py.out << py.err;
    EXPECT_EQ(py.out, "ok\n");
}

// ---- hints on hand-made traces (docs/hints.md) ----

namespace {

// The hints of a comparison (no model), as "name: message (evidence)" lines.
std::string HintsOf(const Compared &c) {
    bn_error err{};
    parity_tapview *a = nullptr, *b = nullptr;
    EXPECT_OK(parity_tapview_open(c.s.get(), c.ms.get(), &a, &err), err);
    EXPECT_OK(parity_tapview_open(c.r.get(), c.mr.get(), &b, &err), err);
    if (a && b) {
        EXPECT_OK(parity_hints_find(c.res.get(), a, b, nullptr, nullptr, &err), err);
    }
    parity_tapview_free(a);
    parity_tapview_free(b);
    std::string out;
    for (size_t i = 0; i < c.res->n_hints; i++)
        out += std::string(c.res->hints[i].name) + ": " + c.res->hints[i].message + " (" + c.res->hints[i].evidence + ")\n";
    return out;
}

// [T, W] values with no two columns alike.
std::vector<float> Columns(int64_t T, int64_t W, float seed) {
    std::vector<float> v((size_t)(T * W));
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < W; j++) v[(size_t)(t * W + j)] = std::sin(seed + 0.37f * (float)j + 1.3f * (float)t * (float)(j % 7 + 1));
    return v;
}

// HF's `permute` within heads of D: row q of a head takes the NEOX row (q mod 2)·D/2 + q/2.
std::vector<float> HfInterleave(const std::vector<float> &x, int64_t T, int64_t W, int64_t D) {
    std::vector<float> y(x.size());
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < W; j++) {
            const int64_t g = j / D, q = j % D;
            y[(size_t)(t * W + j)] = x[(size_t)(t * W + g * D + (q % 2) * (D / 2) + q / 2)];
        }
    return y;
}

}  // namespace

// q (2 heads of 32) and k (1 head) interleaved the HF way, the scores equal:
// the q/k rows are named a within-head permutation (HF's), the whole an
// equivalent rotary layout, which passes only under a policy accepting it.
// With differing scores there is no equivalence.
TEST(HintsSynthetic, QkRowPermutationAndEquivalentRotaryLayout) {
    bptest::TempDir dir;
    const int64_t T = 3;
    const std::vector<float> q = Columns(T, 64, 0.1f), k = Columns(T, 32, 2.0f), sc = Columns(1, 18, 5.0f);
    std::vector<float> sc_off = sc;
    sc_off[4] += 0.5f;
    const std::vector<Tap> ref = {{"blk.0.attn_q", {T, 64}, q}, {"blk.0.attn_k", {T, 32}, k},
                                  {"blk.0.attn_scores", {2, 3, 3}, sc}, {"blk.0.out", {T, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}};
    std::vector<Tap> sub = ref;
    sub[0].data = HfInterleave(q, T, 64, 32);
    sub[1].data = HfInterleave(k, T, 32, 32);
    WriteTrace(dir.file("r.npz"), "bitparity", {1, 2, 3}, ref);
    WriteTrace(dir.file("s.npz"), "bitparity", {1, 2, 3}, sub);
    sub[2].data = sc_off;
    WriteTrace(dir.file("s2.npz"), "bitparity", {1, 2, 3}, sub);

    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("s.npz"), dir.file("r.npz"), &c, "exact"));
    ASSERT_FALSE(c.res->pass);
    EXPECT_STREQ(c.res->first.tap, "blk.0.attn_q");
    const std::string h = HintsOf(c);
    EXPECT_NE(h.find("qk-row-permutation: blk.0.attn_q equals the reference's up to a permutation of the rows within "
                     "each head (head_dim 32): HF's `permute` interleave"), std::string::npos) << h;
    // 60 of 64 rows move (rows 0 and 31 of each head stay); row 1 takes NEOX row 16
    EXPECT_NE(h.find("all 64 columns over 3 token(s) equal a column of the same head in the reference (worst NMSE 0); "
                     "60 moved, e.g. row 1 of each head = the reference's row 16"), std::string::npos) << h;
    EXPECT_NE(h.find("equivalent-rotary-layout: equivalent rotary layout: attention identical from attn_scores on (all "
                     "2 failing taps are q/k"), std::string::npos) << h;
    EXPECT_FALSE(parity_hints_accept(c.res.get(), c.policy.get()));  // exact accepts nothing
    EXPECT_EQ(c.res->n_accepted, 0u);
    bn_error err{};
    parity_policy *p = nullptr;
    const std::string text = "policy: bitparity/v1\nname: x\naccept: [equivalent-rotary-layout]\ndefaults: {bit_identical: true}\n";
    ASSERT_OK(parity_policy_load_string(text.data(), text.size(), "accept.yaml", &p, &err), err);
    PolicyPtr accept(p);
    EXPECT_TRUE(parity_hints_accept(c.res.get(), accept.get()));
    EXPECT_EQ(c.res->pass, 1);
    ASSERT_EQ(c.res->n_accepted, 1u);
    EXPECT_STREQ(c.res->accepted[0], "equivalent-rotary-layout");

    Compared d;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("s2.npz"), dir.file("r.npz"), &d, "exact"));
    const std::string h2 = HintsOf(d);
    EXPECT_NE(h2.find("qk-row-permutation"), std::string::npos) << h2;
    EXPECT_EQ(h2.find("equivalent-rotary-layout"), std::string::npos) << h2;
    EXPECT_FALSE(parity_hints_accept(d.res.get(), accept.get()));
    EXPECT_FALSE(d.res->pass);
}

// subject = c_i × reference per channel on 3 tokens (c_i = 1 + i/10): a
// per-channel ratio; subject = −reference: a sign flip, not a scale.
TEST(HintsSynthetic, ChannelScaleAndSignFlip) {
    bptest::TempDir dir;
    const int64_t T = 3, W = 8;
    const std::vector<float> x = Columns(T, W, 0.5f);
    std::vector<float> scaled(x.size()), neg(x.size());
    for (size_t i = 0; i < x.size(); i++) scaled[i] = x[i] * (1.0f + 0.1f * (float)(i % W)), neg[i] = -x[i];
    WriteTrace(dir.file("r.npz"), "bitparity", {1, 2, 3}, {{"blk.0.attn_sub_norm", {T, W}, x}});
    WriteTrace(dir.file("s.npz"), "bitparity", {1, 2, 3}, {{"blk.0.attn_sub_norm", {T, W}, scaled}});
    WriteTrace(dir.file("rg.npz"), "bitparity", {1, 2, 3}, {{"blk.0.ffn_gate", {T, W}, x}});
    WriteTrace(dir.file("sg.npz"), "bitparity", {1, 2, 3}, {{"blk.0.ffn_gate", {T, W}, neg}});
    Compared c;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("s.npz"), dir.file("r.npz"), &c, "exact"));
    std::string h = HintsOf(c);
    EXPECT_NE(h.find("channel-scale: blk.0.attn_sub_norm: subject/reference is a constant per channel (from 1 to 1.7, "
                     "the same on all 3 tokens)"), std::string::npos) << h;
    EXPECT_EQ(h.find("scale-factor"), std::string::npos) << h;
    Compared g;
    ASSERT_NO_FATAL_FAILURE(Compare(dir.file("sg.npz"), dir.file("rg.npz"), &g, "exact"));
    h = HintsOf(g);
    EXPECT_NE(h.find("sign-flip: subject = −reference at blk.0.ffn_gate: a sign flip (a negated weight), not a scale"),
              std::string::npos) << h;
    EXPECT_NE(h.find("(scale_fit -1 leaves NMSE "), std::string::npos) << h;
    EXPECT_NE(h.find(" of the 4 before the fit)"), std::string::npos) << h;  // |−x − x|² / |x|² = 4
    EXPECT_EQ(h.find("scale-factor"), std::string::npos) << h;
}
