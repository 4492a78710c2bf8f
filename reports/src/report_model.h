/* report_model.h — what a report shows of one receipt, built once and drawn
 * by both renderers (report_html.c, report_md.c): the tables as rows of
 * typed cells. A renderer decides only how a cell looks (escaping, code
 * spans, number format) and which columns and how many rows it has room
 * for; which taps are listed, in which order and with which values is
 * decided here, and so are the headings and the sentences (report_ink).
 * Private to reports/. */
#ifndef REPORTS_REPORT_MODEL_H
#define REPORTS_REPORT_MODEL_H

#include <stddef.h>
#include <stdio.h>

#include "bitnet/status.h"
#include "reports/report.h"

typedef enum cell_kind {
    CELL_TEXT,    /* a receipt string (NULL: unknown, an em dash); then `code` when set */
    CELL_CODE,    /* a name: a tap */
    CELL_NUM,     /* a measured number: counts whole, else 3 digits */
    CELL_G6,      /* a number to 6 significant digits (cosine) */
    CELL_PCT,     /* a fraction as a percentage, 1 decimal */
    CELL_INT,     /* a count */
    CELL_VERDICT, /* i: 1 pass, 0 fail */
    CELL_RATIO,   /* a factor: "x4.7e+08" (inf: from exactly 0, nan: unknown) */
    CELL_DELTA,   /* a signed difference: "+0.467" */
    CELL_INDEX,   /* i: the 1-based number of a receipt in a multi-receipt report */
} cell_kind;

typedef struct cell {
    cell_kind kind;
    int strong;       /* the news of the row (a failing status, a local error) */
    const char *text; /* TEXT, CODE: into the receipt or `owned` */
    const char *code; /* TEXT: a name written after the text ("e0" then `blk.0.ffn_act`) */
    const char *note; /* TEXT: a second, quieter line where there is room (the receipt's file) */
    double v;         /* NUM, G6, PCT */
    long long i;      /* INT, VERDICT, INDEX */
    char *owned;      /* text made here ("blk.3", joined hint names); freed with the table */
} cell;

/* A column: its heading and whether it holds numbers (right-aligned). */
typedef struct column {
    const char *label;
    int num;
} column;

typedef struct table {
    const char *title;  /* what the table is ("Failing taps") */
    const column *cols; /* [n_cols] */
    size_t n_cols, n_rows;
    cell *cells;        /* [n_rows][n_cols] */
} table;

/* Column order of each table. */
enum { FAIL_EVAL, FAIL_TAP, FAIL_STATUS, FAIL_METRIC, FAIL_VALUE, FAIL_LIMIT, FAIL_COLS };
enum { WORST_EVAL, WORST_TAP, WORST_STATUS, WORST_NMSE, WORST_COSINE, WORST_MAX_ABS, WORST_SCALE, WORST_COLS };
enum { LG_EVAL, LG_STATUS, LG_POSITIONS, LG_TOP1, LG_TOP5, LG_KLD_MEAN, LG_KLD_MEDIAN, LG_KLD_P99, LG_KLD_MAX, LG_COLS };
enum { BLOCK_EVAL, BLOCK_NAME, BLOCK_ERROR, BLOCK_NMSE_COMPARED, BLOCK_NMSE_REPLAYED, BLOCK_COLS };
enum { SUM_INDEX, SUM_VERDICT, SUM_MODEL, SUM_SIDES, SUM_POLICY, SUM_COMPARED, SUM_FAIL, SUM_DIVERGENCE, SUM_HINTS,
       SUM_KLD_MEAN, SUM_COLS };

enum { CHG_ENTRY, CHG_EVAL, CHG_TAP, CHG_CHANGE, CHG_VERDICT, CHG_NMSE_BEFORE, CHG_NMSE_AFTER, CHG_RATIO,
       CHG_DELTA, CHG_MAX_ABS_BEFORE, CHG_MAX_ABS_AFTER, CHG_COSINE_BEFORE, CHG_COSINE_AFTER, CHG_COLS };
enum { ENT_ENTRY, ENT_CHANGE, ENT_VERDICT, ENT_DIV_BEFORE, ENT_DIV_AFTER, ENT_REGRESSED, ENT_DEGRADED, ENT_FIXED,
       ENT_IMPROVED, ENT_COLS };

