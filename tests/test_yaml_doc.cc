// The YAML reading layer (common/src/yaml_doc.c) and the error channel's
// composition helpers it is built on (bn_error_setv, _prefixf, _appendf).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdarg>
#include <cstring>
#include <string>

#include "test_helpers.h"

#include "bitnet/status.h"
#include "bitnet/yaml_doc.h"

namespace {

using DocPtr = bptest::Handle<bn_yaml_doc, bn_yaml_free>;

DocPtr Parse(const std::string &text, bn_error *err, bn_status *st, const char *origin = "t.yaml") {
    bn_yaml_doc *d = nullptr;
    *st = bn_yaml_parse(origin, text.data(), text.size(), 1 << 20, "test file", &d, err);
    return DocPtr(d);
}

// A helper in the style the modules write: the message comes from the caller,
// the place is added around it.
bn_status PlaceError(bn_error *err, const char *file, int line, const char *fmt, ...) BN_PRINTF(4, 5);
bn_status PlaceError(bn_error *err, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bn_error_setv(err, BN_ERR_FORMAT, fmt, ap);
    va_end(ap);
    bn_error_prefixf(err, "%s:%d", file, line);
    bn_error_appendf(err, " (at %s)", "here");
    return BN_ERR_FORMAT;
}

TEST(ErrorChannel, SetvPrefixfAppendfCompose) {
    bn_error err;
    bn_error_clear(&err);
    EXPECT_EQ(PlaceError(&err, "a.yaml", 7, "expected %d, got '%s'", 3, "x\ny"), BN_ERR_FORMAT);
    EXPECT_EQ(err.code, BN_ERR_FORMAT);
    EXPECT_STREQ(err.msg, "a.yaml:7: expected 3, got 'x y' (at here)");  // newline folded: one line
    // A NULL err is allowed everywhere and still returns the code.
    EXPECT_EQ(PlaceError(nullptr, "a.yaml", 7, "x"), BN_ERR_FORMAT);
}

// Allocation failures say what and how much (MiB from 1 MiB on).
TEST(ErrorChannel, NomemSaysWhatAndHowMuch) {
    bn_error err{};
    EXPECT_EQ(bn_error_nomem(&err, 96000, "%s: the central directory of %d members", "t.npz", 1200), BN_ERR_NOMEM);
    EXPECT_EQ(err.code, BN_ERR_NOMEM);
    EXPECT_STREQ(err.msg, "t.npz: the central directory of 1200 members: out of memory (96000 bytes)");
    bn_error_nomem(&err, 3221225472ull, "kv cache");
    EXPECT_STREQ(err.msg, "kv cache: out of memory (3221225472 bytes, 3072 MiB)");
    bn_error_nomem(&err, 1048575, "x");
    EXPECT_STREQ(err.msg, "x: out of memory (1048575 bytes)");
    EXPECT_EQ(bn_error_nomem(nullptr, 1, "nowhere"), BN_ERR_NOMEM);
    EXPECT_EQ(bn_status_exit_code(BN_ERR_NOMEM), 3);
}

TEST(ErrorChannel, LongMessagesAreCutAtTheEndNotThePlace) {
    bn_error err;
    std::string long_msg(2 * BN_ERROR_MSG_MAX, 'm');
    PlaceError(&err, "f.yaml", 12, "%s", long_msg.c_str());
    EXPECT_EQ(strlen(err.msg), (size_t)BN_ERROR_MSG_MAX - 1);
    EXPECT_EQ(std::string(err.msg).rfind("f.yaml:12: mmm", 0), 0u) << err.msg;
}

TEST(YamlDoc, NodesKeepKindTextAndPosition) {
    bn_error err{};
    bn_status st;
    DocPtr d = Parse("a: 1\nb:\n  - x\n  - 'q'\nc: {k: ~}\n", &err, &st);
    ASSERT_OK(st, err);
    const bn_yaml_node *root = bn_yaml_root(d.get());
    ASSERT_NE(root, nullptr);
    EXPECT_EQ(root->kind, BN_YAML_MAP);
    ASSERT_EQ(root->n, 3u);
    EXPECT_STREQ(bn_yaml_str(bn_yaml_key(root, 1)), "b");
    const bn_yaml_node *b = bn_yaml_get(root, "b");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->kind, BN_YAML_LIST);
    ASSERT_EQ(b->n, 2u);
    EXPECT_EQ(bn_yaml_item(b, 0)->line, 3);
    EXPECT_EQ(bn_yaml_item(b, 0)->col, 5);
    EXPECT_TRUE(bn_yaml_item(b, 0)->plain);
    EXPECT_STREQ(bn_yaml_item(b, 1)->text, "q");
    EXPECT_FALSE(bn_yaml_item(b, 1)->plain);
    const bn_yaml_node *k = bn_yaml_get(bn_yaml_get(root, "c"), "k");
    EXPECT_TRUE(bn_yaml_is_null(k));
    EXPECT_FALSE(bn_yaml_is_null(bn_yaml_item(b, 1)));
    EXPECT_EQ(bn_yaml_get(root, "absent"), nullptr);
    EXPECT_EQ(bn_yaml_get(b, "x"), nullptr);  // not a mapping
    EXPECT_STREQ(bn_yaml_kind_name(b), "a list");
    EXPECT_STREQ(bn_yaml_kind_name(nullptr), "nothing");
    EXPECT_EQ(bn_yaml_first_alias(d.get()), nullptr);
}

