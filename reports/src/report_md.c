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

static const char *verdict(int pass) {
    return pass ? "\xe2\x9c\x85 PASS" : "\xe2\x9d\x8c FAIL"; /* ✅ / ❌ */
}

static report_ink ink(FILE *f) {
    return (report_ink){.f = f, .text = md, .code = md_code, .strong_on = "**", .strong_off = "**",
                        .head_on = "**", .head_off = "**: ",
                        .hints_on = "**Hints**\n\n", .hints_off = "\n", .hint_on = "", .hint_off = "",
                        .name_on = "- **", .name_off = "**: ", .message_on = "", .message_off = "\n",
                        .evidence_on = "  - evidence: ", .evidence_off = "\n", .list_on = "\n\n",
                        .list_off = "\n", .item_on = "- ", .item_off = "\n", .next_on = "**What to check next:** ",
                        .next_off = "\n", .next_folded_on = "<details><summary>What to check next (beyond the hints)"
                                                           "</summary>\n\n",
                        .next_folded_off = "\n</details>\n\n"};
}

static void md_cell(FILE *f, const cell *c) {
    char b[32];
    if (c->kind == CELL_CODE) {
        md_code(f, c->text);
    } else if (c->kind == CELL_TEXT) {
        if (c->strong) fputs("**", f);
        md(f, c->text);
        if (c->strong) fputs("**", f);
        if (c->code) fputc(' ', f), md_code(f, c->code);
    } else if (c->kind == CELL_VERDICT) {
        fputs(verdict((int)c->i), f);
    } else {
        fprintf(f, c->strong ? "**%s**" : "%s", cell_number(c, b));
    }
}

/* Table t with the columns cols[0..n_cols) (a CI log has no room for all)
 * and at most max_rows rows; `detail` follows the title. */
