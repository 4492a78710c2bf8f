/* record.h — runs the engine on a prompt plus greedy decode steps and streams
 * the selected taps into a canonical trace (what `bitparity trace` and
 * `bitparity check` do). */
#ifndef PARITY_RECORD_H
#define PARITY_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet/fault.h"
#include "bitnet/forward.h"
#include "bitnet/model.h"
#include "bitnet/progress.h"
#include "bitnet/status.h"
#include "parity/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most greedy decode steps one trace records. */
#define PARITY_RECORD_MAX_DECODE 4096

typedef struct parity_record_opts {
    const char *model_path;  /* recorded in meta.yaml; its sha256 is computed */
    const int32_t *tokens;   /* prompt ids, used as given */
    int64_t n_tokens;
    int64_t n_decode;        /* greedy single-token steps after the prompt (e1..eN) */
    const parity_eval *follow; /* or: evaluate exactly these evaluations (a reference trace's tokens and
                                  positions, e.g. for `bitparity check`); tokens/n_decode are then unused */
    int64_t n_follow;
    const char *taps;        /* comma-separated globs; NULL = the default set */
    bn_numerics numerics;
    bn_kv_type kv_type;      /* the K cache; BN_KV_AUTO: as the numerics mode says (f16 for ggml-compat, else f32) */
    bn_kv_type v_type;       /* the V cache; BN_KV_AUTO: as kv_type */
    int n_threads;
    bn_fault fault;          /* a seeded bug (bitnet/fault.h), BN_FAULT_NONE for none */
    const char *out_path;    /* the .npz to write (parity_record_open: NULL = in memory) */
    bool compress;           /* deflate members (smaller, ~30x slower to write, ~20x slower to read) */
    const volatile sig_atomic_t *cancel; /* NULL: never; polled per block and per MiB written */
    bn_progress_sink progress; /* told before every block and once at the end: stage "recording", layers of
                                  all evaluations, tap bytes written */
} parity_record_opts;

/* Evaluates the prompt (e0) and n_decode greedy steps (or the `follow`
 * evaluations: their p0 must be consecutive from 0), writing every selected
 * tap of every evaluation to out_path as it is produced, then meta.yaml.
 * The trace is written to a temporary file and renamed onto out_path when
 * complete: on failure or cancellation (BN_ERR_CANCELLED) it is removed and
 * an existing out_path is left as it was. */
bn_status parity_record(const bn_model *m, const parity_record_opts *o, bn_error *err);

/* What parity_trace_path names a trace recorded in memory. */
#define PARITY_RECORD_MEMORY_NAME "(engine trace in memory)"

/* Records as parity_record and returns the finished trace open in *out. With
 * out_path NULL the trace is never on disk: it is written to memory
 * (parity_trace_writer_open_memory), named PARITY_RECORD_MEMORY_NAME, and
 * freed with the trace. On failure *out is NULL. */
bn_status parity_record_open(const bn_model *m, const parity_record_opts *o, parity_trace **out, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif
