/* doc.c — the document tree and its YAML/JSON writers; see doc.h. */
#include "parity/doc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "bitnet/atomic_file.h"

/* ---- the tree ------------------------------------------------------------------ */

void parity_doc_free(parity_doc_node *n) {
    while (n) {
        parity_doc_node *next = n->next;
        parity_doc_free(n->head);
        free(n->str);
        free(n);
        n = next;
    }
}

static parity_doc_node *new_node(parity_doc_builder *b, parity_doc_kind kind) {
    if (b->oom) return NULL;
    parity_doc_node *n = calloc(1, sizeof *n);
    if (!n) {
        b->oom = 1;
        b->oom_bytes = sizeof *n;
        return NULL;
    }
    n->kind = kind;
    return n;
}

parity_doc_node *parity_doc_root(parity_doc_builder *b) { return new_node(b, PARITY_DOC_MAP); }

parity_doc_node *parity_doc_add(parity_doc_builder *b, parity_doc_node *parent, const char *key, parity_doc_kind kind) {
    if (!parent) return NULL;
    parity_doc_node *n = new_node(b, kind);
    if (!n) return NULL;
    n->key = key;
    if (parent->tail) parent->tail->next = n;
    else parent->head = n;
    parent->tail = n;
    return n;
}

parity_doc_node *parity_doc_map(parity_doc_builder *b, parity_doc_node *p, const char *key) {
    return parity_doc_add(b, p, key, PARITY_DOC_MAP);
}

parity_doc_node *parity_doc_list(parity_doc_builder *b, parity_doc_node *p, const char *key, int flow) {
    parity_doc_node *n = parity_doc_add(b, p, key, PARITY_DOC_LIST);
    if (n) n->flow = flow;
    return n;
}

/* Length of the valid UTF-8 sequence at p, or 0 (overlong forms, surrogates
 * and code points past U+10FFFF are invalid). */
static int utf8_len(const unsigned char *p) {
    const unsigned c = p[0];
    if (c < 0x80) return 1;
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) || (c == 0xF0 && p[1] < 0x90) ||
        (c == 0xF4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* Strings come from files (tensor names, keys, messages quoting them): a
 * byte that is not part of valid UTF-8 becomes '?', since neither a YAML
 * nor a JSON document may hold it (libyaml's emitter fails on it, and its
 * error path frees the event twice). */
void parity_doc_str(parity_doc_builder *b, parity_doc_node *p, const char *key, const char *s) {
    parity_doc_node *n = parity_doc_add(b, p, key, s ? PARITY_DOC_STR : PARITY_DOC_NULL);
    if (!n || !s) return;
    if (!(n->str = strdup(s))) {
        b->oom = 1, b->oom_bytes = strlen(s) + 1;
        return;
    }
    for (unsigned char *q = (unsigned char *)n->str; *q;) {
        const int len = utf8_len(q);
        if (len) q += len;
        else *q++ = '?';
    }
}

void parity_doc_int(parity_doc_builder *b, parity_doc_node *p, const char *key, int64_t v) {
    parity_doc_node *n = parity_doc_add(b, p, key, PARITY_DOC_INT);
    if (n) n->i = v;
}

void parity_doc_num(parity_doc_builder *b, parity_doc_node *p, const char *key, double v) {
    parity_doc_node *n = parity_doc_add(b, p, key, PARITY_DOC_NUM);
    if (n) n->d = v;
}

void parity_doc_bool(parity_doc_builder *b, parity_doc_node *p, const char *key, int v) {
    parity_doc_node *n = parity_doc_add(b, p, key, PARITY_DOC_BOOL);
    if (n) n->i = v != 0;
}

void parity_doc_null(parity_doc_builder *b, parity_doc_node *p, const char *key) {
    parity_doc_add(b, p, key, PARITY_DOC_NULL);
}

void parity_doc_num_or_null(parity_doc_builder *b, parity_doc_node *p, const char *key, double v) {
    if (isnan(v)) parity_doc_null(b, p, key);
    else parity_doc_num(b, p, key, v);
}

void parity_doc_shape(parity_doc_builder *b, parity_doc_node *p, const char *key, int ndim, const int64_t *shape) {
    parity_doc_node *s = parity_doc_list(b, p, key, 1);
    for (int d = 0; d < ndim; d++) parity_doc_int(b, s, NULL, shape[d]);
}

/* ---- scalars as text -------------------------------------------------------------- */

/* Shortest text that reads back as the same double, always with a '.' so
 * YAML 1.1 readers (PyYAML) take it as a float: 1e-06 -> 1.0e-06. */
static void format_double(double d, char *buf, size_t size) {
    if (isnan(d)) {
        snprintf(buf, size, ".nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, size, d > 0 ? ".inf" : "-.inf");
        return;
    }
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, d);
        if (strtod(tmp, NULL) == d) break;
    }
    char *e = strchr(tmp, 'e');
    if (strchr(tmp, '.')) snprintf(buf, size, "%s", tmp);
    else if (e) snprintf(buf, size, "%.*s.0%s", (int)(e - tmp), tmp, e);
    else snprintf(buf, size, "%s.0", tmp);
}

