/* report.c — receipts read back for the renderers: the YAML layer
 * (bitnet/yaml_doc.h) loads the document, then every key a report shows is
 * checked and copied into the read-only parity_report_receipt (strings stay
 * in the document). A bad key is reported once, as "file:line: key: what",
 * and stops the reading. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/yaml_doc.h"
#include "parity/report.h"
#include "parity/receipt.h"

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
        x->st = bn_error_set(x->err, BN_ERR_NOMEM, "%s: out of memory reading the receipt", bn_yaml_origin(x->doc));
    return p;
}

/* Receipts never use anchors: a node referenced twice would be an alias,
 * which could make a small file expand into a huge report. */
static void reject_aliases(rx *x) {
    node *n = bn_yaml_first_alias(x->doc);
    if (n) fail_at(x, n, NULL, NULL, "anchors and aliases are not used in receipts");
}

static void read_side(rx *x, node *root, const char *key, parity_report_side *s) {
    node *m = get_map(x, root, "", key, OPT);
    char path[32];
    snprintf(path, sizeof path, "%s.producer", key);
    node *p = get_map(x, m, key, "producer", OPT | NUL);
    s->producer = get_str(x, p, path, "name", OPT | NUL);
    s->version = get_str(x, p, path, "version", OPT | NUL);
    s->source = get_str(x, p, path, "source", OPT | NUL);
    s->numerics = get_str(x, m, key, "numerics", OPT | NUL);
    s->weight_type = get_str(x, m, key, "weight_type", OPT | NUL);
    s->fault = get_str(x, m, key, "fault", OPT | NUL);
    s->trace = get_str(x, m, key, "trace", OPT | NUL);
    s->layout = get_str(x, m, key, "layout", OPT | NUL);
    snprintf(path, sizeof path, "%s.map", key);
    s->map = get_str(x, get_map(x, m, key, "map", OPT | NUL), path, "name", OPT | NUL);
    s->evaluations = get_int(x, m, key, "evaluations", OPT | NUL, -1);
}

static void read_header(rx *x, node *root, parity_report_receipt *r) {
    r->created = get_str(x, root, "", "created", OPT | NUL);
    node *tool = get_map(x, root, "", "tool", OPT);
    r->tool_version = get_str(x, tool, "tool", "version", OPT | NUL);
    r->tool_commit = get_str(x, tool, "tool", "commit", OPT | NUL);
    node *host = get_map(x, root, "", "host", OPT);
    r->host_cpu = get_str(x, host, "host", "cpu", OPT | NUL);
    r->host_simd = get_str(x, host, "host", "simd", OPT | NUL);
    r->host_threads = get_int(x, host, "host", "threads", OPT | NUL, -1);
    node *model = get_map(x, root, "", "model", OPT);
    r->model_path = get_str(x, model, "model", "path", OPT | NUL);
    r->model_sha256 = get_str(x, model, "model", "sha256", OPT | NUL);
    r->model_arch = get_str(x, model, "model", "arch", OPT | NUL);
    read_side(x, root, "subject", &r->subject);
    read_side(x, root, "reference", &r->reference);
    node *pol = get_map(x, root, "", "policy", OPT);
    r->policy_name = get_str(x, pol, "policy", "name", OPT | NUL);
    r->policy_origin = get_str(x, pol, "policy", "origin", OPT | NUL);
    r->policy_choice = get_str(x, pol, "policy", "choice", OPT | NUL);
    r->compare_s = get_num(x, get_map(x, root, "", "timings", OPT), "timings", "compare_s", OPT | NUL);
}

