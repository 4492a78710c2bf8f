// test_tokenizer.cc — the tokenizer against llama.cpp's own test vectors
// (LLaMA-3 BPE through the tiktoken converter, LLaMA-2 SPM, the tiny models'
// 512-token vocabulary), hand-computed BPE/SPM merge orders on small
// vocabularies written here, special tokens, decoding, the chat template,
// loader errors, and long inputs that round-trip (their speed is measured by
// bench/run.sh, never here).
#include "test_helpers.h"

extern "C" {
#include "bitnet/gguf.h"
#include "bitnet/tokenizer.h"
}

#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

using bptest::TempDir;

namespace {

using Ids = std::vector<int32_t>;

Ids Encode(const bn_tokenizer *tok, const std::string &s, bool add_special = false,
           bool parse_special = false) {
    int32_t *ids = nullptr;
    size_t n = 0;
    bn_error err;
    bn_status st = bn_tokenize(tok, s.data(), s.size(), add_special, parse_special, &ids, &n, &err);
    EXPECT_OK(st, err);
    Ids v(ids, ids + n);
    free(ids);
    return v;
}

std::string Decode(const bn_tokenizer *tok, const Ids &ids, bool remove_special = false,
                   bool render_special = false) {
    char *text = nullptr;
    size_t n = 0;
    bn_error err;
    bn_status st = bn_detokenize(tok, ids.data(), ids.size(), remove_special, render_special, &text, &n, &err);
    EXPECT_OK(st, err);
    std::string s(text ? text : "", n);
    free(text);
    return s;
}

std::string Join(const Ids &ids) {
    std::string s;
    for (int32_t id : ids) s += " " + std::to_string(id);
    return s;
}

std::string Slurp(const std::string &path) {
    std::vector<uint8_t> b = bptest::ReadFile(path);
    return std::string(b.begin(), b.end());
}

// llama.cpp's .inp/.out pair: strings separated by "\n__ggml_vocab_test__\n"
// (the last, empty piece dropped), one line of " id id ..." per string.
struct Vectors {
    std::vector<std::string> inputs, outputs;
};

Vectors ReadVectors(const std::string &inp, const std::string &out) {
    Vectors v;
    const std::string sep = "\n__ggml_vocab_test__\n", text = Slurp(inp), lines = Slurp(out);
    for (size_t at = 0, hit; (hit = text.find(sep, at)) != std::string::npos; at = hit + sep.size())
        v.inputs.push_back(text.substr(at, hit - at));
    std::istringstream ls(lines);
    for (std::string line; std::getline(ls, line);) v.outputs.push_back(line);
    return v;
}

// Runs every vector; returns how many matched exactly (failures are listed).
int RunVectors(const bn_tokenizer *tok, const Vectors &v) {
    EXPECT_EQ(v.inputs.size(), v.outputs.size());
    int ok = 0;
    for (size_t i = 0; i < v.inputs.size() && i < v.outputs.size(); i++) {
        Ids ids = Encode(tok, v.inputs[i]);
        EXPECT_EQ(Join(ids), v.outputs[i]) << "vector " << i << ": '" << v.inputs[i] << "'";
        ok += Join(ids) == v.outputs[i];
        EXPECT_EQ(Decode(tok, ids), v.inputs[i]) << "round trip of vector " << i;
    }
    return ok;
}

TokenizerPtr Load(const std::string &path) {
    bn_gguf *g = nullptr;
    bn_error err;
    bn_status st = bn_gguf_open(path.c_str(), &g, &err);
    EXPECT_OK(st, err);
    GgufPtr file(g);
    bn_tokenizer *tok = nullptr;
    if (st == BN_OK) {
        st = bn_tokenizer_load(g, &tok, &err);
        EXPECT_OK(st, err);
    }
    return TokenizerPtr(tok);  // usable after the file is closed
}

// ---------------------------------------------------------------------------
// LLaMA-3 (BitNet 2B-4T) vocabulary, converted once for the suite.

class Llama3 : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        std::string model = bptest::SharedPath("tokenizers/llama3/tokenizer.model");
        if (model.empty()) return;
        dir_ = new TempDir();
        bn_error err;
        // (conversion and tokenization speed are measured by bench/run.sh)
        convert_status_ = bn_tiktoken_convert(model.c_str(), dir_->file("vocab.gguf").c_str(), &stats_, nullptr, &err);
        if (convert_status_ != BN_OK) {
            convert_msg_ = err.msg;
            return;
        }
        tok_ = Load(dir_->file("vocab.gguf")).release();
    }
    static void TearDownTestSuite() {
        bn_tokenizer_free(tok_);
        tok_ = nullptr;
        delete dir_;
        dir_ = nullptr;
    }
    void SetUp() override {
        REQUIRE_SHARED(model, "tokenizers/llama3/tokenizer.model");
        ASSERT_EQ(convert_status_, BN_OK) << convert_msg_;
        ASSERT_NE(tok_, nullptr);
    }
    static TempDir *dir_;
    static bn_tokenizer *tok_;
    static bn_tiktoken_stats stats_;
    static bn_status convert_status_;
    static std::string convert_msg_;
};
TempDir *Llama3::dir_ = nullptr;
bn_tokenizer *Llama3::tok_ = nullptr;
bn_tiktoken_stats Llama3::stats_ = {0, 0, 0};
bn_status Llama3::convert_status_ = BN_OK;
std::string Llama3::convert_msg_;

