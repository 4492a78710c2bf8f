// test_convert.cc — llama2.c checkpoints to GGUF (bn_llama2c_convert): a
// hand-built tiny checkpoint converts to a model whose hyper-parameters,
// weights and vocabulary are the ones written; hostile headers and
// tokenizer files are refused with a located message and no output left.
#include <cstring>
#include <string>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/convert.h"
#include "bitnet/quant.h"
}

namespace {

using bptest::TempDir;

struct Header {
    int32_t dim, hidden, layers, heads, kv_heads, vocab, seq;  // vocab < 0: separate classifier
};

// A checkpoint of `h` whose i-th float32 weight is i / 1024 (exact in f32),
// or with `n_floats` weights when >= 0 (to disagree with the header).
std::vector<uint8_t> Checkpoint(const Header &h, int64_t n_floats = -1) {
    if (n_floats < 0) {
        const int64_t D = h.dim, F = h.hidden, L = h.layers, V = h.vocab < 0 ? -h.vocab : h.vocab;
        const int64_t hs = D / h.heads, kv = hs * h.kv_heads;
        n_floats = V * D + L * D + L * D * D + 2 * L * D * kv + L * D * D + L * D + 3 * L * F * D + D +
                   (int64_t)h.seq * hs + (h.vocab < 0 ? V * D : 0);
    }
    std::vector<uint8_t> out(28 + 4 * (size_t)n_floats);
    memcpy(out.data(), &h, 28);
    for (int64_t i = 0; i < n_floats; i++) {
        float v = (float)i / 1024.0f;
        memcpy(out.data() + 28 + 4 * i, &v, 4);
    }
    return out;
}

// tokenizer.bin: max_token_length, then per token score, length, bytes.
std::vector<uint8_t> Tokenizer(const std::vector<std::string> &tokens) {
    std::vector<uint8_t> out(4, 0);
    out[0] = 8;
    for (size_t i = 0; i < tokens.size(); i++) {
        float score = -(float)i;
        int32_t len = (int32_t)tokens[i].size();
        const uint8_t *s = (const uint8_t *)&score, *l = (const uint8_t *)&len;
        out.insert(out.end(), s, s + 4);
        out.insert(out.end(), l, l + 4);
        out.insert(out.end(), tokens[i].begin(), tokens[i].end());
    }
    return out;
}

const std::vector<std::string> kTokens = {"<unk>", "<s>", "</s>", " a", "<0x41>"};

bn_status Convert(const TempDir &dir, const std::vector<uint8_t> &ckpt, const std::vector<uint8_t> &tok,
                  bn_error *err) {
    bptest::WriteFile(dir.file("c.bin"), ckpt);
    bptest::WriteFile(dir.file("t.bin"), tok);
    return bn_llama2c_convert(dir.file("c.bin").c_str(), dir.file("t.bin").c_str(), dir.file("o.gguf").c_str(), nullptr, err);
}

TEST(Llama2c, TinyCheckpointBindsWithItsShapesWeightsAndVocabulary) {
    TempDir dir;
    bn_error err;
    const Header h = {8, 16, 1, 2, 1, 5, 4};
    ASSERT_OK(Convert(dir, Checkpoint(h), Tokenizer(kTokens), &err), err);
    bn_model *raw = nullptr;
    ASSERT_OK(bn_model_load(dir.file("o.gguf").c_str(), &raw, &err), err);
    ModelPtr m(raw);
    EXPECT_EQ(m->hp.arch, BN_ARCH_LLAMA);
    EXPECT_EQ(m->hp.n_embd, 8);
    EXPECT_EQ(m->hp.n_ff, 16);
    EXPECT_EQ(m->hp.n_layer, 1);
    EXPECT_EQ(m->hp.n_head, 2);
    EXPECT_EQ(m->hp.n_head_kv, 1);
    EXPECT_EQ(m->hp.n_vocab, 5);
    EXPECT_EQ(m->hp.n_ctx_train, 4);
    EXPECT_TRUE(m->tied_output);
    // token_embd is the first array of the file: weight i is i / 1024
    const bn_gguf_tensor *emb = m->token_embd;
    ASSERT_EQ(emb->type, (uint32_t)BN_TYPE_F32);
    const float *e = (const float *)emb->data;
    EXPECT_EQ(e[0], 0.0f);
    EXPECT_EQ(e[39], 39.0f / 1024.0f);  // the last of 5 x 8
    // the first attention norm follows it: weight 40
    EXPECT_EQ(m->layers[0].attn_norm[0], 40.0f / 1024.0f);
    bn_tokenizer *tok = nullptr;
    ASSERT_OK(bn_tokenizer_load(m->gguf, &tok, &err), err);
    TokenizerPtr t(tok);
    EXPECT_EQ(bn_tokenizer_n_vocab(t.get()), 5);
    size_t len = 0;
    EXPECT_EQ(std::string(bn_token_text(t.get(), 3, &len)), "\xe2\x96\x81" "a");  // space as U+2581
    EXPECT_EQ(bn_token_type_of(t.get(), 1), BN_TOKEN_CONTROL);
    EXPECT_EQ(bn_token_type_of(t.get(), 4), BN_TOKEN_BYTE);
}

TEST(Llama2c, SeparateClassifierIsKept) {
    TempDir dir;
    bn_error err;
    ASSERT_OK(Convert(dir, Checkpoint({8, 16, 1, 2, 2, -5, 4}), Tokenizer(kTokens), &err), err);
    bn_model *raw = nullptr;
    ASSERT_OK(bn_model_load(dir.file("o.gguf").c_str(), &raw, &err), err);
    ModelPtr m(raw);
    EXPECT_FALSE(m->tied_output);
    EXPECT_EQ(m->hp.n_head_kv, 2);
}

// Each case: a one-line message naming the file, and no output left behind.
TEST(Llama2cMalformed, HeadersAndTokenizersAreRefusedWithTheirOffsets) {
    struct Case {
        std::vector<uint8_t> ckpt, tok;
        const char *want;
    };
    const std::vector<uint8_t> good_tok = Tokenizer(kTokens);
    std::vector<uint8_t> long_token = good_tok;
    long_token[4 + 8 + 5 + 4] = 100;  // token 1 ("<s>") claims 100 bytes
    std::vector<uint8_t> trailing = good_tok;
    trailing.push_back(0);
    const Case cases[] = {
        {std::vector<uint8_t>(20, 0), good_tok, "c.bin: 20 bytes is too short for the 28-byte header"},
        {Checkpoint({8, 16, 0, 2, 1, 5, 4}, 10), good_tok, "c.bin: header field n_layers = 0 is not a plausible value"},
        {Checkpoint({8, 16, 1, 3, 1, 5, 4}, 10), good_tok, "dim 8, n_heads 3, n_kv_heads 1 do not divide evenly"},
        {Checkpoint({8, 16, 1, 2, 1, 5, 4}, 10), good_tok, "implies 2652 bytes but the file has 68"},
        {Checkpoint({8, 16, 1, 2, 1, 6, 4}), good_tok, "t.bin: truncated at token 5 (byte offset 64)"},
        {Checkpoint({8, 16, 1, 2, 1, 5, 4}), long_token, "t.bin: token 1 claims 100 bytes at byte offset 21"},
        {Checkpoint({8, 16, 1, 2, 1, 5, 4}), trailing, "t.bin: 1 trailing bytes after 5 tokens"},
    };
    for (const Case &c : cases) {
        TempDir dir;
        bn_error err;
        EXPECT_EQ(Convert(dir, c.ckpt, c.tok, &err), BN_ERR_FORMAT) << c.want;
        EXPECT_NE(std::string(err.msg).find(c.want), std::string::npos) << err.msg;
        EXPECT_EQ(std::string(err.msg).find('\n'), std::string::npos) << err.msg;
        EXPECT_TRUE(bptest::ReadFile(dir.file("o.gguf")).empty()) << "no output left behind: " << c.want;
    }
}

// The element counts of dim = n_layers = 2^20, hidden 699048, 2^19 heads of 2,
// one kv head, vocab 2^20 with a separate classifier and seq 1 sum to
// 2^62 + 2^20 + 2: times 4 bytes, 28 + 4 * total wraps past 2^64 onto
// 4194340, the size of this file. The size check used to pass, and the
// converter then read 2^60-float arrays out of a 4 MB buffer.
// Found by fuzz_llama2c: vocab_size INT32_MIN was negated (undefined
// behaviour) to tell a separate classifier; it is refused as implausible.
TEST(Llama2cMalformed, VocabSizeInt32MinIsRefused) {
    TempDir dir;
    bn_error err;
    const Header h = {8, 16, 1, 2, 1, INT32_MIN, 4};
    EXPECT_EQ(Convert(dir, Checkpoint(h, 16), Tokenizer(kTokens), &err), BN_ERR_FORMAT);
    EXPECT_EQ(std::string(err.msg), dir.file("c.bin") + ": header field vocab_size = -2147483648 is not a plausible value");
}

TEST(Llama2cMalformed, ElementCountsThatWrapPast2To64AreRefused) {
    const Header h = {1 << 20, 699048, 1 << 20, 1 << 19, 1, -(1 << 20), 1};
    std::vector<uint8_t> ckpt(4194340, 0);
    memcpy(ckpt.data(), &h, 28);
    TempDir dir;
    bn_error err;
    EXPECT_EQ(Convert(dir, ckpt, Tokenizer(kTokens), &err), BN_ERR_FORMAT);
    EXPECT_NE(std::string(err.msg).find("c.bin: the header (dim 1048576, hidden 699048, 1048576 layers, 524288 heads, "
                                        "1 kv heads, vocab 1048576, seq 1) implies more than 2^64 bytes but the file "
                                        "has 4194340"),
              std::string::npos)
        << err.msg;
    EXPECT_TRUE(bptest::ReadFile(dir.file("o.gguf")).empty());
}

}  // namespace

