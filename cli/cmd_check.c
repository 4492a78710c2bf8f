/* cmd_check.c — `bitparity check`: trace bitparity's engine with a reference
 * trace's tokens and settings, then compare, in one step. */
#include "bitnet/fault.h"
#include "commands.h"
#include "progress.h"

static const char check_help[] =
    "usage: bitparity check -m MODEL --reference TRACE.npz [--numerics MODE] [--kv-type T] [--taps GLOBS]\n"
    "                       [--policy NAME|FILE] [--map M] [--replay [--replay-mode block|op]]\n"
    "                       [--keep-trace OUT.npz] [-o RECEIPT.yaml] [--format text|yaml|json] [--threads N]\n"
    "                       [--reference-model MODEL] [--fault NAME] [--load mmap|memory]\n"
    "                       [--arbiter python [--python PATH] [--arbiter-script PATH]]\n\n"
    "Runs bitparity's engine on MODEL with exactly the reference's evaluations (its prompt and the\n"
    "tokens of each of its decode steps), records every default tap, and compares the two traces as\n"
    "`bitparity compare` does (the engine is the subject). The numerics mode (ggml-compat, f32 or\n"
    "llama.cpp-compat) defaults to the reference's own, ggml-compat for a bitnet.cpp reference,\n"
    "llama.cpp-compat for a llama.cpp one (then the policy is exact: bit-identical), f32 otherwise.\n"
    "The K/V cache type (--kv-type) defaults to the reference's settings.kv_cache when it names one\n"
    "(llama.cpp: \"K f16, V f16\" by default), else to the numerics mode's. A reference recorded with\n"
    "--lm-head q8_0 (settings.lm_head) is checked with the lm_head requantized the same way.\n\n"
    "  --reference T   the reference trace (bitnet.cpp/llama.cpp dump or a bitparity trace)\n"
    "  --keep-trace F  also write the engine's trace to F (default: it is held in memory only)\n"
    CLI_LOAD_HELP_18
    "  --reference-model M  the reference's model (e.g. the original of a converted MODEL): the hints\n"
    "                  also test MODEL's weights against it (docs/hints.md)\n"
    "  --fault NAME    record the engine with a seeded bug (as `bitparity trace --fault`), to see the\n"
    "                  driver localize it; the receipt's subject records the fault\n"
    "  --arbiter python  when the check fails, ask a third opinion: the independent Python reference\n"
    "                  (reference/bitnet_ref.py) runs MODEL's declared math (its metadata: arch,\n"
    "                  hidden_activation, ...) on the same evaluations in the engine's numerics, and\n"
    "                  the output and the receipt (`arbiter`) say which side agrees with it at the\n"
    "                  first divergent tap, with the metric. The reference can be the broken side\n"
    "                  (bitnet.cpp runs SiLU for a model that declares relu²). Agreeing with it means\n"
    "                  computing what MODEL declares: a broken export declares the wrong math\n"
    "  --python PATH   the interpreter (default /usr/bin/python3, else python3 on PATH; needs numpy)\n"
    "  --arbiter-script S  the reference script (default: the source tree's reference/bitnet_ref.py)\n"
    "  other options   as for `bitparity compare` and `bitparity trace`\n"
    CLI_PROGRESS_HELP "\n"
    "exit: 0 pass, 1 parity failure, 2 usage or input error, 130 interrupted\n";

int cmd_check(int argc, char **argv) {
    cli_compare_args a = {.cmd = "check", .format = "text", .threads = 2};
    cli_progress prog = {0};
    const cli_opt opts[] = {CLI_STR_OPT("-m", "--model", &a.model),
                            CLI_STR_OPT("--reference", NULL, &a.reference),
                            CLI_STR_OPT("--numerics", NULL, &a.numerics),
                            CLI_STR_OPT("--kv-type", NULL, &a.kv_type),
                            CLI_STR_OPT("--taps", NULL, &a.taps),
                            CLI_STR_OPT("--map", NULL, &a.map),
                            CLI_STR_OPT("--policy", NULL, &a.policy),
                            CLI_STR_OPT("-o", "--output", &a.out),
                            CLI_STR_OPT("--format", NULL, &a.format),
                            CLI_THREADS_OPT(&a.threads),
                            CLI_FLAG_OPT("--replay", NULL, &a.replay),
                            CLI_STR_OPT("--replay-mode", NULL, &a.replay_mode),
                            CLI_STR_OPT("--keep-trace", NULL, &a.record_path),
                            CLI_STR_OPT("--load", NULL, &a.load),
                            CLI_STR_OPT("--reference-model", NULL, &a.reference_model),
                            CLI_STR_OPT("--fault", NULL, &a.fault),
                            CLI_STR_OPT("--arbiter", NULL, &a.arbiter),
                            CLI_STR_OPT("--python", NULL, &a.python),
                            CLI_STR_OPT("--arbiter-script", NULL, &a.arbiter_script),
                            CLI_PROGRESS_OPTS(&prog),
                            {0}};
    int rc = cli_parse_options("check", check_help, argc, argv, opts, NULL, 0, NULL);
    if (rc >= 0 || (rc = cli_progress_start(&prog, "check")) >= 0) return rc;
    a.progress = &prog;
    if (!a.model || !a.reference) return cli_usage_error("check", "-m MODEL and --reference TRACE are required");
    bn_fault fault;
    if (a.fault && !bn_fault_parse(a.fault, &fault))
        return cli_usage_error("check", "--fault '%s': unknown fault (see bitparity trace --help)", a.fault);
    return cli_compare_run(&a);
}
