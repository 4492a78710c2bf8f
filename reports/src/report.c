/* report.c — receipts read back for the renderers: the YAML layer
 * (bitnet/yaml_doc.h) loads the document, then every key a report shows is
 * checked and copied into the read-only report_receipt (strings stay
 * in the document). A bad key is reported once, as "file:line: key: what",
 * and stops the reading. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/yaml_doc.h"
#include "reports/report.h"
#include "parity/receipt.h"
#include "parity/receipt_schema.h"

/* Keys are named only through the receipt schema (receipt_schema.h). */
#define K(id) PARITY_RK(id)
typedef parity_receipt_key_id rkey;

/* Receipts of the largest models are a few MiB; the cap only stops a
 * hostile file from being read whole. */
#define RECEIPT_MAX_BYTES ((size_t)256 << 20)

/* Key flags: must the key be present, may its value be null? */
enum { OPT = 0, REQ = 1, NUL = 2 };

/* One reading: the document, where errors go, and the first error. */
typedef struct rx {
    const bn_yaml_doc *doc;
    bn_error *err;
    bn_status st;
} rx;

typedef const bn_yaml_node node;

/* Records the first error only: later checks on a broken tree add noise. */
BN_PRINTF(5, 6)
static void fail_at(rx *x, node *at, const char *path, const char *key, const char *fmt, ...) {
    if (x->st) return;
    char field[256];
    snprintf(field, sizeof field, "%s%s%s", path ? path : "", path && *path && key ? "." : "", key ? key : "");
    va_list ap;
    va_start(ap, fmt);
    x->st = bn_yaml_failv(x->doc, x->err, at, BN_ERR_FORMAT, BN_YAML_PATH, *field ? field : NULL, fmt, ap);
    va_end(ap);
}

/* The text of a scalar, else NULL. */
static const char *scalar(node *n) { return n && n->kind == BN_YAML_SCALAR ? n->text : NULL; }

/* The value of key in map after the presence and null checks of flags;
 * NULL when it is absent or null (or map is NULL: an absent parent). */
static node *field(rx *x, node *map, const char *path, const char *key, int flags) {
    if (!map || x->st) return NULL;
    node *v = bn_yaml_get(map, key);
    if (!v) {
        if (flags & REQ) fail_at(x, map, path, key, "missing (in the mapping starting on this line)");
        return NULL;
    }
    if (bn_yaml_is_null(v)) {
        if (!(flags & NUL)) fail_at(x, v, path, key, "must not be null");
        return NULL;
    }
    return v;
}

static const char *get_str(rx *x, node *map, const char *path, const char *key, int flags) {
    node *v = field(x, map, path, key, flags);
    if (v && v->kind != BN_YAML_SCALAR) fail_at(x, v, path, key, "expected a string");
    return x->st ? NULL : scalar(v);
}

/* Numbers may be quoted: JSON receipts write the non-finite ones as ".inf". */
static double get_num(rx *x, node *map, const char *path, const char *key, int flags) {
    node *v = field(x, map, path, key, flags);
    double d = NAN;
    if (v && !bn_yaml_parse_number(scalar(v), 1, &d))
        fail_at(x, v, path, key, "expected a number, got '%.40s'", scalar(v) ? scalar(v) : "(a collection)");
    return x->st ? NAN : d;
}

static int64_t get_int(rx *x, node *map, const char *path, const char *key, int flags, int64_t absent) {
    node *v = field(x, map, path, key, flags);
    if (!v) return absent;
    int64_t i;
    if (!bn_yaml_parse_int(scalar(v), INT64_MIN, INT64_MAX, &i)) {
        fail_at(x, v, path, key, "expected an integer, got '%.40s'", scalar(v) ? scalar(v) : "(a collection)");
        return absent;
    }
    return i;
}

static int get_bool(rx *x, node *map, const char *path, const char *key, int flags) {
    node *v = field(x, map, path, key, flags);
    int b = 0;
    if (v && !bn_yaml_parse_bool(v, &b)) fail_at(x, v, path, key, "expected true or false");
    return b;
}

static node *get_coll(rx *x, node *map, const char *path, const char *key, int flags, bn_yaml_kind kind) {
    node *v = field(x, map, path, key, flags);
    if (v && v->kind != kind) {
        fail_at(x, v, path, key, kind == BN_YAML_MAP ? "expected a mapping" : "expected a list");
        return NULL;
    }
    return x->st ? NULL : v;
}
#define get_map(x, m, p, k, f) get_coll(x, m, p, k, f, BN_YAML_MAP)
#define get_seq(x, m, p, k, f) get_coll(x, m, p, k, f, BN_YAML_LIST)

