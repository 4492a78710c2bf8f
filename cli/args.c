/* args.c — argument helpers shared by the subcommands. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

int cli_fail(const char *cmd, const bn_error *err) {
    fprintf(stderr, "bitparity %s: %s\n", cmd, err->msg[0] ? err->msg : bn_status_name(err->code));
    int code = bn_status_exit_code(err->code);
    return code == 0 ? EXIT_INTERNAL : code;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bitparity %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ntry 'bitparity %s --help'\n", cmd);
    return EXIT_USAGE;
}

bool cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

bool cli_parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

bool cli_parse_f64(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool cli_parse_id_list(const char *s, int32_t **ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    if (!s || !*s) return false;
    int64_t cap = 1;
    for (const char *p = s; *p; p++) cap += (*p == ',');
    int32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return false;
    int64_t k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
            free(v);
            return false;
        }
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p) { /* trailing comma */
            free(v);
            return false;
        }
    }
    *ids = v;
    *n = k;
    return true;
}

const char *cli_option_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_parse_options(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts,
                      const char **positional, int max_positional, int *n_positional) {
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(help, stdout);
            return 0;
        }
        const cli_opt *o = opts;
        while (o->name && strcmp(o->name, a) && !(o->alias && !strcmp(o->alias, a))) o++;
        if (!o->name) {
            if (a[0] == '-' && a[1]) return cli_usage_error(cmd, "unknown option '%s'", a);
            if (npos >= max_positional) return cli_usage_error(cmd, "unexpected argument '%s'", a);
            positional[npos++] = a;
            continue;
        }
        if (o->kind == CLI_FLAG) {
            *(bool *)o->dst = true;
            continue;
        }
        const char *v = cli_option_value(cmd, argc, argv, &i);
        if (!v) return EXIT_USAGE;
        bool ok = true;
        switch (o->kind) {
        case CLI_STR: *(const char **)o->dst = v; break;
        case CLI_INT: ok = cli_parse_i64(v, (int64_t *)o->dst) && *(int64_t *)o->dst >= o->min; break;
        case CLI_FLOAT: ok = cli_parse_f64(v, (double *)o->dst); break;
        case CLI_FLAG: break;
        }
        if (!ok) return cli_usage_error(cmd, "%s '%s': expected %s", a, v, o->kind == CLI_INT ? "an integer" : "a number");
    }
    if (n_positional) *n_positional = npos;
    return -1;
}