static void read_counts(rx *x, node *summary, parity_report_receipt *r) {
    static const struct { const char *key; size_t off; } keys[] = {
        {"taps", offsetof(parity_compare_counts, taps)},
        {"compared", offsetof(parity_compare_counts, compared)},
        {"pass", offsetof(parity_compare_counts, pass)},
        {"fail", offsetof(parity_compare_counts, fail)},
        {"bit_identical", offsetof(parity_compare_counts, bit_identical)},
        {"shape_mismatch", offsetof(parity_compare_counts, shape_mismatch)},
        {"missing_reference", offsetof(parity_compare_counts, missing_reference)},
        {"missing_subject", offsetof(parity_compare_counts, missing_subject)},
        {"skipped", offsetof(parity_compare_counts, policy_skip)},
    };
    node *c = get_map(x, summary, "summary", "counts", REQ);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t v = get_int(x, c, "summary.counts", keys[i].key, REQ, 0);
        if (v < 0) fail_at(x, bn_yaml_get(c, keys[i].key), "summary.counts", keys[i].key, "must not be negative");
        memcpy((char *)&r->counts + keys[i].off, &v, sizeof v);
    }
    node *e = get_map(x, summary, "summary", "evaluations", OPT);
    r->evals_subject = get_int(x, e, "summary.evaluations", "subject", OPT, -1);
    r->evals_reference = get_int(x, e, "summary.evaluations", "reference", OPT, -1);
    r->evals_compared = get_int(x, e, "summary.evaluations", "compared", OPT, -1);
}

static void read_summary(rx *x, node *root, parity_report_receipt *r) {
    node *s = get_map(x, root, "", "summary", REQ);
    const char *verdict = get_str(x, s, "summary", "verdict", REQ);
    if (verdict && strcmp(verdict, "pass") && strcmp(verdict, "fail"))
        fail_at(x, bn_yaml_get(s, "verdict"), "summary", "verdict", "expected pass or fail, got '%.40s'", verdict);
    r->pass = verdict && !strcmp(verdict, "pass");
    r->diagnosis = get_str(x, s, "summary", "diagnosis", OPT | NUL);
    read_counts(x, s, r);

    const char *fp = "summary.first_divergence";
    node *d = get_map(x, s, "summary", "first_divergence", REQ | NUL);
    r->has_divergence = d != NULL;
    r->div_evaluation = get_str(x, d, fp, "evaluation", REQ);
    r->div_tap = get_str(x, d, fp, "tap", REQ);
    r->div_layer = (int)get_int(x, d, fp, "layer", OPT | NUL, -1);
    r->div_metric = get_str(x, d, fp, "metric", REQ);
    r->div_value = get_num(x, d, fp, "value", REQ | NUL);
    r->div_limit = get_num(x, d, fp, "limit", REQ | NUL);

    node *fe = get_seq(x, s, "summary", "failing_evaluations", OPT);
    r->n_failing_evaluations = seq_len(fe);
    r->failing_evaluations = alloc_items(x, r->n_failing_evaluations, sizeof *r->failing_evaluations);
    for (size_t i = 0; i < r->n_failing_evaluations && !x->st; i++) {
        node *v = bn_yaml_item(fe, i);
        if (!scalar(v)) fail_at(x, v, "summary", "failing_evaluations", "expected evaluation ids");
        r->failing_evaluations[i] = scalar(v);
    }

    node *h = get_seq(x, s, "summary", "hints", REQ);
    r->n_hints = seq_len(h);
    r->hints = alloc_items(x, r->n_hints, sizeof *r->hints);
    char path[48];
    for (size_t i = 0; i < r->n_hints && !x->st; i++) {
        node *m = item_map(x, h, i, "summary.hints", path, sizeof path);
        r->hints[i].name = get_str(x, m, path, "name", REQ);
        r->hints[i].message = get_str(x, m, path, "message", REQ);
        r->hints[i].evidence = get_str(x, m, path, "evidence", OPT | NUL);
    }
}

