/* sampler.c — see sampler.h. */
#include "bitnet/sampler.h"

#include <math.h>
#include <stdlib.h>

struct bn_sampler {
    bn_sampler_params p;
    int32_t n_vocab;
    uint64_t state; /* xorshift64* state */
    struct cand {
        float logit;
        float prob;
        int32_t id;
    } *cand; /* [n_vocab] scratch */
};

int32_t bn_argmax(const float *logits, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return (int32_t)best;
}

bn_status bn_sampler_create(const bn_sampler_params *p, int32_t n_vocab, bn_sampler **out, bn_error *err) {
    *out = NULL;
    if (n_vocab <= 0) return bn_error_set(err, BN_ERR_INVALID, "sampler: vocabulary is empty");
    if (!isfinite(p->temp) || !isfinite(p->top_p) || p->top_p <= 0)
        return bn_error_set(err, BN_ERR_INVALID, "sampler: --temp must be finite and --top-p in (0, 1]");
    bn_sampler *s = calloc(1, sizeof *s);
    if (s) s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (!s || !s->cand) {
        free(s);
        return bn_error_nomem(err, sizeof *s + (unsigned long long)n_vocab * sizeof *s->cand,
                              "sampler: candidates for %lld tokens", (long long)n_vocab);
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    s->state = p->seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    if (!s->state) s->state = 1;
    *out = s;
    return BN_OK;
}

void bn_sampler_free(bn_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s);
}

static float next_uniform(bn_sampler *s) {
    s->state ^= s->state >> 12;
    s->state ^= s->state << 25;
    s->state ^= s->state >> 27;
    return (float)((s->state * 0x2545f4914f6cdd1dull) >> 40) * (1.0f / 16777216.0f);
}

static int by_logit_desc(const void *a, const void *b) {
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int32_t bn_sampler_sample(bn_sampler *s, const float *logits) {
    if (s->p.temp <= 0) return bn_argmax(logits, s->n_vocab);
    int32_t n = s->n_vocab;
    for (int32_t i = 0; i < n; i++) s->cand[i] = (struct cand){logits[i], 0, i};
    qsort(s->cand, (size_t)n, sizeof *s->cand, by_logit_desc);
    if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;
    double sum = 0;
    for (int32_t i = 0; i < n; i++) {
        s->cand[i].prob = expf((s->cand[i].logit - s->cand[0].logit) / s->p.temp);
        sum += s->cand[i].prob;
    }
    double cum = 0;
    int32_t keep = n;
    for (int32_t i = 0; i < n; i++) {
        cum += s->cand[i].prob / sum;
        if (cum >= s->p.top_p) {
            keep = i + 1;
            break;
        }
    }
    double kept = 0;
    for (int32_t i = 0; i < keep; i++) kept += s->cand[i].prob;
    const double r = next_uniform(s) * kept;
    double acc = 0;
    for (int32_t i = 0; i < keep; i++) {
        acc += s->cand[i].prob;
        if (r < acc) return s->cand[i].id;
    }
    return s->cand[keep - 1].id;
}
