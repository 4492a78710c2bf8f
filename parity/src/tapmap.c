/* tapmap.c — tap maps (YAML, read through bitnet/yaml_doc.h) and views of traces
 * through them. See parity/tapmap.h for the file format. */
#include "parity/tapmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/sha256.h"
#include "bitnet/taps.h"
#include "bitnet/yaml_doc.h"
#include "parity/policy.h"

struct parity_tapmap {
    char *origin;            /* file path or "builtin:<name>" */
    char *name, *description;
    char sha256[BN_SHA256_HEX_SIZE];
    parity_layout layout;
    int identity;            /* canonical: tap X is e{k}/X.npy */
    int pruned_last;         /* pruned_rows: last */
    char **producers;        /* [n_producers] globs on producer.name */
    size_t n_producers;
    parity_map_rule *rules;  /* [n_rules] */
    size_t n_rules;
    char **strs;             /* [n_strs] every string the rules point into */
    size_t n_strs, cap_strs;
};

/* ---- parsing ----------------------------------------------------------------- */

typedef struct parse_ctx {
    const bn_yaml_doc *doc;
    parity_tapmap *m;
    bn_error *err;
} parse_ctx;

#define fail(c, code, node, key, ...) bn_yaml_fail((c)->doc, (c)->err, node, code, BN_YAML_KEY, key, __VA_ARGS__)

/* Copies s into the map's string pool; NULL on allocation failure. */
static const char *keep(parity_tapmap *m, const char *s) {
    if (m->n_strs == m->cap_strs) {
        size_t cap = m->cap_strs ? 2 * m->cap_strs : 32;
        char **p = realloc(m->strs, cap * sizeof *p);
        if (!p) return NULL;
        m->strs = p;
        m->cap_strs = cap;
    }
    char *d = strdup(s);
    if (d) m->strs[m->n_strs++] = d;
    return d;
}

static bn_status need_string(const parse_ctx *c, const bn_yaml_node *n, const char *key, const char **out) {
    const char *v = bn_yaml_str(n);
    if (!v || !*v) return fail(c, BN_ERR_FORMAT, n, key, "expected a non-empty string");
    if (!(*out = keep(c->m, v)))
        return bn_error_nomem(c->err, strlen(v) + 1, "%s: %s", bn_yaml_origin(c->doc), key);
    return BN_OK;
}

/* Index of v among the NULL-terminated names, or -1 after an error naming them. */
static int need_choice(const parse_ctx *c, const bn_yaml_node *n, const char *key, const char *const *names,
                       bn_status *st) {
    const char *v = bn_yaml_str(n);
    for (int i = 0; v && names[i]; i++)
        if (!strcmp(v, names[i])) return i;
    char list[160] = "";
    for (int i = 0; names[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    *st = fail(c, BN_ERR_FORMAT, n, key, "expected one of %s, got '%.40s'", list, v ? v : "?");
    return -1;
}

static bn_status need_bool(const parse_ctx *c, const bn_yaml_node *n, const char *key, int *out) {
    static const char *const names[] = {"false", "true", NULL};
    bn_status st = BN_OK;
    int i = need_choice(c, n, key, names, &st);
    if (i >= 0) *out = i;
    return st;
}

/* Number of "{N}" in s; other braces are errors (typos like "{n}"). */
static int count_layer_marks(const char *s, int *bad) {
    int n = 0;
    *bad = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '{') {
            if (strncmp(p, "{N}", 3)) *bad = 1;
            else n++;
        } else if (*p == '}' && (p < s + 2 || strncmp(p - 2, "{N}", 3))) {
            *bad = 1;
        }
    }
    return n;
}

static bn_status check_pattern(const parse_ctx *c, const bn_yaml_node *n, const char *key, const char *s, int *marks) {
    int bad;
    *marks = count_layer_marks(s, &bad);
    if (bad || *marks > 1)
        return fail(c, BN_ERR_FORMAT, n, key, "'%.60s': the only placeholder is one {N} (the layer)", s);
    return BN_OK;
}

typedef bn_status (*pair_fn)(const parse_ctx *c, void *ud, const char *key, const bn_yaml_node *kn,
                             const bn_yaml_node *vn);

/* Calls fn for each key of a mapping, rejecting duplicate and non-scalar keys. */
static bn_status each_pair(const parse_ctx *c, const bn_yaml_node *map, const char *what, pair_fn fn, void *ud) {
    if (map->kind != BN_YAML_MAP) return fail(c, BN_ERR_FORMAT, map, what, "expected a mapping");
    for (size_t i = 0; i < map->n; i++) {
        const bn_yaml_node *kn = bn_yaml_key(map, i), *vn = bn_yaml_value(map, i);
        const char *key = bn_yaml_str(kn);
        if (!key) return fail(c, BN_ERR_FORMAT, kn, what, "keys must be names");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(bn_yaml_str(bn_yaml_key(map, j)), key))
                return fail(c, BN_ERR_FORMAT, kn, key, "duplicate key");
        bn_status st = fn(c, ud, key, kn, vn);
        if (st) return st;
    }
    return BN_OK;
}

