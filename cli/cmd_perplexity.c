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

#include "bitnet/yaml_doc.h"
#include "commands.h"
#include "parity/perplexity.h"
#include "progress.h"

static const char ppl_help[] =
    "usage: bitparity perplexity -m MODEL -f TEXT [--ctx N] [--threads N] [--numerics ggml-compat|f32|llama.cpp-compat]\n"
    "                            [--save-logits OUT.npz] [--kld-base BASE.npz] [--load mmap|memory]\n"
    "                            [--lm-head stored|q8_0]\n\n"
    "Tokenizes TEXT (no BOS), cuts it into non-overlapping windows of N-1 tokens, evaluates each\n"
    "window with BOS in front and scores every window token from the tokens before it;\n"
    "perplexity = exp(mean negative log-likelihood), log-softmax in double.\n\n"
    "  --ctx N           window length including BOS, 2..4096 (default 128)\n"
    "  --threads N       worker threads, 1..256 (default 2)\n"
    "  --save-logits F   write every window's logits to F (an .npz trace: e{k}/logits.npy; it\n"
    "                    appears only when complete, an older F stays as it was otherwise)\n"
    "  --kld-base F      compare with logits saved by --save-logits from a base model: KL(base||this)\n"
    "                    mean/median/p99/max, same top token, RMS delta-p, as llama.cpp's\n"
    "                    perplexity --kl-divergence reports them\n"
    CLI_LOAD_HELP_AT("          ", "                    ")
    CLI_LM_HEAD_HELP_AT("       ", "                    ")
    "                    and as the output's line lm_head = q8_0\n"
    CLI_PROGRESS_HELP;

static void print_kld(const parity_ppl_result *r) {
    if (!r->n_kld) return;
    printf("kld_mean = %.6g\nkld_median = %.6g\nkld_p99 = %.6g\nkld_max = %.6g\n", r->kld_mean, r->kld_median,
           r->kld_p99, r->kld_max);
    printf("same_top_p = %.4f %% +/- %.4f %%\nrms_dp = %.4f %%\n", 100 * r->same_top, 100 * r->same_top_err,
           100 * r->rms_dp);
}

int cmd_perplexity(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *save = NULL, *base = NULL, *numerics = "ggml-compat", *load = "memory",
               *lm_head = NULL;
    int64_t ctx = 128, threads = 2;
    cli_progress prog = {0};
    const cli_opt opts[] = {CLI_STR_OPT("-m", "--model", &model),
                            CLI_STR_OPT("-f", "--file", &file),
                            CLI_INT_OPT("--ctx", "-c", &ctx, 2, PARITY_PPL_MAX_CTX),
                            CLI_THREADS_OPT(&threads),
                            CLI_STR_OPT("--numerics", NULL, &numerics),
                            CLI_STR_OPT("--save-logits", NULL, &save),
                            CLI_STR_OPT("--kld-base", NULL, &base),
                            CLI_STR_OPT("--load", NULL, &load),
                            CLI_STR_OPT("--lm-head", NULL, &lm_head),
                            CLI_PROGRESS_OPTS(&prog),
                            {0}};
    int rc = cli_parse_options("perplexity", ppl_help, argc, argv, opts, NULL, 0, NULL);
    if (rc >= 0 || (rc = cli_progress_start(&prog, "perplexity")) >= 0) return rc;
    if (!model || !file) return cli_usage_error("perplexity", "-m MODEL and -f TEXT are required");
    parity_ppl_opts po = {.ctx = ctx, .params = bn_ctx_params_init(), .save_logits = save,
                          .progress = cli_progress_sink(&prog)};
    po.params.n_threads = (int)threads;
    po.params.cancel = cli_interrupt_flag();
    if (!bn_numerics_parse(numerics, &po.params.numerics))
        return cli_usage_error("perplexity", "--numerics '%s': expected ggml-compat, f32 or llama.cpp-compat", numerics);
    bn_gguf_load how;
    if ((rc = cli_parse_load("perplexity", load, &how)) >= 0) return rc;
    uint32_t lm_type;
    if ((rc = cli_parse_lm_head("perplexity", lm_head, &lm_type)) >= 0) return rc;
    bn_error err = {0};
    bn_model *m = NULL;
    bn_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    parity_trace *kld_base = NULL;
    parity_ppl_result r;
    bn_status st = cli_load_model(model, how, &m, &tok, &err);
    if (!st) st = cli_requantize_lm_head(m, model, lm_type, threads, &err);
    if (!st) st = bn_yaml_read_file(file, SIZE_MAX / 2, "text", &text, &len, &err);
    if (!st && base) st = parity_trace_open(base, &kld_base, &err);
    po.kld_base = kld_base;
    if (!st) st = parity_perplexity(m, tok, text, len, &po, &r, &err);
    cli_progress_end(&prog);
    if (st == BN_ERR_INVALID && !strcmp(err.msg, "no tokens to score")) bn_error_prefix(&err, file);
    if (!st) {
        printf("tokens = %lld\nwindows = %lld\nctx = %lld\nnll_per_token = %.6f\nperplexity = %.6f\n",
               (long long)r.n_scored, (long long)r.n_windows, (long long)ctx, r.nll_per_token, r.perplexity);
        if (bn_model_lm_head_override(m)) printf("lm_head = %s\n", bn_model_lm_head_override(m));
        print_kld(&r);
    }
    parity_trace_close(kld_base);
    free(text);
    bn_tokenizer_free(tok);
    bn_model_free(m);
    return st ? cli_fail("perplexity", &err) : 0;
}
