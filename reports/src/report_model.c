/* report_model.c — the tables of a report, built once from a receipt; see
 * report_model.h. */
#include "report_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity/next_checks.h"

/* Headings, shared by every renderer (a renderer may show fewer columns). */
static const column failing_cols[FAIL_COLS] = {
    {"eval", 0}, {"tap", 0}, {"status", 0}, {"metric", 0}, {"value", 1}, {"limit", 1}};
static const column worst_cols[WORST_COLS] = {{"eval", 0}, {"tap", 0},    {"status", 0}, {"nmse", 1},
                                              {"cosine", 1}, {"max abs", 1}, {"scale", 1}};
static const column logits_cols[LG_COLS] = {{"eval", 0},     {"status", 0},     {"positions", 1},
                                            {"top-1", 1},    {"top-5", 1},      {"KLD mean", 1},
                                            {"KLD median", 1}, {"KLD p99", 1}, {"KLD max", 1}};
static const column block_cols[BLOCK_COLS] = {{"eval", 0},
                                              {"block", 0},
                                              {"error", 0},
                                              {"blk.N.out NMSE compared", 1},
                                              {"replayed from the reference's input", 1}};
static const column summary_cols[SUM_COLS] = {
    {"#", 1},      {"verdict", 0}, {"model", 0},            {"subject \xe2\x86\x92 reference", 0}, {"policy", 0},
    {"compared", 1}, {"fail", 1},  {"first divergence", 0}, {"hints", 0},                          {"max KLD mean", 1}};

cell *table_alloc(table *t, const char *title, const column *cols, size_t n_rows, size_t n_cols, bn_error *err,
                  bn_status *st) {
    *t = (table){.title = title, .cols = cols, .n_cols = n_cols, .n_rows = n_rows};
    if (!n_rows || *st) return NULL;
    t->cells = calloc(n_rows * n_cols, sizeof *t->cells);
    if (!t->cells) *st = bn_error_nomem(err, n_rows * n_cols * sizeof *t->cells, "report: table %s of %zu rows", title, n_rows);
    return t->cells;
}

void report_table_free(table *t) {
    for (size_t i = 0; t->cells && i < t->n_rows * t->n_cols; i++) free(t->cells[i].owned);
    free(t->cells);
    t->cells = NULL;
}

void cell_own(cell *c, char *s, bn_error *err, bn_status *st) {
    c->owned = s;
    c->text = s;
    if (!s && !*st) *st = bn_error_nomem(err, 64, "report: the text of a table cell");
}

char *report_format2(const char *fmt, const char *a, const char *b) {
    int n = snprintf(NULL, 0, fmt, a, b);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) snprintf(s, (size_t)n + 1, fmt, a, b);
    return s;
}

static void failing_rows(const report_receipt *r, table *t, bn_error *err, bn_status *st) {
    size_t n = 0;
    for (size_t i = 0; i < r->n_taps; i++) n += r->taps[i].failed != 0;
    cell *c = table_alloc(t, "Failing taps", failing_cols, n, FAIL_COLS, err, st);
    for (size_t i = 0; c && i < r->n_taps; i++) {
        const report_tap *tp = &r->taps[i];
        if (!tp->failed) continue;
        c[FAIL_EVAL] = cell_text(tp->evaluation);
        c[FAIL_TAP] = (cell){.kind = CELL_CODE, .text = tp->name};
        c[FAIL_STATUS] = cell_text(tp->status);
        c[FAIL_METRIC] = cell_text(tp->failed_metric);
        c[FAIL_VALUE] = cell_num(CELL_NUM, tp->failed_value);
        c[FAIL_LIMIT] = cell_num(CELL_NUM, tp->failed_limit);
        c += FAIL_COLS;
    }
}

static void worst_rows(const report_receipt *r, report_model *m, bn_error *err, bn_status *st) {
    size_t idx[MODEL_WORST_ROWS], n = report_worst_taps(r, idx, MODEL_WORST_ROWS);
    m->all_zero = !n || r->taps[idx[0]].nmse == 0;
    cell *c = table_alloc(&m->worst, "Worst taps by NMSE", worst_cols, m->all_zero ? 0 : n, WORST_COLS, err, st);
    for (size_t k = 0; c && k < m->worst.n_rows; k++, c += WORST_COLS) {
        const report_tap *tp = &r->taps[idx[k]];
        c[WORST_EVAL] = cell_text(tp->evaluation);
        c[WORST_TAP] = (cell){.kind = CELL_CODE, .text = tp->name};
        c[WORST_STATUS] = (cell){.kind = CELL_TEXT, .text = tp->failed ? "fail" : "pass", .strong = tp->failed};
        c[WORST_NMSE] = cell_num(CELL_NUM, tp->nmse);
        c[WORST_COSINE] = cell_num(CELL_G6, tp->cosine);
        c[WORST_MAX_ABS] = cell_num(CELL_NUM, tp->max_abs);
        c[WORST_SCALE] = cell_num(CELL_NUM, tp->scale);
    }
}

