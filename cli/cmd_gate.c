/* cmd_gate.c — `bitparity gate`: a manifest's entries through the parity
 * driver (parity/gate.h), one receipt each and one summary (YAML, Markdown,
 * HTML: reports/gate_report.h); `--merge` joins shards' summaries. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "progress.h"
#include "parity/gate.h"
#include "reports/gate_report.h"

static const char gate_help[] =
    "usage: bitparity gate MANIFEST.yaml [--shard I/N] [-o DIR] [--set NAME=VALUE]... [--threads N]\n"
    "                      [--python PY] [--reference-script bitnet_ref.py] [--load mmap|memory]\n"
    "       bitparity gate --merge SHARD_DIR... [-o DIR]\n\n"
    "Runs every entry of the manifest (docs/gate.md): parity entries (a model against a reference\n"
    "trace, the Python reference, or another model, under a policy) through the parity driver, and\n"
    "perplexity/KLD entries against their thresholds. Writes DIR/entries/NAME/ (the receipt and\n"
    "its report) and DIR/summary.yaml, summary.md and summary.html (the gate matrix).\n\n"
    "  --shard I/N        run only the entries of shard I of N (1 <= I <= N): an entry's shard\n"
    "                     follows from the sha256 of its name, so adding entries moves no other\n"
    "  -o DIR             the output folder (default gate-out)\n"
    "  --set NAME=VALUE   set a manifest variable (${NAME} in paths), over its vars: default\n"
    "  --python PY        the Python for `reference: python` entries (default $BITPARITY_PYTHON,\n"
    "                     else /usr/bin/python3)\n"
    "  --reference-script F  the Python reference (default reference/bitnet_ref.py of the source)\n"
    "  --threads N        worker threads, 1..256 (default 2); results do not depend on N\n"
    "  --load L           where the models the entries evaluate live: memory (default: each file read\n"
    "                     into memory) or mmap (mapped: no RAM of its own, ~30 % slower to evaluate);\n"
    "                     the same results bit for bit\n"
    "  --merge            join the summaries (and entry folders) of shard folders into DIR: the\n"
    "                     summary is the one an unsharded run writes\n"
    CLI_PROGRESS_HELP "\n"
    "Optional entries (optional: true) whose files are missing are skipped, not failed. An entry\n"
    "with `arbiter: python` asks the independent Python reference which side is wrong when it fails.\n\n"
    "exit: 0 every entry passes or is skipped, 1 a parity failure or threshold missed,\n"
    "      2 usage or input error (a bad manifest, or an entry that could not be judged),\n"
    "      130 interrupted\n";

enum { GATE_MAX_ARGS = 1024 };

/* One line per entry when it is judged (the progress line, if shown, is
 * cleared first: it shares the terminal). */
static void show_entry(void *user, const parity_gate_entry *e, int done) {
    if (!done) return;
    cli_progress_end(user);
    printf("%-28s %-7s %s\n", e->name, parity_gate_verdict_name(e->verdict), e->message ? e->message : "");
    fflush(stdout);
}

static int finish(const parity_gate_summary *s, const char *out, bn_error *err) {
    bn_status st = report_gate_write(s, out, 0, err);
    if (st) return cli_fail("gate", err);
    printf("gate: %s: %zu entries: %zu pass, %zu fail, %zu skipped, %zu error; summary: %s/summary.html\n",
           parity_gate_exit_code(s) == 2 ? "ERROR" : parity_gate_exit_code(s) ? "FAIL" : "PASS", s->n,
           s->counts[PARITY_GATE_PASS], s->counts[PARITY_GATE_FAIL], s->counts[PARITY_GATE_SKIPPED],
           s->counts[PARITY_GATE_ERROR], out);
    return parity_gate_exit_code(s);
}

int cmd_gate(int argc, char **argv) {
    /* --set repeats: taken out before the table parser sees the rest */
    char **rest = malloc((size_t)(argc + 1) * sizeof *rest);
    const char **sets = malloc((size_t)(argc + 1) * sizeof *sets);
    if (!rest || !sets) {
        free(rest), free(sets);
        fprintf(stderr, "bitparity gate: out of memory\n");
        return EXIT_INTERNAL;
    }
    int n_rest = 0, n_sets = 0, rc = -1;
    for (int i = 0; i < argc && rc < 0; i++) {
        if (strcmp(argv[i], "--set")) {
            rest[n_rest++] = argv[i];
        } else if (i + 1 < argc) {
            sets[n_sets++] = argv[++i];
        } else {
            rc = cli_usage_error("gate", "--set needs NAME=VALUE");
        }
    }
    rest[n_rest] = NULL;
    const char *out = "gate-out", *shard = NULL, *script = NULL, *load = NULL;
    const char *python = getenv("BITPARITY_PYTHON");
    const char *pos[GATE_MAX_ARGS];
    int npos = 0;
    int64_t threads = 2;
    bool merge = false;
    cli_progress prog = {0};
    const cli_opt opts[] = {CLI_STR_OPT("-o", "--output", &out),
                            CLI_STR_OPT("--shard", NULL, &shard),
                            CLI_FLAG_OPT("--merge", NULL, &merge),
                            CLI_STR_OPT("--python", NULL, &python),
                            CLI_STR_OPT("--reference-script", NULL, &script),
                            CLI_STR_OPT("--load", NULL, &load),
                            CLI_THREADS_OPT(&threads),
                            CLI_PROGRESS_OPTS(&prog),
                            {0}};
    if (rc < 0) rc = cli_parse_options("gate", gate_help, n_rest, rest, opts, pos, GATE_MAX_ARGS, &npos);
    if (rc < 0) rc = cli_progress_start(&prog, "gate");
    parity_gate_opts o = {.out_dir = out, .vars = sets, .n_vars = (size_t)n_sets,
                          .python = python ? python : "/usr/bin/python3",
                          .python_script = script ? script : BITPARITY_SOURCE_DIR "/reference/bitnet_ref.py",
                          .threads = (int)threads, .cancel = cli_interrupt_flag(), .on_entry = show_entry, .user = &prog,
                          .progress = cli_progress_sink(&prog)};
    if (rc >= 0) {
    } else if (merge && (shard || n_sets || load)) {
        rc = cli_usage_error("gate", "--merge takes shard folders and -o only");
    } else if (merge && !npos) {
        rc = cli_usage_error("gate", "--merge needs the shard folders");
    } else if (!merge && npos != 1) {
        rc = cli_usage_error("gate", "give one MANIFEST.yaml");
    } else if (shard && !parity_gate_parse_shard(shard, &o.shard_index, &o.shard_count)) {
        rc = cli_usage_error("gate", "--shard '%s': expected I/N with 1 <= I <= N <= 1024", shard);
    } else {
        bn_gguf_load how;
        if ((rc = cli_parse_load("gate", load, &how)) < 0) o.map_models = how == BN_GGUF_LOAD_MMAP;
    }
    if (rc < 0) {
        bn_error err = {0};
        parity_gate_summary *s = NULL;
        bn_status st = merge ? parity_gate_merge(pos, (size_t)npos, out, &s, &err) : parity_gate_run(pos[0], &o, &s, &err);
        cli_progress_end(&prog);
        if (st) {
            rc = cli_fail("gate", &err);
        } else {
            if (!merge) st = report_gate_write(s, out, 1, &err);
            rc = st ? cli_fail("gate", &err) : finish(s, out, &err);
        }
        parity_gate_summary_free(s);
    }
    free(rest), free(sets);
    return rc;
}
