/* main.c — `bitparity`: git-style subcommands dispatched from one table. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const cli_command commands[] = {
    {"run", cmd_run, "generate text or token ids from a prompt"},
    {"trace", cmd_trace, "record the engine's taps for a prompt and decode steps into a trace (.npz)"},
    {"compare", cmd_compare, "compare two traces tap by tap under a policy: first divergence, receipt"},
    {"check", cmd_check, "trace the engine with a reference trace's tokens and settings, then compare"},
    {"gate", cmd_gate, "run a manifest of parity and perplexity gates (shardable): receipts and a summary"},
    {"report", cmd_report, "render receipts as an HTML page (inline SVG plots) or Markdown for CI"},
    {"perplexity", cmd_perplexity, "perplexity of a model on a text, and KL-divergence against base logits"},
    {"inspect", cmd_inspect, "show a GGUF model: hyper-parameters, tokenizer, metadata, tensors, stats"},
    {"lint", cmd_lint, "check a GGUF export for converter bugs (norms, I2_S codes, shapes, metadata)"},
    {"diff", cmd_diff, "compare two GGUF models: metadata, tensors (the relation found) and activations"},
    {"convert", cmd_convert, "convert foreign files to GGUF (llama2.c checkpoints, tiktoken vocabularies)"},
    {"synth", cmd_synth, "write a small deterministic BitNet model (the demo's and the fixtures')"},
};

static void print_help(FILE *f) {
    fprintf(f,
            "bitparity %s — find where and why a BitNet b1.58 inference stack stops agreeing\n"
            "with its reference.\n\n"
            "usage: bitparity <command> [options]   (bitparity <command> --help for each)\n\n"
            "commands:\n",
            BITPARITY_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nexit codes: 0 ok/pass, 1 parity failure or lint finding, 2 usage or input error,\n"
            "            3 internal error, 130 interrupted (SIGINT or SIGTERM)\n\n"
            "Files are written to a temporary name in their folder and renamed when complete: an\n"
            "error or an interrupt leaves no partial output and an older file of that name intact.\n"
            "The same signal a second time, during that clean-up, ends the process at once.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    if (cli_is_help(argv[1])) {
        print_help(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("bitparity %s (%s)\n", BITPARITY_VERSION, BITPARITY_COMMIT);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            cli_interrupt_install();
            return commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "bitparity: unknown command '%s' (see 'bitparity --help')\n", argv[1]);
    return EXIT_USAGE;
}