static size_t seq_len(node *s) { return s ? s->n : 0; }

/* Item i of a list that must be a mapping; path gets "key[i]". */
static node *item_map(rx *x, node *seq, size_t i, const char *key, char *path, size_t size) {
    node *v = bn_yaml_item(seq, i);
    snprintf(path, size, "%s[%zu]", key, i);
    if (!x->st && v->kind != BN_YAML_MAP) fail_at(x, v, path, NULL, "expected a mapping");
    return x->st ? NULL : v;
}

/* A list of n items of size bytes; NULL (and NOMEM) when n > 0 fails. */
static void *alloc_items(rx *x, size_t n, size_t size) {
    if (!n || x->st) return NULL;
    void *p = calloc(n, size);
    if (!p)
        x->st = bn_error_nomem(x->err, (unsigned long long)n * size, "%s: a list of %zu receipt items",
                               bn_yaml_origin(x->doc), n);
    return p;
}

/* The list under key (get_seq) and *items, a zeroed array of one element
 * of size bytes per item (NULL when the list is empty or absent); *n its
 * length. */
static node *get_items(rx *x, node *map, const char *path, const char *key, int flags,
                              size_t size, void *items, size_t *n) {
    node *seq = get_seq(x, map, path, key, flags);
    void *p = alloc_items(x, *n = seq_len(seq), size);
    memcpy(items, &p, sizeof p);
    return seq;
}

/* Receipts never use anchors: a node referenced twice would be an alias,
 * which could make a small file expand into a huge report. */
static void reject_aliases(rx *x) {
    node *n = bn_yaml_first_alias(x->doc);
    if (n) fail_at(x, n, NULL, NULL, "anchors and aliases are not used in receipts");
}

/* A flat record read by a table: each key of the schema into the field at
 * off of the destination, as the schema's type says (STR: const char *,
 * NUM: double, INT: int64_t). */
typedef struct field_spec {
    rkey key;
    int flags;
    size_t off;
    int64_t absent; /* INT: the value when the key is absent */
} field_spec;

static void read_fields(rx *x, node *m, const char *path, const field_spec *f, size_t n, void *out) {
    for (size_t i = 0; i < n && !x->st; i++) {
        const parity_receipt_key *k = &parity_receipt_keys[f[i].key];
        char *dst = (char *)out + f[i].off;
        if (k->type == PARITY_RT_STR) {
            const char *v = get_str(x, m, path, k->key, f[i].flags);
            memcpy(dst, &v, sizeof v);
        } else if (k->type == PARITY_RT_NUM) {
            const double v = get_num(x, m, path, k->key, f[i].flags);
            memcpy(dst, &v, sizeof v);
        } else {
            const int64_t v = get_int(x, m, path, k->key, f[i].flags, f[i].absent);
            memcpy(dst, &v, sizeof v);
        }
    }
}
#define N_FIELDS(t) (sizeof t / sizeof t[0])

static void read_side(rx *x, node *root, const char *key, report_side *s) {
    node *m = get_map(x, root, "", key, OPT);
    char path[32];
    snprintf(path, sizeof path, "%s.producer", key);
    node *p = get_map(x, m, key, K(SIDE_PRODUCER), OPT | NUL);
    s->producer = get_str(x, p, path, K(SIDE_PRODUCER_NAME), OPT | NUL);
    s->version = get_str(x, p, path, K(SIDE_PRODUCER_VERSION), OPT | NUL);
    s->source = get_str(x, p, path, K(SIDE_PRODUCER_SOURCE), OPT | NUL);
    s->numerics = get_str(x, m, key, K(SIDE_NUMERICS), OPT | NUL);
    s->weight_type = get_str(x, m, key, K(SIDE_WEIGHT_TYPE), OPT | NUL);
    s->fault = get_str(x, m, key, K(SIDE_FAULT), OPT | NUL);
    s->trace = get_str(x, m, key, K(SIDE_TRACE), OPT | NUL);
    s->layout = get_str(x, m, key, K(SIDE_LAYOUT), OPT | NUL);
    snprintf(path, sizeof path, "%s.map", key);
    s->map = get_str(x, get_map(x, m, key, K(SIDE_MAP), OPT | NUL), path, K(SIDE_MAP_NAME), OPT | NUL);
    s->evaluations = get_int(x, m, key, K(SIDE_EVALUATIONS), OPT | NUL, -1);
}

