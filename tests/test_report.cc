// test_report.cc — receipts read back and rendered: real receipts made in the
// test (the library for a seeded RoPE fault, the binary for a llama.cpp
// SiLU trace with replay and a bitnet.cpp pass), a hostile hand-written
// receipt that must come out escaped, and malformed receipts that must be
// refused with file:line and key; receipts against a baseline (every kind of
// change, entries paired by name) and what to check next.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/model.h"
#include "parity/compare.h"
#include "parity/hints.h"
#include "parity/next_checks.h"
#include "parity/replay.h"
#include "parity/receipt.h"
#include "parity/record.h"
#include "reports/report.h"
#include "parity/trace.h"
}

namespace {

using bptest::Handle;
using bptest::RunCli;
using bptest::TempDir;

size_t Count(const std::string &s, const std::string &what) {
    size_t n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) n++;
    return n;
}

std::string Lower(std::string s) {
    for (char &c : s) c = (char)tolower((unsigned char)c);
    return s;
}

// The text of the element <svg id="ID" ...>...</svg>.
std::string Svg(const std::string &html, const std::string &id) {
    size_t a = html.find("<svg id=\"" + id + "\"");
    if (a == std::string::npos) return "";
    size_t b = html.find("</svg>", a);
    return html.substr(a, b == std::string::npos ? std::string::npos : b + 6 - a);
}

// The first SVG geometry attribute whose value says nan or inf, or "".
std::string NonFiniteGeometry(const std::string &html) {
    for (const char *attr : {"x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height", "points", "d"}) {
        std::string key = std::string(" ") + attr + "=\"";
        for (size_t p = html.find(key); p != std::string::npos; p = html.find(key, p + 1)) {
            size_t a = p + key.size(), b = html.find('"', a);
            std::string v = html.substr(a, b - a);
            if (v.find("nan") != std::string::npos || v.find("inf") != std::string::npos) return key + v;
        }
    }
    return "";
}

// What the HTML renderer must make of a string from a receipt.
std::string HtmlEscape(const std::string &s) {
    std::string o;
    for (char c : s) {
        switch (c) {
        case '&': o += "&amp;"; break;
        case '<': o += "&lt;"; break;
        case '>': o += "&gt;"; break;
        case '"': o += "&quot;"; break;
        case '\'': o += "&#39;"; break;
        default: o += c;
        }
    }
    return o;
}

std::string Render(const std::vector<const report_receipt *> &rs, report_format fmt) {
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bn_error err{};
    EXPECT_OK(report_render(rs.data(), rs.size(), fmt, f, &err), err);
    fclose(f);
    std::string s(buf, len);
    free(buf);
    return s;
}

ReportPtr Parse(const std::string &text, bn_error *err, bn_status *st, const char *name = "hand.yaml") {
    report_receipt *r = nullptr;
    *st = report_parse(name, text.data(), text.size(), &r, err);
    return ReportPtr(r);
}

// Table rows of a Markdown table that start with "| " + first cell.
std::vector<std::string> MdRows(const std::string &md, const std::string &header) {
    std::vector<std::string> rows;
    size_t p = md.find(header);
    if (p == std::string::npos) return rows;
    if (md[p] != '|') p = md.find("\n|", p) + 1; // a title above the table
    p = md.find('\n', md.find('\n', p) + 1) + 1; // skip the header and |---| lines
    while (p < md.size() && md[p] == '|') {
        size_t e = md.find('\n', p);
        rows.push_back(md.substr(p, e - p));
        p = e + 1;
    }
    return rows;
}

size_t UnescapedPipes(const std::string &row) {
    size_t n = 0;
    for (size_t i = 0; i < row.size(); i++) n += row[i] == '|' && (i == 0 || row[i - 1] != '\\');
    return n;
}

// A receipt written by hand by someone hostile: markup in every string,
// non-finite numbers, a null growth entry. 5 taps, 3 of them failing.
const char kHostile[] = R"YAML(receipt: bitparity/v1
created: "2026-01-01T00:00:00Z"
model: {path: "/m/<script>alert('model')</script>.gguf", sha256: null, arch: null}
subject:
  producer: {name: "evil\"><script>alert(1)</script>", version: "1"}
  trace: "</span><script>x()</script>"
reference:
  producer: {name: "ref & co <b>bold</b>"}
policy: {name: "p<script>", choice: "' onmouseover='alert(1)"}
summary:
  verdict: fail
  diagnosis: "decode diverged: <iframe src=//evil>"
  counts: {taps: 5, compared: 3, pass: 1, fail: 2, bit_identical: 1, shape_mismatch: 1, missing_reference: 0, missing_subject: 1, skipped: 0}
  evaluations: {subject: 2, reference: 2, compared: 2}
  first_divergence: {evaluation: e0, tap: "blk.0.<script>evil</script>", layer: 0, metric: nmse, value: .inf, limit: 1.0e-06}
  failing_evaluations: [e0, e1]
  hints:
  - name: "<script>alert('hint')</script>"
    message: "Hint text with <script>alert(2)</script> & \"quotes\""
    evidence: "</p><SCRIPT src=//evil></SCRIPT>"
error_growth:
  metric: nmse
  layers: 2
  evaluations:
  - {evaluation: e0, nmse_max: [.inf, .nan]}
  - {evaluation: "e1<script>`", nmse_max: [null, 0.25]}
