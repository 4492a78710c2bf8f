/* report_md.c — receipts as Markdown for CI logs and pull-request comments:
 * the verdict, the first divergence, the hints, short tables and a text
 * sparkline of the error growth. Receipt strings are escaped so that they
 * can neither break a table nor smuggle HTML into a rendered comment. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_model.h"
#include "reports/report.h"

enum { MD_FAILING_ROWS = 15, MD_WORST_ROWS = 5 };

/* Text outside code spans: Markdown punctuation backslash-escaped, HTML
 * metacharacters as entities, control characters as spaces. */
static void md(FILE *f, const char *s) {
    if (!s) {
        fputs("\xe2\x80\x94", f);
        return;
    }
    for (const char *start = s; *s; s++) {
        unsigned char c = (unsigned char)*s;
        /* GFM never reads an underscore inside a word as emphasis: keep
         * tap names like ffn_gate readable in plain CI logs. */
        if (c == '_' && s > start && isalnum((unsigned char)s[-1]) && isalnum((unsigned char)s[1])) {
            fputc(c, f);
            continue;
        }
        if (c == '&') fputs("&amp;", f);
        else if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c < 0x20) fputc(' ', f);
        else if (strchr("\\`*_[]|#!~", c)) fputc('\\', f), fputc(c, f);
        else fputc(c, f);
    }
}

/* A code span for names; '|' is escaped for tables (GFM reads \| inside
 * code in tables). Nothing can be escaped inside a code span otherwise, so
 * a name with a backtick or HTML metacharacters is written as plain
 * escaped text: no raw '<' ever reaches the output. */
static void md_code(FILE *f, const char *s) {
    if (!s || !*s || strpbrk(s, "`<>&")) {
        md(f, s);
        return;
    }
    fputc('`', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '|') fputs("\\|", f);
        else fputc(c < 0x20 ? ' ' : c, f);
    }
    fputc('`', f);
}

/* One table row of the model, of the columns cols[0..n_cols): strings as
 * escaped text, names as code spans. */
static void md_row(FILE *f, const table *t, size_t row, const int *cols, size_t n_cols) {
    char b[32];
    fputs("| ", f);
    for (size_t k = 0; k < n_cols; k++) {
        const cell *c = table_cell(t, row, (size_t)cols[k]);
        if (k) fputs(" | ", f);
        if (c->kind == CELL_CODE) md_code(f, c->text);
        else if (c->kind == CELL_TEXT) md(f, c->text);
        else fputs(cell_number(c, b), f);
    }
    fputs(" |\n", f);
}

static const char *verdict(const report_receipt *r) {
    return r->pass ? "\xe2\x9c\x85 PASS" : "\xe2\x9d\x8c FAIL"; /* ✅ / ❌ */
}

/* ▁▂▃▄▅▆▇█, lowest to highest on a log scale. */
static const char *const bars[8] = {"\xe2\x96\x81", "\xe2\x96\x82", "\xe2\x96\x83", "\xe2\x96\x84",
                                    "\xe2\x96\x85", "\xe2\x96\x86", "\xe2\x96\x87", "\xe2\x96\x88"};

static void sparkline_row(FILE *f, const report_receipt *r, const report_growth *g, double lo,
                          double hi) {
    char b[32];
    int worst = -1;
    for (int l = 0; l < r->layers; l++) {
        double v = g->nmse_max[l];
        if (isnan(v)) fputs("\xc2\xb7", f);
        else if (v <= 0) fputc('0', f);
        else if (isinf(v) || hi <= lo) fputs(bars[isinf(v) ? 7 : 4], f);
        else fputs(bars[(int)lround((log10(v) - lo) / (hi - lo) * 7)], f);
        if (!isnan(v) && (worst < 0 || v > g->nmse_max[worst])) worst = l;
    }
    if (worst >= 0) fprintf(f, "  max %s at blk.%d", report_num(b, g->nmse_max[worst]), worst);
    fputc('\n', f);
}

static void growth(FILE *f, const report_receipt *r) {
    if (!r->n_growth || r->layers <= 0) return;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t e = 0; e < r->n_growth; e++)
        for (int l = 0; l < r->layers; l++) {
            double v = r->growth[e].nmse_max[l];
            if (v > 0 && isfinite(v)) lo = fmin(lo, log10(v)), hi = fmax(hi, log10(v));
        }
    char b1[32], b2[32];
    fputs("**Error growth** (max NMSE per layer", f);
    if (isfinite(lo)) fprintf(f, ", log scale %s \xe2\x80\xa6 %s", report_num(b1, pow(10, lo)), report_num(b2, pow(10, hi)));
    fputs("; \xc2\xb7 nothing compared, 0 bit-identical)\n\n```text\n", f);
    for (size_t e = 0; e < r->n_growth; e++) {
        /* inside a fence only a line of backticks could break out */
        const char *id = r->growth[e].evaluation;
        fprintf(f, "%-6.24s ", strchr(id, '`') || strchr(id, '\n') ? "?" : id);
        sparkline_row(f, r, &r->growth[e], lo, hi);
    }
    fputs("```\n\n", f);
}