static void read_header(rx *x, node *root, report_receipt *r) {
    r->created = get_str(x, root, "", K(CREATED), OPT | NUL);
    node *tool = get_map(x, root, "", K(TOOL), OPT);
    r->tool_version = get_str(x, tool, "tool", K(TOOL_VERSION), OPT | NUL);
    r->tool_commit = get_str(x, tool, "tool", K(TOOL_COMMIT), OPT | NUL);
    node *host = get_map(x, root, "", K(HOST), OPT);
    r->host_cpu = get_str(x, host, "host", K(HOST_CPU), OPT | NUL);
    r->host_simd = get_str(x, host, "host", K(HOST_SIMD), OPT | NUL);
    r->host_threads = get_int(x, host, "host", K(HOST_THREADS), OPT | NUL, -1);
    node *model = get_map(x, root, "", K(MODEL), OPT);
    r->model_path = get_str(x, model, "model", K(MODEL_PATH), OPT | NUL);
    r->model_sha256 = get_str(x, model, "model", K(MODEL_SHA256), OPT | NUL);
    r->model_arch = get_str(x, model, "model", K(MODEL_ARCH), OPT | NUL);
    read_side(x, root, K(SUBJECT), &r->subject);
    read_side(x, root, K(REFERENCE), &r->reference);
    node *pol = get_map(x, root, "", K(POLICY), OPT);
    r->policy_name = get_str(x, pol, "policy", K(POLICY_NAME), OPT | NUL);
    r->policy_origin = get_str(x, pol, "policy", K(POLICY_ORIGIN), OPT | NUL);
    r->policy_choice = get_str(x, pol, "policy", K(POLICY_CHOICE), OPT | NUL);
    r->compare_s = get_num(x, get_map(x, root, "", K(TIMINGS), OPT), "timings", K(T_COMPARE), OPT | NUL);
}

static void read_counts(rx *x, node *summary, report_receipt *r) {
    static const struct { rkey key; size_t off; } keys[] = {
        {PARITY_RK_COUNTS_TAPS, offsetof(parity_compare_counts, taps)},
        {PARITY_RK_COUNTS_COMPARED, offsetof(parity_compare_counts, compared)},
        {PARITY_RK_COUNTS_PASS, offsetof(parity_compare_counts, pass)},
        {PARITY_RK_COUNTS_FAIL, offsetof(parity_compare_counts, fail)},
        {PARITY_RK_COUNTS_BIT_IDENTICAL, offsetof(parity_compare_counts, bit_identical)},
        {PARITY_RK_COUNTS_SHAPE_MISMATCH, offsetof(parity_compare_counts, shape_mismatch)},
        {PARITY_RK_COUNTS_MISSING_REFERENCE, offsetof(parity_compare_counts, missing_reference)},
        {PARITY_RK_COUNTS_MISSING_SUBJECT, offsetof(parity_compare_counts, missing_subject)},
        {PARITY_RK_COUNTS_SKIPPED, offsetof(parity_compare_counts, policy_skip)},
    };
    node *c = get_map(x, summary, "summary", K(SUMMARY_COUNTS), REQ);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *key = parity_receipt_keys[keys[i].key].key;
        int64_t v = get_int(x, c, "summary.counts", key, REQ, 0);
        if (v < 0) fail_at(x, bn_yaml_get(c, key), "summary.counts", key, "must not be negative");
        memcpy((char *)&r->counts + keys[i].off, &v, sizeof v);
    }
    node *e = get_map(x, summary, "summary", K(SUMMARY_EVALUATIONS), OPT);
    r->evals_subject = get_int(x, e, "summary.evaluations", K(EVALS_SUBJECT), OPT, -1);
    r->evals_reference = get_int(x, e, "summary.evaluations", K(EVALS_REFERENCE), OPT, -1);
    r->evals_compared = get_int(x, e, "summary.evaluations", K(EVALS_COMPARED), OPT, -1);
}