static bn_status parse_ops(const parse_ctx *c, const bn_yaml_node *vn, parity_map_rule *r) {
    if (vn->kind == BN_YAML_SCALAR) {
        r->n_ops = 1;
        return need_string(c, vn, "op", &r->ops[0]);
    }
    if (vn->kind != BN_YAML_LIST) return fail(c, BN_ERR_FORMAT, vn, "op", "expected an op or a list of ops");
    if (vn->n < 1 || vn->n > PARITY_MAP_MAX_OPS)
        return fail(c, BN_ERR_FORMAT, vn, "op", "expected 1 to %d ops, got %zu", PARITY_MAP_MAX_OPS, vn->n);
    int n = (int)vn->n;
    for (int i = 0; i < n; i++) {
        bn_status st = need_string(c, bn_yaml_item(vn, (size_t)i), "op", &r->ops[i]);
        if (st) return st;
    }
    r->n_ops = n;
    return BN_OK;
}

static bn_status head_dim_pair(const parse_ctx *c, void *ud, const char *key, const bn_yaml_node *kn,
                               const bn_yaml_node *vn) {
    parity_map_rule *r = ud;
    if (!strcmp(key, "node")) return need_string(c, vn, "head_dim.node", &r->head_dim_node);
    if (!strcmp(key, "op")) return need_string(c, vn, "head_dim.op", &r->head_dim_op);
    return fail(c, BN_ERR_FORMAT, kn, key, "unknown key in head_dim (keys: node op)");
}

static bn_status rule_pair(const parse_ctx *c, void *ud, const char *key, const bn_yaml_node *kn,
                           const bn_yaml_node *vn) {
    static const char *const layouts[] = {"rows", "head_rows", "heads", NULL};
    static const char *const scales[] = {"none", "inv_sqrt_head_dim", NULL};
    static const char *const masks[] = {"none", "causal", NULL};
    parity_map_rule *r = ud;
    bn_status st = BN_OK;
    int i;
    if (!strcmp(key, "tap")) return need_string(c, vn, key, &r->tap);
    if (!strcmp(key, "node")) return need_string(c, vn, key, &r->node);
    if (!strcmp(key, "member")) return need_string(c, vn, key, &r->member);
    if (!strcmp(key, "op")) return parse_ops(c, vn, r);
    if (!strcmp(key, "head_dim")) return each_pair(c, vn, key, head_dim_pair, r);
    if (!strcmp(key, "occurrence")) {
        int64_t o;
        if (!bn_yaml_parse_int(bn_yaml_str(vn), 0, 1000000, &o))
            return fail(c, BN_ERR_FORMAT, vn, key, "expected a whole number in [0, 1000000]");
        r->occurrence = o;
        return BN_OK;
    }
    if (!strcmp(key, "layout")) {
        if ((i = need_choice(c, vn, key, layouts, &st)) >= 0) r->layout = (parity_map_layout)i;
        return st;
    }
    if (!strcmp(key, "scale")) {
        if ((i = need_choice(c, vn, key, scales, &st)) >= 0) r->scale_inv_sqrt_head_dim = i;
        return st;
    }
    if (!strcmp(key, "mask")) {
        if ((i = need_choice(c, vn, key, masks, &st)) >= 0) r->causal_mask = i;
        return st;
    }
    return fail(c, BN_ERR_FORMAT, kn, key,
                "unknown key in a tap entry (keys: tap node op occurrence member layout scale head_dim mask)");
}

/* The cross-key checks of one entry, once all its keys are read. */
static bn_status check_rule(const parse_ctx *c, const bn_yaml_node *n, const parity_map_rule *r) {
    int tap_marks, node_marks = 0, hd_marks = 0;
    bn_status st;
    if (!r->tap) return fail(c, BN_ERR_FORMAT, n, "tap", "missing (every entry names its canonical tap)");
    if (!r->node && !r->member) return fail(c, BN_ERR_FORMAT, n, "node", "missing (give node or member)");
    if ((st = check_pattern(c, n, "tap", r->tap, &tap_marks))) return st;
    if (r->node && (st = check_pattern(c, n, "node", r->node, &node_marks))) return st;
    if (r->node && node_marks != tap_marks)
        return fail(c, BN_ERR_FORMAT, n, "node", "'%s' and tap '%s' must both have {N} or neither", r->node, r->tap);
    if (!r->node && tap_marks)
        return fail(c, BN_ERR_FORMAT, n, "member", "a member-only entry cannot bind {N}: give node too");
    if (r->member && strchr(r->member, '{')) return fail(c, BN_ERR_FORMAT, n, "member", "no placeholders allowed");
    if (r->scale_inv_sqrt_head_dim && !r->head_dim_node)
        return fail(c, BN_ERR_FORMAT, n, "head_dim", "scale: inv_sqrt_head_dim needs head_dim: {node, op}");
    if (r->head_dim_node && (st = check_pattern(c, n, "head_dim.node", r->head_dim_node, &hd_marks))) return st;
    if (hd_marks > tap_marks) return fail(c, BN_ERR_FORMAT, n, "head_dim.node", "{N} without a layer in tap");
    if (r->causal_mask && r->layout != PARITY_MAP_HEADS)
        return fail(c, BN_ERR_FORMAT, n, "mask", "mask: causal needs layout: heads");
    return BN_OK;
}

