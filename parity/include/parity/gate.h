/* gate.h — a parity gate over many entries (docs/gate.md): a manifest
 * (YAML) lists models × prompts × references × policies, and perplexity/KLD
 * entries with thresholds; the gate runs each entry through the parity
 * driver (or parity_perplexity), writes a receipt per entry into an output
 * folder, and one summary (summary.yaml) whose verdicts CI acts on.
 *
 * Sharding: entry E belongs to shard 1 + (h mod N), h = the first 8 bytes of
 * sha256(E's name) read big-endian. A shard is thus stable under additions
 * and reorderings of the manifest. The shards' summaries merge into the one
 * summary an unsharded run writes (same bytes): summary.yaml holds no
 * timings and no machine paths, only what the manifest says and what came
 * out.
 *
 * The summary rendered for people (Markdown, HTML) is reports/gate_report.h.
 */
#ifndef PARITY_GATE_H
#define PARITY_GATE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/progress.h"
#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PARITY_GATE_VERSION "bitparity-gate/v1"

typedef enum parity_gate_verdict {
    PARITY_GATE_PASS = 0,
    PARITY_GATE_FAIL,    /* a parity failure or a threshold not met */
    PARITY_GATE_SKIPPED, /* an optional entry whose files are missing */
    PARITY_GATE_ERROR,   /* the entry could not be judged (missing or bad input) */
    PARITY_GATE_VERDICT_COUNT
} parity_gate_verdict;

typedef enum parity_gate_kind { PARITY_GATE_PARITY = 0, PARITY_GATE_PERPLEXITY } parity_gate_kind;

/* One entry's outcome. Strings are owned by the summary. Numbers not
 * measured (or thresholds not set) are NAN. */
typedef struct parity_gate_entry {
    char *name;
    int64_t index;              /* position in the manifest, from 0 */
    parity_gate_kind kind;
    parity_gate_verdict verdict;
    char *model;                /* as the manifest writes it (variables unexpanded) */
    char *reference;            /* parity: the trace as written, "python", or "model: OTHER"; perplexity: the text */
    char *policy;               /* parity: the policy used (NULL: none ran) */
    char *message;              /* one line: the first divergence, the threshold missed, why skipped, the error */
    int64_t compared, failed;   /* parity: taps compared and failing (-1: none ran) */
    double ppl, kld_mean, top1; /* perplexity */
    double ppl_max, kld_mean_max, top1_min;
    int64_t tokens;             /* perplexity: tokens scored (-1: none ran) */
    char *receipt;              /* relative to the output folder; NULL: none */
    char *detail;               /* the entry's page, relative to the output folder; NULL: none */
} parity_gate_entry;

typedef struct parity_gate_summary {
    char *manifest;             /* the manifest's file name (no folder) */
    char manifest_sha256[65];
    int shard_index, shard_count; /* 1..N of N; 0 and 0 for a whole (or merged) run */
    int64_t n_manifest;         /* entries in the manifest */
    parity_gate_entry *entries; /* [n] in manifest order */
    size_t n;
    size_t counts[PARITY_GATE_VERDICT_COUNT];
} parity_gate_summary;

/* Where the gate writes and how it runs. */
typedef struct parity_gate_opts {
    const char *out_dir;        /* created when absent */
    int shard_index, shard_count; /* 0, 0: every entry */
    const char *const *vars;    /* "NAME=VALUE" overriding the manifest's vars: ([n_vars]) */
    size_t n_vars;
    const char *python;         /* the Python that runs the reference (reference: python); NULL: such entries error */
    const char *python_script;  /* reference/bitnet_ref.py */
    int threads;                /* >= 1; results do not depend on it */
    bool map_models;            /* the models entries evaluate are mapped (--load mmap), not read into
                                   memory (parity_driver_opts.map_model); the same results */
    const volatile sig_atomic_t *cancel; /* NULL: never */
    bn_progress_sink progress;  /* each entry's recording, comparison and perplexity; zeroed: none */
    /* called before and after each entry run (not for entries of other shards); NULL: none */
    void (*on_entry)(void *user, const parity_gate_entry *e, int done);
    void *user;
} parity_gate_opts;

/* Reads the manifest at path (every entry checked, whatever the shard: a
 * bad manifest is FORMAT "PATH:LINE: key 'K': what is wrong"), runs the
 * entries of the shard in manifest order, writes each entry's receipt (and
 * for perplexity entries perplexity.yaml) under out_dir/entries/NAME/, and
 * summary.yaml into out_dir. *out holds the summary whatever the verdicts;
 * an entry that cannot be judged is an ERROR verdict, not a failure of the
 * call. Fails (with *out NULL) for a bad manifest or option (FORMAT,
 * INVALID), an output folder that cannot be written (IO), CANCELLED. */
bn_status parity_gate_run(const char *manifest, const parity_gate_opts *o, parity_gate_summary **out, bn_error *err);

/* Reads shard_dirs[0..n)/summary.yaml, checks that they are the shards
 * 1..N of one manifest, each once, together covering every entry, and
 * returns the summary an unsharded run gives. When out_dir is set, every
 * entry's receipt and detail page is copied there (unless out_dir is that
 * shard's folder) and summary.yaml is written. FORMAT naming the file,
 * line and key for a bad summary, INVALID for a missing or repeated shard
 * or entry or shards of different manifests, IO. */
bn_status parity_gate_merge(const char *const *shard_dirs, size_t n, const char *out_dir, parity_gate_summary **out,
                            bn_error *err);

/* Parses and checks a manifest held in memory as parity_gate_run does
 * (origin stands for its path: messages name it, and relative paths are
 * read from its folder), without running anything. *n_entries (may be
 * NULL) gets the number of entries. FORMAT "ORIGIN:LINE: key 'K': ...",
 * INVALID for a bad NAME=VALUE, NOMEM. */
bn_status parity_gate_manifest_check(const char *origin, const char *text, size_t len, const char *const *vars,
                                     size_t n_vars, size_t *n_entries, bn_error *err);

/* Writes s as YAML to path (atomically). IO. */
bn_status parity_gate_summary_save(const parity_gate_summary *s, const char *path, bn_error *err);

/* Reads a summary.yaml. FORMAT "PATH:LINE: KEY: ...", IO, NOMEM. */
bn_status parity_gate_summary_load(const char *path, parity_gate_summary **out, bn_error *err);

/* parity_gate_summary_load of text[0, len) in memory; origin names it in messages. */
bn_status parity_gate_summary_parse(const char *origin, const char *text, size_t len, parity_gate_summary **out,
                                    bn_error *err);

void parity_gate_summary_free(parity_gate_summary *s); /* NULL is fine */

/* The exit code a summary calls for: 2 when any entry is an ERROR, else 1
 * when any FAILs, else 0 (skipped entries pass). */
int parity_gate_exit_code(const parity_gate_summary *s);

/* "pass", "fail", "skipped", "error". */
const char *parity_gate_verdict_name(parity_gate_verdict v);

/* The shard (1..count) an entry of this name belongs to. */
int parity_gate_shard_of(const char *name, int count);

/* Parses "I/N" (1 <= I <= N <= 1024). Returns 1 on success. */
int parity_gate_parse_shard(const char *s, int *index, int *count);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_GATE_H */
