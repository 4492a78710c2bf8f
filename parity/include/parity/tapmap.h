/* tapmap.h — reading any trace as canonical taps (docs/design.md): the tap maps of
 * parity/maps/ (one YAML file per producer) and the "view" of a trace through one.
 *
 * A map says, for each canonical tap ("blk.{N}.attn_q_rope", {N} = layer),
 * which foreign graph node holds it (name pattern, op, occurrence) and how to
 * turn the node's array into the canonical shape:
 *
 *   tapmap: bitparity/v1            required, exactly this version
 *   name: bitnet.cpp                required
 *   description: ...                optional text
 *   layout: ggml-nodes              the trace layout it reads (or canonical)
 *   producers: ["bitnet.cpp*"]      globs on meta.yaml producer.name: automatic choice
 *   pruned_rows: last               an array with fewer rows than the evaluation's
 *                                   tokens holds its last rows (pruned output layer)
 *   identity: true                  canonical only: tap X is e{k}/X.npy
 *   taps:                           one entry per canonical tap
 *     - tap: "blk.{N}.attn_scores"  canonical name; {N} binds the layer
 *       node: "kq-{N}"              foreign node name; {N} must appear iff it does in tap
 *       op: MUL_MAT                 or a list [MUL, SWIGLU]; absent = any op
 *       occurrence: 0               0-based among nodes with that name and op
 *       member: logits.npy          load e{k}/<member> instead of the node's file
 *       layout: heads               rows (default): ne0 is the row width, (T, ne0);
 *                                   head_rows: (T, nh, D) -> (T, nh·D);
 *                                   heads: (nh, T, n_kv) cropped to p0+T columns
 *       scale: inv_sqrt_head_dim    multiply by (float)(1/√D) ...
 *       head_dim: {node: "Qcur-{N}", op: ROPE}   ... D = ne0 of that node
 *       mask: causal                column j > p0+t of row t becomes -inf
 *
 * Every error names FILE:LINE and the key. Maps are compiled in (the files
 * are the source; a test checks the copies agree).
 */
#ifndef PARITY_TAPMAP_H
#define PARITY_TAPMAP_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/status.h"
#include "parity/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PARITY_TAPMAP_VERSION "bitparity/v1"
#define PARITY_TAPMAP_MAX_BYTES (1u << 20) /* larger files are refused, not read */
#define PARITY_MAP_MAX_OPS 4

/* How a foreign array becomes the canonical one. */
typedef enum parity_map_layout {
    PARITY_MAP_ROWS = 0,  /* ggml ne (C, T, ..) -> (T, C): one row per token */
    PARITY_MAP_HEAD_ROWS, /* ne (D, nh, T) -> (T, nh·D): heads concatenated */
    PARITY_MAP_HEADS,     /* ne (n_kv, T, nh) -> (nh, T, p0+T): padded columns cropped */
} parity_map_layout;

/* One entry of `taps:`. Strings are owned by the map. */
typedef struct parity_map_rule {
    const char *tap;    /* canonical name pattern, "{N}" at most once */
    const char *node;   /* foreign node name pattern, or NULL (member only) */
    const char *ops[PARITY_MAP_MAX_OPS]; /* accepted ops */
    int n_ops;          /* 0: any op */
    int64_t occurrence; /* 0-based among nodes matching (name, op) */
    const char *member; /* e{k}/<member> holds the data (NULL: the node's file) */
    parity_map_layout layout;
    int scale_inv_sqrt_head_dim; /* 1: multiply by (float)(1.0f / sqrtf(D)) */
    const char *head_dim_node;   /* pattern of the node whose ne0 is D */
    const char *head_dim_op;     /* its op, or NULL for any */
    int causal_mask;    /* 1: set columns j > p0 + t to -inf (after the crop) */
    int line;           /* 1-based line of the entry in the map file */
} parity_map_rule;

typedef struct parity_tapmap parity_tapmap;

/* Parses a map file (at most PARITY_TAPMAP_MAX_BYTES). IO when unreadable;
 * FORMAT for malformed YAML, unknown keys, bad values, a {N} in only one of
 * tap/node, scale without head_dim; UNSUPPORTED for another `tapmap:`
 * version. Messages start with "path:line: ". */
bn_status parity_tapmap_load_file(const char *path, parity_tapmap **out, bn_error *err);

/* Same over text of len bytes; origin stands for the file name in messages. */
bn_status parity_tapmap_load_string(const char *text, size_t len, const char *origin, parity_tapmap **out,
                                    bn_error *err);

/* One of the compiled-in maps (parity/maps/<name>.yaml): bitnet.cpp,
 * llama.cpp, canonical. NOT_FOUND, listing the names, for any other. */