static bn_status parse_rules(const parse_ctx *c, const bn_yaml_node *vn) {
    if (vn->kind != BN_YAML_LIST) return fail(c, BN_ERR_FORMAT, vn, "taps", "expected a list of entries");
    size_t n = vn->n;
    c->m->rules = calloc(n ? n : 1, sizeof *c->m->rules);
    if (!c->m->rules)
        return bn_error_nomem(c->err, (n ? n : 1) * sizeof *c->m->rules, "%s: %zu map entries", bn_yaml_origin(c->doc), n);
    for (size_t i = 0; i < n; i++) {
        const bn_yaml_node *e = bn_yaml_item(vn, i);
        parity_map_rule *r = &c->m->rules[i];
        r->line = e->line;
        bn_status st = each_pair(c, e, "taps[]", rule_pair, r);
        if (!st) st = check_rule(c, e, r);
        if (st) return st;
        c->m->n_rules = i + 1;
    }
    return BN_OK;
}

static bn_status parse_producers(const parse_ctx *c, const bn_yaml_node *vn) {
    parity_tapmap *m = c->m;
    if (vn->kind == BN_YAML_SCALAR) {
        const char *s;
        bn_status st = need_string(c, vn, "producers", &s);
        if (st) return st;
        m->producers = malloc(sizeof *m->producers);
        if (!m->producers) return bn_error_nomem(c->err, sizeof *m->producers, "%s: producers", bn_yaml_origin(c->doc));
        m->producers[0] = (char *)s;
        m->n_producers = 1;
        return BN_OK;
    }
    if (vn->kind != BN_YAML_LIST) return fail(c, BN_ERR_FORMAT, vn, "producers", "expected a list of globs");
    size_t n = vn->n;
    m->producers = calloc(n ? n : 1, sizeof *m->producers);
    if (!m->producers)
        return bn_error_nomem(c->err, (n ? n : 1) * sizeof *m->producers, "%s: %zu producers", bn_yaml_origin(c->doc), n);
    for (size_t i = 0; i < n; i++) {
        const char *s;
        bn_status st = need_string(c, bn_yaml_item(vn, i), "producers", &s);
        if (st) return st;
        m->producers[m->n_producers++] = (char *)s;
    }
    return BN_OK;
}

typedef struct top_seen {
    const bn_yaml_node *version, *name, *layout, *taps;
} top_seen;

static bn_status top_pair(const parse_ctx *c, void *ud, const char *key, const bn_yaml_node *kn,
                          const bn_yaml_node *vn) {
    static const char *const layouts[] = {"canonical", "ggml-nodes", NULL};
    static const char *const pruned[] = {"none", "last", NULL};
    top_seen *seen = ud;
    parity_tapmap *m = c->m;
    bn_status st = BN_OK;
    int i;
    if (!strcmp(key, "tapmap")) {
        const char *v = bn_yaml_str(vn);
        seen->version = vn;
        if (!v) return fail(c, BN_ERR_FORMAT, vn, key, "expected a version string");
        if (strcmp(v, PARITY_TAPMAP_VERSION))
            return fail(c, BN_ERR_UNSUPPORTED, vn, key, "version '%.40s' is not supported (expected %s)", v,
                        PARITY_TAPMAP_VERSION);
        return BN_OK;
    }
    if (!strcmp(key, "name")) {
        seen->name = vn;
        return need_string(c, vn, key, (const char **)&m->name);
    }
    if (!strcmp(key, "description")) {
        if (vn->kind != BN_YAML_SCALAR) return fail(c, BN_ERR_FORMAT, vn, key, "expected text");
        return need_string(c, vn, key, (const char **)&m->description);
    }
    if (!strcmp(key, "layout")) {
        seen->layout = vn;
        if ((i = need_choice(c, vn, key, layouts, &st)) >= 0) m->layout = (parity_layout)i;
        return st;
    }
    if (!strcmp(key, "pruned_rows")) {
        if ((i = need_choice(c, vn, key, pruned, &st)) >= 0) m->pruned_last = i;
        return st;
    }
    if (!strcmp(key, "identity")) return need_bool(c, vn, key, &m->identity);
    if (!strcmp(key, "producers")) return parse_producers(c, vn);
    if (!strcmp(key, "taps")) {
        seen->taps = vn;
        return parse_rules(c, vn);
    }
    return fail(c, BN_ERR_FORMAT, kn, key,
                "unknown key (keys: tapmap name description layout producers pruned_rows identity taps)");
}

