// test_forward.cc — the engine's forward pass against bitnet.cpp's own graph
// nodes (../shared/reference-traces): bit-identical taps in ggml-compat mode,
// greedy tokens, tap injection. Without ../shared the bit-identity and greedy
// checks are covered by test_fixtures.cc (the reference's expected traces,
// bit-identical in ggml-compat), and the engine's own properties run on the
// fixture models (Models/Forward.*/fixture_*). Thread-count independence is
// tested on every fixture model in test_fixtures.cc.
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/forward.h"
#include "bitnet/model.h"
#include "bitnet/sampler.h"
#include "bitnet/session.h"
#include "bitnet/taps.h"
#include "parity/trace.h"
}

namespace {

using bptest::Handle;

struct Recorded {
    std::vector<float> f32;
    std::vector<int8_t> i8;
    std::vector<int64_t> shape;
};
// (evaluation, tap name) -> value
using TapMap = std::map<std::pair<int64_t, std::string>, Recorded>;

bn_status Record(void *user, bn_tap *tap, bn_error *) {
    auto *m = static_cast<TapMap *>(user);
    Recorded r;
    int64_t n = 1;
    for (int d = 0; d < tap->ndim; d++) r.shape.push_back(tap->shape[d]), n *= tap->shape[d];
    if (tap->dtype == BN_TAP_I8) r.i8.assign((int8_t *)tap->data, (int8_t *)tap->data + n);
    else r.f32.assign((float *)tap->data, (float *)tap->data + n);
    (*m)[{tap->eval, tap->name}] = std::move(r);
    return BN_OK;
}

// Runs the prompt and n_decode greedy steps; returns every selected tap and
// the greedy token after each evaluation.
struct EngineRun {
    TapMap taps;
    std::vector<int32_t> greedy;
};

EngineRun RunEngine(const bn_model *m, const std::vector<int32_t> &prompt, int n_decode, int threads, const char *globs,
              bn_numerics numerics = BN_NUMERICS_GGML_COMPAT) {
    EngineRun run;
    bn_error err{};
    bn_tap_set *ts = nullptr;
    EXPECT_OK(bn_tap_set_create(m->hp.n_layer, globs, &ts, &err), err);
    TapSetPtr taps(ts);
    bn_ctx_params p = bn_ctx_params_init();
    p.n_threads = threads;
    p.numerics = numerics;
    p.observe = taps.get();
    p.observe_fn = Record;
    p.observe_user = &run.taps;
    bn_ctx *c = nullptr;
    EXPECT_OK(bn_ctx_create(m, &p, &c, &err), err);
    if (!c) return run;  // the failure is reported; nothing to run
    CtxPtr ctx(c);
    std::vector<int32_t> toks = prompt;
    for (int k = 0; k <= n_decode; k++) {
        EXPECT_OK(bn_ctx_eval(ctx.get(), toks.data(), (int64_t)toks.size(), &err), err);
        const int32_t next =
            bn_argmax(bn_ctx_logits(ctx.get()) + (toks.size() - 1) * m->hp.n_vocab, m->hp.n_vocab);
        run.greedy.push_back(next);
        toks = {next};
    }
    return run;
}

// bitnet.cpp's node (name, op) for each canonical per-block tap
// (docs/specs/ggml-trace-names.md); {} = no node.
struct NodeName {
    const char *name, *op;
};
const std::map<std::string, NodeName> kBlockNodes = {
    {"attn_norm", {"attn_norm-", "MUL"}},         {"attn_q", {"Qcur-", "MUL_MAT"}},
    {"attn_k", {"Kcur-", "MUL_MAT"}},             {"attn_v", {"Vcur-", "MUL_MAT"}},
    {"attn_q_rope", {"Qcur-", "ROPE"}},           {"attn_k_rope", {"Kcur-", "ROPE"}},
    {"attn_probs", {"kq_soft_max_ext-", "SOFT_MAX"}}, {"attn_ctx", {"kqv_out-", "CONT"}},
    {"attn_sub_norm", {"attn_sub_norm-", "MUL"}}, {"attn_out", {"attn_o_out-", "MUL_MAT"}},
    {"ffn_inp", {"ffn_inp-", "ADD"}},             {"ffn_norm", {"ffn_norm-", "MUL"}},
    {"ffn_gate", {"ffn_gate-", "MUL_MAT"}},       {"ffn_up", {"ffn_up-", "MUL_MAT"}},
    {"ffn_act", {"ffn_out-", "MUL"}},             {"ffn_sub_norm", {"ffn_sub_norm-", "MUL"}},
    {"ffn_out", {"ffn_down-", "MUL_MAT"}},        {"out", {"l_out-", "ADD"}},
};

// The trace's value for a canonical tap of evaluation k, cropped to the
// canonical layout; empty when there is no node.
std::vector<float> TraceValue(const parity_trace *t, int64_t k, const std::string &tap, int64_t n_ctx_cols) {
    std::string node, op;
    if (tap == "token_embd") node = "inp_embd", op = "GET_ROWS";
    else if (tap == "output_norm") node = "result_norm", op = "MUL";
    else if (tap == "logits") node = "logits";
    else {
        int layer;
        bn_tap_kind kind;
        if (!bn_tap_parse(tap.c_str(), &layer, &kind)) return {};
        auto it = kBlockNodes.find(bn_tap_kind_name(kind));
        if (it == kBlockNodes.end()) return {};
        node = it->second.name + std::to_string(layer);
        op = it->second.op;
    }
    bn_error err{};
    float *data = nullptr;
    npz_array_info info{};
    if (node == "logits") {
        EXPECT_OK(parity_trace_load_f32(t, k, "logits", &data, &info, &err), err);
    } else {
        int64_t i = parity_trace_find_node(t, k, node.c_str(), op.c_str(), 0);
        if (i < 0) return {};
        EXPECT_OK(parity_trace_load_f32(t, k, parity_trace_node(t, k, i)->member, &data, &info, &err), err);
    }
    std::vector<float> v(data, data + info.nelem);
    free(data);
    if (tap.find("attn_probs") != std::string::npos) {  // (nh, T, n_kv_padded) -> (nh, T, p0+T)
        const parity_node *nd = parity_trace_node(t, k, parity_trace_find_node(t, k, node.c_str(), op.c_str(), 0));
        std::vector<float> c;
        for (int64_t r = 0; r < nd->ne[1] * nd->ne[2]; r++)
            c.insert(c.end(), v.begin() + r * nd->ne[0], v.begin() + r * nd->ne[0] + n_ctx_cols);
        return c;
    }
    return v;
}

struct SharedCase {
    const char *model, *trace;
};

// A model loaded for a test (ASSERT_* inside: call through ASSERT_NO_FATAL_FAILURE).
void LoadModel(const std::string &path, ModelPtr *out) {
    bn_error err{};
    bn_model *m = nullptr;
    ASSERT_OK(bn_model_load(path.c_str(), &m, &err), err);
    out->reset(m);
}

// The shared model and its bitnet.cpp trace, opened once per test.
class ForwardVsBitnetCpp : public ::testing::TestWithParam<SharedCase> {
  protected:
    void SetUp() override {
        REQUIRE_SHARED(model_path, std::string("models/") + GetParam().model);
        REQUIRE_SHARED(trace_path, std::string("reference-traces/bitnetcpp/") + GetParam().trace);
        ASSERT_NO_FATAL_FAILURE(LoadModel(model_path, &model));
        bn_error err{};
        parity_trace *t = nullptr;
        ASSERT_OK(parity_trace_open(trace_path.c_str(), &t, &err), err);
        trace.reset(t);
        const parity_eval *e0 = parity_trace_eval(t, 0);
        prompt.assign(e0->tokens, e0->tokens + e0->n_tokens);
    }
    ModelPtr model;
    TracePtr trace;
    std::vector<int32_t> prompt; /* e0's tokens */
};

// Every canonical tap with a bitnet.cpp node, in every evaluation (prompt and
// two decode steps), is bit-identical in ggml-compat mode: F32 and I2_S
// weights, both prompts.
TEST_P(ForwardVsBitnetCpp, EveryMappedTapIsBitIdentical) {
    EngineRun run = RunEngine(model.get(), prompt, 2, 2, "*");

    int compared = 0, identical = 0;
    std::string first_diff;
    for (const auto &[key, rec] : run.taps) {
        const auto &[k, tap] = key;
        const parity_eval *ev = parity_trace_eval(trace.get(), k);
        ASSERT_NE(ev, nullptr);
        std::vector<float> ref = TraceValue(trace.get(), k, tap, ev->p0 + ev->n_tokens);
        if (ref.empty()) continue;
        ASSERT_EQ(ref.size(), rec.f32.size()) << "e" << k << " " << tap;
        compared++;
        if (!memcmp(ref.data(), rec.f32.data(), ref.size() * sizeof(float))) identical++;
        else if (first_diff.empty()) first_diff = "e" + std::to_string(k) + " " + tap;
    }
    // 4 layers x 18 mapped block taps + token_embd, output_norm, logits, per evaluation.
    EXPECT_EQ(compared, 3 * (4 * 18 + 3));
    EXPECT_EQ(identical, compared) << "first difference at " << first_diff;
}

// The greedy continuation equals the 16 tokens bitnet.cpp generated.
TEST_P(ForwardVsBitnetCpp, GreedyTokensMatch) {
    int64_t n_greedy = 0;
    const int32_t *greedy = parity_trace_greedy_tokens(trace.get(), &n_greedy);
    ASSERT_EQ(n_greedy, 16);
    EngineRun run = RunEngine(model.get(), prompt, 15, 1, "logits");
    EXPECT_EQ(run.greedy, std::vector<int32_t>(greedy, greedy + 16));
}

INSTANTIATE_TEST_SUITE_P(Shared, ForwardVsBitnetCpp,
                         ::testing::Values(SharedCase{"tiny-bitnet-i2s.gguf", "i2s/p1.npz"},
                                           SharedCase{"tiny-bitnet-i2s.gguf", "i2s/p2.npz"},
                                           SharedCase{"tiny-bitnet-f32.gguf", "f32/p1.npz"},
                                           SharedCase{"tiny-bitnet-f32.gguf", "f32/p2.npz"}),
                         [](const auto &info) {
                             std::string s = std::string(info.param.model).substr(12, 3) + "_" + info.param.trace;
                             for (char &c : s)
                                 if (!isalnum((unsigned char)c)) c = '_';
                             return s;
                         });

// The engine's own properties, on the shared tiny I2_S model and on its
// fixture twin (fixtures/models/b158-i2s.gguf), so that a checkout without
// ../shared still runs them.
class Forward : public ::testing::TestWithParam<bptest::ModelCase> {};

// The int8 activation taps are what i2s.md prescribes: s = 127 / max|x| per
// token, q = round_half_even(x * s), from the projection's input.
TEST_P(Forward, Int8InputTapsFollowTheI2sRecipe) {
    REQUIRE_MODEL(model_path, GetParam());
    const std::vector<int32_t> &kP1 = GetParam().prompt;
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(LoadModel(model_path, &m));
    EngineRun run = RunEngine(m.get(), kP1, 0, 2, "blk.1.attn_norm,blk.1.attn_q.in_q8,blk.1.attn_q.in_scale");
    const auto &x = run.taps.at({0, "blk.1.attn_norm"}).f32;
    const auto &q = run.taps.at({0, "blk.1.attn_q.in_q8"}).i8;
    const auto &s = run.taps.at({0, "blk.1.attn_q.in_scale"}).f32;
    const int64_t H = m->hp.n_embd, T = (int64_t)kP1.size();
    ASSERT_EQ((int64_t)s.size(), T);
    ASSERT_EQ((int64_t)q.size(), T * H);
    for (int64_t t = 0; t < T; t++) {
        double amax = 1e-5;
        for (int64_t i = 0; i < H; i++) amax = std::max(amax, (double)std::fabs(x[t * H + i]));
        const float scale = (float)(127.0 / amax);
        EXPECT_EQ(s[t], scale) << "token " << t;
        for (int64_t i = 0; i < H; i++)
            EXPECT_EQ(q[t * H + i], (int8_t)std::nearbyint(x[t * H + i] * scale)) << t << "," << i;
    }
}

// Injection replaces a value before the graph continues: zeroing the FFN's
// output makes the block's output equal its attention residual.
bn_status ZeroTap(void *, bn_tap *tap, bn_error *) {
    int64_t n = 1;
    for (int d = 0; d < tap->ndim; d++) n *= tap->shape[d];
    memset(tap->data, 0, (size_t)n * sizeof(float));
    return BN_OK;
}

class ForwardInjection : public Forward {};

TEST_P(ForwardInjection, OverridesATap) {
    REQUIRE_MODEL(model_path, GetParam());
    const std::vector<int32_t> &kP1 = GetParam().prompt;
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(LoadModel(model_path, &m));
    bn_error err{};
    bn_tap_set *obs = nullptr, *inj = nullptr;
    const std::string blk = "blk." + std::to_string(m->hp.n_layer - 2);  // blk.2 of 4, blk.0 of 2
    ASSERT_OK(bn_tap_set_create(m->hp.n_layer, (blk + ".ffn_inp," + blk + ".out,logits").c_str(), &obs, &err), err);
    ASSERT_OK(bn_tap_set_create(m->hp.n_layer, (blk + ".ffn_out").c_str(), &inj, &err), err);
    TapSetPtr o(obs), i(inj);
    TapMap taps;
    bn_ctx_params p = bn_ctx_params_init();
    p.observe = obs, p.observe_fn = Record, p.observe_user = &taps;
    p.inject = inj, p.inject_fn = ZeroTap;
    bn_ctx *c = nullptr;
    ASSERT_OK(bn_ctx_create(m.get(), &p, &c, &err), err);
    CtxPtr ctx(c);
    ASSERT_OK(bn_ctx_eval(ctx.get(), kP1.data(), (int64_t)kP1.size(), &err), err);
    EXPECT_EQ(taps.at({0, blk + ".out"}).f32, taps.at({0, blk + ".ffn_inp"}).f32);
    // and the injected value changes what follows
    EngineRun plain = RunEngine(m.get(), kP1, 0, 1, "logits");
    EXPECT_NE(plain.taps.at({0, "logits"}).f32, taps.at({0, "logits"}).f32);
}

// Bad input to the engine gives errors, not crashes.
TEST_P(Forward, RejectsOutOfRangeTokensAndFullContext) {
    REQUIRE_MODEL(model_path, GetParam());
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(LoadModel(model_path, &m));
    bn_error err{};
    bn_ctx_params p = bn_ctx_params_init();
    p.n_ctx = 16;
    bn_ctx *c = nullptr;
    ASSERT_OK(bn_ctx_create(m.get(), &p, &c, &err), err);
    CtxPtr ctx(c);
    const int32_t bad[2] = {5, 512};
    EXPECT_EQ(bn_ctx_eval(ctx.get(), bad, 2, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("token id 512 at index 1"), std::string::npos) << err.msg;
    std::vector<int32_t> many(17, 5);
    EXPECT_EQ(bn_ctx_eval(ctx.get(), many.data(), 17, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("context full"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_ctx_n_past(ctx.get()), 0);
}

// Logits of a range of a batch (the last prompt position, as run asks) are
// the rows of the full batch's logits bit for bit in every numerics mode:
// the lm_head's summation order stays the whole batch's (tinyBLAS for T >= 2,
// vec_dot with f16 activations for T = 1) although it runs on fewer rows.
// Both models: the I2_S one has an F16 lm_head, the F32 one an F32 lm_head.
class ForwardLogitRange : public Forward {};

TEST_P(ForwardLogitRange, RowsEqualTheFullBatchRows) {
    REQUIRE_MODEL(model_path, GetParam());
    const std::vector<int32_t> &kP1 = GetParam().prompt;
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(LoadModel(model_path, &m));
    const int64_t T = (int64_t)kP1.size(), V = m->hp.n_vocab;
    ASSERT_GE(T, 3);
    for (bn_numerics num : {BN_NUMERICS_GGML_COMPAT, BN_NUMERICS_F32, BN_NUMERICS_LLAMACPP_COMPAT}) {
        SCOPED_TRACE(bn_numerics_name(num));
        bn_error err{};
        bn_ctx_params p = bn_ctx_params_init();
        p.numerics = num;
        p.n_threads = 2;
        bn_ctx *a = nullptr, *b = nullptr;
        ASSERT_OK(bn_ctx_create(m.get(), &p, &a, &err), err);
        ASSERT_OK(bn_ctx_create(m.get(), &p, &b, &err), err);
        CtxPtr full(a), part(b);
        ASSERT_OK(bn_ctx_eval(full.get(), kP1.data(), T, &err), err);
        ASSERT_OK(bn_ctx_eval_logits(part.get(), kP1.data(), T, T - 1, 1, &err), err);
        EXPECT_EQ(bn_ctx_logits_first(part.get()), T - 1);
        EXPECT_EQ(bn_ctx_n_logits(part.get()), 1);
        EXPECT_EQ(bn_ctx_logits_row(part.get(), T - 2), nullptr);
        const float *want = bn_ctx_logits(full.get()) + (T - 1) * V, *got = bn_ctx_logits_row(part.get(), T - 1);
        ASSERT_NE(got, nullptr);
        EXPECT_EQ(0, memcmp(want, got, (size_t)V * sizeof(float))) << "last prompt row differs";
        // a middle range, then a decode step (T = 1) in both contexts
        bn_ctx_reset(part.get());
        ASSERT_OK(bn_ctx_eval_logits(part.get(), kP1.data(), T, 1, 2, &err), err);
        bn_ctx_reset(full.get());
        ASSERT_OK(bn_ctx_eval(full.get(), kP1.data(), T, &err), err);
        EXPECT_EQ(0, memcmp(bn_ctx_logits(full.get()) + V, bn_ctx_logits(part.get()), (size_t)(2 * V) * sizeof(float)));
        ASSERT_OK(bn_ctx_eval_logits(part.get(), kP1.data(), 1, 0, 1, &err), err);
        ASSERT_OK(bn_ctx_eval(full.get(), kP1.data(), 1, &err), err);
        EXPECT_EQ(0, memcmp(bn_ctx_logits(full.get()), bn_ctx_logits(part.get()), (size_t)V * sizeof(float)));
        // ranges outside the batch are refused
        EXPECT_EQ(bn_ctx_eval_logits(part.get(), kP1.data(), T, T - 1, 2, &err), BN_ERR_INVALID);
        EXPECT_NE(std::string(err.msg).find("logits of tokens [" + std::to_string(T - 1) + ", +2)"), std::string::npos)
            << err.msg;
        EXPECT_EQ(bn_ctx_eval_logits(part.get(), kP1.data(), T, 0, 0, &err), BN_ERR_INVALID);
    }
}

INSTANTIATE_TEST_SUITE_P(Models, Forward, ::testing::Values(bptest::SharedTinyI2s(), bptest::FixtureB158I2s()),
                         bptest::ModelCaseName());
// F32 projections: the injection test's models
INSTANTIATE_TEST_SUITE_P(Models, ForwardInjection,
                         ::testing::Values(bptest::ModelCase{"shared_f32", true, "tiny-bitnet-f32.gguf",
                                                             bptest::SharedTinyI2s().prompt},
                                           bptest::ModelCase{"fixture_b158_f32", false, "b158-f32.gguf",
                                                             bptest::FixturePrompt("p1")}),
                         bptest::ModelCaseName());
INSTANTIATE_TEST_SUITE_P(Models, ForwardLogitRange,
                         ::testing::Values(bptest::SharedTinyI2s(), bptest::FixtureB158I2s(),
                                           bptest::ModelCase{"fixture_b158_f32", false, "b158-f32.gguf",
                                                             bptest::FixturePrompt("p1")}),
                         bptest::ModelCaseName());

}  // namespace

// The KV capacity of a session: ctx.n_ctx when given; the model's default
// when the positions are unknown; grown past the default when the sequence
// needs more (at most BN_CTX_MAX); cut to the positions rounded up to 256
// when that is less.
TEST(Session, KvCapacityHoldsTheSequenceRoundedTo256) {
    bn_model m{};
    m.hp.n_ctx_train = 4096;
    bn_session_params p{};
    p.ctx = bn_ctx_params_init();
    EXPECT_EQ(bn_session_n_ctx(&m, &p), 4096);  // positions unknown
    const std::vector<std::pair<int64_t, int64_t>> cases = {
        {1, 256}, {81, 256}, {256, 256}, {257, 512}, {272, 512}, {3841, 4096}, {4096, 4096}};
    for (const auto &[positions, want] : cases) {
        p.n_positions = positions;
        EXPECT_EQ(bn_session_n_ctx(&m, &p), want) << positions << " positions";
    }
    m.hp.n_ctx_train = 300;  // a default that is no multiple of 256 is never exceeded by the cut
    for (const auto &[positions, want] : std::vector<std::pair<int64_t, int64_t>>{{200, 256}, {290, 300}, {300, 300},
                                                                                   {301, 301}, {9000, BN_CTX_MAX}}) {
        p.n_positions = positions;
        EXPECT_EQ(bn_session_n_ctx(&m, &p), want) << positions << " positions, default 300";
    }
    p.ctx.n_ctx = 77;  // given: as given
    EXPECT_EQ(bn_session_n_ctx(&m, &p), 77);
}
