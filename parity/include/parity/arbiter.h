/* arbiter.h — which side is wrong. When subject and reference disagree, the
 * reference can be the broken one (bitnet.cpp runs the 2B-4T model with SiLU
 * because its converter leaves out hidden_activation). The arbiter is the
 * independent Python reference (reference/bitnet_ref.py), run on the
 * subject's model file — its declared math — with the same evaluations, in
 * the subject's numerics mode. At the first divergent tap each side is
 * compared with it under the policy `bitparity compare` picks for an engine
 * trace against that reference (`reference` or `reference-int8`), and the
 * verdict says which of the two agrees with it. When the tap is an FFN
 * activation and one side disagrees, the arbiter runs once more with the
 * other activation forced, to name what that side computes.
 *
 * What agreeing shows: a side computes what the subject's model file
 * declares. It does not show the file is a correct export: a converter that
 * drops hidden_activation writes a file whose declared math is SiLU, and the
 * arbiter then agrees with an engine that runs SiLU on it.
 *
 * The interpreter and the script come from the caller (the library reads no
 * environment); the arbiter's trace is written to a fresh directory under
 * opts.tmp_dir and removed. */
#ifndef PARITY_ARBITER_H
#define PARITY_ARBITER_H

#include <signal.h>
#include <stdint.h>

#include "bitnet/model.h"
#include "bitnet/status.h"
#include "parity/compare.h"
#include "parity/metrics.h"
#include "parity/policy.h"
#include "parity/tapmap.h"
#include "parity/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct parity_arbiter_opts {
    const char *python;  /* the interpreter's path, e.g. /usr/bin/python3 (run without a shell) */
    const char *script;  /* reference/bitnet_ref.py */
    const char *tmp_dir; /* where a scratch directory for the arbiter's trace is made */
    const volatile sig_atomic_t *cancel; /* NULL: never; polled while the arbiter runs */
} parity_arbiter_opts;

typedef enum parity_arbiter_verdict {
    PARITY_ARBITER_SUBJECT,   /* the subject agrees with the arbiter, the reference does not */
    PARITY_ARBITER_REFERENCE, /* the reference agrees, the subject does not */
    PARITY_ARBITER_BOTH,      /* both agree: the divergence is below what the arbiter can tell */
    PARITY_ARBITER_NEITHER,   /* neither agrees */
} parity_arbiter_verdict;

/* One side against the arbiter at the tap. */
typedef struct parity_arbiter_side {
    int compared;        /* 0: the shapes differ (shape[] says) or the side lacks the tap */
    parity_metrics m;    /* side (a) vs arbiter (b) */
    parity_check check;  /* against the arbiter policy's limits for the tap */
} parity_arbiter_side;

typedef struct parity_arbiter_result {
    int64_t eval;              /* the first divergent tap: evaluation index ... */
    char tap[96];              /* ... and canonical name */
    char model[1024];          /* the model file the arbiter ran (the subject's) */
    char arch[32];             /* its general.architecture */
    char activation[16];       /* its declared FFN activation as the arbiter ran it: relu2 or silu */
    char activation_key[160];  /* "bitnet.hidden_activation = relu2" or "no bitnet.hidden_activation key" */
    char numerics[24];         /* the mode the arbiter ran in */
    char policy[32];           /* the policy agreement is judged by */
    parity_arbiter_side subject, reference;
    parity_arbiter_verdict verdict;
    /* FFN activation taps with one side disagreeing: that side against the
     * arbiter run with the other activation forced. other_activation "" when
     * not run. */
    char other_activation[16];
    parity_arbiter_side other;
    char summary[768];         /* one line: who agrees with whom, the tap, the metric */
    char shows[2048];          /* what that verdict shows, and what it does not */
} parity_arbiter_result;

/* Runs the arbiter for the failing comparison r (r->first.found, tokens
 * agreeing) of subject and reference (seen through their maps) on the
 * subject's model m loaded from model_path. numerics: the subject's mode
 * (NULL: its settings.numerics, else f32). On success *out is the result
 * (parity_arbiter_result_free). NOT_FOUND when the interpreter or the script
 * cannot be run, IO when the arbiter exits non-zero (its last stderr line in
 * the message) or its trace lacks the tap, INVALID for a passing r,
 * CANCELLED, NOMEM. */
bn_status parity_arbiter_run(const parity_arbiter_opts *o, const parity_compare_result *r,
                             const parity_tapview *subject, const parity_tapview *reference, const bn_model *m,
                             const char *model_path, const char *numerics, parity_arbiter_result **out,
                             bn_error *err);

void parity_arbiter_result_free(parity_arbiter_result *a); /* NULL is fine */

/* "subject", "reference", "both", "neither". */
const char *parity_arbiter_verdict_name(parity_arbiter_verdict v);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_ARBITER_H */
