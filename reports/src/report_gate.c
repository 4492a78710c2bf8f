/* report_gate.c — the gate matrix as Markdown and HTML; see gate_report.h. */
#include "reports/gate_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/atomic_file.h"
#include "report_model.h"

/* How a summary's verdict is shown: the worst entry's (error, then fail). */
static const char *overall(const parity_gate_summary *s) {
    const int code = parity_gate_exit_code(s);
    return code == 2 ? "ERROR" : code == 1 ? "FAIL" : "PASS";
}

static const char *md_verdict(parity_gate_verdict v) {
    switch (v) {
    case PARITY_GATE_PASS: return "\xe2\x9c\x85 pass";       /* ✅ */
    case PARITY_GATE_FAIL: return "\xe2\x9d\x8c **fail**";   /* ❌ */
    case PARITY_GATE_SKIPPED: return "\xe2\x8f\xad skipped"; /* ⏭ */
    default: return "\xe2\x9a\xa0\xef\xb8\x8f **error**";      /* ⚠️ */
    }
}

/* The limits an entry is judged by: the policy, or the thresholds. */
static void limits_text(const parity_gate_entry *e, char *buf, size_t size) {
    if (e->kind == PARITY_GATE_PARITY) {
        snprintf(buf, size, "%s", e->policy ? e->policy : "");
        return;
    }
    size_t at = 0;
    buf[0] = '\0';
    const double v[3] = {e->ppl_max, e->kld_mean_max, e->top1_min};
    const char *const k[3] = {"ppl \xe2\x89\xa4 ", "kld_mean \xe2\x89\xa4 ", "top1 \xe2\x89\xa5 "};
    for (int i = 0; i < 3 && at < size; i++)
        if (!isnan(v[i])) at += (size_t)snprintf(buf + at, size - at, "%s%s%.6g", at ? ", " : "", k[i], v[i]);
}

static void render_md(const parity_gate_summary *s, FILE *f) {
    fprintf(f, "## bitparity gate: %s %s\n\n", parity_gate_exit_code(s) ? "\xe2\x9d\x8c" : "\xe2\x9c\x85", overall(s));
    fputs("Manifest ", f);
    report_md_code(f, s->manifest);
    if (s->shard_count) fprintf(f, ", shard %d/%d", s->shard_index, s->shard_count);
    fprintf(f, ": %zu entries: %zu pass, %zu fail, %zu skipped, %zu error.\n\n", s->n, s->counts[PARITY_GATE_PASS],
            s->counts[PARITY_GATE_FAIL], s->counts[PARITY_GATE_SKIPPED], s->counts[PARITY_GATE_ERROR]);
    fputs("| # | entry | verdict | model | reference | policy / thresholds | result |\n", f);
    fputs("|---:|---|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < s->n; i++) {
        const parity_gate_entry *e = &s->entries[i];
        char lim[160];
        limits_text(e, lim, sizeof lim);
        fprintf(f, "| %lld | ", (long long)e->index + 1);
        const char *link = e->detail ? e->detail : e->receipt;
        if (link) fputc('[', f);
        report_md_code(f, e->name);
        if (link) fprintf(f, "](%s)", link); /* a path the summary reader checked: entries/NAME/FILE */
        fprintf(f, " | %s | ", md_verdict(e->verdict));
        report_md_code(f, e->model);
        fputs(" | ", f);
        report_md_code(f, e->reference);
        fputs(" | ", f);
        report_md_text(f, lim[0] ? lim : NULL);
        fputs(" | ", f);
        report_md_text(f, e->message);
        fputs(" |\n", f);
    }
}

static const char gate_css[] =
    ".badge.skipped{background:#6e7781}.badge.error{background:#bf8700}"
    "tr.fail td:first-child{border-left:3px solid #cf222e}tr.error td:first-child{border-left:3px solid #bf8700}"
    "td.msg{min-width:220px;max-width:420px;word-break:break-word}"
    /* entry names and verdicts read whole; long paths break after a '/' (<wbr>) before a '-' */
    "td.entry,td.verdict{white-space:nowrap}";

/* A path, escaped, with a break opportunity after each '/'. */
static void html_path(FILE *f, const char *path) {
    if (!path) return;
    char seg[256];
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, "/");
        n += p[n] == '/';
        if (n >= sizeof seg) n = sizeof seg - 1; /* a long segment: split, still escaped */
        memcpy(seg, p, n), seg[n] = '\0';
        report_html_text(f, seg);
        p += n;
        if (seg[n - 1] == '/') fputs("<wbr>", f);
    }
}

static void html_badge(FILE *f, const char *cls, const char *word) {
    fprintf(f, "<span class=\"badge %s\">%s</span>", cls, word);
}