taps:
- {evaluation: e0, name: token_embd, layer: null, status: pass, metrics: {nmse: 0.0, bit_identical: true, cosine: 1.0}, limits: {nmse_max: 1.0e-06}}
- {evaluation: e0, name: "blk.0.<script>evil</script>", layer: 0, status: fail, metrics: {nmse: .inf, cosine: .nan, max_abs: .inf}, limits: {nmse_max: 1.0e-06}, failed: {metric: nmse, value: .inf, limit: 1.0e-06}}
- {evaluation: e0, name: "blk.1.<img src=x onerror=alert(3)>|x", layer: 1, status: shape-mismatch, failed: {metric: shape, value: 12.0, limit: 8.0}}
- {evaluation: e1, name: blk.1.out, layer: 1, status: fail, metrics: {nmse: .nan, cosine: .nan}, limits: {nmse_max: 1.0e-06}, failed: {metric: nan_mismatch, value: 3.0, limit: 0.0}}
- {evaluation: e1, name: blk.0.attn_probs, layer: 0, status: missing-subject}
logits:
- {evaluation: e0, status: fail, positions: 2, top1_agree: 0.5, top5_overlap: 0.75, kld_mean: .inf, kld_p99: .inf, kld_max: .inf}
)YAML";

TEST(Report, HostileReceiptIsEscapedEverywhere) {
    bn_error err{};
    bn_status st;
    ReportPtr r = Parse(kHostile, &err, &st);
    ASSERT_OK(st, err);
    EXPECT_FALSE(r->pass);
    EXPECT_EQ(r->n_taps, 5u);
    EXPECT_EQ(r->counts.shape_mismatch, 1);
    EXPECT_TRUE(std::isinf(r->div_value));
    EXPECT_TRUE(std::isinf(r->growth[0].nmse_max[0]));
    EXPECT_TRUE(std::isnan(r->growth[0].nmse_max[1]));
    EXPECT_TRUE(std::isnan(r->growth[1].nmse_max[0])); // null
    EXPECT_DOUBLE_EQ(r->growth[1].nmse_max[1], 0.25);

    std::string html = Render({r.get()}, REPORT_HTML);
    std::string low = Lower(html);
    EXPECT_EQ(low.find("<script"), std::string::npos);
    EXPECT_EQ(low.find("<img"), std::string::npos);
    EXPECT_EQ(low.find("<iframe"), std::string::npos);
    EXPECT_EQ(html.find("<b>bold"), std::string::npos);
    EXPECT_EQ(html.find("' onmouseover='"), std::string::npos);
    EXPECT_NE(html.find(HtmlEscape("<script>alert('hint')</script>")), std::string::npos);
    EXPECT_NE(html.find(HtmlEscape("Hint text with <script>alert(2)</script> & \"quotes\"")), std::string::npos);
    EXPECT_NE(html.find(HtmlEscape("</p><SCRIPT src=//evil></SCRIPT>")), std::string::npos);
    EXPECT_NE(html.find(HtmlEscape("evil\"><script>alert(1)</script>")), std::string::npos);
    EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
    // 2 fail + 1 shape mismatch; the missing tap is not a failure.
    EXPECT_EQ(Count(html, "<tr class=\"failrow\">"), 3u);
    // Non-finite numbers are written as words, never as coordinates.
    EXPECT_EQ(NonFiniteGeometry(html), "");
    EXPECT_NE(html.find("<td class=\"num\">inf</td>"), std::string::npos);
    EXPECT_EQ(Count(Svg(html, "growth-1"), "<polyline"), 2u);

    std::string md = Render({r.get()}, REPORT_MARKDOWN);
    std::string mlow = Lower(md);
    EXPECT_EQ(mlow.find("<script"), std::string::npos);
    EXPECT_EQ(mlow.find("<img"), std::string::npos);
    EXPECT_NE(md.find("&lt;script&gt;alert('hint')&lt;/script&gt;"), std::string::npos);
    std::vector<std::string> rows = MdRows(md, "**Failing taps**");
    ASSERT_EQ(rows.size(), 3u);
    for (const std::string &row : rows) EXPECT_EQ(UnescapedPipes(row), 7u) << row; // 6 columns, no break-out
    EXPECT_EQ(rows[0], "| e0 | blk.0.&lt;script&gt;evil&lt;/script&gt; | fail | nmse | inf | 1e-06 |");
    EXPECT_EQ(rows[1], "| e0 | blk.1.&lt;img src=x onerror=alert(3)&gt;\\|x | shape-mismatch | shape | 12 | 8 |");
    EXPECT_EQ(rows[2], "| e1 | `blk.1.out` | fail | nan_mismatch | 3 | 0 |");
    // The sparkline: inf at the top, nan/null as "·", 0.25 alone on its scale.
    EXPECT_NE(md.find("e0     \xe2\x96\x88\xc2\xb7"), std::string::npos) << md;
    EXPECT_NE(md.find("?      \xc2\xb7\xe2\x96\x85"), std::string::npos) << md; // hostile id replaced in the fence
}

struct BadCase {
    const char *what, *text, *message;
};