static void hints(FILE *f, const report_receipt *r) {
    if (!r->n_hints) return;
    fputs("**Hints**\n\n", f);
    for (size_t i = 0; i < r->n_hints; i++) {
        fputs("- **", f);
        md(f, r->hints[i].name);
        fputs("**: ", f);
        md(f, r->hints[i].message);
        fputc('\n', f);
        if (r->hints[i].evidence) fputs("  - evidence: ", f), md(f, r->hints[i].evidence), fputc('\n', f);
    }
    fputc('\n', f);
}

static void failing(FILE *f, const report_model *m) {
    static const int cols[] = {FAIL_EVAL, FAIL_TAP, FAIL_STATUS, FAIL_METRIC, FAIL_VALUE, FAIL_LIMIT};
    const size_t n = m->failing.n_rows, shown = n < MD_FAILING_ROWS ? n : MD_FAILING_ROWS;
    if (!n) return;
    fprintf(f, "**Failing taps** (%zu%s)\n\n| eval | tap | status | metric | value | limit |\n"
               "|---|---|---|---|--:|--:|\n",
            n, n > MD_FAILING_ROWS ? "; the first in evaluation order" : "");
    for (size_t i = 0; i < shown; i++) md_row(f, &m->failing, i, cols, sizeof cols / sizeof cols[0]);
    if (n > shown) fprintf(f, "\n\xe2\x80\xa6 and %zu more (the HTML report lists them all)\n", n - shown);
    fputc('\n', f);
}

static void worst(FILE *f, const report_model *m) {
    static const int cols[] = {WORST_EVAL, WORST_TAP, WORST_STATUS, WORST_NMSE, WORST_COSINE, WORST_MAX_ABS};
    const size_t n = m->worst.n_rows < MD_WORST_ROWS ? m->worst.n_rows : MD_WORST_ROWS;
    if (m->all_zero) return;
    fputs("**Worst taps by NMSE**\n\n| eval | tap | status | nmse | cosine | max abs |\n"
          "|---|---|---|--:|--:|--:|\n",
          f);
    for (size_t k = 0; k < n; k++) md_row(f, &m->worst, k, cols, sizeof cols / sizeof cols[0]);
    fputc('\n', f);
}

static void logits(FILE *f, const report_model *m) {
    static const int cols[] = {LG_EVAL, LG_STATUS, LG_POSITIONS, LG_TOP1, LG_TOP5, LG_KLD_MEAN, LG_KLD_P99, LG_KLD_MAX};
    if (!m->logits.n_rows) return;
    fputs("**Logits**\n\n| eval | status | positions | top-1 | top-5 | KLD mean | KLD p99 | KLD max |\n"
          "|---|---|--:|--:|--:|--:|--:|--:|\n",
          f);
    for (size_t i = 0; i < m->logits.n_rows; i++) md_row(f, &m->logits, i, cols, sizeof cols / sizeof cols[0]);
    fputc('\n', f);
}

static void replay(FILE *f, const report_model *m) {
    const report_replay *p = &m->r->replay;
    char b1[32], b2[32];
    if (!p->present) return;
    fputs("**Replay** (", f);
    md(f, p->mode);
    fputs(" mode): ", f);
    if (p->first_tap) {
        fputs("the error is born at ", f);
        md(f, p->first_evaluation);
        fputc(' ', f);
        md_code(f, p->first_tap);
        fputs(" (", f);
        md(f, p->first_metric);
        fprintf(f, " %s, limit %s)", report_num(b1, p->first_value), report_num(b2, p->first_limit));
    } else {
        fputs("no tap fails from the reference's inputs (every error is inherited)", f);
    }
    for (size_t i = 0; i < m->blocks.n_rows; i++) {
        fputs(i ? ", " : "; blocks: ", f);
        md(f, table_cell(&m->blocks, i, BLOCK_EVAL)->text);
        fprintf(f, " %s %s", table_cell(&m->blocks, i, BLOCK_NAME)->text, table_cell(&m->blocks, i, BLOCK_ERROR)->text);
    }
    fputs("\n\n", f);
}

