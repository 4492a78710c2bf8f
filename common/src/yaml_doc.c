/* yaml_doc.c — libyaml's document API turned into a small node graph with
 * positions, plus the scalar parsers and the error form every YAML reader
 * shares (contracts in bitnet/yaml_doc.h). */
#include "bitnet/yaml_doc.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

struct bn_yaml_doc {
    char *origin;
    yaml_document_t ydoc;   /* owns the scalar texts the nodes point into */
    int loaded;             /* ydoc must be deleted */
    bn_yaml_node *nodes;    /* [n_nodes], node id k is nodes[k - 1] */
    size_t n_nodes;
    bn_yaml_node **links;   /* every items array, one allocation */
    const bn_yaml_node *root;
};

/* ---- loading ----------------------------------------------------------------- */

/* A reader error (bad UTF-8, a NUL) carries only a byte offset: count lines
 * and columns up to it. */
static void position_at(const char *text, size_t len, size_t off, unsigned long *line, unsigned long *col) {
    *line = 1, *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') ++*line, *col = 1;
        else ++*col;
    }
}

static bn_status syntax_error(const bn_yaml_doc *d, yaml_parser_t *y, const char *text, size_t len,
                              bn_error *err) {
    if (y->error == YAML_MEMORY_ERROR)
        return bn_error_nomem(err, len, "%s: parsing %zu bytes of YAML", d->origin, len);
    unsigned long line = y->problem_mark.line + 1, col = y->problem_mark.column + 1;
    if (y->error == YAML_READER_ERROR) position_at(text, len, y->problem_offset, &line, &col);
    return bn_error_set(err, BN_ERR_FORMAT, "%s:%lu:%lu: malformed YAML: %s%s%s", d->origin, line, col,
                        y->problem ? y->problem : "syntax error", y->context ? " " : "", y->context ? y->context : "");
}

/* The node of a libyaml id, or NULL for an id outside the document. */
static bn_yaml_node *node_of(bn_yaml_doc *d, int id) {
    return id >= 1 && (size_t)id <= d->n_nodes ? &d->nodes[id - 1] : NULL;
}

static bn_status link_child(bn_yaml_doc *d, int id, bn_yaml_node **slot, bn_error *err) {
    bn_yaml_node *c = node_of(d, id);
    if (!c) return bn_error_set(err, BN_ERR_INTERNAL, "%s: libyaml gave a broken node reference", d->origin);
    c->refs++;
    *slot = c;
    return BN_OK;
}

/* Copies the libyaml nodes into d->nodes and wires their items. */
static bn_status build_graph(bn_yaml_doc *d, bn_error *err) {
    yaml_node_t *start = d->ydoc.nodes.start;
    d->n_nodes = (size_t)(d->ydoc.nodes.top - start);
    size_t n_links = 0;
    for (size_t i = 0; i < d->n_nodes; i++) {
        if (start[i].type == YAML_SEQUENCE_NODE)
            n_links += (size_t)(start[i].data.sequence.items.top - start[i].data.sequence.items.start);
        else if (start[i].type == YAML_MAPPING_NODE)
            n_links += 2 * (size_t)(start[i].data.mapping.pairs.top - start[i].data.mapping.pairs.start);
    }
    d->nodes = calloc(d->n_nodes ? d->n_nodes : 1, sizeof *d->nodes);
    d->links = calloc(n_links ? n_links : 1, sizeof *d->links);
    if (!d->nodes || !d->links)
        return bn_error_nomem(err, d->n_nodes * sizeof *d->nodes + n_links * sizeof *d->links, "%s: %zu YAML nodes",
                              d->origin, d->n_nodes);
    bn_yaml_node **next = d->links;
    bn_status st = BN_OK;
    for (size_t i = 0; i < d->n_nodes && !st; i++) {
        const yaml_node_t *y = &start[i];
        bn_yaml_node *n = &d->nodes[i];
        n->line = (int)y->start_mark.line + 1;
        n->col = (int)y->start_mark.column + 1;
        n->items = next;
        if (y->type == YAML_SCALAR_NODE) {
            n->kind = BN_YAML_SCALAR;
            n->text = (const char *)y->data.scalar.value;
            n->len = y->data.scalar.length;
            n->plain = y->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        } else if (y->type == YAML_SEQUENCE_NODE) {
            n->kind = BN_YAML_LIST;
            for (yaml_node_item_t *it = y->data.sequence.items.start; it < y->data.sequence.items.top && !st; it++)
                st = link_child(d, *it, &n->items[n->n++], err);
        } else {
            n->kind = BN_YAML_MAP;
            for (yaml_node_pair_t *p = y->data.mapping.pairs.start; p < y->data.mapping.pairs.top && !st; p++) {
                st = link_child(d, p->key, &n->items[2 * n->n], err);
                if (!st) st = link_child(d, p->value, &n->items[2 * n->n + 1], err);
                n->n++;
            }
        }
        next += n->kind == BN_YAML_MAP ? 2 * n->n : n->kind == BN_YAML_LIST ? n->n : 0;
    }
    d->root = d->n_nodes ? &d->nodes[0] : NULL; /* libyaml's root is node 1 */
    return st;
}

