/* cmd_report.c — `bitparity report`: receipts rendered as one HTML page or
 * as Markdown (reports/, reports/report.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/atomic_file.h"
#include "bitnet/yaml_doc.h"
#include "commands.h"
#include "reports/gate_report.h"
#include "reports/report.h"

enum { REPORT_MAX_RECEIPTS = 256 };

static const char report_help[] =
    "usage: bitparity report RECEIPT.yaml [RECEIPT2.yaml ...] [-o OUT] [--format html|markdown]\n"
    "       bitparity report NEW.yaml --baseline OLD.yaml [--factor F] [-o OUT] [--format F]\n"
    "       bitparity report NEW/summary.yaml --baseline OLD/summary.yaml [--factor F] [-o OUT]\n\n"
    "Renders receipts (written by `bitparity compare -o` or `bitparity check -o`, YAML or JSON) for\n"
    "people: the verdict, the first divergence, the hints, the failing and worst taps, the logits,\n"
    "the replay, and plots of the error growth per layer, of every tap's NMSE and of the logits' KL\n"
    "divergence. Several receipts make one report with a summary table first.\n\n"
    "With --baseline, a regression report: what got worse or better from OLD to NEW per tap (NMSE\n"
    "before and after, its ratio and difference, max |a-b|, cosine) with the verdict of each change\n"
    "(regression: pass -> fail; fixed: fail -> pass; degraded / improved: same verdict, NMSE x F or\n"
    "more / F or less), most severe first, then NEW's full report (in Markdown folded in <details>,\n"
    "fit for a pull-request comment or $GITHUB_STEP_SUMMARY).\n"
    "Given two gate summaries (`bitparity gate`'s summary.yaml, both), their entries pair by name:\n"
    "each parity entry's receipts compared tap by tap, perplexity entries by verdict and figures.\n\n"
    "  -o FILE         write the report to FILE (default: Markdown on stdout)\n"
    "  --format F      html (one self-contained file: inline CSS and SVG, no JavaScript) or\n"
    "                  markdown (for CI logs and PR comments); default: html when FILE ends in\n"
    "                  .html or .htm, else markdown\n"
    "  --baseline OLD  compare the one RECEIPT with the receipt OLD (an earlier run of the same entry),\n"
    "                  or a gate summary with the summary OLD (an earlier gate run)\n"
    "  --factor F      NMSE ratio that makes a same-verdict change degraded or improved, > 1\n"
    "                  (default 10: one decade)\n\n"
    "exit: 0 the report was written (whatever the verdicts; with --baseline: and nothing regressed),\n"
    "1 with --baseline: a regression (an entry or a tap went from pass to fail), 2 usage error or a malformed\n"
    "receipt (file:line: key), 3 the report could not be written, 130 interrupted (an older\n"
    "report of that name is then left as it was)\n";

/* Renders into path through a temporary file (bitnet/atomic_file.h), so a
 * failed or interrupted run leaves no half-written report behind and an
 * older report as it was. */
/* What to render: the receipts, or one receipt against its baseline. */
typedef struct report_job {
    const report_receipt *const *rs;
    size_t n;
    const report_receipt *baseline; /* NULL: a plain report */
    const report_gate_baseline *gates; /* two gate summaries compared (then rs and baseline unused) */
    double factor;
    report_format fmt;
    report_diff_counts counts;      /* with a baseline, after rendering */
} report_job;

static bn_status render(report_job *j, FILE *f, bn_error *err) {
    if (j->gates) return report_render_baseline(j->gates->pairs, j->gates->n, j->factor, j->fmt, f, &j->counts, err);
    if (!j->baseline) return report_render(j->rs, j->n, j->fmt, f, err);
    const report_pair pair = {.entry = NULL, .baseline = j->baseline, .current = j->rs[0]};
    return report_render_baseline(&pair, 1, j->factor, j->fmt, f, &j->counts, err);
}

static bn_status render_file(report_job *j, const char *path, bn_error *err) {
    bn_atomic_file *f;
    bn_status st = bn_atomic_file_open(path, &f, err);
    if (st) return st;
    bn_atomic_file_set_cancel(f, cli_interrupt_flag());
    st = render(j, bn_atomic_file_stream(f), err);
    if (st) {
        bn_error_prefix(err, path);
        bn_atomic_file_abort(f);
        return st;
    }
    return bn_atomic_file_commit(f, err);
}