// Found by fuzz_llama2c: a token that is not UTF-8 (or holds a NUL) used to be
// written into the GGUF, whose tokenizer then refused to load; the converter
// now names the token and the byte offset.
TEST(Llama2cMalformed, TokensThatAreNotUtf8OrHoldNulAreRefused) {
    TempDir dir;
    bn_error err;
    const Header h = {8, 16, 1, 2, 1, 5, 4};
    std::vector<std::string> bad = kTokens;
    bad[3] = std::string("a\xff", 2);  // token 3 starts at byte 48 (4 + 3 * 8 + 5 + 3 + 4 + 8): 0xff is at 49
    EXPECT_EQ(Convert(dir, Checkpoint(h), Tokenizer(bad), &err), BN_ERR_FORMAT);
    EXPECT_EQ(std::string(err.msg), dir.file("t.bin") + ": token 3: not valid UTF-8 at byte offset 49");
    EXPECT_NE(access(dir.file("o.gguf").c_str(), F_OK), 0);
    bad[3] = std::string("a\0b", 3);
    EXPECT_EQ(Convert(dir, Checkpoint(h), Tokenizer(bad), &err), BN_ERR_FORMAT);
    EXPECT_EQ(std::string(err.msg), dir.file("t.bin") + ": token 3: a NUL byte at byte offset 49");
}