/* Loads the first document and makes sure no second one follows. */
static bn_status load(bn_yaml_doc *d, const char *text, size_t len, bn_error *err) {
    yaml_parser_t y;
    if (!yaml_parser_initialize(&y))
        return bn_error_nomem(err, sizeof y, "%s: the YAML parser", d->origin);
    yaml_parser_set_input_string(&y, (const unsigned char *)text, len);
    bn_status st = BN_OK;
    if (!yaml_parser_load(&y, &d->ydoc)) {
        st = syntax_error(d, &y, text, len, err);
    } else {
        d->loaded = 1;
        st = build_graph(d, err);
    }
    if (!st && d->root) { /* a second document would be silently ignored: refuse it */
        yaml_document_t extra;
        if (!yaml_parser_load(&y, &extra)) {
            st = syntax_error(d, &y, text, len, err);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&extra);
            if (r2)
                st = bn_error_set(err, BN_ERR_FORMAT, "%s:%lu: more than one YAML document", d->origin,
                                  (unsigned long)r2->start_mark.line + 1);
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&y);
    return st;
}

static bn_status too_large(const char *origin, unsigned long long size, size_t max_bytes, const char *what,
                           bn_error *err) {
    return bn_error_set(err, BN_ERR_FORMAT, "%s: %llu bytes is larger than a %s may be (%zu)", origin, size,
                        what ? what : "YAML file", max_bytes);
}

bn_status bn_yaml_parse(const char *origin, const char *text, size_t len, size_t max_bytes, const char *what,
                        bn_yaml_doc **out, bn_error *err) {
    if (!out || (!text && len)) return bn_error_set(err, BN_ERR_INVALID, "bn_yaml_parse: NULL argument");
    *out = NULL;
    if (!origin) origin = "<yaml>";
    if (len > max_bytes) return too_large(origin, len, max_bytes, what, err);
    bn_yaml_doc *d = calloc(1, sizeof *d);
    if (!d || !(d->origin = strdup(origin))) {
        free(d);
        return bn_error_nomem(err, sizeof *d + strlen(origin) + 1, "%s: the YAML document", origin);
    }
    bn_status st = load(d, text ? text : "", len, err);
    if (st) {
        bn_yaml_free(d);
        return st;
    }
    *out = d;
    return BN_OK;
}

bn_status bn_yaml_read_file(const char *path, size_t max_bytes, const char *what, char **text, size_t *len,
                            bn_error *err) {
    if (!path || !text || !len) return bn_error_set(err, BN_ERR_INVALID, "bn_yaml_read_file: NULL argument");
    *text = NULL, *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    bn_status st = BN_OK;
    char *buf = NULL;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))
        st = bn_error_set(err, BN_ERR_IO, "%s: not a regular file", path);
    else if ((unsigned long long)sb.st_size > max_bytes)
        st = too_large(path, (unsigned long long)sb.st_size, max_bytes, what, err);
    else if (!(buf = malloc((size_t)sb.st_size + 2)))
        st = bn_error_nomem(err, (unsigned long long)sb.st_size + 2, "%s: the file's text", path);
    size_t got = 0;
    if (!st) { /* asking one byte more than the size tells a file that changed while read */
        got = fread(buf, 1, (size_t)sb.st_size + 1, f);
        if (ferror(f)) st = bn_error_set(err, BN_ERR_IO, "%s: read error: %s", path, strerror(errno));
        else if (got != (size_t)sb.st_size)
            st = bn_error_set(err, BN_ERR_IO, "%s: changed while read (%zu bytes, expected %lld)", path, got,
                              (long long)sb.st_size);
    }
    fclose(f);
    if (st) {
        free(buf);
        return st;
    }
    buf[got] = '\0';
    *text = buf, *len = got;
    return BN_OK;
}

bn_status bn_yaml_load_file(const char *path, size_t max_bytes, const char *what, bn_yaml_doc **out,
                            bn_error *err) {
    if (!out) return bn_error_set(err, BN_ERR_INVALID, "bn_yaml_load_file: NULL argument");
    *out = NULL;
    char *text;
    size_t len;
    bn_status st = bn_yaml_read_file(path, max_bytes, what, &text, &len, err);
    if (!st) st = bn_yaml_parse(path, text, len, max_bytes, what, out, err);
    free(text);
    return st;
}

