/* doc.h — a small document tree (maps, lists, scalars) written as YAML
 * (libyaml emitter) or JSON: the one writer behind receipts (receipt.h) and
 * the documents of `bitparity lint` and `bitparity diff`.
 *
 * Building never fails half-way: an allocation failure sets the builder's
 * oom flag and makes every later call a no-op, so building code checks once
 * at the end. Map keys are kept by pointer: pass strings that outlive the
 * tree (literals, schema tables).
 */
#ifndef PARITY_DOC_H
#define PARITY_DOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum parity_doc_format { PARITY_DOC_YAML = 0, PARITY_DOC_JSON = 1 } parity_doc_format;

typedef enum parity_doc_kind {
    PARITY_DOC_MAP,
    PARITY_DOC_LIST,
    PARITY_DOC_STR,
    PARITY_DOC_INT,
    PARITY_DOC_NUM,
    PARITY_DOC_BOOL,
    PARITY_DOC_NULL
} parity_doc_kind;

typedef struct parity_doc_node {
    parity_doc_kind kind;
    int flow;                           /* maps and lists: written on one line */
    const char *key;                    /* set when the parent is a map (not copied) */
    char *str;                          /* STR (owned) */
    int64_t i;                          /* INT, BOOL */
    double d;                           /* NUM: non-finite written as .inf/-.inf/.nan (JSON: as strings) */
    struct parity_doc_node *head, *tail; /* children in order */
    struct parity_doc_node *next;
} parity_doc_node;

/* The sticky allocation-failure state of one build. */
typedef struct parity_doc_builder {
    int oom;
    size_t oom_bytes; /* the allocation that failed */
} parity_doc_builder;

/* A new root map, or NULL (b->oom set). Free with parity_doc_free. */
parity_doc_node *parity_doc_root(parity_doc_builder *b);

/* Appends a child of `kind` to parent (key NULL for list items). NULL when
 * parent is NULL or after an allocation failure. */
parity_doc_node *parity_doc_add(parity_doc_builder *b, parity_doc_node *parent, const char *key, parity_doc_kind kind);

/* Typed appends; each is a no-op after a failure. */
parity_doc_node *parity_doc_map(parity_doc_builder *b, parity_doc_node *p, const char *key);
parity_doc_node *parity_doc_list(parity_doc_builder *b, parity_doc_node *p, const char *key, int flow);
void parity_doc_str(parity_doc_builder *b, parity_doc_node *p, const char *key, const char *s); /* NULL: null */
void parity_doc_int(parity_doc_builder *b, parity_doc_node *p, const char *key, int64_t v);
void parity_doc_num(parity_doc_builder *b, parity_doc_node *p, const char *key, double v);
void parity_doc_bool(parity_doc_builder *b, parity_doc_node *p, const char *key, int v);
void parity_doc_null(parity_doc_builder *b, parity_doc_node *p, const char *key);
/* A number that is NAN means "not measured": null. */
void parity_doc_num_or_null(parity_doc_builder *b, parity_doc_node *p, const char *key, double v);
/* A flow list of ndim integers. */
void parity_doc_shape(parity_doc_builder *b, parity_doc_node *p, const char *key, int ndim, const int64_t *shape);

/* Writes the tree to f as YAML (block style, flow where asked, strings that
 * a YAML 1.1 reader would take for something else quoted, doubles in their
 * shortest round-trip form with a '.') or JSON (2-space indent). IO on a
 * write error. */
bn_status parity_doc_emit(const parity_doc_node *root, parity_doc_format fmt, FILE *f, bn_error *err);

/* The same into a new file at path, replacing it only when complete
 * (bitnet/atomic_file.h). */
bn_status parity_doc_save(const parity_doc_node *root, parity_doc_format fmt, const char *path, bn_error *err);

void parity_doc_free(parity_doc_node *root); /* the node, its children and later siblings; NULL is fine */

#ifdef __cplusplus
}
#endif

#endif /* PARITY_DOC_H */
