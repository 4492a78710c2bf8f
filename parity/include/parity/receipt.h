/* receipt.h — the record of one comparison (docs/receipt.md): what was
 * compared with what, on which machine, under which policy, and what came
 * out, as YAML (libyaml emitter) or the same tree as JSON.
 *
 * A receipt is built once (hashing the trace files, reading the host) and can
 * then be emitted any number of times in either format. Keys are stable
 * (`receipt: bitparity/v1`); consumers may rely on them.
 */
#ifndef PARITY_RECEIPT_H
#define PARITY_RECEIPT_H

#include <stdbool.h>
#include <stdio.h>

#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "bitnet/sha256.h"
#include "bitnet/status.h"
#include "bitnet/threads.h"
#include "parity/compare.h"
#include "parity/policy.h"
#include "parity/tapmap.h"
#include "parity/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PARITY_RECEIPT_VERSION "bitparity/v1"

typedef enum parity_receipt_format {
    PARITY_RECEIPT_YAML = 0,
    PARITY_RECEIPT_JSON = 1,
} parity_receipt_format;

/* Everything a receipt is made from; nothing is copied until build. */
/* Where the subject trace lives (subject.storage): a file given to compare,
 * or recorded by this run (check) and then kept in a file or held in memory. */
typedef enum parity_receipt_storage {
    PARITY_STORAGE_FILE = 0,   /* read from a trace file */
    PARITY_STORAGE_KEPT = 1,   /* recorded now and written to a file (check --keep-trace) */
    PARITY_STORAGE_MEMORY = 2, /* recorded now, never on disk */
} parity_receipt_storage;

typedef struct parity_receipt_input {
    const parity_trace *subject, *reference;
    const parity_tapmap *subject_map, *reference_map;
    const parity_policy *policy;
    const char *policy_choice;           /* why this policy: "auto: ..." or "--policy X"; NULL = "" */
    const parity_compare_result *result;
    int threads;                         /* worker threads used */
    bn_simd simd;                        /* kernel level used */
    int hash_traces;                     /* 1: sha256 of both trace files (reads them whole) */
    bn_pool *pool;                       /* hashes the two files concurrently; NULL: one after the other */
    double t_open;                       /* seconds spent opening the traces, for timings */
    const struct parity_replay_result *replay; /* --replay: the `replay` section; NULL = none */
    const char *replay_model;            /* the model replayed */
    const volatile sig_atomic_t *cancel; /* NULL: never; polled while hashing (BN_ERR_CANCELLED) */
    const struct parity_arbiter_result *arbiter; /* --arbiter: the `arbiter` section; NULL = none */
    /* the model and the engine (model.hparams, model.tensors, model.tokenizer_sha256, engine) */
    const bn_model *model;               /* the subject's model file as bound; NULL: those keys are null */
    parity_receipt_storage subject_storage; /* where the subject trace is (subject.storage) */
} parity_receipt_input;

typedef struct parity_receipt parity_receipt;

/* Builds the receipt tree from in (created = now, UTC; host from
 * /proc/cpuinfo). IO naming the file when a trace cannot be hashed; NOMEM. */
bn_status parity_receipt_build(const parity_receipt_input *in, parity_receipt **out, bn_error *err);

/* Writes the receipt to f as YAML (block style, short lists in flow style)
 * or JSON (2-space indent; non-finite numbers as the strings ".inf", "-.inf",
 * ".nan", spelled as YAML spells them). IO on a write error. */
bn_status parity_receipt_emit(const parity_receipt *r, parity_receipt_format fmt, FILE *f, bn_error *err);

/* Same into a new file at path, replacing an existing one only when the
 * receipt is complete (bitnet/atomic_file.h): on failure nothing changes. */
bn_status parity_receipt_save(const parity_receipt *r, parity_receipt_format fmt, const char *path, bn_error *err);

void parity_receipt_free(parity_receipt *r); /* NULL is fine */

/* The tokenizer hash (docs/receipt.md, "Tokenizer hash"): sha256 over the
 * GGUF encoding of every tokenizer.ggml.* key/value of g, keys in ascending
 * byte order. False (hex untouched) when g has no such key (or more than 64). */
bool parity_tokenizer_sha256(const bn_gguf *g, char hex[BN_SHA256_HEX_SIZE]);

/* The CPU's model name from /proc/cpuinfo into buf ("unknown" when absent). */
void parity_host_cpu(char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_RECEIPT_H */
