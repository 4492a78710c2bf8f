/* report_md.c — receipts as Markdown for CI logs and pull-request comments:
 * the verdict, the first divergence, the hints, short tables and a text
 * sparkline of the error growth. Receipt strings are escaped so that they
 * can neither break a table nor smuggle HTML into a rendered comment. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

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

static const char *num(char buf[32], double v) {
    if (isnan(v)) snprintf(buf, 32, "nan");
    else if (isinf(v)) snprintf(buf, 32, v > 0 ? "inf" : "-inf");
    else if (v == floor(v) && fabs(v) < 1e7) snprintf(buf, 32, "%.0f", v);
    else snprintf(buf, 32, "%.3g", v);
    return buf;
}

static const char *base_name(const char *p) {
    const char *s = p ? strrchr(p, '/') : NULL;
    return s && s[1] ? s + 1 : p;
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
    if (worst >= 0) fprintf(f, "  max %s at blk.%d", num(b, g->nmse_max[worst]), worst);
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
    if (isfinite(lo)) fprintf(f, ", log scale %s \xe2\x80\xa6 %s", num(b1, pow(10, lo)), num(b2, pow(10, hi)));
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

static void failing(FILE *f, const report_receipt *r) {
    size_t n = 0, shown = 0;
    char b1[32], b2[32];
    for (size_t i = 0; i < r->n_taps; i++) n += r->taps[i].failed != 0;
    if (!n) return;
    fprintf(f, "**Failing taps** (%zu%s)\n\n| eval | tap | status | metric | value | limit |\n"
               "|---|---|---|---|--:|--:|\n",
            n, n > MD_FAILING_ROWS ? "; the first in evaluation order" : "");
    for (size_t i = 0; i < r->n_taps && shown < MD_FAILING_ROWS; i++) {
        const report_tap *t = &r->taps[i];
        if (!t->failed) continue;
        shown++;
        fputs("| ", f);
        md(f, t->evaluation);
        fputs(" | ", f);
        md_code(f, t->name);
        fputs(" | ", f);
        md(f, t->status);
        fputs(" | ", f);
        md(f, t->failed_metric);
        fprintf(f, " | %s | %s |\n", num(b1, t->failed_value), num(b2, t->failed_limit));
    }
    if (n > shown) fprintf(f, "\n\xe2\x80\xa6 and %zu more (the HTML report lists them all)\n", n - shown);
    fputc('\n', f);
}

static void worst(FILE *f, const report_receipt *r) {
    size_t idx[MD_WORST_ROWS], n = report_worst_taps(r, idx, MD_WORST_ROWS);
    char b[3][32];
    if (!n || r->taps[idx[0]].nmse == 0) return;
    fputs("**Worst taps by NMSE**\n\n| eval | tap | status | nmse | cosine | max abs |\n"
          "|---|---|---|--:|--:|--:|\n",
          f);
    for (size_t k = 0; k < n; k++) {
        const report_tap *t = &r->taps[idx[k]];
        fputs("| ", f);
        md(f, t->evaluation);
        fputs(" | ", f);
        md_code(f, t->name);
        fputs(" | ", f);
        md(f, t->status);
        fprintf(f, " | %s | %.6g | %s |\n", num(b[0], t->nmse), t->cosine, num(b[2], t->max_abs));
    }
    fputc('\n', f);
}

static void logits(FILE *f, const report_receipt *r) {
    char b[3][32];
    if (!r->n_logits) return;
    fputs("**Logits**\n\n| eval | status | positions | top-1 | top-5 | KLD mean | KLD p99 | KLD max |\n"
          "|---|---|--:|--:|--:|--:|--:|--:|\n",
          f);
    for (size_t i = 0; i < r->n_logits; i++) {
        const report_logits *l = &r->logits[i];
        fputs("| ", f);
        md(f, l->evaluation);
        fputs(" | ", f);
        md(f, l->status);
        fprintf(f, " | %lld | %.1f%% | %.1f%% | %s | %s | %s |\n", (long long)l->positions, 100 * l->top1_agree,
                100 * l->top5_overlap, num(b[0], l->kld_mean), num(b[1], l->kld_p99), num(b[2], l->kld_max));
    }
    fputc('\n', f);
}

static void replay(FILE *f, const report_receipt *r) {
    const report_replay *p = &r->replay;
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
        fprintf(f, " %s, limit %s)", num(b1, p->first_value), num(b2, p->first_limit));
    } else {
        fputs("no tap fails from the reference's inputs (every error is inherited)", f);
    }
    for (size_t i = 0; i < p->n_blocks; i++) {
        fputs(i ? ", " : "; blocks: ", f);
        md(f, p->blocks[i].evaluation);
        fprintf(f, " blk.%d %s", p->blocks[i].layer, p->blocks[i].local ? "local" : "inherited");
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

static void section(FILE *f, const report_receipt *r, int idx, int numbered) {
    char b1[32], b2[32];
    const parity_compare_counts *c = &r->counts;
    fputs("## ", f);
    if (numbered) fprintf(f, "%d. ", idx);
    fprintf(f, "%s \xe2\x80\x94 ", verdict(r));
    md(f, base_name(r->model_path ? r->model_path : r->file));
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
        fprintf(f, " = %s, limit %s\n\n", num(b1, r->div_value), num(b2, r->div_limit));
    }
    fprintf(f,
            "**Taps:** %lld compared: %lld pass (%lld bit-identical), %lld fail, %lld shape mismatch; "
            "%lld only in subject, %lld only in reference, %lld skipped by policy\n\n",
            (long long)c->compared, (long long)c->pass, (long long)c->bit_identical, (long long)c->fail,
            (long long)c->shape_mismatch, (long long)c->missing_reference, (long long)c->missing_subject,
            (long long)c->policy_skip);
    hints(f, r);
    growth(f, r);
    failing(f, r);
    worst(f, r);
    logits(f, r);
    replay(f, r);
}

static void summary(FILE *f, const report_receipt *const *rs, size_t n) {
    fputs("| # | verdict | model | subject \xe2\x86\x92 reference | policy | compared | fail | first divergence "
          "| hints |\n"
          "|--:|---|---|---|---|--:|--:|---|---|\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const report_receipt *r = rs[i];
        fprintf(f, "| %zu | %s | ", i + 1, verdict(r));
        md(f, base_name(r->model_path ? r->model_path : r->file));
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
    size_t pass = report_count_pass(rs, n);
    if (n > 1) {
        fprintf(f, "# bitparity report: %s (%zu of %zu receipts pass)\n\n", pass == n ? "PASS" : "FAIL", pass, n);
        summary(f, rs, n);
    }
    for (size_t i = 0; i < n; i++) section(f, rs[i], (int)i + 1, n > 1);
    if (fflush(f) || ferror(f)) return bn_error_set(err, BN_ERR_IO, "writing the Markdown report failed");
    return BN_OK;
}
