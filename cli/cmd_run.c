/* cmd_run.c — `bitparity run`: generate text (or token ids) from a prompt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/clock.h"
#include "bitnet/forward.h"
#include "bitnet/sampler.h"
#include "bitnet/session.h"
#include "commands.h"

static const char run_help[] =
    "usage: bitparity run -m MODEL (-p TEXT | --tokens 1,2,3) [-n N] [--temp T] [--top-k K] [--top-p P]\n"
    "                     [--seed S] [--threads N] [--numerics ggml-compat|f32|llama.cpp-compat] [--chat] [--ids]\n"
    "                     [--load mmap|memory] [--lm-head stored|q8_0] [--timings]\n\n"
    "Streams the generated text to stdout. With -p the prompt is tokenized and BOS added as the\n"
    "vocabulary says; with --tokens the ids are used as given (no BOS); with neither, generation\n"
    "starts from BOS alone. Stops at EOS/EOT or after N tokens.\n\n"
    "  -n N          tokens to generate, 0..1048576 (default 128; the context ends it earlier)\n"
    "  --temp T      temperature >= 0; 0 = greedy (default 0.8)\n"
    "  --top-k K     keep the K most likely tokens, >= 0 (default 40; 0 = all)\n"
    "  --top-p P     nucleus sampling threshold in (0, 1] (default 0.95)\n"
    "  --seed S      sampling seed >= 0 (default 42)\n"
    "  --threads N   worker threads, 1..256 (default 2); results do not depend on it\n"
    "  --numerics M  ggml-compat (default), f32 or llama.cpp-compat\n"
    "  --chat        wrap the prompt in the BitNet chat template (User: ...<|eot_id|>Assistant: )\n"
    "  --ids         print the generated token ids separated by spaces instead of text\n"
    CLI_LOAD_HELP
    CLI_LM_HEAD_HELP
    "  --timings     print to stderr the time of loading, of the prompt's evaluation and of the decode\n"
    "                steps (each evaluation after the prompt, with its sampling), as tok/s\n";

enum { RUN_MAX_PREDICT = 1 << 20 };

typedef struct run_opts {
    const char *model, *prompt, *tokens, *numerics, *load, *lm_head;
    int64_t n_predict, top_k, seed, threads;
    double temp, top_p;
    bool chat, ids, timings;
    double t_load; /* seconds the model took to load (--timings) */
} run_opts;

/* One generation: the prompt, then a sampled token per evaluation. */
typedef struct run_state {
    const run_opts *o;
    const bn_tokenizer *tok;
    bn_sampler *s;
    int64_t V;
    int32_t *prompt, *gen; /* gen: [n_predict + 1] */
    int64_t n_prompt, n_gen;
    char *text;
    size_t printed;
    double t_start, t_prompt, t_end; /* --timings: monotonic seconds before evaluation 0, after it, at the end */
    int64_t n_evals;                 /* evaluations run so far */
} run_state;

/* Prints the continuation so far: token ids, or the text it adds
 * (detokenized whole: SPM spacing depends on context). */
static bn_status print_token(run_state *r, int32_t next, bn_error *err) {
    if (r->o->ids) {
        printf(r->n_gen > 1 ? " %d" : "%d", next);
        return BN_OK;
    }
    size_t len = 0;
    free(r->text);
    r->text = NULL;
    bn_status st = bn_detokenize(r->tok, r->gen, (size_t)r->n_gen, true, false, &r->text, &len, err);
    if (!st && len > r->printed) fwrite(r->text + r->printed, 1, len - r->printed, stdout), r->printed = len;
    return st;
}

/* The session's evaluations: the prompt, then each sampled token until EOS,
 * -n or a full context. */
static bn_status run_step(void *user, int64_t k, const bn_ctx *c, bn_session_step *step, bn_error *err) {
    run_state *r = user;
    r->n_evals = k;
    r->t_end = bn_clock_seconds();
    if (k == 0) r->t_start = r->t_end;
    if (k == 1) r->t_prompt = r->t_end;
    if (k == 0) {
        /* only the last position's logits are sampled from */
        *step = (bn_session_step){.tokens = r->prompt, .n_tokens = r->n_prompt, .logits_first = r->n_prompt - 1,
                                  .n_logits = 1};
        return BN_OK;
    }
    if (r->n_gen >= r->o->n_predict) return BN_OK;
    const int64_t last = k == 1 ? r->n_prompt - 1 : 0;
    const int32_t next = bn_sampler_sample(r->s, bn_ctx_logits_row(c, last));
    if (bn_token_is_eog(r->tok, next)) return BN_OK;
    r->gen[r->n_gen++] = next;
    bn_status st = print_token(r, next, err);
    fflush(stdout);
    if (!st && r->n_gen < r->o->n_predict && bn_ctx_n_past(c) < bn_ctx_n_ctx(c))
        *step = (bn_session_step){.tokens = &r->gen[r->n_gen - 1], .n_tokens = 1};
    return st;
}