static void read_summary(rx *x, node *root, report_receipt *r) {
    static const field_spec hint[] = {{PARITY_RK_HINT_NAME, REQ, offsetof(report_hint, name), 0},
                                      {PARITY_RK_HINT_MESSAGE, REQ, offsetof(report_hint, message), 0},
                                      {PARITY_RK_HINT_EVIDENCE, OPT | NUL, offsetof(report_hint, evidence), 0}};
    node *s = get_map(x, root, "", K(SUMMARY), REQ);
    const char *verdict = get_str(x, s, "summary", K(SUMMARY_VERDICT), REQ);
    if (verdict && strcmp(verdict, "pass") && strcmp(verdict, "fail"))
        fail_at(x, bn_yaml_get(s, K(SUMMARY_VERDICT)), "summary", K(SUMMARY_VERDICT), "expected pass or fail, got '%.40s'", verdict);
    r->pass = verdict && !strcmp(verdict, "pass");
    r->diagnosis = get_str(x, s, "summary", K(SUMMARY_DIAGNOSIS), OPT | NUL);
    read_counts(x, s, r);

    const char *fp = "summary.first_divergence";
    node *d = get_map(x, s, "summary", K(SUMMARY_FIRST_DIVERGENCE), REQ | NUL);
    r->has_divergence = d != NULL;
    r->div_evaluation = get_str(x, d, fp, K(DIV_EVALUATION), REQ);
    r->div_tap = get_str(x, d, fp, K(DIV_TAP), REQ);
    r->div_layer = (int)get_int(x, d, fp, K(DIV_LAYER), OPT | NUL, -1);
    r->div_metric = get_str(x, d, fp, K(DIV_METRIC), REQ);
    r->div_value = get_num(x, d, fp, K(DIV_VALUE), REQ | NUL);
    r->div_limit = get_num(x, d, fp, K(DIV_LIMIT), REQ | NUL);

    node *fe = get_items(x, s, "summary", K(SUMMARY_FAILING_EVALUATIONS), OPT, sizeof *r->failing_evaluations,
                                &r->failing_evaluations, &r->n_failing_evaluations);
    for (size_t i = 0; i < r->n_failing_evaluations && !x->st; i++) {
        node *v = bn_yaml_item(fe, i);
        if (!scalar(v)) fail_at(x, v, "summary", K(SUMMARY_FAILING_EVALUATIONS), "expected evaluation ids");
        r->failing_evaluations[i] = scalar(v);
    }

    node *h = get_items(x, s, "summary", K(SUMMARY_HINTS), REQ, sizeof *r->hints, &r->hints, &r->n_hints);
    char path[48];
    for (size_t i = 0; i < r->n_hints && !x->st; i++) {
        node *m = item_map(x, h, i, "summary.hints", path, sizeof path);
        read_fields(x, m, path, hint, N_FIELDS(hint), &r->hints[i]);
    }
}

static void read_growth(rx *x, node *root, report_receipt *r) {
    node *g = get_map(x, root, "", K(GROWTH), REQ);
    r->growth_metric = get_str(x, g, "error_growth", K(GROWTH_METRIC), OPT | NUL);
    int64_t layers = get_int(x, g, "error_growth", K(GROWTH_LAYERS), REQ, 0);
    if (layers < 0 || layers > 100000)
        fail_at(x, bn_yaml_get(g, K(GROWTH_LAYERS)), "error_growth", K(GROWTH_LAYERS), "%lld is not a layer count", (long long)layers);
    r->layers = (int)layers;
    node *e = get_items(x, g, "error_growth", K(GROWTH_EVALUATIONS), REQ, sizeof *r->growth, &r->growth,
                               &r->n_growth);
    char path[48];
    for (size_t i = 0; i < r->n_growth && !x->st; i++) {
        node *m = item_map(x, e, i, "error_growth.evaluations", path, sizeof path);
        r->growth[i].evaluation = get_str(x, m, path, K(GROWTH_EVALUATION), REQ);
        node *v = get_seq(x, m, path, K(GROWTH_NMSE_MAX), REQ);
        if (v && seq_len(v) != (size_t)r->layers)
            fail_at(x, v, path, K(GROWTH_NMSE_MAX), "%zu values for %d layers", seq_len(v), r->layers);
        r->growth[i].nmse_max = alloc_items(x, (size_t)r->layers, sizeof(double));
        for (int l = 0; l < r->layers && !x->st; l++) {
            node *it = bn_yaml_item(v, (size_t)l);
            double d = NAN;
            if (!bn_yaml_is_null(it) && !(scalar(it) && bn_yaml_parse_number(scalar(it), 1, &d)))
                fail_at(x, it, path, K(GROWTH_NMSE_MAX), "item %d: expected a number or null", l);
            r->growth[i].nmse_max[l] = d;
        }
    }
}