/* 1 when path is a gate summary (a YAML mapping with the top-level key
 * `gate`), 0 for anything else: receipts, and files the receipt reader
 * then names in its error. */
static int is_gate_summary(const char *path) {
    bn_yaml_doc *doc = NULL;
    bn_error err = {0};
    if (bn_yaml_load_file(path, (size_t)1 << 30, "report input", &doc, &err)) return 0;
    const int gate = bn_yaml_get(bn_yaml_root(doc), "gate") != NULL;
    bn_yaml_free(doc);
    return gate;
}

/* NEW/summary.yaml --baseline OLD/summary.yaml. */
static int report_gates(const char *now, const char *old, const char *out, report_format fmt, double factor) {
    report_gate_baseline g;
    bn_error err = {0};
    bn_status st = report_gate_baseline_load(old, now, &g, &err);
    if (st) return cli_fail("report", &err);
    report_job j = {.gates = &g, .factor = factor, .fmt = fmt};
    st = out ? render_file(&j, out, &err) : render(&j, stdout, &err);
    int rc = j.counts.regressed ? EXIT_PARITY : 0;
    if (st) {
        fprintf(stderr, "bitparity report: %s\n", err.msg);
        rc = st == BN_ERR_CANCELLED ? EXIT_INTERRUPTED : EXIT_INTERNAL;
    }
    report_gate_baseline_free(&g);
    return rc;
}

int cmd_report(int argc, char **argv) {
    const char *out = NULL, *format = NULL, *baseline = NULL;
    double factor = REPORT_DEFAULT_FACTOR;
    const char *paths[REPORT_MAX_RECEIPTS];
    int n = 0;
    const cli_opt opts[] = {
        CLI_STR_OPT("-o", "--output", &out),
        CLI_STR_OPT("--format", NULL, &format),
        CLI_STR_OPT("--baseline", NULL, &baseline),
        CLI_FLOAT_OPT("--factor", NULL, &factor, 1, 1e300, true, false),
        {0},
    };
    int rc = cli_parse_options("report", report_help, argc, argv, opts, paths, REPORT_MAX_RECEIPTS, &n);
    if (rc >= 0) return rc;
    if (!n) return cli_usage_error("report", "no receipt given");
    report_format fmt = report_format_for_path(out);
    if (format && !report_format_parse(format, &fmt))
        return cli_usage_error("report", "--format '%s': expected html or markdown", format);
    if (!baseline && factor != REPORT_DEFAULT_FACTOR)
        return cli_usage_error("report", "--factor applies to a comparison with --baseline");
    if (baseline && n != 1)
        return cli_usage_error("report", "--baseline compares one receipt with it, got %d receipts", n);
    if (baseline) {
        const int gate_now = is_gate_summary(paths[0]), gate_old = is_gate_summary(baseline);
        if (gate_now != gate_old)
            return cli_usage_error("report", "%s is a gate summary but %s is a receipt: compare a receipt with a receipt, "
                                   "a summary.yaml with a summary.yaml", gate_now ? paths[0] : baseline,
                                   gate_now ? baseline : paths[0]);
        if (gate_now) return report_gates(paths[0], baseline, out, fmt, factor);
    }

    report_receipt *rs[REPORT_MAX_RECEIPTS] = {0}, *old = NULL;
    bn_error err = {0};
    bn_status st = BN_OK;
    for (int i = 0; i < n && !st; i++) st = report_load(paths[i], &rs[i], &err);
    if (!st && baseline) st = report_load(baseline, &old, &err);
    if (st) {
        rc = cli_fail("report", &err); /* a receipt that cannot be read is the user's input */
    } else {
        report_job j = {.rs = (const report_receipt *const *)rs, .n = (size_t)n, .baseline = old, .factor = factor,
                        .fmt = fmt};
        st = out ? render_file(&j, out, &err) : render(&j, stdout, &err);
        rc = old && j.counts.regressed ? EXIT_PARITY : 0;
        if (st) { /* a report that cannot be written is the environment's problem */
            fprintf(stderr, "bitparity report: %s\n", err.msg);
            rc = st == BN_ERR_CANCELLED ? EXIT_INTERRUPTED : EXIT_INTERNAL;
        }
    }
    for (int i = 0; i < n; i++) report_receipt_free(rs[i]);
    report_receipt_free(old);
    return rc;
}