static void scalar_text(const parity_doc_node *n, char *buf, size_t size) {
    switch (n->kind) {
    case PARITY_DOC_INT: snprintf(buf, size, "%lld", (long long)n->i); break;
    case PARITY_DOC_NUM: format_double(n->d, buf, size); break;
    case PARITY_DOC_BOOL: snprintf(buf, size, n->i ? "true" : "false"); break;
    default: snprintf(buf, size, "null"); break;
    }
}

/* A string a YAML 1.1 reader would take for something else when plain. */
static int needs_quotes(const char *s) {
    static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", NULL};
    if (!*s || strchr("0123456789+-.", *s)) return 1;
    for (int i = 0; words[i]; i++)
        if (!strcasecmp(s, words[i])) return 1;
    return 0;
}

/* ---- YAML ------------------------------------------------------------------------ */

static int yaml_scalar(yaml_emitter_t *e, const char *text, int is_string) {
    yaml_event_t ev;
    int quote = is_string && needs_quotes(text);
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), !quote, 1,
                                 quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
    return yaml_emitter_emit(e, &ev);
}

static int yaml_node(yaml_emitter_t *e, const parity_doc_node *n) {
    yaml_event_t ev;
    char buf[64];
    if (n->kind == PARITY_DOC_STR) return yaml_scalar(e, n->str, 1);
    if (n->kind != PARITY_DOC_MAP && n->kind != PARITY_DOC_LIST) {
        scalar_text(n, buf, sizeof buf);
        return yaml_scalar(e, buf, 0);
    }
    if (n->kind == PARITY_DOC_MAP)
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, n->flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    else
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, n->flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    if (!yaml_emitter_emit(e, &ev)) return 0;
    for (const parity_doc_node *c = n->head; c; c = c->next) {
        if (n->kind == PARITY_DOC_MAP && !yaml_scalar(e, c->key, 1)) return 0;
        if (!yaml_node(e, c)) return 0;
    }
    if (n->kind == PARITY_DOC_MAP) yaml_mapping_end_event_initialize(&ev);
    else yaml_sequence_end_event_initialize(&ev);
    return yaml_emitter_emit(e, &ev);
}

static bn_status emit_yaml(const parity_doc_node *root, FILE *f, bn_error *err) {
    yaml_emitter_t e;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&e)) return bn_error_nomem(err, sizeof e, "the YAML emitter");
    yaml_emitter_set_output_file(&e, f);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1); /* never fold long strings */
    yaml_emitter_set_indent(&e, 2);
    int ok = 1;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ok = ok && yaml_emitter_emit(&e, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    ok = ok && yaml_emitter_emit(&e, &ev);
    ok = ok && yaml_node(&e, root);
    yaml_document_end_event_initialize(&ev, 1);
    ok = ok && yaml_emitter_emit(&e, &ev);
    yaml_stream_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(&e, &ev);
    ok = ok && yaml_emitter_flush(&e);
    bn_status st = ok ? BN_OK
                      : bn_error_set(err, BN_ERR_IO, "YAML emitter: %s", e.problem ? e.problem : "write error");
    yaml_emitter_delete(&e);
    return st;
}

/* ---- JSON ------------------------------------------------------------------------ */

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void json_node(FILE *f, const parity_doc_node *n, int depth) {
    char buf[64];
    if (n->kind == PARITY_DOC_STR) return json_string(f, n->str);
    if (n->kind == PARITY_DOC_NUM && !isfinite(n->d)) {
        format_double(n->d, buf, sizeof buf);
        return json_string(f, buf);
    }
    if (n->kind != PARITY_DOC_MAP && n->kind != PARITY_DOC_LIST) {
        scalar_text(n, buf, sizeof buf);
        fputs(buf, f);
        return;
    }
    int map = n->kind == PARITY_DOC_MAP, flow = n->flow || !n->head;
    fputc(map ? '{' : '[', f);
    for (const parity_doc_node *c = n->head; c; c = c->next) {
        if (flow) fputs(c == n->head ? "" : ", ", f);
        else fprintf(f, "%s\n%*s", c == n->head ? "" : ",", 2 * (depth + 1), "");
        if (map) {
            json_string(f, c->key);
            fputs(": ", f);
        }
        json_node(f, c, depth + 1);
    }
    if (!flow) fprintf(f, "\n%*s", 2 * depth, "");
    fputc(map ? '}' : ']', f);
}

/* ---- output ---------------------------------------------------------------------- */

bn_status parity_doc_emit(const parity_doc_node *root, parity_doc_format fmt, FILE *f, bn_error *err) {
    if (fmt == PARITY_DOC_YAML) return emit_yaml(root, f, err);
    json_node(f, root, 0);
    fputc('\n', f);
    return ferror(f) ? bn_error_set(err, BN_ERR_IO, "write error") : BN_OK;
}

bn_status parity_doc_save(const parity_doc_node *root, parity_doc_format fmt, const char *path, bn_error *err) {
    bn_atomic_file *f;
    bn_status st = bn_atomic_file_open(path, &f, err);
    if (st) return st;
    st = parity_doc_emit(root, fmt, bn_atomic_file_stream(f), err);
    if (st) {
        bn_error_prefix(err, path);
        bn_atomic_file_abort(f);
        return st;
    }
    return bn_atomic_file_commit(f, err);
}
