// test_driver.cc — the parity driver (parity/driver.h) end to end on a model
// synthesized here (no ../shared needed), and the receipt schema: every key
// a receipt is written with is in the schema table, and docs/receipt.md
// lists exactly the table's keys.
#include <yaml.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/sha256.h"
#include "parity/driver.h"
#include "parity/record.h"
#include "parity/receipt_schema.h"
#include "parity/replay.h"
}

namespace {

using bptest::TempDir;
using DriverPtr = bptest::Handle<parity_driver_run, parity_driver_run_free>;

// tiny.gguf (I2_S) and two engine traces of it, the second with a fault,
// made by the binary as a user would.
struct Traces {
    TempDir tmp;
    std::string model, good, silu;
    Traces() : model(tmp.file("tiny.gguf")), good(tmp.file("good.npz")), silu(tmp.file("silu.npz")) {}
    void Make() {
        const std::string tokens = " --tokens 509,286,220,457,496,302,451,13,271,88 --decode 2";
        for (const std::string &cmd : {"synth --shape tiny --type i2_s --seed 1 -o " + model,
                                       "trace -m " + model + tokens + " -o " + good,
                                       "trace -m " + model + tokens + " --fault silu -o " + silu}) {
            bptest::RunResult r = bptest::RunCli(cmd);
            ASSERT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
        }
    }
};

parity_driver_opts Opts(const Traces &t, const std::string &subject, const std::string &reference) {
    parity_driver_opts o{};
    o.subject = subject.c_str();
    o.reference = reference.c_str();
    o.model = t.model.c_str();
    o.threads = 2;
    o.receipt = true;
    return o;
}

// The receipt as YAML text.
std::string Yaml(const parity_receipt *rc, const std::string &path) {
    bn_error err{};
    EXPECT_OK(parity_receipt_save(rc, PARITY_RECEIPT_YAML, path.c_str(), &err), err);
    std::vector<uint8_t> b = bptest::ReadFile(path);
    return std::string(b.begin(), b.end());
}

// Every key path of a YAML document, as the schema spells sections: list
// items as "[]", the reference side as subject, reference_evaluations as
// evaluations.
void Walk(yaml_document_t *d, yaml_node_t *n, const std::string &path, std::set<std::string> *out) {
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++)
            Walk(d, yaml_document_get_node(d, *i), path + "[]", out);
    } else if (n->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            std::string key = (const char *)yaml_document_get_node(d, p->key)->data.scalar.value;
            if (path.empty() && key == "reference") key = "subject";
            if (path == "input" && key == "reference_evaluations") key = "evaluations";
            const std::string full = path.empty() ? key : path + "." + key;
            out->insert(full);
            Walk(d, yaml_document_get_node(d, p->value), full, out);
        }
    }
}

std::set<std::string> KeyPaths(const std::string &yaml_text) {
    yaml_parser_t p;
    yaml_document_t d;
    std::set<std::string> out;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml_text.data(), yaml_text.size());
    EXPECT_TRUE(yaml_parser_load(&p, &d));
    if (yaml_node_t *root = yaml_document_get_root_node(&d)) Walk(&d, root, "", &out);
    yaml_document_delete(&d);
    yaml_parser_delete(&p);
    return out;
}

std::set<std::string> SchemaPaths() {
    std::set<std::string> s;
    for (int i = 0; i < PARITY_RK_COUNT; i++) {
        const parity_receipt_key &k = parity_receipt_keys[i];
        s.insert(*k.section ? std::string(k.section) + "." + k.key : std::string(k.key));
    }
    return s;
}

TEST(Driver, ReadsComparesLocalizesReplaysAndBuildsTheReceipt) {
    Traces t;
    ASSERT_NO_FATAL_FAILURE(t.Make());
    bn_error err{};
    parity_driver_opts o = Opts(t, t.silu, t.good);
    o.replay = true;
    o.replay_mode = PARITY_REPLAY_OP;
    parity_driver_run *r = nullptr;
    ASSERT_OK(parity_driver_run_job(&o, &r, &err), err);
    DriverPtr run(r);
    ASSERT_FALSE(r->result->pass);
    ASSERT_TRUE(r->result->first.found);
    EXPECT_EQ(r->result->first.eval, 0);
    EXPECT_STREQ(r->result->first.tap, "blk.0.ffn_act");
    EXPECT_STREQ(parity_policy_name(r->policy), "exact");
    std::vector<std::string> hints;
    for (size_t i = 0; i < r->result->n_hints; i++) hints.push_back(r->result->hints[i].name);
    EXPECT_EQ(hints, (std::vector<std::string>{"activation-swap", "replay-local-op"}));
    ASSERT_NE(r->replay, nullptr);
    ASSERT_GE(r->replay->first_local, 0);
    EXPECT_STREQ(r->replay->taps[r->replay->first_local].name, "blk.0.ffn_act");
    EXPECT_EQ(r->replay->taps[r->replay->first_local].eval, 0);
    ASSERT_NE(r->receipt, nullptr);
}

