/* trace.c — parity traces over the npz container: meta.yaml (read through
 * bitnet/yaml_doc.h), ggml-nodes index.tsv, array loading with conversion to
 * float32, and the canonical streaming writer. See parity/trace.h. */
#include "parity/trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <yaml.h>

#include "bitnet/quant.h"
#include "bitnet/yaml_doc.h"

/* Metadata members are small (a few KiB); the caps bound what a hostile
 * archive can make us allocate and parse. */
#define META_MAX_BYTES ((uint64_t)1 << 20)
#define INDEX_MAX_BYTES ((uint64_t)64 << 20)
#define INDEX_MAX_COLUMNS 64
#define MAX_SCALARS 4096
#define MAX_MAP_PAIRS 1024
/* Mapping pairs visited in all: aliases let a small file name one big
 * mapping many times (billion laughs), so the walk has a work budget. */
#define MAX_PAIRS_VISITED 65536
#define MAX_DEPTH 4 /* producer.x.y...: also stops alias cycles */
#define MAX_EVALS ((int64_t)1 << 20)
#define META_NAME "meta.yaml"

typedef unsigned long long ull;

/* --- arena: every string and array of a trace, freed at once ------------- */
typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[]; /* [cap bytes] */
} arena_block;

typedef struct arena {
    arena_block *head;
} arena;