TEST(YamlDoc, EmptyDocumentHasNoRoot) {
    bn_error err{};
    bn_status st;
    DocPtr d = Parse("# only a comment\n", &err, &st);
    ASSERT_OK(st, err);
    EXPECT_EQ(bn_yaml_root(d.get()), nullptr);
}

TEST(YamlDoc, SyntaxErrorsNameLineAndColumn) {
    bn_error err{};
    bn_status st;
    DocPtr d = Parse("a: [1,\nb: 2\n", &err, &st);  // libyaml notices at the end of the input
    EXPECT_EQ(st, BN_ERR_FORMAT);
    EXPECT_EQ(d, nullptr);
    EXPECT_STREQ(err.msg, "t.yaml:3:1: malformed YAML: did not find expected ',' or ']' while parsing a flow sequence");
    // A reader error (invalid UTF-8) has only an offset: line and column are
    // counted up to it (the bad byte is the 9th of line 2).
    d = Parse("a: 1\nbc: caf\xc3\x28\n", &err, &st);
    EXPECT_EQ(st, BN_ERR_FORMAT);
    EXPECT_EQ(std::string(err.msg).rfind("t.yaml:2:9: malformed YAML: invalid trailing UTF-8 octet", 0), 0u) << err.msg;
}

TEST(YamlDoc, ASecondDocumentIsRefused) {
    bn_error err{};
    bn_status st;
    DocPtr d = Parse("a: 1\n---\nb: 2\n", &err, &st);
    EXPECT_EQ(st, BN_ERR_FORMAT);
    EXPECT_STREQ(err.msg, "t.yaml:3: more than one YAML document");
    d = Parse("---\na: 1\n...\n", &err, &st);  // explicit markers around one document are fine
    EXPECT_OK(st, err);
}

TEST(YamlDoc, AliasesAreSharedNodesAndFound) {
    bn_error err{};
    bn_status st;
    DocPtr d = Parse("x: &a {k: 1}\ny: *a\n", &err, &st);
    ASSERT_OK(st, err);
    const bn_yaml_node *root = bn_yaml_root(d.get());
    EXPECT_EQ(bn_yaml_get(root, "x"), bn_yaml_get(root, "y"));
    EXPECT_EQ(bn_yaml_get(root, "x")->refs, 2);
    EXPECT_EQ(bn_yaml_first_alias(d.get()), bn_yaml_get(root, "x"));
    d = Parse("&r [*r]\n", &err, &st);  // a list that holds itself: the root used anywhere is an alias
    ASSERT_OK(st, err);
    root = bn_yaml_root(d.get());
    EXPECT_EQ(bn_yaml_item(root, 0), root);
    EXPECT_EQ(bn_yaml_first_alias(d.get()), root);
}

