/* compare.h — the comparison of two traces: a subject (the stack under test)
 * against a reference, tap by tap, under a tolerance policy.
 *
 * Both traces are read as canonical taps through tap maps (tapmap.h). The
 * walk follows the subject's taps in evaluation order, e0 first, for every
 * evaluation both traces hold; before any activation is compared the
 * evaluations' token ids and p0 must agree (else: a tokenization diagnosis,
 * nothing else is compared). Taps are streamed: one tap of each side is in
 * memory at a time, loaded concurrently and reduced on the pool.
 *
 * The result carries per-tap verdicts, the first divergence in evaluation
 * order, the per-layer error growth (max NMSE per layer per evaluation), the
 * logits summary of each evaluation and a list of hints — filled by the
 * localization stage (parity_compare_add_hint), which runs after compare.
 */
#ifndef PARITY_COMPARE_H
#define PARITY_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/progress.h"
#include "bitnet/status.h"
#include "bitnet/threads.h"
#include "parity/metrics.h"
#include "parity/policy.h"
#include "parity/tapmap.h"
#include "parity/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum parity_tap_status {
    PARITY_TAP_PASS = 0,
    PARITY_TAP_FAIL,              /* a policy limit is broken */
    PARITY_TAP_SHAPE_MISMATCH,    /* shapes differ beyond a row subset */
    PARITY_TAP_MISSING_REFERENCE, /* the subject has it, the reference does not */
    PARITY_TAP_MISSING_SUBJECT,   /* the reference has it, the subject does not */
    PARITY_TAP_POLICY_SKIP,       /* the policy says skip: true */
    PARITY_TAP_STATUS_COUNT
} parity_tap_status;

/* "pass", "fail", "shape-mismatch", "missing-reference", "missing-subject",
 * "skipped"; "?" for anything else. */
const char *parity_tap_status_name(parity_tap_status s);

/* One tap of one evaluation. */
typedef struct parity_tap_result {
    int64_t eval;             /* evaluation index (e{eval}) */
    char *name;               /* canonical tap name (owned) */
    int layer;                /* -1 for token_embd, output_norm, logits */
    parity_tap_status status;
    int ndim;                 /* subject shape (0 when missing) */
    int64_t shape[3];
    int ref_ndim;             /* reference shape after its map (0 when missing) */
    int64_t ref_shape[3];
    int64_t row_begin, row_end; /* token rows compared (a pruned reference compares the last rows) */
    char *ref_source;         /* where the reference value came from (owned), or NULL */
    parity_metrics m;         /* valid for PASS and FAIL */
    parity_limits lim;        /* resolved limits; lim.rule points into the policy: keep it alive */
    parity_check check;       /* verdict; SHAPE_MISMATCH: metric "shape", value/limit = element counts */
    int is_logits;            /* the logits tap: the evaluation's logits summary was checked too */
} parity_tap_result;

/* One compared evaluation. */
typedef struct parity_eval_result {
    int64_t eval;
    char id[24];              /* "e0" */
    int64_t n_tokens, p0;
    int64_t n_pass, n_fail;   /* taps (shape mismatches count as failures) */
    int has_logits;
    int64_t logits_rows;      /* positions compared */
    parity_logits_summary logits;
    double *growth;           /* [n_layer of the result] max NMSE per layer, NAN where nothing compared */
} parity_eval_result;

/* The first failing tap in evaluation order. */
typedef struct parity_divergence {
    int found;
    int64_t eval;
    const char *tap;    /* points into the taps array */
    int layer;
    const char *metric; /* "nmse", "bit_diff_count", "shape", ... */
    double value, limit;
    size_t tap_index;   /* in result->taps */
} parity_divergence;

/* A diagnosis in words (docs/design.md "hints"), with the numbers behind it. */
typedef struct parity_hint {
    char *name;     /* short id: "tokenization-mismatch", "norm-scale", ... */
    char *message;  /* one sentence */
    char *evidence; /* the measurement that supports it */
} parity_hint;