static void read_growth(rx *x, node *root, parity_report_receipt *r) {
    node *g = get_map(x, root, "", "error_growth", REQ);
    r->growth_metric = get_str(x, g, "error_growth", "metric", OPT | NUL);
    int64_t layers = get_int(x, g, "error_growth", "layers", REQ, 0);
    if (layers < 0 || layers > 100000)
        fail_at(x, bn_yaml_get(g, "layers"), "error_growth", "layers", "%lld is not a layer count", (long long)layers);
    r->layers = (int)layers;
    node *e = get_seq(x, g, "error_growth", "evaluations", REQ);
    r->n_growth = seq_len(e);
    r->growth = alloc_items(x, r->n_growth, sizeof *r->growth);
    char path[48];
    for (size_t i = 0; i < r->n_growth && !x->st; i++) {
        node *m = item_map(x, e, i, "error_growth.evaluations", path, sizeof path);
        r->growth[i].evaluation = get_str(x, m, path, "evaluation", REQ);
        node *v = get_seq(x, m, path, "nmse_max", REQ);
        if (v && seq_len(v) != (size_t)r->layers)
            fail_at(x, v, path, "nmse_max", "%zu values for %d layers", seq_len(v), r->layers);
        r->growth[i].nmse_max = alloc_items(x, (size_t)r->layers, sizeof(double));
        for (int l = 0; l < r->layers && !x->st; l++) {
            node *it = bn_yaml_item(v, (size_t)l);
            double d = NAN;
            if (!bn_yaml_is_null(it) && !bn_yaml_parse_number(scalar(it), 1, &d))
                fail_at(x, it, path, "nmse_max", "item %d: expected a number or null", l);
            r->growth[i].nmse_max[l] = d;
        }
    }
}

static const char *const tap_statuses[] = {"pass", "fail", "shape-mismatch", "missing-reference",
                                           "missing-subject", "skipped"};

static void read_tap(rx *x, node *m, const char *path, parity_report_tap *t) {
    t->evaluation = get_str(x, m, path, "evaluation", REQ);
    t->name = get_str(x, m, path, "name", REQ);
    t->layer = (int)get_int(x, m, path, "layer", OPT | NUL, -1);
    t->status = get_str(x, m, path, "status", REQ);
    size_t k = 0;
    while (t->status && k < 6 && strcmp(t->status, tap_statuses[k])) k++;
    if (t->status && k == 6) fail_at(x, bn_yaml_get(m, "status"), path, "status", "unknown status '%.40s'", t->status);
    t->compared = k <= 1;
    t->failed = k == 1 || k == 2;
    char sub[64];
    snprintf(sub, sizeof sub, "%s.metrics", path);
    node *mt = get_map(x, m, path, "metrics", t->compared ? REQ : OPT);
    t->nmse = get_num(x, mt, sub, "nmse", REQ | NUL);
    t->cosine = get_num(x, mt, sub, "cosine", OPT | NUL);
    t->max_abs = get_num(x, mt, sub, "max_abs", OPT | NUL);
    t->scale = get_num(x, mt, sub, "scale", OPT | NUL);
    t->bit_identical = get_bool(x, mt, sub, "bit_identical", OPT);
    snprintf(sub, sizeof sub, "%s.limits", path);
    node *lim = get_map(x, m, path, "limits", OPT);
    t->nmse_limit = get_num(x, lim, sub, "nmse_max", OPT | NUL);
    t->kld_mean_limit = get_num(x, lim, sub, "kld_mean_max", OPT | NUL);
    snprintf(sub, sizeof sub, "%s.failed", path);
    node *f = get_map(x, m, path, "failed", t->failed ? REQ : OPT);
    t->failed_metric = get_str(x, f, sub, "metric", REQ);
    t->failed_value = get_num(x, f, sub, "value", REQ | NUL);
    t->failed_limit = get_num(x, f, sub, "limit", REQ | NUL);
}

static void read_taps(rx *x, node *root, parity_report_receipt *r) {
    node *taps = get_seq(x, root, "", "taps", REQ);
    r->n_taps = seq_len(taps);
    if (taps && r->n_taps != (size_t)r->counts.taps)
        fail_at(x, taps, "", "taps", "%zu entries but summary.counts.taps says %lld (a truncated receipt?)",
                r->n_taps, (long long)r->counts.taps);
    r->taps = alloc_items(x, r->n_taps, sizeof *r->taps);
    char path[32];
    for (size_t i = 0; i < r->n_taps && !x->st; i++)
        read_tap(x, item_map(x, taps, i, "taps", path, sizeof path), path, &r->taps[i]);
}

