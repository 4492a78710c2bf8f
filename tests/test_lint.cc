// test_lint.cc — the I2_S statistics rules of parity/lint.h on hand-made
// tensors (the broken-export generator has no kind that trips them: the
// CLI test tests/cli/lint_diff.sh covers the others), and the document
// writer parity/doc.h that lint, diff and receipts share.
#include "test_helpers.h"

extern "C" {
#include "bitnet/gguf.h"
#include "bitnet/quant.h"
#include "parity/doc.h"
#include "parity/lint.h"
}

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using bptest::TempDir;

namespace {

// Ternary codes 0..2 from an LCG (about 1/3 each), packed in bitnet.cpp's
// layout: byte b of a block holds codes of elements b, b+32, b+64, b+96.
struct I2s {
    int64_t ne0, ne1;
    std::vector<uint8_t> bytes;
    I2s(int64_t cols, int64_t rows, uint32_t seed) : ne0(cols), ne1(rows), bytes((size_t)(cols * rows / 4 + 32), 0) {
        for (size_t b = 0; b < (size_t)(cols * rows / 4); b++) {
            uint8_t v = 0;
            for (int g = 0; g < 4; g++) {
                seed = seed * 1664525u + 1013904223u;
                v = (uint8_t)(v | ((seed >> 16) % 3) << (6 - 2 * g));
            }
            bytes[b] = v;
        }
        const float scale = 0.5f;
        memcpy(&bytes[(size_t)(cols * rows / 4)], &scale, sizeof scale);
    }
    void set_code(int64_t row, int64_t col, int code) {
        const int64_t e = row * ne0 + col, block = e / 128, j = e % 128;
        uint8_t &b = bytes[(size_t)(block * 32 + j % 32)];
        const int shift = 6 - 2 * (int)(j / 32);
        b = (uint8_t)((b & ~(3 << shift)) | (code << shift));
    }
};

std::string WriteModel(const TempDir &dir, const std::vector<std::pair<std::string, I2s>> &tensors) {
    const std::string path = dir.file("m.gguf");
    bn_gguf_writer *w;
    bn_error err;
    EXPECT_EQ(bn_gguf_writer_open(path.c_str(), 3, &w, &err), BN_OK) << err.msg;
    EXPECT_EQ(bn_gguf_writer_add_str(w, "general.architecture", "bitnet-b1.58", &err), BN_OK) << err.msg;
    for (const auto &t : tensors) {
        const int64_t ne[2] = {t.second.ne0, t.second.ne1};
        EXPECT_EQ(bn_gguf_writer_add_tensor(w, t.first.c_str(), BN_TYPE_I2_S, 2, ne, &err), BN_OK) << err.msg;
    }
    for (const auto &t : tensors)
        EXPECT_EQ(bn_gguf_writer_write_tensor(w, t.second.bytes.data(), t.second.bytes.size(), &err), BN_OK) << err.msg;
    EXPECT_EQ(bn_gguf_writer_close(w, &err), BN_OK) << err.msg;
    return path;
}

// The findings of one rule: "subject: message" each.
std::vector<std::string> Findings(const std::string &path, const char *rule) {
    parity_lint_result *r = nullptr;
    bn_error err;
    EXPECT_EQ(parity_lint_file(path.c_str(), nullptr, &r, &err), BN_OK) << err.msg;
    std::vector<std::string> out;
    for (size_t i = 0; r && i < r->n; i++)
        if (!strcmp(r->findings[i].rule->id, rule)) out.push_back(std::string(r->findings[i].subject) + ": " + r->findings[i].message);
    parity_lint_result_free(r);
    return out;
}

TEST(Lint, GoodI2sTensorsTripNoStatisticsRule) {
    TempDir dir;
    const std::string p = WriteModel(dir, {{"a.weight", I2s(256, 64, 1)}, {"b.weight", I2s(256, 64, 2)},
                                           {"c.weight", I2s(128, 96, 3)}});
    EXPECT_TRUE(Findings(p, "i2s-code-layout").empty());
    EXPECT_TRUE(Findings(p, "i2s-code-stats").empty());
    EXPECT_TRUE(Findings(p, "i2s-row-degenerate").empty());
    EXPECT_TRUE(Findings(p, "i2s-code3").empty());
    EXPECT_TRUE(Findings(p, "i2s-scale-invalid").empty());
}

// Group 1 (elements 32..63 of every block) all zero codes: its zero fraction
// is 1 against 1/2 over the tensor (1/3·3/4 + 1/4).
TEST(Lint, OneCodeGroupUnlikeTheOthersIsALayoutWarning) {
    TempDir dir;
    I2s bad(256, 64, 4);
    for (int64_t r = 0; r < 64; r++)
        for (int64_t c = 0; c < 256; c++)
            if ((c % 128) / 32 == 1) bad.set_code(r, c, 1);
    const std::string p = WriteModel(dir, {{"good.weight", I2s(256, 64, 5)}, {"bad.weight", bad}});
    const auto f = Findings(p, "i2s-code-layout");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].rfind("bad.weight: ", 0), 0u) << f[0];
    EXPECT_NE(f[0].find("zero fraction of code group 1 (elements 32..63 of each 128-block) is 1.000"), std::string::npos) << f[0];
}

