/* fuzz_cli_args.c — libFuzzer target for the CLI's option and number
 * parsing (cli/args.c): the input, split at NUL bytes, is an argv for a
 * table with every option kind. Whatever the words, cli_parse_options must
 * return go-on (-1), help (0) or EXIT_USAGE; on go-on every value obeys its
 * option (integers >= min, finite floats, positionals within bounds and
 * never an option). Each word also goes through cli_parse_i64 and
 * cli_parse_f64: an accepted integer prints and parses back to itself, a
 * plain decimal is never refused, an accepted float is finite. Run with
 * -close_fd_mask=3 (ci/fuzz.sh does): usage errors print. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "fuzz_support.h"

#define MAX_WORDS 24
#define MAX_POSITIONAL 2

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Value of s when it is "-?d{1,18}" (fits int64 whatever the digits), else false. */
static bool plain_decimal(const char *s, int64_t *out) {
    bool neg = *s == '-';
    const char *p = s + neg;
    size_t n = strlen(p);
    if (n == 0 || n > 18 || strspn(p, "0123456789") != n) return false;
    int64_t v = 0;
    for (; *p; p++) v = v * 10 + (*p - '0');
    *out = neg ? -v : v;
    return true;
}

static void check_numbers(const char *s) {
    int64_t v = 0, plain = 0;
    if (cli_parse_i64(s, &v)) {
        char buf[32];
        int64_t again = 0;
        snprintf(buf, sizeof buf, "%lld", (long long)v);
        CHECK(cli_parse_i64(buf, &again) && again == v);
        CHECK(strspn(s, "0123456789+- \t\n\v\f\r") == strlen(s)); /* nothing else is a digit */
    }
    bool is_plain = plain_decimal(s, &plain);
    if (is_plain) CHECK(cli_parse_i64(s, &v) && v == plain);
    double d = 0;
    if (cli_parse_f64(s, &d)) CHECK(isfinite(d));
    if (is_plain) CHECK(cli_parse_f64(s, &d) && d == (double)plain);
}

static bool is_word_of(const char *p, char **argv, int argc) {
    for (int i = 1; i < argc; i++)
        if (p == argv[i]) return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_WORDS + 2] = {"fuzz"};
    int argc = 1;
    for (char *p = buf; p < buf + size + 1 && argc <= MAX_WORDS; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;
    for (int i = 1; i < argc; i++) check_numbers(argv[i]);

    bool flag = false;
    const char *name = NULL;
    int64_t count = 1, seed = 0;
    double temp = 0.8;
    const cli_opt opts[] = {
        CLI_FLAG_OPT("--flag", "-f", &flag),
        CLI_STR_OPT("--name", "-n", &name),
        CLI_INT_OPT("--count", "-c", &count, 1, 4096),
        CLI_INT_OPT("--seed", NULL, &seed, 0, INT64_MAX),
        CLI_FLOAT_OPT("--temp", "-t", &temp, 0, INFINITY, false, true),
        {0},
    };
    const char *pos[MAX_POSITIONAL] = {0};
    int npos = -1;
    int rc = cli_parse_options("fuzz", "usage: fuzz\n", argc, argv, opts, pos, MAX_POSITIONAL, &npos);
    CHECK(rc == -1 || rc == 0 || rc == EXIT_USAGE);
    if (rc == -1) {
        CHECK(npos >= 0 && npos <= MAX_POSITIONAL);
        for (int i = 0; i < npos; i++) CHECK(is_word_of(pos[i], argv, argc) && (pos[i][0] != '-' || !pos[i][1]));
        CHECK(count >= 1 && count <= 4096 && seed >= 0 && isfinite(temp) && temp >= 0);
        CHECK(!name || is_word_of(name, argv, argc));
    }
    free(buf);
    return 0;
}
