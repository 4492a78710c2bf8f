// test_tapmap.cc — tap maps (parity/maps/*.yaml) and views of the shared
// bitnet.cpp / llama.cpp traces through them: names, order, layouts (RoPE
// reshape, cropped and scaled kq with the causal mask), pruned row subsets;
// and docs/taps.md, the tap contract, against the engine's tap table and the
// built-in maps.
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/taps.h"
#include "parity/tapmap.h"
#include "parity/trace.h"
}

using bptest::Handle;

namespace {

struct Tensor : parity_tensor {
    Tensor() : parity_tensor() {}
    ~Tensor() { parity_tensor_free(this); }
};

MapPtr LoadText(const std::string &text, bn_error *err, bn_status *st) {
    parity_tapmap *m = nullptr;
    *st = parity_tapmap_load_string(text.data(), text.size(), "t.yaml", &m, err);
    return MapPtr(m);
}

const char kHeader[] =
    "tapmap: bitparity/v1\n"  // line 1
    "name: t\n"
    "layout: ggml-nodes\n"
    "taps:\n";  // line 4

}  // namespace

TEST(TapMapBuiltin, EmbeddedMatchesFile) {
    size_t n = 0;
    const char *const *names = parity_tapmap_builtin_names(&n);
    ASSERT_EQ(n, 3u);
    for (size_t i = 0; i < n; i++) {
        std::vector<uint8_t> file = bptest::ReadFile(bptest::SourcePath("parity/maps/" + std::string(names[i]) + ".yaml"));
        ASSERT_FALSE(file.empty()) << names[i];
        EXPECT_EQ(std::string(file.begin(), file.end()), parity_tapmap_builtin_text(names[i]))
            << "parity/src/tapmap_builtin.c is stale for " << names[i] << ": regenerate it from the YAML";
    }
}

TEST(TapMapBuiltin, Parse) {
    bn_error err{};
    parity_tapmap *raw;
    ASSERT_OK(parity_tapmap_load_builtin("bitnet.cpp", &raw, &err), err);
    MapPtr m(raw);
    EXPECT_STREQ(parity_tapmap_name(m.get()), "bitnet.cpp");
    EXPECT_STREQ(parity_tapmap_origin(m.get()), "builtin:bitnet.cpp");
    EXPECT_EQ(parity_tapmap_layout(m.get()), PARITY_LAYOUT_GGML_NODES);
    ASSERT_EQ(parity_tapmap_rule_count(m.get()), 22u);  // token_embd, 19 per block, output_norm, logits
    const parity_map_rule *kq = parity_tapmap_rule(m.get(), 7);
    EXPECT_STREQ(kq->tap, "blk.{N}.attn_scores");
    EXPECT_EQ(kq->layout, PARITY_MAP_HEADS);
    EXPECT_EQ(kq->scale_inv_sqrt_head_dim, 1);
    EXPECT_EQ(kq->causal_mask, 1);
    EXPECT_STREQ(kq->head_dim_node, "Qcur-{N}");
    EXPECT_EQ(strlen(parity_tapmap_sha256(m.get())), 64u);

    ASSERT_OK(parity_tapmap_load("llama.cpp", &raw, &err), err);
    m.reset(raw);
    const parity_map_rule *act = parity_tapmap_rule(m.get(), 16);
    EXPECT_STREQ(act->tap, "blk.{N}.ffn_act");
    ASSERT_EQ(act->n_ops, 2);
    EXPECT_STREQ(act->ops[0], "MUL");
    EXPECT_STREQ(act->ops[1], "SWIGLU");

    ASSERT_OK(parity_tapmap_load_builtin("canonical", &raw, &err), err);
    m.reset(raw);
    EXPECT_EQ(parity_tapmap_identity(m.get()), 1);
    EXPECT_EQ(parity_tapmap_rule_count(m.get()), 0u);

    EXPECT_EQ(parity_tapmap_load_builtin("vllm", &raw, &err), BN_ERR_NOT_FOUND);
    EXPECT_NE(std::string(err.msg).find("bitnet.cpp, canonical, llama.cpp"), std::string::npos) << err.msg;
}