static bn_status parse_document(parse_ctx *c) {
    const bn_yaml_node *root = bn_yaml_root(c->doc);
    if (!root) return fail(c, BN_ERR_FORMAT, NULL, NULL, "empty document");
    top_seen seen = {0};
    bn_status st = each_pair(c, root, "document", top_pair, &seen);
    if (st) return st;
    if (!seen.version) return fail(c, BN_ERR_FORMAT, root, "tapmap", "missing (expected tapmap: %s)", PARITY_TAPMAP_VERSION);
    if (!seen.name) return fail(c, BN_ERR_FORMAT, root, "name", "missing");
    if (!seen.layout) return fail(c, BN_ERR_FORMAT, root, "layout", "missing (canonical or ggml-nodes)");
    if (c->m->layout == PARITY_LAYOUT_CANONICAL && (!c->m->identity || seen.taps))
        return fail(c, BN_ERR_FORMAT, seen.taps ? seen.taps : root, "identity",
                    "a canonical map is the identity: identity: true and no taps");
    if (c->m->layout == PARITY_LAYOUT_GGML_NODES && (c->m->identity || !c->m->n_rules))
        return fail(c, BN_ERR_FORMAT, seen.taps ? seen.taps : root, "taps",
                    "a ggml-nodes map needs a non-empty taps list and no identity");
    return BN_OK;
}

#undef fail

bn_status parity_tapmap_load_string(const char *text, size_t len, const char *origin, parity_tapmap **out,
                                    bn_error *err) {
    *out = NULL;
    bn_yaml_doc *doc;
    bn_status st = bn_yaml_parse(origin, text, len, PARITY_TAPMAP_MAX_BYTES, "tap map", &doc, err);
    if (st) return st;
    parity_tapmap *m = calloc(1, sizeof *m);
    if (!m || !(m->origin = strdup(origin))) {
        free(m);
        bn_yaml_free(doc);
        return bn_error_nomem(err, sizeof *m + strlen(origin) + 1, "%s: the tap map", origin);
    }
    uint8_t dg[BN_SHA256_DIGEST_SIZE];
    bn_sha256_buffer(text, len, dg);
    bn_sha256_hex(dg, m->sha256);
    parse_ctx c = {doc, m, err};
    st = parse_document(&c);
    bn_yaml_free(doc);
    if (st) {
        parity_tapmap_free(m);
        return st;
    }
    if (!m->description) m->description = (char *)keep(m, "");
    *out = m;
    return BN_OK;
}

bn_status parity_tapmap_load_file(const char *path, parity_tapmap **out, bn_error *err) {
    *out = NULL;
    char *text;
    size_t len;
    bn_status st = bn_yaml_read_file(path, PARITY_TAPMAP_MAX_BYTES, "tap map", &text, &len, err);
    if (st) return st;
    st = parity_tapmap_load_string(text, len, path, out, err);
    free(text);
    return st;
}

bn_status parity_tapmap_load_builtin(const char *name, parity_tapmap **out, bn_error *err) {
    *out = NULL;
    const char *text = parity_tapmap_builtin_text(name);
    if (!text) {
        size_t n;
        const char *const *names = parity_tapmap_builtin_names(&n);
        char list[128] = "";
        for (size_t i = 0; i < n; i++) {
            strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, names[i], sizeof list - strlen(list) - 1);
        }
        return bn_error_set(err, BN_ERR_NOT_FOUND, "no built-in tap map '%s' (built-in: %s)", name, list);
    }
    char origin[96];
    snprintf(origin, sizeof origin, "builtin:%s", name);
    return parity_tapmap_load_string(text, strlen(text), origin, out, err);
}

bn_status parity_tapmap_load(const char *name_or_path, parity_tapmap **out, bn_error *err) {
    /* A bare word that is no file is meant as a built-in name: say which exist. */
    FILE *f = strchr(name_or_path, '/') ? NULL : fopen(name_or_path, "rb");
    if (f) fclose(f);
    if (parity_tapmap_builtin_text(name_or_path) || (!strchr(name_or_path, '/') && !f))
        return parity_tapmap_load_builtin(name_or_path, out, err);
    return parity_tapmap_load_file(name_or_path, out, err);
}

bn_status parity_tapmap_for_trace(const parity_trace *t, parity_tapmap **out, bn_error *err) {
    *out = NULL;
    if (parity_trace_layout(t) == PARITY_LAYOUT_CANONICAL) return parity_tapmap_load_builtin("canonical", out, err);
    const char *producer = parity_trace_get(t, "producer.name");
    size_t n;
    const char *const *names = parity_tapmap_builtin_names(&n);
    for (size_t i = 0; producer && i < n; i++) {
        parity_tapmap *m;
        bn_status st = parity_tapmap_load_builtin(names[i], &m, err);
        if (st) return st;
        for (size_t j = 0; m->layout == parity_trace_layout(t) && j < m->n_producers; j++)
            if (parity_glob_match(m->producers[j], producer)) return *out = m, BN_OK;
        parity_tapmap_free(m);
    }
    return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: meta.yaml: no built-in tap map reads producer '%s' (%s layout): give --map FILE",
                        parity_trace_path(t), producer ? producer : "(none)",
                        parity_trace_layout_name(parity_trace_layout(t)));
}

