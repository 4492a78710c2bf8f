/* model_diff.h — `bitparity diff OLD.gguf NEW.gguf`: what changed between two
 * exports of a model, and whether it matters.
 *
 * Three parts: the metadata diff (keys added, removed, changed), the tensor
 * inventory and per-tensor comparison after dequantization (parity metrics
 * of NEW against OLD and the relation found: equal, scaled by c,
 * sign-flipped, transposed / mis-strided, permuted within heads (HF
 * permute or its inverse), re-packed I2_S codes, re-encoded in another
 * type, a per-channel ratio (1-D tensors), or different), and the
 * activation parity of the two models on the same tokens (both recorded in
 * memory by the engine and compared under a policy). The weight part reads
 * the files through the GGUF reader, so it runs when the engine refuses a
 * model; the activation part then says why it was skipped.
 */
#ifndef PARITY_MODEL_DIFF_H
#define PARITY_MODEL_DIFF_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "bitnet/sha256.h"
#include "bitnet/status.h"
#include "parity/compare.h"
#include "parity/doc.h"
#include "parity/metrics.h"
#include "parity/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum parity_weight_relation {
    PARITY_REL_EQUAL,        /* the same values (bit for bit after dequantization) */
    PARITY_REL_SCALED,       /* NEW = c · OLD (factor = c) */
    PARITY_REL_SIGN_FLIPPED, /* NEW = −OLD */
    PARITY_REL_TRANSPOSED,   /* square: NEW = OLDᵀ; shapes swapped: NEW = OLDᵀ */
    PARITY_REL_MIS_STRIDED,  /* non-square, same shape: NEW holds OLDᵀ's data under OLD's shape */
    PARITY_REL_QK_PERMUTED,  /* rows permuted within each head as HF's converter `permute` does */
    PARITY_REL_QK_UNPERMUTED,/* the inverse of that permutation */
    PARITY_REL_REPACKED,     /* I2_S codes written in another packing (4 consecutive per byte) */
    PARITY_REL_REENCODED,    /* another type, values equal up to that type's rounding */
    PARITY_REL_CHANNEL_RATIO,/* 1-D: NEW/OLD varies per channel (a gamma replaced) */
    PARITY_REL_DIFFERENT,    /* none of the above */
    PARITY_REL_INCOMPARABLE, /* shapes that no relation maps onto each other */
    PARITY_REL_COUNT
} parity_weight_relation;

/* "equal", "scaled", "sign-flipped", "transposed", "mis-strided",
 * "qk-permuted", "qk-unpermuted", "re-packed", "re-encoded",
 * "per-channel-ratio", "different", "incomparable". */
const char *parity_weight_relation_name(parity_weight_relation r);

typedef enum parity_diff_change { PARITY_DIFF_ADDED, PARITY_DIFF_REMOVED, PARITY_DIFF_CHANGED } parity_diff_change;

typedef struct parity_kv_diff {
    char *key;
    parity_diff_change change;
    char *old_value, *new_value; /* short text (arrays summarized); NULL on the side that lacks the key */
} parity_kv_diff;

typedef struct parity_tensor_diff {
    char *name;
    parity_diff_change change;  /* ADDED/REMOVED: only in NEW/OLD; CHANGED: in both, not equal */
    uint32_t type[2];           /* OLD, NEW ggml types */
    int64_t ne[2][4];
    int n_dims[2];
    parity_weight_relation relation;
    double factor;              /* SCALED: c; CHANNEL_RATIO: mean ratio; else 0 */
    char detail[256];           /* how the relation was established, with its numbers */
    bool has_metrics;
    parity_metrics m;           /* NEW (subject) against OLD (reference), as stored positions */
} parity_tensor_diff;

typedef struct parity_model_diff_opts {
    const char *old_path, *new_path;
    const int32_t *tokens;   /* the activation comparison's prompt; NULL/0: skipped ("no tokens") */
    int64_t n_tokens;
    const char *policy;      /* built-in policy name; NULL: chosen as compare does (same engine: exact) */
    int threads;             /* >= 1 */
    const volatile sig_atomic_t *cancel;
} parity_model_diff_opts;

typedef struct parity_model_diff {
    char *path[2];                     /* OLD, NEW */
    char sha256[2][BN_SHA256_HEX_SIZE];
    char bind_error[2][BN_ERROR_MSG_MAX];           /* "" when the engine binds the model */
    parity_kv_diff *kv;
    size_t n_kv;
    parity_tensor_diff *tensors;       /* added, removed and changed tensors, OLD's order then NEW's additions */
    size_t n_tensors;
    int64_t n_tensor[2];               /* tensors in OLD, NEW */
    int64_t n_identical;               /* tensors equal in both (name, type, shape, values) */
    bool act_ran;                      /* the activation comparison ran */
    char act_skipped[BN_ERROR_MSG_MAX + 128];             /* why not, when it did not */
    int32_t *tokens;                   /* copy of the prompt */
    int64_t n_tokens;
    char policy[64];
    parity_compare_result *act;        /* NEW (subject) against OLD (reference), with hints; NULL when skipped */
    parity_policy *act_policy;         /* the policy act was judged under (its limits point into it) */
    bool equivalent;                   /* activations pass, or (not run) nothing differs */
    char verdict[1024];                 /* one line saying why */
} parity_model_diff;

/* The hint every comparison of two different model files gets first
 * ("model-mismatch"): a diff's documents and text leave it out, the files
 * differ by construction. */
#define PARITY_DIFF_SAID_HINT "model-mismatch"

/* Runs the diff. IO/FORMAT when a file cannot be read or is no valid GGUF
 * (input errors); the engine refusing a model is not an error (bind_error,
 * act_skipped). NOMEM, CANCELLED. */
bn_status parity_model_diff_run(const parity_model_diff_opts *o, parity_model_diff **out, bn_error *err);

/* The diff as a document under root (docs/lint.md#diff): diff, old, new,
 * verdict, metadata, tensors, activations. */
void parity_model_diff_to_doc(const parity_model_diff *d, parity_doc_builder *b, parity_doc_node *root);

void parity_model_diff_free(parity_model_diff *d); /* NULL is fine */

#ifdef __cplusplus
}
#endif

#endif /* PARITY_MODEL_DIFF_H */