static void logits_rows(const report_receipt *r, table *t, bn_error *err, bn_status *st) {
    cell *c = table_alloc(t, "Logits", logits_cols, r->n_logits, LG_COLS, err, st);
    for (size_t i = 0; c && i < r->n_logits; i++, c += LG_COLS) {
        const report_logits *l = &r->logits[i];
        c[LG_EVAL] = cell_text(l->evaluation);
        c[LG_STATUS] = cell_text(l->status);
        c[LG_POSITIONS] = (cell){.kind = CELL_INT, .i = (long long)l->positions};
        c[LG_TOP1] = cell_num(CELL_PCT, l->top1_agree);
        c[LG_TOP5] = cell_num(CELL_PCT, l->top5_overlap);
        c[LG_KLD_MEAN] = cell_num(CELL_NUM, l->kld_mean);
        c[LG_KLD_MEDIAN] = cell_num(CELL_NUM, l->kld_median);
        c[LG_KLD_P99] = cell_num(CELL_NUM, l->kld_p99);
        c[LG_KLD_MAX] = cell_num(CELL_NUM, l->kld_max);
    }
}

static void block_rows(const report_receipt *r, table *t, bn_error *err, bn_status *st) {
    const report_replay *p = &r->replay;
    cell *c = table_alloc(t, "Replayed blocks", block_cols, p->present ? p->n_blocks : 0, BLOCK_COLS, err, st);
    for (size_t i = 0; c && i < t->n_rows; i++, c += BLOCK_COLS) {
        const report_block *b = &p->blocks[i];
        c[BLOCK_EVAL] = cell_text(b->evaluation);
        char name[24];
        snprintf(name, sizeof name, "blk.%d", b->layer);
        c[BLOCK_NAME] = cell_text(NULL);
        cell_own(&c[BLOCK_NAME], strdup(name), err, st);
        c[BLOCK_ERROR] = (cell){.kind = CELL_TEXT, .text = b->local ? "local" : "inherited", .strong = b->local};
        c[BLOCK_NMSE_COMPARED] = cell_num(CELL_NUM, b->nmse_compared);
        c[BLOCK_NMSE_REPLAYED] = cell_num(CELL_NUM, b->nmse_replayed);
    }
}

bn_status report_model_build(const report_receipt *r, report_model *m, bn_error *err) {
    *m = (report_model){.r = r};
    bn_status st = BN_OK;
    failing_rows(r, &m->failing, err, &st);
    worst_rows(r, m, err, &st);
    logits_rows(r, &m->logits, err, &st);
    block_rows(r, &m->blocks, err, &st);
    if (st) report_model_free(m);
    return st;
}

void report_model_free(report_model *m) {
    report_table_free(&m->failing), report_table_free(&m->worst);
    report_table_free(&m->logits), report_table_free(&m->blocks);
}

/* The hint names of r joined by ", " ("" when there are none). */
static char *hint_names(const report_receipt *r) {
    size_t n = 1;
    for (size_t h = 0; h < r->n_hints; h++) n += strlen(r->hints[h].name ? r->hints[h].name : "") + 2;
    char *s = malloc(n);
    if (!s) return NULL;
    s[0] = '\0';
    for (size_t h = 0; h < r->n_hints; h++) {
        if (h) strcat(s, ", ");
        strcat(s, r->hints[h].name ? r->hints[h].name : "");
    }
    return s;
}

