/* policy.h — YAML tolerance policies: which metric limits apply to which tap.
 *
 *   policy: bitparity/v1            required, exactly this version
 *   name: strict-cpu                required
 *   description: ...                optional text
 *   numerics: [ggml-compat, f32]    modes the limits were calibrated for
 *   floors: {...}                   free-form measured noise floors, for humans
 *   defaults: {nmse_max: 1.0e-6}    limits for every tap
 *   accept: [equivalent-rotary-layout]  optional: equivalences that pass
 *                                   (a hint proved the two models the same;
 *                                   parity/hints.h parity_hints_accept)
 *   rules:                          first match wins, in file order
 *     - match: "blk.*.attn_probs"   glob: * ? [a-z] [!0-9], '.' is an ordinary character
 *       nmse_max: 1.0e-5
 *
 * Limit keys (numbers are plain YAML scalars; .inf means "no limit"):
 *   nmse_max nmse_llama_max max_abs_max rel_rms_max ulp_max   (≥ 0)
 *   cosine_min (−1..1)
 *   bit_identical allow_nan skip                              (true/false)
 *   kld_mean_max kld_p99_max kld_max_max                      (≥ 0, logits only)
 *   top1_agree_min topk_overlap_min same_top_p_min            (0..1, logits only)
 * A tap's limits are the defaults overlaid with the keys of the first rule
 * whose glob matches the tap name. Every error names FILE:LINE and the key.
 */
#ifndef PARITY_POLICY_H
#define PARITY_POLICY_H

#include <stddef.h>

#include "bitnet/sha256.h"
#include "bitnet/status.h"
#include "parity/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PARITY_POLICY_VERSION "bitparity/v1"
#define PARITY_POLICY_MAX_BYTES (1u << 20) /* larger files are refused, not read */

typedef struct parity_policy parity_policy;

/* Limits for one tap. A double limit is NAN when unset (not checked); a flag
 * is -1 when unset. */
typedef struct parity_limits {
    double nmse_max, nmse_llama_max, cosine_min, max_abs_max, rel_rms_max, ulp_max;
    signed char bit_identical; /* 1: n_bitdiff must be 0 */
    signed char allow_nan;     /* 1: NaN allowed where both sides have it; else (default) no NaN at all */
    signed char skip;          /* 1: the tap is not checked */
    double kld_mean_max, kld_p99_max, kld_max_max;
    double top1_agree_min, topk_overlap_min, same_top_p_min; /* topk_overlap = top-5 overlap */
    const char *rule; /* glob of the rule that matched, or "defaults"; owned by the policy */
    int rule_line;    /* its line in the policy file (0 for defaults) */
} parity_limits;

/* Verdict of one tap. On failure, metric/value/limit name the first limit
 * broken, in a fixed order (NaN, inf, bit_identical, ulp, nmse, ..., then the
 * logits keys) — what a receipt records as {metric, value, limit}. */
typedef struct parity_check {
    int pass;           /* 1 pass (or skipped), 0 fail */
    int skipped;        /* the resolved limits say skip: true */
    const char *metric; /* static name, e.g. "nmse"; NULL when passing */
    double value, limit;
} parity_check;

/* Parses a policy file (at most PARITY_POLICY_MAX_BYTES). IO when unreadable;
 * FORMAT for malformed YAML, a wrong value type, an unknown key, a rule
 * without match, a bad glob or out-of-range limit; UNSUPPORTED for another
 * `policy:` version. Messages start with "path:line: ". */
bn_status parity_policy_load_file(const char *path, parity_policy **out, bn_error *err);

/* Parses policy text of len bytes; origin stands for the file name in
 * messages (e.g. "builtin:exact"). Same errors as load_file. */
bn_status parity_policy_load_string(const char *text, size_t len, const char *origin, parity_policy **out,
                                    bn_error *err);

/* Loads one of the built-in policies (parity/policies/<name>.yaml compiled in):
 * exact, ggml-compat, reference, cross-backend, quantized. NOT_FOUND (listing
 * the names) for any other name. */
bn_status parity_policy_load_builtin(const char *name, parity_policy **out, bn_error *err);

/* The compiled-in YAML text of a built-in policy, or NULL. */
const char *parity_policy_builtin_text(const char *name);

/* Names of the built-in policies; *n receives the count. */
const char *const *parity_policy_builtin_names(size_t *n);

void parity_policy_free(parity_policy *p);

const char *parity_policy_name(const parity_policy *p);
const char *parity_policy_description(const parity_policy *p); /* "" when absent */
const char *parity_policy_origin(const parity_policy *p);      /* path or "builtin:<name>" */
/* sha256 (64 hex digits) of the exact policy text, for receipts. */
const char *parity_policy_sha256(const parity_policy *p);
size_t parity_policy_numerics_count(const parity_policy *p);
const char *parity_policy_numerics(const parity_policy *p, size_t i); /* NULL past the end */
/* 1 when the policy's `accept` list names this equivalence
 * ("equivalent-rotary-layout"), else 0. */
int parity_policy_accepts(const parity_policy *p, const char *equivalence);
/* 1 when the policy lists `mode` among its numerics (or lists none). */
int parity_policy_calibrated_for(const parity_policy *p, const char *mode);

/* Limits for a tap: defaults overlaid with the first matching rule. */
parity_limits parity_policy_resolve(const parity_policy *p, const char *tap_name);

/* Checks tensor metrics m (may be NULL: tensor limits then unchecked) and, for
 * a logits tap, the summary lg (NULL: logits limits unchecked) against lim.
 * Non-finite comparisons always fail: NaN unless allow_nan (then only a NaN on
 * one side fails), and any inf_mismatch. */
parity_check parity_policy_check(const parity_limits *lim, const parity_metrics *m,
                                 const parity_logits_summary *lg);

/* Glob match of a whole name: * (any run, dots included), ? (one char),
 * [set] / [!set] with ranges a-z. A malformed set matches nothing. */
int parity_glob_match(const char *pattern, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_POLICY_H */
