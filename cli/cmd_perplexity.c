/* cmd_perplexity.c — `bitparity perplexity`: perplexity of a model on a text,
 * and llama.cpp's KL-divergence statistics against saved base logits.
 *
 * Definition (the same as fixtures/train_tiny_bitnet.py's): the text is
 * tokenized without BOS and cut into non-overlapping windows of ctx-1
 * tokens; each window is evaluated with BOS in front, and every token of the
 * window is scored from the tokens before it (BOS included). perplexity =
 * exp(mean negative log-likelihood over all scored tokens), log-softmax in
 * double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/forward.h"
#include "bitnet/session.h"
#include "commands.h"
#include "parity/metrics.h"
#include "parity/trace.h"

static const char ppl_help[] =
    "usage: bitparity perplexity -m MODEL -f TEXT [--ctx N] [--threads N] [--numerics ggml-compat|f32|llama.cpp-compat]\n"
    "                            [--save-logits OUT.npz] [--kld-base BASE.npz]\n\n"
    "Tokenizes TEXT (no BOS), cuts it into non-overlapping windows of N-1 tokens, evaluates each\n"
    "window with BOS in front and scores every window token from the tokens before it;\n"
    "perplexity = exp(mean negative log-likelihood), log-softmax in double.\n\n"
    "  --ctx N           window length including BOS, 2..4096 (default 128)\n"
    "  --threads N       worker threads, 1..256 (default 2)\n"
    "  --save-logits F   write every window's logits to F (an .npz trace: e{k}/logits.npy; it\n"
    "                    appears only when complete, an older F stays as it was otherwise)\n"
    "  --kld-base F      compare with logits saved by --save-logits from a base model: KL(base||this)\n"
    "                    mean/median/p99/max, same top token, RMS delta-p, as llama.cpp's\n"
    "                    perplexity --kl-divergence reports them\n";

enum { PPL_MAX_CTX = 4096 };

typedef struct ppl_state {
    double nll_sum;
    int64_t n_scored;
    double *kld;        /* per scored position, when comparing */
    double *dp;
    int64_t n_kld, cap_kld, same_top;
    parity_trace *base; /* --kld-base */
    parity_trace_writer *save;
} ppl_state;

/* Negative log-likelihood of `target` under one row of logits. */
static double row_nll(const float *logits, int64_t V, int32_t target) {
    double max = -INFINITY;
    for (int64_t i = 0; i < V; i++) max = logits[i] > max ? logits[i] : max;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) sum += exp((double)logits[i] - max);
    return -(((double)logits[target] - max) - log(sum));
}