TEST(Report, MalformedReceiptsNameFileLineAndKey) {
    std::string good = kHostile;
    auto with = [&](const std::string &from, const std::string &to) {
        std::string s = good;
        size_t p = s.find(from);
        EXPECT_NE(p, std::string::npos) << from;
        return s.replace(p, from.size(), to);
    };
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "bad.yaml:1: receipt: empty document: not a bitparity receipt"},
        {"- a\n- b\n", "bad.yaml:1: receipt: the document is not a mapping"},
        {"receipt: bitparity/v1\nsummary: [1, 2\n", "bad.yaml:3:1: malformed YAML: "},
        {"tool: x\n", "bad.yaml:1: receipt: missing"},
        {with("receipt: bitparity/v1", "receipt: bitparity/v2"),
         "bad.yaml:1: receipt: 'bitparity/v2' is not a supported version (bitparity/v1)"},
        {with("verdict: fail", "verdict: maybe"), "bad.yaml:11: summary.verdict: expected pass or fail, got 'maybe'"},
        {with("  verdict: fail\n", ""), "bad.yaml:11: summary.verdict: missing"},
        {with("pass: 1,", "pass: one,"), "bad.yaml:13: summary.counts.pass: expected an integer, got 'one'"},
        {with("nmse: .inf, cosine: .nan, max_abs", "nmse: lots, cosine: .nan, max_abs"),
         "bad.yaml:29: taps[1].metrics.nmse: expected a number, got 'lots'"},
        {with("status: shape-mismatch", "status: exploded"), "bad.yaml:30: taps[2].status: unknown status 'exploded'"},
        {with("nmse_max: [null, 0.25]", "nmse_max: [null]"), "bad.yaml:26: error_growth.evaluations[1].nmse_max: 1 values for 2 layers"},
        {with("counts: {taps: 5,", "counts: {taps: 6,"), "bad.yaml:28: taps: 5 entries but summary.counts.taps says 6"},
        {with("failed: {metric: nmse, value: .inf, limit: 1.0e-06}", "x: 1"), "bad.yaml:29: taps[1].failed: missing"},
        {with("hints:\n  - name: \"<script>alert('hint')</script>\"", "hints:\n  - name: &h x"),
         "bad.yaml:"},  // an anchor alone is fine; the alias below is not
        {with("metric: nmse\n  layers: 2", "metric: &m nmse\n  layers: 2\n  x: *m"),
         "anchors and aliases are not used in receipts"},
        {with("logits:\n- {evaluation: e0,", "logits:\n- {"), "bad.yaml:34: logits[0].evaluation: missing"},
    };
    for (const auto &c : cases) {
        bn_error err{};
        bn_status st;
        ReportPtr r = Parse(c.first, &err, &st, "bad.yaml");
        if (c.second == "bad.yaml:") { // the control case parses
            EXPECT_OK(st, err);
            continue;
        }
        EXPECT_EQ(st, BN_ERR_FORMAT) << c.second;
        EXPECT_EQ(r.get(), nullptr);
        EXPECT_NE(std::string(err.msg).find(c.second), std::string::npos) << "got: " << err.msg << "\nin:\n" << c.first;
    }
}

TEST(Report, WorstTapsAndFocusAndFormats) {
    bn_error err{};
    bn_status st;
    ReportPtr r = Parse(kHostile, &err, &st);
    ASSERT_OK(st, err);
    size_t idx[4];
    // NaN first (the worst news), then inf, then 0; the shape mismatch has no NMSE.
    ASSERT_EQ(report_worst_taps(r.get(), idx, 4), 3u);
    EXPECT_EQ(idx[0], 3u);
    EXPECT_EQ(idx[1], 1u);
    EXPECT_EQ(idx[2], 0u);
    ASSERT_EQ(report_worst_taps(r.get(), idx, 1), 1u);
    EXPECT_EQ(idx[0], 3u);
    EXPECT_STREQ(report_focus_evaluation(r.get()), "e0");
    EXPECT_DOUBLE_EQ(report_uniform_nmse_limit(r.get()), 1e-6);

    report_format fmt = REPORT_HTML;
    EXPECT_EQ(report_format_for_path("out/report.html"), REPORT_HTML);
    EXPECT_EQ(report_format_for_path("r.htm"), REPORT_HTML);
    EXPECT_EQ(report_format_for_path("r.md"), REPORT_MARKDOWN);
    EXPECT_EQ(report_format_for_path(nullptr), REPORT_MARKDOWN);
    EXPECT_TRUE(report_format_parse("md", &fmt));
    EXPECT_EQ(fmt, REPORT_MARKDOWN);
    EXPECT_FALSE(report_format_parse("pdf", &fmt));
    bn_error e2{};
    EXPECT_EQ(report_render(nullptr, 0, REPORT_HTML, stdout, &e2), BN_ERR_INVALID);
}

// Engine traces of the tiny i2_s model with and without the seeded RoPE
// fault, compared under the exact policy with hints, receipt saved as YAML
// and JSON through the library, then read back and rendered.
// On the shared tiny I2_S model and on its fixture twin (4 tokens each; both
// have 8 heads x 32 = 256 q values per token, so the swapped RoPE pairing
// changes 3 x 256 = 768 of them: position 0 is not rotated).
class ReportReceipt : public ::testing::TestWithParam<bptest::ModelCase> {};