TEST(TapMapParse, ErrorsNameFileLineAndKey) {
    struct Case {
        std::string body;
        bn_status status;
        const char *needle;
    } cases[] = {
        {"  - {tap: token_embd, node: embd, op: GET_ROWS}\n  - {tap: x, node: y, bogus: 1}\n", BN_ERR_FORMAT,
         "t.yaml:6: key 'bogus': unknown key in a tap entry"},
        {"  - {tap: \"blk.{N}.attn_q\", node: Qcur, op: MUL_MAT}\n", BN_ERR_FORMAT,
         "t.yaml:5: key 'node': 'Qcur' and tap 'blk.{N}.attn_q' must both have {N} or neither"},
        {"  - {tap: \"blk.{n}.x\", node: \"x-{n}\"}\n", BN_ERR_FORMAT, "t.yaml:5: key 'tap'"},
        {"  - {tap: x, node: y, op: [A, B, C, D, E]}\n", BN_ERR_FORMAT, "t.yaml:5: key 'op': expected 1 to 4 ops"},
        {"  - {tap: x, node: y, layout: columns}\n", BN_ERR_FORMAT,
         "t.yaml:5: key 'layout': expected one of rows, head_rows, heads, got 'columns'"},
        {"  - {tap: x, node: y, scale: inv_sqrt_head_dim, layout: heads}\n", BN_ERR_FORMAT,
         "t.yaml:5: key 'head_dim': scale: inv_sqrt_head_dim needs head_dim"},
        {"  - {tap: x, node: y, mask: causal}\n", BN_ERR_FORMAT, "t.yaml:5: key 'mask': mask: causal needs layout: heads"},
        {"  - {tap: x, node: y, occurrence: -1}\n", BN_ERR_FORMAT, "t.yaml:5: key 'occurrence'"},
        {"  - {tap: x}\n", BN_ERR_FORMAT, "t.yaml:5: key 'node': missing"},
        {"  - {tap: x, node: y\n", BN_ERR_FORMAT, "t.yaml:6:1: malformed YAML"},
    };
    for (const Case &c : cases) {
        bn_error err{};
        bn_status st;
        MapPtr m = LoadText(kHeader + c.body, &err, &st);
        EXPECT_EQ(st, c.status) << c.body;
        EXPECT_FALSE(m);
        EXPECT_NE(std::string(err.msg).find(c.needle), std::string::npos) << "got: " << err.msg;
    }
    bn_error err{};
    bn_status st;
    MapPtr m = LoadText("tapmap: bitparity/v2\nname: t\nlayout: ggml-nodes\ntaps: []\n", &err, &st);
    EXPECT_EQ(st, BN_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(err.msg).find("t.yaml:1: key 'tapmap'"), std::string::npos) << err.msg;
    m = LoadText("name: t\nlayout: canonical\nidentity: true\n", &err, &st);
    EXPECT_EQ(st, BN_ERR_FORMAT);
    EXPECT_NE(std::string(err.msg).find("key 'tapmap': missing"), std::string::npos) << err.msg;
    m = LoadText("tapmap: bitparity/v1\nname: t\nlayout: ggml-nodes\ntaps: []\n", &err, &st);
    EXPECT_EQ(st, BN_ERR_FORMAT);
    EXPECT_NE(std::string(err.msg).find("t.yaml:4: key 'taps'"), std::string::npos) << err.msg;
}

TEST(TapMapParse, FileErrorsNameThePath) {
    bptest::TempDir dir;
    std::string path = dir.file("bad.yaml");
    std::string text = std::string(kHeader) + "  - {tap: a, node: b}\n  - tap: c\n    node: d\n    weird: 3\n";
    bptest::WriteFile(path, text.data(), text.size());
    bn_error err{};
    parity_tapmap *m = nullptr;
    EXPECT_EQ(parity_tapmap_load_file(path.c_str(), &m, &err), BN_ERR_FORMAT);
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(std::string(err.msg).rfind(path + ":8: key 'weird'", 0), 0u) << err.msg;
    EXPECT_EQ(parity_tapmap_load(dir.file("absent.yaml").c_str(), &m, &err), BN_ERR_IO);
}

