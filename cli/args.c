/* args.c — argument helpers shared by the subcommands. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

int cli_fail(const char *cmd, const bn_error *err) {
    const int sig = *cli_interrupt_flag();
    if (err->code == BN_ERR_CANCELLED)
        fprintf(stderr, "bitparity %s: interrupted by %s; no file was left half-written (older outputs are as they "
                "were)\n", cmd, sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "request");
    else
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
    if (!s || !(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1])))) return false;
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
        /* digits only: strtoll alone would also take leading blanks and a sign */
        long long x = isdigit((unsigned char)*p) ? strtoll(p, &end, 10) : (end = (char *)p, 0);
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

/* "1..256", ">= 0", "(0, 1]", "> 0": the accepted range in words. */
static void describe_range(const cli_opt *o, char *buf, size_t size) {
    if (o->kind == CLI_INT) {
        if (o->imax == INT64_MAX) snprintf(buf, size, ">= %lld", (long long)o->imin);
        else snprintf(buf, size, "%lld..%lld", (long long)o->imin, (long long)o->imax);
    } else if (isinf(o->fmax)) {
        snprintf(buf, size, "%s %g", o->fmin_open ? ">" : ">=", o->fmin);
    } else {
        snprintf(buf, size, "in %c%g, %g%c", o->fmin_open ? '(' : '[', o->fmin, o->fmax, o->fmax_open ? ')' : ']');
    }
}

/* Parses v into o->dst: 0 ok, 1 not a number, 2 a number outside o's range. */
static int parse_value(const cli_opt *o, const char *v) {
    if (o->kind == CLI_INT) {
        int64_t x;
        if (!cli_parse_i64(v, &x)) { /* a whole number too large for int64 is out of range, not junk */
            char *end;
            errno = 0;
            (void)strtoll(v, &end, 10);
            return *v && !*end && errno == ERANGE ? 2 : 1;
        }
        *(int64_t *)o->dst = x;
        return x < o->imin || x > o->imax ? 2 : 0;
    }
    double x;
    if (!cli_parse_f64(v, &x)) return 1;
    *(double *)o->dst = x;
    const bool below = o->fmin_open ? !(x > o->fmin) : !(x >= o->fmin);
    const bool above = o->fmax_open ? !(x < o->fmax) : !(x <= o->fmax);
    return below || above ? 2 : 0;
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
        if (o->kind == CLI_STR) {
            *(const char **)o->dst = v;
            continue;
        }
        const int bad = parse_value(o, v);
        if (bad == 1) return cli_usage_error(cmd, "%s '%s': expected %s", a, v, o->kind == CLI_INT ? "an integer" : "a number");
        if (bad == 2) {
            char range[96];
            describe_range(o, range, sizeof range);
            return cli_usage_error(cmd, "%s %s: must be %s%s", a, v, range,
                                   o->kind == CLI_INT && o->imax == INT64_MAX ? " (a 64-bit integer)" : "");
        }
    }
    if (n_positional) *n_positional = npos;
    return -1;
}
