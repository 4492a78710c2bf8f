/* cmd_check.c — `bitparity check`: trace bitparity's engine with a reference
 * trace's tokens and settings, then compare, in one step. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "parity/record.h"
#include "parity/trace.h"

static const char check_help[] =
    "usage: bitparity check -m MODEL --reference TRACE.npz [--numerics ggml-compat|f32] [--taps GLOBS]\n"
    "                       [--policy NAME|FILE] [--map M] [--replay [--replay-mode block|op]]\n"
    "                       [--keep-trace OUT.npz] [-o RECEIPT.yaml] [--format text|yaml|json] [--threads N]\n\n"
    "Runs bitparity's engine on MODEL with exactly the reference's evaluations (its prompt and the\n"
    "tokens of each of its decode steps), records every default tap, and compares the two traces as\n"
    "`bitparity compare` does (the engine is the subject). The numerics mode defaults to ggml-compat\n"
    "for a bitnet.cpp reference and to f32 otherwise.\n\n"
    "  --reference T   the reference trace (bitnet.cpp/llama.cpp dump or a bitparity trace)\n"
    "  --keep-trace F  keep the engine's trace (default: a temporary file, removed)\n"
    "  other options   as for `bitparity compare` and `bitparity trace`\n\n"
    "exit: 0 pass, 1 parity failure, 2 usage or input error, 130 interrupted\n";

/* ggml-compat reproduces bitnet.cpp; every other reference is compared in f32. */
static const char *default_numerics(const parity_trace *ref) {
    const char *producer = parity_trace_get(ref, "producer.name");
    const char *numerics = parity_trace_get(ref, "settings.numerics");
    if (numerics) return numerics;
    return producer && !strncmp(producer, "bitnet.cpp", 10) ? "ggml-compat" : "f32";
}

static bn_status record_following(const char *model_path, const parity_trace *ref, const char *numerics,
                                  const char *taps, int threads, const char *out, bn_error *err) {
    bn_model *m = NULL;
    bn_status st = bn_model_load(model_path, &m, err);
    const int64_t n = parity_trace_eval_count(ref);
    parity_eval *evals = st ? NULL : calloc((size_t)(n ? n : 1), sizeof *evals);
    if (!st && !evals) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; !st && k < n; k++) evals[k] = *parity_trace_eval(ref, k);
    parity_record_opts o = {.model_path = model_path, .follow = evals, .n_follow = n, .taps = taps,
                            .n_threads = threads, .out_path = out, .cancel = cli_interrupt_flag()};
    if (!st && !bn_numerics_parse(numerics, &o.numerics))
        st = bn_error_set(err, BN_ERR_INVALID, "--numerics '%s': expected ggml-compat or f32", numerics);
    if (!st) st = parity_record(m, &o, err);
    free(evals);
    bn_model_free(m);
    return st;
}

int cmd_check(int argc, char **argv) {
    cli_compare_args a = {.cmd = "check", .format = "text", .threads = 2};
    const char *keep = NULL, *numerics = NULL, *taps = NULL;
    const cli_opt opts[] = {CLI_STR_OPT("-m", "--model", &a.model),
                            CLI_STR_OPT("--reference", NULL, &a.reference),
                            CLI_STR_OPT("--numerics", NULL, &numerics),
                            CLI_STR_OPT("--taps", NULL, &taps),
                            CLI_STR_OPT("--map", NULL, &a.map),
                            CLI_STR_OPT("--policy", NULL, &a.policy),
                            CLI_STR_OPT("-o", "--output", &a.out),
                            CLI_STR_OPT("--format", NULL, &a.format),
                            CLI_THREADS_OPT(&a.threads),
                            CLI_FLAG_OPT("--replay", NULL, &a.replay),
                            CLI_STR_OPT("--replay-mode", NULL, &a.replay_mode),
                            CLI_STR_OPT("--keep-trace", NULL, &keep),
                            {0}};
    int rc = cli_parse_options("check", check_help, argc, argv, opts, NULL, 0, NULL);
    if (rc >= 0) return rc;
    if (!a.model || !a.reference) return cli_usage_error("check", "-m MODEL and --reference TRACE are required");
    const char *tmpdir = getenv("TMPDIR");
    char tmp[512], path[600];
    snprintf(tmp, sizeof tmp, "%s/bitparity-check-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!keep) {
        if (!mkdtemp(tmp)) return cli_usage_error("check", "cannot create a temporary folder in %s", tmp);
        snprintf(path, sizeof path, "%s/engine.npz", tmp);
    }
    bn_error err = {0};
    parity_trace *ref = NULL;
    bn_status st = parity_trace_open(a.reference, &ref, &err);
    if (!st) st = record_following(a.model, ref, numerics ? numerics : default_numerics(ref), taps, (int)a.threads,
                                   keep ? keep : path, &err);
    parity_trace_close(ref);
    if (!st) {
        a.subject = keep ? keep : path;
        rc = cli_compare_run(&a);
    } else {
        rc = cli_fail("check", &err);
    }
    if (!keep) {
        unlink(path);
        rmdir(tmp);
    }
    return rc;
}