static const char *const tap_statuses[] = {"pass", "fail", "shape-mismatch", "missing-reference",
                                           "missing-subject", "skipped"};

static void read_tap(rx *x, node *m, const char *path, report_tap *t) {
    t->evaluation = get_str(x, m, path, K(TAP_EVALUATION), REQ);
    t->name = get_str(x, m, path, K(TAP_NAME), REQ);
    t->layer = (int)get_int(x, m, path, K(TAP_LAYER), OPT | NUL, -1);
    t->status = get_str(x, m, path, K(TAP_STATUS), REQ);
    size_t k = 0;
    while (t->status && k < 6 && strcmp(t->status, tap_statuses[k])) k++;
    if (t->status && k == 6) fail_at(x, bn_yaml_get(m, K(TAP_STATUS)), path, K(TAP_STATUS), "unknown status '%.40s'", t->status);
    t->compared = k <= 1;
    t->failed = k == 1 || k == 2;
    char sub[64];
    snprintf(sub, sizeof sub, "%s.metrics", path);
    node *mt = get_map(x, m, path, K(TAP_METRICS), t->compared ? REQ : OPT);
    t->nmse = get_num(x, mt, sub, K(M_NMSE), REQ | NUL);
    t->cosine = get_num(x, mt, sub, K(M_COSINE), OPT | NUL);
    t->max_abs = get_num(x, mt, sub, K(M_MAX_ABS), OPT | NUL);
    t->scale = get_num(x, mt, sub, K(M_SCALE), OPT | NUL);
    t->bit_identical = get_bool(x, mt, sub, K(M_BIT_IDENTICAL), OPT);
    snprintf(sub, sizeof sub, "%s.limits", path);
    node *lim = get_map(x, m, path, K(TAP_LIMITS), OPT);
    t->nmse_limit = get_num(x, lim, sub, K(L_NMSE_MAX), OPT | NUL);
    t->kld_mean_limit = get_num(x, lim, sub, K(L_KLD_MEAN_MAX), OPT | NUL);
    snprintf(sub, sizeof sub, "%s.failed", path);
    node *f = get_map(x, m, path, K(TAP_FAILED), t->failed ? REQ : OPT);
    t->failed_metric = get_str(x, f, sub, K(F_METRIC), REQ);
    t->failed_value = get_num(x, f, sub, K(F_VALUE), REQ | NUL);
    t->failed_limit = get_num(x, f, sub, K(F_LIMIT), REQ | NUL);
}

static void read_taps(rx *x, node *root, report_receipt *r) {
    node *taps = get_seq(x, root, "", K(TAPS), REQ);
    r->n_taps = seq_len(taps);
    if (taps && r->n_taps != (size_t)r->counts.taps)
        fail_at(x, taps, "", K(TAPS), "%zu entries but summary.counts.taps says %lld (a truncated receipt?)",
                r->n_taps, (long long)r->counts.taps);
    r->taps = alloc_items(x, r->n_taps, sizeof *r->taps);
    char path[32];
    for (size_t i = 0; i < r->n_taps && !x->st; i++)
        read_tap(x, item_map(x, taps, i, "taps", path, sizeof path), path, &r->taps[i]);
}


static void read_logits(rx *x, node *root, report_receipt *r) {
#define LG(id, flags, member) {PARITY_RK_LG_##id, flags, offsetof(report_logits, member), 0}
    static const field_spec fields[] = {
        LG(EVALUATION, REQ, evaluation),          LG(STATUS, REQ, status),
        {PARITY_RK_LG_POSITIONS, OPT, offsetof(report_logits, positions), -1}, LG(INVALID, OPT, invalid),
        LG(TOP1_AGREE, REQ | NUL, top1_agree),    LG(TOP5_OVERLAP, OPT | NUL, top5_overlap),
        LG(KLD_MEAN, REQ | NUL, kld_mean),        LG(KLD_MEDIAN, OPT | NUL, kld_median),
        LG(KLD_P99, REQ | NUL, kld_p99),          LG(KLD_MAX, REQ | NUL, kld_max),
    };
#undef LG
    node *lg = get_items(x, root, "", K(LOGITS), REQ, sizeof *r->logits, &r->logits, &r->n_logits);
    char path[32];
    for (size_t i = 0; i < r->n_logits && !x->st; i++) {
        read_fields(x, item_map(x, lg, i, "logits", path, sizeof path), path, fields, N_FIELDS(fields), &r->logits[i]);
    }
}