void bn_yaml_free(bn_yaml_doc *d) {
    if (!d) return;
    if (d->loaded) yaml_document_delete(&d->ydoc);
    free(d->nodes);
    free(d->links);
    free(d->origin);
    free(d);
}

const bn_yaml_node *bn_yaml_root(const bn_yaml_doc *d) { return d->root; }
const char *bn_yaml_origin(const bn_yaml_doc *d) { return d->origin; }

const bn_yaml_node *bn_yaml_first_alias(const bn_yaml_doc *d) {
    for (size_t i = 0; i < d->n_nodes; i++)
        if (d->nodes[i].refs > (&d->nodes[i] == d->root ? 0 : 1)) return &d->nodes[i];
    return NULL;
}

/* ---- access ------------------------------------------------------------------ */

const bn_yaml_node *bn_yaml_key(const bn_yaml_node *map, size_t i) { return map->items[2 * i]; }
const bn_yaml_node *bn_yaml_value(const bn_yaml_node *map, size_t i) { return map->items[2 * i + 1]; }
const bn_yaml_node *bn_yaml_item(const bn_yaml_node *list, size_t i) { return list->items[i]; }

const char *bn_yaml_str(const bn_yaml_node *n) {
    if (!n || n->kind != BN_YAML_SCALAR) return NULL;
    return strlen(n->text) == n->len ? n->text : NULL;
}

const bn_yaml_node *bn_yaml_get(const bn_yaml_node *map, const char *key) {
    if (!map || map->kind != BN_YAML_MAP) return NULL;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = bn_yaml_str(bn_yaml_key(map, i));
        if (k && !strcmp(k, key)) return bn_yaml_value(map, i);
    }
    return NULL;
}

int bn_yaml_is_null(const bn_yaml_node *n) {
    if (!n || n->kind != BN_YAML_SCALAR || !n->plain) return 0;
    const char *s = n->text;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

const char *bn_yaml_kind_name(const bn_yaml_node *n) {
    if (!n) return "nothing";
    switch (n->kind) {
    case BN_YAML_MAP: return "a mapping";
    case BN_YAML_LIST: return "a list";
    default: return "a scalar";
    }
}

/* ---- scalars ----------------------------------------------------------------- */

static int one_of(const char *s, const char *a, const char *b, const char *c) {
    return !strcmp(s, a) || !strcmp(s, b) || !strcmp(s, c);
}

int bn_yaml_parse_number(const char *s, int allow_nan, double *out) {
    if (!s) return 0;
    const char *m = s + (*s == '+' || *s == '-');
    if (one_of(m, ".inf", ".Inf", ".INF")) return *out = *s == '-' ? -INFINITY : INFINITY, 1;
    if (allow_nan && one_of(s, ".nan", ".NaN", ".NAN")) return *out = NAN, 1;
    /* Decimal notation only: strtod would also take "inf", "nan" and hex. */
    size_t n = strlen(s);
    if (!n || strspn(s, "0123456789+-.eE") != n) return 0;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end != s + n || (errno == ERANGE && fabs(d) >= 1.0)) return 0; /* overflow; underflow is fine */
    *out = d;
    return 1;
}

int bn_yaml_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s || isspace((unsigned char)*s)) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int bn_yaml_parse_bool(const bn_yaml_node *n, int *out) {
    const char *s = bn_yaml_str(n);
    if (!s || !n->plain) return 0;
    if (one_of(s, "true", "True", "TRUE")) return *out = 1, 1;
    if (one_of(s, "false", "False", "FALSE")) return *out = 0, 1;
    return 0;
}

/* ---- errors ------------------------------------------------------------------ */

bn_status bn_yaml_failv(const bn_yaml_doc *d, bn_error *err, const bn_yaml_node *at, bn_status code,
                        bn_yaml_field style, const char *field, const char *fmt, va_list ap) {
    bn_error_setv(err, code, fmt, ap);
    const int line = at ? at->line : 1;
    if (!field) bn_error_prefixf(err, "%s:%d", d->origin, line);
    else if (style == BN_YAML_KEY) bn_error_prefixf(err, "%s:%d: key '%s'", d->origin, line, field);
    else bn_error_prefixf(err, "%s:%d: %s", d->origin, line, field);
    return code;
}

bn_status bn_yaml_fail(const bn_yaml_doc *d, bn_error *err, const bn_yaml_node *at, bn_status code,
                       bn_yaml_field style, const char *field, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bn_yaml_failv(d, err, at, code, style, field, fmt, ap);
    va_end(ap);
    return code;
}