TEST_P(ReportReceipt, LibraryReceiptOfASeededRopeFault) {
    REQUIRE_MODEL(model_path, GetParam());
    TempDir tmp;
    bn_error err{};
    bn_model *m = nullptr;
    ASSERT_OK(bn_model_load(model_path.c_str(), &m, &err), err);
    ModelPtr model(m);
    const std::vector<int32_t> tokens(GetParam().prompt.begin(), GetParam().prompt.begin() + 4);
    for (int faulty = 0; faulty < 2; faulty++) {
        std::string out = tmp.file(faulty ? "f.npz" : "b.npz");
        parity_record_opts o{};
        o.model_path = model_path.c_str();
        o.tokens = tokens.data();
        o.n_tokens = (int64_t)tokens.size();
        o.n_decode = 2;
        o.numerics = BN_NUMERICS_GGML_COMPAT;
        o.n_threads = 2;
        o.fault = faulty ? BN_FAULT_ROPE_NORMAL : BN_FAULT_NONE;
        o.out_path = out.c_str();
        ASSERT_OK(parity_record(model.get(), &o, &err), err);
    }
    parity_trace *ts = nullptr, *tr = nullptr;
    ASSERT_OK(parity_trace_open(tmp.file("f.npz").c_str(), &ts, &err), err);
    TracePtr s(ts);
    ASSERT_OK(parity_trace_open(tmp.file("b.npz").c_str(), &tr, &err), err);
    TracePtr rf(tr);
    parity_tapmap *ms = nullptr, *mr = nullptr;
    ASSERT_OK(parity_tapmap_for_trace(ts, &ms, &err), err);
    MapPtr map_s(ms);
    ASSERT_OK(parity_tapmap_for_trace(tr, &mr, &err), err);
    MapPtr map_r(mr);
    parity_policy *pp = nullptr;
    ASSERT_OK(parity_policy_load_builtin("exact", &pp, &err), err);
    PolicyPtr pol(pp);
    parity_compare_result *res = nullptr;
    parity_compare_opts co{};
    ASSERT_OK(parity_compare(ts, ms, tr, mr, pp, &co, &res, &err), err);
    ResultPtr result(res);
    parity_tapview *vs = nullptr, *vr = nullptr;
    ASSERT_OK(parity_tapview_open(ts, ms, &vs, &err), err);
    ViewPtr view_s(vs);
    ASSERT_OK(parity_tapview_open(tr, mr, &vr, &err), err);
    ViewPtr view_r(vr);
    ASSERT_OK(parity_hints_find(res, vs, vr, nullptr, nullptr, &err), err);
    ASSERT_FALSE(res->pass);
    ASSERT_TRUE(res->first.found);
    ASSERT_GE(res->n_hints, 1u);
    ASSERT_STREQ(res->first.tap, "blk.0.attn_q_rope");

    parity_receipt_input in{};
    in.subject = ts, in.reference = tr, in.subject_map = ms, in.reference_map = mr;
    in.policy = pp, in.policy_choice = "--policy exact", in.result = res, in.threads = 1;
    in.simd = bn_simd_best(), in.hash_traces = 1;
    parity_receipt *rc = nullptr;
    ASSERT_OK(parity_receipt_build(&in, &rc, &err), err);
    ReceiptPtr receipt(rc);
    ASSERT_OK(parity_receipt_save(rc, PARITY_RECEIPT_YAML, tmp.file("r.yaml").c_str(), &err), err);
    ASSERT_OK(parity_receipt_save(rc, PARITY_RECEIPT_JSON, tmp.file("r.json").c_str(), &err), err);

    report_receipt *ry = nullptr, *rj = nullptr;
    ASSERT_OK(report_load(tmp.file("r.yaml").c_str(), &ry, &err), err);
    ReportPtr yaml(ry);
    ASSERT_OK(report_load(tmp.file("r.json").c_str(), &rj, &err), err);
    ReportPtr json(rj);
    const int64_t failing = res->counts.fail + res->counts.shape_mismatch;
    for (const report_receipt *r : {ry, rj}) {
        EXPECT_FALSE(r->pass);
        EXPECT_EQ(r->n_taps, res->n_taps);
        EXPECT_EQ(r->counts.fail, res->counts.fail);
        EXPECT_EQ(r->counts.bit_identical, res->counts.bit_identical);
        EXPECT_STREQ(r->div_tap, "blk.0.attn_q_rope");
        EXPECT_STREQ(r->div_metric, res->first.metric);
        EXPECT_DOUBLE_EQ(r->div_value, res->first.value);
        EXPECT_EQ(r->n_growth, res->n_evals);
        EXPECT_EQ(r->layers, res->n_layer);
        for (size_t e = 0; e < res->n_evals; e++)
            for (int l = 0; l < res->n_layer; l++)
                EXPECT_DOUBLE_EQ(r->growth[e].nmse_max[l], res->evals[e].growth[l]);
        ASSERT_EQ(r->n_hints, res->n_hints);
        EXPECT_STREQ(r->hints[0].message, res->hints[0].message);
        EXPECT_EQ(r->n_logits, res->n_evals);
        EXPECT_FALSE(r->replay.present);
    }

    std::string html = Render({ry}, REPORT_HTML);
    EXPECT_NE(html.find("<span class=\"badge fail\">FAIL</span>"), std::string::npos);
    EXPECT_NE(html.find("<b>First divergence:</b> e0 <code>blk.0.attn_q_rope</code> (layer 0): bit_diff_count = <b>768</b>, limit 0"),
              std::string::npos);
    EXPECT_NE(html.find(HtmlEscape(res->hints[0].name)), std::string::npos);
    EXPECT_NE(html.find(HtmlEscape(res->hints[0].message)), std::string::npos);
    EXPECT_NE(html.find(HtmlEscape(res->hints[0].evidence)), std::string::npos);
    std::string growth = Svg(html, "growth-1");
    ASSERT_FALSE(growth.empty());
    EXPECT_EQ(Count(growth, "<polyline"), res->n_evals); // e0, e1, e2
    EXPECT_EQ(Count(growth, "<title>"), res->n_evals * (size_t)res->n_layer); // a marker per point
    EXPECT_EQ(Count(html, "<tr class=\"failrow\">"), (size_t)failing);
    EXPECT_EQ(Count(html, "<tr class=\"worstrow\">"), 10u);
    EXPECT_EQ(Count(Svg(html, "taps-1"), "<rect"), res->n_taps / res->n_evals); // e0's taps, one bar each
    EXPECT_EQ(Count(Svg(html, "kld-1"), "<rect"), 3 * res->n_evals);
    EXPECT_EQ(Lower(html).find("<script"), std::string::npos);
    EXPECT_EQ(Render({ry}, REPORT_HTML), html); // deterministic
    // The JSON receipt renders to the same page, but for its file name.
    std::string from_json = Render({rj}, REPORT_HTML);
    for (size_t p = from_json.find("r.json"); p != std::string::npos; p = from_json.find("r.json", p))
        from_json.replace(p, 6, "r.yaml");
    EXPECT_EQ(from_json, html);

    std::string md = Render({ry}, REPORT_MARKDOWN);
    EXPECT_NE(md.find(std::string("## \xe2\x9d\x8c FAIL \xe2\x80\x94 ") + GetParam().file), std::string::npos);
    EXPECT_NE(md.find("**First divergence:** e0 `blk.0.attn_q_rope` (layer 0): bit_diff_count = **768**, limit 0"),
              std::string::npos);
    std::vector<std::string> rows = MdRows(md, "**Failing taps**");
    ASSERT_EQ(rows.size(), 15u); // the first 15 (of 198 on the shared model)
    EXPECT_EQ(rows[0], "| e0 | `blk.0.attn_q_rope` | fail | bit_diff_count | 768 | 0 |");
    EXPECT_NE(md.find("\xe2\x80\xa6 and " + std::to_string(failing - 15) + " more"), std::string::npos);
    EXPECT_EQ(MdRows(md, "**Logits**").size(), res->n_evals);
    EXPECT_EQ(MdRows(md, "**Worst taps by NMSE**").size(), 5u);
}