static void side(FILE *f, const report_side *s) {
    fputs("**", f);
    md(f, s->producer);
    fputs("**", f);
    if (s->numerics || s->weight_type) {
        fputs(" (", f);
        md(f, s->numerics ? s->numerics : s->weight_type);
        if (s->numerics && s->weight_type) fputs(", ", f), md(f, s->weight_type);
        fputc(')', f);
    }
    if (s->fault && strcmp(s->fault, "none")) fputs(" fault ", f), md(f, s->fault);
}

static void section(FILE *f, const report_model *m, int idx, int numbered) {
    const report_receipt *r = m->r;
    char b1[32], b2[32];
    const parity_compare_counts *c = &r->counts;
    fputs("## ", f);
    if (numbered) fprintf(f, "%d. ", idx);
    fprintf(f, "%s \xe2\x80\x94 ", verdict(r));
    md(f, report_base_name(r->model_path ? r->model_path : r->file));
    fputs("\n\nreceipt ", f);
    md_code(f, r->file);
    fputs(" \xc2\xb7 subject ", f);
    side(f, &r->subject);
    fputs(" vs reference ", f);
    side(f, &r->reference);
    fputs(" \xc2\xb7 policy **", f);
    md(f, r->policy_name);
    fputs("**\n\n", f);
    if (r->diagnosis) fputs("**Diagnosis:** ", f), md(f, r->diagnosis), fputs("\n\n", f);
    if (r->has_divergence) {
        fputs("**First divergence:** ", f);
        md(f, r->div_evaluation);
        fputc(' ', f);
        md_code(f, r->div_tap);
        if (r->div_layer >= 0) fprintf(f, " (layer %d)", r->div_layer);
        fputs(": ", f);
        md(f, r->div_metric);
        fprintf(f, " = %s, limit %s\n\n", report_num(b1, r->div_value), report_num(b2, r->div_limit));
    }
    fprintf(f,
            "**Taps:** %lld compared: %lld pass (%lld bit-identical), %lld fail, %lld shape mismatch; "
            "%lld only in subject, %lld only in reference, %lld skipped by policy\n\n",
            (long long)c->compared, (long long)c->pass, (long long)c->bit_identical, (long long)c->fail,
            (long long)c->shape_mismatch, (long long)c->missing_reference, (long long)c->missing_subject,
            (long long)c->policy_skip);
    hints(f, r);
    growth(f, r);
    failing(f, m);
    worst(f, m);
    logits(f, m);
    replay(f, m);
}

static void summary(FILE *f, const report_receipt *const *rs, size_t n) {
    fputs("| # | verdict | model | subject \xe2\x86\x92 reference | policy | compared | fail | first divergence "
          "| hints |\n"
          "|--:|---|---|---|---|--:|--:|---|---|\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const report_receipt *r = rs[i];
        fprintf(f, "| %zu | %s | ", i + 1, verdict(r));
        md(f, report_base_name(r->model_path ? r->model_path : r->file));
        fputs(" | ", f);
        md(f, r->subject.producer);
        fputs(" \xe2\x86\x92 ", f);
        md(f, r->reference.producer);
        fputs(" | ", f);
        md(f, r->policy_name);
        fprintf(f, " | %lld | %lld | ", (long long)r->counts.compared,
                (long long)(r->counts.fail + r->counts.shape_mismatch));
        if (r->has_divergence) md(f, r->div_evaluation), fputc(' ', f), md_code(f, r->div_tap);
        else fputs(r->diagnosis ? "see diagnosis" : "\xe2\x80\x94", f);
        fputs(" | ", f);
        for (size_t h = 0; h < r->n_hints; h++) fputs(h ? ", " : "", f), md(f, r->hints[h].name);
        fputs(" |\n", f);
    }
    fputc('\n', f);
}

bn_status report_render_markdown(const report_receipt *const *rs, size_t n, FILE *f, bn_error *err) {
    if (!rs || !n || !f) return bn_error_set(err, BN_ERR_INVALID, "report_render_markdown: no receipts");
    report_model *m = NULL;
    bn_status st = report_models_build(rs, n, &m, err);
    if (st) return st;
    size_t pass = report_count_pass(rs, n);
    if (n > 1) {
        fprintf(f, "# bitparity report: %s (%zu of %zu receipts pass)\n\n", pass == n ? "PASS" : "FAIL", pass, n);
        summary(f, rs, n);
    }
    for (size_t i = 0; i < n; i++) section(f, &m[i], (int)i + 1, n > 1);
    report_models_free(m, n);
    if (fflush(f) || ferror(f)) return bn_error_set(err, BN_ERR_IO, "writing the Markdown report failed");
    return BN_OK;
}