static void render_html(const parity_gate_summary *s, FILE *f) {
    const int code = parity_gate_exit_code(s);
    const char *cls = code == 2 ? "error" : code == 1 ? "fail" : "pass";
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>bitparity gate: ",
          f);
    fprintf(f, "%s \xe2\x80\x94 ", overall(s));
    report_html_text(f, s->manifest);
    fprintf(f, "</title><style>%s%s</style></head>\n<body><main><h1>bitparity gate ", report_html_css(), gate_css);
    html_badge(f, cls, overall(s));
    fputs("</h1><p class=\"sub\">manifest <code>", f);
    report_html_text(f, s->manifest);
    fputs("</code>", f);
    if (s->shard_count) fprintf(f, ", shard %d/%d", s->shard_index, s->shard_count);
    fprintf(f, " &#183; %zu entries</p><p class=\"chips\"><span class=\"good\">%zu pass</span>"
               "<span class=\"%s\">%zu fail</span><span>%zu skipped</span><span class=\"%s\">%zu error</span></p>\n",
            s->n, s->counts[PARITY_GATE_PASS], s->counts[PARITY_GATE_FAIL] ? "bad" : "", s->counts[PARITY_GATE_FAIL],
            s->counts[PARITY_GATE_SKIPPED], s->counts[PARITY_GATE_ERROR] ? "bad" : "", s->counts[PARITY_GATE_ERROR]);
    fputs("<section class=\"receipt\"><h2>Gate matrix</h2><table><tr><th class=\"num\">#</th><th>entry</th>"
          "<th>verdict</th><th>model</th><th>reference / text</th><th>policy / thresholds</th><th>result</th></tr>\n",
          f);
    for (size_t i = 0; i < s->n; i++) {
        const parity_gate_entry *e = &s->entries[i];
        const char *v = parity_gate_verdict_name(e->verdict), *link = e->detail ? e->detail : e->receipt;
        char lim[160], word[16];
        limits_text(e, lim, sizeof lim);
        snprintf(word, sizeof word, "%s", v);
        for (char *p = word; *p; p++) *p = (char)(*p - 32 * (*p >= 'a' && *p <= 'z'));
        fprintf(f, "<tr class=\"%s\"><td class=\"num\">%lld</td><td class=\"entry\">", v, (long long)e->index + 1);
        if (link) fputs("<a href=\"", f), report_html_text(f, link), fputs("\">", f);
        fputs("<code>", f), report_html_text(f, e->name), fputs("</code>", f);
        if (link) fputs("</a>", f);
        fputs("</td><td class=\"verdict\">", f);
        html_badge(f, v, word);
        fputs("</td><td><code>", f), html_path(f, e->model);
        fputs("</code></td><td><code>", f), html_path(f, e->reference);
        fputs("</code></td><td>", f), report_html_text(f, lim[0] ? lim : NULL);
        fputs("</td><td class=\"msg\">", f), report_html_text(f, e->message);
        fputs("</td></tr>\n", f);
    }
    fputs("</table></section><footer>Each entry's name links to its detail page (the receipt's report) or its "
          "receipt. Exit code: 0 all pass (skipped entries pass), 1 any failure, 2 any error.</footer>"
          "</main></body></html>\n",
          f);
}

bn_status report_gate_render(const parity_gate_summary *s, report_format fmt, FILE *f, bn_error *err) {
    if (fmt == REPORT_HTML) render_html(s, f);
    else render_md(s, f);
    if (fflush(f) || ferror(f)) return bn_error_set(err, BN_ERR_IO, "writing the gate summary failed");
    return BN_OK;
}

/* One page into path, atomically: the summary (s) or a receipt's report (r). */
static bn_status write_page(const char *path, const parity_gate_summary *s, const report_receipt *r, report_format fmt,
                            bn_error *err) {
    bn_atomic_file *af;
    bn_status st = bn_atomic_file_open(path, &af, err);
    if (st) return st;
    FILE *f = bn_atomic_file_stream(af);
    st = s ? report_gate_render(s, fmt, f, err) : report_render(&r, 1, fmt, f, err);
    if (st) {
        bn_error_prefix(err, path);
        bn_atomic_file_abort(af);
        return st;
    }
    return bn_atomic_file_commit(af, err);
}

static char *join(const char *dir, const char *rel) {
    const size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

bn_status report_gate_write(const parity_gate_summary *s, const char *out_dir, int details, bn_error *err) {
    bn_status st = BN_OK;
    for (size_t i = 0; details && !st && i < s->n; i++) {
        const parity_gate_entry *e = &s->entries[i];
        if (e->kind != PARITY_GATE_PARITY || !e->receipt || !e->detail) continue;
        char *rp = join(out_dir, e->receipt), *dp = join(out_dir, e->detail);
        report_receipt *r = NULL;
        st = rp && dp ? report_load(rp, &r, err) : bn_error_nomem(err, 64, "paths");
        if (!st) st = write_page(dp, NULL, r, REPORT_HTML, err);
        report_receipt_free(r);
        free(rp), free(dp);
    }
    const char *names[2] = {"summary.md", "summary.html"};
    for (int k = 0; k < 2 && !st; k++) {
        char *p = join(out_dir, names[k]);
        st = p ? write_page(p, s, NULL, k ? REPORT_HTML : REPORT_MARKDOWN, err) : bn_error_nomem(err, 64, "paths");
        free(p);
    }
    return st;
}

/* ---- two summaries against each other ------------------------------------ */

/* path's folder with a trailing '/', "" for a bare file name. */
static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    const size_t n = slash ? (size_t)(slash - path + 1) : 0;
    char *dir = malloc(n + 1);
    if (dir) memcpy(dir, path, n), dir[n] = '\0';
    return dir;
}