INSTANTIATE_TEST_SUITE_P(Models, ReportReceipt, ::testing::Values(bptest::SharedTinyI2s(), bptest::FixtureB158I2s()),
                         bptest::ModelCaseName());

// The binary end to end: a pass against bitnet.cpp and the llama.cpp SiLU
// trace with block replay, one report of both with a summary table.
TEST(Report, CheckReceiptsThroughTheBinary) {
    REQUIRE_SHARED(i2s, "models/tiny-bitnet-i2s.gguf");
    REQUIRE_SHARED(f32, "models/tiny-bitnet-llamacpp-f32.gguf");
    REQUIRE_SHARED(bitnetcpp, "reference-traces/bitnetcpp/i2s/p1.npz");
    REQUIRE_SHARED(silu, "reference-traces/llamacpp/silu-f32-p1.npz");
    TempDir tmp;
    auto pass = RunCli("check -m " + i2s + " --reference " + bitnetcpp + " -o " + tmp.file("pass.yaml"));
    ASSERT_EQ(pass.exit_code, 0) << pass.err;
    auto fail = RunCli("check -m " + f32 + " --reference " + silu + " --numerics f32 --replay -o " + tmp.file("fail.yaml"));
    ASSERT_EQ(fail.exit_code, 1) << fail.err;

    auto one = RunCli("report " + tmp.file("fail.yaml") + " -o " + tmp.file("fail.html"));
    ASSERT_EQ(one.exit_code, 0) << one.err;
    std::vector<uint8_t> bytes = bptest::ReadFile(tmp.file("fail.html"));
    std::string html(bytes.begin(), bytes.end());
    EXPECT_NE(html.find("<span class=\"badge fail\">FAIL</span>"), std::string::npos);
    EXPECT_NE(html.find("<code>blk.0.ffn_act</code> (layer 0): nmse = <b>0.467</b>, limit 1e-05"), std::string::npos);
    EXPECT_NE(html.find("<span class=\"name\">activation-swap</span>"), std::string::npos);
    EXPECT_NE(html.find("FFN activation: the subject computes relu(gate)²·up where the reference computes SiLU(gate)·up"),
              std::string::npos);
    EXPECT_NE(html.find("<h3>Replay (block mode)</h3>"), std::string::npos);
    EXPECT_EQ(Count(html, "<td><b>local</b></td>"), 4u); // every block's error is its own
    EXPECT_EQ(Count(html, "<tr class=\"failrow\">"), 57u);
    EXPECT_EQ(Count(Svg(html, "growth-1"), "<polyline"), 1u);
    EXPECT_NE(html.find("<td class=\"num\">2.53</td>"), std::string::npos); // KLD mean of e0's logits
    EXPECT_EQ(Lower(html).find("<script"), std::string::npos);

    auto md = RunCli("report " + tmp.file("pass.yaml") + " " + tmp.file("fail.yaml"));
    ASSERT_EQ(md.exit_code, 0) << md.err;
    EXPECT_NE(md.out.find("# bitparity report: FAIL (1 of 2 receipts pass)"), std::string::npos);
    std::vector<std::string> sum = MdRows(md.out, "| # | verdict |");
    ASSERT_EQ(sum.size(), 2u);
    EXPECT_EQ(sum[0], "| 1 | \xe2\x9c\x85 PASS | tiny-bitnet-i2s.gguf | bitparity \xe2\x86\x92 bitnet.cpp | ggml-compat | 213 | 0 | \xe2\x80\x94 |  |");
    EXPECT_EQ(sum[1], "| 2 | \xe2\x9d\x8c FAIL | tiny-bitnet-llamacpp-f32.gguf | bitparity \xe2\x86\x92 llama.cpp | cross-backend | 71 | 57 | e0 `blk.0.ffn_act` | model-mismatch, activation-swap, replay-local-block |");
    EXPECT_NE(md.out.find("| e0 | `blk.0.ffn_act` | fail | nmse | 0.467 | 1e-05 |"), std::string::npos);
    EXPECT_NE(md.out.find("| e0 | fail | 8 | 25.0% | 45.0% | 2.53 | 5.34 | 5.5 |"), std::string::npos);
    EXPECT_NE(md.out.find("**Replay (block mode)**: the error is born at e0 `blk.0.ffn_act`"), std::string::npos);

    auto both = RunCli("report " + tmp.file("pass.yaml") + " " + tmp.file("fail.yaml") + " -o " + tmp.file("both.html"));
    ASSERT_EQ(both.exit_code, 0) << both.err;
    bytes = bptest::ReadFile(tmp.file("both.html"));
    html.assign(bytes.begin(), bytes.end());
    EXPECT_EQ(Count(html, "<tr class=\"sumrow\">"), 2u);
    EXPECT_EQ(Count(html, "<section class=\"receipt\" id=\"r"), 2u);
    EXPECT_EQ(Count(html, "<tr class=\"failrow\">"), 57u); // the pass adds none
    EXPECT_NE(html.find("Every compared tap is within the policy's limits."), std::string::npos);
    EXPECT_EQ(Count(Svg(html, "growth-1"), "<polyline"), 3u); // the pass receipt: e0, e1, e2
}

