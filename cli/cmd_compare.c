/* cmd_compare.c — `bitparity compare`: two traces, tap by tap, under a policy. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "progress.h"
#include "parity/driver.h"

static const char compare_help[] =
    "usage: bitparity compare SUBJECT.npz REFERENCE.npz [--map M] [--policy NAME|FILE]\n"
    "                         [-o RECEIPT.yaml] [--format text|yaml|json] [--threads N]\n"
    "                         [--replay -m MODEL [--replay-mode block|op] [--load mmap|memory]]\n"
    "                         [--reference-model MODEL]\n\n"
    "Compares the subject trace (the stack under test) with the reference trace, tap by tap in\n"
    "evaluation order, after checking that both were given the same tokens. Prints the first\n"
    "divergence, counts, the worst taps and the logits summary (text), or the receipt.\n\n"
    "  --map M         tap map for the reference: bitnet.cpp, llama.cpp, canonical or a YAML file\n"
    "                  (default: chosen from each trace's meta.yaml producer and layout)\n"
    "  --policy P      built-in policy (exact, ggml-compat, reference, cross-backend, quantized) or a\n"
    "                  policy file (default: chosen from the two producers, named in the output)\n"
    "  -o FILE         write the receipt (YAML; JSON when FILE ends in .json)\n"
    "  --format F      stdout: text (default), yaml or json (the receipt)\n"
    "  --threads N     worker threads, 1..256 (default 2); results do not depend on N\n"
    "  --replay        re-run bitparity's engine on MODEL (with the subject's numerics and fault)\n"
    "                  injecting the reference's values: block mode starts every block from the\n"
    "                  reference's residual stream and classifies each failing block's error as\n"
    "                  local or inherited; op mode injects every tap and names the op where the\n"
    "                  error is born (default block). Only for a subject bitparity recorded from\n"
    "                  MODEL: another engine's trace is refused (the verdict would be about ours)\n"
    CLI_LOAD_HELP_18
    "  -m MODEL        the subject's model: for --replay, lets the hints recompute projections, and\n"
    "                  gives the receipt its model.hparams, model.tensors and model.tokenizer_sha256\n"
    "  --reference-model MODEL  the reference's model: the hints also test the subject against the\n"
    "                  classic export bugs applied to its weights (docs/hints.md)\n"
    CLI_PROGRESS_HELP "\n"
    "Hints (named diagnoses with their numbers) are printed and written to the receipt.\n\n"
    "exit: 0 pass, 1 parity failure (or tokens differ), 2 usage or input error, 130 interrupted\n";

typedef cli_compare_args compare_args;

/* ---- text ------------------------------------------------------------------------- */

static void print_side(const char *label, const parity_trace *t, const parity_tapmap *m) {
    const char *name = parity_trace_get(t, "producer.name"), *num = parity_trace_get(t, "settings.numerics");
    const char *fault = parity_trace_get(t, "settings.fault");
    printf("  %-10s %s\n  %-10s %s%s%s, %s layout, map %s%s%s, %lld evaluation(s)\n", label, parity_trace_path(t), "",
           name ? name : "?", num ? " " : "", num ? num : "", parity_trace_layout_name(parity_trace_layout(t)),
           parity_tapmap_name(m), fault && strcmp(fault, "none") ? ", fault " : "",
           fault && strcmp(fault, "none") ? fault : "", (long long)parity_trace_eval_count(t));
}

/* The k compared taps with the largest NMSE, in decreasing order. */
static void print_worst(const parity_compare_result *r, size_t k) {
    size_t *best = calloc(k, sizeof *best), n = 0;
    if (!best) return;
    for (size_t i = 0; i < r->n_taps; i++) {
        const parity_tap_result *t = &r->taps[i];
        if ((t->status != PARITY_TAP_PASS && t->status != PARITY_TAP_FAIL) || !(t->m.nmse > 0)) continue;
        size_t at = n < k ? n++ : k;
        while (at > 0 && r->taps[best[at - 1]].m.nmse < t->m.nmse) {
            if (at < k) best[at] = best[at - 1];
            at--;
        }
        if (at < k) best[at] = i;
    }
    if (n) printf("worst taps (by nmse):\n");
    for (size_t i = 0; i < n; i++) {
        const parity_tap_result *t = &r->taps[best[i]];
        printf("  e%-3lld %-26s %-5s nmse %-10.3g cosine %-12.9g max_abs %-10.3g scale %.6g\n", (long long)t->eval,
               t->name, parity_tap_status_name(t->status), t->m.nmse, t->m.cosine, t->m.max_abs, t->m.scale);
    }
    free(best);
}

