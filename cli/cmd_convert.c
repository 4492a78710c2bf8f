/* cmd_convert.c — `bitparity convert <kind> <input> -o <output.gguf>`:
 * foreign model/vocabulary files to GGUF. One row of `kinds` per format. */
#include <stdio.h>
#include <string.h>

#include "bitnet/convert.h"
#include "bitnet/tokenizer.h"
#include "commands.h"

typedef struct convert_kind {
    const char *name;
    const char *summary; /* one line for --help */
    int n_inputs;        /* input files after the kind */
    const char *inputs;  /* their names, for the usage line */
    /* Converts in[] -> out; prints its own one-line result summary to stdout. */
    bn_status (*run)(const char *const *in, const char *out, bn_error *err);
} convert_kind;

static bn_status run_llama2c(const char *const *in, const char *out, bn_error *err) {
    bn_status st = bn_llama2c_convert(in[0], in[1], out, cli_interrupt_flag(), err);
    if (st == BN_OK) printf("%s: llama2.c checkpoint %s with vocabulary %s\n", out, in[0], in[1]);
    return st;
}

static bn_status run_tiktoken(const char *const *in_files, const char *out, bn_error *err) {
    const char *in = in_files[0];
    bn_tiktoken_stats s;
    bn_status st = bn_tiktoken_convert(in, out, &s, cli_interrupt_flag(), err);
    if (st == BN_OK)
        printf("%s: %lld tokens (%lld ranks + %lld special), %lld merges\n", out,
               (long long)(s.n_ranks + s.n_special), (long long)s.n_ranks, (long long)s.n_special,
               (long long)s.n_merges);
    return st;
}

static const convert_kind kinds[] = {
    {"tiktoken", "tiktoken rank file (LLaMA-3 / BitNet 2B-4T tokenizer.model) -> vocabulary-only GGUF", 1,
     "TOKENIZER.model", run_tiktoken},
    {"llama2c", "llama2.c checkpoint + tokenizer.bin -> llama-arch GGUF (F32, SentencePiece-style vocabulary)", 2,
     "CHECKPOINT.bin TOKENIZER.bin", run_llama2c},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitparity convert <kind> <input...> -o <output.gguf>\n\n"
            "Converts foreign files to GGUF. Kinds:\n");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        fprintf(f, "  %-10s %s\n             bitparity convert %s %s -o OUT.gguf\n", kinds[i].name, kinds[i].summary,
                kinds[i].name, kinds[i].inputs);
    fprintf(f,
            "\noptions:\n"
            "  -o, --output FILE   the GGUF to write (required; it appears only when complete, an\n"
            "                      older FILE stays as it was on an error or an interrupt)\n"
            "  -h, --help          this help\n"
            "\nexit codes: 0 ok, 2 usage or input error, 3 internal error, 130 interrupted\n");
}

int cmd_convert(int argc, char **argv) {
    const char *pos[3] = {NULL, NULL, NULL}, *out = NULL;
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (!(out = cli_option_value("convert", argc, argv, &i))) return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("convert", "unknown option '%s'", argv[i]);
        } else if (n_pos < 3) {
            pos[n_pos++] = argv[i];
        } else {
            return cli_usage_error("convert", "unexpected argument '%s'", argv[i]);
        }
    }
    if (n_pos < 2) return cli_usage_error("convert", "needs a kind and an input file");
    if (!out) return cli_usage_error("convert", "needs -o <output.gguf>");
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (strcmp(pos[0], kinds[k].name)) continue;
        if (n_pos - 1 != kinds[k].n_inputs)
            return cli_usage_error("convert", "%s takes %s", kinds[k].name, kinds[k].inputs);
        bn_error err;
        bn_error_clear(&err);
        return kinds[k].run(pos + 1, out, &err) == BN_OK ? 0 : cli_fail("convert", &err);
    }
    return cli_usage_error("convert", "unknown kind '%s'", pos[0]);
}