void parity_tapmap_free(parity_tapmap *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_strs; i++) free(m->strs[i]);
    free(m->strs);
    free(m->producers);
    free(m->rules);
    free(m->origin);
    free(m);
}

const char *parity_tapmap_name(const parity_tapmap *m) { return m->name; }
const char *parity_tapmap_origin(const parity_tapmap *m) { return m->origin; }
const char *parity_tapmap_sha256(const parity_tapmap *m) { return m->sha256; }
parity_layout parity_tapmap_layout(const parity_tapmap *m) { return m->layout; }
int parity_tapmap_identity(const parity_tapmap *m) { return m->identity; }
size_t parity_tapmap_rule_count(const parity_tapmap *m) { return m->n_rules; }
const parity_map_rule *parity_tapmap_rule(const parity_tapmap *m, size_t i) {
    return i < m->n_rules ? &m->rules[i] : NULL;
}

/* ---- names ------------------------------------------------------------------- */

int parity_tap_layer(const char *name) {
    int layer;
    bn_tap_kind kind;
    if (bn_tap_parse(name, &layer, &kind)) return layer;
    if (strncmp(name, "blk.", 4)) return -1;
    long v = 0;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9' && v < 1000000; p++) v = v * 10 + (*p - '0');
    return *p == '.' ? (int)v : -1;
}

/* Matches name against a pattern holding at most one {N}; *layer gets the
 * number ({N} = 1..7 decimal digits), -1 when the pattern has none. */
static int pattern_match(const char *pat, const char *name, int *layer) {
    const char *mark = strstr(pat, "{N}");
    *layer = -1;
    if (!mark) return !strcmp(pat, name);
    size_t pre = (size_t)(mark - pat);
    if (strncmp(pat, name, pre)) return 0;
    const char *p = name + pre;
    long v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 8; p++, digits++) v = v * 10 + (*p - '0');
    if (!digits || digits > 7 || (digits > 1 && name[pre] == '0')) return 0;
    if (strcmp(p, mark + 3)) return 0;
    *layer = (int)v;
    return 1;
}

/* Writes pat with {N} replaced by layer into buf (truncating at size). */
static void pattern_fill(char *buf, size_t size, const char *pat, int layer) {
    const char *mark = strstr(pat, "{N}");
    if (!mark) snprintf(buf, size, "%s", pat);
    else snprintf(buf, size, "%.*s%d%s", (int)(mark - pat), pat, layer, mark + 3);
}

static int op_ok(const parity_map_rule *r, const char *op) {
    if (!r->n_ops) return 1;
    for (int i = 0; i < r->n_ops; i++)
        if (!strcmp(r->ops[i], op)) return 1;
    return 0;
}

/* ---- views ------------------------------------------------------------------- */

typedef struct view_tap {
    char *name;                  /* canonical tap name */
    char *source;                /* member (+ node) for receipts */
    const parity_map_rule *rule; /* NULL for the identity map */
    int layer;                   /* the {N} bound, -1 for none */
    int64_t node;                /* index in the evaluation's node list, -1 for none */
    char *member;                /* the full member name to load */
} view_tap;

typedef struct view_eval {
    view_tap *taps;  /* [n] in evaluation order */
    int64_t n;
    int64_t *slots;  /* [mask + 1] open-addressing hash of names -> index, -1 empty */
    uint64_t mask;
} view_eval;

struct parity_tapview {
    const parity_trace *t;
    const parity_tapmap *m;
    view_eval *evals; /* [n_evals] */
    int64_t n_evals;
};

static int tap_known(const view_eval *e, const char *name) {
    for (int64_t i = 0; i < e->n; i++)
        if (!strcmp(e->taps[i].name, name)) return 1;
    return 0;
}

/* Appends a tap unless its name is already taken (first claim wins). */
static bn_status add_tap(view_eval *e, int64_t *cap, const char *name, const char *member, const char *source,
                         const parity_map_rule *r, int layer, int64_t node, bn_error *err) {
    if (tap_known(e, name)) return BN_OK;
    if (e->n == *cap) {
        int64_t nc = *cap ? 2 * *cap : 64;
        view_tap *p = realloc(e->taps, (size_t)nc * sizeof *p);
        if (!p) return bn_error_nomem(err, (size_t)nc * sizeof *p, "tap view: the list of %lld taps", (long long)nc);
        e->taps = p;
        *cap = nc;
    }
    view_tap *v = &e->taps[e->n];
    *v = (view_tap){strdup(name), strdup(source), r, layer, node, strdup(member)};
    if (!v->name || !v->source || !v->member) {
        free(v->name), free(v->source), free(v->member);
        return bn_error_nomem(err, strlen(name) + strlen(source) + strlen(member) + 3, "tap view: tap %s", name);
    }
    e->n++;
    return BN_OK;
}

