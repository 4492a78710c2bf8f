/* cmd_report.c — `bitparity report`: receipts rendered as one HTML page or
 * as Markdown (reports/, reports/report.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "reports/report.h"

enum { REPORT_MAX_RECEIPTS = 256 };

static const char report_help[] =
    "usage: bitparity report RECEIPT.yaml [RECEIPT2.yaml ...] [-o OUT] [--format html|markdown]\n\n"
    "Renders receipts (written by `bitparity compare -o` or `bitparity check -o`, YAML or JSON) for\n"
    "people: the verdict, the first divergence, the hints, the failing and worst taps, the logits,\n"
    "the replay, and plots of the error growth per layer, of every tap's NMSE and of the logits' KL\n"
    "divergence. Several receipts make one report with a summary table first.\n\n"
    "  -o FILE         write the report to FILE (default: Markdown on stdout)\n"
    "  --format F      html (one self-contained file: inline CSS and SVG, no JavaScript) or\n"
    "                  markdown (for CI logs and PR comments); default: html when FILE ends in\n"
    "                  .html or .htm, else markdown\n\n"
    "exit: 0 the report was written (whatever the verdicts), 2 usage error or a malformed\n"
    "receipt (file:line: key), 3 the report could not be written\n";

/* Renders into path through a temporary name, so a failed run leaves no
 * half-written report behind. */
static bn_status render_file(const report_receipt *const *rs, size_t n, report_format fmt,
                             const char *path, bn_error *err) {
    size_t len = strlen(path) + 8;
    char *tmp = malloc(len);
    if (!tmp) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    snprintf(tmp, len, "%s.tmpXX", path);
    FILE *f = fopen(tmp, "wb");
    bn_status st;
    if (!f) {
        st = bn_error_set(err, BN_ERR_IO, "%s: cannot create", path);
    } else {
        st = report_render(rs, n, fmt, f, err);
        if (st) bn_error_prefix(err, path);
        if (fclose(f) && !st) st = bn_error_set(err, BN_ERR_IO, "%s: write error", path);
        if (!st && rename(tmp, path)) st = bn_error_set(err, BN_ERR_IO, "%s: cannot replace", path);
        if (st) unlink(tmp);
    }
    free(tmp);
    return st;
}

int cmd_report(int argc, char **argv) {
    const char *out = NULL, *format = NULL;
    const char *paths[REPORT_MAX_RECEIPTS];
    int n = 0;
    const cli_opt opts[] = {
        {"-o", "--output", CLI_STR, &out, 0},
        {"--format", NULL, CLI_STR, &format, 0},
        {0},
    };
    int rc = cli_parse_options("report", report_help, argc, argv, opts, paths, REPORT_MAX_RECEIPTS, &n);
    if (rc >= 0) return rc;
    if (!n) return cli_usage_error("report", "no receipt given");
    report_format fmt = report_format_for_path(out);
    if (format && !report_format_parse(format, &fmt))
        return cli_usage_error("report", "--format '%s': expected html or markdown", format);

    report_receipt *rs[REPORT_MAX_RECEIPTS] = {0};
    bn_error err = {0};
    bn_status st = BN_OK;
    for (int i = 0; i < n && !st; i++) st = report_load(paths[i], &rs[i], &err);
    if (st) {
        rc = cli_fail("report", &err); /* a receipt that cannot be read is the user's input */
    } else {
        const report_receipt *const *view = (const report_receipt *const *)rs;
        st = out ? render_file(view, (size_t)n, fmt, out, &err)
                 : report_render(view, (size_t)n, fmt, stdout, &err);
        rc = 0;
        if (st) { /* a report that cannot be written is the environment's problem */
            fprintf(stderr, "bitparity report: %s\n", err.msg);
            rc = EXIT_INTERNAL;
        }
    }
    for (int i = 0; i < n; i++) report_receipt_free(rs[i]);
    return rc;
}