// ---- regression against a baseline -------------------------------------------------

// A receipt by hand: verdict, and taps of e0 as "name nmse status" (status
// pass or fail; nmse_max 1e-06 for all).
std::string HandReceipt(const char *verdict, const std::vector<std::tuple<std::string, double, std::string>> &taps) {
    std::string t;
    size_t fail = 0;
    char num[64];
    for (const auto &[name, nmse, status] : taps) {
        snprintf(num, sizeof num, "%.17g", nmse);
        t += "- {evaluation: e0, name: " + name + ", layer: 0, status: " + status + ", metrics: {nmse: " + num +
             ", cosine: 0.99, max_abs: " + num + "}, limits: {nmse_max: 1.0e-06}";
        if (status == "fail") t += std::string(", failed: {metric: nmse, value: ") + num + ", limit: 1.0e-06}", fail++;
        t += "}\n";
    }
    char counts[256];
    snprintf(counts, sizeof counts,
             "{taps: %zu, compared: %zu, pass: %zu, fail: %zu, bit_identical: 0, shape_mismatch: 0, "
             "missing_reference: 0, missing_subject: 0, skipped: 0}",
             taps.size(), taps.size(), taps.size() - fail, fail);
    return std::string("receipt: bitparity/v1\nmodel: {path: /m/tiny.gguf}\nsummary:\n  verdict: ") + verdict +
           "\n  counts: " + counts + "\n  first_divergence: null\n  hints: []\nerror_growth: {layers: 1, evaluations: "
           "[{evaluation: e0, nmse_max: [0.001]}]}\ntaps:\n" + t + "logits: []\n";
}

std::string RenderBaseline(const std::vector<report_pair> &pairs, report_format fmt, report_diff_counts *c,
                           bn_status *st = nullptr) {
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bn_error err{};
    bn_status s = report_render_baseline(pairs.data(), pairs.size(), REPORT_DEFAULT_FACTOR, fmt, f, c, &err);
    if (st) *st = s;
    else EXPECT_OK(s, err);
    fclose(f);
    std::string out(buf, len);
    free(buf);
    return out;
}