enum { MODEL_WORST_ROWS = 10 };

typedef struct report_model {
    const report_receipt *r;
    table failing;    /* every failing tap, in evaluation order */
    table worst;      /* the compared taps with the largest NMSE (report_worst_taps), at most MODEL_WORST_ROWS */
    int all_zero;     /* no compared tap has an NMSE above 0 (worst is then not worth a table) */
    table logits;     /* one row per evaluation whose logits were compared */
    table blocks;     /* replay: one row per failing block */
} report_model;

/* ---- building tables (report_model.c, report_diff.c) ---- */

/* *t titled title with cols and n_rows x n_cols zeroed cells; returns the
 * cells, NULL when n_rows is 0, *st is already set, or out of memory (then
 * *st = NOMEM naming the table). */
cell *table_alloc(table *t, const char *title, const column *cols, size_t n_rows, size_t n_cols, bn_error *err,
                  bn_status *st);
static inline cell cell_text(const char *s) { return (cell){.kind = CELL_TEXT, .text = s}; }
static inline cell cell_num(cell_kind kind, double v) { return (cell){.kind = kind, .v = v}; }
/* c's text becomes the malloc'ed s (NULL: out of memory, reported in *st
 * unless it already holds an error). */
void cell_own(cell *c, char *s, bn_error *err, bn_status *st);
/* fmt (two %s) with a and b, malloc'ed; NULL when out of memory. */
char *report_format2(const char *fmt, const char *a, const char *b);

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

/* The tables' cells own what they made; frees them. */
void report_table_free(table *t);

/* Everything one report of n receipts shows: a model per receipt, and for
 * n > 1 the summary (one row per receipt, SUM_* columns). */
typedef struct report_doc {
    size_t n, pass;        /* receipts, and how many pass */
    report_model *models;  /* [n] */
    table summary;         /* n > 1 */
} report_doc;

/* Builds the document of rs[0..n) (which must outlive it): INVALID when n
 * is 0 (err names `who`), NOMEM. */
bn_status report_doc_build(const report_receipt *const *rs, size_t n, const char *who, report_doc *d, bn_error *err);
void report_doc_free(report_doc *d);

/* ---- sentences -------------------------------------------------------------
 * What a report says in prose is written once, here, through an ink: the
 * renderer's way of writing receipt text (escaped), names (code) and
 * emphasis. A renderer only chooses where a sentence goes. */
typedef struct report_ink {
    FILE *f;
    void (*text)(FILE *f, const char *s); /* receipt text, escaped; NULL: an em dash */
    void (*code)(FILE *f, const char *s); /* a name, escaped */
    const char *strong_on, *strong_off;   /* emphasis */
    const char *head_on, *head_off;       /* a heading that runs into its paragraph */
    /* the hint list: before and after it, each hint, its name, its message, its evidence */
    const char *hints_on, *hints_off, *hint_on, *hint_off, *name_on, *name_off, *message_on, *message_off,
        *evidence_on, *evidence_off;
    const char *list_on, *list_off, *item_on, *item_off; /* a bulleted list and its items */
    /* "What to check next" around its checklist: open (no hint fired) or folded under the hints */
    const char *next_on, *next_off, *next_folded_on, *next_folded_off;
} report_ink;

/* "e0 `blk.0.ffn_act` (layer 0): nmse = **0.467**, limit 1e-06" */
void ink_divergence(const report_ink *k, const report_receipt *r);

/* "Replay (block mode)" as a heading, then where the replay says the error
 * is born, or that every error is inherited. */
void ink_replay(const report_ink *k, const report_replay *p);

/* Every hint: its name, what it says, and its evidence when it has some;
 * nothing when there are none. */
void ink_hints(const report_ink *k, const report_receipt *r);

/* "**bitparity** 0.1.0 (ggml-compat, i2_s) fault silu": who produced a trace. */
void ink_side(const report_ink *k, const report_side *s);

/* ---- for other pages of reports/ (report_gate.c) -------------------------- */