namespace {

struct Opened {
    TracePtr trace;
    MapPtr map;
    ViewPtr view;
};

// Opens a shared trace and its automatically chosen map and view.
void Open(const std::string &path, Opened *o) {
    bn_error err{};
    parity_trace *t;
    ASSERT_OK(parity_trace_open(path.c_str(), &t, &err), err);
    o->trace.reset(t);
    parity_tapmap *m;
    ASSERT_OK(parity_tapmap_for_trace(t, &m, &err), err);
    o->map.reset(m);
    parity_tapview *v;
    ASSERT_OK(parity_tapview_open(t, m, &v, &err), err);
    o->view.reset(v);
}

void Load(const Opened &o, int64_t k, const char *tap, Tensor *out) {
    bn_error err{};
    int64_t i = parity_tapview_find(o.view.get(), k, tap);
    ASSERT_GE(i, 0) << tap;
    ASSERT_OK(parity_tapview_load(o.view.get(), k, i, out, &err), err);
}

}  // namespace

TEST(TapView, BitnetCppNamesOrderAndShapes) {
    REQUIRE_SHARED(path, "reference-traces/bitnetcpp/i2s/p1.npz");
    Opened o;
    ASSERT_NO_FATAL_FAILURE(Open(path, &o));
    EXPECT_STREQ(parity_tapmap_name(o.map.get()), "bitnet.cpp");
    const parity_tapview *v = o.view.get();
    for (int64_t k = 0; k < 3; k++) EXPECT_EQ(parity_tapview_count(v, k), 79) << k;  // 1 + 4 * 19 + 2
    // Evaluation order is the graph's: the RoPE of Q comes before the K matmul.
    const char *first[] = {"token_embd", "blk.0.attn_norm", "blk.0.attn_q", "blk.0.attn_q_rope", "blk.0.attn_k"};
    for (int i = 0; i < 5; i++) EXPECT_STREQ(parity_tapview_name(v, 0, i), first[i]);
    EXPECT_STREQ(parity_tapview_name(v, 0, 78), "logits");
    EXPECT_STREQ(parity_tapview_source(v, 0, 3), "e0/0005_Qcur-0.npy (Qcur-0 ROPE, index.tsv line 7)");
    EXPECT_EQ(parity_tapview_find(v, 0, "blk.4.attn_norm"), -1);

    Tensor q;  // (T, nh, D) = (12, 8, 32) -> (12, 256)
    ASSERT_NO_FATAL_FAILURE(Load(o, 0, "blk.0.attn_q_rope", &q));
    EXPECT_EQ(q.ndim, 2);
    EXPECT_EQ(q.shape[0], 12);
    EXPECT_EQ(q.shape[1], 256);
    EXPECT_EQ(q.row0, 0);
    Tensor q1;  // decode step: numpy (8, 32) from ne (32, 8, 1, 1) -> (1, 256)
    ASSERT_NO_FATAL_FAILURE(Load(o, 1, "blk.0.attn_q_rope", &q1));
    EXPECT_EQ(q1.shape[0], 1);
    EXPECT_EQ(q1.shape[1], 256);
    Tensor lg;
    ASSERT_NO_FATAL_FAILURE(Load(o, 2, "logits", &lg));
    EXPECT_EQ(lg.shape[0], 1);
    EXPECT_EQ(lg.shape[1], 512);
}

TEST(TapView, KqIsCroppedScaledAndMasked) {
    REQUIRE_SHARED(path, "reference-traces/bitnetcpp/i2s/p1.npz");
    Opened o;
    ASSERT_NO_FATAL_FAILURE(Open(path, &o));
    bn_error err{};
    for (int64_t k : {0, 1}) {
        const parity_eval *ev = parity_trace_eval(o.trace.get(), k);
        float *raw;
        npz_array_info info;
        const char *member = k == 0 ? "e0/0018_kq-0.npy" : "e1/0018_kq-0.npy";
        ASSERT_OK(parity_trace_load_f32(o.trace.get(), k, member, &raw, &info, &err), err);
        ASSERT_EQ(info.shape[2], 32);  // the cache padded to 32 cells
        Tensor s;
        ASSERT_NO_FATAL_FAILURE(Load(o, k, "blk.0.attn_scores", &s));
        const int64_t T = ev->n_tokens, cols = ev->p0 + T;
        ASSERT_EQ(s.ndim, 3);
        EXPECT_EQ(s.shape[0], 8);
        EXPECT_EQ(s.shape[1], T);
        EXPECT_EQ(s.shape[2], cols);
        const float scale = 1.0f / sqrtf(32.0f);
        for (int64_t h = 0; h < 8; h++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t j = 0; j < cols; j++) {
                    float got = s.data[(h * T + t) * cols + j];
                    if (j > ev->p0 + t) ASSERT_TRUE(std::isinf(got) && got < 0) << h << " " << t << " " << j;
                    else ASSERT_EQ(got, raw[(h * T + t) * 32 + j] * scale) << h << " " << t << " " << j;
                }
        free(raw);
    }
}

