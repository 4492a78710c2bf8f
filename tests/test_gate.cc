// test_gate.cc — the gate's library (parity/gate.h): shards by name hash, the manifest's located errors, the
// summary's YAML round trip, and the merge's checks. Entries here never run a model (missing files are
// skipped or errors); tests/cli/gate.sh runs real entries end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "parity/gate.h"
#include "test_helpers.h"

namespace {

struct SummaryDeleter {
    void operator()(parity_gate_summary *s) const { parity_gate_summary_free(s); }
};
using SummaryPtr = std::unique_ptr<parity_gate_summary, SummaryDeleter>;

std::string Text(const std::string &path) {
    std::vector<uint8_t> v = bptest::ReadFile(path);
    return std::string(v.begin(), v.end());
}

bn_status Check(const std::string &text, bn_error *err, size_t *n = nullptr) {
    return parity_gate_manifest_check("dir/gate.yaml", text.data(), text.size(), nullptr, 0, n, err);
}

// Shard = 1 + (first 8 bytes of sha256(name), big-endian) mod N: values computed with Python's hashlib.
TEST(Gate, ShardFollowsTheNameHash) {
    struct Case {
        const char *name;
        int n2, n3, n7;
    } cases[] = {{"a", 1, 2, 5},
                 {"b158-i2s.p1", 2, 3, 4},
                 {"llama-q8_0.p1", 1, 1, 7},
                 {"kjv-i2s.ppl", 2, 1, 6},
                 {"entry-7", 1, 3, 1}};
    for (const Case &c : cases) {
        EXPECT_EQ(parity_gate_shard_of(c.name, 2), c.n2) << c.name;
        EXPECT_EQ(parity_gate_shard_of(c.name, 3), c.n3) << c.name;
        EXPECT_EQ(parity_gate_shard_of(c.name, 7), c.n7) << c.name;
        EXPECT_EQ(parity_gate_shard_of(c.name, 1), 1);
    }
}

TEST(Gate, ParseShard) {
    int i = 0, n = 0;
    EXPECT_TRUE(parity_gate_parse_shard("1/2", &i, &n));
    EXPECT_EQ(i, 1);
    EXPECT_EQ(n, 2);
    EXPECT_TRUE(parity_gate_parse_shard("1024/1024", &i, &n));
    for (const char *bad : {"0/2", "3/2", "1/0", "x/2", "1/", "/2", "2", "1/2x", "1/1025", ""})
        EXPECT_FALSE(parity_gate_parse_shard(bad, &i, &n)) << bad;
}

TEST(Gate, ManifestErrorsNameFileLineAndKey) {
    struct Case {
        std::string text, message;
    } cases[] = {
        {"entries:\n  - {name: a, model: m.gguf, reference: r.npz, colour: red}\n",
         "dir/gate.yaml:2: key 'colour': not a key of a parity entry"},
        {"entries:\n  - {name: a, model: m.gguf}\n", "dir/gate.yaml:2: key 'reference': missing"},
        {"entries:\n  - {name: a, reference: r.npz}\n", "dir/gate.yaml:2: key 'model': missing"},
        {"entries:\n  - {name: a b, model: m.gguf, reference: r.npz}\n", "dir/gate.yaml:2: key 'name': 'a b': 1..128"},
        {"entries:\n  - {name: a, model: m.gguf, reference: r.npz}\n  - {name: a, model: m.gguf, reference: r.npz}\n",
         "dir/gate.yaml:3: key 'name': 'a' is also the name of entry 0 (line 2)"},
        {"entries:\n  - {name: a, model: m.gguf, reference: r.npz, tokens: [1, 2]}\n",
         "dir/gate.yaml:2: key 'tokens': a trace reference brings its own evaluations"},
        {"entries:\n  - {name: a, model: m.gguf, reference: python}\n",
         "dir/gate.yaml:2: key 'reference': a python reference needs exactly one of prompt, tokens and tokens-from"},
        {"entries:\n  - {name: a, model: m.gguf, reference: python, tokens: [1, -2]}\n",
         "dir/gate.yaml:2: key 'tokens': item 1: expected a token id >= 0, got '-2'"},
        {"entries:\n  - {name: a, model: m.gguf, reference: {model: o.gguf, x: 1}, prompt: hi}\n",
         "dir/gate.yaml:2: key 'reference': a mapping here has the one key 'model'"},
        {"entries:\n  - name: a\n    model: m.gguf\n    perplexity: t.txt\n",
         "dir/gate.yaml:2: key 'ppl_max': a perplexity entry needs a threshold"},
        {"entries:\n  - name: a\n    model: m.gguf\n    perplexity: t.txt\n    top1_min: 0.9\n",
         "dir/gate.yaml:5: key 'top1_min': needs base:"},
        {"entries:\n  - name: a\n    model: m.gguf\n    perplexity: t.txt\n    ctx: 1\n    ppl_max: 3\n",
         "dir/gate.yaml:5: key 'ctx': expected an integer 2..4096, got '1'"},
        {"entries:\n  - {name: a, model: \"${nope}/m.gguf\", reference: r.npz}\n",
         "dir/gate.yaml:2: key 'model': '${nope}/m.gguf': no variable 'nope'"},
        {"entries: []\n", "dir/gate.yaml:1: key 'entries': expected a non-empty list"},
        {"gate: v0\nentries: []\n", "dir/gate.yaml:1: key 'gate': expected bitparity-gate/v1"},
        {"entrys:\n  - {}\n", "dir/gate.yaml:1: key 'entrys': not a manifest key"},
        {"entries:\n  - &x {name: a, model: m.gguf, reference: r.npz}\n  - *x\n", "anchors and aliases"},
    };
    for (const Case &c : cases) {
        bn_error err = {};
        EXPECT_EQ(Check(c.text, &err), BN_ERR_FORMAT) << c.text;
        EXPECT_NE(std::string(err.msg).find(c.message), std::string::npos) << c.text << "\n -> " << err.msg;
    }
    bn_error err = {};
    size_t n = 0;
    ASSERT_EQ(Check("vars: {d: x}\nentries:\n  - {name: a, model: \"${d}/m.gguf\", reference: python, prompt: hi}\n"
                    "  - {name: b, model: m.gguf, perplexity: t.txt, ppl_max: 3}\n",
                    &err, &n),
              BN_OK)
        << err.msg;
    EXPECT_EQ(n, 2u);
}

// A gate of entries whose files are missing: optional ones are skipped, the other one is an error (exit 2);
// the summary reads back and writes the same bytes; shards merge into the same summary.
TEST(Gate, SkippedErrorsRoundTripAndMerge) {
    bptest::TempDir dir;
    const std::string manifest = dir.file("gate.yaml");
    const std::string text =
        "vars: {shared: /nonexistent/shared}\n"
        "entries:\n"
        "  - {name: s1, optional: true, model: \"${shared}/m.gguf\", reference: \"${shared}/r.npz\"}\n"
        "  - {name: s2, optional: true, model: \"${shared}/m.gguf\", reference: {model: \"${shared}/o.gguf\"}, "
        "tokens: [1, 2]}\n"
        "  - {name: gone, model: gone.gguf, reference: r.npz}\n"
        "  - {name: s3, optional: true, model: m.gguf, perplexity: t.txt, ppl_max: 3.5}\n";
    bptest::WriteFile(manifest, text.data(), text.size());
    parity_gate_opts o = {};
    const std::string whole = dir.file("whole");
    o.out_dir = whole.c_str();
    o.threads = 1;
    parity_gate_summary *raw = nullptr;
    bn_error err = {};
    ASSERT_EQ(parity_gate_run(manifest.c_str(), &o, &raw, &err), BN_OK) << err.msg;
    SummaryPtr s(raw);
    ASSERT_EQ(s->n, 4u);
    EXPECT_EQ(s->counts[PARITY_GATE_SKIPPED], 3u);
    EXPECT_EQ(s->counts[PARITY_GATE_ERROR], 1u);
    EXPECT_EQ(parity_gate_exit_code(s.get()), 2);
    EXPECT_STREQ(s->entries[0].message, "skipped, missing: ${shared}/m.gguf");
    EXPECT_STREQ(s->entries[1].reference, "model: ${shared}/o.gguf");
    EXPECT_STREQ(s->entries[2].message, "missing: gone.gguf"); // as written: no machine path
    EXPECT_EQ(s->entries[3].kind, PARITY_GATE_PERPLEXITY);
    EXPECT_EQ(s->entries[3].ppl_max, 3.5);
    EXPECT_TRUE(std::isnan(s->entries[3].ppl));

    // read back and written again: the same bytes
    const std::string yaml = Text(whole + "/summary.yaml");
    ASSERT_EQ(parity_gate_summary_load((whole + "/summary.yaml").c_str(), &raw, &err), BN_OK) << err.msg;
    SummaryPtr back(raw);
    ASSERT_EQ(parity_gate_summary_save(back.get(), dir.file("again.yaml").c_str(), &err), BN_OK) << err.msg;
    EXPECT_EQ(Text(dir.file("again.yaml")), yaml);

    // three shards (each holds the names the hash puts there; one may be empty) and their merge
    std::vector<std::string> shard_dirs;
    for (int k = 1; k <= 3; k++) {
        shard_dirs.push_back(dir.file("shard" + std::to_string(k)));
        o.out_dir = shard_dirs.back().c_str();
        o.shard_index = k, o.shard_count = 3;
        ASSERT_EQ(parity_gate_run(manifest.c_str(), &o, &raw, &err), BN_OK) << err.msg;
        SummaryPtr part(raw);
        for (size_t i = 0; i < part->n; i++) EXPECT_EQ(parity_gate_shard_of(part->entries[i].name, 3), k);
    }
    const char *dirs[3] = {shard_dirs[2].c_str(), shard_dirs[0].c_str(), shard_dirs[1].c_str()};
    const std::string merged = dir.file("merged");
    ASSERT_EQ(parity_gate_merge(dirs, 3, merged.c_str(), &raw, &err), BN_OK) << err.msg;
    SummaryPtr m(raw);
    EXPECT_EQ(Text(merged + "/summary.yaml"), yaml);

    EXPECT_EQ(parity_gate_merge(dirs, 2, nullptr, &raw, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("is missing (2 of 3 given)"), std::string::npos) << err.msg;
    const char *twice[3] = {dirs[0], dirs[0], dirs[1]};
    EXPECT_EQ(parity_gate_merge(twice, 3, nullptr, &raw, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("are both shard"), std::string::npos) << err.msg;
    const char *unsharded[1] = {whole.c_str()};
    EXPECT_EQ(parity_gate_merge(unsharded, 1, nullptr, &raw, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("not a shard's summary"), std::string::npos) << err.msg;
}

TEST(Gate, SummaryReaderNamesTheKey) {
    struct Case {
        std::string text, message;
    } cases[] = {
        {"gate: bitparity-gate/v1\n", "x.yaml:1: manifest: missing"},
        {"gate: other\n", "x.yaml:1: gate: expected bitparity-gate/v1"},
        {"gate: bitparity-gate/v1\nmanifest: g\nmanifest_sha256: abc\n", "x.yaml:3: manifest_sha256: expected 64 hex"},
    };
    for (const Case &c : cases) {
        parity_gate_summary *s = nullptr;
        bn_error err = {};
        EXPECT_EQ(parity_gate_summary_parse("x.yaml", c.text.data(), c.text.size(), &s, &err), BN_ERR_FORMAT);
        EXPECT_EQ(s, nullptr);
        EXPECT_NE(std::string(err.msg).find(c.message), std::string::npos) << err.msg;
    }
    // a link out of the output folder is refused
    std::string text = Text(bptest::SourcePath("tests/fuzz/seeds/gate/summary.yaml"));
    const std::string from = "receipt: entries/b158-i2s.p1.compat/receipt.yaml";
    ASSERT_NE(text.find(from), std::string::npos);
    text.replace(text.find(from), from.size(), "receipt: ../../etc/passwd");
    parity_gate_summary *s = nullptr;
    bn_error err = {};
    EXPECT_EQ(parity_gate_summary_parse("x.yaml", text.data(), text.size(), &s, &err), BN_ERR_FORMAT);
    EXPECT_NE(std::string(err.msg).find("entries[0].receipt: expected a path inside the output folder"),
              std::string::npos)
        << err.msg;
}

}  // namespace