// Every kind of change, with numbers worked out by hand: attn_q 1e-8 -> 5e-7
// (x50, same verdict: degraded), ffn_act 2e-7 -> 4e-6 (x20 across the 1e-6
// limit: a regression), out 1e-3 -> 5e-7 (fixed, x0.0005), attn_v only before
// (gone), ffn_up only after (new), token_embd 0 -> 0 (unchanged, not listed).
TEST(ReportBaseline, EveryKindOfChangeWithItsNumbers) {
    const std::string before = HandReceipt("fail", {{"token_embd", 0, "pass"}, {"blk.0.attn_q", 1e-8, "pass"},
                                                    {"blk.0.attn_v", 3e-8, "pass"}, {"blk.0.ffn_act", 2e-7, "pass"},
                                                    {"blk.0.out", 1e-3, "fail"}});
    const std::string after = HandReceipt("fail", {{"token_embd", 0, "pass"}, {"blk.0.attn_q", 5e-7, "pass"},
                                                   {"blk.0.ffn_up", 1e-9, "pass"}, {"blk.0.ffn_act", 4e-6, "fail"},
                                                   {"blk.0.out", 5e-7, "pass"}});
    bn_error err{};
    bn_status st;
    ReportPtr b = Parse(before, &err, &st, "old.yaml");
    ASSERT_OK(st, err);
    ReportPtr a = Parse(after, &err, &st, "new.yaml");
    ASSERT_OK(st, err);
    report_diff_counts c{};
    const std::string md = RenderBaseline({{nullptr, b.get(), a.get(), nullptr, nullptr, nullptr, nullptr}}, REPORT_MARKDOWN, &c);
    EXPECT_EQ(c.entries, 1u);
    EXPECT_EQ(c.regressed, 1u); // fail -> fail, but a tap crossed its verdict
    EXPECT_EQ(c.taps_regressed, 1u);
    EXPECT_EQ(c.taps_degraded, 1u);
    EXPECT_EQ(c.taps_fixed, 1u);
    EXPECT_EQ(c.taps_improved, 0u);
    EXPECT_EQ(c.taps_added, 1u);
    EXPECT_EQ(c.taps_removed, 1u);
    EXPECT_EQ(md.find("## \xe2\x9d\x8c REGRESSION against the baseline \xe2\x80\x94 tiny.gguf\n"), 0u) << md;
    EXPECT_NE(md.find("**Regressed**: 1 tap went from pass to fail, 1 degraded (NMSE \xc3\x97" "10 or more), 1 fixed, "
                      "0 improved, 1 new, 1 gone. Most severe: e0 `blk.0.ffn_act`: **pass \xe2\x86\x92 fail**, NMSE "
                      "2e-07 \xe2\x86\x92 4e-06 (\xc3\x97" "20)."),
              std::string::npos)
        << md;
    std::vector<std::string> rows = MdRows(md, "**Changed taps** (5, most severe first)");
    ASSERT_EQ(rows.size(), 5u) << md;
    const char *arrow = " \xe2\x86\x92 ", *dash = "\xe2\x80\x94";
    EXPECT_EQ(rows[0], std::string("| e0 | `blk.0.ffn_act` | **regression** | **pass") + arrow +
                           "fail** | 2e-07 | 4e-06 | **\xc3\x97" "20** | 4e-06 | 0.99 |");
    EXPECT_EQ(rows[1], std::string("| e0 | `blk.0.attn_q` | degraded | **pass") + arrow +
                           "pass** | 1e-08 | 5e-07 | **\xc3\x97" "50** | 5e-07 | 0.99 |");
    EXPECT_EQ(rows[2], std::string("| e0 | `blk.0.ffn_up` | new | ") + dash + arrow + "pass | " + dash +
                           " | 1e-09 | " + dash + " | 1e-09 | 0.99 |");
    EXPECT_EQ(rows[3], std::string("| e0 | `blk.0.attn_v` | gone | pass") + arrow + dash + " | 3e-08 | " + dash +
                           " | " + dash + " | " + dash + " | " + dash + " |");
    EXPECT_EQ(rows[4], std::string("| e0 | `blk.0.out` | fixed | fail") + arrow + "pass | 0.001 | 5e-07 | \xc3\x97" +
                           "0.0005 | 5e-07 | 0.99 |");
    EXPECT_NE(md.find("<details><summary>Full report: FAIL tiny.gguf</summary>"), std::string::npos);

    const std::string html = RenderBaseline({{nullptr, b.get(), a.get(), nullptr, nullptr, nullptr, nullptr}}, REPORT_HTML, &c);
    EXPECT_EQ(Count(html, "<tr class=\"change\">"), 5u);
    EXPECT_NE(html.find("<td class=\"num\">-0.000999</td>"), std::string::npos); // out: the NMSE difference
    EXPECT_NE(html.find("<span class=\"badge regression\">REGRESSION</span>"), std::string::npos);

    // Swapped: ffn_act is fixed, and out (fixed before) now regresses, attn_q improves.
    RenderBaseline({{nullptr, a.get(), b.get(), nullptr, nullptr, nullptr, nullptr}}, REPORT_MARKDOWN, &c);
    EXPECT_EQ(c.regressed, 1u);
    EXPECT_EQ(c.taps_fixed, 1u);
    EXPECT_EQ(c.taps_regressed, 1u);
    EXPECT_EQ(c.taps_improved, 1u);
    // Against itself: unchanged.
    const std::string same = RenderBaseline({{nullptr, a.get(), a.get(), nullptr, nullptr, nullptr, nullptr}}, REPORT_MARKDOWN, &c);
    EXPECT_EQ(c.taps_regressed + c.taps_degraded + c.taps_fixed + c.taps_improved, 0u);
    EXPECT_EQ(same.find("## \xe2\x9e\x96 UNCHANGED against the baseline"), 0u) << same;
}