static bn_status summary_build(const report_receipt *const *rs, size_t n, table *t, bn_error *err) {
    bn_status st = BN_OK;
    cell *c = table_alloc(t, "Summary", summary_cols, n, SUM_COLS, err, &st);
    for (size_t i = 0; c && i < n && !st; i++, c += SUM_COLS) {
        const report_receipt *r = rs[i];
        double kld = NAN;
        for (size_t k = 0; k < r->n_logits; k++)
            if (isnan(kld) || r->logits[k].kld_mean > kld) kld = r->logits[k].kld_mean;
        c[SUM_INDEX] = (cell){.kind = CELL_INDEX, .i = (long long)i + 1};
        c[SUM_VERDICT] = (cell){.kind = CELL_VERDICT, .i = r->pass};
        c[SUM_MODEL] = cell_text(report_base_name(r->model_path ? r->model_path : r->file));
        c[SUM_MODEL].note = report_base_name(r->file);
        c[SUM_SIDES] = cell_text(NULL);
        cell_own(&c[SUM_SIDES], report_format2("%s \xe2\x86\x92 %s", r->subject.producer ? r->subject.producer : "?",
                                       r->reference.producer ? r->reference.producer : "?"),
                 err, &st);
        c[SUM_POLICY] = cell_text(r->policy_name);
        c[SUM_COMPARED] = (cell){.kind = CELL_INT, .i = (long long)r->counts.compared};
        c[SUM_FAIL] = (cell){.kind = CELL_INT, .i = (long long)(r->counts.fail + r->counts.shape_mismatch)};
        c[SUM_DIVERGENCE] = r->has_divergence ? (cell){.kind = CELL_TEXT, .text = r->div_evaluation, .code = r->div_tap}
                                              : cell_text(r->diagnosis ? "see diagnosis" : NULL);
        c[SUM_HINTS] = cell_text(NULL);
        cell_own(&c[SUM_HINTS], hint_names(r), err, &st);
        c[SUM_KLD_MEAN] = isnan(kld) ? cell_text(NULL) : cell_num(CELL_NUM, kld);
    }
    if (st) report_table_free(t);
    return st;
}

bn_status report_doc_build(const report_receipt *const *rs, size_t n, const char *who, report_doc *d, bn_error *err) {
    *d = (report_doc){.n = n};
    if (!rs || !n) return bn_error_set(err, BN_ERR_INVALID, "%s: no receipts", who);
    bn_status st = report_models_build(rs, n, &d->models, err);
    if (!st && n > 1) st = summary_build(rs, n, &d->summary, err);
    if (st) {
        report_doc_free(d);
        return st;
    }
    d->pass = report_count_pass(rs, n);
    return BN_OK;
}

void report_doc_free(report_doc *d) {
    report_table_free(&d->summary);
    report_models_free(d->models, d->n);
    d->models = NULL;
}

/* ---- sentences ------------------------------------------------------------ */

static void ink_num(const report_ink *k, double v, int strong) {
    char b[32];
    fprintf(k->f, "%s%s%s", strong ? k->strong_on : "", report_num(b, v), strong ? k->strong_off : "");
}

/* "e0 `blk.0.ffn_act`": an evaluation and a tap. */
static void ink_at(const report_ink *k, const char *evaluation, const char *tap) {
    k->text(k->f, evaluation);
    fputc(' ', k->f);
    k->code(k->f, tap);
}

/* "nmse<sep>0.467, limit 1e-06", the value emphasized when `strong`. */
static void ink_measure(const report_ink *k, const char *metric, const char *sep, double value, int strong,
                        double limit) {
    k->text(k->f, metric);
    fputs(sep, k->f);
    ink_num(k, value, strong);
    fputs(", limit ", k->f);
    ink_num(k, limit, 0);
}

void ink_divergence(const report_ink *k, const report_receipt *r) {
    ink_at(k, r->div_evaluation, r->div_tap);
    if (r->div_layer >= 0) fprintf(k->f, " (layer %d)", r->div_layer);
    fputs(": ", k->f);
    ink_measure(k, r->div_metric, " = ", r->div_value, 1, r->div_limit);
}

void ink_replay(const report_ink *k, const report_replay *p) {
    fputs(k->head_on, k->f);
    fputs("Replay (", k->f);
    k->text(k->f, p->mode);
    fputs(" mode)", k->f);
    fputs(k->head_off, k->f);
    if (!p->first_tap) {
        fputs("no tap fails when computed from the reference's inputs: every error is inherited", k->f);
        return;
    }
    fputs("the error is born at ", k->f);
    ink_at(k, p->first_evaluation, p->first_tap);
    fputs(", which fails even from the reference's inputs (", k->f);
    ink_measure(k, p->first_metric, " ", p->first_value, 0, p->first_limit);
    fputc(')', k->f);
}