/* Generates into stdout; the model and tokenizer are loaded. */
static bn_status generate(const run_opts *o, const bn_model *m, const bn_tokenizer *tok, bn_error *err) {
    bn_session_params sp = {.ctx = bn_ctx_params_init(), .step = run_step};
    sp.ctx.n_threads = (int)o->threads;
    sp.ctx.cancel = cli_interrupt_flag();
    if (!bn_numerics_parse(o->numerics, &sp.ctx.numerics))
        return bn_error_set(err, BN_ERR_INVALID, "--numerics '%s': expected ggml-compat, f32 or llama.cpp-compat", o->numerics);
    run_state r = {.o = o, .tok = tok, .V = m->hp.n_vocab};
    sp.user = &r;
    const bn_sampler_params smp = {(float)o->temp, (int32_t)o->top_k, (float)o->top_p, (uint64_t)o->seed};
    bn_status st = cli_prompt_tokens(tok, o->prompt, o->tokens, o->chat, &r.prompt, &r.n_prompt, err);
    if (!st) st = bn_sampler_create(&smp, (int32_t)m->hp.n_vocab, &r.s, err);
    if (!st && !(r.gen = malloc((size_t)(o->n_predict + 1) * sizeof *r.gen)))
        st = bn_error_nomem(err, (size_t)(o->n_predict + 1) * sizeof *r.gen, "run: %lld generated tokens",
                            (long long)o->n_predict);
    /* the positions the prompt and the generated tokens take, within the
     * model's context (which still ends the generation): the session sizes
     * the KV cache to them */
    const int64_t n_default = bn_ctx_model_n_ctx(m);
    sp.n_positions = r.n_prompt + o->n_predict < n_default ? r.n_prompt + o->n_predict : n_default;
    if (!st) st = bn_session_run(m, &sp, err);
    if (o->ids || r.printed) putchar('\n');
    if (!st && o->timings) {
        const double prompt = r.t_prompt - r.t_start, decode = r.t_end - r.t_prompt;
        const int64_t n_decode = r.n_evals - 1;
        fprintf(stderr, "timings: load %.3f s\ntimings: prompt %lld tokens in %.3f s (%.2f tok/s)\n", o->t_load,
                (long long)r.n_prompt, prompt, prompt > 0 ? (double)r.n_prompt / prompt : 0.0);
        fprintf(stderr, "timings: decode %lld tokens in %.3f s (%.2f tok/s)\n", (long long)n_decode, decode,
                n_decode > 0 && decode > 0 ? (double)n_decode / decode : 0.0);
    }
    free(r.text), free(r.gen), free(r.prompt);
    bn_sampler_free(r.s);
    return st;
}

int cmd_run(int argc, char **argv) {
    run_opts o = {.numerics = "ggml-compat", .load = "memory", .n_predict = 128, .top_k = 40, .seed = 42, .threads = 2,
                  .temp = 0.8, .top_p = 0.95};
    const cli_opt opts[] = {CLI_STR_OPT("-m", "--model", &o.model),
                            CLI_STR_OPT("-p", "--prompt", &o.prompt),
                            CLI_STR_OPT("--tokens", NULL, &o.tokens),
                            CLI_INT_OPT("-n", "--n-predict", &o.n_predict, 0, RUN_MAX_PREDICT),
                            CLI_FLOAT_OPT("--temp", NULL, &o.temp, 0, INFINITY, false, false),
                            CLI_INT_OPT("--top-k", NULL, &o.top_k, 0, INT32_MAX),
                            CLI_FLOAT_OPT("--top-p", NULL, &o.top_p, 0, 1, true, false),
                            CLI_INT_OPT("--seed", NULL, &o.seed, 0, INT64_MAX),
                            CLI_THREADS_OPT(&o.threads),
                            CLI_STR_OPT("--numerics", NULL, &o.numerics),
                            CLI_FLAG_OPT("--chat", NULL, &o.chat),
                            CLI_FLAG_OPT("--ids", NULL, &o.ids),
                            CLI_STR_OPT("--load", NULL, &o.load),
                            CLI_STR_OPT("--lm-head", NULL, &o.lm_head),
                            CLI_FLAG_OPT("--timings", NULL, &o.timings),
                            {0}};
    int rc = cli_parse_options("run", run_help, argc, argv, opts, NULL, 0, NULL);
    if (rc >= 0) return rc;
    if (!o.model) return cli_usage_error("run", "-m MODEL is required");
    if (o.prompt && o.tokens) return cli_usage_error("run", "-p and --tokens exclude each other");
    bn_gguf_load load;
    if ((rc = cli_parse_load("run", o.load, &load)) >= 0) return rc;
    uint32_t lm_head;
    if ((rc = cli_parse_lm_head("run", o.lm_head, &lm_head)) >= 0) return rc;
    bn_error err = {0};
    bn_model *m;
    bn_tokenizer *tok;
    const double t0 = bn_clock_seconds();
    if (cli_load_model(o.model, load, &m, &tok, &err)) return cli_fail("run", &err);
    o.t_load = bn_clock_seconds() - t0;
    const double t1 = bn_clock_seconds();
    bn_status st = cli_requantize_lm_head(m, o.model, lm_head, o.threads, &err);
    if (!st && bn_model_lm_head_override(m)) /* never silent: the logits are not the file's */
        fprintf(stderr, "bitparity run: lm_head requantized to %s (--lm-head; %.2f s): logits differ from the file's "
                        "lm_head by its rounding\n", bn_model_lm_head_override(m), bn_clock_seconds() - t1);
    if (!st) st = generate(&o, m, tok, &err);
    bn_tokenizer_free(tok);
    bn_model_free(m);
    return st ? cli_fail("run", &err) : 0;
}