// Entries of two gate runs paired by name: one entry new, one gone, the
// entry table in the given order; bad arguments are refused.
TEST(ReportBaseline, EntriesPairedByName) {
    bn_error err{};
    bn_status st;
    ReportPtr pass = Parse(HandReceipt("pass", {{"blk.0.attn_q", 1e-8, "pass"}}), &err, &st);
    ASSERT_OK(st, err);
    ReportPtr fail = Parse(HandReceipt("fail", {{"blk.0.attn_q", 1e-5, "fail"}}), &err, &st);
    ASSERT_OK(st, err);
    report_diff_counts c{};
    const std::string md = RenderBaseline({{"fixtures/b158 p1", pass.get(), fail.get(), nullptr, nullptr, nullptr, nullptr},
                                           {"shared/p2", nullptr, pass.get(), nullptr, nullptr, nullptr, nullptr},
                                           {"shared/p3", fail.get(), nullptr, nullptr, nullptr, nullptr, nullptr}},
                                          REPORT_MARKDOWN, &c);
    EXPECT_EQ(c.entries, 3u);
    EXPECT_EQ(c.regressed, 1u);
    EXPECT_EQ(c.added, 1u);
    EXPECT_EQ(c.removed, 1u);
    std::vector<std::string> rows = MdRows(md, "**Entries**");
    ASSERT_EQ(rows.size(), 3u) << md;
    EXPECT_EQ(rows[0].rfind("| fixtures/b158 p1 | **regression** | pass \xe2\x86\x92 fail | none | ", 0), 0u) << rows[0];
    EXPECT_EQ(rows[1].rfind("| shared/p2 | new | ", 0), 0u) << rows[1];
    EXPECT_EQ(rows[2].rfind("| shared/p3 | gone | ", 0), 0u) << rows[2];
    EXPECT_NE(md.find("**1 of 3 entries regressed**"), std::string::npos) << md;

    st = BN_OK;
    RenderBaseline({{"x", nullptr, nullptr, nullptr, nullptr, nullptr, nullptr}}, REPORT_MARKDOWN, &c, &st);
    EXPECT_EQ(st, BN_ERR_INVALID);

    // An entry without receipts (a gate's perplexity entry): judged by its verdicts, its figures shown.
    const std::string ppl = RenderBaseline({{"kjv.ppl", nullptr, nullptr, "pass", "fail", "ppl 3.7", "ppl 3.8"},
                                            {"opt", nullptr, nullptr, "skipped", "error", nullptr, "no model"},
                                            {"back", nullptr, nullptr, "fail", "pass", nullptr, nullptr}},
                                           REPORT_MARKDOWN, &c);
    EXPECT_EQ(c.regressed, 2u);
    EXPECT_EQ(c.fixed, 1u);
    rows = MdRows(ppl, "**Entries**");
    ASSERT_EQ(rows.size(), 3u) << ppl;
    EXPECT_EQ(rows[0], "| kjv.ppl | **regression** | pass \xe2\x86\x92 fail | ppl 3.7 | ppl 3.8 | 0 | 0 | 0 | 0 |");
    EXPECT_EQ(rows[1].rfind("| opt | **regression** | skipped \xe2\x86\x92 error | \xe2\x80\x94 | no model |", 0), 0u)
        << rows[1];
    EXPECT_EQ(rows[2].rfind("| back | fixed | fail \xe2\x86\x92 pass |", 0), 0u) << rows[2];
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    const report_pair p = {nullptr, pass.get(), fail.get(), nullptr, nullptr, nullptr, nullptr};
    EXPECT_EQ(report_render_baseline(&p, 1, 1.0, REPORT_HTML, f, &c, &err), BN_ERR_INVALID);
    fclose(f);
    free(buf);
}

// What to check next: one checklist per tap kind, every norm sharing one.
TEST(ReportNextChecks, ByTapKind) {
    EXPECT_STREQ(parity_next_checks_for("blk.3.attn_q")->kind, "attn_q");
    EXPECT_NE(std::string(parity_next_checks_for("blk.3.attn_q")->checks[0]).find("layout"), std::string::npos);
    EXPECT_STREQ(parity_next_checks_for("blk.0.ffn_act")->kind, "ffn_act");
    EXPECT_STREQ(parity_next_checks_for("blk.0.ffn_sub_norm")->kind, "*_norm");
    EXPECT_STREQ(parity_next_checks_for("output_norm")->kind, "*_norm");
    EXPECT_STREQ(parity_next_checks_for("blk.1.ffn_down.in_q8")->kind, "in_q8");
    EXPECT_STREQ(parity_next_checks_for("logits")->kind, "logits");
    EXPECT_STREQ(parity_next_checks_for("blk.0.mystery")->kind, "?");
    EXPECT_STREQ(parity_next_checks_for(nullptr)->kind, "?");
    // Only a failing receipt whose first divergence names a tap gets the section.
    bn_error err{};
    bn_status st;
    ReportPtr r = Parse(kHostile, &err, &st);
    ASSERT_OK(st, err);
    const std::string md = Render({r.get()}, REPORT_MARKDOWN);
    EXPECT_NE(md.find("<details><summary>What to check next (beyond the hints)</summary>"), std::string::npos) << md;
    ReportPtr p = Parse(HandReceipt("pass", {{"blk.0.attn_q", 1e-8, "pass"}}), &err, &st);
    ASSERT_OK(st, err);
    EXPECT_EQ(Render({p.get()}, REPORT_HTML).find("What to check next"), std::string::npos);
}

}  // namespace
