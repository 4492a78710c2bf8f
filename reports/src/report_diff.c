/* report_diff.c — a receipt against its baseline, tap by tap: the changes a
 * regression report shows, classified and sorted once for both renderers;
 * see report_model.h. Taps pair by (evaluation, name) through one sort of
 * each side, so a receipt of tens of thousands of taps pairs in n log n. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_model.h"

static const column change_cols[CHG_COLS] = {
    {"entry", 0},       {"eval", 0},        {"tap", 0},        {"change", 0},           {"verdict", 0},
    {"NMSE before", 1}, {"NMSE after", 1},  {"NMSE \xc3\x97", 1}, {"NMSE \xce\x94", 1}, {"max abs before", 1},
    {"max abs after", 1}, {"cosine before", 1}, {"cosine after", 1}};
static const column entry_cols[ENT_COLS] = {{"entry", 0},      {"change", 0},     {"verdict", 0},
                                            {"first divergence before", 0}, {"first divergence after", 0},
                                            {"regressed", 1},  {"degraded", 1},   {"fixed", 1},
                                            {"improved", 1}};

static const char *const change_names[CHANGE_KINDS] = {"regression", "degraded", "new",      "gone",
                                                       "fixed",      "improved", "unchanged"};

const char *change_name(change_kind k) { return k < CHANGE_KINDS ? change_names[k] : "?"; }

/* A tap with a verdict: compared, or failed on its shape. */
static int present(const report_tap *t) { return t && (t->compared || t->failed); }

/* after's NMSE / before's, with the edge cases of tap_change.ratio. */
static double nmse_ratio(double before, double after) {
    if (isnan(before) && isnan(after)) return 1;
    if (isnan(after)) return INFINITY;
    if (isnan(before)) return 0;
    if (before == after) return 1;
    if (before == 0) return INFINITY;
    return after / before;
}

static change_kind classify(const report_tap *b, const report_tap *a, double factor, double *ratio) {
    *ratio = NAN;
    if (!present(b) && !present(a)) return CHANGE_SAME;
    if (!present(b)) return CHANGE_ADDED;
    if (!present(a)) return CHANGE_REMOVED;
    *ratio = nmse_ratio(b->compared ? b->nmse : NAN, a->compared ? a->nmse : NAN);
    if (!b->failed && a->failed) return CHANGE_REGRESSED;
    if (b->failed && !a->failed) return CHANGE_FIXED;
    if (*ratio >= factor) return CHANGE_DEGRADED;
    if (*ratio <= 1 / factor) return CHANGE_IMPROVED;
    return CHANGE_SAME;
}

static int by_tap_key(const void *x, const void *y) {
    const report_tap *a = *(const report_tap *const *)x, *b = *(const report_tap *const *)y;
    int c = strcmp(a->evaluation, b->evaluation);
    c = c ? c : strcmp(a->name, b->name);
    return c ? c : (a < b ? -1 : a > b);
}

/* The taps of r by (evaluation, name); NULL (with *n 0) for none. */
static const report_tap **sorted_taps(const report_receipt *r, size_t *n, int *nomem) {
    *n = r ? r->n_taps : 0;
    if (!*n) return NULL;
    const report_tap **s = malloc(*n * sizeof *s);
    if (!s) {
        *nomem = 1;
        return NULL;
    }
    for (size_t i = 0; i < *n; i++) s[i] = &r->taps[i];
    qsort(s, *n, sizeof *s, by_tap_key);
    return s;
}

/* Sorts worst first: by kind, then the larger change (a regression's or a
 * degradation's growth, a fix's or an improvement's shrinkage), then entry
 * and receipt order. */
