/* trace.h — a parity trace: an .npz of per-evaluation arrays plus meta.yaml
 * (docs/trace-format.md), in either layout:
 *   canonical   e{k}/{tap}.npy for the taps of docs/design.md (engine, Python reference);
 *   ggml-nodes  e{k}/index.tsv listing every ggml graph node in evaluation order
 *               and e{k}/NNNN_<name>.npy per node (bitnet.cpp / llama.cpp dumps).
 *
 * Opening parses meta.yaml with libyaml and, for ggml-nodes, every index.tsv;
 * arrays are read only when asked for. Malformed metadata gives one line naming
 * the trace, the member and the line ("t.npz: meta.yaml:7: evaluations[1].p0:
 * expected an integer, got 'x'").
 *
 * The writer streams the canonical layout onto an npz_writer: taps go to the
 * file as they are added, meta.yaml is written last.
 */
#ifndef PARITY_TRACE_H
#define PARITY_TRACE_H

#include <stdint.h>

#include "bitnet/npz.h"
#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PARITY_TRACE_ID "bitparity/v1"

typedef enum parity_layout {
    PARITY_LAYOUT_CANONICAL = 0,
    PARITY_LAYOUT_GGML_NODES = 1,
} parity_layout;

/* One evaluation: a batch of tokens at positions p0.. (e0 = the prompt). */
typedef struct parity_eval {
    const char *id;        /* "e0", "e1", ...: the member directory */
    const int32_t *tokens; /* [n_tokens] */
    int64_t n_tokens;
    int64_t p0; /* position of tokens[0] */
} parity_eval;

/* One row of a ggml-nodes e{k}/index.tsv. */
typedef struct parity_node {
    int64_t seq;      /* evaluation order as recorded */
    const char *name; /* ggml tensor name; repeats ("Qcur-0" twice) */
    const char *op;   /* "MUL_MAT", "ROPE", ... */
    const char *type; /* ggml type of the node ("f32", "f16"); the array is float32 */
    int64_t ne[4];    /* ggml order, ne[0] fastest */
    const char *src0; /* source names, or NULL when the index has no such column */
    const char *src1;
    const char *member;   /* "e0/0003_Qcur-0.npy" */
    int64_t member_index; /* in the npz (npz_member_at) */
    int64_t line;         /* 1-based line in index.tsv, for messages */
} parity_node;

typedef struct parity_trace parity_trace;

/* Opens the trace at `path` and validates meta.yaml (trace: bitparity/v1, a
 * known layout, evaluations e0..eN with tokens and p0) and, for ggml-nodes,
 * each e{k}/index.tsv (required columns seq name op type ne0..ne3 file, numeric
 * fields, increasing seq, every listed member present). On failure *out is NULL. */
bn_status parity_trace_open(const char *path, parity_trace **out, bn_error *err);

/* Same over a caller-owned buffer that must outlive the trace (fuzzing). */
bn_status parity_trace_open_memory(const void *buf, size_t size, const char *name, parity_trace **out,
                                   bn_error *err);

void parity_trace_close(parity_trace *t); /* NULL is fine */

parity_layout parity_trace_layout(const parity_trace *t);
const char *parity_trace_layout_name(parity_layout l); /* "canonical", "ggml-nodes" */
const char *parity_trace_path(const parity_trace *t);
const npz_reader *parity_trace_npz(const parity_trace *t); /* the container */

int64_t parity_trace_eval_count(const parity_trace *t);
/* Evaluation k, or NULL when out of range. */
const parity_eval *parity_trace_eval(const parity_trace *t, int64_t k);

/* Every evaluation in order, as one malloc'ed array (*n entries, free() it;
 * the strings and tokens stay t's): what a recording follows to evaluate
 * exactly another trace's tokens. NOMEM. */
bn_status parity_trace_evals(const parity_trace *t, parity_eval **out, int64_t *n, bn_error *err);

/* The scalar under a dotted key of meta.yaml's nested mappings
 * ("trace", "producer.name", "model.sha256", "settings.kv_cache"), as written
 * (YAML scalars are text), or NULL when absent or not a scalar. */
const char *parity_trace_get(const parity_trace *t, const char *key);
/* Same, parsed as a whole decimal integer: NOT_FOUND when absent, FORMAT
 * (naming the key and line) when not an integer. */
bn_status parity_trace_get_int(const parity_trace *t, const char *key, int64_t *out, bn_error *err);
/* Number of scalars and the i-th (key, value) in file order, for listing. */
int64_t parity_trace_scalar_count(const parity_trace *t);
const char *parity_trace_scalar_key(const parity_trace *t, int64_t i);
const char *parity_trace_scalar_value(const parity_trace *t, int64_t i);

/* greedy_tokens from meta.yaml ([n]; n = 0 and NULL when absent). */
const int32_t *parity_trace_greedy_tokens(const parity_trace *t, int64_t *n);

/* Canonical: the tap names of one evaluation in evaluation order (meta.yaml
 * `taps`, or the e0/ members when the key is absent). ggml-nodes: 0 and NULL. */
int64_t parity_trace_tap_count(const parity_trace *t);
const char *parity_trace_tap_name(const parity_trace *t, int64_t i);

/* ggml-nodes: the nodes of evaluation k in index order (0/NULL when k is out
 * of range or the layout is canonical). */
int64_t parity_trace_node_count(const parity_trace *t, int64_t k);
const parity_node *parity_trace_node(const parity_trace *t, int64_t k, int64_t i);
/* Index of the `occurrence`-th (0-based) node of evaluation k named `name`
 * with op `op` (NULL = any op), or -1. Node names repeat: (name, op, order)
 * identifies a node. */
