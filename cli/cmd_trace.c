/* cmd_trace.c — `bitparity trace`: record the engine's taps into a trace. */
#include <stdlib.h>
#include <string.h>

#include "bitnet/forward.h"
#include "commands.h"
#include "progress.h"
#include "parity/record.h"

static const char trace_help[] =
    "usage: bitparity trace -m MODEL (-p TEXT | --tokens IDS [--decode N] | --tokens-from TRACE) [--taps GLOB,...]\n"
    "                       [--numerics ggml-compat|f32|llama.cpp-compat] [--kv-type T] [--threads N]\n"
    "                       [--fault NAME] [--compress] [--load mmap|memory] [--lm-head stored|q8_0]\n"
    "                       -o OUT.npz\n\n"
    "Evaluates the prompt (e0) and N greedy single-token decode steps (e1..eN) and writes every\n"
    "selected tap of every evaluation to OUT.npz (numpy-loadable; meta.yaml records the producer,\n"
    "the model's sha256, the numerics mode, the tokens and the fault, if any).\n\n"
    "  --tokens IDS    prompt token ids, used as given (no BOS added)\n"
    "  -p TEXT         prompt text, tokenized with BOS as the vocabulary says\n"
    "  --decode N      greedy decode steps after the prompt, 0..4096 (default 2)\n"
    "  --tokens-from T teacher-force another trace's tokens: evaluate exactly T's prompt and each of\n"
    "                  its decode steps' tokens (whatever this engine would have chosen), so that a\n"
    "                  foreign engine's trace can be compared on every evaluation\n"
    "  --taps GLOBS    comma-separated globs (blk.*.attn_norm, blk.3.*, logits); default: every\n"
    "                  tap except the opt-in attn_scores, attn_probs, *.in_q8, *.in_scale\n"
    "  --numerics M    ggml-compat (default: f16 KV cache and bitnet.cpp's roundings), f32, or\n"
    "                  llama.cpp-compat (upstream llama.cpp's CPU roundings, f32 KV cache)\n"
    "  --kv-type T     f16, f32 or K,V (f32,f16): the K/V cache (default: f16 in ggml-compat, else\n"
    "                  f32; recorded as settings.kv_cache). llama.cpp's own default is f16\n"
    "  --threads N     worker threads, 1..256 (default 2); taps are bit-identical for every N\n"
    "  --compress      deflate the arrays (about 35 % smaller; far slower to write and read)\n"
    "  --fault NAME    seed a known bug, to prove the parity driver finds it: gamma-inv-sqrt-h, silu,\n"
    "                  layernorm, no-subnorm, i2s-scale-clamp, rope-normal, rope-pos-shift,\n"
    "                  qk-head-perm, round-away, kv-f32, nan, transpose-wo (recorded in meta.yaml).\n"
    "                  Two change nothing on most models: i2s-scale-clamp bites only where an I2_S\n"
    "                  scale lies outside [1e-3, 1e3], round-away only where some x*127/amax is\n"
    "                  exactly k+0.5 with k even; fixtures/models/b158-i2s-edge.gguf has both\n"
    CLI_LOAD_HELP_18
    CLI_LM_HEAD_HELP_AT("     ", "                  ")
    CLI_PROGRESS_HELP "\n"
    "OUT.npz appears only when complete (written to .OUT.npz.tmp.XXXXXX, then renamed): an error\n"
    "or an interrupt (SIGINT/SIGTERM: exit 130) leaves an older OUT.npz as it was.\n";