static bn_status build_identity(const parity_tapview *v, int64_t k, view_eval *e, bn_error *err) {
    int64_t cap = 0;
    const npz_reader *z = parity_trace_npz(v->t);
    for (int64_t i = 0; i < parity_trace_tap_count(v->t); i++) {
        const char *tap = parity_trace_tap_name(v->t, i);
        int64_t idx = parity_trace_resolve(v->t, k, tap);
        if (idx < 0) continue;
        const char *member = npz_member_at(z, idx)->name;
        bn_status st = add_tap(e, &cap, tap, member, member, NULL, parity_tap_layer(tap), -1, err);
        if (st) return st;
    }
    return BN_OK;
}

/* How many nodes so far matched (rule, layer): the occurrence counters. */
typedef struct occ_counter {
    const parity_map_rule *rule;
    int layer;
    int64_t count;
} occ_counter;

static int64_t occurrence_next(occ_counter *cs, int64_t *n, const parity_map_rule *r, int layer) {
    for (int64_t i = 0; i < *n; i++)
        if (cs[i].rule == r && cs[i].layer == layer) return cs[i].count++;
    cs[(*n)++] = (occ_counter){r, layer, 1};
    return 0;
}

static bn_status add_node_tap(const parity_tapview *v, int64_t k, view_eval *e, int64_t *cap,
                              const parity_map_rule *r, int layer, int64_t i, bn_error *err) {
    const parity_node *nd = parity_trace_node(v->t, k, i);
    char tap[256], source[512], member[300];
    pattern_fill(tap, sizeof tap, r->tap, layer);
    const char *file = nd->member;
    if (r->member) {
        snprintf(member, sizeof member, "e%lld/%s", (long long)k, r->member);
        if (npz_find(parity_trace_npz(v->t), member) >= 0) file = member;
    }
    snprintf(source, sizeof source, "%s (%s %s, index.tsv line %lld)", file, nd->name, nd->op, (long long)nd->line);
    return add_tap(e, cap, tap, file, source, r, layer, i, err);
}

static bn_status build_nodes(const parity_tapview *v, int64_t k, view_eval *e, bn_error *err) {
    int64_t n_nodes = parity_trace_node_count(v->t, k), n_cs = 0, cap = 0;
    occ_counter *cs = malloc((size_t)(n_nodes ? n_nodes : 1) * sizeof *cs); /* at most one per node */
    if (!cs)
        return bn_error_nomem(err, (size_t)(n_nodes ? n_nodes : 1) * sizeof *cs, "tap view: the counts of %lld nodes",
                              (long long)n_nodes);
    bn_status st = BN_OK;
    for (int64_t i = 0; i < n_nodes && !st; i++) {
        const parity_node *nd = parity_trace_node(v->t, k, i);
        for (size_t j = 0; j < v->m->n_rules; j++) {
            const parity_map_rule *r = &v->m->rules[j];
            int layer;
            if (!r->node || !pattern_match(r->node, nd->name, &layer) || !op_ok(r, nd->op)) continue;
            if (occurrence_next(cs, &n_cs, r, layer) == r->occurrence) st = add_node_tap(v, k, e, &cap, r, layer, i, err);
            break;
        }
    }
    free(cs);
    for (size_t j = 0; j < v->m->n_rules && !st; j++) { /* member-only entries go last */
        const parity_map_rule *r = &v->m->rules[j];
        char member[300];
        snprintf(member, sizeof member, "e%lld/%s", (long long)k, r->member ? r->member : "");
        if (r->node || npz_find(parity_trace_npz(v->t), member) < 0) continue;
        st = add_tap(e, &cap, r->tap, member, member, r, -1, -1, err);
    }
    return st;
}

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bn_status index_eval(view_eval *e, bn_error *err) {
    uint64_t size = 16;
    while (size < 2 * (uint64_t)e->n) size *= 2;
    e->slots = malloc(size * sizeof *e->slots);
    if (!e->slots) return bn_error_nomem(err, size * sizeof *e->slots, "tap view: the name table of %lld taps", (long long)e->n);
    e->mask = size - 1;
    for (uint64_t i = 0; i < size; i++) e->slots[i] = -1;
    for (int64_t i = 0; i < e->n; i++) {
        uint64_t h = name_hash(e->taps[i].name) & e->mask;
        while (e->slots[h] >= 0) h = (h + 1) & e->mask;
        e->slots[h] = i;
    }
    return BN_OK;
}

bn_status parity_tapview_open(const parity_trace *t, const parity_tapmap *m, parity_tapview **out, bn_error *err) {
    *out = NULL;
    if (parity_tapmap_layout(m) != parity_trace_layout(t))
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: layout %s cannot be read with tap map '%s' (%s layout)",
                            parity_trace_path(t), parity_trace_layout_name(parity_trace_layout(t)), m->name,
                            parity_trace_layout_name(m->layout));
    parity_tapview *v = calloc(1, sizeof *v);
    int64_t n = parity_trace_eval_count(t);
    if (!v || !(v->evals = calloc((size_t)(n ? n : 1), sizeof *v->evals))) {
        free(v);
        return bn_error_nomem(err, sizeof *v + (size_t)(n ? n : 1) * sizeof *v->evals, "tap view: %s",
                              parity_trace_path(t));
    }
    v->t = t;
    v->m = m;
    v->n_evals = n;
    bn_status st = BN_OK;
    for (int64_t k = 0; k < n && !st; k++) {
        st = m->identity ? build_identity(v, k, &v->evals[k], err) : build_nodes(v, k, &v->evals[k], err);
        if (!st) st = index_eval(&v->evals[k], err);
    }
    if (st) {
        parity_tapview_free(v);
        return st;
    }
    *out = v;
    return BN_OK;
}