// check's path: the engine recorded now, following the reference's
// evaluations, from the one loaded model; the recorded trace equals one
// recorded by `trace` (the reference here is the engine's own trace).
TEST(Driver, RecordsTheSubjectFollowingTheReference) {
    Traces t;
    ASSERT_NO_FATAL_FAILURE(t.Make());
    bn_error err{};
    const std::string rec = t.tmp.file("rec.npz");
    parity_driver_opts o = Opts(t, "", t.good);
    o.subject = nullptr;
    o.record_path = rec.c_str();
    parity_driver_run *r = nullptr;
    ASSERT_OK(parity_driver_run_job(&o, &r, &err), err);
    DriverPtr run(r);
    EXPECT_TRUE(r->result->pass);
    EXPECT_EQ(r->result->counts.fail, 0);
    EXPECT_EQ(r->result->counts.compared, r->result->counts.bit_identical);
    EXPECT_GT(r->result->counts.compared, 200);
    EXPECT_STREQ(parity_trace_get(r->trace[0], "settings.numerics"), "ggml-compat");
    EXPECT_EQ(parity_trace_eval_count(r->trace[0]), 3);

    // Without a path the recording stays in memory: nothing new on disk, the
    // same verdict, and the receipt hashes the same bytes the kept file holds.
    o.record_path = nullptr;
    parity_driver_run *m = nullptr;
    ASSERT_OK(parity_driver_run_job(&o, &m, &err), err);
    DriverPtr in_memory(m);
    EXPECT_STREQ(parity_trace_path(m->trace[0]), PARITY_RECORD_MEMORY_NAME);
    EXPECT_TRUE(m->result->pass);
    EXPECT_EQ(m->result->counts.bit_identical, r->result->counts.bit_identical);
    uint8_t digest[BN_SHA256_DIGEST_SIZE];
    char hex[BN_SHA256_HEX_SIZE];
    ASSERT_OK(bn_sha256_file(rec.c_str(), nullptr, digest, &err), err);
    bn_sha256_hex(digest, hex);
    const std::string yaml = Yaml(m->receipt, t.tmp.file("mem.yaml"));
    const size_t subject = yaml.find("\nsubject:"), reference = yaml.find("\nreference:");
    const size_t at = yaml.find(hex, subject);
    EXPECT_TRUE(subject != std::string::npos && at < reference) << hex << "\n" << yaml; // the subject's sha256
    EXPECT_NE(yaml.find("trace: (engine trace in memory)"), std::string::npos) << yaml;

    // Nothing to record with, or replay without a model: refused before any work.
    o.model = nullptr;
    EXPECT_EQ(parity_driver_run_job(&o, &r, &err), BN_ERR_INVALID);
    EXPECT_EQ(r, nullptr);
    parity_driver_opts o2 = Opts(t, t.silu, t.good);
    o2.model = nullptr;
    o2.replay = true;
    EXPECT_EQ(parity_driver_run_job(&o2, &r, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("--replay needs -m MODEL"), std::string::npos) << err.msg;
}

// A copy of the canonical trace `src` as another engine would write it:
// the same arrays under producer `producer` (model sha256 `sha`, or none).
void CopyAs(const std::string &src, const std::string &dst, const char *producer, const char *sha) {
    bn_error err{};
    parity_trace *t = nullptr;
    ASSERT_OK(parity_trace_open(src.c_str(), &t, &err), err);
    parity_trace_writer *w = nullptr;
    ASSERT_OK(parity_trace_writer_open(dst.c_str(), NPZ_STORED, &w, &err), err);
    std::vector<parity_eval> evals;
    for (int64_t k = 0; k < parity_trace_eval_count(t); k++) {
        evals.push_back(*parity_trace_eval(t, k));
        for (int64_t i = 0; i < parity_trace_tap_count(t); i++) {
            const char *tap = parity_trace_tap_name(t, i);
            npz_array a{};
            if (parity_trace_load_raw(t, k, tap, &a, &err) != BN_OK) continue; // a tap of e0 only
            EXPECT_OK(parity_trace_writer_add_tap(w, k, tap, a.info.dtype, a.info.shape, a.info.ndim, a.data, &err), err);
            npz_array_free(&a);
        }
    }
    parity_trace_meta meta{};
    meta.producer_name = producer;
    meta.model_sha256 = sha;
    meta.numerics = parity_trace_get(t, "settings.numerics");
    meta.threads = -1;
    meta.evals = evals.data();
    meta.n_evals = (int64_t)evals.size();
    EXPECT_OK(parity_trace_writer_finish(w, &meta, &err), err);
    parity_trace_close(t);
}

// Replay re-runs bitparity's engine: it is refused, before any work, for a
// trace another engine wrote (it would judge bitparity's engine, not that
// one) and for a model other than the one the subject was recorded from.
TEST(Driver, ReplayOnlySpeaksForBitparitysOwnTraceOfTheSameModel) {
    Traces t;
    ASSERT_NO_FATAL_FAILURE(t.Make());
    bn_error err{};
    const std::string foreign = t.tmp.file("foreign.npz");
    ASSERT_NO_FATAL_FAILURE(CopyAs(t.silu, foreign, "my-rust-port", nullptr));
    parity_driver_opts o = Opts(t, foreign, t.good);
    o.replay = true;
    parity_driver_run *r = nullptr;
    EXPECT_EQ(parity_driver_run_job(&o, &r, &err), BN_ERR_INVALID);
    EXPECT_EQ(r, nullptr);
    EXPECT_NE(std::string(err.msg).find("so it only speaks for traces bitparity recorded; " + foreign +
                                        " was produced by 'my-rust-port'"),
              std::string::npos)
        << err.msg;
    // without --replay the foreign trace is compared and explained as before
    o.replay = false;
    ASSERT_OK(parity_driver_run_job(&o, &r, &err), err);
    DriverPtr plain(r);
    EXPECT_FALSE(r->result->pass);
    EXPECT_EQ(r->replay, nullptr);

    // bitparity's own trace, but -m names another model
    const std::string other = t.tmp.file("other.gguf");
    bptest::RunResult made = bptest::RunCli("synth --shape tiny --type i2_s --seed 2 -o " + other);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    o = Opts(t, t.silu, t.good);
    o.model = other.c_str();
    o.replay = true;
    EXPECT_EQ(parity_driver_run_job(&o, &r, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("was recorded from a model with sha256"), std::string::npos) << err.msg;
    // and the library call refuses on its own, whoever calls it
    parity_trace *ft = nullptr;
    ASSERT_OK(parity_trace_open(foreign.c_str(), &ft, &err), err);
    EXPECT_EQ(parity_replay_applies(ft, nullptr, &err), BN_ERR_INVALID);
    parity_trace_close(ft);
}

TEST(ReceiptSchema, WrittenReceiptsUseOnlyTheTablesKeys) {
    Traces t;
    ASSERT_NO_FATAL_FAILURE(t.Make());
    const std::set<std::string> schema = SchemaPaths();
    ASSERT_EQ(schema.size(), (size_t)PARITY_RK_COUNT) << "a key is listed twice in receipt_schema.h";
    std::set<std::string> seen;
    const struct { const std::string *subject; bool replay; parity_replay_mode mode; } runs[] = {
        {&t.good, false, PARITY_REPLAY_BLOCK}, {&t.silu, true, PARITY_REPLAY_BLOCK}, {&t.silu, true, PARITY_REPLAY_OP}};
    for (const auto &c : runs) {
        bn_error err{};
        parity_driver_opts o = Opts(t, *c.subject, t.good);
        o.replay = c.replay;
        o.replay_mode = c.mode;
        parity_driver_run *r = nullptr;
        ASSERT_OK(parity_driver_run_job(&o, &r, &err), err);
        DriverPtr run(r);
        for (const std::string &k : KeyPaths(Yaml(r->receipt, t.tmp.file("r.yaml")))) {
            EXPECT_TRUE(schema.count(k)) << k << " is written but not in receipt_schema.h";
            seen.insert(k);
        }
    }
    // The three receipts cover the sections every comparison writes.
    for (const char *k : {"summary.first_divergence.tap", "taps[].metrics.nmse", "taps[].limits.rule",
                          "taps[].failed.metric", "logits[].kld_max", "replay.first_local.tap",
                          "replay.blocks[].error", "replay.failing_taps[].nmse", "timings.hash_s",
                          "subject.map.sha256", "input.evaluations[].p0"})
        EXPECT_TRUE(seen.count(k)) << k;
}

// The "Keys" table of docs/receipt.md: `| `path` | type | meaning |` rows.
std::map<std::string, std::string> DocKeys() {
    std::ifstream f(bptest::SourcePath("docs/receipt.md"));
    std::map<std::string, std::string> keys;
    std::string line;
    bool in_table = false;
    while (std::getline(f, line)) {
        if (line.rfind("## ", 0) == 0) in_table = line == "## Keys";
        if (!in_table || line.rfind("| `", 0) != 0) continue;
        const size_t a = 3, b = line.find('`', a);
        const size_t c = line.find('|', b), d = line.find('|', c + 1);
        std::string type = line.substr(c + 1, d - c - 1);
        type = type.substr(type.find_first_not_of(' '));
        type = type.substr(0, type.find_last_not_of(' ') + 1);
        keys[line.substr(a, b - a)] = type;
    }
    return keys;
}

TEST(ReceiptSchema, DocsListExactlyTheTablesKeys) {
    const std::map<std::string, std::string> doc = DocKeys();
    std::ostringstream want; // what the table should be, for pasting
    std::map<std::string, std::string> table;
    for (int i = 0; i < PARITY_RK_COUNT; i++) {
        const parity_receipt_key &k = parity_receipt_keys[i];
        const std::string path = *k.section ? std::string(k.section) + "." + k.key : std::string(k.key);
        table[path] = parity_receipt_type_name(k.type);
        want << "| `" << path << "` | " << table[path] << " | " << k.doc << " |\n";
    }
    EXPECT_EQ(doc, table) << "docs/receipt.md's \"## Keys\" table should read:\n" << want.str();
}

}  // namespace