/* HTML text (element content and quoted attributes) escaped as report_html.c
 * escapes receipt strings; NULL is an em dash. */
void report_html_text(FILE *f, const char *s);
/* The stylesheet of the HTML report. */
const char *report_html_css(void);
/* Markdown text and code spans escaped as report_md.c escapes them. */
void report_md_text(FILE *f, const char *s);
void report_md_code(FILE *f, const char *s);

/* ---- regression against a baseline (report_diff.c) ------------------------ */

/* The verdict of a change, most severe first (the order the tables sort by). */
typedef enum change_kind {
    CHANGE_REGRESSED, /* pass -> fail */
    CHANGE_DEGRADED,  /* same verdict, NMSE x factor or more */
    CHANGE_ADDED,     /* only now */
    CHANGE_REMOVED,   /* only in the baseline */
    CHANGE_FIXED,     /* fail -> pass */
    CHANGE_IMPROVED,  /* same verdict, NMSE / factor or less */
    CHANGE_SAME,
    CHANGE_KINDS
} change_kind;

/* "regression", "degraded", "new", "gone", "fixed", "improved", "unchanged". */
const char *change_name(change_kind k);

/* One tap of one entry, before and after (either NULL when absent). */
typedef struct tap_change {
    const report_tap *before, *after;
    change_kind kind;
    double ratio;   /* after's NMSE / before's: inf from 0 (or to NaN), 0 to 0 (or from NaN), nan unknown */
    size_t entry;   /* index of its entry */
    size_t order;   /* receipt order (after's, else before's): ties keep it */
} tap_change;

typedef struct entry_diff {
    const char *name;
    const report_receipt *before, *after;
    const char *verdict_before, *verdict_after; /* "pass", "fail", "skipped", "error"; NULL: absent */
    const char *note_before, *note_after;       /* a side without a receipt: its figures */
    change_kind kind;
    size_t n_kind[CHANGE_KINDS]; /* taps per kind */
    const tap_change *worst;     /* its most severe changed tap, NULL when none changed */
} entry_diff;

typedef struct report_diff {
    double factor;
    entry_diff *entries;   /* [n] in the given order */
    size_t n;
    tap_change *changes;   /* [n_changes] every changed tap of every entry, most severe first */
    size_t n_changes;
    report_diff_counts counts;
    table entry_table;     /* ENT_* one row per entry */
    table change_table;    /* CHG_* one row per change, in changes' order */
} report_diff;

/* Builds the diff of pairs[0..n) (whose receipts must outlive it): INVALID
 * when n is 0, a pair is empty or factor <= 1; NOMEM. */
bn_status report_diff_build(const report_pair *pairs, size_t n, double factor, report_diff *d, bn_error *err);
void report_diff_free(report_diff *d);

/* The one-word verdict of the whole diff: "REGRESSION", "DEGRADED", "FIXED", "IMPROVED",
 * "UNCHANGED" (new/removed entries alone: "CHANGED"). */
const char *diff_verdict(const report_diff *d);

/* The report document of d's current receipts (the entries that have one),
 * *n of them; nothing is built when *n is 0. NOMEM. */
bn_status diff_current_doc(const report_diff *d, report_doc *doc, size_t *n, bn_error *err);

/* The renderers of a diff (report_html.c, report_md.c); report_render_baseline
 * dispatches to them. */
bn_status html_render_baseline(const report_diff *d, FILE *f, bn_error *err);
bn_status md_render_baseline(const report_diff *d, FILE *f, bn_error *err);

/* "1 regression, 2 degraded (taps: ...); worst: e0 `blk.0.ffn_act` pass -> fail, nmse 0 -> 0.467" */
void ink_diff_headline(const report_ink *k, const report_diff *d);

/* ---- what to check next ------------------------------------------------------ */

/* When r fails at a first divergence: "What to check next" (the ink's
 * next_on/off, or next_folded_on/off when hints fired) around "`blk.0.attn_q`
 * is the query projection (before RoPE). ... check:" and the checklist of
 * that tap's kind (parity/next_checks.h) as a list of the ink; else nothing. */
void ink_next_checks(const report_ink *k, const report_receipt *r);

#endif /* REPORTS_REPORT_MODEL_H */