static void md_table(FILE *f, const table *t, const int *cols, size_t n_cols, size_t max_rows, const char *detail) {
    const size_t shown = t->n_rows < max_rows ? t->n_rows : max_rows;
    fprintf(f, "**%s**%s\n\n|", t->title, detail);
    for (size_t k = 0; k < n_cols; k++) fprintf(f, " %s |", t->cols[cols[k]].label); /* ours: plain text */
    fputs("\n|", f);
    for (size_t k = 0; k < n_cols; k++) fputs(t->cols[cols[k]].num ? "--:|" : "---|", f);
    fputc('\n', f);
    for (size_t i = 0; i < shown; i++) {
        fputs("| ", f);
        for (size_t k = 0; k < n_cols; k++) {
            if (k) fputs(" | ", f);
            md_cell(f, table_cell(t, i, (size_t)cols[k]));
        }
        fputs(" |\n", f);
    }
    if (t->n_rows > shown)
        fprintf(f, "\n\xe2\x80\xa6 and %zu more (the HTML report lists them all)\n", t->n_rows - shown);
    fputc('\n', f);
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

static void tables(FILE *f, const report_model *m) {
    static const int fail_cols[] = {FAIL_EVAL, FAIL_TAP, FAIL_STATUS, FAIL_METRIC, FAIL_VALUE, FAIL_LIMIT};
    static const int worst_cols[] = {WORST_EVAL, WORST_TAP, WORST_STATUS, WORST_NMSE, WORST_COSINE, WORST_MAX_ABS};
    static const int lg_cols[] = {LG_EVAL, LG_STATUS, LG_POSITIONS, LG_TOP1, LG_TOP5, LG_KLD_MEAN, LG_KLD_P99, LG_KLD_MAX};
    char detail[96];
    if (m->failing.n_rows) {
        snprintf(detail, sizeof detail, " (%zu%s)", m->failing.n_rows,
                 m->failing.n_rows > MD_FAILING_ROWS ? "; the first in evaluation order" : "");
        md_table(f, &m->failing, fail_cols, sizeof fail_cols / sizeof *fail_cols, MD_FAILING_ROWS, detail);
    }
    if (!m->all_zero) md_table(f, &m->worst, worst_cols, sizeof worst_cols / sizeof *worst_cols, MD_WORST_ROWS, "");
    if (m->logits.n_rows) md_table(f, &m->logits, lg_cols, sizeof lg_cols / sizeof *lg_cols, m->logits.n_rows, "");
}

static void replay(FILE *f, const report_model *m) {
    const report_replay *p = &m->r->replay;
    if (!p->present) return;
    const report_ink k = ink(f);
    ink_replay(&k, p);
    for (size_t i = 0; i < m->blocks.n_rows; i++) {
        fputs(i ? ", " : "; blocks: ", f);
        md(f, table_cell(&m->blocks, i, BLOCK_EVAL)->text);
        fprintf(f, " %s %s", table_cell(&m->blocks, i, BLOCK_NAME)->text, table_cell(&m->blocks, i, BLOCK_ERROR)->text);
    }
    fputs("\n\n", f);
}

static void section(FILE *f, const report_model *m, int idx, int numbered) {
    const report_receipt *r = m->r;
    const report_ink k = ink(f);
    const parity_compare_counts *c = &r->counts;
    fputs("## ", f);
    if (numbered) fprintf(f, "%d. ", idx);
    fprintf(f, "%s \xe2\x80\x94 ", verdict(r->pass));
    md(f, report_base_name(r->model_path ? r->model_path : r->file));
    fputs("\n\nreceipt ", f);
    md_code(f, r->file);
    fputs(" \xc2\xb7 subject ", f);
    ink_side(&k, &r->subject);
    fputs(" vs reference ", f);
    ink_side(&k, &r->reference);
    fputs(" \xc2\xb7 policy **", f);
    md(f, r->policy_name);
    fputs("**\n\n", f);
    if (r->diagnosis) fputs("**Diagnosis:** ", f), md(f, r->diagnosis), fputs("\n\n", f);
    if (r->has_divergence) fputs("**First divergence:** ", f), ink_divergence(&k, r), fputs("\n\n", f);
    fprintf(f,
            "**Taps:** %lld compared: %lld pass (%lld bit-identical), %lld fail, %lld shape mismatch; "
            "%lld only in subject, %lld only in reference, %lld skipped by policy\n\n",
            (long long)c->compared, (long long)c->pass, (long long)c->bit_identical, (long long)c->fail,
            (long long)c->shape_mismatch, (long long)c->missing_reference, (long long)c->missing_subject,
            (long long)c->policy_skip);
    ink_hints(&k, r);
    ink_next_checks(&k, r);
    growth(f, r);
    tables(f, m);
    replay(f, m);
}

bn_status report_render_markdown(const report_receipt *const *rs, size_t n, FILE *f, bn_error *err) {
    static const int sum_cols[] = {SUM_INDEX, SUM_VERDICT, SUM_MODEL, SUM_SIDES,      SUM_POLICY,
                                   SUM_COMPARED, SUM_FAIL, SUM_DIVERGENCE, SUM_HINTS};
    if (!f) return bn_error_set(err, BN_ERR_INVALID, "report_render_markdown: no output stream");
    report_doc d;
    bn_status st = report_doc_build(rs, n, "report_render_markdown", &d, err);
    if (st) return st;
    if (n > 1) {
        fprintf(f, "# bitparity report: %s (%zu of %zu receipts pass)\n\n", d.pass == n ? "PASS" : "FAIL", d.pass, n);
        md_table(f, &d.summary, sum_cols, sizeof sum_cols / sizeof *sum_cols, n, "");
    }
    for (size_t i = 0; i < n; i++) section(f, &d.models[i], (int)i + 1, n > 1);
    report_doc_free(&d);
    if (fflush(f) || ferror(f)) return bn_error_set(err, BN_ERR_IO, "writing the Markdown report failed");
    return BN_OK;
}

/* For the other pages of reports/ (the gate summary): the same escaping. */
void report_md_text(FILE *f, const char *s) { md(f, s); }
void report_md_code(FILE *f, const char *s) { md_code(f, s); }
/* ---- against a baseline ------------------------------------------------------
 * Compact, for a pull-request comment and a CI step summary: the headline,
 * the entries (several), the most severe changed taps, then each current
 * receipt's full report folded in <details>. */

enum { MD_CHANGE_ROWS = 20 };

static const char *diff_emoji(const char *word) {
    return !strcmp(word, "REGRESSION") ? "\xe2\x9d\x8c"                      /* ❌ */
           : !strcmp(word, "DEGRADED") ? "\xe2\x9a\xa0\xef\xb8\x8f"          /* ⚠️ */
           : !strcmp(word, "FIXED") || !strcmp(word, "IMPROVED") ? "\xe2\x9c\x85" /* ✅ */
                                                                 : "\xe2\x9e\x96"; /* ➖ */
}

bn_status md_render_baseline(const report_diff *d, FILE *f, bn_error *err) {
    static const int entry_cols[] = {ENT_ENTRY, ENT_CHANGE, ENT_VERDICT, ENT_DIV_BEFORE, ENT_DIV_AFTER,
                                     ENT_REGRESSED, ENT_DEGRADED, ENT_FIXED, ENT_IMPROVED};
    static const int change_cols[] = {CHG_ENTRY,       CHG_EVAL,       CHG_TAP,   CHG_CHANGE,        CHG_VERDICT,
                                      CHG_NMSE_BEFORE, CHG_NMSE_AFTER, CHG_RATIO, CHG_MAX_ABS_AFTER, CHG_COSINE_AFTER};
    size_t n = 0;
    report_doc doc;
    bn_status st = diff_current_doc(d, &doc, &n, err);
    if (st) return st;
    const char *word = diff_verdict(d);
    const report_ink k = ink(f);
    fprintf(f, "## %s %s against the baseline", diff_emoji(word), word);
    if (d->n == 1) fputs(" \xe2\x80\x94 ", f), md(f, d->entries[0].name);
    fputs("\n\n", f);
    ink_diff_headline(&k, d);
    fputs("\n\n", f);
    if (d->n > 1) md_table(f, &d->entry_table, entry_cols, sizeof entry_cols / sizeof *entry_cols, d->n, "");
    if (d->change_table.n_rows) {
        char detail[64];
        snprintf(detail, sizeof detail, " (%zu, most severe first)", d->change_table.n_rows);
        const int skip = d->n == 1; /* one entry: no entry column */
        md_table(f, &d->change_table, change_cols + skip, sizeof change_cols / sizeof *change_cols - (size_t)skip,
                 MD_CHANGE_ROWS, detail);
    }
    for (size_t i = 0; i < n; i++) {
        const report_receipt *r = doc.models[i].r;
        fprintf(f, "<details><summary>Full report: %s ", r->pass ? "PASS" : "FAIL");
        md(f, report_base_name(r->model_path ? r->model_path : r->file));
        fputs("</summary>\n\n", f);
        section(f, &doc.models[i], (int)i + 1, n > 1);
        fputs("</details>\n\n", f);
    }
    report_doc_free(&doc);
    if (fflush(f) || ferror(f)) return bn_error_set(err, BN_ERR_IO, "writing the Markdown report failed");
    return BN_OK;
}