static void read_replay(rx *x, node *root, report_replay *rp) {
#define FL(id, flags, member) {PARITY_RK_FL_##id, flags, offsetof(report_replay, member), 0}
    static const field_spec first[] = {
        FL(EVALUATION, REQ, first_evaluation), FL(TAP, REQ, first_tap),       FL(METRIC, OPT | NUL, first_metric),
        FL(VALUE, OPT | NUL, first_value),     FL(LIMIT, OPT | NUL, first_limit),
    };
#undef FL
#define RB(id, flags, member) {PARITY_RK_RB_##id, flags, offsetof(report_block, member), 0}
    static const field_spec block_id[] = {RB(EVALUATION, REQ, evaluation)};
    static const field_spec block_nmse[] = {RB(NMSE_COMPARED, OPT | NUL, nmse_compared),
                                       RB(NMSE_REPLAYED, OPT | NUL, nmse_replayed)};
#undef RB
    node *m = get_map(x, root, "", K(REPLAY), OPT);
    rp->present = m != NULL;
    rp->mode = get_str(x, m, "replay", K(RP_MODE), REQ);
    rp->model = get_str(x, m, "replay", K(RP_MODEL), OPT | NUL);
    node *f = get_map(x, m, "replay", K(RP_FIRST_LOCAL), OPT | NUL);
    read_fields(x, f, "replay.first_local", first, N_FIELDS(first), rp);
    node *b = get_items(x, m, "replay", K(RP_BLOCKS), OPT, sizeof *rp->blocks, &rp->blocks, &rp->n_blocks);
    char path[40];
    for (size_t i = 0; i < rp->n_blocks && !x->st; i++) {
        node *bm = item_map(x, b, i, "replay.blocks", path, sizeof path);
        report_block *blk = &rp->blocks[i];
        read_fields(x, bm, path, block_id, N_FIELDS(block_id), blk);
        blk->layer = (int)get_int(x, bm, path, K(RB_LAYER), REQ, -1);
        const char *e = get_str(x, bm, path, K(RB_ERROR), REQ);
        if (e && strcmp(e, "local") && strcmp(e, "inherited"))
            fail_at(x, bn_yaml_get(bm, K(RB_ERROR)), path, K(RB_ERROR), "expected local or inherited");
        blk->local = e && !strcmp(e, "local");
        read_fields(x, bm, path, block_nmse, N_FIELDS(block_nmse), blk);
    }
    rp->n_failing_taps = seq_len(get_seq(x, m, "replay", K(RP_FAILING_TAPS), OPT));
}

static void read_receipt(rx *x, report_receipt *r) {
    node *root = bn_yaml_root(x->doc);
    if (!root) return fail_at(x, NULL, NULL, K(RECEIPT), "empty document: not a bitparity receipt");
    if (root->kind != BN_YAML_MAP)
        return fail_at(x, root, NULL, K(RECEIPT), "the document is not a mapping: not a bitparity receipt");
    reject_aliases(x);
    const char *v = get_str(x, root, "", K(RECEIPT), REQ);
    if (v && strcmp(v, PARITY_RECEIPT_VERSION))
        fail_at(x, bn_yaml_get(root, K(RECEIPT)), NULL, K(RECEIPT), "'%.40s' is not a supported version (%s)", v,
                PARITY_RECEIPT_VERSION);
    read_header(x, root, r);
    read_summary(x, root, r);
    read_growth(x, root, r);
    read_taps(x, root, r);
    read_logits(x, root, r);
    read_replay(x, root, &r->replay);
}

void report_receipt_free(report_receipt *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_growth; i++) free(r->growth[i].nmse_max);
    free(r->growth);
    free(r->failing_evaluations);
    free(r->hints);
    free(r->taps);
    free(r->logits);
    free(r->replay.blocks);
    bn_yaml_free(r->doc_);
    free((char *)r->file);
    free(r);
}