TEST(TapView, PrunedLastLayerIsARowSubset) {
    REQUIRE_SHARED(path, "reference-traces/bitnetcpp/i2s/p1_lastonly.npz");
    Opened o;
    ASSERT_NO_FATAL_FAILURE(Open(path, &o));
    Tensor before, after, logits;
    ASSERT_NO_FATAL_FAILURE(Load(o, 0, "blk.3.attn_out", &before));
    ASSERT_NO_FATAL_FAILURE(Load(o, 0, "blk.3.ffn_inp", &after));
    ASSERT_NO_FATAL_FAILURE(Load(o, 0, "logits", &logits));
    EXPECT_EQ(before.shape[0], 12);
    EXPECT_EQ(before.row0, 0);
    EXPECT_EQ(after.shape[0], 1);
    EXPECT_EQ(after.shape[1], 256);
    EXPECT_EQ(after.row0, 11);  // the last token of 12
    EXPECT_EQ(logits.shape[0], 1);
    EXPECT_EQ(logits.row0, 11);
}

TEST(TapView, LlamaCppSiluActivationIsSwiglu) {
    REQUIRE_SHARED(path, "reference-traces/llamacpp/silu-f32-p1.npz");
    Opened o;
    ASSERT_NO_FATAL_FAILURE(Open(path, &o));
    EXPECT_STREQ(parity_tapmap_name(o.map.get()), "llama.cpp");
    EXPECT_EQ(parity_tapview_count(o.view.get(), 0), 79);
    int64_t i = parity_tapview_find(o.view.get(), 0, "blk.0.ffn_act");
    ASSERT_GE(i, 0);
    EXPECT_NE(std::string(parity_tapview_source(o.view.get(), 0, i)).find("ffn_sub_out-0 SWIGLU"), std::string::npos);
    Tensor s;  // n_kv is the whole cache (256 cells) in llama.cpp
    ASSERT_NO_FATAL_FAILURE(Load(o, 0, "blk.1.attn_scores", &s));
    EXPECT_EQ(s.shape[0], 8);
    EXPECT_EQ(s.shape[1], 8);
    EXPECT_EQ(s.shape[2], 8);
}

TEST(TapView, MapChoiceAndLayoutCheck) {
    REQUIRE_SHARED(path, "reference-traces/llamacpp/f32-p1.npz");
    bn_error err{};
    parity_trace *t;
    ASSERT_OK(parity_trace_open(path.c_str(), &t, &err), err);
    TracePtr trace(t);
    parity_tapmap *m;
    ASSERT_OK(parity_tapmap_load_builtin("canonical", &m, &err), err);
    MapPtr canon(m);
    parity_tapview *v = nullptr;
    EXPECT_EQ(parity_tapview_open(t, m, &v, &err), BN_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(err.msg).find("cannot be read with tap map 'canonical'"), std::string::npos) << err.msg;
    // bitnet.cpp's map reads a llama.cpp trace only partly: names differ at attn_out, embd, probs.
    ASSERT_OK(parity_tapmap_load_builtin("bitnet.cpp", &m, &err), err);
    MapPtr bnc(m);
    ASSERT_OK(parity_tapview_open(t, m, &v, &err), err);
    ViewPtr view(v);
    EXPECT_EQ(parity_tapview_count(v, 0), 79 - 1 - 4 - 4 - 4);  // no token_embd, attn_out, attn_probs, ffn_act
}

// ---- docs/taps.md, the tap contract, against the code ----------------------

