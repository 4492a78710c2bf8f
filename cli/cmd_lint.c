/* cmd_lint.c — `bitparity lint MODEL`: the export rules of parity/lint.h
 * (docs/lint.md) as text, YAML or JSON; exit 1 on an error-level finding. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "parity/doc.h"
#include "parity/lint.h"

static const char lint_help[] =
    "usage: bitparity lint MODEL.gguf [--format text|yaml|json] [--rules]\n\n"
    "Checks a GGUF export for the classic converter bugs: quantized norms, I2_S scales, codes and\n"
    "layout, shapes against the hyper-parameters, rope dimension, vocabulary size, tokenizer.ggml.pre,\n"
    "a `bitnet` arch without hidden_activation (SiLU runs), unused tensors, norm gammas. Reads the\n"
    "file itself, so it also works on files the engine refuses. Every finding has a stable rule id,\n"
    "a severity and one line naming the tensor or key (docs/lint.md).\n\n"
    "  --format F   text (default), yaml or json\n"
    "  --rules      list the rules (id, severity, what they check) and exit\n\n"
    "Exit: 0 no error-level finding, 1 an error-level finding, 2 unreadable or invalid GGUF.\n";

int cmd_lint(int argc, char **argv) {
    const char *format = "text", *pos[1];
    bool list = false;
    int npos = 0;
    const cli_opt opts[] = {CLI_STR_OPT("--format", NULL, &format), CLI_FLAG_OPT("--rules", NULL, &list), {0}};
    int rc = cli_parse_options("lint", lint_help, argc, argv, opts, pos, 1, &npos);
    if (rc >= 0) return rc;
    if (strcmp(format, "text") && strcmp(format, "yaml") && strcmp(format, "json"))
        return cli_usage_error("lint", "--format '%s': expected text, yaml or json", format);
    if (list) {
        size_t n;
        const parity_lint_rule *r = parity_lint_rules(&n);
        for (size_t i = 0; i < n; i++)
            printf("%-22s %-8s %s\n", r[i].id, parity_lint_severity_name(r[i].severity), r[i].summary);
        return 0;
    }
    if (npos != 1) return cli_usage_error("lint", "give one MODEL.gguf");
    bn_error err;
    parity_lint_result *res;
    bn_status st = parity_lint_file(pos[0], cli_interrupt_flag(), &res, &err);
    if (st) return cli_fail("lint", &err);
    if (!strcmp(format, "text")) {
        for (size_t i = 0; i < res->n; i++)
            printf("%-7s %-22s %s\n", parity_lint_severity_name(res->findings[i].rule->severity),
                   res->findings[i].rule->id, res->findings[i].message);
        printf("%s: %zu error(s), %zu warning(s), %zu info\n", res->path, res->count[PARITY_LINT_ERROR],
               res->count[PARITY_LINT_WARNING], res->count[PARITY_LINT_INFO]);
    } else {
        parity_doc_builder b = {0};
        parity_doc_node *root = parity_doc_root(&b);
        parity_lint_to_doc(res, &b, root);
        st = b.oom ? bn_error_nomem(&err, b.oom_bytes, "lint: the document")
                   : parity_doc_emit(root, !strcmp(format, "json") ? PARITY_DOC_JSON : PARITY_DOC_YAML, stdout, &err);
        parity_doc_free(root);
    }
    const int code = st ? cli_fail("lint", &err) : res->count[PARITY_LINT_ERROR] ? EXIT_PARITY : 0;
    parity_lint_result_free(res);
    return code;
}