/* Reads the receipt out of a loaded document, which it then owns. */
static bn_status read_document(bn_yaml_doc *doc, report_receipt **out, bn_error *err) {
    report_receipt *r = calloc(1, sizeof *r);
    char *file = strdup(bn_yaml_origin(doc));
    if (!r || !file) {
        free(r), free(file);
        bn_status st = bn_error_nomem(err, sizeof *r + strlen(bn_yaml_origin(doc)) + 1, "%s: the receipt",
                                      bn_yaml_origin(doc));
        bn_yaml_free(doc);
        return st;
    }
    r->file = file;
    r->doc_ = doc;
    rx x = {doc, err, BN_OK};
    read_receipt(&x, r);
    if (x.st) {
        report_receipt_free(r);
        return x.st;
    }
    *out = r;
    return BN_OK;
}

bn_status report_parse(const char *name, const char *text, size_t size, report_receipt **out,
                              bn_error *err) {
    if (!name || !text || !out) return bn_error_set(err, BN_ERR_INVALID, "report_parse: NULL argument");
    *out = NULL;
    bn_yaml_doc *doc;
    bn_status st = bn_yaml_parse(name, text, size, RECEIPT_MAX_BYTES, "receipt", &doc, err);
    return st ? st : read_document(doc, out, err);
}

bn_status report_load(const char *path, report_receipt **out, bn_error *err) {
    if (!path || !out) return bn_error_set(err, BN_ERR_INVALID, "report_load: NULL argument");
    *out = NULL;
    bn_yaml_doc *doc;
    bn_status st = bn_yaml_load_file(path, RECEIPT_MAX_BYTES, "receipt", &doc, err);
    return st ? st : read_document(doc, out, err);
}

int report_format_parse(const char *name, report_format *fmt) {
    if (!name) return 0;
    if (!strcmp(name, "html")) return *fmt = REPORT_HTML, 1;
    if (!strcmp(name, "markdown") || !strcmp(name, "md")) return *fmt = REPORT_MARKDOWN, 1;
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

report_format report_format_for_path(const char *path) {
    return path && (ends_with(path, ".html") || ends_with(path, ".htm")) ? REPORT_HTML
                                                                           : REPORT_MARKDOWN;
}

size_t report_count_pass(const report_receipt *const *receipts, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += receipts[i]->pass != 0;
    return k;
}

const char *report_focus_evaluation(const report_receipt *r) {
    if (r->has_divergence) return r->div_evaluation;
    for (size_t i = 0; i < r->n_taps; i++)
        if (r->taps[i].failed) return r->taps[i].evaluation;
    if (r->n_failing_evaluations) return r->failing_evaluations[0];
    return r->n_taps ? r->taps[0].evaluation : NULL;
}

/* NaN ranks above everything: a NaN metric is the worst news. */
static int worse(double a, double b) { return isnan(a) ? !isnan(b) : !isnan(b) && a > b; }

size_t report_worst_taps(const report_receipt *r, size_t *idx, size_t max) {
    size_t k = 0;
    for (size_t i = 0; i < r->n_taps && max; i++) {
        const report_tap *t = &r->taps[i];
        if (!t->compared) continue;
        /* insertion into the kept top-max list; later taps lose ties */
        size_t j;
        if (k < max) j = k++;
        else if (worse(t->nmse, r->taps[idx[max - 1]].nmse)) j = max - 1;
        else continue;
        while (j > 0 && worse(t->nmse, r->taps[idx[j - 1]].nmse)) idx[j] = idx[j - 1], j--;
        idx[j] = i;
    }
    return k;
}

double report_uniform_nmse_limit(const report_receipt *r) {
    double lim = NAN;
    for (size_t i = 0; i < r->n_taps; i++) {
        const report_tap *t = &r->taps[i];
        if (!t->compared || t->layer < 0) continue;
        if (isnan(t->nmse_limit)) return NAN;
        if (isnan(lim)) lim = t->nmse_limit;
        else if (lim != t->nmse_limit) return NAN;
    }
    return lim;
}

bn_status report_render(const report_receipt *const *receipts, size_t n, report_format fmt,
                               FILE *f, bn_error *err) {
    if (!receipts || !n || !f) return bn_error_set(err, BN_ERR_INVALID, "report_render: no receipts");
    return fmt == REPORT_HTML ? report_render_html(receipts, n, f, err)
                                     : report_render_markdown(receipts, n, f, err);
}