TEST(YamlDoc, StringsWithNulAreNotStrings) {
    bn_error err{};
    bn_status st;
    DocPtr d = Parse("a: \"x\\0y\"\n", &err, &st);
    ASSERT_OK(st, err);
    const bn_yaml_node *a = bn_yaml_get(bn_yaml_root(d.get()), "a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->len, 3u);
    EXPECT_EQ(bn_yaml_str(a), nullptr);
}

TEST(YamlDoc, Numbers) {
    double v = 0;
    EXPECT_TRUE(bn_yaml_parse_number("1.5e-3", 0, &v));
    EXPECT_EQ(v, 1.5e-3);
    EXPECT_TRUE(bn_yaml_parse_number("-.inf", 0, &v));
    EXPECT_EQ(v, -INFINITY);
    EXPECT_TRUE(bn_yaml_parse_number("+.Inf", 0, &v));
    EXPECT_EQ(v, INFINITY);
    EXPECT_FALSE(bn_yaml_parse_number(".nan", 0, &v));
    EXPECT_TRUE(bn_yaml_parse_number(".NaN", 1, &v));
    EXPECT_TRUE(std::isnan(v));
    EXPECT_TRUE(bn_yaml_parse_number("1e-400", 0, &v));  // underflow is a tiny number
    EXPECT_EQ(v, 0.0);
    for (const char *bad : {"1e999", "-1e999", "inf", "nan", "0x10", "", "1.0.0", "1 ", "high"})
        EXPECT_FALSE(bn_yaml_parse_number(bad, 1, &v)) << bad;
    EXPECT_FALSE(bn_yaml_parse_number(nullptr, 1, &v));
}

TEST(YamlDoc, IntegersAndBooleans) {
    int64_t i = 0;
    EXPECT_TRUE(bn_yaml_parse_int("-12", -20, 20, &i));
    EXPECT_EQ(i, -12);
    EXPECT_TRUE(bn_yaml_parse_int("9223372036854775807", INT64_MIN, INT64_MAX, &i));
    EXPECT_EQ(i, INT64_MAX);
    for (const char *bad : {"21", "-21", "1.0", " 1", "", "0x1", "1e3", "2 "})
        EXPECT_FALSE(bn_yaml_parse_int(bad, -20, 20, &i)) << bad;
    EXPECT_FALSE(bn_yaml_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &i));
    EXPECT_FALSE(bn_yaml_parse_int(nullptr, INT64_MIN, INT64_MAX, &i));

    bn_error err{};
    bn_status st;
    DocPtr d = Parse("[true, False, TRUE, 'true', yes, 1]\n", &err, &st);
    ASSERT_OK(st, err);
    const bn_yaml_node *l = bn_yaml_root(d.get());
    int b = -1;
    EXPECT_TRUE(bn_yaml_parse_bool(bn_yaml_item(l, 0), &b));
    EXPECT_EQ(b, 1);
    EXPECT_TRUE(bn_yaml_parse_bool(bn_yaml_item(l, 1), &b));
    EXPECT_EQ(b, 0);
    EXPECT_TRUE(bn_yaml_parse_bool(bn_yaml_item(l, 2), &b));
    EXPECT_EQ(b, 1);
    for (size_t k = 3; k < 6; k++) EXPECT_FALSE(bn_yaml_parse_bool(bn_yaml_item(l, k), &b)) << k;
}

TEST(YamlDoc, ErrorsNameOriginLineAndField) {
    bn_error err{};
    bn_status st;
    DocPtr d = Parse("a: 1\nb:\n  c: x\n", &err, &st, "x.npz: meta.yaml");
    ASSERT_OK(st, err);
    const bn_yaml_node *c = bn_yaml_get(bn_yaml_get(bn_yaml_root(d.get()), "b"), "c");
    EXPECT_EQ(bn_yaml_fail(d.get(), &err, c, BN_ERR_FORMAT, BN_YAML_PATH, "b.c", "expected an integer, got '%s'", c->text),
              BN_ERR_FORMAT);
    EXPECT_STREQ(err.msg, "x.npz: meta.yaml:3: b.c: expected an integer, got 'x'");
    EXPECT_EQ(bn_yaml_fail(d.get(), &err, c, BN_ERR_UNSUPPORTED, BN_YAML_KEY, "c", "version %d", 2), BN_ERR_UNSUPPORTED);
    EXPECT_EQ(err.code, BN_ERR_UNSUPPORTED);
    EXPECT_STREQ(err.msg, "x.npz: meta.yaml:3: key 'c': version 2");
    bn_yaml_fail(d.get(), &err, nullptr, BN_ERR_FORMAT, BN_YAML_KEY, nullptr, "empty");  // no node: line 1, no field
    EXPECT_STREQ(err.msg, "x.npz: meta.yaml:1: empty");
}

TEST(YamlDoc, FilesAreReadWholeWithinTheLimit) {
    bptest::TempDir dir;
    bn_error err{};
    bn_yaml_doc *d = nullptr;
    EXPECT_EQ(bn_yaml_load_file(dir.file("absent.yaml").c_str(), 100, "map", &d, &err), BN_ERR_IO);
    EXPECT_NE(std::string(err.msg).find("absent.yaml: cannot open"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_yaml_load_file(dir.path().c_str(), 100, "map", &d, &err), BN_ERR_IO);  // a directory
    EXPECT_NE(std::string(err.msg).find("not a regular file"), std::string::npos) << err.msg;
    std::string big = "a: " + std::string(200, 'z') + "\n";
    bptest::WriteFile(dir.file("big.yaml"), big.data(), big.size());
    EXPECT_EQ(bn_yaml_load_file(dir.file("big.yaml").c_str(), 100, "map", &d, &err), BN_ERR_FORMAT);
    EXPECT_EQ(std::string(err.msg), dir.file("big.yaml") + ": 204 bytes is larger than a map may be (100)");
    EXPECT_EQ(d, nullptr);
    ASSERT_OK(bn_yaml_load_file(dir.file("big.yaml").c_str(), 1000, "map", &d, &err), err);
    EXPECT_EQ(bn_yaml_get(bn_yaml_root(d), "a")->len, 200u);
    EXPECT_STREQ(bn_yaml_origin(d), dir.file("big.yaml").c_str());
    bn_yaml_free(d);
}

}  // namespace
