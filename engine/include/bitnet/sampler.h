/* sampler.h — picks the next token from logits: greedy (temperature 0) or
 * temperature + top-k + top-p sampling with a seeded PRNG held in the
 * sampler (no global state), as llama.cpp orders the steps: top-k, then
 * softmax with temperature, then top-p, then a draw. */
#ifndef BITNET_SAMPLER_H
#define BITNET_SAMPLER_H

#include <stdint.h>

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_sampler_params {
    float temp;    /* <= 0: greedy (argmax, lowest id on ties) */
    int32_t top_k; /* <= 0: all tokens */
    float top_p;   /* >= 1: no nucleus cut */
    uint64_t seed;
} bn_sampler_params;

typedef struct bn_sampler bn_sampler;

bn_status bn_sampler_create(const bn_sampler_params *p, int32_t n_vocab, bn_sampler **out, bn_error *err);
void bn_sampler_free(bn_sampler *s);

/* Chooses a token from logits[n_vocab]. Never allocates. */
int32_t bn_sampler_sample(bn_sampler *s, const float *logits);

/* Index of the largest logit (lowest index on ties). */
int32_t bn_argmax(const float *logits, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_SAMPLER_H */
