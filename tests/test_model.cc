// test_model.cc — binding a GGUF as a model: hyper-parameters validated
// against tensor shapes, with messages naming the key and the tensor.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/quant.h"
#include "bitnet/synth.h"
}

namespace {

using bptest::TempDir;

// A one-layer F32 BitNet model (H 128, 2 heads of 64, 1 kv head, F 256,
// V 64) written tensor by tensor, with hooks to break one thing.
struct Spec {
    std::string arch = "bitnet-b1.58";
    std::map<std::string, uint32_t> u32 = {{"embedding_length", 128}, {"block_count", 1},
                                           {"feed_forward_length", 256}, {"attention.head_count", 2},
                                           {"attention.head_count_kv", 1}, {"context_length", 64},
                                           {"rope.dimension_count", 64}};
    std::map<std::string, std::string> str;  // extra <arch>.* string keys
    bool eps = true;
    std::map<std::string, std::vector<int64_t>> shape_override;
    std::map<std::string, uint32_t> type_override;
    std::vector<std::string> drop;
};

std::string Write(const TempDir &dir, const Spec &s) {
    const std::string path = dir.file("m.gguf");
    bn_error err{};
    bn_gguf_writer *w = nullptr;
    EXPECT_OK(bn_gguf_writer_open(path.c_str(), 3, &w, &err), err);
    EXPECT_OK(bn_gguf_writer_add_str(w, "general.architecture", s.arch.c_str(), &err), err);
    for (const auto &[k, v] : s.u32) {
        EXPECT_OK(bn_gguf_writer_add_u32(w, (s.arch + "." + k).c_str(), v, &err), err);
    }
    for (const auto &[k, v] : s.str) {
        EXPECT_OK(bn_gguf_writer_add_str(w, (s.arch + "." + k).c_str(), v.c_str(), &err), err);
    }
    if (s.eps) {
        EXPECT_OK(bn_gguf_writer_add_f32(w, (s.arch + ".attention.layer_norm_rms_epsilon").c_str(), 1e-5f, &err), err);
    }
    const int64_t H = 128, F = 256, V = 64, Dkv = 64;
    std::vector<std::pair<std::string, std::vector<int64_t>>> t = {
        {"token_embd.weight", {H, V}},          {"output_norm.weight", {H}},
        {"blk.0.attn_norm.weight", {H}},        {"blk.0.attn_q.weight", {H, H}},
        {"blk.0.attn_k.weight", {H, Dkv}},      {"blk.0.attn_v.weight", {H, Dkv}},
        {"blk.0.attn_sub_norm.weight", {H}},    {"blk.0.attn_output.weight", {H, H}},
        {"blk.0.ffn_norm.weight", {H}},         {"blk.0.ffn_gate.weight", {H, F}},
        {"blk.0.ffn_up.weight", {H, F}},        {"blk.0.ffn_sub_norm.weight", {F}},
        {"blk.0.ffn_down.weight", {F, H}}};
    std::vector<std::pair<std::string, std::vector<int64_t>>> kept;
    std::vector<uint32_t> types;
    for (auto &[name, ne] : t) {
        if (std::find(s.drop.begin(), s.drop.end(), name) != s.drop.end()) continue;
        auto so = s.shape_override.find(name);
        kept.push_back({name, so != s.shape_override.end() ? so->second : ne});
        auto to = s.type_override.find(name);
        types.push_back(to != s.type_override.end() ? to->second : (uint32_t)BN_TYPE_F32);
        EXPECT_OK(bn_gguf_writer_add_tensor(w, name.c_str(), types.back(), (uint32_t)kept.back().second.size(),
                                            kept.back().second.data(), &err),
                  err);
    }
    for (size_t i = 0; i < kept.size(); i++) {
        int64_t n = 1;
        for (int64_t d : kept[i].second) n *= d;
        std::vector<float> v((size_t)n, 0.5f);
        uint64_t nbytes = 0;
        EXPECT_OK(bn_type_tensor_nbytes(types[i], kept[i].second[0], n, &nbytes, &err), err);
        std::vector<uint8_t> bytes(nbytes);
        EXPECT_OK(bn_quantize(types[i], v.data(), kept[i].second[0], n / kept[i].second[0], bytes.data(), nbytes, &err),
                  err);
        EXPECT_OK(bn_gguf_writer_write_tensor(w, bytes.data(), nbytes, &err), err);
    }
    EXPECT_OK(bn_gguf_writer_close(w, &err), err);
    return path;
}

// Loads and returns the status; msg gets the error message.
bn_status Load(const std::string &path, std::string *msg, bn_model **out = nullptr) {
    bn_error err{};
    bn_model *m = nullptr;
    bn_status st = bn_model_load(path.c_str(), &m, &err);
    *msg = err.msg;
    if (out) *out = m;
    else bn_model_free(m);
    return st;
}

TEST(Model, ValidSpecBindsWithTheRightHyperParameters) {
    TempDir dir;
    std::string msg;
    bn_model *m = nullptr;
    ASSERT_EQ(Load(Write(dir, Spec{}), &msg, &m), BN_OK) << msg;
    ModelPtr model(m);
    EXPECT_EQ(m->hp.n_vocab, 64);
    EXPECT_EQ(m->hp.head_dim, 64);
    EXPECT_EQ(m->hp.n_head_kv, 1);
    EXPECT_EQ(m->hp.rope_base, 10000.0f);  // the default when the key is absent
    EXPECT_EQ(m->hp.act, BN_ACT_RELU2);
    EXPECT_TRUE(m->hp.rope_neox);
    EXPECT_TRUE(m->tied_output);
}

struct BadCase {
    const char *what;
    std::function<void(Spec &)> breakit;
    bn_status status;
    const char *message;
};

TEST(ModelMalformed, MetadataAndShapeMismatchesAreNamed) {
    const std::vector<BadCase> cases = {
        {"head count does not divide", [](Spec &s) { s.u32["attention.head_count"] = 3; }, BN_ERR_INVALID,
         "bitnet-b1.58.attention.head_count = 3 does not divide embedding_length 128"},
        {"kv heads do not divide", [](Spec &s) { s.u32["attention.head_count_kv"] = 3; }, BN_ERR_INVALID,
         "head_count_kv = 3 does not divide head_count 2"},
        {"rope dimension", [](Spec &s) { s.u32["rope.dimension_count"] = 32; }, BN_ERR_UNSUPPORTED,
         "rope.dimension_count = 32 but head_dim"},
        {"missing eps", [](Spec &s) { s.eps = false; }, BN_ERR_INVALID,
         "required key bitnet-b1.58.attention.layer_norm_rms_epsilon is missing"},
        {"missing block count", [](Spec &s) { s.u32.erase("block_count"); }, BN_ERR_INVALID,
         "required key bitnet-b1.58.block_count is missing"},
        {"vocab size vs embedding rows", [](Spec &s) { s.u32["vocab_size"] = 65; }, BN_ERR_INVALID,
         "vocab_size = 65 but token_embd.weight has 64 rows"},
        {"wrong projection shape", [](Spec &s) { s.shape_override["blk.0.attn_k.weight"] = {128, 128}; },
         BN_ERR_INVALID, "tensor blk.0.attn_k.weight has shape [128, 128, 1, 1] but the metadata implies [128, 64]"},
        {"missing tensor", [](Spec &s) { s.drop = {"blk.0.ffn_sub_norm.weight"}; }, BN_ERR_INVALID,
         "tensor blk.0.ffn_sub_norm.weight is missing"},
        {"quantized norm", [](Spec &s) { s.type_override["blk.0.attn_norm.weight"] = BN_TYPE_F16; },
         BN_ERR_UNSUPPORTED, "tensor blk.0.attn_norm.weight is F16: norm weights must be F32"},
        {"unknown arch", [](Spec &s) { s.arch = "gpt-neox"; }, BN_ERR_UNSUPPORTED,
         "general.architecture 'gpt-neox' is not supported"},
        {"unknown activation", [](Spec &s) { s.str["hidden_activation"] = "gelu"; }, BN_ERR_UNSUPPORTED,
         "hidden_activation = 'gelu' is not a supported activation"},
        {"absurd layer count", [](Spec &s) { s.u32["block_count"] = 100000; }, BN_ERR_INVALID,
         "absurd hyper-parameters"},
    };
    for (const BadCase &c : cases) {
        SCOPED_TRACE(c.what);
        TempDir dir;
        Spec s;
        c.breakit(s);
        std::string msg;
        EXPECT_EQ(Load(Write(dir, s), &msg), c.status) << msg;
        EXPECT_NE(msg.find(c.message), std::string::npos) << msg;
        EXPECT_NE(msg.find("m.gguf"), std::string::npos) << "the message names the file: " << msg;
    }
}

// `bitnet` files honour <arch>.hidden_activation; without it they are SiLU.
TEST(Model, BitnetArchActivationComesFromTheFile) {
    TempDir dir;
    Spec s;
    s.arch = "bitnet";
    std::string msg;
    bn_model *m = nullptr;
    ASSERT_EQ(Load(Write(dir, s), &msg, &m), BN_OK) << msg;
    EXPECT_EQ(m->hp.act, BN_ACT_SILU);
    bn_model_free(m);
    s.str["hidden_activation"] = "relu2";
    ASSERT_EQ(Load(Write(dir, s), &msg, &m), BN_OK) << msg;
    EXPECT_EQ(m->hp.act, BN_ACT_RELU2);
    bn_model_free(m);
}

}  // namespace