void ink_hints(const report_ink *k, const report_receipt *r) {
    if (!r->n_hints) return;
    fputs(k->hints_on, k->f);
    for (size_t i = 0; i < r->n_hints; i++) {
        const report_hint *h = &r->hints[i];
        fputs(k->hint_on, k->f);
        fputs(k->name_on, k->f), k->text(k->f, h->name), fputs(k->name_off, k->f);
        fputs(k->message_on, k->f), k->text(k->f, h->message), fputs(k->message_off, k->f);
        if (h->evidence) fputs(k->evidence_on, k->f), k->text(k->f, h->evidence), fputs(k->evidence_off, k->f);
        fputs(k->hint_off, k->f);
    }
    fputs(k->hints_off, k->f);
}

void ink_side(const report_ink *k, const report_side *s) {
    fputs(k->strong_on, k->f);
    k->text(k->f, s->producer);
    fputs(k->strong_off, k->f);
    if (s->version) fputc(' ', k->f), k->text(k->f, s->version);
    if (s->numerics || s->weight_type) {
        fputs(" (", k->f);
        k->text(k->f, s->numerics ? s->numerics : s->weight_type);
        if (s->numerics && s->weight_type) fputs(", ", k->f), k->text(k->f, s->weight_type);
        fputc(')', k->f);
    }
    if (s->fault && strcmp(s->fault, "none")) fputs(" fault ", k->f), k->text(k->f, s->fault);
}

bn_status report_models_build(const report_receipt *const *rs, size_t n, report_model **out, bn_error *err) {
    report_model *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return bn_error_nomem(err, (n ? n : 1) * sizeof *m, "report: the models of %zu receipts", n);
    for (size_t i = 0; i < n; i++) {
        bn_status st = report_model_build(rs[i], &m[i], err);
        if (st) {
            report_models_free(m, i);
            return st;
        }
    }
    *out = m;
    return BN_OK;
}

void report_models_free(report_model *m, size_t n) {
    if (!m) return;
    for (size_t i = 0; i < n; i++) report_model_free(&m[i]);
    free(m);
}

const char *report_num(char buf[32], double v) {
    if (isnan(v)) snprintf(buf, 32, "nan");
    else if (isinf(v)) snprintf(buf, 32, v > 0 ? "inf" : "-inf");
    else if (v == floor(v) && fabs(v) < 1e7) snprintf(buf, 32, "%.0f", v);
    else snprintf(buf, 32, "%.3g", v);
    return buf;
}

const char *report_base_name(const char *p) {
    const char *s = p ? strrchr(p, '/') : NULL;
    return s && s[1] ? s + 1 : p;
}

const char *cell_number(const cell *c, char buf[32]) {
    switch (c->kind) {
    case CELL_NUM: return report_num(buf, c->v);
    case CELL_G6: snprintf(buf, 32, "%.6g", c->v); return buf;
    case CELL_RATIO:
        if (isnan(c->v)) return strcpy(buf, "\xe2\x80\x94");
        if (isinf(c->v)) return strcpy(buf, "from 0");
        if (c->v == 0) return strcpy(buf, "to 0");
        snprintf(buf, 32, "\xc3\x97%.3g", c->v);
        return buf;
    case CELL_DELTA: snprintf(buf, 32, "%+.3g", c->v); return buf;
    case CELL_PCT: snprintf(buf, 32, "%.1f%%", 100 * c->v); return buf;
    case CELL_INT:
    case CELL_INDEX: snprintf(buf, 32, "%lld", c->i); return buf;
    default: return NULL;
    }
}

/* ---- what to check next ---------------------------------------------------- */

void ink_next_checks(const report_ink *k, const report_receipt *r) {
    if (r->pass || !r->has_divergence || !r->div_tap) return;
    const parity_next_checks *n = parity_next_checks_for(r->div_tap);
    fputs(r->n_hints ? k->next_folded_on : k->next_on, k->f);
    k->code(k->f, r->div_tap);
    fputs(" is ", k->f);
    k->text(k->f, strcmp(n->kind, "?") ? n->computes : "a tap of no kind bitparity knows");
    fputs(". No hint explained it; check, most likely first:", k->f);
    fputs(k->list_on, k->f);
    for (size_t i = 0; i < PARITY_NEXT_CHECKS_MAX && n->checks[i]; i++)
        fputs(k->item_on, k->f), k->text(k->f, n->checks[i]), fputs(k->item_off, k->f);
    fputs(k->list_off, k->f);
    fputs(r->n_hints ? k->next_folded_off : k->next_off, k->f);
}