TEST_F(Llama3, ConverterCounts) {
    EXPECT_EQ(stats_.n_ranks, 128000);
    EXPECT_EQ(stats_.n_special, 256);
    EXPECT_EQ(stats_.n_merges, 280147);  // the published tokenizer.json's merge count
    EXPECT_EQ(bn_tokenizer_kind(tok_), BN_VOCAB_BPE);
    EXPECT_STREQ(bn_tokenizer_pre(tok_), "llama-bpe");
    EXPECT_EQ(bn_tokenizer_n_vocab(tok_), 128256);
    EXPECT_EQ(bn_tokenizer_n_merges(tok_), 280147);
    EXPECT_TRUE(bn_tokenizer_add_bos(tok_));
    EXPECT_FALSE(bn_tokenizer_add_eos(tok_));
}

TEST_F(Llama3, SpecialIds) {
    EXPECT_EQ(bn_token_bos(tok_), 128000);
    EXPECT_EQ(bn_token_eos(tok_), 128001);
    EXPECT_EQ(bn_token_eot(tok_), 128009);
    EXPECT_TRUE(bn_token_is_eog(tok_, 128001));
    EXPECT_TRUE(bn_token_is_eog(tok_, 128009));
    EXPECT_FALSE(bn_token_is_eog(tok_, 128000));
    EXPECT_FALSE(bn_token_is_eog(tok_, 9906));
    EXPECT_STREQ(bn_token_text(tok_, 128006, nullptr), "<|start_header_id|>");
    EXPECT_STREQ(bn_token_text(tok_, 128008, nullptr), "<|reserved_special_token_4|>");
    EXPECT_STREQ(bn_token_text(tok_, 128255, nullptr), "<|reserved_special_token_250|>");
    EXPECT_EQ(bn_token_type_of(tok_, 128009), BN_TOKEN_CONTROL);
    EXPECT_EQ(bn_token_type_of(tok_, 127999), BN_TOKEN_NORMAL);
    EXPECT_EQ(bn_token_type_of(tok_, 128256), BN_TOKEN_UNDEFINED);
}

TEST_F(Llama3, AllLlamaCppVectors) {
    REQUIRE_SHARED(inp, "tokenizers/llama3/ggml-vocab-llama-bpe.gguf.inp");
    REQUIRE_SHARED(out, "tokenizers/llama3/ggml-vocab-llama-bpe.gguf.out");
    Vectors v = ReadVectors(inp, out);
    ASSERT_EQ(v.inputs.size(), 46u);
    EXPECT_EQ(RunVectors(tok_, v), 46);
}

TEST_F(Llama3, SpecExamples) {  // docs/specs/tokenizer.md
    EXPECT_EQ(Encode(tok_, "Hello world"), (Ids{9906, 1917}));
    EXPECT_EQ(Encode(tok_, " Hello world"), (Ids{22691, 1917}));
    EXPECT_EQ(Encode(tok_, "\n\n"), (Ids{271}));
    EXPECT_EQ(Encode(tok_, "3333"), (Ids{8765, 18}));
    EXPECT_EQ(Encode(tok_, ""), Ids{});
    EXPECT_EQ(Encode(tok_, "", true), (Ids{128000}));
    EXPECT_EQ(Encode(tok_, "Hello world", true), (Ids{128000, 9906, 1917}));
}

