/* commands.h — the subcommands of the bitparity binary and the small helpers
 * they share (argument parsing, error printing). Each subcommand lives in
 * cli/cmd_<name>.c and returns the process exit code:
 * 0 ok/pass, 1 parity failure or lint finding, 2 usage or input error,
 * 3 internal error, 130 interrupted (SIGINT/SIGTERM: see interrupt.c). */
#ifndef BITPARITY_CLI_COMMANDS_H
#define BITPARITY_CLI_COMMANDS_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bitnet/model.h"
#include "bitnet/status.h"
#include "bitnet/threads.h"
#include "bitnet/tokenizer.h"

#define EXIT_PARITY 1
#define EXIT_USAGE 2
#define EXIT_INTERNAL 3
#define EXIT_INTERRUPTED 130 /* = bn_status_exit_code(BN_ERR_CANCELLED) */

typedef int (*cli_command_fn)(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    cli_command_fn run;
    const char *summary; /* one line for `bitparity --help` */
} cli_command;

int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_lint(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_convert(int argc, char **argv);

int cmd_run(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_gate(int argc, char **argv);

/* Installs the SIGINT/SIGTERM handlers (interrupt.c) unless the signal is
 * ignored; main does it once, before any command runs. */
void cli_interrupt_install(void);
/* The flag the handlers set: pass it as `cancel` to the libraries. */
const volatile sig_atomic_t *cli_interrupt_flag(void);

/* Table-driven option parsing shared by the subcommands. Every numeric
 * option carries its accepted range, so each command checks its values in
 * one place and says the range when a value is outside it. */
typedef enum cli_opt_kind { CLI_FLAG, CLI_STR, CLI_INT, CLI_FLOAT } cli_opt_kind;
typedef struct cli_opt {
    const char *name;  /* "--temp" */
    const char *alias; /* "-t" or NULL */
    cli_opt_kind kind;
    void *dst;         /* bool*, const char**, int64_t*, double* */
    int64_t imin, imax; /* CLI_INT: accepted values imin..imax (both included) */
    double fmin, fmax;  /* CLI_FLOAT: accepted values between fmin and fmax (INFINITY: unbounded) */
    bool fmin_open, fmax_open; /* CLI_FLOAT: that end excluded */
} cli_opt;
/* The rows of an option table: CLI_STR_OPT("-m", "--model", &path),
 * CLI_INT_OPT("--decode", NULL, &n, 0, 4096) accepts 0..4096,
 * CLI_FLOAT_OPT("--top-p", NULL, &p, 0, 1, true, false) accepts (0, 1]. */
#define CLI_FLAG_OPT(n, a, d) {.name = (n), .alias = (a), .kind = CLI_FLAG, .dst = (d)}
#define CLI_STR_OPT(n, a, d) {.name = (n), .alias = (a), .kind = CLI_STR, .dst = (d)}
#define CLI_INT_OPT(n, a, d, lo, hi) {.name = (n), .alias = (a), .kind = CLI_INT, .dst = (d), .imin = (lo), .imax = (hi)}
#define CLI_FLOAT_OPT(n, a, d, lo, hi, lo_open, hi_open)                                                          \
    {.name = (n), .alias = (a), .kind = CLI_FLOAT, .dst = (d), .fmin = (lo), .fmax = (hi), .fmin_open = (lo_open), \
     .fmax_open = (hi_open)}
/* The range of worker threads every command accepts. */
#define CLI_THREADS_OPT(dst) CLI_INT_OPT("--threads", "-t", (dst), 1, BN_POOL_MAX_THREADS)
/* Parses argv[1..] against opts (terminated by {0}); other words go to
 * positional[] (at most max_positional). A numeric value outside its range
 * is a usage error naming the range ("--threads 0: must be 1..256"); "expected
 * an integer / a number" is kept for words that are no number. Returns -1 to
 * go on, or the exit code to return now (0 after printing help, EXIT_USAGE
 * after an error). */
int cli_parse_options(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts,
                      const char **positional, int max_positional, int *n_positional);

/* The comparison `compare` and `check` share (parity_driver_run_job): traces,
 * map, policy, hints, optional replay, text or receipt output. Returns the
 * exit code. */
typedef struct cli_compare_args {
    const char *cmd; /* for messages: "compare" or "check" */
    const char *subject, *reference, *map, *policy, *out, *format, *model, *replay_mode;
    const char *numerics, *taps, *record_path; /* check: subject NULL, the engine is recorded (kept in record_path when set) */
    const char *kv_type;                       /* check: the engine's K/V cache; NULL: the reference's */
    const char *reference_model;               /* the reference's model, for the weight-aware hints */
    const char *fault;                         /* check: a seeded bug the engine records with; NULL: none */
    const char *arbiter, *python, *arbiter_script; /* check --arbiter python [--python P] [--arbiter-script S] */
    const char *load;                          /* --load: where an evaluated model lives; NULL: memory */
    int64_t threads;
    bool replay;
    struct cli_progress *progress; /* --progress/--quiet (cli/progress.h); NULL: none */
} cli_compare_args;
int cli_compare_run(const cli_compare_args *a);

/* Loads a model and its tokenizer (both or neither), the file's bytes placed
 * as `how` says (--load). */
bn_status cli_load_model(const char *path, bn_gguf_load how, bn_model **m, bn_tokenizer **tok, bn_error *err);
/* --load S of command cmd: *out = BN_GGUF_LOAD_MMAP or _MEMORY (S NULL:
 * memory, the default). Returns -1 when S is valid, else prints the usage
 * error and returns EXIT_USAGE. */
int cli_parse_load(const char *cmd, const char *s, bn_gguf_load *out);
/* --load's lines in a command's --help, its text after PAD (spaces to the
 * help's column) and continued at INDENT. */
#define CLI_LOAD_HELP_AT(PAD, INDENT)                                                                              \
    "  --load L" PAD "where the weights live: memory (default: the file read into memory, huge pages\n"          \
    INDENT "where the kernel gives them) or mmap (the file mapped: starts at once and shares the\n"              \
    INDENT "page cache, but a large model evaluates ~30 % slower); the same results bit for bit\n"
/* ... at column 16 (run) and 18 (trace, compare, check); perplexity's 20 is spelled out there */
#define CLI_LOAD_HELP CLI_LOAD_HELP_AT("      ", "                ")
#define CLI_LOAD_HELP_18 CLI_LOAD_HELP_AT("        ", "                  ")
/* --lm-head: NULL or "stored" -> 0 (the file's own lm_head), "q8_0" ->
 * BN_TYPE_Q8_0. Returns -1 when parsed, else the usage exit code. */
int cli_parse_lm_head(const char *cmd, const char *s, uint32_t *type);
/* Requantizes m's lm_head to `type` (0: nothing to do) on `threads` threads
 * (bn_model_requantize_lm_head), the file path prefixed to any error. */
bn_status cli_requantize_lm_head(bn_model *m, const char *path, uint32_t type, int64_t threads, bn_error *err);
#define CLI_LM_HEAD_HELP_AT(PAD, INDENT)                                                                           \
    "  --lm-head T" PAD "stored (default) or q8_0: the lm_head requantized to Q8_0 once loaded, an explicit\n"  \
    INDENT "trade (a 2B-4T token reads 0.87 GB, not 1.18): logits differ by Q8_0's rounding, so\n"              \
    INDENT "not bitnet.cpp's bits; recorded (settings.lm_head in a trace)\n"
#define CLI_LM_HEAD_HELP CLI_LM_HEAD_HELP_AT("   ", "                ")
/* Token ids of the prompt: --tokens as given (no BOS), else -p TEXT
 * tokenized with BOS as the vocabulary says (--chat: the BitNet chat
 * template, specials parsed), else BOS alone. *ids is malloc'ed. */
bn_status cli_prompt_tokens(const bn_tokenizer *tok, const char *text, const char *tokens, bool chat,
                            int32_t **ids, int64_t *n, bn_error *err);

/* Prints "bitparity <cmd>: <err.msg>" to stderr and returns the exit code of
 * the status. */
int cli_fail(const char *cmd, const bn_error *err);
/* Prints "bitparity <cmd>: <message>" and "try 'bitparity <cmd> --help'" and
 * returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* True when argv[i] is -h or --help. */
bool cli_is_help(const char *arg);
/* Parses a whole decimal integer / finite float; false on junk or overflow. */
bool cli_parse_i64(const char *s, int64_t *out);
bool cli_parse_f64(const char *s, double *out);
/* Parses "1,2,3" into a malloc'ed array (caller frees); false on junk. */
bool cli_parse_id_list(const char *s, int32_t **ids, int64_t *n);
/* The value of an option taking an argument at argv[*i]; advances *i.
 * Returns NULL (after printing a usage error) when it is missing. */
const char *cli_option_value(const char *cmd, int argc, char **argv, int *i);

#endif