static int by_severity(const void *x, const void *y) {
    const tap_change *a = x, *b = y;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    double ra = isnan(a->ratio) ? 1 : a->ratio, rb = isnan(b->ratio) ? 1 : b->ratio;
    if (a->kind == CHANGE_FIXED || a->kind == CHANGE_IMPROVED) ra = -ra, rb = -rb;
    if (ra != rb) return ra > rb ? -1 : 1;
    if (a->entry != b->entry) return a->entry < b->entry ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* Pairs the taps of one entry and appends its changes to d->changes
 * (capacity enough for both sides' taps). */
static void pair_taps(report_diff *d, size_t e, const report_tap **b, size_t nb, const report_tap **a, size_t na) {
    const report_receipt *after = d->entries[e].after, *before = d->entries[e].before;
    size_t i = 0, j = 0;
    while (i < nb || j < na) {
        int c = i == nb ? 1 : j == na ? -1 : by_tap_key(&b[i], &a[j]);
        /* by_tap_key breaks ties by address: equal keys compare as names */
        if (i < nb && j < na && !strcmp(b[i]->evaluation, a[j]->evaluation) && !strcmp(b[i]->name, a[j]->name)) c = 0;
        const report_tap *tb = c <= 0 ? b[i] : NULL, *ta = c >= 0 ? a[j] : NULL;
        i += c <= 0, j += c >= 0;
        double ratio;
        change_kind k = classify(tb, ta, d->factor, &ratio);
        if (k == CHANGE_SAME) continue;
        d->entries[e].n_kind[k]++;
        d->changes[d->n_changes++] = (tap_change){
            .before = tb, .after = ta, .kind = k, .ratio = ratio, .entry = e,
            .order = ta ? (size_t)(ta - after->taps) : (size_t)(tb - before->taps)};
    }
}

/* pass and skipped are good verdicts, fail and error bad ones. */
static int bad_verdict(const char *v) { return !strcmp(v, "fail") || !strcmp(v, "error"); }

static change_kind entry_kind(const entry_diff *e) {
    if (!e->verdict_before) return CHANGE_ADDED;
    if (!e->verdict_after) return CHANGE_REMOVED;
    if (!bad_verdict(e->verdict_before) && bad_verdict(e->verdict_after)) return CHANGE_REGRESSED;
    if (bad_verdict(e->verdict_before) && !bad_verdict(e->verdict_after)) return CHANGE_FIXED;
    if (e->n_kind[CHANGE_REGRESSED]) return CHANGE_REGRESSED; /* a tap crossed its verdict */
    if (e->n_kind[CHANGE_DEGRADED]) return CHANGE_DEGRADED;
    if (e->n_kind[CHANGE_FIXED] || e->n_kind[CHANGE_IMPROVED]) return CHANGE_IMPROVED;
    return CHANGE_SAME;
}

/* "pass -> fail" for a tap or a receipt; "—" for an absent side. */
static char *arrow(const char *before, const char *after) {
    return report_format2("%s \xe2\x86\x92 %s", before ? before : "\xe2\x80\x94", after ? after : "\xe2\x80\x94");
}

/* A tap's verdict, NULL when it has none. */
static const char *verdict_of_tap(const report_tap *t) { return !present(t) ? NULL : t->failed ? "fail" : "pass"; }

static void change_row(cell *c, const report_diff *d, const tap_change *t, bn_error *err, bn_status *st) {
    const report_tap *b = t->before, *a = t->after, *any = a ? a : b;
    int bad = t->kind == CHANGE_REGRESSED || t->kind == CHANGE_DEGRADED;
    c[CHG_ENTRY] = cell_text(d->entries[t->entry].name);
    c[CHG_EVAL] = cell_text(any->evaluation);
    c[CHG_TAP] = (cell){.kind = CELL_CODE, .text = any->name};
    c[CHG_CHANGE] = (cell){.kind = CELL_TEXT, .text = change_name(t->kind), .strong = t->kind == CHANGE_REGRESSED};
    c[CHG_VERDICT] = (cell){.kind = CELL_TEXT, .strong = bad};
    cell_own(&c[CHG_VERDICT], arrow(verdict_of_tap(b), verdict_of_tap(a)), err, st);
    double nb = b && b->compared ? b->nmse : NAN, na = a && a->compared ? a->nmse : NAN;
    c[CHG_NMSE_BEFORE] = b && b->compared ? cell_num(CELL_NUM, nb) : cell_text(NULL);
    c[CHG_NMSE_AFTER] = a && a->compared ? cell_num(CELL_NUM, na) : cell_text(NULL);
    /* a ratio only between two numbers: a NaN or a shape mismatch has none */
    c[CHG_RATIO] = isnan(t->ratio) || isnan(nb) || isnan(na) ? cell_text(NULL) : cell_num(CELL_RATIO, t->ratio);
    c[CHG_RATIO].strong = bad;
    c[CHG_DELTA] = isnan(nb) || isnan(na) ? cell_text(NULL) : cell_num(CELL_DELTA, na - nb);
    c[CHG_MAX_ABS_BEFORE] = b && b->compared ? cell_num(CELL_NUM, b->max_abs) : cell_text(NULL);
    c[CHG_MAX_ABS_AFTER] = a && a->compared ? cell_num(CELL_NUM, a->max_abs) : cell_text(NULL);
    c[CHG_COSINE_BEFORE] = b && b->compared ? cell_num(CELL_G6, b->cosine) : cell_text(NULL);
    c[CHG_COSINE_AFTER] = a && a->compared ? cell_num(CELL_G6, a->cosine) : cell_text(NULL);
}

static cell divergence_cell(const report_receipt *r, const char *note) {
    if (!r) return cell_text(note);
    if (!r->has_divergence) return cell_text(r->pass ? "none" : r->diagnosis ? r->diagnosis : NULL);
    return (cell){.kind = CELL_TEXT, .text = r->div_evaluation, .code = r->div_tap};
}

static void entry_row(cell *c, const entry_diff *e, bn_error *err, bn_status *st) {
    c[ENT_ENTRY] = cell_text(e->name);
    c[ENT_CHANGE] = (cell){.kind = CELL_TEXT, .text = change_name(e->kind), .strong = e->kind == CHANGE_REGRESSED};
    c[ENT_VERDICT] = cell_text(NULL);
    cell_own(&c[ENT_VERDICT], arrow(e->verdict_before, e->verdict_after), err, st);
    c[ENT_DIV_BEFORE] = divergence_cell(e->before, e->note_before);
    c[ENT_DIV_AFTER] = divergence_cell(e->after, e->note_after);
    c[ENT_REGRESSED] = (cell){.kind = CELL_INT, .i = (long long)e->n_kind[CHANGE_REGRESSED]};
    c[ENT_DEGRADED] = (cell){.kind = CELL_INT, .i = (long long)e->n_kind[CHANGE_DEGRADED]};
    c[ENT_FIXED] = (cell){.kind = CELL_INT, .i = (long long)e->n_kind[CHANGE_FIXED]};
    c[ENT_IMPROVED] = (cell){.kind = CELL_INT, .i = (long long)e->n_kind[CHANGE_IMPROVED]};
}

static void count(report_diff *d) {
    report_diff_counts *c = &d->counts;
    c->entries = d->n;
    for (size_t i = 0; i < d->n; i++) {
        const entry_diff *e = &d->entries[i];
        size_t *slot[CHANGE_KINDS] = {&c->regressed, &c->degraded, &c->added, &c->removed, &c->fixed, &c->improved, NULL};
        if (slot[e->kind]) ++*slot[e->kind];
        c->taps_regressed += e->n_kind[CHANGE_REGRESSED], c->taps_degraded += e->n_kind[CHANGE_DEGRADED];
        c->taps_fixed += e->n_kind[CHANGE_FIXED], c->taps_improved += e->n_kind[CHANGE_IMPROVED];
        c->taps_added += e->n_kind[CHANGE_ADDED], c->taps_removed += e->n_kind[CHANGE_REMOVED];
    }
}

bn_status report_diff_build(const report_pair *pairs, size_t n, double factor, report_diff *d, bn_error *err) {
    *d = (report_diff){.factor = factor, .n = n};
    if (!pairs || !n) return bn_error_set(err, BN_ERR_INVALID, "report: no receipts to compare with a baseline");
    if (!(factor > 1) || isinf(factor))
        return bn_error_set(err, BN_ERR_INVALID, "report: the degradation factor must be a number above 1, got %g", factor);
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        const report_pair *p = &pairs[i];
        if (!p->baseline && !p->current && !p->baseline_verdict && !p->current_verdict)
            return bn_error_set(err, BN_ERR_INVALID, "report: entry %zu has neither a baseline nor a current receipt", i);
        if (!p->baseline && !p->current && !p->entry)
            return bn_error_set(err, BN_ERR_INVALID, "report: entry %zu has no receipt and no name", i);
        cap += (pairs[i].baseline ? pairs[i].baseline->n_taps : 0) + (pairs[i].current ? pairs[i].current->n_taps : 0);
    }
    d->entries = calloc(n, sizeof *d->entries);
    d->changes = cap ? malloc(cap * sizeof *d->changes) : NULL;
    if (!d->entries || (cap && !d->changes)) {
        report_diff_free(d);
        return bn_error_nomem(err, n * sizeof *d->entries + cap * sizeof *d->changes, "report: the baseline comparison");
    }
    bn_status st = BN_OK;
    for (size_t i = 0; i < n && !st; i++) {
        entry_diff *e = &d->entries[i];
        const report_pair *p = &pairs[i];
        e->before = p->baseline, e->after = p->current;
        e->verdict_before = e->before ? (e->before->pass ? "pass" : "fail") : p->baseline_verdict;
        e->verdict_after = e->after ? (e->after->pass ? "pass" : "fail") : p->current_verdict;
        e->note_before = e->before ? NULL : p->baseline_note, e->note_after = e->after ? NULL : p->current_note;
        const report_receipt *r = e->after ? e->after : e->before;
        e->name = p->entry ? p->entry : report_base_name(r->model_path ? r->model_path : r->file);
        size_t nb, na;
        int nomem = 0;
        const report_tap **b = sorted_taps(e->before, &nb, &nomem), **a = sorted_taps(e->after, &na, &nomem);
        if (nomem) st = bn_error_nomem(err, (nb + na) * sizeof *a, "report: the taps of entry %s", e->name);
        else pair_taps(d, i, b, nb, a, na);
        free(b), free(a);
    }
    if (!st && d->n_changes) qsort(d->changes, d->n_changes, sizeof *d->changes, by_severity); /* changes may be NULL */
    for (size_t k = d->n_changes; k-- > 0;) d->entries[d->changes[k].entry].worst = &d->changes[k];
    for (size_t i = 0; i < n; i++) d->entries[i].kind = entry_kind(&d->entries[i]);
    count(d);
    cell *ce = table_alloc(&d->entry_table, "Entries", entry_cols, n, ENT_COLS, err, &st);
    cell *cc = table_alloc(&d->change_table, "Changed taps", change_cols, d->n_changes, CHG_COLS, err, &st);
    for (size_t i = 0; ce && !st && i < n; i++) entry_row(&ce[i * ENT_COLS], &d->entries[i], err, &st);
    for (size_t k = 0; cc && !st && k < d->n_changes; k++) change_row(&cc[k * CHG_COLS], d, &d->changes[k], err, &st);
    if (st) report_diff_free(d);
    return st;
}

void report_diff_free(report_diff *d) {
    report_table_free(&d->entry_table);
    report_table_free(&d->change_table);
    free(d->entries);
    free(d->changes);
    d->entries = NULL, d->changes = NULL;
}

const char *diff_verdict(const report_diff *d) {
    const report_diff_counts *c = &d->counts;
    return c->regressed ? "REGRESSION"
           : c->degraded ? "DEGRADED"
           : c->fixed    ? "FIXED"
           : c->improved ? "IMPROVED"
           : c->added || c->removed ? "CHANGED"
                                    : "UNCHANGED";
}

/* "tap nmse 0 -> 0.467 (x inf)" parts of the headline. */
static void ink_change(const report_ink *k, const tap_change *t) {
    const report_tap *any = t->after ? t->after : t->before;
    char b1[32], b2[32];
    k->text(k->f, any->evaluation);
    fputc(' ', k->f);
    k->code(k->f, any->name);
    fputs(": ", k->f);
    const char *vb = verdict_of_tap(t->before), *va = verdict_of_tap(t->after);
    if (t->kind == CHANGE_ADDED || t->kind == CHANGE_REMOVED) {
        fprintf(k->f, "%s (%s)", change_name(t->kind), vb ? vb : va);
        return;
    }
    fprintf(k->f, "%s%s \xe2\x86\x92 %s%s", k->strong_on, vb, va, k->strong_off);
    if (t->before->compared && t->after->compared)
        fprintf(k->f, ", NMSE %s \xe2\x86\x92 %s", report_num(b1, t->before->nmse), report_num(b2, t->after->nmse));
    if (isinf(t->ratio)) fputs(t->before->compared && t->before->nmse == 0 ? " (was exact)" : "", k->f);
    else if (!isnan(t->ratio) && t->ratio != 1) fprintf(k->f, " (\xc3\x97%.3g)", t->ratio);
}

void ink_diff_headline(const report_ink *k, const report_diff *d) {
    const report_diff_counts *c = &d->counts;
    FILE *f = k->f;
    fputs(k->strong_on, f);
    if (d->n == 1) fputs(c->regressed ? "Regressed" : "No regression", f);
    else fprintf(f, "%zu of %zu entries regressed", c->regressed, d->n);
    fprintf(f, "%s: %zu tap%s went from pass to fail, %zu degraded (NMSE \xc3\x97%g or more), %zu fixed, %zu improved",
            k->strong_off, c->taps_regressed, c->taps_regressed == 1 ? "" : "s", c->taps_degraded, d->factor,
            c->taps_fixed, c->taps_improved);
    if (c->taps_added || c->taps_removed) fprintf(f, ", %zu new, %zu gone", c->taps_added, c->taps_removed);
    if (c->added || c->removed) fprintf(f, "; entries: %zu new, %zu gone", c->added, c->removed);
    if (d->n_changes) {
        fputs(". Most severe: ", f);
        if (d->n > 1) k->text(f, d->entries[d->changes[0].entry].name), fputc(' ', f);
        ink_change(k, &d->changes[0]);
    } else {
        fputs(". No tap changed its verdict or its NMSE by the factor", f);
    }
    fputc('.', f);
}

bn_status diff_current_doc(const report_diff *d, report_doc *doc, size_t *n, bn_error *err) {
    *doc = (report_doc){0};
    *n = 0;
    const report_receipt **now = malloc(d->n * sizeof *now);
    if (!now) return bn_error_nomem(err, d->n * sizeof *now, "report: the current receipts");
    for (size_t i = 0; i < d->n; i++)
        if (d->entries[i].after) now[(*n)++] = d->entries[i].after;
    bn_status st = *n ? report_doc_build(now, *n, "report_render_baseline", doc, err) : BN_OK;
    free(now);
    return st;
}

bn_status report_render_baseline(const report_pair *pairs, size_t n, double factor, report_format fmt, FILE *f,
                                 report_diff_counts *counts, bn_error *err) {
    if (!f) return bn_error_set(err, BN_ERR_INVALID, "report_render_baseline: no output stream");
    report_diff d;
    bn_status st = report_diff_build(pairs, n, factor, &d, err);
    if (st) return st;
    if (counts) *counts = d.counts;
    st = fmt == REPORT_HTML ? html_render_baseline(&d, f, err) : md_render_baseline(&d, f, err);
    report_diff_free(&d);
    return st;
}