TEST_F(Llama3, Pieces) {
    size_t n = 0;
    const char *p = bn_token_piece(tok_, 22691, &n);
    EXPECT_EQ(std::string(p, n), " Hello");
    EXPECT_STREQ(bn_token_text(tok_, 22691, nullptr), "\xC4\xA0Hello");  // "ĠHello"
    p = bn_token_piece(tok_, 271, &n);
    EXPECT_EQ(std::string(p, n), "\n\n");
    EXPECT_EQ(bn_token_lookup(tok_, "\xC4\xA0Hello", 7), 22691);
    EXPECT_EQ(bn_token_lookup(tok_, " Hello", 6), -1);
    EXPECT_EQ(bn_token_piece(tok_, -1, &n), nullptr);
    EXPECT_EQ(bn_token_piece(tok_, 128256, &n), nullptr);
}

TEST_F(Llama3, SpecialTokensOnlyWhenParsed) {
    const std::string s = "<|begin_of_text|>Hello<|eot_id|>";
    EXPECT_EQ(Encode(tok_, s, false, true), (Ids{128000, 9906, 128009}));
    Ids plain = Encode(tok_, s, false, false);
    EXPECT_EQ(plain, (Ids{27, 91, 7413, 3659, 4424, 91, 29, 9906, 27, 91, 68, 354, 851, 91, 29}));
    EXPECT_EQ(Decode(tok_, plain), s);
    Ids parsed = Encode(tok_, s, true, true);
    EXPECT_EQ(parsed, (Ids{128000, 128000, 9906, 128009}));  // llama.cpp also doubles BOS here
    EXPECT_EQ(Decode(tok_, parsed, false, false), "Hello");
    EXPECT_EQ(Decode(tok_, parsed, false, true), "<|begin_of_text|><|begin_of_text|>Hello<|eot_id|>");
    EXPECT_EQ(Decode(tok_, parsed, true, true), "<|begin_of_text|>Hello<|eot_id|>");
}

TEST_F(Llama3, InvalidUtf8BecomesReplacementCharacter) {  // as llama.cpp's decoder does
    Ids fffd = Encode(tok_, "\xEF\xBF\xBD");
    EXPECT_EQ(Encode(tok_, "\xFF"), fffd);
    EXPECT_EQ(Encode(tok_, "a\x80"), Encode(tok_, "a\xEF\xBF\xBD"));
    EXPECT_EQ(Encode(tok_, std::string("\xC0\x80", 2)), Encode(tok_, std::string("\0", 1)));  // overlong NUL
}