bn_status parity_tapmap_load_builtin(const char *name, parity_tapmap **out, bn_error *err);

/* A built-in name or else a file path (what `--map NAME|FILE` takes); a
 * bare word naming neither is reported as an unknown built-in (NOT_FOUND). */
bn_status parity_tapmap_load(const char *name_or_path, parity_tapmap **out, bn_error *err);

/* The compiled-in YAML text of a built-in map, or NULL. */
const char *parity_tapmap_builtin_text(const char *name);
/* Names of the built-in maps; *n receives the count. */
const char *const *parity_tapmap_builtin_names(size_t *n);

/* The built-in map for a trace, from meta.yaml: layout canonical -> canonical;
 * ggml-nodes -> the first map whose producers glob matches producer.name.
 * UNSUPPORTED naming the producer when none does. */
bn_status parity_tapmap_for_trace(const parity_trace *t, parity_tapmap **out, bn_error *err);

void parity_tapmap_free(parity_tapmap *m); /* NULL is fine */

const char *parity_tapmap_name(const parity_tapmap *m);
const char *parity_tapmap_origin(const parity_tapmap *m); /* path or "builtin:<name>" */
const char *parity_tapmap_sha256(const parity_tapmap *m); /* of the exact text */
parity_layout parity_tapmap_layout(const parity_tapmap *m);
int parity_tapmap_identity(const parity_tapmap *m);
size_t parity_tapmap_rule_count(const parity_tapmap *m);
const parity_map_rule *parity_tapmap_rule(const parity_tapmap *m, size_t i); /* NULL past the end */

/* ---- a trace seen through a map ----------------------------------------- */

/* One canonical tap loaded from a trace. */
typedef struct parity_tensor {
    float *data;      /* [n] malloc'ed (parity_tensor_free) */
    size_t n;         /* product of shape */
    int ndim;         /* 1..3 */
    int64_t shape[3]; /* canonical numpy order */
    int64_t row0;     /* token index of row 0: T - rows for a pruned row subset, else 0 */
    bool borrowed;    /* data is a caller's parity_f32_buf (parity_tapview_load_into): not freed here */
} parity_tensor;

void parity_tensor_free(parity_tensor *t); /* frees data (unless borrowed) and zeroes t; NULL is fine */

typedef struct parity_tapview parity_tapview;

/* Binds map m to trace t: lists, per evaluation, the canonical taps t holds,
 * in evaluation order (canonical: meta.yaml `taps` present in e{k}/;
 * ggml-nodes: the index order of the nodes the rules claim; a node is claimed
 * by the first rule that matches it). UNSUPPORTED when m's layout is not t's.
 * t must outlive the view. */
bn_status parity_tapview_open(const parity_trace *t, const parity_tapmap *m, parity_tapview **out,
                              bn_error *err);
void parity_tapview_free(parity_tapview *v); /* NULL is fine */

const parity_trace *parity_tapview_trace(const parity_tapview *v);
const parity_tapmap *parity_tapview_map(const parity_tapview *v);
/* Number of canonical taps of evaluation k (0 when k is out of range). */
int64_t parity_tapview_count(const parity_tapview *v, int64_t k);
/* Name of the i-th tap of evaluation k, or NULL. */
const char *parity_tapview_name(const parity_tapview *v, int64_t k, int64_t i);
/* Index of tap `name` in evaluation k, or -1. */
int64_t parity_tapview_find(const parity_tapview *v, int64_t k, const char *name);
/* Where tap i of evaluation k comes from, for receipts: the member name, and
 * for ggml nodes "(name, op, index.tsv line L)" after it. */
const char *parity_tapview_source(const parity_tapview *v, int64_t k, int64_t i);

/* Loads tap i of evaluation k as float32 in canonical shape, applying the
 * rule's layout, scale and mask. FORMAT (naming the member and index line)
 * when the array's size disagrees with the node's ne or a layout cannot
 * apply; a heads array with fewer than p0+T columns is returned uncropped so
 * the comparison reports the shape mismatch. Thread-safe for distinct out. */
bn_status parity_tapview_load(const parity_tapview *v, int64_t k, int64_t i, parity_tensor *out,
                              bn_error *err);

/* As parity_tapview_load, with the array in buf (reused across calls):
 * out->data is buf->data and out->borrowed is set, so parity_tensor_free
 * leaves it to the caller's parity_f32_buf_free. */
bn_status parity_tapview_load_into(const parity_tapview *v, int64_t k, int64_t i, parity_tensor *out,
                                   parity_f32_buf *buf, bn_error *err);

/* Layer of a canonical tap name ("blk.3.attn_q" -> 3), -1 for global taps. */
int parity_tap_layer(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_TAPMAP_H */