int cmd_trace(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *tokens = NULL, *tokens_from = NULL, *taps = NULL,
               *numerics = "ggml-compat", *fault = "none", *out = NULL, *kv_type = NULL, *load = "memory",
               *lm_head = NULL;
    int64_t decode = -1, threads = 2; /* decode -1: not given (2 by default) */
    bool compress = false;
    cli_progress prog = {0};
    const cli_opt opts[] = {CLI_STR_OPT("-m", "--model", &model),
                            CLI_STR_OPT("-p", "--prompt", &prompt),
                            CLI_STR_OPT("--tokens", NULL, &tokens),
                            CLI_INT_OPT("--decode", NULL, &decode, 0, PARITY_RECORD_MAX_DECODE),
                            CLI_STR_OPT("--tokens-from", NULL, &tokens_from),
                            CLI_STR_OPT("--taps", NULL, &taps),
                            CLI_STR_OPT("--numerics", NULL, &numerics),
                            CLI_STR_OPT("--kv-type", NULL, &kv_type),
                            CLI_THREADS_OPT(&threads),
                            CLI_STR_OPT("--fault", NULL, &fault),
                            CLI_STR_OPT("-o", "--output", &out),
                            CLI_FLAG_OPT("--compress", NULL, &compress),
                            CLI_STR_OPT("--load", NULL, &load),
                            CLI_STR_OPT("--lm-head", NULL, &lm_head),
                            CLI_PROGRESS_OPTS(&prog),
                            {0}};
    int rc = cli_parse_options("trace", trace_help, argc, argv, opts, NULL, 0, NULL);
    if (rc >= 0 || (rc = cli_progress_start(&prog, "trace")) >= 0) return rc;
    if (!model) return cli_usage_error("trace", "-m MODEL is required");
    if (!out) return cli_usage_error("trace", "-o OUT.npz is required");
    if ((prompt != NULL) + (tokens != NULL) + (tokens_from != NULL) != 1)
        return cli_usage_error("trace", "give exactly one of -p TEXT, --tokens IDS and --tokens-from TRACE");
    if (tokens_from && decode >= 0)
        return cli_usage_error("trace", "--decode and --tokens-from exclude each other: the trace's evaluations "
                                        "are the steps");
    parity_record_opts o = {.model_path = model, .n_decode = decode < 0 ? 2 : decode, .taps = taps,
                            .n_threads = (int)threads, .out_path = out, .compress = compress,
                            .cancel = cli_interrupt_flag(), .progress = cli_progress_sink(&prog)};
    if (!bn_numerics_parse(numerics, &o.numerics))
        return cli_usage_error("trace", "--numerics '%s': expected ggml-compat, f32 or llama.cpp-compat", numerics);
    if (!bn_fault_parse(fault, &o.fault)) return cli_usage_error("trace", "--fault '%s': unknown fault (see --help)", fault);
    if (kv_type && !bn_kv_type_parse(kv_type, &o.kv_type, &o.v_type))
        return cli_usage_error("trace", "--kv-type '%s': expected f16, f32 or K,V (f32,f16)", kv_type);
    bn_gguf_load how;
    if ((rc = cli_parse_load("trace", load, &how)) >= 0) return rc;
    uint32_t lm_type;
    if ((rc = cli_parse_lm_head("trace", lm_head, &lm_type)) >= 0) return rc;
    bn_error err = {0};
    bn_model *m;
    bn_tokenizer *tok;
    if (cli_load_model(model, how, &m, &tok, &err)) return cli_fail("trace", &err);
    int32_t *ids = NULL;
    int64_t n = 0;
    parity_trace *from = NULL;
    parity_eval *evals = NULL;
    bn_status st = cli_requantize_lm_head(m, model, lm_type, threads, &err);
    if (!st)
        st = tokens_from ? parity_trace_open(tokens_from, &from, &err)
                         : cli_prompt_tokens(tok, prompt, tokens, false, &ids, &n, &err);
    if (!st && from) st = parity_trace_evals(from, &evals, &o.n_follow, &err);
    o.follow = evals;
    o.tokens = ids;
    o.n_tokens = n;
    if (!st) st = parity_record(m, &o, &err);
    cli_progress_end(&prog);
    free(evals);
    parity_trace_close(from);
    free(ids);
    bn_tokenizer_free(tok);
    bn_model_free(m);
    return st ? cli_fail("trace", &err) : 0;
}
