/* synth.h — deterministic small BitNet models written with the project's own
 * GGUF writer and quantizers: the demo's model and the start of the fixtures.
 *
 * Weights are ternary × a per-tensor scale β (about 31 % zeros), norm gammas
 * 1 ± 0.1, sub-norm gammas in [0.5, 1.5], embeddings ≈ N(0, 0.5²) — the
 * statistics of the shared tiny models. Every number comes from a counter-
 * based PRNG and pure float arithmetic, so the same options give the same
 * bytes on every machine. The vocabulary is a 512-token byte-level BPE
 * (gpt2 / llama-bpe form) whose 253 merges are learned from a fixed text. */
#ifndef BITNET_SYNTH_H
#define BITNET_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet/progress.h"
#include "bitnet/model.h"
#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_synth_shape {
    const char *name;
    int64_t n_vocab, n_embd, n_layer, n_ff, n_head, n_head_kv, n_ctx;
    /* true: four 16-bit uniforms per 64-bit draw, and embeddings from a sum
     * of four (not twelve): the real models' shapes (2B-4T: 2.4 G weights)
     * written in seconds; the small shapes keep their original numbers. */
    bool dense_draws;
} bn_synth_shape;

typedef struct bn_synth_params {
    const bn_synth_shape *shape; /* bn_synth_shape_find("tiny") */
    bn_arch arch;                /* bitnet-b1.58 (default), bitnet, llama */
    uint32_t type;               /* projection type: F32, I2_S, TQ2_0, TQ1_0 */
    bool embd_type_given;        /* false: token_embd is F16 for I2_S, F32 otherwise */
    uint32_t embd_type;          /* token_embd when given: F16 or F32 */
    uint64_t seed;
    const volatile sig_atomic_t *cancel; /* NULL: never; polled per tensor and per MiB written */
    bn_progress_sink progress;   /* told per tensor and at the end: stage "writing", tensors, bytes */
} bn_synth_params;

/* Known shapes by name ("tiny": 512 vocab, 256 embd, 4 layers, 8 heads of
 * 32, 2 kv heads, 512 ff, ctx 256; "700m" and "2b4t": bitnet_b1_58-large's
 * and BitNet b1.58 2B-4T's exact shapes, the vocabulary padded to the real
 * size with tokens no merge produces); NULL when unknown. */
const bn_synth_shape *bn_synth_shape_find(const char *name);
/* Comma-separated names of the known shapes, for help texts. */
const char *bn_synth_shape_names(void);

/* Writes the model to `path`. The token embedding is p->embd_type when given,
 * else F16 for I2_S models (as bitnet.cpp's quantizer leaves it) and F32
 * otherwise; norms are F32. The llama arch takes F32 only. The file appears
 * at path only when complete (bitnet/atomic_file.h); on failure or cancellation (BN_ERR_CANCELLED) an
 * existing file there is left as it was. */
bn_status bn_synth_write(const bn_synth_params *p, const char *path, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_SYNTH_H */