// Found by fuzz_llama2c: "<0x9N>" has the shape of a byte-fallback token but
// no hex byte; the converter typed it BYTE and the GGUF's tokenizer then
// refused to load. Only an exact <0xHH> is BYTE now; the rest are text.
TEST(Llama2c, OnlyExactHexTokensAreBytes) {
    TempDir dir;
    bn_error err;
    const Header h = {8, 16, 1, 2, 1, 7, 4};
    std::vector<std::string> tokens = kTokens;
    tokens[4] = "<0x9N>";
    tokens.push_back("<0xff>");
    tokens.push_back("<0x4>");
    ASSERT_OK(Convert(dir, Checkpoint(h), Tokenizer(tokens), &err), err);
    bn_model *raw = nullptr;
    ASSERT_OK(bn_model_load(dir.file("o.gguf").c_str(), &raw, &err), err);
    ModelPtr m(raw);
    bn_tokenizer *tok = nullptr;
    ASSERT_OK(bn_tokenizer_load(m->gguf, &tok, &err), err);
    TokenizerPtr t(tok);
    EXPECT_EQ(bn_token_type_of(t.get(), 4), BN_TOKEN_NORMAL);
    EXPECT_EQ(bn_token_type_of(t.get(), 5), BN_TOKEN_BYTE);  // lower-case hex is a byte
    EXPECT_EQ(bn_token_type_of(t.get(), 6), BN_TOKEN_NORMAL);
    EXPECT_EQ(bn_token_byte_value("<0xff>", 6), 255);
    EXPECT_EQ(bn_token_byte_value("<0x9N>", 6), -1);
    EXPECT_EQ(bn_token_byte_value("<0x41>x", 7), -1);
}