TEST_F(Llama3, ChatTemplate) {
    bn_chat_msg msgs[] = {{"system", "You are a helpful assistant."}, {"user", "Hi"}};
    char *text = nullptr;
    size_t n = 0;
    bn_error err;
    ASSERT_OK(bn_chat_template_bitnet(msgs, 2, &text, &n, &err), err);
    std::string prompt(text, n);
    free(text);
    EXPECT_EQ(prompt, "System: You are a helpful assistant.User: Hi<|eot_id|>Assistant: ");
    // "System" ":" " You" " are" " a" " helpful" " assistant" ".User" ":" " Hi" EOT "Assistant" ":" " "
    EXPECT_EQ(Encode(tok_, prompt, true, true),
              (Ids{128000, 2374, 25, 1472, 527, 264, 11190, 18328, 7494, 25, 21694, 128009, 72803, 25, 220}));
    bn_chat_msg bad[] = {{"user", "x"}, {"tool", "y"}};
    EXPECT_EQ(bn_chat_template_bitnet(bad, 2, &text, &n, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("message 1"), std::string::npos) << err.msg;
}

TEST_F(Llama3, DetokenizeRejectsBadIds) {
    Ids ids = {9906, 128256};
    char *text = nullptr;
    size_t n = 0;
    bn_error err;
    EXPECT_EQ(bn_detokenize(tok_, ids.data(), ids.size(), false, false, &text, &n, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("ids[1]"), std::string::npos) << err.msg;
    EXPECT_EQ(text, nullptr);
}

// One 300000-letter word goes through the merge loop as a single piece and
// comes back intact. (A quadratic merge would take minutes instead of
// milliseconds; no unit test times it: bench/run.sh measures this word.)
TEST_F(Llama3, LongWordRoundTrips) {
    std::string word;
    for (int i = 0; i < 300000; i++) word += "abcdefghijklmnopqrstuvwxyz"[(i * 7 + i / 26) % 26];
    Ids ids = Encode(tok_, word);
    EXPECT_GT(ids.size(), 300000u / 8);
    EXPECT_EQ(Decode(tok_, ids), word);
}

// A megabyte of llama.cpp's test inputs round-trips (its speed is a
// bench/run.sh measurement, not a test).
TEST_F(Llama3, MegabyteRoundTrips) {
    REQUIRE_SHARED(inp, "tokenizers/llama3/ggml-vocab-llama-bpe.gguf.inp");
    std::string unit = Slurp(inp), text;
    while (text.size() < (1u << 20)) text += unit;
    Ids ids = Encode(tok_, text);
    EXPECT_GT(ids.size(), text.size() / 8);
    EXPECT_EQ(Decode(tok_, ids), text);
}

// ---------------------------------------------------------------------------
// LLaMA-2 SentencePiece vocabulary and the tiny models' vocabulary.

TEST(LlamaSpm, AllLlamaCppVectors) {
    REQUIRE_SHARED(gguf, "tokenizers/llama-spm/ggml-vocab-llama-spm.gguf");
    REQUIRE_SHARED(inp, "tokenizers/llama-spm/ggml-vocab-llama-spm.gguf.inp");
    REQUIRE_SHARED(out, "tokenizers/llama-spm/ggml-vocab-llama-spm.gguf.out");
    TokenizerPtr tok = Load(gguf);
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(bn_tokenizer_kind(tok.get()), BN_VOCAB_SPM);
    EXPECT_EQ(bn_tokenizer_n_vocab(tok.get()), 32000);
    EXPECT_EQ(bn_token_bos(tok.get()), 1);
    EXPECT_EQ(bn_token_eos(tok.get()), 2);
    EXPECT_EQ(bn_token_unk(tok.get()), 0);
    // llama.cpp's test-tokenizer-0 encodes with add_special = false; the
    // leading U+2581 (add_space_prefix) is still added: " " -> "▁▁" = 259.
    Vectors v = ReadVectors(inp, out);
    ASSERT_EQ(v.inputs.size(), 46u);
    EXPECT_EQ(RunVectors(tok.get(), v), 46);
    EXPECT_EQ(Encode(tok.get(), " "), (Ids{259}));
    EXPECT_EQ(Encode(tok.get(), "Hello", true), (Ids{1, 15043}));
    EXPECT_EQ(Encode(tok.get(), "<s>Hello", false, true), (Ids{1, 15043}));  // prefix after a special
    size_t n = 0;
    const char *p = bn_token_piece(tok.get(), 15043, &n);  // "▁Hello"
    EXPECT_EQ(std::string(p, n), " Hello");
    p = bn_token_piece(tok.get(), 3 + 0x0A, &n);  // <0x0A>
    EXPECT_EQ(std::string(p, n), "\n");
}

TEST(TinyVocab, VectorsAndQuickBrownFox) {
    REQUIRE_SHARED(gguf, "models/tiny-bitnet-f32.gguf");
    REQUIRE_SHARED(inp, "tokenizers/tiny/tiny-bitnet-vocab.inp");
    REQUIRE_SHARED(out, "tokenizers/tiny/tiny-bitnet-vocab.out");
    TokenizerPtr tok = Load(gguf);
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(bn_tokenizer_n_vocab(tok.get()), 512);
    EXPECT_EQ(bn_tokenizer_n_merges(tok.get()), 253);
    EXPECT_EQ(bn_token_bos(tok.get()), 509);
    EXPECT_EQ(bn_token_eos(tok.get()), 510);
    EXPECT_EQ(bn_token_eot(tok.get()), 511);  // no eot key: found by its text
    Vectors v = ReadVectors(inp, out);
    ASSERT_EQ(v.inputs.size(), 46u);
    EXPECT_EQ(RunVectors(tok.get(), v), 46);
    EXPECT_EQ(Encode(tok.get(), "The quick brown fox", true), (Ids{509, 286, 220, 457, 496, 302, 451}));
}

// ---------------------------------------------------------------------------
// Small vocabularies written here: merge order, ties, errors.

struct VocabSpec {
    std::string model = "gpt2", pre = "gpt2";
    std::vector<std::string> tokens, merges;
    std::vector<int32_t> types;
    std::vector<float> scores;
    std::function<void(bn_gguf_writer *)> extra;
};

std::string WriteVocab(const TempDir &dir, const VocabSpec &s) {
    std::string path = dir.file("v.gguf");
    bn_gguf_writer *w = nullptr;
    bn_error err;
    EXPECT_OK(bn_gguf_writer_open(path.c_str(), 3, &w, &err), err);
    auto strs = [](const std::vector<std::string> &v) {
        std::vector<const char *> p;
        for (const auto &x : v) p.push_back(x.c_str());
        return p;
    };
    std::vector<const char *> tp = strs(s.tokens), mp = strs(s.merges);
    EXPECT_OK(bn_gguf_writer_add_str(w, "tokenizer.ggml.model", s.model.c_str(), &err), err);
    EXPECT_OK(bn_gguf_writer_add_str(w, "tokenizer.ggml.pre", s.pre.c_str(), &err), err);
    EXPECT_OK(bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tp.data(), tp.size(), &err), err);
    if (!s.merges.empty()) {
        EXPECT_OK(bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", mp.data(), mp.size(), &err), err);
    }
    if (!s.types.empty()) {
        EXPECT_OK(bn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, s.types.data(),
                                         s.types.size(), &err), err);
    }
    if (!s.scores.empty()) {
        EXPECT_OK(bn_gguf_writer_add_arr(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, s.scores.data(),
                                         s.scores.size(), &err), err);
    }
    if (s.extra) s.extra(w);
    EXPECT_OK(bn_gguf_writer_close(w, &err), err);
    return path;
}

// Loads and expects failure; returns the message.
std::string LoadError(const std::string &path, bn_status want) {
    bn_gguf *g = nullptr;
    bn_error err;
    EXPECT_OK(bn_gguf_open(path.c_str(), &g, &err), err);
    GgufPtr file(g);
    bn_tokenizer *tok = nullptr;
    EXPECT_EQ(bn_tokenizer_load(g, &tok, &err), want) << err.msg;
    EXPECT_EQ(tok, nullptr);
    bn_tokenizer_free(tok);
    return err.msg;
}

VocabSpec AbVocab() {  // ids: a=0 b=1 ab=2 ba=3 aa=4
    VocabSpec s;
    s.tokens = {"a", "b", "ab", "ba", "aa"};
    s.merges = {"a b", "b a", "a a"};
    return s;
}

TEST(BpeSmall, MergeOrderByRankThenLeftmost) {
    TempDir dir;
    TokenizerPtr tok = Load(WriteVocab(dir, AbVocab()));
    ASSERT_NE(tok, nullptr);
    // "aba": (a,b) rank 0 beats (b,a) rank 1 -> ab a
    EXPECT_EQ(Encode(tok.get(), "aba"), (Ids{2, 0}));
    // "bab": (b,a) rank 1 at 0, (a,b) rank 0 at 1 -> b ab
    EXPECT_EQ(Encode(tok.get(), "bab"), (Ids{1, 2}));
    // "aaa": equal ranks at 0 and 1 -> the leftmost: aa a
    EXPECT_EQ(Encode(tok.get(), "aaa"), (Ids{4, 0}));
    // "abab": ab at 0 and 2 (rank 0) before ba at 1 -> ab ab
    EXPECT_EQ(Encode(tok.get(), "abab"), (Ids{2, 2}));
    // 'c' has no token and no byte fallback: dropped, as llama.cpp drops it
    EXPECT_EQ(Encode(tok.get(), "acb"), (Ids{0, 1}));
    EXPECT_EQ(bn_token_bos(tok.get()), -1);
    EXPECT_EQ(Encode(tok.get(), "ab", true), (Ids{2}));  // no BOS for gpt2 + default pre
}

TEST(BpeSmall, IgnoreMergesEmitsWholeWords) {
    TempDir dir;
    VocabSpec s = AbVocab();
    s.tokens.push_back("aab");  // id 5: no merge produces it
    s.pre = "llama-bpe";
    TokenizerPtr tok = Load(WriteVocab(dir, s));
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(Encode(tok.get(), "aab"), (Ids{5}));     // the whole piece is a token
    // "aaba" is no token: (a,b) rank 0 at 1 merges first, then nothing applies
    EXPECT_EQ(Encode(tok.get(), "aaba"), (Ids{0, 2, 0}));
}

TEST(SpmSmall, MergeByScoreAndByteFallback) {
    TempDir dir;
    VocabSpec s;
    s.model = "llama";
    s.pre = "default";
    // ids: 0 <unk> 1 <s> 2 </s> 3 <0x63> ('c') 4 ▁ 5 a 6 b 7 ▁a 8 ab
    s.tokens = {"<unk>", "<s>", "</s>", "<0x63>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab"};
    s.types = {2, 3, 3, 6, 1, 1, 1, 1, 1};
    s.scores = {0, 0, 0, 0, -1, -2, -3, -4, -5};
    TokenizerPtr tok = Load(WriteVocab(dir, s));
    ASSERT_NE(tok, nullptr);
    // "▁ab": ▁a (-4) beats ab (-5) -> ▁a b
    EXPECT_EQ(Encode(tok.get(), "ab"), (Ids{7, 6}));
    // 'c' is not a token: its byte token <0x63>
    EXPECT_EQ(Encode(tok.get(), "c"), (Ids{4, 3}));
    EXPECT_EQ(Decode(tok.get(), Encode(tok.get(), "ab c")), "ab c");
    EXPECT_EQ(Encode(tok.get(), "ab", true), (Ids{1, 7, 6}));
    s.scores = {0, 0, 0, 0, -1, -2, -3, -5, -4};  // now ab wins: ▁ ab
    TempDir dir2;
    TokenizerPtr tok2 = Load(WriteVocab(dir2, s));
    ASSERT_NE(tok2, nullptr);
    EXPECT_EQ(Encode(tok2.get(), "ab"), (Ids{4, 8}));
}

TEST(TokenizerErrors, MergeWithMissingToken) {
    TempDir dir;
    VocabSpec s = AbVocab();
    s.merges = {"a b", "a c"};
    std::string msg = LoadError(WriteVocab(dir, s), BN_ERR_FORMAT);
    EXPECT_EQ(msg.find(dir.file("v.gguf") + ": "), 0u) << msg;  // names the file first
    EXPECT_NE(msg.find("tokenizer.ggml.merges[1]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'a c'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("right part is not a token"), std::string::npos) << msg;
}

TEST(TokenizerErrors, MergeWithoutSpaceOrResult) {
    TempDir dir;
    VocabSpec s = AbVocab();
    s.merges = {"ab"};
    std::string msg = LoadError(WriteVocab(dir, s), BN_ERR_FORMAT);
    EXPECT_NE(msg.find("tokenizer.ggml.merges[0]"), std::string::npos) << msg;
    TempDir dir2;
    s.merges = {"a b", "b b"};  // "bb" is not a token
    msg = LoadError(WriteVocab(dir2, s), BN_ERR_FORMAT);
    EXPECT_NE(msg.find("tokenizer.ggml.merges[1]: 'b b': the merged string is not a token"), std::string::npos)
        << msg;
}

TEST(TokenizerErrors, UnknownModelName) {
    TempDir dir;
    VocabSpec s = AbVocab();
    s.model = "bert";
    std::string msg = LoadError(WriteVocab(dir, s), BN_ERR_UNSUPPORTED);
    EXPECT_NE(msg.find("tokenizer.ggml.model"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'bert'"), std::string::npos) << msg;
}

TEST(TokenizerErrors, UnknownPreTokenizer) {
    TempDir dir;
    VocabSpec s = AbVocab();
    s.pre = "qwen2";
    std::string msg = LoadError(WriteVocab(dir, s), BN_ERR_UNSUPPORTED);
    EXPECT_EQ(msg.find(dir.file("v.gguf") + ": "), 0u) << msg;
    EXPECT_NE(msg.find("tokenizer.ggml.pre"), std::string::npos) << msg;
    EXPECT_NE(msg.find("qwen2"), std::string::npos) << msg;
}

TEST(TokenizerErrors, SpecialIdOutOfRange) {
    TempDir dir;
    VocabSpec s = AbVocab();
    s.extra = [](bn_gguf_writer *w) {
        bn_error err;
        EXPECT_OK(bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 5, &err), err);
    };
    std::string msg = LoadError(WriteVocab(dir, s), BN_ERR_FORMAT);
    EXPECT_NE(msg.find("tokenizer.ggml.bos_token_id: 5 is out of range [0, 4]"), std::string::npos) << msg;
}

TEST(TokenizerErrors, BadTokenStringsAndArrays) {
    TempDir dir;
    VocabSpec s = AbVocab();
    s.tokens[3] = "b\xFF";
    std::string msg = LoadError(WriteVocab(dir, s), BN_ERR_FORMAT);
    EXPECT_NE(msg.find("tokenizer.ggml.tokens[3]: not valid UTF-8"), std::string::npos) << msg;
    TempDir dir2;
    s = AbVocab();
    s.types = {1, 1, 1};
    msg = LoadError(WriteVocab(dir2, s), BN_ERR_FORMAT);
    EXPECT_NE(msg.find("tokenizer.ggml.token_type: 3 elements but tokenizer.ggml.tokens has 5"), std::string::npos)
        << msg;
    TempDir dir3;
    s = AbVocab();
    s.types = {1, 1, 1, 1, 9};
    msg = LoadError(WriteVocab(dir3, s), BN_ERR_FORMAT);
    EXPECT_NE(msg.find("tokenizer.ggml.token_type[4]: unknown token type 9"), std::string::npos) << msg;
}

TEST(TokenizerErrors, NoVocabulary) {
    TempDir dir;
    std::string path = dir.file("empty.gguf");
    bn_gguf_writer *w = nullptr;
    bn_error err;
    ASSERT_OK(bn_gguf_writer_open(path.c_str(), 3, &w, &err), err);
    ASSERT_OK(bn_gguf_writer_add_str(w, "general.architecture", "llama", &err), err);
    ASSERT_OK(bn_gguf_writer_close(w, &err), err);
    std::string msg = LoadError(path, BN_ERR_NOT_FOUND);
    EXPECT_NE(msg.find("tokenizer.ggml.model: missing"), std::string::npos) << msg;
}

TEST(TiktokenErrors, BadInputFiles) {
    TempDir dir;
    const std::string out = dir.file("o.gguf");
    struct Case {
        const char *content, *want;
    } cases[] = {
        {"QQ== 0\nQg== 2\n", "line 2: expected 'base64 rank'"},    // rank out of range
        {"QQ== 0\nQ!== 1\n", "line 2: 'Q!==' is not base64"},     // bad alphabet
        {"QQ== 0\nQQ== 1\n", "ranks 0 and 1 are the same token"},  // duplicate token
        {"QQ== 1\nQg== 1\n", "line 2: rank 1 appears twice"},
        {"QQ==0\n", "line 1: expected 'base64 rank'"},
    };
    for (const Case &c : cases) {
        bptest::WriteFile(dir.file("in.model"), c.content, strlen(c.content));
        bn_error err;
        EXPECT_EQ(bn_tiktoken_convert(dir.file("in.model").c_str(), out.c_str(), nullptr, nullptr, &err), BN_ERR_FORMAT)
            << c.content;
        EXPECT_NE(std::string(err.msg).find(c.want), std::string::npos) << err.msg;
        EXPECT_TRUE(bptest::ReadFile(out).empty()) << "no output left behind";
    }
    bn_error err;
    EXPECT_EQ(bn_tiktoken_convert(dir.file("absent").c_str(), out.c_str(), nullptr, nullptr, &err), BN_ERR_IO);
}

// A three-rank file: hand-derived merges and specials.
TEST(TiktokenSmall, MergesFromRanks) {
    TempDir dir;
    // ranks: 0 "a", 1 "b", 2 "ab", 3 "aab" (splits a|ab; aa is no token), 4 "abab" (ab|ab only)
    const char *content = "YQ== 0\nYg== 1\nYWI= 2\nYWFi 3\nYWJhYg== 4\n";
    bptest::WriteFile(dir.file("in.model"), content, strlen(content));
    bn_tiktoken_stats st;
    bn_error err;
    ASSERT_OK(bn_tiktoken_convert(dir.file("in.model").c_str(), dir.file("o.gguf").c_str(), &st, nullptr, &err), err);
    EXPECT_EQ(st.n_ranks, 5);
    EXPECT_EQ(st.n_special, 256);
    EXPECT_EQ(st.n_merges, 3);  // a b, a ab, ab ab
    TokenizerPtr tok = Load(dir.file("o.gguf"));
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(bn_tokenizer_n_vocab(tok.get()), 5 + 256);
    EXPECT_EQ(bn_token_bos(tok.get()), 5);
    EXPECT_EQ(bn_token_eot(tok.get()), 14);
    EXPECT_STREQ(bn_token_text(tok.get(), 5 + 2, nullptr), "<|reserved_special_token_0|>");
    EXPECT_EQ(Encode(tok.get(), "ababab"), (Ids{4, 2}));
    EXPECT_EQ(Encode(tok.get(), "<|eot_id|>", false, true), (Ids{14}));
}

}  // namespace
