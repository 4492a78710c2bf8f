/* cmd_diff.c — `bitparity diff OLD.gguf NEW.gguf`: metadata, tensors (with
 * the relation found) and activation parity of two exports
 * (parity/model_diff.h); exit 0 equivalent, 1 not, 2 input error. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/quant.h"
#include "bitnet/tokenizer.h"
#include "commands.h"
#include "parity/doc.h"
#include "parity/model_diff.h"

static const char diff_help[] =
    "usage: bitparity diff OLD.gguf NEW.gguf [--tokens IDS | -p TEXT] [-o RECEIPT.yaml]\n"
    "                      [--format text|yaml|json] [--policy NAME] [--threads N]\n\n"
    "What changed between two exports of a model, and whether it matters:\n"
    "  metadata     keys added, removed or changed\n"
    "  tensors      added, removed, type or shape changed; every tensor whose values differ is\n"
    "               compared after dequantization (parity metrics of NEW against OLD) and the\n"
    "               relation found is named: equal, scaled (by c), sign-flipped, transposed,\n"
    "               mis-strided (OLD^T's data under OLD's shape), qk-permuted / qk-unpermuted (HF's\n"
    "               permute within heads, or its inverse), re-packed (I2_S codes 4 per byte in order),\n"
    "               re-encoded (another type), per-channel-ratio (1-D), different\n"
    "  activations  both models run by the engine on the same tokens, NEW compared with OLD tap by\n"
    "               tap under a policy (first divergence, hints); skipped, saying why, when the\n"
    "               engine cannot bind one of them\n\n"
    "  --tokens IDS     comma-separated token ids (default: the tokens of \"The quick brown fox\n"
    "                   jumps over the lazy dog.\" by OLD's vocabulary, else NEW's)\n"
    "  -p TEXT          a prompt instead\n"
    "  -o FILE          write the receipt (YAML, or JSON when FILE ends in .json) atomically\n"
    "  --format F       stdout: text (default), yaml or json\n"
    "  --policy NAME    built-in policy of the activation comparison (default: as compare chooses:\n"
    "                   exact for two models of one weight type, quantized across types)\n"
    "  --threads N      worker threads (default 2)\n\n"
    "Exit: 0 equivalent (activations pass; when they cannot run: identical metadata and tensor\n"
    "values), 1 not equivalent, 2 usage or input error (unreadable or invalid GGUF).\n";

#define DEFAULT_PROMPT "The quick brown fox jumps over the lazy dog."

/* Prompt tokens from OLD's vocabulary, else NEW's; none when neither binds
 * (the activation part is then skipped anyway). */
static bn_status prompt_tokens(const char *paths[2], const char *text, const char *tokens, int32_t **ids, int64_t *n,
                               bn_error *err) {
    *ids = NULL, *n = 0;
    if (tokens) return cli_prompt_tokens(NULL, NULL, tokens, false, ids, n, err);
    for (int s = 0; s < 2; s++) {
        bn_model *m;
        bn_tokenizer *tok;
        bn_error e;
        if (cli_load_model(paths[s], BN_GGUF_LOAD_MMAP, &m, &tok, &e)) continue;
        bn_status st = cli_prompt_tokens(tok, text ? text : DEFAULT_PROMPT, NULL, false, ids, n, err);
        bn_tokenizer_free(tok);
        bn_model_free(m);
        return st;
    }
    return BN_OK;
}