static void print_logits(const parity_compare_result *r) {
    int any = 0;
    for (size_t i = 0; i < r->n_evals; i++) {
        const parity_eval_result *e = &r->evals[i];
        if (!e->has_logits) continue;
        if (!any++) printf("logits:\n");
        const parity_logits_summary *l = &e->logits;
        printf("  %-4s %3zu position(s)  top1 %5.1f%%  top5 %5.1f%%  kld mean %.3g p99 %.3g max %.3g\n", e->id, l->n_pos,
               100 * l->top1_agree, 100 * l->top5_overlap, l->kld_mean, l->kld_p99, l->kld_max);
    }
}

static void print_text(const parity_driver_run *s) {
    const parity_compare_result *r = s->result;
    const parity_compare_counts *n = &r->counts;
    printf("bitparity compare: %s\n", r->pass ? "PASS" : "FAIL");
    print_side("subject", s->trace[0], s->map[0]);
    print_side("reference", s->trace[1], s->map[1]);
    printf("  %-10s %s (%s)\n", "policy", parity_policy_name(s->policy), s->policy_choice);
    printf("  %-10s %zu compared (subject %lld, reference %lld)\n", "evals", r->n_evals, (long long)r->n_evals_subject,
           (long long)r->n_evals_reference);
    printf("  %-10s %lld compared: %lld pass (%lld bit-identical), %lld fail, %lld shape mismatch;\n"
           "  %-10s %lld only in subject, %lld only in reference, %lld skipped by policy\n",
           "taps", (long long)n->compared, (long long)n->pass, (long long)n->bit_identical, (long long)n->fail,
           (long long)n->shape_mismatch, "", (long long)n->missing_reference, (long long)n->missing_subject,
           (long long)n->policy_skip);
    if (r->diagnosis[0]) printf("  %-10s %s\n", "diagnosis", r->diagnosis);
    for (size_t i = 0; i < r->n_accepted; i++)
        printf("  %-10s %s (the policy accepts it)\n", "accepted", r->accepted[i]);
    if (r->first.found) {
        printf("first divergence: e%lld %s", (long long)r->first.eval, r->first.tap);
        if (r->first.layer >= 0) printf(" (layer %d)", r->first.layer);
        if (!strcmp(r->first.metric, "shape")) printf(": shape mismatch\n");
        else printf(": %s = %.6g, limit %.6g\n", r->first.metric, r->first.value, r->first.limit);
    }
    for (size_t i = 0; i < r->n_hints; i++) printf("hint: %s: %s (%s)\n", r->hints[i].name, r->hints[i].message, r->hints[i].evidence);
    if (s->arbiter) {
        printf("arbiter: %s\n", s->arbiter->summary);
        printf("  what this shows: %s\n", s->arbiter->shows);
    }
    print_worst(r, 5);
    print_logits(r);
}

/* ---- main ------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* The receipt to -o (JSON when the name ends in .json) and to stdout for
 * --format yaml|json (fmt_stdout >= 0). */
static bn_status write_receipts(const compare_args *a, const parity_receipt *rc, int fmt_stdout, bn_error *err) {
    bn_status st = BN_OK;
    if (a->out) st = parity_receipt_save(rc, ends_with(a->out, ".json") ? PARITY_RECEIPT_JSON : PARITY_RECEIPT_YAML, a->out, err);
    if (!st && fmt_stdout >= 0) st = parity_receipt_emit(rc, (parity_receipt_format)fmt_stdout, stdout, err);
    return st;
}

/* The interpreter for --arbiter python: --python, else /usr/bin/python3,
 * else python3 on PATH (the CLI, not the library, reads the environment). */
static const char *find_python(const char *given, char *buf, size_t size) {
    if (given) return given;
    if (!access("/usr/bin/python3", X_OK)) return "/usr/bin/python3";
    const char *path = getenv("PATH");
    while (path && *path) {
        const size_t n = strcspn(path, ":");
        snprintf(buf, size, "%.*s/python3", (int)n, path);
        if (n && !access(buf, X_OK)) return buf;
        path += n + (path[n] == ':');
    }
    return "/usr/bin/python3"; /* the arbiter then says it cannot run it */
}