/* One side of a pair: the entry's receipt (a parity entry that has one), or
 * its verdict and figures. */
static bn_status gate_side(const parity_gate_entry *e, const char *folder, report_receipt **receipt,
                           const char **verdict, char **note, bn_error *err) {
    if (!e) return BN_OK;
    *verdict = parity_gate_verdict_name(e->verdict);
    if (e->kind == PARITY_GATE_PARITY && e->receipt) {
        char *path = report_format2("%s%s", folder, e->receipt);
        if (!path) return bn_error_nomem(err, strlen(folder) + strlen(e->receipt), "report: a receipt's path");
        bn_status st = report_load(path, receipt, err);
        free(path);
        return st;
    }
    char buf[160] = "";
    if (e->kind == PARITY_GATE_PERPLEXITY && !isnan(e->ppl)) {
        int at = snprintf(buf, sizeof buf, "ppl %.6g", e->ppl); /* the figures measured: KLD and top-1 need a base */
        if (!isnan(e->kld_mean)) at += snprintf(buf + at, sizeof buf - (size_t)at, ", kld_mean %.3g", e->kld_mean);
        if (!isnan(e->top1)) snprintf(buf + at, sizeof buf - (size_t)at, ", top1 %.4g", e->top1);
    } else if (e->message) {
        snprintf(buf, sizeof buf, "%s", e->message);
    }
    if (buf[0] && !(*note = report_format2("%s%s", buf, ""))) return bn_error_nomem(err, sizeof buf, "report: a note");
    return BN_OK;
}

static const parity_gate_entry *gate_find(const parity_gate_summary *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->entries[i].name, name)) return &s->entries[i];
    return NULL;
}

bn_status report_gate_baseline_load(const char *old_path, const char *new_path, report_gate_baseline *b,
                                    bn_error *err) {
    *b = (report_gate_baseline){0};
    bn_status st = parity_gate_summary_load(old_path, &b->old, err);
    if (!st) st = parity_gate_summary_load(new_path, &b->now, err);
    if (st) {
        report_gate_baseline_free(b);
        return st;
    }
    const size_t cap = b->old->n + b->now->n;
    char *old_dir = folder_of(old_path), *new_dir = folder_of(new_path);
    b->pairs = calloc(cap ? cap : 1, sizeof *b->pairs);
    b->receipts = calloc(2 * cap + 1, sizeof *b->receipts);
    b->notes = calloc(2 * cap + 1, sizeof *b->notes);
    if (!old_dir || !new_dir || !b->pairs || !b->receipts || !b->notes)
        st = bn_error_nomem(err, cap * (sizeof *b->pairs + 4 * sizeof(void *)), "report: the gate comparison");
    for (size_t i = 0; !st && i < cap; i++) {
        const parity_gate_entry *now = i < b->now->n ? &b->now->entries[i] : NULL, *old;
        if (now) {
            old = gate_find(b->old, now->name);
        } else { /* the baseline's entries that are gone */
            old = &b->old->entries[i - b->now->n];
            if (gate_find(b->now, old->name)) continue;
        }
        report_pair *p = &b->pairs[b->n];
        const size_t k = 2 * b->n++;
        p->entry = now ? now->name : old->name;
        st = gate_side(old, old_dir, &b->receipts[k], &p->baseline_verdict, &b->notes[k], err);
        if (!st) st = gate_side(now, new_dir, &b->receipts[k + 1], &p->current_verdict, &b->notes[k + 1], err);
        p->baseline = b->receipts[k], p->current = b->receipts[k + 1];
        p->baseline_note = b->notes[k], p->current_note = b->notes[k + 1];
    }
    free(old_dir), free(new_dir);
    if (!st && !b->n) st = bn_error_set(err, BN_ERR_FORMAT, "%s: the gate summaries have no entries", new_path);
    if (st) report_gate_baseline_free(b);
    return st;
}

void report_gate_baseline_free(report_gate_baseline *b) {
    if (!b) return;
    for (size_t i = 0; b->receipts && i < 2 * b->n; i++) report_receipt_free(b->receipts[i]);
    for (size_t i = 0; b->notes && i < 2 * b->n; i++) free(b->notes[i]);
    free(b->receipts), free(b->notes), free(b->pairs);
    parity_gate_summary_free(b->old), parity_gate_summary_free(b->now);
    *b = (report_gate_baseline){0};
}
