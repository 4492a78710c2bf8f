/* progress.h — how long work tells its caller how far it has got. Library
 * code never prints: a long operation (recording a trace, comparing, writing a
 * model, perplexity) takes a bn_progress_sink in its options and calls it at
 * a coarse, cheap granularity (per block of an evaluation, per tap, per
 * tensor); the CLI renders it (cli/progress.c) or not. A sink without fn is
 * silent, so callers that do not care leave it zeroed. */
#ifndef BITNET_PROGRESS_H
#define BITNET_PROGRESS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_progress {
    const char *stage; /* what is being done: "recording", "comparing", "writing", "evaluating" */
    const char *unit;  /* what done/total count, plural: "layers", "taps", "tensors", "chunks" */
    int64_t done;      /* units finished so far */
    int64_t total;     /* units in all; 0 when not known */
    uint64_t bytes;    /* bytes written so far; 0 when the stage writes nothing */
} bn_progress;

/* Called on the caller's thread; must be cheap and must not fail. */
typedef void (*bn_progress_fn)(void *user, const bn_progress *p);

typedef struct bn_progress_sink {
    bn_progress_fn fn; /* NULL: nobody listens */
    void *user;
} bn_progress_sink;

/* Reports p to the sink when one listens. */
void bn_progress_report(const bn_progress_sink *s, const bn_progress *p);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_PROGRESS_H */
