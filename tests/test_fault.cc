// test_fault.cc — the seeded faults as transforms outside the forward pass
// (bitnet/fault.h), on a model bitparity synthesizes itself and on the
// fixture fixtures/models/b158-i2s-edge.gguf (no ../shared):
// each fault first shows at the tap its table names and nowhere before, the
// source model is never changed, the transforms change exactly the numbers
// they say (checked against hand-computed values), and the tap edits keep
// their order around the caller's observe and inject hooks.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/fault.h"
#include "bitnet/forward.h"
#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "bitnet/quant.h"
#include "bitnet/synth.h"
#include "bitnet/taps.h"
}

namespace {

using bptest::TempDir;
using FaultedPtr = bptest::Handle<bn_faulted, bn_faulted_free>;

const std::vector<int32_t> kPrompt = {509, 12, 300, 45, 78, 260, 301, 99, 400, 13, 271, 88};

// The tiny bitnet-b1.58 I2_S model of the demo, written once per process.
const std::string &SynthModel() {
    static TempDir dir;
    static std::string path;
    if (path.empty()) {
        bn_synth_params p{};
        p.shape = bn_synth_shape_find("tiny");
        p.arch = BN_ARCH_BITNET_B158;
        p.type = BN_TYPE_I2_S;
        p.seed = 1;
        bn_error err{};
        const std::string out = dir.file("tiny-i2s.gguf");
        EXPECT_OK(bn_synth_write(&p, out.c_str(), &err), err);
        path = out;
    }
    return path;
}

ModelPtr Load(const std::string &path) {
    bn_error err{};
    bn_model *m = nullptr;
    EXPECT_OK(bn_model_load(path.c_str(), &m, &err), err);
    return ModelPtr(m);
}

struct Tap {
    int64_t eval;
    std::string name;
    std::vector<uint8_t> bytes;
    std::vector<int64_t> shape;
};

bn_status Keep(void *user, bn_tap *tap, bn_error *) {
    int64_t n = tap->dtype == BN_TAP_I8 ? 1 : 4;
    std::vector<int64_t> shape;
    for (int d = 0; d < tap->ndim; d++) n *= tap->shape[d], shape.push_back(tap->shape[d]);
    const uint8_t *p = static_cast<const uint8_t *>(tap->data);
    static_cast<std::vector<Tap> *>(user)->push_back({tap->eval, tap->name, {p, p + n}, shape});
    return BN_OK;
}

// Fills the injected tap with 1.0f and counts the calls.
bn_status InjectOnes(void *user, bn_tap *tap, bn_error *) {
    int64_t n = 1;
    for (int d = 0; d < tap->ndim; d++) n *= tap->shape[d];
    for (int64_t i = 0; i < n; i++) static_cast<float *>(tap->data)[i] = 1.0f;
    ++*static_cast<int *>(user);
    return BN_OK;
}

// The prompt and two greedy decode steps with `fault`; every tap the
// `observe` globs select, in firing order.
std::vector<Tap> RunWithFault(const bn_model *m, bn_fault fault, const char *observe = "*", const char *inject = nullptr,
                              int *injected = nullptr, const std::vector<int32_t> &prompt = kPrompt) {
    std::vector<Tap> taps;
    bn_error err{};
    bn_tap_set *obs = nullptr, *inj = nullptr;
    EXPECT_OK(bn_tap_set_create(m->hp.n_layer, observe, &obs, &err), err);
    TapSetPtr hold_obs(obs), hold_inj;
    bn_ctx_params p = bn_ctx_params_init();
    p.n_threads = 2;
    p.observe = obs, p.observe_fn = Keep, p.observe_user = &taps;
    if (inject) {
        EXPECT_OK(bn_tap_set_create(m->hp.n_layer, inject, &inj, &err), err);
        hold_inj.reset(inj);
        p.inject = inj, p.inject_fn = InjectOnes, p.inject_user = injected;
    }
    bn_faulted *f = nullptr;
    EXPECT_OK(bn_fault_apply(m, fault, &p, &f, &err), err);
    FaultedPtr faulted(f);
    if (!f) return taps;
    bn_ctx *c = nullptr;
    EXPECT_OK(bn_ctx_create(bn_faulted_model(f), &p, &c, &err), err);
    CtxPtr ctx(c);
    if (!c) return taps;
    std::vector<int32_t> toks = prompt;
    for (int k = 0; k < 3; k++) {
        EXPECT_OK(bn_ctx_eval(c, toks.data(), (int64_t)toks.size(), &err), err);
        const float *logits = bn_ctx_logits(c) + (toks.size() - 1) * m->hp.n_vocab;
        int32_t best = 0;
        for (int32_t v = 1; v < m->hp.n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        toks = {best};
    }
    return taps;
}

const Tap *Find(const std::vector<Tap> &taps, int64_t eval, const std::string &name) {
    for (const Tap &t : taps)
        if (t.eval == eval && t.name == name) return &t;
    return nullptr;
}

std::vector<float> Floats(const Tap &t) {
    std::vector<float> v(t.bytes.size() / 4);
    memcpy(v.data(), t.bytes.data(), t.bytes.size());
    return v;
}

// ---- the table --------------------------------------------------------------

TEST(FaultTable, NamesAreTheCliNamesAndRoundTrip) {
    const char *cli[] = {"none",           "gamma-inv-sqrt-h", "silu",         "layernorm", "no-subnorm",
                         "i2s-scale-clamp", "rope-normal",     "rope-pos-shift", "qk-head-perm", "round-away",
                         "kv-f32",         "nan",              "transpose-wo"};
    ASSERT_EQ(sizeof cli / sizeof cli[0], (size_t)BN_FAULT_COUNT);
    for (int i = 0; i < BN_FAULT_COUNT; i++) {
        EXPECT_STREQ(bn_fault_name((bn_fault)i), cli[i]);
        bn_fault f = BN_FAULT_COUNT;
        ASSERT_TRUE(bn_fault_parse(cli[i], &f)) << cli[i];
        EXPECT_EQ(f, (bn_fault)i);
        EXPECT_STRNE(bn_fault_description((bn_fault)i), "?");
        EXPECT_STRNE(bn_fault_first_tap((bn_fault)i), "?");
    }
    bn_fault f = BN_FAULT_SILU;
    EXPECT_FALSE(bn_fault_parse("SiLU", &f));
    EXPECT_EQ(f, BN_FAULT_SILU);
    EXPECT_STREQ(bn_fault_name(BN_FAULT_COUNT), "?");
    EXPECT_STREQ(bn_fault_description((bn_fault)-1), "?");
}

// ---- where each fault first shows ---------------------------------------------

class FaultFirstShows : public ::testing::TestWithParam<bn_fault> {};

// Every tap before the table's tap is bit-identical to the unfaulted run, that
// tap differs, and the faulted run fires the same taps in the same order.
void ExpectFirstChangeAtTheTableTap(const std::string &model, bn_fault fault, const std::vector<int32_t> &prompt) {
    int layer;
    bn_tap_kind kind;
    ASSERT_TRUE(bn_tap_parse(bn_fault_first_tap(fault), &layer, &kind)) << bn_fault_first_tap(fault);
    ModelPtr m = Load(model);
    ASSERT_TRUE(m);
    const std::vector<Tap> base = RunWithFault(m.get(), BN_FAULT_NONE, "*", nullptr, nullptr, prompt);
    const std::vector<Tap> bad = RunWithFault(m.get(), fault, "*", nullptr, nullptr, prompt);
    ASSERT_EQ(base.size(), bad.size());
    ASSERT_FALSE(base.empty());
    size_t first = base.size();
    for (size_t i = 0; i < base.size(); i++) {
        ASSERT_EQ(base[i].name, bad[i].name) << i;
        ASSERT_EQ(base[i].eval, bad[i].eval) << i;
        if (first == base.size() && base[i].bytes != bad[i].bytes) first = i;
    }
    ASSERT_LT(first, base.size()) << bn_fault_name(fault) << " changed nothing on " << model;
    EXPECT_EQ(base[first].eval, 0);
    EXPECT_EQ(base[first].name, bn_fault_first_tap(fault));
}

std::string FaultTestName(const ::testing::TestParamInfo<bn_fault> &info) {
    std::string s = bn_fault_name(info.param);
    for (char &c : s)
        if (c == '-') c = '_';
    return s;
}

TEST_P(FaultFirstShows, AtTheTapItsTableNames) { ExpectFirstChangeAtTheTableTap(SynthModel(), GetParam(), kPrompt); }

INSTANTIATE_TEST_SUITE_P(Faults, FaultFirstShows,
                         ::testing::Values(BN_FAULT_GAMMA_INV_SQRT_H, BN_FAULT_SILU, BN_FAULT_LAYERNORM,
                                           BN_FAULT_NO_SUBNORM, BN_FAULT_ROPE_NORMAL, BN_FAULT_ROPE_POS_SHIFT,
                                           BN_FAULT_QK_HEAD_PERM, BN_FAULT_KV_F32, BN_FAULT_NAN,
                                           BN_FAULT_TRANSPOSE_WO),
                         FaultTestName);

// ---- every fault bites on a shipped fixture ---------------------------------------

// fixtures/models/b158-i2s-edge.gguf (fixtures/make_models.py) is made for the
// faults that change nothing on most models: its blk.0.attn_q scale is 5e-4
// and its block 0 int8 input has exact ties. Every fault, traced on it with
// fixture prompt p1 (plus 2 greedy steps, every tap including the opt-in
// in_q8/in_scale), leaves every tap before bn_fault_first_tap bit-identical
// and changes that tap.
class FaultBitesOnFixture : public ::testing::TestWithParam<bn_fault> {};

const std::string &EdgeFixture() {
    static const std::string path = bptest::SourcePath("fixtures/models/b158-i2s-edge.gguf");
    return path;
}

TEST_P(FaultBitesOnFixture, FirstAtTheDocumentedTap) {
    ExpectFirstChangeAtTheTableTap(EdgeFixture(), GetParam(), bptest::FixturePrompt("p1"));
}

std::vector<bn_fault> EveryFault() {
    std::vector<bn_fault> all;
    for (int f = BN_FAULT_NONE + 1; f < BN_FAULT_COUNT; f++) all.push_back((bn_fault)f);
    return all;
}

INSTANTIATE_TEST_SUITE_P(Faults, FaultBitesOnFixture, ::testing::ValuesIn(EveryFault()), FaultTestName);

// What the fixture was made for, in numbers: blk.0.attn_q's stored scale is
// 5e-4, clamped to 1e-3, so the faulted attn_q is the clean one times
// f32(1e-3)/f32(5e-4) (each element once rounded); block 0's attn_q.in_q8
// changes only at the ties (x*s = j/2 with j = 1 mod 4, so half away from
// zero moves it by one code away from zero), and those exist.
TEST(FaultBitesOnFixture, ClampAndTiesHaveTheFixturesNumbers) {
    ModelPtr m = Load(EdgeFixture());
    ASSERT_TRUE(m);
    const std::vector<int32_t> p1 = bptest::FixturePrompt("p1");
    const char *taps = "blk.0.attn_norm,blk.0.attn_q.in_q8,blk.0.attn_q";
    const std::vector<Tap> base = RunWithFault(m.get(), BN_FAULT_NONE, taps, nullptr, nullptr, p1);
    const std::vector<Tap> clamp = RunWithFault(m.get(), BN_FAULT_I2S_SCALE_CLAMP, taps, nullptr, nullptr, p1);
    const std::vector<Tap> away = RunWithFault(m.get(), BN_FAULT_ROUND_AWAY, taps, nullptr, nullptr, p1);
    const Tap *q0 = Find(base, 0, "blk.0.attn_q"), *q1 = Find(clamp, 0, "blk.0.attn_q");
    ASSERT_TRUE(q0 && q1);
    const std::vector<float> a = Floats(*q0), b = Floats(*q1);
    int nonzero = 0;
    for (size_t i = 0; i < a.size(); i++) {
        // y = f32(f32(acc/s) * scale): the clean run's y / 5e-4 is acc/s up to one rounding
        const double acc_over_s = (double)a[i] / (double)5e-4f;
        ASSERT_NEAR((double)b[i], acc_over_s * (double)1e-3f, 1e-6 * std::fabs(b[i]) + 1e-30) << i;
        nonzero += a[i] != 0;
    }
    EXPECT_GT(nonzero, 0);

    const Tap *n0 = Find(base, 0, "blk.0.attn_norm"), *c0 = Find(base, 0, "blk.0.attn_q.in_q8"),
              *c1 = Find(away, 0, "blk.0.attn_q.in_q8");
    ASSERT_TRUE(n0 && c0 && c1);
    const std::vector<float> x = Floats(*n0);
    ASSERT_EQ(c0->bytes.size(), x.size());
    const int64_t T = n0->shape[0], H = n0->shape[1];
    int ties_moved = 0;
    for (int64_t t = 1; t < T; t++) {  // row 0 is the zero token's: all codes 0
        float amax = 0;
        for (int64_t i = 0; i < H; i++) amax = std::fmax(amax, std::fabs(x[t * H + i]));
        ASSERT_EQ(amax, 127.0f / 128.0f) << t;  // so s = 128 exactly and x*s = x*128
        for (int64_t i = 0; i < H; i++) {
            const float v = x[t * H + i] * 128.0f;
            const int8_t even = (int8_t)c0->bytes[t * H + i], away_code = (int8_t)c1->bytes[t * H + i];
            ASSERT_EQ(even, (int8_t)std::nearbyint(v)) << t << " " << i;
            ASSERT_EQ(away_code, (int8_t)std::round(v)) << t << " " << i;
            ties_moved += even != away_code;
        }
    }
    EXPECT_GT(ties_moved, (T - 1) * H / 10);  // about a quarter of the gammas are j = 1 mod 4
}

// The other shipped I2_S fixtures have every scale inside [1e-3, 1e3] and no
// tie the rounding mode decides: the two faults change none of their taps,
// as their descriptions say.
TEST(FaultBitesOnFixture, ClampAndRoundAwayDoNothingOnTheOtherI2sFixtures) {
    for (const char *name : {"b158-i2s", "b25-i2s"}) {
        ModelPtr m = Load(bptest::SourcePath(std::string("fixtures/models/") + name + ".gguf"));
        ASSERT_TRUE(m);
        const std::vector<int32_t> p1 = bptest::FixturePrompt("p1");
        const std::vector<Tap> base = RunWithFault(m.get(), BN_FAULT_NONE, "*", nullptr, nullptr, p1);
        for (bn_fault fault : {BN_FAULT_I2S_SCALE_CLAMP, BN_FAULT_ROUND_AWAY}) {
            const std::vector<Tap> bad = RunWithFault(m.get(), fault, "*", nullptr, nullptr, p1);
            ASSERT_EQ(base.size(), bad.size());
            for (size_t i = 0; i < base.size(); i++)
                ASSERT_EQ(base[i].bytes, bad[i].bytes) << name << " " << bn_fault_name(fault) << " " << base[i].name;
        }
    }
}

// ---- the transforms ------------------------------------------------------------

TEST(FaultApply, NoneChangesNothing) {
    ModelPtr m = Load(SynthModel());
    ASSERT_TRUE(m);
    bn_ctx_params p = bn_ctx_params_init(), before;
    memcpy(&before, &p, sizeof p);
    bn_faulted *f = nullptr;
    bn_error err{};
    ASSERT_OK(bn_fault_apply(m.get(), BN_FAULT_NONE, &p, &f, &err), err);
    FaultedPtr hold(f);
    EXPECT_EQ(bn_faulted_model(f), m.get());
    EXPECT_EQ(memcmp(&p, &before, sizeof p), 0);
}

TEST(FaultApply, ContextOptionsAreSetAndTheModelIsShared) {
    ModelPtr m = Load(SynthModel());
    ASSERT_TRUE(m);
    struct {
        bn_fault fault;
        bn_kv_type kv;
        int64_t rope_offset;
        bn_act_round round;
    } cases[] = {{BN_FAULT_KV_F32, BN_KV_F32, 0, BN_ROUND_HALF_EVEN},
                 {BN_FAULT_ROPE_POS_SHIFT, BN_KV_AUTO, 1, BN_ROUND_HALF_EVEN},
                 {BN_FAULT_ROUND_AWAY, BN_KV_AUTO, 0, BN_ROUND_HALF_AWAY}};
    for (const auto &c : cases) {
        bn_ctx_params p = bn_ctx_params_init();
        bn_faulted *f = nullptr;
        bn_error err{};
        ASSERT_OK(bn_fault_apply(m.get(), c.fault, &p, &f, &err), err);
        FaultedPtr hold(f);
        EXPECT_EQ(bn_faulted_model(f), m.get()) << bn_fault_name(c.fault);
        EXPECT_EQ(p.kv_type, c.kv) << bn_fault_name(c.fault);
        EXPECT_EQ(p.rope_pos_offset, c.rope_offset) << bn_fault_name(c.fault);
        EXPECT_EQ(p.act_round, c.round) << bn_fault_name(c.fault);
    }
}

// The copy carries the mistake; the source model keeps every pointer and
// hyper-parameter. Norm weights: gamma / 16 (H = 256), exactly.
TEST(FaultApply, ModelTransformsChangeACopyOnly) {
    ModelPtr m = Load(SynthModel());
    ASSERT_TRUE(m);
    bn_hparams hp;
    bn_layer layer0;
    memcpy(&hp, &m->hp, sizeof hp);  // bytes, padding included, for memcmp
    memcpy(&layer0, &m->layers[0], sizeof layer0);
    for (bn_fault fault : {BN_FAULT_GAMMA_INV_SQRT_H, BN_FAULT_SILU, BN_FAULT_LAYERNORM, BN_FAULT_NO_SUBNORM,
                           BN_FAULT_ROPE_NORMAL, BN_FAULT_TRANSPOSE_WO}) {
        bn_ctx_params p = bn_ctx_params_init();
        bn_faulted *f = nullptr;
        bn_error err{};
        ASSERT_OK(bn_fault_apply(m.get(), fault, &p, &f, &err), err);
        FaultedPtr hold(f);
        const bn_model *fm = bn_faulted_model(f);
        ASSERT_NE(fm, m.get()) << bn_fault_name(fault);
        EXPECT_EQ(memcmp(&m->hp, &hp, sizeof hp), 0) << bn_fault_name(fault);
        EXPECT_EQ(memcmp(&m->layers[0], &layer0, sizeof layer0), 0) << bn_fault_name(fault);
        EXPECT_EQ(fm->token_embd, m->token_embd);
        EXPECT_EQ(fm->output_norm, m->output_norm);
        const bn_layer &L = fm->layers[0];
        switch (fault) {
        case BN_FAULT_GAMMA_INV_SQRT_H:
            ASSERT_EQ(hp.n_embd, 256);
            for (int64_t i = 0; i < hp.n_embd; i++) {
                ASSERT_EQ(L.attn_norm[i], layer0.attn_norm[i] / 16.0f) << i;
                ASSERT_EQ(L.ffn_norm[i], layer0.ffn_norm[i] / 16.0f) << i;
            }
            for (int64_t i = 0; i < hp.n_ff; i++) ASSERT_EQ(L.ffn_sub_norm[i], layer0.ffn_sub_norm[i] / 16.0f) << i;
            break;
        case BN_FAULT_SILU: EXPECT_EQ(fm->hp.act, BN_ACT_SILU); break;
        case BN_FAULT_LAYERNORM: EXPECT_EQ(fm->hp.block_norm, BN_NORM_LAYER); break;
        case BN_FAULT_NO_SUBNORM:
            EXPECT_TRUE(fm->hp.sub_norms);  // the taps stay
            EXPECT_EQ(L.attn_sub_norm, nullptr);
            EXPECT_EQ(L.ffn_sub_norm, nullptr);
            break;
        case BN_FAULT_ROPE_NORMAL: EXPECT_NE(fm->hp.rope_neox, hp.rope_neox); break;
        default: {  // transpose-wo: W_t[j][i] = W[i][j]; ternary codes survive the round trip
            const int64_t n = hp.n_embd;
            std::vector<float> w(n * n), wt(n * n);
            const bn_weight &o = layer0.w[BN_PROJ_O], &ot = L.w[BN_PROJ_O];
            ASSERT_NE(ot.data, o.data);
            ASSERT_OK(bn_dequantize_rows(o.type, o.data, n, n, 0, n, w.data(), &err), err);
            ASSERT_OK(bn_dequantize_rows(ot.type, ot.data, n, n, 0, n, wt.data(), &err), err);
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++) ASSERT_EQ(wt[j * n + i], w[i * n + j]) << i << "," << j;
        }
        }
    }
}

// A model whose blk.0.attn_q scale is 5e-4 and blk.1.ffn_down scale 2e3:
// only those two weights are copied, clamped to 1e-3 and 1e3, and the
// faulted attn_q is exactly 2x the clean one (the scale is a power-of-two
// factor away).
TEST(FaultApply, ScaleClampCopiesOnlyTheWeightsOutOfRange) {
    TempDir tmp;
    std::vector<uint8_t> bytes = bptest::ReadFile(SynthModel());
    bn_error err{};
    bn_gguf *g = nullptr;
    ASSERT_OK(bn_gguf_open_memory(bytes.data(), bytes.size(), "copy", &g, &err), err);
    const char *names[2] = {"blk.0.attn_q.weight", "blk.1.ffn_down.weight"};
    const float scales[2] = {5e-4f, 2e3f};
    size_t at[2];
    for (int i = 0; i < 2; i++) {
        const bn_gguf_tensor *t = bn_gguf_find_tensor(g, names[i]);
        ASSERT_NE(t, nullptr);
        at[i] = (size_t)(t->abs_offset + (uint64_t)t->nelem / 4);
    }
    bn_gguf_close(g);
    for (int i = 0; i < 2; i++) memcpy(bytes.data() + at[i], &scales[i], 4);
    const std::string patched = tmp.file("scales.gguf");
    bptest::WriteFile(patched, bytes);
    ModelPtr m = Load(patched);
    ASSERT_TRUE(m);

    bn_ctx_params p = bn_ctx_params_init();
    bn_faulted *f = nullptr;
    ASSERT_OK(bn_fault_apply(m.get(), BN_FAULT_I2S_SCALE_CLAMP, &p, &f, &err), err);
    FaultedPtr hold(f);
    const bn_model *fm = bn_faulted_model(f);
    auto scale_of = [](const bn_weight &w) {
        float s;
        memcpy(&s, (const uint8_t *)w.data + w.n * w.k / 4, 4);
        return s;
    };
    for (int il = 0; il < m->hp.n_layer; il++)
        for (int k = 0; k < BN_PROJ_COUNT; k++) {
            const bool changed = (il == 0 && k == BN_PROJ_Q) || (il == 1 && k == BN_PROJ_DOWN);
            EXPECT_EQ(fm->layers[il].w[k].data != m->layers[il].w[k].data, changed) << il << " " << k;
        }
    EXPECT_EQ(scale_of(fm->layers[0].w[BN_PROJ_Q]), 1e-3f);
    EXPECT_EQ(scale_of(fm->layers[1].w[BN_PROJ_DOWN]), 1e3f);
    EXPECT_EQ(scale_of(m->layers[0].w[BN_PROJ_Q]), 5e-4f);  // the source keeps its bytes

    const std::vector<Tap> base = RunWithFault(m.get(), BN_FAULT_NONE, "blk.0.attn_norm,blk.0.attn_q");
    const std::vector<Tap> bad = RunWithFault(m.get(), BN_FAULT_I2S_SCALE_CLAMP, "blk.0.attn_norm,blk.0.attn_q");
    const Tap *n0 = Find(base, 0, "blk.0.attn_norm"), *n1 = Find(bad, 0, "blk.0.attn_norm");
    const Tap *q0 = Find(base, 0, "blk.0.attn_q"), *q1 = Find(bad, 0, "blk.0.attn_q");
    ASSERT_TRUE(n0 && n1 && q0 && q1);
    EXPECT_EQ(n0->bytes, n1->bytes);
    std::vector<float> a = Floats(*q0), b = Floats(*q1);
    for (size_t i = 0; i < a.size(); i++) ASSERT_EQ(b[i], 2.0f * a[i]) << i;
}

TEST(FaultApply, TransposeWoRejectsANonSquareWeight) {
    ModelPtr m = Load(SynthModel());
    ASSERT_TRUE(m);
    std::vector<bn_layer> layers(m->layers, m->layers + m->hp.n_layer);
    layers[2].w[BN_PROJ_O].n = layers[2].w[BN_PROJ_O].k / 2;  // as if attn_output were [256 -> 128]
    bn_model fake = *m;
    fake.layers = layers.data();
    bn_ctx_params p = bn_ctx_params_init(), before;
    memcpy(&before, &p, sizeof p);
    int sentinel = 0;
    bn_faulted *f = reinterpret_cast<bn_faulted *>(&sentinel);  // never dereferenced; must come back NULL
    bn_error err{};
    EXPECT_EQ(bn_fault_apply(&fake, BN_FAULT_TRANSPOSE_WO, &p, &f, &err), BN_ERR_UNSUPPORTED);
    EXPECT_EQ(f, nullptr);
    EXPECT_NE(std::string(err.msg).find("blk.2.attn_output.weight is 256 x 128"), std::string::npos) << err.msg;
    EXPECT_EQ(memcmp(&p, &before, sizeof p), 0);  // unchanged on failure
    EXPECT_EQ(bn_fault_apply(m.get(), (bn_fault)BN_FAULT_COUNT, &p, &f, &err), BN_ERR_INVALID);
}

// ---- the tap edits ----------------------------------------------------------

// qk-head-perm edits attn_q and attn_k before they are observed: the trace
// shows heads 2i and 2i+1 swapped (the caller observes only what it asked
// for). Only e0's blk.0 has the clean run's input; later ones inherit.
TEST(FaultEdits, HeadPairsAreSwappedBeforeTheObserverSeesThem) {
    ModelPtr m = Load(SynthModel());
    ASSERT_TRUE(m);
    const std::vector<Tap> base = RunWithFault(m.get(), BN_FAULT_NONE, "blk.0.attn_q,logits");
    const std::vector<Tap> bad = RunWithFault(m.get(), BN_FAULT_QK_HEAD_PERM, "blk.0.attn_q,logits");
    ASSERT_EQ(bad.size(), 6u);  // 3 evaluations x 2 taps: attn_k and the other blocks stay unobserved
    const int64_t D = m->hp.head_dim, nh = m->hp.n_head;
    const Tap *a = Find(base, 0, "blk.0.attn_q"), *b = Find(bad, 0, "blk.0.attn_q");
    ASSERT_TRUE(a && b);
    std::vector<float> x = Floats(*a), y = Floats(*b);
    const int64_t T = a->shape[0];
    ASSERT_EQ(T, (int64_t)kPrompt.size());
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < nh; h++)
            for (int64_t d = 0; d < D; d++)
                ASSERT_EQ(y[(t * nh + h) * D + d], x[(t * nh + (h ^ 1)) * D + d]) << t << " " << h << " " << d;
}