void parity_tapview_free(parity_tapview *v) {
    if (!v) return;
    for (int64_t k = 0; k < v->n_evals; k++) {
        view_eval *e = &v->evals[k];
        for (int64_t i = 0; i < e->n; i++) free(e->taps[i].name), free(e->taps[i].source), free(e->taps[i].member);
        free(e->taps);
        free(e->slots);
    }
    free(v->evals);
    free(v);
}

const parity_trace *parity_tapview_trace(const parity_tapview *v) { return v->t; }
const parity_tapmap *parity_tapview_map(const parity_tapview *v) { return v->m; }

int64_t parity_tapview_count(const parity_tapview *v, int64_t k) {
    return k >= 0 && k < v->n_evals ? v->evals[k].n : 0;
}

static const view_tap *view_at(const parity_tapview *v, int64_t k, int64_t i) {
    if (k < 0 || k >= v->n_evals || i < 0 || i >= v->evals[k].n) return NULL;
    return &v->evals[k].taps[i];
}

const char *parity_tapview_name(const parity_tapview *v, int64_t k, int64_t i) {
    const view_tap *t = view_at(v, k, i);
    return t ? t->name : NULL;
}

const char *parity_tapview_source(const parity_tapview *v, int64_t k, int64_t i) {
    const view_tap *t = view_at(v, k, i);
    return t ? t->source : NULL;
}

int64_t parity_tapview_find(const parity_tapview *v, int64_t k, const char *name) {
    if (k < 0 || k >= v->n_evals || !v->evals[k].slots) return -1;
    const view_eval *e = &v->evals[k];
    for (uint64_t h = name_hash(name) & e->mask; e->slots[h] >= 0; h = (h + 1) & e->mask)
        if (!strcmp(e->taps[e->slots[h]].name, name)) return e->slots[h];
    return -1;
}

void parity_tensor_free(parity_tensor *t) {
    if (!t) return;
    if (!t->borrowed) free(t->data);
    memset(t, 0, sizeof *t);
}

/* ---- loading ------------------------------------------------------------------- */

/* Shapes the flat array as (rows, width) rows of the evaluation. */
static bn_status shape_rows(const parity_tapview *v, const parity_eval *ev, int64_t width, parity_tensor *o,
                            const char *what, bn_error *err) {
    if (width < 1 || o->n % (size_t)width)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %zu elements do not make rows of %lld", what, o->n,
                            (long long)width);
    int64_t rows = (int64_t)(o->n / (size_t)width);
    o->ndim = 2;
    o->shape[0] = rows;
    o->shape[1] = width;
    o->row0 = v->m->pruned_last && rows < ev->n_tokens ? ev->n_tokens - rows : 0;
    return BN_OK;
}

/* (nh, T', n_kv) -> (nh, T', p0 + T) in place, when the cache is wide enough. */
static void crop_heads(const parity_eval *ev, int64_t kv, int64_t rows, int64_t heads, parity_tensor *o) {
    int64_t cols = ev->p0 + ev->n_tokens;
    o->ndim = 3;
    o->shape[0] = heads;
    o->shape[1] = rows;
    o->shape[2] = kv;
    o->row0 = rows < ev->n_tokens ? ev->n_tokens - rows : 0;
    if (kv < cols) return; /* left whole: the comparison reports the mismatch */
    for (int64_t r = 0; r < heads * rows; r++) memmove(o->data + r * cols, o->data + r * kv, (size_t)cols * sizeof(float));
    o->shape[2] = cols;
    o->n = (size_t)(heads * rows * cols);
}

static bn_status head_dim(const parity_tapview *v, int64_t k, const view_tap *vt, int64_t *D, bn_error *err) {
    char name[256];
    pattern_fill(name, sizeof name, vt->rule->head_dim_node, vt->layer);
    int64_t i = parity_trace_find_node(v->t, k, name, vt->rule->head_dim_op, 0);
    if (i < 0)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: e%lld: node '%s' (%s) for the head size of %s is absent (%s:%d)",
                            parity_trace_path(v->t), (long long)k, name,
                            vt->rule->head_dim_op ? vt->rule->head_dim_op : "any op", vt->name, v->m->origin,
                            vt->rule->line);
    *D = parity_trace_node(v->t, k, i)->ne[0];
    return BN_OK;
}

/* The ggml kq node is q·k before the softmax's scale, and its masked cells
 * hold real products: give it the canonical form (scaled, -inf above the
 * diagonal of each query position). */
