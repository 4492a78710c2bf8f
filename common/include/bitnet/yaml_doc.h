/* yaml_doc.h — the one YAML reading layer: policies, tap maps, trace
 * metadata (meta.yaml) and receipts are all read through it.
 *
 * libyaml loads exactly one document (a second one is an error, not silently
 * ignored) into a small read-only tree of nodes: mappings, lists and scalars,
 * each with the line and column where it starts. Readers walk the tree, judge
 * scalars with the shared parsers below, and report problems through
 * bn_yaml_fail, so that every message has the one form
 *
 *     ORIGIN:LINE: FIELD: what was expected, and what was found
 *
 * and syntax errors the form "ORIGIN:LINE:COL: malformed YAML: ...".
 *
 * Aliases are resolved by libyaml into shared nodes: the tree is a graph in
 * which a node may be reached more than once (refs > 1) and may even contain
 * itself. Readers that recurse bound their depth and work; readers of files
 * that never use aliases reject refs > 1.
 */
#ifndef BITNET_YAML_DOC_H
#define BITNET_YAML_DOC_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bn_yaml_kind { BN_YAML_SCALAR, BN_YAML_LIST, BN_YAML_MAP } bn_yaml_kind;

typedef struct bn_yaml_node bn_yaml_node;
struct bn_yaml_node {
    bn_yaml_kind kind;
    int line, col;         /* 1-based start of the node */
    const char *text;      /* scalar: the value, NUL-terminated (may also hold NULs: see len) */
    size_t len;            /* scalar: bytes of text */
    int plain;             /* scalar: written without quotes (only plain scalars are numbers, booleans, null) */
    size_t n;              /* list: items; map: pairs */
    bn_yaml_node **items;  /* list: [n] items; map: [2n] key, value, key, value, ... */
    int refs;              /* how many places use the node: more than 1 only through aliases */
};

typedef struct bn_yaml_doc bn_yaml_doc; /* a loaded document: owns every node and string */

/* Loads the one document in text[0, len) (len <= max_bytes; a larger text is
 * FORMAT "ORIGIN: N bytes is larger than a WHAT may be (MAX)"). origin names
 * the text in every message ("policy.yaml", "t.npz: meta.yaml"). FORMAT for
 * malformed YAML or a second document, NOMEM. */
bn_status bn_yaml_parse(const char *origin, const char *text, size_t len, size_t max_bytes, const char *what,
                        bn_yaml_doc **out, bn_error *err);

/* Reads a whole regular file into *text (NUL-terminated, free() it) and its
 * size into *len. IO when it cannot be opened or read or is not a regular
 * file; FORMAT as bn_yaml_parse when larger than max_bytes, checked before
 * anything is read. For readers that hash the exact bytes they parse. */
bn_status bn_yaml_read_file(const char *path, size_t max_bytes, const char *what, char **text, size_t *len,
                            bn_error *err);

/* bn_yaml_parse of a whole regular file, its path as origin. IO when it
 * cannot be opened or read or is not a regular file; the size limit is
 * checked before anything is read. */
bn_status bn_yaml_load_file(const char *path, size_t max_bytes, const char *what, bn_yaml_doc **out,
                            bn_error *err);

/* Frees the document and every node and string in it. NULL is fine. */
void bn_yaml_free(bn_yaml_doc *d);

/* The root node; NULL for an empty document (only comments or nothing). */
const bn_yaml_node *bn_yaml_root(const bn_yaml_doc *d);

/* The origin given at load time. */
const char *bn_yaml_origin(const bn_yaml_doc *d);

/* The first node, in document order, that is used through an alias: used
 * in more than one place, or the root used anywhere. NULL when the document
 * has no aliases. For readers of files that never use them (receipts). */
const bn_yaml_node *bn_yaml_first_alias(const bn_yaml_doc *d);

/* Pair i of a mapping: its key and its value (the caller keeps i < n). */
const bn_yaml_node *bn_yaml_key(const bn_yaml_node *map, size_t i);
const bn_yaml_node *bn_yaml_value(const bn_yaml_node *map, size_t i);

/* Item i of a list (the caller keeps i < n). */
const bn_yaml_node *bn_yaml_item(const bn_yaml_node *list, size_t i);

/* The value of the first pair whose key is the scalar `key`; NULL when map is
 * NULL or not a mapping, or no key matches. */
const bn_yaml_node *bn_yaml_get(const bn_yaml_node *map, const char *key);

/* The text of a scalar without embedded NUL bytes; NULL for anything else
 * (a collection, NULL, or a string no C reader could see whole). */
const char *bn_yaml_str(const bn_yaml_node *n);

/* 1 for a plain scalar spelled as YAML's null: empty, ~, null, Null, NULL. */
int bn_yaml_is_null(const bn_yaml_node *n);

/* "a mapping", "a list", "a scalar", or "nothing" for NULL: for "got ..." */
const char *bn_yaml_kind_name(const bn_yaml_node *n);

/* Number text: decimal notation ([+-]digits[.digits][e[+-]digits]) or
 * YAML's [+-].inf/.Inf/.INF and, when allow_nan, .nan/.NaN/.NAN. No hex,
 * no "inf" or "nan" words. Overflow is refused; underflow gives 0 or a
 * subnormal. Returns 1 and sets *out when s is such a number. */
int bn_yaml_parse_number(const char *s, int allow_nan, double *out);

/* Whole decimal integer in [lo, hi] (optional sign, no spaces). Returns 1
 * and sets *out on success. */
int bn_yaml_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* YAML 1.1 core booleans: a plain true/True/TRUE or false/False/FALSE.
 * Returns 1 and sets *out to 1 or 0 on success. */
int bn_yaml_parse_bool(const bn_yaml_node *n, int *out);

/* How an error names the place: a path into a generated file
 * ("summary.counts.pass: ...") or a key a person wrote ("key 'nmse_max': ...",
 * policies and tap maps). */
typedef enum bn_yaml_field { BN_YAML_PATH, BN_YAML_KEY } bn_yaml_field;

/* Sets err to code and "ORIGIN:LINE: FIELD: MESSAGE", FIELD written as
 * `style` says (no "FIELD: " when field is NULL); the line is at's, or 1 when
 * at is NULL. Returns code. */
bn_status bn_yaml_fail(const bn_yaml_doc *d, bn_error *err, const bn_yaml_node *at, bn_status code,
                       bn_yaml_field style, const char *field, const char *fmt, ...) BN_PRINTF(7, 8);

/* bn_yaml_fail with a va_list (ap is left to the caller's va_end). */
bn_status bn_yaml_failv(const bn_yaml_doc *d, bn_error *err, const bn_yaml_node *at, bn_status code,
                        bn_yaml_field style, const char *field, const char *fmt, va_list ap) BN_PRINTF(7, 0);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_YAML_DOC_H */
