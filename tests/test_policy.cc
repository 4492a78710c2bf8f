// test_policy.cc — parity/policy.h (parsing, globs, first-match resolution,
// checks, the built-in policies) and bitnet/sha256.h (FIPS 180-4 vectors).
#include "test_helpers.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "bitnet/sha256.h"
#include "parity/policy.h"
}

namespace {


std::string Hex(const uint8_t d[BN_SHA256_DIGEST_SIZE]) {
    char h[BN_SHA256_HEX_SIZE];
    bn_sha256_hex(d, h);
    return h;
}

std::string Sha(const std::string &s) {
    uint8_t d[BN_SHA256_DIGEST_SIZE];
    bn_sha256_buffer(s.data(), s.size(), d);
    return Hex(d);
}

// ---- sha256 ------------------------------------------------------------------

TEST(Sha256, FipsVectors) {
    EXPECT_EQ(Sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(Sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(Sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(Sha("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                  "mnopqrstnopqrstu"),
              "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    EXPECT_EQ(Sha(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, AnySplitGivesTheSameDigest) {
    std::string msg;
    for (int i = 0; i < 300; i++) msg.push_back((char)(i * 7 + 3));
    const std::string whole = Sha(msg);
    for (size_t cut = 0; cut <= msg.size(); cut += 13) {
        bn_sha256 s;
        uint8_t d[BN_SHA256_DIGEST_SIZE];
        bn_sha256_init(&s);
        bn_sha256_update(&s, msg.data(), cut);
        bn_sha256_update(&s, nullptr, 0);
        bn_sha256_update(&s, msg.data() + cut, msg.size() - cut);
        bn_sha256_final(&s, d);
        EXPECT_EQ(Hex(d), whole) << "cut at " << cut;
    }
    // Lengths around the padding boundary (55, 56, 64 bytes) vs Python hashlib.
    EXPECT_EQ(Sha(std::string(55, 'x')), "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
    EXPECT_EQ(Sha(std::string(56, 'x')), "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
}

TEST(Sha256, FileHelper) {
    bptest::TempDir dir;
    std::string big(200000, 'q');
    bptest::WriteFile(dir.file("big"), big.data(), big.size());
    bptest::WriteFile(dir.file("empty"), "", 0);
    uint8_t d[BN_SHA256_DIGEST_SIZE];
    bn_error err;
    ASSERT_OK(bn_sha256_file(dir.file("big").c_str(), nullptr, d, &err), err);
    EXPECT_EQ(Hex(d), Sha(big));
    ASSERT_OK(bn_sha256_file(dir.file("empty").c_str(), nullptr, d, &err), err);
    EXPECT_EQ(Hex(d), Sha(""));
    EXPECT_EQ(bn_sha256_file(dir.file("absent").c_str(), nullptr, d, &err), BN_ERR_IO);
    EXPECT_NE(std::string(err.msg).find("absent"), std::string::npos) << err.msg;
}

// ---- glob ----------------------------------------------------------------------

TEST(PolicyGlob, DotsAreOrdinaryCharacters) {
    EXPECT_TRUE(parity_glob_match("blk.*.attn_norm", "blk.3.attn_norm"));
    EXPECT_TRUE(parity_glob_match("blk.*", "blk.12.ffn_out"));
    EXPECT_TRUE(parity_glob_match("*", "blk.1.attn_q.in_q8"));
    EXPECT_TRUE(parity_glob_match("blk.*.out", "blk.1.attn_q.in_q8.out")); // '*' crosses dots
    EXPECT_FALSE(parity_glob_match("blk.*.attn_norm", "blk.3.ffn_norm"));
    EXPECT_FALSE(parity_glob_match("blk.3", "blkx3"));                // '.' is literal
    EXPECT_FALSE(parity_glob_match("logits", "logits2"));             // whole name
    EXPECT_TRUE(parity_glob_match("blk.?.out", "blk.7.out"));
    EXPECT_FALSE(parity_glob_match("blk.?.out", "blk.17.out"));
    EXPECT_TRUE(parity_glob_match("blk.[0-4].*", "blk.4.attn_k"));
    EXPECT_FALSE(parity_glob_match("blk.[0-4].*", "blk.5.attn_k"));
    EXPECT_TRUE(parity_glob_match("blk.[!0-4].*", "blk.5.attn_k"));
    EXPECT_TRUE(parity_glob_match("attn_[qkv]", "attn_v"));
    EXPECT_TRUE(parity_glob_match("a[]]b", "a]b"));
    EXPECT_FALSE(parity_glob_match("blk.[0-4", "blk.1"));  // malformed set matches nothing
    EXPECT_TRUE(parity_glob_match("*a*a*a*b", "aaaaaaaaaaaaaaaaaaab"));
    EXPECT_FALSE(parity_glob_match("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaa"));
    EXPECT_TRUE(parity_glob_match("", ""));
    EXPECT_FALSE(parity_glob_match("", "x"));
}

// ---- loading & resolution ---------------------------------------------------

PolicyPtr Load(const std::string &text, bn_error *err, bn_status *st = nullptr) {
    parity_policy *p = nullptr;
    bn_status s = parity_policy_load_string(text.data(), text.size(), "test.yaml", &p, err);
    if (st) *st = s;
    return PolicyPtr(p);
}

const char kRules[] = R"(policy: bitparity/v1
name: strict-cpu
numerics: [f32]
defaults: {nmse_max: 1.0e-6, cosine_min: 0.9999}
rules:                       # first match wins, in file order
  - match: "blk.*.attn_probs"
    nmse_max: 1.0e-5
  - match: "blk.*"
    max_abs_max: 0.5
    nmse_max: .inf
  - match: "blk.0.attn_probs"
    skip: true
  - match: logits
    kld_mean_max: 1.0e-4
    top1_agree_min: 1.0
)";

TEST(PolicyRules, FirstMatchWinsOverDefaults) {
    bn_error err;
    bn_status st;
    PolicyPtr p = Load(kRules, &err, &st);
    ASSERT_OK(st, err);
    EXPECT_STREQ(parity_policy_name(p.get()), "strict-cpu");
    EXPECT_EQ(parity_policy_numerics_count(p.get()), 1u);
    EXPECT_TRUE(parity_policy_calibrated_for(p.get(), "f32"));
    EXPECT_FALSE(parity_policy_calibrated_for(p.get(), "ggml-compat"));

    parity_limits l = parity_policy_resolve(p.get(), "blk.0.attn_probs"); // rule 1, not rule 3
    EXPECT_EQ(l.nmse_max, 1e-5);
    EXPECT_EQ(l.cosine_min, 0.9999); // inherited from defaults
    EXPECT_EQ(l.skip, -1);
    EXPECT_TRUE(std::isnan(l.max_abs_max));
    EXPECT_STREQ(l.rule, "blk.*.attn_probs");
    EXPECT_EQ(l.rule_line, 6);

    l = parity_policy_resolve(p.get(), "blk.3.ffn_out"); // rule 2
    EXPECT_TRUE(std::isinf(l.nmse_max));                  // .inf lifts the default
    EXPECT_EQ(l.max_abs_max, 0.5);
    EXPECT_EQ(l.rule_line, 8);

    l = parity_policy_resolve(p.get(), "logits");
    EXPECT_EQ(l.kld_mean_max, 1e-4);
    EXPECT_EQ(l.top1_agree_min, 1.0);
    EXPECT_EQ(l.nmse_max, 1e-6);

    l = parity_policy_resolve(p.get(), "output_norm");
    EXPECT_STREQ(l.rule, "defaults");
    EXPECT_EQ(l.rule_line, 0);
    EXPECT_EQ(l.nmse_max, 1e-6);
    EXPECT_EQ(l.bit_identical, -1);
    EXPECT_EQ(parity_policy_sha256(p.get()), Sha(kRules));
}

parity_metrics CleanMetrics() {
    parity_metrics m;
    memset(&m, 0, sizeof m);
    m.n = m.n_finite = 100;
    m.nmse = 2e-7;
    m.nmse_llama = 2e-7;
    m.cosine = 0.99999;
    m.max_abs = 0.01;
    m.rel_rms = sqrt(2e-7);
    m.ulp_max = 40;
    m.bit_identical = 1;
    return m;
}

TEST(PolicyCheck, ReportsFirstFailingMetric) {
    bn_error err;
    bn_status st;
    PolicyPtr p = Load(kRules, &err, &st);
    ASSERT_OK(st, err);
    parity_limits l = parity_policy_resolve(p.get(), "output_norm");
    parity_metrics m = CleanMetrics();
    parity_check c = parity_policy_check(&l, &m, nullptr);
    EXPECT_EQ(c.pass, 1);
    EXPECT_EQ(c.metric, nullptr);

    m.nmse = 3e-6;
    m.cosine = 0.5; // also broken, but nmse comes first in check order
    c = parity_policy_check(&l, &m, nullptr);
    EXPECT_EQ(c.pass, 0);
    EXPECT_STREQ(c.metric, "nmse");
    EXPECT_EQ(c.value, 3e-6);
    EXPECT_EQ(c.limit, 1e-6);

    m.nmse = 1e-7;
    c = parity_policy_check(&l, &m, nullptr);
    EXPECT_STREQ(c.metric, "cosine");
    EXPECT_EQ(c.value, 0.5);
    EXPECT_EQ(c.limit, 0.9999);

    m.nmse = NAN; // a NaN metric never passes
    c = parity_policy_check(&l, &m, nullptr);
    EXPECT_STREQ(c.metric, "nmse");
}

TEST(PolicyCheck, NanInfBitsAndSkip) {
    bn_error err;
    bn_status st;
    PolicyPtr p = Load(R"(policy: bitparity/v1
name: t
defaults: {ulp_max: 4}
rules:
  - match: nan_ok
    allow_nan: true
  - match: exact
    bit_identical: true
  - match: skipped
    skip: true
)",
                          &err, &st);
    ASSERT_OK(st, err);
    parity_metrics m = CleanMetrics();
    parity_limits def = parity_policy_resolve(p.get(), "x");
    parity_check c = parity_policy_check(&def, &m, nullptr);
    EXPECT_STREQ(c.metric, "ulp_max");
    EXPECT_EQ(c.value, 40.0);
    EXPECT_EQ(c.limit, 4.0);

    m.ulp_max = 0;
    m.nan_a = m.nan_b = 2; // NaN on both sides, same places
    c = parity_policy_check(&def, &m, nullptr);
    EXPECT_STREQ(c.metric, "nan_count");
    EXPECT_EQ(c.value, 4.0);
    parity_limits nan_ok = parity_policy_resolve(p.get(), "nan_ok");
    EXPECT_EQ(parity_policy_check(&nan_ok, &m, nullptr).pass, 1);
    m.nan_mismatch = 1;
    c = parity_policy_check(&nan_ok, &m, nullptr);
    EXPECT_STREQ(c.metric, "nan_mismatch");
    m.nan_a = m.nan_b = m.nan_mismatch = 0;

    m.inf_mismatch = 3;
    c = parity_policy_check(&def, &m, nullptr);
    EXPECT_STREQ(c.metric, "inf_mismatch");
    EXPECT_EQ(c.value, 3.0);
    m.inf_mismatch = 0;

    parity_limits exact = parity_policy_resolve(p.get(), "exact");
    m.n_bitdiff = 7;
    m.bit_identical = 0;
    c = parity_policy_check(&exact, &m, nullptr);
    EXPECT_STREQ(c.metric, "bit_diff_count");
    EXPECT_EQ(c.value, 7.0);
    EXPECT_EQ(c.limit, 0.0);

    parity_limits skipped = parity_policy_resolve(p.get(), "skipped");
    m.nmse = INFINITY;
    c = parity_policy_check(&skipped, &m, nullptr);
    EXPECT_EQ(c.pass, 1);
    EXPECT_EQ(c.skipped, 1);
}

TEST(PolicyCheck, LogitsKeys) {
    bn_error err;
    bn_status st;
    PolicyPtr p = Load(kRules, &err, &st);
    ASSERT_OK(st, err);
    parity_limits l = parity_policy_resolve(p.get(), "logits");
    parity_metrics m = CleanMetrics();
    parity_logits_summary s;
    memset(&s, 0, sizeof s);
    s.kld_mean = 5e-5;
    s.top1_agree = 1.0;
    EXPECT_EQ(parity_policy_check(&l, &m, &s).pass, 1);
    s.top1_agree = 11.0 / 12;
    parity_check c = parity_policy_check(&l, &m, &s);
    EXPECT_STREQ(c.metric, "top1_agree");
    EXPECT_DOUBLE_EQ(c.value, 11.0 / 12);
    EXPECT_EQ(c.limit, 1.0);
    s.kld_mean = 2e-4;
    c = parity_policy_check(&l, &m, &s);
    EXPECT_STREQ(c.metric, "kld_mean");
    // Without a summary the logits keys are not checked.
    EXPECT_EQ(parity_policy_check(&l, &m, nullptr).pass, 1);
}

// ---- built-in policies -----------------------------------------------------------

TEST(PolicyBuiltin, EmbeddedMatchesFile) {
    size_t n = 0;
    const char *const *names = parity_policy_builtin_names(&n);
    ASSERT_EQ(n, 6u);
    for (size_t i = 0; i < n; i++) {
        SCOPED_TRACE(names[i]);
        std::string path = bptest::SourcePath(std::string("parity/policies/") + names[i] + ".yaml");
        std::vector<uint8_t> disk = bptest::ReadFile(path);
        ASSERT_FALSE(disk.empty()) << path;
        const char *text = parity_policy_builtin_text(names[i]);
        ASSERT_NE(text, nullptr);
        EXPECT_EQ(std::string(text), std::string(disk.begin(), disk.end()))
            << "parity/src/policy_builtin.c is stale: regenerate it from " << path;

        parity_policy *p = nullptr;
        bn_error err;
        ASSERT_OK(parity_policy_load_builtin(names[i], &p, &err), err);
        PolicyPtr hb(p);
        EXPECT_STREQ(parity_policy_name(p), names[i]);
        EXPECT_EQ(parity_policy_origin(p), "builtin:" + std::string(names[i]));
        ASSERT_OK(parity_policy_load_file(path.c_str(), &p, &err), err);
        PolicyPtr hf(p);
        EXPECT_STREQ(parity_policy_sha256(hb.get()), parity_policy_sha256(hf.get()));
        EXPECT_EQ(parity_policy_sha256(hf.get()), Sha(std::string(disk.begin(), disk.end())));
        EXPECT_GT(strlen(parity_policy_description(p)), 20u);
    }
}

PolicyPtr Builtin(const char *name) {
    parity_policy *p = nullptr;
    bn_error err;
    EXPECT_OK(parity_policy_load_builtin(name, &p, &err), err);
    return PolicyPtr(p);
}

TEST(PolicyBuiltin, ExactIsBitIdenticalEverywhere) {
    PolicyPtr p = Builtin("exact");
    ASSERT_TRUE(p);
    for (const char *tap : {"token_embd", "blk.0.attn_q", "blk.29.out", "output_norm", "logits"})
        EXPECT_EQ(parity_policy_resolve(p.get(), tap).bit_identical, 1) << tap;
    EXPECT_EQ(parity_policy_resolve(p.get(), "logits").top1_agree_min, 1.0);
    EXPECT_TRUE(parity_policy_calibrated_for(p.get(), "f32"));
}

// `accept:` names the equivalences that pass (docs/hints.md); none by default,
// none in any built-in policy.
TEST(PolicyAccept, ListedEquivalencesOnly) {
    bn_error err;
    bn_status st;
    PolicyPtr p = Load("policy: bitparity/v1\nname: x\naccept: [equivalent-rotary-layout]\n", &err, &st);
    ASSERT_EQ(st, BN_OK) << err.msg;
    EXPECT_EQ(parity_policy_accepts(p.get(), "equivalent-rotary-layout"), 1);
    EXPECT_EQ(parity_policy_accepts(p.get(), "equivalent-other"), 0);
    EXPECT_EQ(parity_policy_accepts(p.get(), nullptr), 0);
    PolicyPtr none = Load("policy: bitparity/v1\nname: x\n", &err, &st);
    ASSERT_EQ(st, BN_OK) << err.msg;
    EXPECT_EQ(parity_policy_accepts(none.get(), "equivalent-rotary-layout"), 0);
    size_t n = 0;
    const char *const *names = parity_policy_builtin_names(&n);
    for (size_t i = 0; i < n; i++) {
        PolicyPtr b = Builtin(names[i]);
        ASSERT_TRUE(b) << names[i];
        EXPECT_EQ(parity_policy_accepts(b.get(), "equivalent-rotary-layout"), 0) << names[i];
    }
}

TEST(PolicyBuiltin, GgmlCompatRules) {
    PolicyPtr p = Builtin("ggml-compat");
    ASSERT_TRUE(p);
    EXPECT_EQ(parity_policy_resolve(p.get(), "token_embd").bit_identical, 1);
    EXPECT_EQ(parity_policy_resolve(p.get(), "blk.5.ffn_down").nmse_max, 1e-5);
    EXPECT_EQ(parity_policy_resolve(p.get(), "something.new").nmse_max, 1e-8);
    parity_limits l = parity_policy_resolve(p.get(), "logits");
    EXPECT_EQ(l.top1_agree_min, 1.0);
    EXPECT_EQ(l.kld_mean_max, 1e-4);
    EXPECT_TRUE(parity_policy_calibrated_for(p.get(), "ggml-compat"));
    EXPECT_FALSE(parity_policy_calibrated_for(p.get(), "f32"));
}

TEST(PolicyBuiltin, CalibrationAgainstMeasuredFloors) {
    // The floors recorded in the files must pass their own policies.
    PolicyPtr cross = Builtin("cross-backend"), quant = Builtin("quantized");
    ASSERT_TRUE(cross && quant);
    parity_metrics m = CleanMetrics();
    m.bit_identical = 0;
    m.n_bitdiff = 50;
    m.ulp_max = 100000;
    m.nmse = m.nmse_llama = 3e-8; // llama.cpp vs bitnet.cpp at p·V
    m.cosine = 1 - 1.5e-8;
    parity_limits l = parity_policy_resolve(cross.get(), "blk.0.attn_ctx");
    EXPECT_EQ(parity_policy_check(&l, &m, nullptr).pass, 1);
    parity_logits_summary s;
    memset(&s, 0, sizeof s);
    s.kld_mean = 1e-6;
    s.kld_max = 1.7e-6;
    s.top1_agree = s.same_top_p = s.top5_overlap = 1.0;
    l = parity_policy_resolve(cross.get(), "logits");
    EXPECT_EQ(parity_policy_check(&l, &m, &s).pass, 1);
    // TQ vs F32: last-layer NMSE 2e-3 passes, a wrong kernel (NMSE 0.2) fails.
    m.nmse = m.nmse_llama = 2e-3;
    m.cosine = 0.999;
    l = parity_policy_resolve(quant.get(), "blk.29.out");
    EXPECT_EQ(parity_policy_check(&l, &m, nullptr).pass, 1);
    m.nmse = 0.2;
    EXPECT_STREQ(parity_policy_check(&l, &m, nullptr).metric, "nmse");
    s.kld_mean = 1.2e-2;
    s.kld_max = 5.3e-2;
    s.top1_agree = 0.917;
    s.top5_overlap = 0.91;
    m.nmse = 1e-3;
    l = parity_policy_resolve(quant.get(), "logits");
    EXPECT_EQ(parity_policy_check(&l, &m, &s).pass, 1);
}

TEST(PolicyBuiltin, UnknownNameListsTheBuiltins) {
    parity_policy *p = nullptr;
    bn_error err;
    EXPECT_EQ(parity_policy_load_builtin("strict", &p, &err), BN_ERR_NOT_FOUND);
    EXPECT_EQ(p, nullptr);
    EXPECT_NE(std::string(err.msg).find("cross-backend, exact, ggml-compat, quantized, reference-int8, reference"),
              std::string::npos)
        << err.msg;
}

// ---- malformed policies ------------------------------------------------------------

struct BadCase {
    const char *name;
    const char *text;
    bn_status status;
    const char *where; // "FILE:LINE" suffix expected after the path
    const char *key;   // "key 'x'" fragment, or a message fragment
};

const BadCase kBad[] = {
    {"unclosed_flow", "policy: bitparity/v1\nname: x\nrules: [\n  {match: a\n", BN_ERR_FORMAT, ":5:",
     "malformed YAML"},
    {"tab_indent", "policy: bitparity/v1\nname: x\ndefaults:\n\tnmse_max: 1\n", BN_ERR_FORMAT, ":4:",
     "malformed YAML"},
    {"missing_version", "name: x\ndefaults: {nmse_max: 1}\n", BN_ERR_FORMAT, ":1:", "key 'policy': missing"},
    {"wrong_version", "name: x\npolicy: bitparity/v2\n", BN_ERR_UNSUPPORTED, ":2:",
     "key 'policy': unsupported version 'bitparity/v2'"},
    {"version_list", "policy: [bitparity/v1]\nname: x\n", BN_ERR_FORMAT, ":1:", "key 'policy': expected"},
    {"unknown_top", "policy: bitparity/v1\nname: x\ncolour: red\n", BN_ERR_FORMAT, ":3:",
     "key 'colour': unknown top-level key"},
    {"unknown_limit", "policy: bitparity/v1\nname: x\ndefaults:\n  nmse_max: 1.0e-6\n  nmse_mx: 1\n",
     BN_ERR_FORMAT, ":5:", "key 'nmse_mx': unknown key in defaults"},
    {"unknown_rule_key", "policy: bitparity/v1\nname: x\nrules:\n  - match: a\n    tolerance: 1\n", BN_ERR_FORMAT,
     ":5:", "key 'tolerance': unknown key in rule 1"},
    {"quoted_number", "policy: bitparity/v1\nname: x\ndefaults:\n  nmse_max: \"1e-6\"\n", BN_ERR_FORMAT, ":4:",
     "key 'nmse_max': expected a number, got '1e-6'"},
    {"word_number", "policy: bitparity/v1\nname: x\ndefaults: {cosine_min: high}\n", BN_ERR_FORMAT, ":3:",
     "key 'cosine_min': expected a number, got 'high'"},
    {"list_number", "policy: bitparity/v1\nname: x\ndefaults:\n  max_abs_max: [1, 2]\n", BN_ERR_FORMAT, ":4:",
     "key 'max_abs_max': expected a number, got a list"},
    {"nan_number", "policy: bitparity/v1\nname: x\ndefaults:\n  nmse_max: .nan\n", BN_ERR_FORMAT, ":4:",
     "key 'nmse_max': expected a number"},
    {"huge_number", "policy: bitparity/v1\nname: x\ndefaults:\n  nmse_max: 1e999\n", BN_ERR_FORMAT, ":4:",
     "key 'nmse_max': expected a number"},
    {"int_bool", "policy: bitparity/v1\nname: x\nrules:\n  - match: a\n    bit_identical: 1\n", BN_ERR_FORMAT,
     ":5:", "key 'bit_identical': expected true or false, got '1'"},
    {"yes_bool", "policy: bitparity/v1\nname: x\ndefaults: {skip: yes}\n", BN_ERR_FORMAT, ":3:",
     "key 'skip': expected true or false, got 'yes'"},
    {"negative", "policy: bitparity/v1\nname: x\ndefaults:\n  nmse_max: -1.0e-6\n", BN_ERR_FORMAT, ":4:",
     "key 'nmse_max': -1e-06 is negative"},
    {"cosine_range", "policy: bitparity/v1\nname: x\ndefaults:\n  cosine_min: 1.5\n", BN_ERR_FORMAT, ":4:",
     "key 'cosine_min': 1.5 is outside [-1, 1]"},
    {"frac_range", "policy: bitparity/v1\nname: x\nrules:\n  - match: logits\n    top1_agree_min: 94\n",
     BN_ERR_FORMAT, ":5:", "key 'top1_agree_min': 94 is outside [0, 1]"},
    {"ulp_fraction", "policy: bitparity/v1\nname: x\ndefaults:\n  ulp_max: 1.5\n", BN_ERR_FORMAT, ":4:",
     "key 'ulp_max': 1.5 is not a whole number"},
    {"rules_mapping", "policy: bitparity/v1\nname: x\nrules:\n  match: a\n  nmse_max: 1\n", BN_ERR_FORMAT, ":4:",
     "key 'rules': expected a list of rules, got a mapping"},
    {"rule_scalar", "policy: bitparity/v1\nname: x\nrules:\n  - logits\n", BN_ERR_FORMAT, ":4:",
     "key 'rule 1': expected a mapping of limits, got a scalar"},
    {"rule_without_match", "policy: bitparity/v1\nname: x\nrules:\n  - match: a\n  - nmse_max: 1\n    skip: true\n",
     BN_ERR_FORMAT, ":5:", "key 'match': rule 2 has no 'match' glob"},
    {"empty_match", "policy: bitparity/v1\nname: x\nrules:\n  - match: \"\"\n", BN_ERR_FORMAT, ":4:",
     "key 'match': expected a non-empty glob"},
    {"bad_glob", "policy: bitparity/v1\nname: x\nrules:\n  - match: \"blk.[0-9.out\"\n", BN_ERR_FORMAT, ":4:",
     "key 'match': unterminated '['"},
    {"duplicate_limit", "policy: bitparity/v1\nname: x\ndefaults:\n  nmse_max: 1\n  nmse_max: 2\n", BN_ERR_FORMAT,
     ":5:", "key 'nmse_max': duplicate key"},
    {"duplicate_top", "policy: bitparity/v1\nname: x\nname: y\n", BN_ERR_FORMAT, ":3:",
     "key 'name': duplicate key (first at line 2)"},
    {"duplicate_match", "policy: bitparity/v1\nname: x\nrules:\n  - match: a\n    match: b\n", BN_ERR_FORMAT, ":5:",
     "key 'match': duplicate key"},
    {"unknown_mode", "policy: bitparity/v1\nname: x\nnumerics:\n  - f32\n  - bf16\n", BN_ERR_FORMAT, ":5:",
     "key 'numerics': unknown mode 'bf16'"},
    {"numerics_scalar", "policy: bitparity/v1\nname: x\nnumerics: f32\n", BN_ERR_FORMAT, ":3:",
     "key 'numerics': expected a list of modes, got a scalar"},
    {"unknown_equivalence", "policy: bitparity/v1\nname: x\naccept:\n  - equivalent-rotary-layout\n  - same-ish\n",
     BN_ERR_FORMAT, ":5:", "key 'accept': unknown equivalence 'same-ish' (equivalences: equivalent-rotary-layout)"},
    {"accept_scalar", "policy: bitparity/v1\nname: x\naccept: equivalent-rotary-layout\n", BN_ERR_FORMAT, ":3:",
     "key 'accept': expected a list of equivalences, got a scalar"},
    {"floors_list", "policy: bitparity/v1\nname: x\nfloors: [1, 2]\n", BN_ERR_FORMAT, ":3:",
     "key 'floors': expected a mapping, got a list"},
    {"defaults_list", "policy: bitparity/v1\nname: x\ndefaults: [nmse_max]\n", BN_ERR_FORMAT, ":3:",
     "key 'defaults': expected a mapping of limits, got a list"},
    {"missing_name", "policy: bitparity/v1\ndefaults: {nmse_max: 1}\n", BN_ERR_FORMAT, ":1:", "key 'name': missing"},
    {"empty_name", "policy: bitparity/v1\nname: ''\n", BN_ERR_FORMAT, ":2:", "key 'name': must not be empty"},
    {"name_mapping", "policy: bitparity/v1\nname: {a: b}\n", BN_ERR_FORMAT, ":2:",
     "key 'name': expected a string, got a mapping"},
    {"empty_document", "# nothing here\n", BN_ERR_FORMAT, ":1:", "key 'policy': empty document"},
    {"scalar_document", "\n\nhello\n", BN_ERR_FORMAT, ":3:", "a policy is a YAML mapping, got a scalar"},
    {"two_documents", "policy: bitparity/v1\nname: x\n---\npolicy: bitparity/v1\nname: y\n", BN_ERR_FORMAT, ":4:",
     "more than one YAML document"},
    {"bad_utf8", "policy: bitparity/v1\nname: x\ndescription: caf\xc3\x28\n", BN_ERR_FORMAT, ":3:", "malformed YAML"},
    {"nul_in_key", "policy: bitparity/v1\nname: x\ndefaults: {\"nmse\\0max\": 1}\n", BN_ERR_FORMAT, ":3:",
     "keys must be names, got a string with a NUL byte"},
    {"self_alias", "policy: bitparity/v1\nname: x\nrules: &r [*r]\n", BN_ERR_FORMAT, ":3:",
     "key 'rule 1': expected a mapping of limits, got a list"},
};

TEST(PolicyMalformed, EveryErrorNamesFileLineAndKey) {
    bptest::TempDir dir;
    for (const BadCase &bc : kBad) {
        SCOPED_TRACE(bc.name);
        std::string path = dir.file(std::string(bc.name) + ".yaml");
        bptest::WriteFile(path, bc.text, strlen(bc.text));
        parity_policy *p = nullptr;
        bn_error err;
        bn_error_clear(&err);
        bn_status st = parity_policy_load_file(path.c_str(), &p, &err);
        EXPECT_EQ(st, bc.status) << err.msg;
        EXPECT_EQ(p, nullptr);
        std::string msg = err.msg;
        EXPECT_EQ(msg.rfind(path + bc.where, 0), 0u) << msg;
        EXPECT_NE(msg.find(bc.key), std::string::npos) << msg;
        parity_policy_free(p);
    }
}

TEST(PolicyMalformed, IoAndSizeLimits) {
    bptest::TempDir dir;
    parity_policy *p = nullptr;
    bn_error err;
    EXPECT_EQ(parity_policy_load_file(dir.file("absent.yaml").c_str(), &p, &err), BN_ERR_IO);
    EXPECT_NE(std::string(err.msg).find("absent.yaml"), std::string::npos) << err.msg;
    EXPECT_EQ(parity_policy_load_file(dir.path().c_str(), &p, &err), BN_ERR_IO); // a directory
    std::string big = "policy: bitparity/v1\nname: x\n# " + std::string(PARITY_POLICY_MAX_BYTES, 'z') + "\n";
    bptest::WriteFile(dir.file("big.yaml"), big.data(), big.size());
    EXPECT_EQ(parity_policy_load_file(dir.file("big.yaml").c_str(), &p, &err), BN_ERR_FORMAT);
    EXPECT_NE(std::string(err.msg).find("larger than a policy may be"), std::string::npos) << err.msg;
    EXPECT_EQ(p, nullptr);
}

TEST(PolicyMalformed, TruncatedBuiltinsNeverCrash) {
    // Every prefix of a real policy either loads or fails with a located message.
    const char *text = parity_policy_builtin_text("ggml-compat");
    ASSERT_NE(text, nullptr);
    size_t n = strlen(text), ok = 0;
    for (size_t cut = 0; cut <= n; cut += 7) {
        parity_policy *p = nullptr;
        bn_error err;
        bn_status st = parity_policy_load_string(text, cut, "cut.yaml", &p, &err);
        if (st == BN_OK) {
            ok++;
            parity_policy_free(p);
        } else {
            EXPECT_EQ(std::string(err.msg).rfind("cut.yaml:", 0), 0u) << err.msg;
        }
    }
    EXPECT_GT(ok, 0u);
}

}  // namespace