static void read_logits(rx *x, node *root, parity_report_receipt *r) {
    node *lg = get_seq(x, root, "", "logits", REQ);
    r->n_logits = seq_len(lg);
    r->logits = alloc_items(x, r->n_logits, sizeof *r->logits);
    char path[32];
    for (size_t i = 0; i < r->n_logits && !x->st; i++) {
        node *m = item_map(x, lg, i, "logits", path, sizeof path);
        parity_report_logits *l = &r->logits[i];
        l->evaluation = get_str(x, m, path, "evaluation", REQ);
        l->status = get_str(x, m, path, "status", REQ);
        l->positions = get_int(x, m, path, "positions", OPT, -1);
        l->invalid = get_int(x, m, path, "invalid", OPT, 0);
        l->top1_agree = get_num(x, m, path, "top1_agree", REQ | NUL);
        l->top5_overlap = get_num(x, m, path, "top5_overlap", OPT | NUL);
        l->kld_mean = get_num(x, m, path, "kld_mean", REQ | NUL);
        l->kld_median = get_num(x, m, path, "kld_median", OPT | NUL);
        l->kld_p99 = get_num(x, m, path, "kld_p99", REQ | NUL);
        l->kld_max = get_num(x, m, path, "kld_max", REQ | NUL);
    }
}

static void read_replay(rx *x, node *root, parity_report_replay *rp) {
    node *m = get_map(x, root, "", "replay", OPT);
    rp->present = m != NULL;
    rp->mode = get_str(x, m, "replay", "mode", REQ);
    rp->model = get_str(x, m, "replay", "model", OPT | NUL);
    node *f = get_map(x, m, "replay", "first_local", OPT | NUL);
    rp->first_evaluation = get_str(x, f, "replay.first_local", "evaluation", REQ);
    rp->first_tap = get_str(x, f, "replay.first_local", "tap", REQ);
    rp->first_metric = get_str(x, f, "replay.first_local", "metric", OPT | NUL);
    rp->first_value = get_num(x, f, "replay.first_local", "value", OPT | NUL);
    rp->first_limit = get_num(x, f, "replay.first_local", "limit", OPT | NUL);
    node *b = get_seq(x, m, "replay", "blocks", OPT);
    rp->n_blocks = seq_len(b);
    rp->blocks = alloc_items(x, rp->n_blocks, sizeof *rp->blocks);
    char path[40];
    for (size_t i = 0; i < rp->n_blocks && !x->st; i++) {
        node *bm = item_map(x, b, i, "replay.blocks", path, sizeof path);
        parity_report_block *blk = &rp->blocks[i];
        blk->evaluation = get_str(x, bm, path, "evaluation", REQ);
        blk->layer = (int)get_int(x, bm, path, "layer", REQ, -1);
        const char *e = get_str(x, bm, path, "error", REQ);
        if (e && strcmp(e, "local") && strcmp(e, "inherited"))
            fail_at(x, bn_yaml_get(bm, "error"), path, "error", "expected local or inherited");
        blk->local = e && !strcmp(e, "local");
        blk->nmse_compared = get_num(x, bm, path, "nmse_compared", OPT | NUL);
        blk->nmse_replayed = get_num(x, bm, path, "nmse_replayed", OPT | NUL);
    }
    rp->n_failing_taps = seq_len(get_seq(x, m, "replay", "failing_taps", OPT));
}

static void read_receipt(rx *x, parity_report_receipt *r) {
    node *root = bn_yaml_root(x->doc);
    if (!root) return fail_at(x, NULL, NULL, "receipt", "empty document: not a bitparity receipt");
    if (root->kind != BN_YAML_MAP)
        return fail_at(x, root, NULL, "receipt", "the document is not a mapping: not a bitparity receipt");
    reject_aliases(x);
    const char *v = get_str(x, root, "", "receipt", REQ);
    if (v && strcmp(v, PARITY_RECEIPT_VERSION))
        fail_at(x, bn_yaml_get(root, "receipt"), NULL, "receipt", "'%.40s' is not a supported version (%s)", v,
                PARITY_RECEIPT_VERSION);
    read_header(x, root, r);
    read_summary(x, root, r);
    read_growth(x, root, r);
    read_taps(x, root, r);
    read_logits(x, root, r);
    read_replay(x, root, &r->replay);
}

