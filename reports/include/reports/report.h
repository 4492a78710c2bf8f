/* report.h — receipts read back (libyaml) and rendered for people: one
 * self-contained HTML page (inline CSS and SVG plots, no JavaScript) or
 * Markdown for CI logs and pull-request comments (docs/report.md).
 *
 * A receipt (docs/receipt.md, `receipt: bitparity/v1`) is parsed into the
 * read-only tree below, validated key by key: a malformed receipt is a
 * FORMAT error naming the file, the line and the key. The JSON form of a
 * receipt is YAML flow syntax and is read the same way. Only the keys a
 * report shows are kept; strings point into the parsed document, which the
 * receipt owns. Several receipts render as one report: a summary table (a
 * regression view across models and runs) and one section per receipt.
 *
 * Every string of a receipt is untrusted: the renderers escape all of it.
 */
#ifndef REPORTS_REPORT_H
#define REPORTS_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bitnet/status.h"
#include "parity/compare.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum report_format {
    REPORT_MARKDOWN = 0,
    REPORT_HTML = 1,
} report_format;

/* Optional strings are NULL when the receipt says null or omits them;
 * optional numbers are NAN. Non-finite numbers (.inf, .nan) keep their
 * value. */

/* subject: or reference: */
typedef struct report_side {
    const char *producer, *version, *source; /* producer.name / .version / .source */
    const char *numerics, *weight_type, *fault;
    const char *trace, *layout, *map;         /* map.name */
    int64_t evaluations;                      /* -1 when absent */
} report_side;

typedef struct report_hint {
    const char *name, *message, *evidence;
} report_hint;

/* error_growth.evaluations[i] */
typedef struct report_growth {
    const char *evaluation;
    double *nmse_max;   /* [layers] NAN where nothing was compared (null) */
} report_growth;

/* taps[i]: the fields a report shows. */
typedef struct report_tap {
    const char *evaluation, *name, *status;
    int layer;                 /* -1: null (token_embd, output_norm, logits) */
    int failed;                /* status fail or shape-mismatch */
    int compared;              /* status pass or fail: metrics are present */
    int bit_identical;
    double nmse, cosine, max_abs, scale;   /* NAN unless compared */
    const char *failed_metric; /* failed.metric, else NULL */
    double failed_value, failed_limit;
    double nmse_limit;         /* limits.nmse_max, NAN when the policy sets none */
    double kld_mean_limit;     /* limits.kld_mean_max (the logits tap), NAN when none */
} report_tap;

/* logits[i] */
typedef struct report_logits {
    const char *evaluation, *status;
    int64_t positions, invalid;
    double top1_agree, top5_overlap, kld_mean, kld_median, kld_p99, kld_max;
} report_logits;

/* replay.blocks[i] */
typedef struct report_block {
    const char *evaluation;
    int layer;
    int local;                 /* error: local (1) or inherited (0) */
    double nmse_compared, nmse_replayed;
} report_block;

typedef struct report_replay {
    int present;               /* the receipt has a replay section */
    const char *mode, *model;
    const char *first_evaluation, *first_tap, *first_metric; /* first_local; tap NULL when null */
    double first_value, first_limit;
    report_block *blocks;
    size_t n_blocks;
    size_t n_failing_taps;     /* replay.failing_taps entries */
} report_replay;

typedef struct report_receipt {
    const char *file;          /* as given to the loader (owned copy) */
    const char *created, *tool_version, *tool_commit;
    const char *host_cpu, *host_simd;
    int64_t host_threads;
    const char *model_path, *model_sha256, *model_arch;
    report_side subject, reference;
    const char *policy_name, *policy_origin, *policy_choice;

    int pass;                  /* summary.verdict */
    const char *diagnosis;
    parity_compare_counts counts;
    int64_t evals_subject, evals_reference, evals_compared;
    int has_divergence;        /* summary.first_divergence is not null */
    const char *div_evaluation, *div_tap, *div_metric;
    int div_layer;             /* -1: null */
    double div_value, div_limit;
    const char **failing_evaluations; /* [n_failing_evaluations] */
    size_t n_failing_evaluations;
    report_hint *hints; /* [n_hints] */
    size_t n_hints;

    const char *growth_metric; /* error_growth.metric */
    int layers;                /* length of every nmse_max */
    report_growth *growth;
    size_t n_growth;

    report_tap *taps;   /* [n_taps] in the receipt's (evaluation) order */
    size_t n_taps;
    report_logits *logits;
    size_t n_logits;
    report_replay replay;
    double compare_s;          /* timings.compare_s, NAN when absent */

    void *doc_;                /* private: the parsed document owning the strings */
} report_receipt;