TEST(Lint, RowsOfOneCodeAreDegenerate) {
    TempDir dir;
    I2s t(256, 64, 6);
    for (int64_t c = 0; c < 256; c++) t.set_code(5, c, 0), t.set_code(9, c, 0), t.set_code(40, c, 1);
    const auto f = Findings(WriteModel(dir, {{"t.weight", t}}), "i2s-row-degenerate");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_NE(f[0].find("3 of 64 rows whose codes are all equal (first: row 5, code 0)"), std::string::npos) << f[0];
}

// Four tensors: one with +1 twice as often as -1 and few zeros.
TEST(Lint, ATensorUnlikeTheOthersIsAStatisticsWarning) {
    TempDir dir;
    I2s odd(128, 64, 7);
    for (int64_t r = 0; r < 64; r++)
        for (int64_t c = 0; c < 128; c++) odd.set_code(r, c, c % 8 == 0 ? 0 : 2);
    const std::string p = WriteModel(dir, {{"a.weight", I2s(128, 64, 8)}, {"b.weight", I2s(128, 64, 9)},
                                           {"c.weight", I2s(128, 64, 10)}, {"odd.weight", odd}});
    const auto f = Findings(p, "i2s-code-stats");
    ASSERT_EQ(f.size(), 1u);
    // zero fraction 0, sign balance (7/8 - 1/8) / 1 = +0.75
    EXPECT_NE(f[0].find("odd.weight: zero fraction 0.000"), std::string::npos) << f[0];
    EXPECT_NE(f[0].find("= +0.750"), std::string::npos) << f[0];
}

std::string Emit(const parity_doc_node *root, parity_doc_format fmt) {
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bn_error err;
    EXPECT_EQ(parity_doc_emit(root, fmt, f, &err), BN_OK) << err.msg;
    fclose(f);
    std::string s(buf, len);
    free(buf);
    return s;
}

TEST(Doc, YamlQuotesWhatAReaderWouldMisreadAndJsonEscapes) {
    parity_doc_builder b = {0, 0};
    parity_doc_node *root = parity_doc_root(&b);
    parity_doc_str(&b, root, "word", "yes");
    parity_doc_str(&b, root, "number_text", "1.5");
    parity_doc_str(&b, root, "plain", "blk.0.attn_q.weight");
    parity_doc_num(&b, root, "x", 1e-06);
    parity_doc_num(&b, root, "inf", INFINITY);
    parity_doc_bool(&b, root, "ok", 1);
    int64_t shape[2] = {128, 4};
    parity_doc_shape(&b, root, "shape", 2, shape);
    parity_doc_str(&b, root, "esc", "a\"b\nc");
    parity_doc_num_or_null(&b, root, "none", NAN);
    ASSERT_FALSE(b.oom);
    EXPECT_EQ(Emit(root, PARITY_DOC_YAML),
              "word: \"yes\"\nnumber_text: \"1.5\"\nplain: blk.0.attn_q.weight\nx: 1.0e-06\ninf: .inf\nok: true\n"
              "shape: [128, 4]\nesc: 'a\"b\n\n  c'\nnone: null\n");
    EXPECT_EQ(Emit(root, PARITY_DOC_JSON),
              "{\n  \"word\": \"yes\",\n  \"number_text\": \"1.5\",\n  \"plain\": \"blk.0.attn_q.weight\",\n  \"x\": 1.0e-06,\n"
              "  \"inf\": \".inf\",\n  \"ok\": true,\n  \"shape\": [128, 4],\n  \"esc\": \"a\\\"b\\nc\",\n  \"none\": null\n}\n");
    parity_doc_free(root);
}

// Strings from files may hold any bytes: what is not UTF-8 becomes '?', so
// that both writers produce a valid document (libyaml's emitter would fail).
TEST(Doc, BytesThatAreNotUtf8BecomeQuestionMarks) {
    parity_doc_builder b = {0, 0};
    parity_doc_node *root = parity_doc_root(&b);
    parity_doc_str(&b, root, "s", "a\xff\xc3\xa9\xed\xa0\x80\xf4\x90\x80\x80z\xe2\x82");
    ASSERT_FALSE(b.oom);
    EXPECT_STREQ(root->head->str, "a?\xc3\xa9???????z??");
    EXPECT_EQ(Emit(root, PARITY_DOC_YAML), "s: a?\xc3\xa9???????z??\n");
    parity_doc_free(root);
}

}  // namespace
