/* driver.h — the whole parity job in one call: the subject trace is read (or
 * recorded now by bitparity's engine, following the reference's
 * evaluations), both traces are mapped onto canonical taps, compared under a
 * policy, the first divergence is explained by hints, optionally replayed,
 * and the receipt is built. `bitparity compare`, `bitparity check`, the CI
 * gate and the tests all run this; they differ only in what they print.
 *
 * Everything opened stays in the run for the caller to show (text output,
 * receipt) until parity_driver_run_free. */
#ifndef PARITY_DRIVER_H
#define PARITY_DRIVER_H

#include <signal.h>
#include <stdbool.h>

#include "bitnet/model.h"
#include "bitnet/progress.h"
#include "bitnet/status.h"
#include "bitnet/threads.h"
#include "parity/arbiter.h"
#include "parity/compare.h"
#include "parity/policy.h"
#include "parity/receipt.h"
#include "parity/replay.h"
#include "parity/tapmap.h"
#include "parity/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct parity_driver_opts {
    const char *subject;   /* the subject's trace; NULL: record it (needs model) */
    const char *reference; /* the reference's trace */
    const char *map;       /* the reference's tap map (built-in name or YAML file); NULL: from its meta.yaml */
    const char *policy;    /* built-in policy name or policy file; NULL: chosen from the two producers */
    const char *model;     /* the subject's model: recording, the weight-aware hints, replay; may be NULL */
    const char *reference_model; /* the reference's model: the weight-aware hints only; may be NULL */
    bool replay;           /* replay a failing comparison on model (needs model) */
    parity_replay_mode replay_mode;
    int threads;           /* worker threads, >= 1; results do not depend on it */
    bool map_model;        /* a model the driver evaluates (recording, replay) is mapped (--load mmap)
                              instead of read into memory: it starts at once and needs no RAM of its
                              own, but evaluates ~30 % slower (bitnet/gguf.h); the same results */
    bool receipt;          /* build the receipt (parity_driver_run.receipt) */
    /* recording (subject NULL): the engine runs the reference's evaluations */
    const char *numerics;    /* NULL: the reference's settings.numerics, else ggml-compat for bitnet.cpp, else f32 */
    const char *kv_cache;    /* "f16"/"f32"; NULL: the reference's settings.kv_cache if it names one, else the mode's */
    const char *taps;        /* tap globs; NULL: the default set */
    const char *record_path; /* where the engine's trace is kept; NULL: in memory only, never on disk */
    const parity_arbiter_opts *arbiter; /* non-NULL: when the comparison fails, the independent Python
                                           reference runs the model's declared math and says which side
                                           agrees with it (parity_driver_run.arbiter; needs model) */
    const char *fault;       /* a seeded bug the engine records with (bitnet/fault.h name); NULL: none.
                                The subject trace's settings.fault, so the receipt and a replay carry it */
    const volatile sig_atomic_t *cancel; /* NULL: never; polled by every stage (BN_ERR_CANCELLED) */
    bn_progress_sink progress; /* told by the recording ("recording" layers) and the comparison ("comparing" taps) */
} parity_driver_opts;

/* What one run opened and found. trace/map [0] is the subject, [1] the
 * reference. */
typedef struct parity_driver_run {
    parity_trace *trace[2];
    parity_tapmap *map[2];
    parity_policy *policy;
    char policy_choice[320];        /* why this policy: "auto: ..." or "--policy X" */
    bn_pool *pool;
    parity_compare_result *result;  /* with hints (and the replay's hint) */
    parity_replay_result *replay;   /* NULL unless replayed */
    parity_arbiter_result *arbiter; /* NULL unless opts.arbiter and the comparison failed */
    parity_receipt *receipt;        /* NULL unless opts.receipt */
    double t_open;                  /* seconds spent opening traces, maps and policy */
} parity_driver_run;

/* Runs the job of o. On success *out holds the run whatever the verdict
 * (result->pass); on failure *out is NULL and err names the file, field or
 * evaluation at fault: INVALID for contradictory options (replay without a
 * model, recording without a path), the status of the failing step
 * otherwise (IO, FORMAT, NOT_FOUND for an unknown policy or map, ...).
 * A recorded subject is compared from the trace the recording left open
 * (memory or the kept file): nothing is written only to be read back. */
bn_status parity_driver_run_job(const parity_driver_opts *o, parity_driver_run **out, bn_error *err);

void parity_driver_run_free(parity_driver_run *r); /* NULL is fine */

/* The numerics a recording follows a reference with: its settings.numerics
 * when recorded, else ggml-compat for bitnet.cpp (which it reproduces) and
 * f32 for everything else. */
const char *parity_driver_default_numerics(const parity_trace *reference);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_DRIVER_H */