static void print_text(const parity_model_diff *d) {
    printf("old: %s (sha256 %.16s...)\nnew: %s (sha256 %.16s...)\n", d->path[0], d->sha256[0], d->path[1], d->sha256[1]);
    printf("metadata: %zu difference(s)\n", d->n_kv);
    for (size_t i = 0; i < d->n_kv; i++) {
        const parity_kv_diff *k = &d->kv[i];
        if (k->change == PARITY_DIFF_ADDED) printf("  + %s = %s\n", k->key, k->new_value);
        else if (k->change == PARITY_DIFF_REMOVED) printf("  - %s = %s\n", k->key, k->old_value);
        else printf("  ~ %s: %s -> %s\n", k->key, k->old_value, k->new_value);
    }
    printf("tensors: %" PRId64 " in OLD, %" PRId64 " in NEW, %" PRId64 " identical, %zu difference(s)\n", d->n_tensor[0],
           d->n_tensor[1], d->n_identical, d->n_tensors);
    for (size_t i = 0; i < d->n_tensors; i++) {
        const parity_tensor_diff *t = &d->tensors[i];
        if (t->change == PARITY_DIFF_ADDED) printf("  + %s (%s)\n", t->name, bn_type_name(t->type[1]));
        else if (t->change == PARITY_DIFF_REMOVED) printf("  - %s (%s)\n", t->name, bn_type_name(t->type[0]));
        else printf("  ~ %s: %s: %s\n", t->name, parity_weight_relation_name(t->relation), t->detail);
    }
    if (!d->act_ran) {
        printf("activations: skipped: %s\n", d->act_skipped);
    } else {
        printf("activations: %s under policy %s (%" PRId64 " of %" PRId64 " taps pass)\n", d->act->pass ? "pass" : "FAIL",
               d->policy, d->act->counts.pass, d->act->counts.compared);
        if (d->act->first.found)
            printf("  first divergence: e%" PRId64 " %s (%s %.4g > %.4g)\n", d->act->first.eval, d->act->first.tap,
                   d->act->first.metric, d->act->first.value, d->act->first.limit);
        for (size_t i = 0; i < d->act->n_hints; i++)
            if (strcmp(d->act->hints[i].name, PARITY_DIFF_SAID_HINT))
                printf("  hint %s: %s [%s]\n", d->act->hints[i].name, d->act->hints[i].message, d->act->hints[i].evidence);
    }
    printf("verdict: %s\n", d->verdict);
}

int cmd_diff(int argc, char **argv) {
    const char *pos[2], *tokens = NULL, *prompt = NULL, *out = NULL, *format = "text", *policy = NULL;
    int64_t threads = 2;
    int npos = 0;
    const cli_opt opts[] = {CLI_STR_OPT("--tokens", NULL, &tokens), CLI_STR_OPT("-p", "--prompt", &prompt),
                            CLI_STR_OPT("-o", "--output", &out),    CLI_STR_OPT("--format", NULL, &format),
                            CLI_STR_OPT("--policy", NULL, &policy), CLI_THREADS_OPT(&threads),
                            {0}};
    int rc = cli_parse_options("diff", diff_help, argc, argv, opts, pos, 2, &npos);
    if (rc >= 0) return rc;
    if (npos != 2) return cli_usage_error("diff", "give OLD.gguf and NEW.gguf");
    if (tokens && prompt) return cli_usage_error("diff", "give --tokens or -p, not both");
    if (strcmp(format, "text") && strcmp(format, "yaml") && strcmp(format, "json"))
        return cli_usage_error("diff", "--format '%s': expected text, yaml or json", format);
    bn_error err;
    int32_t *ids = NULL;
    int64_t n = 0;
    bn_status st = prompt_tokens(pos, prompt, tokens, &ids, &n, &err);
    if (st) return cli_fail("diff", &err);
    const parity_model_diff_opts o = {.old_path = pos[0], .new_path = pos[1], .tokens = ids, .n_tokens = n,
                                      .policy = policy, .threads = (int)threads, .cancel = cli_interrupt_flag()};
    parity_model_diff *d = NULL;
    st = parity_model_diff_run(&o, &d, &err);
    free(ids);
    if (st) return cli_fail("diff", &err);
    parity_doc_builder b = {0};
    parity_doc_node *root = NULL;
    if (out || strcmp(format, "text")) {
        root = parity_doc_root(&b);
        parity_model_diff_to_doc(d, &b, root);
        if (b.oom) st = bn_error_nomem(&err, b.oom_bytes, "diff: the receipt");
    }
    if (!st && out) {
        const size_t len = strlen(out);
        const bool json = len > 5 && !strcmp(out + len - 5, ".json");
        st = parity_doc_save(root, json ? PARITY_DOC_JSON : PARITY_DOC_YAML, out, &err);
    }
    if (!st && strcmp(format, "text"))
        st = parity_doc_emit(root, !strcmp(format, "json") ? PARITY_DOC_JSON : PARITY_DOC_YAML, stdout, &err);
    else if (!st)
        print_text(d);
    parity_doc_free(root);
    const int code = st ? cli_fail("diff", &err) : d->equivalent ? 0 : EXIT_PARITY;
    parity_model_diff_free(d);
    return code;
}