namespace {

// --lm-head q8_0 (bn_model_requantize_lm_head): the copy is llama.cpp's
// Q8_0 of each stored row widened exactly (bn_quantize's q_q8_0, and one
// block by hand), byte for byte the same for 1 and 3 threads; token_embd
// is left as stored; a second call, another target type and a ternary
// lm_head are refused; bn_model_lm_head_override names it.
TEST(Model, RequantizedLmHeadIsTheQ8_0OfEachStoredRow) {
    const std::string path = bptest::SourcePath("fixtures/models/b158-i2s.gguf");
    bn_error err{};
    bn_model *raw[2] = {nullptr, nullptr};
    for (auto &r : raw) ASSERT_OK(bn_model_load(path.c_str(), &r, &err), err);
    ModelPtr a(raw[0]), b(raw[1]);
    const bn_weight stored = a->lm_head;
    ASSERT_EQ(stored.type, (uint32_t)BN_TYPE_F16);
    EXPECT_EQ(bn_model_lm_head_override(a.get()), nullptr);
    const int64_t K = stored.k, N = stored.n;
    std::vector<float> wf((size_t)(K * N));
    ASSERT_OK(bn_dequantize_rows(stored.type, stored.data, K, N, 0, N, wf.data(), &err), err);
    std::vector<uint8_t> expect((size_t)(N * K / 32 * 34));
    ASSERT_OK(bn_quantize(BN_TYPE_Q8_0, wf.data(), K, N, expect.data(), expect.size(), &err), err);
    ASSERT_OK(bn_model_requantize_lm_head(a.get(), BN_TYPE_Q8_0, 1, &err), err);
    ASSERT_OK(bn_model_requantize_lm_head(b.get(), BN_TYPE_Q8_0, 3, &err), err);
    for (bn_model *m : {a.get(), b.get()}) {
        EXPECT_EQ(m->lm_head.type, (uint32_t)BN_TYPE_Q8_0);
        EXPECT_EQ(m->lm_head.k, K);
        EXPECT_EQ(m->lm_head.n, N);
        EXPECT_EQ(memcmp(m->lm_head.data, expect.data(), expect.size()), 0);
        EXPECT_STREQ(bn_model_lm_head_override(m), "q8_0");
        EXPECT_EQ(m->token_embd->type, (uint32_t)BN_TYPE_F16);  // the input embedding as stored
    }
    // row 7, block 2 by hand: d = f16(amax / 127), q = roundf(x / d) (half away from zero)
    const float *x = &wf[(size_t)(7 * K + 64)];
    float amax = 0;
    for (int i = 0; i < 32; i++) amax = std::max(amax, std::fabs(x[i]));
    const uint8_t *blk = (const uint8_t *)a->lm_head.data + (size_t)(7 * (K / 32) + 2) * 34;
    uint16_t dh;
    memcpy(&dh, blk, 2);
    EXPECT_EQ(dh, bn_f32_to_f16(amax / 127.f));
    const float id = amax ? 1.0f / (amax / 127.f) : 0.0f;
    for (int i = 0; i < 32; i++) EXPECT_EQ((int8_t)blk[2 + i], (int8_t)std::round(x[i] * id)) << i;
    EXPECT_EQ(bn_model_requantize_lm_head(a.get(), BN_TYPE_Q8_0, 1, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("already requantized"), std::string::npos) << err.msg;
    bn_model *c = nullptr;
    ASSERT_OK(bn_model_load(path.c_str(), &c, &err), err);
    ModelPtr cp(c);
    EXPECT_EQ(bn_model_requantize_lm_head(c, BN_TYPE_TQ2_0, 1, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("TQ2_0 is not supported (q8_0 is)"), std::string::npos) << err.msg;
    c->lm_head.type = BN_TYPE_I2_S;  // as if the lm_head were ternary
    EXPECT_EQ(bn_model_requantize_lm_head(c, BN_TYPE_Q8_0, 1, &err), BN_ERR_UNSUPPORTED);
    EXPECT_EQ(bn_model_lm_head_override(c), nullptr);
}

}  // namespace