// nan edits blk.1.ffn_act after the injector: the observer records the
// computed value, the injector's value is what the graph continues with, and
// the NaN enters after both, so blk.1.ffn_sub_norm carries it in exactly the
// row of element T·F/2.
TEST(FaultEdits, NanIsPutAfterTheInjectedValue) {
    ModelPtr m = Load(SynthModel());
    ASSERT_TRUE(m);
    int injected = 0;
    const char *taps = "blk.1.ffn_act,blk.1.ffn_sub_norm";
    const std::vector<Tap> base = RunWithFault(m.get(), BN_FAULT_NONE, taps, "blk.1.ffn_act", &injected);
    EXPECT_EQ(injected, 3);
    injected = 0;
    const std::vector<Tap> bad = RunWithFault(m.get(), BN_FAULT_NAN, taps, "blk.1.ffn_act", &injected);
    EXPECT_EQ(injected, 3);
    ASSERT_EQ(bad.size(), 6u);
    const int64_t F = m->hp.n_ff;
    for (int64_t e = 0; e < 3; e++) {
        const Tap *act0 = Find(base, e, "blk.1.ffn_act"), *act1 = Find(bad, e, "blk.1.ffn_act");
        ASSERT_TRUE(act0 && act1);
        EXPECT_EQ(act0->bytes, act1->bytes);  // observed before the edit
        const Tap *sub = Find(bad, e, "blk.1.ffn_sub_norm");
        ASSERT_TRUE(sub);
        const std::vector<float> y = Floats(*sub);
        const int64_t T = sub->shape[0], bad_row = (T * F / 2) / F;
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < F; i++)
                ASSERT_EQ(std::isnan(y[t * F + i]), t == bad_row) << e << " " << t << " " << i;
    }
}

}  // namespace
