/* perplexity.h — perplexity of a model on a text, and llama.cpp's
 * KL-divergence statistics against saved base logits: what `bitparity
 * perplexity` prints and what a gate's perplexity entry judges.
 *
 * Definition (the same as fixtures/train_tiny_bitnet.py's): the text is
 * tokenized without BOS and cut into non-overlapping windows of ctx-1
 * tokens; each window is evaluated with BOS in front, and every token of the
 * window is scored from the tokens before it (BOS included). perplexity =
 * exp(mean negative log-likelihood over all scored tokens), log-softmax in
 * double. */
#ifndef PARITY_PERPLEXITY_H
#define PARITY_PERPLEXITY_H

#include <signal.h>
#include <stdint.h>

#include "bitnet/forward.h"
#include "bitnet/model.h"
#include "bitnet/status.h"
#include "bitnet/progress.h"
#include "bitnet/tokenizer.h"
#include "parity/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest window, BOS included. */
#define PARITY_PPL_MAX_CTX 4096

typedef struct parity_ppl_opts {
    int64_t ctx;                     /* window length including BOS, 2..PARITY_PPL_MAX_CTX */
    bn_ctx_params params;            /* threads, numerics, cache, cancel (n_ctx is set to ctx) */
    const parity_trace *kld_base;    /* logits saved from a base model (save_logits); NULL: no KLD */
    const char *save_logits;         /* write every window's logits as a trace here; NULL: none */
    bn_progress_sink progress;       /* "evaluating" layers of all windows, logits bytes saved; zeroed: none */
} parity_ppl_opts;

typedef struct parity_ppl_result {
    int64_t n_scored, n_windows, ctx;
    double nll_per_token, perplexity;
    int has_kld;                     /* kld_base was given: the statistics below are set */
    int64_t n_kld;                   /* positions compared */
    double kld_mean, kld_median, kld_p99, kld_max;
    double same_top, same_top_err;   /* fraction of positions with the same top token, and its std. error */
    double rms_dp;                   /* RMS of the probability change of the scored token */
} parity_ppl_result;

/* Scores text[0, len) (tokenized with tok, no BOS) with model m as the
 * definition above says. INVALID when the text gives no tokens, the
 * vocabulary has no BOS, or the base logits do not match (window count or
 * shape: "same text, ctx and vocabulary?"); IO/FORMAT from the base or the
 * saved trace; CANCELLED. */
bn_status parity_perplexity(const bn_model *m, const bn_tokenizer *tok, const char *text, size_t len,
                            const parity_ppl_opts *o, parity_ppl_result *out, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_PERPLEXITY_H */