static bn_status scale_and_mask(const parity_tapview *v, int64_t k, const view_tap *vt, const parity_eval *ev,
                                parity_tensor *o, bn_error *err) {
    if (vt->rule->scale_inv_sqrt_head_dim) {
        int64_t D = 0;
        bn_status st = head_dim(v, k, vt, &D, err);
        if (st) return st;
        if (D < 1) return bn_error_set(err, BN_ERR_FORMAT, "%s: e%lld: head size %lld", parity_trace_path(v->t), (long long)k, (long long)D);
        const float s = 1.0f / sqrtf((float)D);
        for (size_t i = 0; i < o->n; i++) o->data[i] *= s;
    }
    if (vt->rule->causal_mask && o->ndim == 3) {
        int64_t rows = o->shape[1], cols = o->shape[2];
        for (int64_t h = 0; h < o->shape[0]; h++)
            for (int64_t t = 0; t < rows; t++) {
                int64_t pos = ev->p0 + o->row0 + t; /* the query's position: it sees keys 0..pos */
                float *row = o->data + (h * rows + t) * cols;
                for (int64_t j = pos + 1; j < cols; j++) row[j] = -INFINITY;
            }
    }
    return BN_OK;
}

/* Canonical form of a node's array, from its ggml ne (numpy shapes drop
 * leading 1s, so a decode step's (1, C) arrives as (C)). */
static bn_status transform_node(const parity_tapview *v, int64_t k, const view_tap *vt, const npz_array_info *info,
                                parity_tensor *o, const char *what, bn_error *err) {
    const parity_eval *ev = parity_trace_eval(v->t, k);
    const parity_map_rule *r = vt->rule;
    if (vt->node < 0) return shape_rows(v, ev, info->ndim ? info->shape[info->ndim - 1] : 1, o, what, err);
    const int64_t *ne = parity_trace_node(v->t, k, vt->node)->ne;
    int from_node = !strcmp(vt->member, parity_trace_node(v->t, k, vt->node)->member);
    if (from_node && ne[0] * ne[1] * ne[2] * ne[3] != info->nelem)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %lld elements but index.tsv says ne = %lld %lld %lld %lld", what,
                            (long long)info->nelem, (long long)ne[0], (long long)ne[1], (long long)ne[2],
                            (long long)ne[3]);
    if (!from_node) /* a member override (logits.npy) carries its own numpy shape */
        return shape_rows(v, ev, info->ndim ? info->shape[info->ndim - 1] : 1, o, what, err);
    switch (r->layout) {
    case PARITY_MAP_ROWS: return shape_rows(v, ev, ne[0], o, what, err);
    case PARITY_MAP_HEAD_ROWS: return shape_rows(v, ev, ne[0] * ne[1], o, what, err);
    case PARITY_MAP_HEADS:
        if (ne[3] != 1) return bn_error_set(err, BN_ERR_FORMAT, "%s: heads layout needs ne3 = 1", what);
        crop_heads(ev, ne[0], ne[1], ne[2], o);
        return scale_and_mask(v, k, vt, ev, o, err);
    }
    return bn_error_set(err, BN_ERR_INTERNAL, "%s: unknown layout", what);
}

static bn_status tapview_load(const parity_tapview *v, int64_t k, int64_t i, parity_tensor *out, parity_f32_buf *buf,
                              bn_error *err) {
    memset(out, 0, sizeof *out);
    const view_tap *vt = view_at(v, k, i);
    if (!vt) return bn_error_set(err, BN_ERR_INVALID, "%s: no tap %lld in evaluation %lld", parity_trace_path(v->t), (long long)i, (long long)k);
    npz_array_info info;
    bn_status st = buf ? parity_trace_load_f32_into(v->t, k, vt->member, buf, &info, err)
                       : parity_trace_load_f32(v->t, k, vt->member, &out->data, &info, err);
    if (st) return st;
    if (buf) out->data = buf->data, out->borrowed = true;
    out->n = (size_t)info.nelem;
    char what[400];
    snprintf(what, sizeof what, "%s: %s", parity_trace_path(v->t), vt->source);
    if (v->m->identity) {
        if (info.ndim > 3) st = bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: %d dimensions (a tap has at most 3)", what, info.ndim);
        out->ndim = info.ndim ? info.ndim : 1;
        for (int d = 0; d < 3; d++) out->shape[d] = d < info.ndim ? info.shape[d] : 1;
    } else {
        st = transform_node(v, k, vt, &info, out, what, err);
    }
    if (st) parity_tensor_free(out);
    return st;
}

bn_status parity_tapview_load(const parity_tapview *v, int64_t k, int64_t i, parity_tensor *out, bn_error *err) {
    return tapview_load(v, k, i, out, NULL, err);
}

bn_status parity_tapview_load_into(const parity_tapview *v, int64_t k, int64_t i, parity_tensor *out,
                                   parity_f32_buf *buf, bn_error *err) {
    return tapview_load(v, k, i, out, buf, err);
}
