/* report_model.c — the tables of a report, built once from a receipt; see
 * report_model.h. */
#include "report_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cell *table_alloc(table *t, size_t n_rows, size_t n_cols, bn_error *err, bn_status *st) {
    t->n_cols = n_cols;
    t->n_rows = n_rows;
    if (!n_rows || *st) return NULL;
    t->cells = calloc(n_rows * n_cols, sizeof *t->cells);
    if (!t->cells) *st = bn_error_set(err, BN_ERR_NOMEM, "report: out of memory for a table of %zu rows", n_rows);
    return t->cells;
}

static cell text(const char *s) { return (cell){.kind = CELL_TEXT, .text = s}; }
static cell number(cell_kind kind, double v) { return (cell){.kind = kind, .v = v}; }

static void failing_rows(const report_receipt *r, table *t, bn_error *err, bn_status *st) {
    size_t n = 0;
    for (size_t i = 0; i < r->n_taps; i++) n += r->taps[i].failed != 0;
    cell *c = table_alloc(t, n, FAIL_COLS, err, st);
    for (size_t i = 0; c && i < r->n_taps; i++) {
        const report_tap *tp = &r->taps[i];
        if (!tp->failed) continue;
        c[FAIL_EVAL] = text(tp->evaluation);
        c[FAIL_TAP] = (cell){.kind = CELL_CODE, .text = tp->name};
        c[FAIL_STATUS] = text(tp->status);
        c[FAIL_METRIC] = text(tp->failed_metric);
        c[FAIL_VALUE] = number(CELL_NUM, tp->failed_value);
        c[FAIL_LIMIT] = number(CELL_NUM, tp->failed_limit);
        c += FAIL_COLS;
    }
}

static void worst_rows(const report_receipt *r, report_model *m, bn_error *err, bn_status *st) {
    size_t idx[MODEL_WORST_ROWS], n = report_worst_taps(r, idx, MODEL_WORST_ROWS);
    m->all_zero = !n || r->taps[idx[0]].nmse == 0;
    cell *c = table_alloc(&m->worst, m->all_zero ? 0 : n, WORST_COLS, err, st);
    for (size_t k = 0; c && k < m->worst.n_rows; k++, c += WORST_COLS) {
        const report_tap *tp = &r->taps[idx[k]];
        c[WORST_EVAL] = text(tp->evaluation);
        c[WORST_TAP] = (cell){.kind = CELL_CODE, .text = tp->name};
        c[WORST_STATUS] = (cell){.kind = CELL_TEXT, .text = tp->failed ? "fail" : "pass", .strong = tp->failed};
        c[WORST_NMSE] = number(CELL_NUM, tp->nmse);
        c[WORST_COSINE] = number(CELL_G6, tp->cosine);
        c[WORST_MAX_ABS] = number(CELL_NUM, tp->max_abs);
        c[WORST_SCALE] = number(CELL_NUM, tp->scale);
    }
}

static void logits_rows(const report_receipt *r, table *t, bn_error *err, bn_status *st) {
    cell *c = table_alloc(t, r->n_logits, LG_COLS, err, st);
    for (size_t i = 0; c && i < r->n_logits; i++, c += LG_COLS) {
        const report_logits *l = &r->logits[i];
        c[LG_EVAL] = text(l->evaluation);
        c[LG_STATUS] = text(l->status);
        c[LG_POSITIONS] = (cell){.kind = CELL_INT, .i = (long long)l->positions};
        c[LG_TOP1] = number(CELL_PCT, l->top1_agree);
        c[LG_TOP5] = number(CELL_PCT, l->top5_overlap);
        c[LG_KLD_MEAN] = number(CELL_NUM, l->kld_mean);
        c[LG_KLD_MEDIAN] = number(CELL_NUM, l->kld_median);
        c[LG_KLD_P99] = number(CELL_NUM, l->kld_p99);
        c[LG_KLD_MAX] = number(CELL_NUM, l->kld_max);
    }
}

static void block_rows(const report_receipt *r, table *t, bn_error *err, bn_status *st) {
    const report_replay *p = &r->replay;
    cell *c = table_alloc(t, p->present ? p->n_blocks : 0, BLOCK_COLS, err, st);
    for (size_t i = 0; c && i < t->n_rows; i++, c += BLOCK_COLS) {
        const report_block *b = &p->blocks[i];
        c[BLOCK_EVAL] = text(b->evaluation);
        c[BLOCK_NAME] = text(NULL);
        snprintf(c[BLOCK_NAME].own, sizeof c[BLOCK_NAME].own, "blk.%d", b->layer);
        c[BLOCK_NAME].text = c[BLOCK_NAME].own;
        c[BLOCK_ERROR] = (cell){.kind = CELL_TEXT, .text = b->local ? "local" : "inherited", .strong = b->local};
        c[BLOCK_NMSE_COMPARED] = number(CELL_NUM, b->nmse_compared);
        c[BLOCK_NMSE_REPLAYED] = number(CELL_NUM, b->nmse_replayed);
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
    free(m->failing.cells), free(m->worst.cells), free(m->logits.cells), free(m->blocks.cells);
    m->failing.cells = m->worst.cells = m->logits.cells = m->blocks.cells = NULL;
}

bn_status report_models_build(const report_receipt *const *rs, size_t n, report_model **out, bn_error *err) {
    report_model *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return bn_error_set(err, BN_ERR_NOMEM, "report: out of memory for %zu receipts", n);
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
    case CELL_PCT: snprintf(buf, 32, "%.1f%%", 100 * c->v); return buf;
    case CELL_INT: snprintf(buf, 32, "%lld", c->i); return buf;
    default: return NULL;
    }
}