/* Reads and validates the receipt at path. FORMAT with "path:line: key:
 * what is wrong" for YAML syntax errors, a missing or mistyped key, a
 * receipt version other than bitparity/v1, anchors/aliases (receipts never
 * use them); IO when the file cannot be read; NOMEM. */
bn_status report_load(const char *path, report_receipt **out, bn_error *err);

/* Same from text in memory (size bytes); name stands for the file in
 * messages and in the report. */
bn_status report_parse(const char *name, const char *text, size_t size, report_receipt **out,
                              bn_error *err);

void report_receipt_free(report_receipt *r); /* NULL is fine */

/* Renders n >= 1 receipts as one report to f: with n > 1 a summary table
 * first, then one section per receipt in the given order. IO on a write
 * error; INVALID when n is 0. */
bn_status report_render(const report_receipt *const *receipts, size_t n, report_format fmt,
                               FILE *f, bn_error *err);

/* The two renderers behind report_render (same contract). */
bn_status report_render_html(const report_receipt *const *receipts, size_t n, FILE *f,
                                    bn_error *err);
bn_status report_render_markdown(const report_receipt *const *receipts, size_t n, FILE *f,
                                        bn_error *err);

/* "html" / "markdown" (also "md") -> *fmt; 0 for anything else. */
int report_format_parse(const char *name, report_format *fmt);

/* The format a file name implies: .html/.htm -> HTML, anything else
 * (.md, .txt, none) -> Markdown. */
report_format report_format_for_path(const char *path);

/* How many receipts pass (a convenience for callers summing verdicts). */
size_t report_count_pass(const report_receipt *const *receipts, size_t n);

/* Shared by the renderers: the taps the plots and tables are about, in
 * receipt order. The evaluation of the first failing tap (summary's
 * first_divergence, else failing_evaluations[0], else the first tap's);
 * NULL when the receipt has no taps. */
const char *report_focus_evaluation(const report_receipt *r);

/* Indices of the compared taps with the largest NMSE (NaN counts as the
 * largest), ties in receipt order; at most max; returns how many. idx must
 * hold max entries. */
size_t report_worst_taps(const report_receipt *r, size_t *idx, size_t max);

/* The nmse_max every compared tap of a layer shares (the policy limit when
 * it is uniform), else NAN. */
double report_uniform_nmse_limit(const report_receipt *r);


/* ---- regression against a baseline -------------------------------------
 * Two runs of the same entries (one receipt each, or the entries of two
 * gate summaries paired by name) compared tap by tap: which taps got worse
 * or better, by how much (NMSE ratio and difference, max |a-b|, cosine),
 * and the verdict of each change (docs/report.md, "Regression reports"). */

/* One entry compared: its receipts before (the baseline) and now. */
typedef struct report_pair {
    const char *entry;               /* the entry's name; NULL: the current receipt's model file */
    const report_receipt *baseline;  /* NULL: the entry is new */
    const report_receipt *current;   /* NULL: the entry is gone */
    /* An entry judged without a parity receipt (a gate's perplexity entry,
     * or one skipped or in error): each side's verdict ("pass", "fail",
     * "skipped", "error"; NULL: absent) and its figures in one line (shown
     * where a receipt's first divergence goes; NULL: none). A side with a
     * receipt ignores these. Good (pass, skipped) -> bad (fail, error) is
     * a regression, bad -> good a fix. */
    const char *baseline_verdict, *current_verdict;
    const char *baseline_note, *current_note;
} report_pair;

/* What changed, counted; an entry counts once, under its most severe change. */
typedef struct report_diff_counts {
    size_t entries;
    size_t regressed;  /* entries whose verdict, or a tap's, went pass -> fail */
    size_t degraded;   /* entries with a tap worse by the factor, no verdict crossed */
    size_t fixed;      /* entries that went fail -> pass */
    size_t improved;   /* entries with a tap better by the factor or fixed, still failing */
    size_t added, removed;
    size_t taps_regressed, taps_degraded, taps_fixed, taps_improved, taps_added, taps_removed;
} report_diff_counts;

/* A tap whose NMSE grew (or shrank) by this factor with its verdict the
 * same is degraded (improved): one decade on the report's log plots. */
#define REPORT_DEFAULT_FACTOR 10.0

/* Renders what changed from each pair's baseline to its current receipt:
 * a headline, the entries (more than one pair), the changed taps sorted by
 * severity, then the current receipts' full reports (Markdown: collapsed in
 * <details>, fit for a pull-request comment or a CI step summary). factor
 * > 1 (else INVALID). *counts (may be NULL) receives the changes; a caller
 * exits 1 when counts->regressed > 0. IO on a write error; INVALID when n
 * is 0 or a pair has neither receipt; NOMEM. */
bn_status report_render_baseline(const report_pair *pairs, size_t n, double factor, report_format fmt, FILE *f,
                                 report_diff_counts *counts, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* REPORTS_REPORT_H */