int64_t parity_trace_find_node(const parity_trace *t, int64_t k, const char *name, const char *op,
                               int64_t occurrence);

/* Index in the npz of what `name` designates in evaluation k, trying in turn
 * "e{k}/{name}.npy" (a canonical tap, "logits"), "e{k}/{name}" (a ggml-nodes
 * file column, "0003_Qcur-0.npy") and `name` itself (a full member name); -1
 * when none exists. */
int64_t parity_trace_resolve(const parity_trace *t, int64_t k, const char *name);

/* Loads the array `name` of evaluation k (resolved as above) converted to
 * float32: f16, i8, i32 and f64 elements are converted. *data is malloc'ed
 * (free()); *info gets the stored dtype, shape and element count. NOT_FOUND
 * names the evaluation and the name. */
bn_status parity_trace_load_f32(const parity_trace *t, int64_t k, const char *name, float **data,
                                npz_array_info *info, bn_error *err);

/* A float buffer that successive loads reuse (grown as needed, never
 * shrunk): comparing gigabyte traces tap by tap then costs no fresh pages
 * (zeroed by the kernel) per tap. Zero-initialize; free with
 * parity_f32_buf_free. */
typedef struct parity_f32_buf {
    float *data;
    size_t cap; /* floats */
} parity_f32_buf;
void parity_f32_buf_free(parity_f32_buf *buf);

/* As parity_trace_load_f32, into buf (its data is replaced; the previous
 * contents are lost, and a grown buffer moves). */
bn_status parity_trace_load_f32_into(const parity_trace *t, int64_t k, const char *name, parity_f32_buf *buf,
                                     npz_array_info *info, bn_error *err);

/* Same without conversion: int8 stays int8 (release with npz_array_free). */
bn_status parity_trace_load_raw(const parity_trace *t, int64_t k, const char *name, npz_array *out,
                                bn_error *err);

/* --- canonical writer ------------------------------------------------------ */
/* What meta.yaml records. NULL strings are left out (fault NULL = "none"). */
typedef struct parity_trace_meta {
    const char *producer_name; /* "bitparity" or "bitparity-reference" */
    const char *producer_version;
    const char *producer_commit;
    const char *model_path;
    const char *model_sha256;
    const char *model_arch;
    const char *model_weight_type; /* "i2_s", "tq2_0", "f32": the projections' type (decides default policies) */
    const char *numerics;     /* "ggml-compat", "f32" or "llama.cpp-compat" */
    const char *kv_cache;     /* "f16" or "f32": the K/V cache type; NULL: left out */
    const char *lm_head;      /* "q8_0": the lm_head was requantized (bn_model_requantize_lm_head);
                                 NULL: the file's own, left out */
    int64_t threads;          /* < 0: left out */
    const char *fault;        /* injected fault name; NULL = "none" */
    const parity_eval *evals; /* [n_evals]; ids are written as e0..; tokens must be non-empty */
    int64_t n_evals;
    const char *const *taps; /* [n_taps]; NULL: the order in which taps were first added */
    int64_t n_taps;
    const int32_t *greedy_tokens; /* [n_greedy]; NULL: key left out */
    int64_t n_greedy;
} parity_trace_meta;

typedef struct parity_trace_writer parity_trace_writer;

/* Starts writing `path` (deflate level 1 or stored, as `comp`) through a
 * temporary file that finish renames onto path (npz_writer_open): an
 * existing trace of that name stays intact until then. */
bn_status parity_trace_writer_open(const char *path, npz_compression comp, parity_trace_writer **out,
                                   bn_error *err);

/* Same into an anonymous in-memory file that nothing on disk holds
 * (npz_writer_open_anonymous); `name` stands for it in messages and is the
 * trace's path (parity_trace_path). Finish it with
 * parity_trace_writer_finish_open. */
bn_status parity_trace_writer_open_memory(const char *name, npz_compression comp, parity_trace_writer **out,
                                          bn_error *err);

/* Polls *cancel (NULL: never) at every MiB written (npz_writer_set_cancel):
 * add_tap and finish then fail with BN_ERR_CANCELLED. */
void parity_trace_writer_set_cancel(parity_trace_writer *w, const volatile sig_atomic_t *cancel);

/* Writes tap `tap` of evaluation k as member "e{k}/{tap}.npy" now (nothing is
 * kept but its name). Tap names are non-empty without '/'; each (k, tap) once. */
bn_status parity_trace_writer_add_tap(parity_trace_writer *w, int64_t k, const char *tap, npz_dtype dtype,
                                      const int64_t *shape, int ndim, const void *data, bn_error *err);

/* Emits meta.yaml (libyaml emitter) as the last member, publishes the file
 * at its path and frees w in every case; fails when a tap was added for an
 * evaluation index >= meta->n_evals or meta is incomplete (no evaluations,
 * empty tokens). On failure the temporary file is removed and nothing is
 * published. */
bn_status parity_trace_writer_finish(parity_trace_writer *w, const parity_trace_meta *meta, bn_error *err);

/* Finishes w as parity_trace_writer_finish does and opens the trace it
 * wrote (for a memory writer: its memory, mapped without a copy). Frees w
 * in every case; on failure *out is NULL. */
bn_status parity_trace_writer_finish_open(parity_trace_writer *w, const parity_trace_meta *meta,
                                          parity_trace **out, bn_error *err);

/* Frees w and removes the temporary file; NULL is fine. */
void parity_trace_writer_abort(parity_trace_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_TRACE_H */