static void *arena_alloc(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static char *arena_strndup(arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void arena_free(arena *a) {
    while (a->head) {
        arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

/* --- the trace ----------------------------------------------------------- */
typedef struct scalar_kv {
    const char *key;   /* dotted path */
    const char *value; /* as written */
    int64_t line;      /* 1-based, in meta.yaml */
} scalar_kv;

typedef struct eval_nodes {
    parity_node *nodes; /* [n] index.tsv rows (ggml-nodes) */
    int64_t n;
} eval_nodes;

struct parity_trace {
    npz_reader *npz;
    parity_layout layout;
    arena mem;          /* every string and array below */
    parity_eval *evals; /* [n_evals] */
    int64_t n_evals;
    eval_nodes *nodes;  /* [n_evals] for ggml-nodes, else NULL */
    scalar_kv *scalars; /* [n_scalars] flattened mappings of meta.yaml, file order */
    int64_t n_scalars;
    const char **taps; /* [n_taps] canonical tap order */
    int64_t n_taps;
    int32_t *greedy; /* [n_greedy] */
    int64_t n_greedy;
};

static const char *const layout_names[] = {"canonical", "ggml-nodes"};

const char *parity_trace_layout_name(parity_layout l) { return (unsigned)l < 2 ? layout_names[l] : "?"; }

/* An allocation of `bytes` for `what` failed while reading t. */
static bn_status oom(const parity_trace *t, size_t bytes, const char *what, bn_error *err) {
    return bn_error_nomem(err, bytes, "%s: %s", npz_path(t->npz), what);
}

/* Reads a whole metadata member, NUL-terminated, refusing more than `cap`. */
static bn_status read_text_member(const parity_trace *t, const char *name, uint64_t cap, char **out,
                                  uint64_t *len, bn_error *err) {
    *out = NULL;
    int64_t i = npz_find(t->npz, name);
    if (i < 0) return bn_error_set(err, BN_ERR_FORMAT, "%s: member '%s' missing", npz_path(t->npz), name);
    const npz_member *m = npz_member_at(t->npz, i);
    if (m->size > cap)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: member '%s': %llu bytes, more than the %llu allowed",
                            npz_path(t->npz), name, (ull)m->size, (ull)cap);
    *out = malloc(m->size + 1);
    if (!*out) return oom(t, m->size + 1, name, err);
    bn_status st = npz_read(t->npz, i, *out, m->size, err);
    if (st) {
        free(*out);
        *out = NULL;
        return st;
    }
    (*out)[m->size] = '\0';
    *len = m->size;
    return BN_OK;
}

/* --- meta.yaml ------------------------------------------------------------ */
typedef struct meta_ctx {
    parity_trace *t;
    const bn_yaml_doc *doc; /* origin "<trace>: meta.yaml" */
    bn_error *err;
    int64_t budget; /* mapping pairs flatten may still visit */
} meta_ctx;

#define meta_error(c, n, code, path, ...) bn_yaml_fail((c)->doc, (c)->err, n, code, BN_YAML_PATH, path, __VA_ARGS__)

/* An integer must be a plain scalar: a quoted "12" is a string to YAML. */
static bn_status node_int(const meta_ctx *c, const bn_yaml_node *n, const char *path, int64_t lo, int64_t hi,
                          int64_t *out) {
    const char *s = bn_yaml_str(n);
    if (s && n->plain && bn_yaml_parse_int(s, lo, hi, out)) return BN_OK;
    if (s)
        return meta_error(c, n, BN_ERR_FORMAT, path, "expected an integer in [%lld, %lld], got '%.40s'",
                          (long long)lo, (long long)hi, s);
    return meta_error(c, n, BN_ERR_FORMAT, path, "expected an integer, got %s", bn_yaml_kind_name(n));
}

static bn_status node_list(const meta_ctx *c, const bn_yaml_node *n, const char *path) {
    if (n && n->kind == BN_YAML_LIST) return BN_OK;
    return meta_error(c, n, BN_ERR_FORMAT, path, "expected a list, got %s", bn_yaml_kind_name(n));
}

/* A list of integers in [lo, hi] into an int32 arena array. */
static bn_status int_list(const meta_ctx *c, const bn_yaml_node *n, const char *path, int64_t lo, int64_t hi,
                          int32_t **out, int64_t *count) {
    bn_status st = node_list(c, n, path);
    if (st) return st;
    *count = (int64_t)n->n;
    *out = arena_alloc(&c->t->mem, (size_t)(*count ? *count : 1) * sizeof **out);
    if (!*out) return oom(c->t, (size_t)(*count ? *count : 1) * sizeof **out, "meta.yaml: a list", c->err);
    for (int64_t i = 0; i < *count; i++) {
        char p[96];
        int64_t v;
        snprintf(p, sizeof p, "%s[%lld]", path, (long long)i);
        if ((st = node_int(c, bn_yaml_item(n, (size_t)i), p, lo, hi, &v))) return st;
        (*out)[i] = (int32_t)v;
    }
    return BN_OK;
}

static const scalar_kv *find_scalar(const parity_trace *t, const char *key) {
    for (int64_t i = 0; i < t->n_scalars; i++)
        if (strcmp(t->scalars[i].key, key) == 0) return &t->scalars[i];
    return NULL;
}

static bn_status add_scalar(const meta_ctx *c, const bn_yaml_node *n, const char *key) {
    parity_trace *t = c->t;
    if (t->n_scalars == MAX_SCALARS)
        return meta_error(c, n, BN_ERR_FORMAT, key, "more than %d scalars", MAX_SCALARS);
    /* "a.b: 1" beside "a: {b: 2}" flattens to the same key twice: which one
     * parity_trace_get returned would depend on file order. */
    const scalar_kv *dup = find_scalar(t, key);
    if (dup)
        return meta_error(c, n, BN_ERR_FORMAT, key, "duplicate key (also at line %lld)", (long long)dup->line);
    if (t->n_scalars % 64 == 0) {
        scalar_kv *s = realloc(t->scalars, (size_t)(t->n_scalars + 64) * sizeof *s);
        if (!s) return oom(t, (size_t)(t->n_scalars + 64) * sizeof *s, "meta.yaml: the scalar table", c->err);
        t->scalars = s;
    }
    scalar_kv *kv = &t->scalars[t->n_scalars++];
    kv->key = key;
    kv->value = arena_strndup(&t->mem, n->text, n->len);
    kv->line = n->line;
    return kv->value ? BN_OK : oom(t, n->len + 1, "meta.yaml: a value", c->err);
}

/* Records every scalar reachable through mappings as "a.b.c"; rejects
 * non-scalar and duplicate keys. Lists are read by their own parsers. */
static bn_status flatten(meta_ctx *c, const bn_yaml_node *map, const char *prefix, int depth) {
    c->budget -= (int64_t)map->n;
    if (map->n > MAX_MAP_PAIRS || depth > MAX_DEPTH || c->budget < 0)
        return meta_error(c, map, BN_ERR_FORMAT, *prefix ? prefix : "(root)", "mapping too large or too deep");
    for (size_t i = 0; i < map->n; i++) {
        const bn_yaml_node *kn = bn_yaml_key(map, i), *vn = bn_yaml_value(map, i);
        const char *k = kn->kind == BN_YAML_SCALAR ? kn->text : NULL;
        if (!k) return meta_error(c, kn, BN_ERR_FORMAT, *prefix ? prefix : "(root)", "keys must be scalars");
        for (size_t j = 0; j < i; j++)
            if (strcmp(bn_yaml_key(map, j)->text, k) == 0) return meta_error(c, kn, BN_ERR_FORMAT, k, "duplicate key");
        size_t plen = strlen(prefix), klen = strlen(k);
        char *key = arena_alloc(&c->t->mem, plen + klen + 2);
        if (!key) return oom(c->t, plen + klen + 2, "meta.yaml: a key", c->err);
        snprintf(key, plen + klen + 2, "%s%s%s", prefix, plen ? "." : "", k);
        bn_status st = vn->kind == BN_YAML_SCALAR ? add_scalar(c, vn, key)
                       : vn->kind == BN_YAML_MAP  ? flatten(c, vn, key, depth + 1)
                                                  : BN_OK;
        if (st) return st;
    }
    return BN_OK;
}

static bn_status parse_eval(const meta_ctx *c, const bn_yaml_node *n, int64_t k, parity_eval *ev) {
    char path[64], want[32];
    snprintf(path, sizeof path, "evaluations[%lld]", (long long)k);
    if (!n || n->kind != BN_YAML_MAP)
        return meta_error(c, n, BN_ERR_FORMAT, path, "expected a mapping {id, tokens, p0}, got %s",
                          bn_yaml_kind_name(n));
    snprintf(want, sizeof want, "e%lld", (long long)k);
    const bn_yaml_node *id = bn_yaml_get(n, "id"), *tokens = bn_yaml_get(n, "tokens"), *p0 = bn_yaml_get(n, "p0");
    if (!id || !tokens || !p0)
        return meta_error(c, n, BN_ERR_FORMAT, path, "missing key '%s'",
                          !id       ? "id"
                          : !tokens ? "tokens"
                                    : "p0");
    if (!bn_yaml_str(id) || strcmp(bn_yaml_str(id), want) != 0)
        return meta_error(c, id, BN_ERR_FORMAT, path, "id must be '%s' (evaluations are e0, e1, ... in order)", want);
    ev->id = arena_strndup(&c->t->mem, want, strlen(want));
    if (!ev->id) return oom(c->t, strlen(want) + 1, "meta.yaml: an evaluation id", c->err);
    char tpath[80];
    snprintf(tpath, sizeof tpath, "%s.tokens", path);
    int32_t *tok;
    bn_status st = int_list(c, tokens, tpath, 0, INT32_MAX, &tok, &ev->n_tokens);
    if (st) return st;
    ev->tokens = tok;
    if (ev->n_tokens == 0) return meta_error(c, tokens, BN_ERR_FORMAT, tpath, "no tokens");
    snprintf(tpath, sizeof tpath, "%s.p0", path);
    return node_int(c, p0, tpath, 0, INT32_MAX, &ev->p0);
}

static bn_status parse_taps(const meta_ctx *c, const bn_yaml_node *n) {
    parity_trace *t = c->t;
    bn_status st = node_list(c, n, "taps");
    if (st) return st;
    t->n_taps = (int64_t)n->n;
    t->taps = arena_alloc(&t->mem, (size_t)(t->n_taps ? t->n_taps : 1) * sizeof *t->taps);
    if (!t->taps) return oom(t, (size_t)(t->n_taps ? t->n_taps : 1) * sizeof *t->taps, "meta.yaml: the tap list", c->err);
    for (int64_t i = 0; i < t->n_taps; i++) {
        const bn_yaml_node *s = bn_yaml_item(n, (size_t)i);
        if (s->kind != BN_YAML_SCALAR || !*s->text)
            return meta_error(c, s, BN_ERR_FORMAT, "taps", "item %lld must be a tap name", (long long)i);
        if (!(t->taps[i] = arena_strndup(&t->mem, s->text, s->len))) return oom(t, s->len + 1, "meta.yaml: a tap name", c->err);
    }
    return BN_OK;
}

/* Canonical traces without `taps`: the .npy members under e0/ in file order. */
static bn_status taps_from_members(parity_trace *t, bn_error *err) {
    int64_t n = npz_count(t->npz);
    t->taps = arena_alloc(&t->mem, (size_t)(n ? n : 1) * sizeof *t->taps);
    if (!t->taps) return oom(t, (size_t)(n ? n : 1) * sizeof *t->taps, "the tap list", err);
    for (int64_t i = 0; i < n; i++) {
        const char *name = npz_member_at(t->npz, i)->name;
        size_t len = strlen(name);
        if (len > 7 && strncmp(name, "e0/", 3) == 0 && strcmp(name + len - 4, ".npy") == 0 &&
            !memchr(name + 3, '/', len - 7))
            if (!(t->taps[t->n_taps++] = arena_strndup(&t->mem, name + 3, len - 7))) return oom(t, len, "a tap name", err);
    }
    return BN_OK;
}

static bn_status check_header_keys(const meta_ctx *c, const bn_yaml_node *root) {
    const parity_trace *t = c->t;
    const char *id = parity_trace_get(t, "trace"), *layout = parity_trace_get(t, "layout");
    if (!id || !layout) return meta_error(c, root, BN_ERR_FORMAT, !id ? "trace" : "layout", "missing key");
    if (strcmp(id, PARITY_TRACE_ID) != 0)
        return meta_error(c, bn_yaml_get(root, "trace"), BN_ERR_UNSUPPORTED, "trace",
                          "'%.40s' is not " PARITY_TRACE_ID, id);
    for (int l = 0; l < 2; l++)
        if (strcmp(layout, layout_names[l]) == 0) {
            c->t->layout = (parity_layout)l;
            int64_t threads;
            bn_status st = parity_trace_get_int(t, "settings.threads", &threads, c->err);
            return st == BN_ERR_NOT_FOUND ? BN_OK : st;
        }
    return meta_error(c, bn_yaml_get(root, "layout"), BN_ERR_UNSUPPORTED, "layout",
                      "'%.40s' is neither canonical nor ggml-nodes", layout);
}

static bn_status parse_root(meta_ctx *c, const bn_yaml_node *root) {
    parity_trace *t = c->t;
    if (!root || root->kind != BN_YAML_MAP)
        return meta_error(c, root, BN_ERR_FORMAT, "(root)", "expected a mapping, got %s", bn_yaml_kind_name(root));
    bn_status st = flatten(c, root, "", 0);
    if (!st) st = check_header_keys(c, root);
    if (st) return st;
    const bn_yaml_node *evs = bn_yaml_get(root, "evaluations");
    if (!evs) return meta_error(c, root, BN_ERR_FORMAT, "evaluations", "missing key");
    if ((st = node_list(c, evs, "evaluations"))) return st;
    t->n_evals = (int64_t)evs->n;
    if (t->n_evals == 0 || t->n_evals > MAX_EVALS)
        return meta_error(c, evs, BN_ERR_FORMAT, "evaluations", "need 1..%lld evaluations",
                          (long long)MAX_EVALS);
    t->evals = arena_alloc(&t->mem, (size_t)t->n_evals * sizeof *t->evals);
    if (!t->evals) return oom(t, (size_t)t->n_evals * sizeof *t->evals, "meta.yaml: the evaluations", c->err);
    for (int64_t k = 0; k < t->n_evals; k++)
        if ((st = parse_eval(c, bn_yaml_item(evs, (size_t)k), k, &t->evals[k]))) return st;
    const bn_yaml_node *greedy = bn_yaml_get(root, "greedy_tokens"), *taps = bn_yaml_get(root, "taps");
    if (greedy && (st = int_list(c, greedy, "greedy_tokens", 0, INT32_MAX, &t->greedy, &t->n_greedy)))
        return st;
    if (t->layout != PARITY_LAYOUT_CANONICAL) return BN_OK;
    return taps ? parse_taps(c, taps) : taps_from_members(t, c->err);
}

#undef meta_error

static bn_status parse_meta(parity_trace *t, bn_error *err) {
    char *text;
    uint64_t len;
    bn_status st = read_text_member(t, META_NAME, META_MAX_BYTES, &text, &len, err);
    if (st) return st;
    char origin[BN_ERROR_MSG_MAX];
    snprintf(origin, sizeof origin, "%s: " META_NAME, npz_path(t->npz));
    bn_yaml_doc *doc;
    st = bn_yaml_parse(origin, text, (size_t)len, META_MAX_BYTES, META_NAME, &doc, err);
    if (!st) {
        meta_ctx c = {t, doc, err, MAX_PAIRS_VISITED};
        st = parse_root(&c, bn_yaml_root(doc));
        bn_yaml_free(doc);
    }
    free(text);
    return st;
}

/* --- ggml-nodes index.tsv ------------------------------------------------- */
typedef struct tsv_ctx {
    parity_trace *t;
    const char *member; /* "e0/index.tsv" */
    int64_t k;
    int col[11]; /* field index of each column below, -1 when absent */
    int ncols;
    bn_error *err;
} tsv_ctx;

enum {
    C_SEQ,
    C_NAME,
    C_OP,
    C_TYPE,
    C_NE0,
    C_NE1,
    C_NE2,
    C_NE3,
    C_FILE,
    C_SRC0,
    C_SRC1,
    C_COUNT,
    C_REQUIRED = C_SRC0
};
static const char *const tsv_columns[C_COUNT] = {"seq", "name", "op",   "type", "ne0", "ne1",
                                                 "ne2", "ne3",  "file", "src0", "src1"};

BN_PRINTF(3, 4)
static bn_status tsv_error(const tsv_ctx *c, int64_t line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bn_error_setv(c->err, BN_ERR_FORMAT, fmt, ap);
    va_end(ap);
    bn_error_prefixf(c->err, "%s: %s:%lld", npz_path(c->t->npz), c->member, (long long)line);
    return BN_ERR_FORMAT;
}

/* Splits `line` in place at tabs into f[], returning the field count (up to
 * INDEX_MAX_COLUMNS + 1, which callers treat as too many). */
static int split_tabs(char *line, char **f) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; (p = strchr(p, '\t'));) {
        *p++ = '\0';
        if (n > INDEX_MAX_COLUMNS) return n;
        f[n++] = p;
    }
    return n;
}

static bn_status tsv_header(tsv_ctx *c, char *line) {
    char *f[INDEX_MAX_COLUMNS + 2];
    c->ncols = split_tabs(line, f);
    if (c->ncols > INDEX_MAX_COLUMNS) return tsv_error(c, 1, "more than %d columns", INDEX_MAX_COLUMNS);
    for (int k = 0; k < C_COUNT; k++) {
        c->col[k] = -1;
        for (int j = 0; j < c->ncols; j++)
            if (strcmp(f[j], tsv_columns[k]) == 0) c->col[k] = j;
        if (k < C_REQUIRED && c->col[k] < 0)
            return tsv_error(c, 1, "missing column '%s' (need seq name op type ne0..ne3 file)",
                             tsv_columns[k]);
    }
    return BN_OK;
}

static bn_status tsv_row(tsv_ctx *c, char *line, int64_t lineno, int64_t prev_seq, parity_node *nd) {
    parity_trace *t = c->t;
    char *f[INDEX_MAX_COLUMNS + 2];
    int n = split_tabs(line, f);
    if (n != c->ncols) return tsv_error(c, lineno, "%d columns, the header has %d", n, c->ncols);
    int64_t *nums[5] = {&nd->seq, &nd->ne[0], &nd->ne[1], &nd->ne[2], &nd->ne[3]};
    const int numcol[5] = {C_SEQ, C_NE0, C_NE1, C_NE2, C_NE3};
    for (int j = 0; j < 5; j++)
        if (!bn_yaml_parse_int(f[c->col[numcol[j]]], 0, INT64_MAX, nums[j]))
            return tsv_error(c, lineno, "column %s: bad number '%.40s'", tsv_columns[numcol[j]],
                             f[c->col[numcol[j]]]);
    if (nd->seq <= prev_seq) return tsv_error(c, lineno, "seq %lld does not increase", (long long)nd->seq);
    const char **strs[5] = {&nd->name, &nd->op, &nd->type, &nd->src0, &nd->src1};
    const int strcol[5] = {C_NAME, C_OP, C_TYPE, C_SRC0, C_SRC1};
    for (int j = 0; j < 5; j++) {
        int col = c->col[strcol[j]];
        *strs[j] = col < 0 ? NULL : arena_strndup(&t->mem, f[col], strlen(f[col]));
        if (col >= 0 && !*strs[j]) return oom(t, strlen(f[col]) + 1, "index.tsv: a field", c->err);
    }
    const char *file = f[c->col[C_FILE]];
    size_t len = strlen(t->evals[c->k].id) + strlen(file) + 2;
    char *member = arena_alloc(&t->mem, len);
    if (!member) return oom(t, len, "index.tsv: a member name", c->err);
    snprintf(member, len, "%s/%s", t->evals[c->k].id, file);
    nd->member = member;
    nd->member_index = npz_find(t->npz, member);
    nd->line = lineno;
    if (!*file || nd->member_index < 0)
        return tsv_error(c, lineno, "member '%.200s' is not in the archive", member);
    return BN_OK;
}

static bn_status parse_index(parity_trace *t, int64_t k, bn_error *err) {
    char member[64];
    snprintf(member, sizeof member, "%s/index.tsv", t->evals[k].id);
    char *text;
    uint64_t len;
    bn_status st = read_text_member(t, member, INDEX_MAX_BYTES, &text, &len, err);
    if (st) return st;
    int64_t lines = 1;
    for (uint64_t i = 0; i < len; i++) lines += text[i] == '\n';
    tsv_ctx c = {.t = t, .member = member, .k = k, .err = err};
    eval_nodes *en = &t->nodes[k];
    en->nodes = arena_alloc(&t->mem, (size_t)lines * sizeof *en->nodes);
    if (!en->nodes) st = oom(t, (size_t)lines * sizeof *en->nodes, member, err);
    char *line = text;
    for (int64_t lineno = 1; !st && line; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[n - 1] = '\0';
        if (lineno == 1) {
            st = tsv_header(&c, line);
        } else if (*line) {
            parity_node *nd = &en->nodes[en->n];
            st = tsv_row(&c, line, lineno, en->n ? en->nodes[en->n - 1].seq : -1, nd);
            en->n += !st;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!st && en->n == 0) st = tsv_error(&c, 1, "no nodes");
    free(text);
    return st;
}

/* --- open / query ----------------------------------------------------------- */
static bn_status trace_init(npz_reader *npz, parity_trace **out, bn_error *err) {
    parity_trace *t = calloc(1, sizeof *t);
    if (!t) {
        bn_error_nomem(err, sizeof *t, "%s: the trace", npz_path(npz));
        npz_close(npz);
        return BN_ERR_NOMEM;
    }
    t->npz = npz;
    bn_status st = parse_meta(t, err);
    if (!st && t->layout == PARITY_LAYOUT_GGML_NODES) {
        t->nodes = arena_alloc(&t->mem, (size_t)t->n_evals * sizeof *t->nodes);
        if (!t->nodes)
            st = oom(t, (size_t)t->n_evals * sizeof *t->nodes, "the node tables", err);
        else
            memset(t->nodes, 0, (size_t)t->n_evals * sizeof *t->nodes);
        for (int64_t k = 0; k < t->n_evals && !st; k++) st = parse_index(t, k, err);
    }
    if (st) {
        parity_trace_close(t);
        t = NULL;
    }
    *out = t;
    return st;
}

bn_status parity_trace_open(const char *path, parity_trace **out, bn_error *err) {
    npz_reader *npz;
    *out = NULL;
    bn_status st = npz_open(path, &npz, err);
    return st ? st : trace_init(npz, out, err);
}

bn_status parity_trace_open_memory(const void *buf, size_t size, const char *name, parity_trace **out,
                                   bn_error *err) {
    npz_reader *npz;
    *out = NULL;
    bn_status st = npz_open_memory(buf, size, name, &npz, err);
    return st ? st : trace_init(npz, out, err);
}

void parity_trace_close(parity_trace *t) {
    if (!t) return;
    npz_close(t->npz);
    arena_free(&t->mem);
    free(t->scalars);
    free(t);
}

parity_layout parity_trace_layout(const parity_trace *t) { return t->layout; }
const char *parity_trace_path(const parity_trace *t) { return npz_path(t->npz); }
const npz_reader *parity_trace_npz(const parity_trace *t) { return t->npz; }
int64_t parity_trace_eval_count(const parity_trace *t) { return t->n_evals; }

bn_status parity_trace_evals(const parity_trace *t, parity_eval **out, int64_t *n, bn_error *err) {
    *n = t->n_evals;
    *out = malloc((size_t)(t->n_evals ? t->n_evals : 1) * sizeof **out);
    if (!*out)
        return bn_error_nomem(err, (size_t)(t->n_evals ? t->n_evals : 1) * sizeof **out, "%s: a list of %lld evaluations", parity_trace_path(t),
                            (long long)t->n_evals);
    for (int64_t k = 0; k < t->n_evals; k++) (*out)[k] = *parity_trace_eval(t, k);
    return BN_OK;
}

const parity_eval *parity_trace_eval(const parity_trace *t, int64_t k) {
    return k >= 0 && k < t->n_evals ? &t->evals[k] : NULL;
}

const char *parity_trace_get(const parity_trace *t, const char *key) {
    const scalar_kv *kv = find_scalar(t, key);
    return kv ? kv->value : NULL;
}

bn_status parity_trace_get_int(const parity_trace *t, const char *key, int64_t *out, bn_error *err) {
    const scalar_kv *kv = find_scalar(t, key);
    if (!kv)
        return bn_error_set(err, BN_ERR_NOT_FOUND, "%s: " META_NAME ": no key '%s'", npz_path(t->npz), key);
    if (!bn_yaml_parse_int(kv->value, INT64_MIN, INT64_MAX, out))
        return bn_error_set(err, BN_ERR_FORMAT,
                            "%s: " META_NAME ":%lld: %s: expected an integer, got '%.40s'", npz_path(t->npz),
                            (long long)kv->line, key, kv->value);
    return BN_OK;
}

int64_t parity_trace_scalar_count(const parity_trace *t) { return t->n_scalars; }
const char *parity_trace_scalar_key(const parity_trace *t, int64_t i) {
    return i >= 0 && i < t->n_scalars ? t->scalars[i].key : NULL;
}
const char *parity_trace_scalar_value(const parity_trace *t, int64_t i) {
    return i >= 0 && i < t->n_scalars ? t->scalars[i].value : NULL;
}

const int32_t *parity_trace_greedy_tokens(const parity_trace *t, int64_t *n) {
    *n = t->n_greedy;
    return t->greedy;
}

int64_t parity_trace_tap_count(const parity_trace *t) { return t->n_taps; }
const char *parity_trace_tap_name(const parity_trace *t, int64_t i) {
    return i >= 0 && i < t->n_taps ? t->taps[i] : NULL;
}

int64_t parity_trace_node_count(const parity_trace *t, int64_t k) {
    return t->nodes && k >= 0 && k < t->n_evals ? t->nodes[k].n : 0;
}

const parity_node *parity_trace_node(const parity_trace *t, int64_t k, int64_t i) {
    return i >= 0 && i < parity_trace_node_count(t, k) ? &t->nodes[k].nodes[i] : NULL;
}

int64_t parity_trace_find_node(const parity_trace *t, int64_t k, const char *name, const char *op,
                               int64_t occurrence) {
    int64_t n = parity_trace_node_count(t, k);
    for (int64_t i = 0; i < n; i++) {
        const parity_node *nd = &t->nodes[k].nodes[i];
        if (strcmp(nd->name, name) == 0 && (!op || strcmp(nd->op, op) == 0) && occurrence-- == 0) return i;
    }
    return -1;
}

int64_t parity_trace_resolve(const parity_trace *t, int64_t k, const char *name) {
    const parity_eval *ev = parity_trace_eval(t, k);
    if (!ev || !name) return -1;
    size_t len = strlen(ev->id) + strlen(name) + 6;
    char *buf = malloc(len);
    if (!buf) return -1;
    snprintf(buf, len, "%s/%s.npy", ev->id, name);
    int64_t i = npz_find(t->npz, buf);
    if (i < 0) {
        snprintf(buf, len, "%s/%s", ev->id, name);
        i = npz_find(t->npz, buf);
    }
    free(buf);
    return i >= 0 ? i : npz_find(t->npz, name);
}

static bn_status resolve_or_fail(const parity_trace *t, int64_t k, const char *name, int64_t *idx,
                                 bn_error *err) {
    if (!parity_trace_eval(t, k))
        return bn_error_set(err, BN_ERR_INVALID, "%s: evaluation %lld out of range (%lld evaluations)",
                            npz_path(t->npz), (long long)k, (long long)t->n_evals);
    *idx = parity_trace_resolve(t, k, name);
    if (*idx < 0)
        return bn_error_set(err, BN_ERR_NOT_FOUND, "%s: %s: no array '%s' (tried %s/%s.npy, %s/%s and %s)",
                            npz_path(t->npz), t->evals[k].id, name, t->evals[k].id, name, t->evals[k].id,
                            name, name);
    return BN_OK;
}

bn_status parity_trace_load_raw(const parity_trace *t, int64_t k, const char *name, npz_array *out,
                                bn_error *err) {
    int64_t idx;
    memset(out, 0, sizeof *out);
    bn_status st = resolve_or_fail(t, k, name, &idx, err);
    return st ? st : npz_load_array(t->npz, idx, out, err);
}

static void to_f32(const npz_array *a, float *dst) {
    const int64_t n = a->info.nelem;
    switch (a->info.dtype) {
    case NPZ_F16: {
        const uint16_t *s = a->data;
        for (int64_t i = 0; i < n; i++) dst[i] = bn_f16_to_f32(s[i]);
        break;
    }
    case NPZ_I8: {
        const int8_t *s = a->data;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    case NPZ_I32: {
        const int32_t *s = a->data;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    case NPZ_F64: {
        const double *s = a->data;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    default:
        memcpy(dst, a->data, (size_t)n * sizeof *dst);
    }
}

/* A tap's float array (freed with free). Arrays of megabytes are asked for
 * in 2 MiB pages: a compare of gigabyte traces fills a fresh array per tap,
 * and with 4 KiB pages the page faults cost as much as the copy (a fault
 * exits to the hypervisor on these VMs). Only a hint: without transparent
 * huge pages nothing changes. */
static void *alloc_tap(size_t bytes) {
    enum { HUGE = 2 << 20 };
    if (bytes < 2 * (size_t)HUGE) return malloc(bytes);
    void *p = NULL;
    if (posix_memalign(&p, HUGE, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

/* Array `name` of evaluation k (info already read) as floats into out. */
static bn_status read_f32(const parity_trace *t, int64_t idx, const npz_array_info *info, float *out, bn_error *err) {
    if (info->dtype == NPZ_F32) return npz_read_array_data(t->npz, idx, info, out, err); /* straight into out */
    npz_array raw;
    bn_status st = npz_load_array(t->npz, idx, &raw, err);
    if (!st) to_f32(&raw, out);
    npz_array_free(&raw);
    return st;
}

bn_status parity_trace_load_f32(const parity_trace *t, int64_t k, const char *name, float **data,
                                npz_array_info *info, bn_error *err) {
    int64_t idx;
    *data = NULL;
    bn_status st = resolve_or_fail(t, k, name, &idx, err);
    if (!st) st = npz_array_info_at(t->npz, idx, info, err);
    if (st) return st;
    float *out = alloc_tap((size_t)(info->nelem ? info->nelem : 1) * sizeof *out);
    if (!out) return oom(t, (size_t)(info->nelem ? info->nelem : 1) * sizeof *out, name, err);
    if ((st = read_f32(t, idx, info, out, err)))
        free(out);
    else
        *data = out;
    return st;
}

bn_status parity_trace_load_f32_into(const parity_trace *t, int64_t k, const char *name, parity_f32_buf *buf,
                                     npz_array_info *info, bn_error *err) {
    int64_t idx;
    bn_status st = resolve_or_fail(t, k, name, &idx, err);
    if (!st) st = npz_array_info_at(t->npz, idx, info, err);
    if (st) return st;
    const size_t need = (size_t)(info->nelem ? info->nelem : 1);
    if (need > buf->cap) {
        free(buf->data);
        buf->cap = 0;
        if (!(buf->data = alloc_tap(need * sizeof *buf->data))) return oom(t, need * sizeof *buf->data, name, err);
        buf->cap = need;
    }
    return read_f32(t, idx, info, buf->data, err);
}

void parity_f32_buf_free(parity_f32_buf *buf) {
    if (!buf) return;
    free(buf->data);
    buf->data = NULL;
    buf->cap = 0;
}

/* --- canonical writer ------------------------------------------------------- */

/* Bytes of buffers between a trace's taps and its file's writer thread:
 * 16 MiB x 4 ride out the kernel's write throttling for a while. */
#define TRACE_WRITE_BEHIND ((size_t)64 << 20)
struct parity_trace_writer {
    npz_writer *npz;
    char *path;
    char **taps; /* [n_taps] names in first-added order */
    int64_t n_taps;
    int64_t max_eval; /* highest evaluation index added, -1 = none */
};

static bn_status writer_open(const char *path, bool anonymous, npz_compression comp, parity_trace_writer **out,
                             bn_error *err) {
    *out = NULL;
    parity_trace_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return bn_error_nomem(err, sizeof *w + strlen(path) + 1, "%s: the trace writer", path);
    }
    w->max_eval = -1;
    bn_status st = anonymous ? npz_writer_open_anonymous(path, comp, &w->npz, err)
                             : npz_writer_open(path, comp, &w->npz, err);
    /* a trace file of gigabytes is written while the model computes: the
     * caller's thread only copies into these buffers */
    if (!st && !anonymous) st = npz_writer_write_behind(w->npz, TRACE_WRITE_BEHIND, err);
    if (st) {
        parity_trace_writer_abort(w);
        return st;
    }
    *out = w;
    return BN_OK;
}

bn_status parity_trace_writer_open(const char *path, npz_compression comp, parity_trace_writer **out,
                                   bn_error *err) {
    return writer_open(path, false, comp, out, err);
}

bn_status parity_trace_writer_open_memory(const char *name, npz_compression comp, parity_trace_writer **out,
                                          bn_error *err) {
    return writer_open(name && *name ? name : "(in memory)", true, comp, out, err);
}

void parity_trace_writer_set_cancel(parity_trace_writer *w, const volatile sig_atomic_t *cancel) {
    npz_writer_set_cancel(w->npz, cancel);
}

static void writer_free(parity_trace_writer *w) {
    for (int64_t i = 0; i < w->n_taps; i++) free(w->taps[i]);
    free(w->taps);
    free(w->path);
    free(w);
}

void parity_trace_writer_abort(parity_trace_writer *w) {
    if (!w) return;
    npz_writer_abort(w->npz);
    writer_free(w);
}

static bn_status remember_tap(parity_trace_writer *w, const char *tap, bn_error *err) {
    for (int64_t i = 0; i < w->n_taps; i++)
        if (strcmp(w->taps[i], tap) == 0) return BN_OK;
    if (w->n_taps % 64 == 0) {
        char **taps = realloc(w->taps, (size_t)(w->n_taps + 64) * sizeof *taps);
        if (!taps) return bn_error_nomem(err, (size_t)(w->n_taps + 64) * sizeof *taps, "%s: the tap list", w->path);
        w->taps = taps;
    }
    if (!(w->taps[w->n_taps] = strdup(tap)))
        return bn_error_nomem(err, strlen(tap) + 1, "%s: tap name %s", w->path, tap);
    w->n_taps++;
    return BN_OK;
}

bn_status parity_trace_writer_add_tap(parity_trace_writer *w, int64_t k, const char *tap, npz_dtype dtype,
                                      const int64_t *shape, int ndim, const void *data, bn_error *err) {
    if (!tap || !*tap || strchr(tap, '/') || k < 0 || k >= MAX_EVALS)
        return bn_error_set(err, BN_ERR_INVALID, "%s: bad tap name '%s' or evaluation %lld", w->path,
                            tap ? tap : "(null)", (long long)k);
    size_t len = strlen(tap) + 32;
    char *member = malloc(len);
    if (!member) return bn_error_nomem(err, len, "%s: member name of tap %s", w->path, tap);
    snprintf(member, len, "e%lld/%s.npy", (long long)k, tap);
    bn_status st = npz_writer_add_array(w->npz, member, dtype, shape, ndim, data, err);
    free(member);
    if (!st) st = remember_tap(w, tap, err);
    if (!st && k > w->max_eval) w->max_eval = k;
    return st;
}

/* libyaml emitter into a growing memory buffer. */
typedef struct ybuf {
    char *p;
    size_t n, cap;
} ybuf;

static int ybuf_write(void *data, unsigned char *buf, size_t size) {
    ybuf *b = data;
    if (b->n + size > b->cap) {
        size_t cap = (b->n + size) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, buf, size);
    b->n += size;
    return 1;
}

typedef struct emitter {
    yaml_emitter_t em;
    bool ok;
} emitter;

/* yaml_emitter_emit consumes the event even when it fails; after a failure
 * we only delete events. */
static void emit(emitter *e, yaml_event_t *ev, int init_ok) {
    if (!init_ok)
        e->ok = false;
    else if (!e->ok)
        yaml_event_delete(ev);
    else if (!yaml_emitter_emit(&e->em, ev))
        e->ok = false;
}

/* Strings a YAML 1.1 reader (PyYAML) would take for a number, bool or null
 * are quoted so they read back as strings. */
static bool needs_quotes(const char *s) {
    static const char *const words[] = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"};
    if (!*s || strchr("0123456789+-.", *s)) return true;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcasecmp(s, words[i]) == 0) return true;
    return false;
}

static void emit_scalar(emitter *e, const char *s, yaml_scalar_style_t style) {
    yaml_event_t ev;
    emit(e, &ev,
         yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)(uintptr_t)s, (int)strlen(s), 1, 1,
                                      style));
}

static void emit_str(emitter *e, const char *s) {
    emit_scalar(e, s, needs_quotes(s) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
}

static void emit_int(emitter *e, int64_t v) {
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)v);
    emit_scalar(e, s, YAML_PLAIN_SCALAR_STYLE);
}

static void emit_kv(emitter *e, const char *key, const char *value) {
    if (!value) return;
    emit_str(e, key);
    emit_str(e, value);
}

static void emit_map(emitter *e, bool start, bool flow) {
    yaml_event_t ev;
    if (!start)
        emit(e, &ev, yaml_mapping_end_event_initialize(&ev));
    else
        emit(e, &ev,
             yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                 flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE));
}

static void emit_seq(emitter *e, bool start, bool flow) {
    yaml_event_t ev;
    if (!start)
        emit(e, &ev, yaml_sequence_end_event_initialize(&ev));
    else
        emit(e, &ev,
             yaml_sequence_start_event_initialize(
                 &ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE));
}

static void emit_int_list(emitter *e, const char *key, const int32_t *v, int64_t n) {
    emit_str(e, key);
    emit_seq(e, true, true);
    for (int64_t i = 0; i < n; i++) emit_int(e, v[i]);
    emit_seq(e, false, true);
}

static void emit_meta_body(emitter *e, const parity_trace_meta *m, const char *const *taps, int64_t n_taps) {
    emit_kv(e, "trace", PARITY_TRACE_ID);
    emit_kv(e, "layout", "canonical");
    emit_str(e, "producer");
    emit_map(e, true, false);
    emit_kv(e, "name", m->producer_name ? m->producer_name : "unknown");
    emit_kv(e, "version", m->producer_version);
    emit_kv(e, "commit", m->producer_commit);
    emit_map(e, false, false);
    emit_str(e, "model");
    emit_map(e, true, false);
    emit_kv(e, "path", m->model_path ? m->model_path : "unknown");
    emit_kv(e, "sha256", m->model_sha256);
    emit_kv(e, "arch", m->model_arch);
    emit_kv(e, "weight_type", m->model_weight_type);
    emit_map(e, false, false);
    emit_str(e, "settings");
    emit_map(e, true, false);
    emit_kv(e, "numerics", m->numerics);
    if (m->kv_cache) emit_kv(e, "kv_cache", m->kv_cache);
    if (m->lm_head) emit_kv(e, "lm_head", m->lm_head);
    if (m->threads >= 0) {
        emit_str(e, "threads");
        emit_int(e, m->threads);
    }
    emit_kv(e, "fault", m->fault ? m->fault : "none");
    emit_map(e, false, false);
    emit_str(e, "evaluations");
    emit_seq(e, true, false);
    for (int64_t k = 0; k < m->n_evals; k++) {
        char id[32];
        snprintf(id, sizeof id, "e%lld", (long long)k);
        emit_map(e, true, true);
        emit_kv(e, "id", id);
        emit_int_list(e, "tokens", m->evals[k].tokens, m->evals[k].n_tokens);
        emit_str(e, "p0");
        emit_int(e, m->evals[k].p0);
        emit_map(e, false, true);
    }
    emit_seq(e, false, false);
    emit_str(e, "taps");
    emit_seq(e, true, true);
    for (int64_t i = 0; i < n_taps; i++) emit_str(e, taps[i]);
    emit_seq(e, false, true);
    if (m->greedy_tokens) emit_int_list(e, "greedy_tokens", m->greedy_tokens, m->n_greedy);
}

static bn_status emit_meta(const parity_trace_writer *w, const parity_trace_meta *m, ybuf *out,
                           bn_error *err) {
    emitter e = {.ok = true};
    if (!yaml_emitter_initialize(&e.em)) return bn_error_nomem(err, sizeof e.em, "%s: the meta.yaml emitter", w->path);
    yaml_emitter_set_output(&e.em, ybuf_write, out);
    yaml_emitter_set_width(&e.em, -1);
    yaml_emitter_set_unicode(&e.em, 1);
    yaml_event_t ev;
    emit(&e, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    emit(&e, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    emit_map(&e, true, false);
    const char *const *taps = m->taps ? m->taps : (const char *const *)w->taps;
    emit_meta_body(&e, m, taps, m->taps ? m->n_taps : w->n_taps);
    emit_map(&e, false, false);
    emit(&e, &ev, yaml_document_end_event_initialize(&ev, 1));
    emit(&e, &ev, yaml_stream_end_event_initialize(&ev));
    bn_status st = e.ok ? BN_OK
                        : bn_error_set(err, BN_ERR_INTERNAL, "%s: meta.yaml: YAML emitter: %s", w->path,
                                       e.em.problem ? e.em.problem : "failed");
    yaml_emitter_delete(&e.em);
    return st;
}

static bn_status check_meta(const parity_trace_writer *w, const parity_trace_meta *m, bn_error *err) {
    if (!m || m->n_evals <= 0 || !m->evals)
        return bn_error_set(err, BN_ERR_INVALID, "%s: meta.yaml needs at least one evaluation", w->path);
    if (w->max_eval >= m->n_evals)
        return bn_error_set(err, BN_ERR_INVALID,
                            "%s: taps were added for evaluation %lld but meta lists %lld", w->path,
                            (long long)w->max_eval, (long long)m->n_evals);
    for (int64_t k = 0; k < m->n_evals; k++)
        if (m->evals[k].n_tokens <= 0 || !m->evals[k].tokens || m->evals[k].p0 < 0)
            return bn_error_set(err, BN_ERR_INVALID, "%s: evaluation %lld has no tokens or a negative p0",
                                w->path, (long long)k);
    if ((m->taps == NULL) != (m->n_taps == 0) || (m->n_greedy && !m->greedy_tokens))
        return bn_error_set(err, BN_ERR_INVALID, "%s: taps/greedy_tokens arrays and counts disagree",
                            w->path);
    return BN_OK;
}

/* meta.yaml as the last member, then the npz ends: published, or (out !=
 * NULL) opened as a trace. Frees w. */
static bn_status writer_end(parity_trace_writer *w, const parity_trace_meta *meta, parity_trace **out,
                            bn_error *err) {
    ybuf y = {0};
    bn_status st = check_meta(w, meta, err);
    if (!st) st = emit_meta(w, meta, &y, err);
    if (!st) st = npz_writer_add_bytes(w->npz, META_NAME, y.p, y.n, err);
    free(y.p);
    if (st) {
        parity_trace_writer_abort(w);
        return st;
    }
    npz_reader *npz = NULL;
    st = out ? npz_writer_close_open(w->npz, &npz, err) : npz_writer_close(w->npz, err);
    writer_free(w);
    if (!st && out) st = trace_init(npz, out, err);
    return st;
}

bn_status parity_trace_writer_finish(parity_trace_writer *w, const parity_trace_meta *meta, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "parity_trace_writer_finish: NULL writer");
    return writer_end(w, meta, NULL, err);
}

bn_status parity_trace_writer_finish_open(parity_trace_writer *w, const parity_trace_meta *meta,
                                          parity_trace **out, bn_error *err) {
    *out = NULL;
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "parity_trace_writer_finish_open: NULL writer");
    return writer_end(w, meta, out, err);
}