static bn_status kld_window(ppl_state *s, int64_t k, const float *logits, int64_t T, int64_t V, bn_error *err) {
    float *base = NULL;
    npz_array_info info;
    bn_status st = parity_trace_load_f32(s->base, k, "logits", &base, &info, err);
    if (st) return st;
    if (info.nelem != T * V) {
        free(base);
        return bn_error_set(err, BN_ERR_INVALID, "--kld-base: window %lld has %lld logits, this run %lld (same text, "
                            "ctx and vocabulary?)", (long long)k, (long long)info.nelem, (long long)(T * V));
    }
    parity_logits_pos *pos = malloc((size_t)T * sizeof *pos);
    parity_logits_summary sum;
    if (!pos) st = bn_error_nomem(err, (size_t)T * sizeof *pos, "--kld-base: the per-position KLD of window %lld", (long long)k);
    /* positions 0..T-2 predict the window's tokens */
    if (!st) st = parity_logits_compute(logits, base, (size_t)(T - 1), (size_t)V, NULL, pos, &sum, err);
    if (!st && s->n_kld + T > s->cap_kld) {
        s->cap_kld = (s->n_kld + T) * 2;
        double *a = realloc(s->kld, (size_t)s->cap_kld * sizeof *a), *b = a ? realloc(s->dp, (size_t)s->cap_kld * sizeof *b) : NULL;
        if (a) s->kld = a;
        if (b) s->dp = b;
        if (!a || !b) st = bn_error_nomem(err, 2 * (size_t)s->cap_kld * sizeof *a, "--kld-base: %lld KLD values", (long long)s->cap_kld);
    }
    for (int64_t t = 0; !st && t < T - 1; t++) {
        s->kld[s->n_kld] = pos[t].kld;
        s->dp[s->n_kld++] = pos[t].dp;
        s->same_top += pos[t].same_top;
    }
    free(pos), free(base);
    return st;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_kld(ppl_state *s) {
    const int64_t n = s->n_kld;
    if (!n) return;
    double mean = 0, dp2 = 0;
    for (int64_t i = 0; i < n; i++) mean += s->kld[i], dp2 += s->dp[i] * s->dp[i];
    mean /= (double)n;
    qsort(s->kld, (size_t)n, sizeof *s->kld, cmp_double);
    const double same = (double)s->same_top / (double)n;
    printf("kld_mean = %.6g\nkld_median = %.6g\nkld_p99 = %.6g\nkld_max = %.6g\n", mean,
           parity_percentile(s->kld, (size_t)n, 0.5), parity_percentile(s->kld, (size_t)n, 0.99), s->kld[n - 1]);
    printf("same_top_p = %.4f %% +/- %.4f %%\nrms_dp = %.4f %%\n", 100 * same,
           n > 1 ? 100 * sqrt(same * (1 - same) / (double)(n - 1)) : 0.0, 100 * sqrt(dp2 / (double)n));
}

/* The text's windows as the session evaluates them, each from an empty
 * cache with BOS in front. */
typedef struct ppl_run {
    ppl_state *s;
    const int32_t *ids;
    int64_t n_ids, chunk, n_windows, V;
    int32_t bos;
    int32_t *win;       /* [chunk + 1]: the window being evaluated */
    int64_t len;        /* its tokens after BOS */
    parity_eval *evals; /* [n_windows], for --save-logits */
} ppl_run;

/* Scores window k (its logits are in c): NLL, --save-logits, --kld-base. */
static bn_status score_window(ppl_run *r, int64_t k, const bn_ctx *c, bn_error *err) {
    ppl_state *s = r->s;
    const int64_t T = r->len + 1, V = r->V;
    const float *logits = bn_ctx_logits(c);
    for (int64_t t = 0; t < r->len; t++) s->nll_sum += row_nll(logits + t * V, V, r->win[t + 1]);
    s->n_scored += r->len;
    r->evals[k] = (parity_eval){.tokens = r->ids + k * r->chunk, .n_tokens = r->len, .p0 = 1};
    bn_status st = BN_OK;
    if (s->save) {
        const int64_t shape[2] = {T, V};
        st = parity_trace_writer_add_tap(s->save, k, "logits", NPZ_F32, shape, 2, logits, err);
    }
    if (!st && s->base) st = kld_window(s, k, logits, T, V, err);
    if (!st && isatty(2)) fprintf(stderr, "\rwindow %lld/%lld  ppl %.4f", (long long)k + 1, (long long)r->n_windows,
                                  exp(s->nll_sum / (double)s->n_scored));
    return st;
}

static bn_status ppl_step(void *user, int64_t k, const bn_ctx *c, bn_session_step *step, bn_error *err) {
    ppl_run *r = user;
    bn_status st = k > 0 ? score_window(r, k - 1, c, err) : BN_OK;
    if (st || k == r->n_windows) return st;
    const int64_t off = k * r->chunk;
    r->len = r->n_ids - off < r->chunk ? r->n_ids - off : r->chunk;
    r->win[0] = r->bos;
    memcpy(r->win + 1, r->ids + off, (size_t)r->len * sizeof *r->win);
    *step = (bn_session_step){.tokens = r->win, .n_tokens = r->len + 1, .reset = true};
    /* the window's last token predicts nothing scored: its logits are
     * computed only when --save-logits or --kld-base keep every row */
    if (!r->s->save && !r->s->base) step->logits_first = 0, step->n_logits = r->len;
    return BN_OK;
}

static bn_status evaluate(const bn_model *m, const bn_tokenizer *tok, const int32_t *ids, int64_t n_ids, int64_t ctx,
                          const bn_ctx_params *cp, ppl_state *s, bn_error *err) {
    ppl_run r = {.s = s, .ids = ids, .n_ids = n_ids, .chunk = ctx - 1, .V = m->hp.n_vocab, .bos = bn_token_bos(tok)};
    if (r.bos < 0) return bn_error_set(err, BN_ERR_INVALID, "the vocabulary has no BOS token");
    r.n_windows = (n_ids + r.chunk - 1) / r.chunk;
    bn_session_params sp = {.ctx = *cp, .step = ppl_step, .user = &r};
    sp.ctx.n_ctx = ctx;
    sp.ctx.cancel = cli_interrupt_flag();
    r.win = malloc((size_t)ctx * sizeof *r.win);
    r.evals = calloc((size_t)r.n_windows, sizeof *r.evals);
    bn_status st = r.win && r.evals ? bn_session_run(m, &sp, err)
                                    : bn_error_nomem(err, (size_t)ctx * sizeof *r.win + (size_t)r.n_windows * sizeof *r.evals,
                                                     "perplexity: %lld windows of %lld tokens", (long long)r.n_windows,
                                                     (long long)ctx);
    if (isatty(2)) fputc('\n', stderr);
    if (!st && s->save) {
        const parity_trace_meta meta = {.producer_name = "bitparity-perplexity", .producer_version = BITPARITY_VERSION,
                                        .producer_commit = BITPARITY_COMMIT, .model_arch = bn_arch_name(m->hp.arch),
                                        .numerics = bn_numerics_name(cp->numerics), .threads = cp->n_threads,
                                        .evals = r.evals, .n_evals = r.n_windows};
        st = parity_trace_writer_finish(s->save, &meta, err);
        s->save = NULL;
    }
    free(r.evals), free(r.win);
    return st;
}

static bn_status read_text(const char *path, char **text, size_t *len, bn_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return bn_error_set(err, BN_ERR_IO, "%s: cannot open", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *b = realloc(buf, cap *= 2);
        if (!b) free(buf);
        buf = b;
    }
    const bool bad = ferror(f);
    fclose(f);
    if (!buf) return bn_error_nomem(err, cap, "%s: the text", path);
    if (bad) {
        free(buf);
        return bn_error_set(err, BN_ERR_IO, "%s: read error", path);
    }
    *text = buf;
    *len = n;
    return BN_OK;
}

int cmd_perplexity(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *save = NULL, *base = NULL, *numerics = "ggml-compat";
    int64_t ctx = 128, threads = 2;
    const cli_opt opts[] = {CLI_STR_OPT("-m", "--model", &model),
                            CLI_STR_OPT("-f", "--file", &file),
                            CLI_INT_OPT("--ctx", "-c", &ctx, 2, PPL_MAX_CTX),
                            CLI_THREADS_OPT(&threads),
                            CLI_STR_OPT("--numerics", NULL, &numerics),
                            CLI_STR_OPT("--save-logits", NULL, &save),
                            CLI_STR_OPT("--kld-base", NULL, &base),
                            {0}};
    int rc = cli_parse_options("perplexity", ppl_help, argc, argv, opts, NULL, 0, NULL);
    if (rc >= 0) return rc;
    if (!model || !file) return cli_usage_error("perplexity", "-m MODEL and -f TEXT are required");
    bn_ctx_params cp = bn_ctx_params_init();
    cp.n_threads = (int)threads;
    cp.cancel = cli_interrupt_flag();
    if (!bn_numerics_parse(numerics, &cp.numerics))
        return cli_usage_error("perplexity", "--numerics '%s': expected ggml-compat, f32 or llama.cpp-compat", numerics);
    bn_error err = {0};
    bn_model *m = NULL;
    bn_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    int32_t *ids = NULL;
    ppl_state s = {0};
    bn_status st = cli_load_model(model, &m, &tok, &err);
    if (!st) st = read_text(file, &text, &len, &err);
    if (!st) st = bn_tokenize(tok, text, len, false, false, &ids, &n_ids, &err);
    if (!st && n_ids == 0) st = bn_error_set(&err, BN_ERR_INVALID, "%s: no tokens to score", file);
    if (!st && base) st = parity_trace_open(base, &s.base, &err);
    if (!st && save) st = parity_trace_writer_open(save, NPZ_DEFLATE_FAST, &s.save, &err);
    if (!st && save) parity_trace_writer_set_cancel(s.save, cp.cancel);
    if (!st) st = evaluate(m, tok, ids, (int64_t)n_ids, ctx, &cp, &s, &err);
    if (!st) {
        const double nll = s.nll_sum / (double)s.n_scored;
        printf("tokens = %lld\nwindows = %lld\nctx = %lld\nnll_per_token = %.6f\nperplexity = %.6f\n",
               (long long)s.n_scored, (long long)((int64_t)(n_ids + ctx - 2) / (ctx - 1)), (long long)ctx, nll,
               exp(nll));
        print_kld(&s);
    }
    parity_trace_writer_abort(s.save);
    parity_trace_close(s.base);
    free(s.kld), free(s.dp), free(ids), free(text);
    bn_tokenizer_free(tok);
    bn_model_free(m);
    return st ? cli_fail("perplexity", &err) : 0;
}