namespace {

struct ContractRow {
    std::string tap, selected, bitnetcpp, llamacpp;
};

std::string Trim(const std::string &s) {
    size_t a = s.find_first_not_of(' '), b = s.find_last_not_of(' ');
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// The rows of the "## Taps" table: | `tap` | shape | operation | selected | bitnet.cpp | llama.cpp | transformers |
std::vector<ContractRow> ContractRows() {
    std::ifstream f(bptest::SourcePath("docs/taps.md"));
    std::vector<ContractRow> rows;
    std::string line;
    bool in = false;
    while (std::getline(f, line)) {
        if (line == "## Taps") in = true;
        else if (line.rfind("## ", 0) == 0) in = false;
        if (!in || line.rfind("| `", 0) != 0) continue;
        std::vector<std::string> cells;
        for (size_t p = 1, q; (q = line.find(" | ", p)) != std::string::npos || p < line.size(); p = q + 3) {
            if (q == std::string::npos) q = line.rfind(" |");
            cells.push_back(Trim(line.substr(p, q - p)));
            if (q + 3 > line.size()) break;
        }
        EXPECT_EQ(cells.size(), 7u) << line;
        if (cells.size() != 7) continue;
        rows.push_back({cells[0].substr(1, cells[0].size() - 2), cells[3], cells[4], cells[5]});
    }
    return rows;
}

// "`Qcur-{N}` MUL_MAT" / "`ffn_sub_out-{N}` MUL, SWIGLU" for a rule, "—" when the map has none.
std::string NodeCell(const parity_map_rule *r) {
    if (!r) return "\xe2\x80\x94";
    std::string s = "`" + std::string(r->node ? r->node : "") + "`";
    for (int i = 0; i < r->n_ops; i++) s += std::string(i ? ", " : " ") + r->ops[i];
    return s;
}

const parity_map_rule *RuleFor(const parity_tapmap *m, const std::string &tap) {
    for (size_t i = 0; i < parity_tapmap_rule_count(m); i++)
        if (tap == parity_tapmap_rule(m, i)->tap) return parity_tapmap_rule(m, i);
    return nullptr;
}

}  // namespace

TEST(TapContract, DocListsEveryEngineTapWithItsSelection) {
    std::vector<ContractRow> rows = ContractRows();
    std::set<std::string> doc, engine;
    for (const ContractRow &r : rows) {
        EXPECT_TRUE(doc.insert(r.tap).second) << r.tap << " is listed twice in docs/taps.md";
        int layer;
        bn_tap_kind kind;
        char name[64];
        snprintf(name, sizeof name, "%s", r.tap.c_str());
        std::string concrete = r.tap;
        if (concrete.rfind("blk.{N}.", 0) == 0) concrete = "blk.0." + concrete.substr(8);
        if (!bn_tap_parse(concrete.c_str(), &layer, &kind)) {
            ADD_FAILURE() << "docs/taps.md lists '" << r.tap << "', which the engine does not know";
            continue;
        }
        EXPECT_EQ(r.selected, bn_tap_kind_opt_in(kind) ? "opt-in" : "default") << r.tap;
    }
    for (int k = 0; k < BN_TAP_KIND_COUNT; k++) {
        const std::string n = bn_tap_kind_name((bn_tap_kind)k);
        engine.insert(k < BN_TAP_BLOCK_KINDS ? "blk.{N}." + n : n);
    }
    EXPECT_EQ(doc, engine) << "docs/taps.md's table and the engine's tap table (engine/src/taps.c) differ";
    ASSERT_EQ(rows.size(), (size_t)BN_TAP_KIND_COUNT);
}

TEST(TapContract, ForeignColumnsAreTheBuiltInMaps) {
    std::vector<ContractRow> rows = ContractRows();
    ASSERT_FALSE(rows.empty());
    for (const char *name : {"bitnet.cpp", "llama.cpp"}) {
        bn_error err{};
        parity_tapmap *raw = nullptr;
        ASSERT_OK(parity_tapmap_load_builtin(name, &raw, &err), err);
        Handle<parity_tapmap, parity_tapmap_free> m(raw);
        size_t matched = 0;
        for (const ContractRow &r : rows) {
            const parity_map_rule *rule = RuleFor(m.get(), r.tap);
            matched += rule != nullptr;
            EXPECT_EQ(std::string(name) == "bitnet.cpp" ? r.bitnetcpp : r.llamacpp, NodeCell(rule))
                << "docs/taps.md, " << name << " column of " << r.tap;
        }
        EXPECT_EQ(matched, parity_tapmap_rule_count(m.get())) << name << " maps a tap docs/taps.md does not list";
    }
}
