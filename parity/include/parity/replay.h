/* replay.h — given the subject's model, where an error is born: bitparity's
 * engine re-runs the reference's evaluations, with the subject's numerics and
 * fault, injecting reference values:
 *   block mode  every block starts from the reference's residual stream, so a
 *               block whose own output still fails has a LOCAL error, one that
 *               passes only INHERITED its error (one run for all blocks: no
 *               bisection needed);
 *   op mode     every tap is replaced by the reference's value after it is
 *               observed, so each tap is computed from reference inputs and
 *               the first failing one is the op where the error is born. */
#ifndef PARITY_REPLAY_H
#define PARITY_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/model.h"
#include "bitnet/status.h"
#include "parity/compare.h"
#include "parity/policy.h"
#include "parity/tapmap.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum parity_replay_mode { PARITY_REPLAY_BLOCK, PARITY_REPLAY_OP } parity_replay_mode;

/* One tap computed by the replayed engine from the reference's inputs. */
typedef struct parity_replay_tap {
    int64_t eval;
    char name[64];
    int layer;
    int pass;            /* under the policy */
    double nmse;         /* vs the reference's value */
    parity_check check;  /* the first broken limit when !pass */
} parity_replay_tap;

/* Per block and evaluation: did the block fail in the comparison, and does it
 * still fail when it starts from the reference's input? */
typedef struct parity_replay_block {
    int64_t eval;
    int layer;
    int failed;          /* some tap of the block failed in the comparison */
    int local;           /* its output fails even from the reference's input */
    double nmse_compared; /* blk.N.out in the comparison */
    double nmse_replayed; /* blk.N.out replayed */
} parity_replay_block;

typedef struct parity_replay_result {
    parity_replay_mode mode;
    parity_replay_tap *taps;   /* observed taps in evaluation order */
    size_t n_taps;
    parity_replay_block *blocks; /* block mode */
    size_t n_blocks;
    int64_t first_local;        /* index in taps of the first failing tap (op mode: where the error is born), -1 */
} parity_replay_result;

typedef struct parity_replay_opts {
    const bn_model *model;   /* the subject's model */
    parity_replay_mode mode;
    int n_threads;
    const char *numerics;    /* NULL: the subject trace's settings.numerics (default ggml-compat) */
    const char *fault;       /* NULL: the subject trace's settings.fault */
    const volatile sig_atomic_t *cancel; /* NULL: never; polled per block (BN_ERR_CANCELLED) */
    const char *model_sha256; /* hex digest of the model's file; NULL: the model is not checked against the trace */
} parity_replay_opts;

/* Whether a replay of `subject` can be honest. Replay re-runs bitparity's
 * engine from the reference's inputs, so its local/inherited verdict
 * describes bitparity's engine: it only speaks for a subject bitparity
 * recorded (producer.name "bitparity"), from the same model (when
 * model_sha256 and the trace's model.sha256 are both known). BN_OK, or
 * BN_ERR_INVALID with a message saying why not and what still holds. */
bn_status parity_replay_applies(const parity_trace *subject, const char *model_sha256, bn_error *err);

/* Replays the engine as above and classifies the blocks that failed in r.
 * Adds a hint naming the first local block / op. *out is freed with
 * parity_replay_result_free. INVALID when parity_replay_applies refuses the
 * subject, or when the model does not fit the traces (vocabulary, shapes). */
bn_status parity_replay(parity_compare_result *r, const parity_tapview *subject, const parity_tapview *reference,
                        const parity_policy *policy, const parity_replay_opts *o, parity_replay_result **out,
                        bn_error *err);

void parity_replay_result_free(parity_replay_result *r); /* NULL is fine */

#ifdef __cplusplus
}
#endif

#endif /* PARITY_REPLAY_H */
