/* report_model.h — what a report shows of one receipt, built once and drawn
 * by both renderers (report_html.c, report_md.c): the tables as rows of
 * typed cells. A renderer decides only how a cell looks (escaping, code
 * spans, number format) and which columns and how many rows it has room
 * for; which taps are listed, in which order and with which values is
 * decided here. Private to reports/. */
#ifndef REPORTS_REPORT_MODEL_H
#define REPORTS_REPORT_MODEL_H

#include <stddef.h>

#include "bitnet/status.h"
#include "reports/report.h"

typedef enum cell_kind {
    CELL_TEXT, /* a receipt string (NULL: unknown) */
    CELL_CODE, /* a name: a tap */
    CELL_NUM,  /* a measured number: counts whole, else 3 digits */
    CELL_G6,   /* a number to 6 significant digits (cosine) */
    CELL_PCT,  /* a fraction as a percentage, 1 decimal */
    CELL_INT,  /* a count */
} cell_kind;

typedef struct cell {
    cell_kind kind;
    int strong;       /* the news of the row (a failing status, a local error) */
    const char *text; /* TEXT, CODE: into the receipt or own */
    double v;         /* NUM, G6, PCT */
    long long i;      /* INT */
    char own[16];     /* text made here ("blk.3") */
} cell;

typedef struct table {
    size_t n_cols, n_rows;
    cell *cells; /* [n_rows][n_cols] */
} table;

/* Column order of each table. */
enum { FAIL_EVAL, FAIL_TAP, FAIL_STATUS, FAIL_METRIC, FAIL_VALUE, FAIL_LIMIT, FAIL_COLS };
enum { WORST_EVAL, WORST_TAP, WORST_STATUS, WORST_NMSE, WORST_COSINE, WORST_MAX_ABS, WORST_SCALE, WORST_COLS };
enum { LG_EVAL, LG_STATUS, LG_POSITIONS, LG_TOP1, LG_TOP5, LG_KLD_MEAN, LG_KLD_MEDIAN, LG_KLD_P99, LG_KLD_MAX, LG_COLS };
enum { BLOCK_EVAL, BLOCK_NAME, BLOCK_ERROR, BLOCK_NMSE_COMPARED, BLOCK_NMSE_REPLAYED, BLOCK_COLS };

enum { MODEL_WORST_ROWS = 10 };

typedef struct report_model {
    const report_receipt *r;
    table failing;    /* every failing tap, in evaluation order */
    table worst;      /* the compared taps with the largest NMSE (report_worst_taps), at most MODEL_WORST_ROWS */
    int all_zero;     /* no compared tap has an NMSE above 0 (worst is then not worth a table) */
    table logits;     /* one row per evaluation whose logits were compared */
    table blocks;     /* replay: one row per failing block */
} report_model;

/* Builds the model of r (which must outlive it). NOMEM. */
bn_status report_model_build(const report_receipt *r, report_model *m, bn_error *err);
void report_model_free(report_model *m);

/* Cell (row, col) of t. */
static inline const cell *table_cell(const table *t, size_t row, size_t col) { return &t->cells[row * t->n_cols + col]; }

/* A cell's text for the number kinds into buf (NUM, G6, PCT, INT); NULL for
 * TEXT and CODE, which the renderer escapes itself. */
const char *cell_number(const cell *c, char buf[32]);

/* v as a reader wants it: counts whole, the rest to 3 digits, nan/inf/-inf. */
const char *report_num(char buf[32], double v);

/* The last component of a path (the path itself when it has none). */
const char *report_base_name(const char *path);

/* The model of each of n receipts; *out is freed with report_models_free. */
bn_status report_models_build(const report_receipt *const *rs, size_t n, report_model **out, bn_error *err);
void report_models_free(report_model *m, size_t n);

#endif /* REPORTS_REPORT_MODEL_H */