void parity_report_receipt_free(parity_report_receipt *r) {
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
static bn_status read_document(bn_yaml_doc *doc, parity_report_receipt **out, bn_error *err) {
    parity_report_receipt *r = calloc(1, sizeof *r);
    char *file = strdup(bn_yaml_origin(doc));
    if (!r || !file) {
        free(r), free(file);
        bn_status st = bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", bn_yaml_origin(doc));
        bn_yaml_free(doc);
        return st;
    }
    r->file = file;
    r->doc_ = doc;
    rx x = {doc, err, BN_OK};
    read_receipt(&x, r);
    if (x.st) {
        parity_report_receipt_free(r);
        return x.st;
    }
    *out = r;
    return BN_OK;
}

bn_status parity_report_parse(const char *name, const char *text, size_t size, parity_report_receipt **out,
                              bn_error *err) {
    if (!name || !text || !out) return bn_error_set(err, BN_ERR_INVALID, "parity_report_parse: NULL argument");
    *out = NULL;
    bn_yaml_doc *doc;
    bn_status st = bn_yaml_parse(name, text, size, RECEIPT_MAX_BYTES, "receipt", &doc, err);
    return st ? st : read_document(doc, out, err);
}

bn_status parity_report_load(const char *path, parity_report_receipt **out, bn_error *err) {
    if (!path || !out) return bn_error_set(err, BN_ERR_INVALID, "parity_report_load: NULL argument");
    *out = NULL;
    bn_yaml_doc *doc;
    bn_status st = bn_yaml_load_file(path, RECEIPT_MAX_BYTES, "receipt", &doc, err);
    return st ? st : read_document(doc, out, err);
}

int parity_report_format_parse(const char *name, parity_report_format *fmt) {
    if (!name) return 0;
    if (!strcmp(name, "html")) return *fmt = PARITY_REPORT_HTML, 1;
    if (!strcmp(name, "markdown") || !strcmp(name, "md")) return *fmt = PARITY_REPORT_MARKDOWN, 1;
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

parity_report_format parity_report_format_for_path(const char *path) {
    return path && (ends_with(path, ".html") || ends_with(path, ".htm")) ? PARITY_REPORT_HTML
                                                                           : PARITY_REPORT_MARKDOWN;
}

size_t parity_report_count_pass(const parity_report_receipt *const *receipts, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += receipts[i]->pass != 0;
    return k;
}

const char *parity_report_focus_evaluation(const parity_report_receipt *r) {
    if (r->has_divergence) return r->div_evaluation;
    for (size_t i = 0; i < r->n_taps; i++)
        if (r->taps[i].failed) return r->taps[i].evaluation;
    if (r->n_failing_evaluations) return r->failing_evaluations[0];
    return r->n_taps ? r->taps[0].evaluation : NULL;
}

/* NaN ranks above everything: a NaN metric is the worst news. */
static int worse(double a, double b) { return isnan(a) ? !isnan(b) : !isnan(b) && a > b; }

size_t parity_report_worst_taps(const parity_report_receipt *r, size_t *idx, size_t max) {
    size_t k = 0;
    for (size_t i = 0; i < r->n_taps && max; i++) {
        const parity_report_tap *t = &r->taps[i];
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

double parity_report_uniform_nmse_limit(const parity_report_receipt *r) {
    double lim = NAN;
    for (size_t i = 0; i < r->n_taps; i++) {
        const parity_report_tap *t = &r->taps[i];
        if (!t->compared || t->layer < 0) continue;
        if (isnan(t->nmse_limit)) return NAN;
        if (isnan(lim)) lim = t->nmse_limit;
        else if (lim != t->nmse_limit) return NAN;
    }
    return lim;
}

bn_status parity_report_render(const parity_report_receipt *const *receipts, size_t n, parity_report_format fmt,
                               FILE *f, bn_error *err) {
    if (!receipts || !n || !f) return bn_error_set(err, BN_ERR_INVALID, "parity_report_render: no receipts");
    return fmt == PARITY_REPORT_HTML ? parity_report_render_html(receipts, n, f, err)
                                     : parity_report_render_markdown(receipts, n, f, err);
}