typedef struct parity_compare_counts {
    int64_t taps;              /* entries in the taps array */
    int64_t compared;          /* PASS + FAIL */
    int64_t pass, fail;
    int64_t bit_identical;     /* compared taps whose bits agree everywhere */
    int64_t shape_mismatch;
    int64_t missing_reference, missing_subject;
    int64_t policy_skip;
} parity_compare_counts;

typedef struct parity_compare_result {
    parity_tap_result *taps;   /* [n_taps] evaluation order: e0's subject taps, then its reference-only ones, e1... */
    size_t n_taps;
    parity_eval_result *evals; /* [n_evals] compared evaluations */
    size_t n_evals;
    int64_t n_evals_subject, n_evals_reference;
    int n_layer;               /* 1 + the highest layer seen (length of every growth array) */
    parity_compare_counts counts;
    parity_divergence first;
    int pass;                  /* verdict: no failure, no shape mismatch, tokens agree, >= 1 tap compared */
    int tokenization_mismatch; /* tokens or p0 differ: nothing was compared */
    char diagnosis[256];       /* one line when tokenization_mismatch or nothing compared, else "" */
    parity_hint *hints;        /* [n_hints] see parity_compare_add_hint */
    size_t n_hints;
    const char *accepted[4];   /* [n_accepted] equivalences the policy accepted (static ids, parity_hints_accept):
                                  the verdict is pass although `first` names where the two differ */
    size_t n_accepted;
    double t_load, t_metrics, t_total; /* seconds: loading + layout, metrics, whole call */
} parity_compare_result;

typedef struct parity_compare_opts {
    bn_pool *pool; /* NULL: everything on the caller's thread */
    const volatile sig_atomic_t *cancel; /* NULL: never; polled per tap (BN_ERR_CANCELLED) */
    bn_progress_sink progress; /* told per subject tap and at the end: stage "comparing", unit "taps" */
} parity_compare_opts;

/* Compares subject with reference, each read through its map (maps' layouts
 * must match the traces'), under policy. *out is set (free with
 * parity_compare_result_free) whenever BN_OK is returned — a parity failure
 * is a result, not an error. Errors: INVALID for NULL arguments, input errors
 * (a member that fails to load: FORMAT/IO naming the file and member), NOMEM.
 * Deterministic: the result does not depend on the pool size. */
bn_status parity_compare(const parity_trace *subject, const parity_tapmap *subject_map,
                         const parity_trace *reference, const parity_tapmap *reference_map,
                         const parity_policy *policy, const parity_compare_opts *opts,
                         parity_compare_result **out, bn_error *err);

void parity_compare_result_free(parity_compare_result *r); /* NULL is fine */

/* Appends a hint (strings are copied). The extension point of the
 * localization stage: receipts list r->hints in order. NOMEM only. */
bn_status parity_compare_add_hint(parity_compare_result *r, const char *name, const char *message,
                                  const char *evidence, bn_error *err);

/* The built-in policy a comparison of these two traces should use, from
 * their meta.yaml: different weight types -> quantized; the same producer
 * and numerics -> exact; engine (ggml-compat) vs bitnet.cpp -> ggml-compat;
 * engine vs bitparity-reference -> reference; anything else (llama.cpp,
 * mixed numerics) -> cross-backend. why (may be NULL) gets one line saying
 * which facts decided. Returns a static name. */
const char *parity_compare_default_policy(const parity_trace *subject, const parity_trace *reference, char *why,
                                          size_t why_size);

/* The weight type of a trace's model ("f32", "i2_s", "tq2_0", ...) as its
 * meta.yaml records it (model.weight_type); NULL when it does not. File
 * names are never read for it: a policy must not change when a file is
 * renamed. Valid while t is open. */
const char *parity_trace_weight_type(const parity_trace *t);

/* The lm_head type a trace's run used (settings.lm_head: "q8_0" after
 * `--lm-head q8_0`), "stored" when it does not record one: an absent key
 * and an explicit "stored" are the same run. Valid while t is open. */
const char *parity_trace_lm_head(const parity_trace *t);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_COMPARE_H */