int cli_compare_run(const cli_compare_args *args) {
    compare_args a = *args;
    int fmt = !strcmp(a.format, "text") ? -1 : !strcmp(a.format, "yaml") ? PARITY_RECEIPT_YAML
              : !strcmp(a.format, "json")                              ? PARITY_RECEIPT_JSON
                                                                       : -2;
    if (fmt == -2) return cli_usage_error(a.cmd, "--format '%s': expected text, yaml or json", a.format);
    if (a.replay && !a.model) return cli_usage_error(a.cmd, "--replay needs -m MODEL (the subject's model)");
    if (a.replay_mode && strcmp(a.replay_mode, "block") && strcmp(a.replay_mode, "op"))
        return cli_usage_error(a.cmd, "--replay-mode '%s': expected block or op", a.replay_mode);
    if (a.arbiter && strcmp(a.arbiter, "python"))
        return cli_usage_error(a.cmd, "--arbiter '%s': expected python (the independent reference)", a.arbiter);
    if (!a.arbiter && (a.python || a.arbiter_script))
        return cli_usage_error(a.cmd, "--python and --arbiter-script go with --arbiter python");
    bn_gguf_load load;
    const int load_rc = cli_parse_load(a.cmd, a.load, &load);
    if (load_rc >= 0) return load_rc;
    char python[4096];
    const char *tmp = getenv("TMPDIR");
    const parity_arbiter_opts arbiter = {.python = find_python(a.python, python, sizeof python),
                                         .script = a.arbiter_script ? a.arbiter_script : BITPARITY_REFERENCE_SCRIPT,
                                         .tmp_dir = tmp && *tmp ? tmp : "/tmp", .cancel = cli_interrupt_flag()};
    const parity_driver_opts o = {
        .subject = a.subject, .reference = a.reference, .map = a.map, .policy = a.policy, .model = a.model,
        .reference_model = a.reference_model, .replay = a.replay, .replay_mode = a.replay_mode && !strcmp(a.replay_mode, "op") ? PARITY_REPLAY_OP
                                                                                          : PARITY_REPLAY_BLOCK,
        .threads = (int)a.threads, .map_model = load == BN_GGUF_LOAD_MMAP, .receipt = a.out || fmt >= 0,
        .numerics = a.numerics, .kv_cache = a.kv_type, .taps = a.taps, .record_path = a.record_path, .fault = a.fault,
        .arbiter = a.arbiter ? &arbiter : NULL,
        .cancel = cli_interrupt_flag(), .progress = a.progress ? cli_progress_sink(a.progress) : (bn_progress_sink){0}};
    bn_error err = {0};
    parity_driver_run *run = NULL;
    bn_status st = parity_driver_run_job(&o, &run, &err);
    if (a.progress) cli_progress_end(a.progress);
    if (!st && run->receipt) st = write_receipts(&a, run->receipt, fmt, &err);
    if (!st && fmt < 0) print_text(run);
    int code = st ? cli_fail(a.cmd, &err) : run->result->pass ? 0 : EXIT_PARITY;
    parity_driver_run_free(run);
    return code;
}

int cmd_compare(int argc, char **argv) {
    compare_args a = {.cmd = "compare", .format = "text", .threads = 2};
    cli_progress prog = {0};
    const char *pos[2];
    int npos = 0;
    const cli_opt opts[] = {CLI_STR_OPT("--map", NULL, &a.map),
                            CLI_STR_OPT("--policy", NULL, &a.policy),
                            CLI_STR_OPT("-o", "--output", &a.out),
                            CLI_STR_OPT("--format", NULL, &a.format),
                            CLI_THREADS_OPT(&a.threads),
                            CLI_FLAG_OPT("--replay", NULL, &a.replay),
                            CLI_STR_OPT("-m", "--model", &a.model),
                            CLI_STR_OPT("--replay-mode", NULL, &a.replay_mode),
                            CLI_STR_OPT("--load", NULL, &a.load),
                            CLI_STR_OPT("--reference-model", NULL, &a.reference_model),
                            CLI_PROGRESS_OPTS(&prog),
                            {0}};
    int rc = cli_parse_options("compare", compare_help, argc, argv, opts, pos, 2, &npos);
    if (rc >= 0 || (rc = cli_progress_start(&prog, "compare")) >= 0) return rc;
    a.progress = &prog;
    if (npos != 2) return cli_usage_error("compare", "give SUBJECT.npz and REFERENCE.npz");
    a.subject = pos[0];
    a.reference = pos[1];
    return cli_compare_run(&a);
}
