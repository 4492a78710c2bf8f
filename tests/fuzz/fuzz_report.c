/* fuzz_report.c — libFuzzer target for receipts given to `bitparity report`
 * (YAML or JSON written by anyone): arbitrary text is parsed; a receipt that
 * loads is rendered as HTML and Markdown, and against itself and as a new
 * entry (report --baseline). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "reports/report.h"
#include "fuzz_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_error err;
    report_receipt *r = NULL;
    if (report_parse("fuzz.yaml", (const char *)data, size, &r, &err) != BN_OK) {
        CHECK(strchr(err.msg, '\n') == NULL);
        return 0;
    }
    FILE *sink = fopen("/dev/null", "w");
    if (sink) {
        const report_receipt *one[1] = {r};
        CHECK(report_render_html(one, 1, sink, &err) == BN_OK);
        CHECK(report_render_markdown(one, 1, sink, &err) == BN_OK);
        const report_pair pairs[2] = {{.entry = "self", .baseline = r, .current = r}, {.entry = "new", .current = r}};
        report_diff_counts c;
        CHECK(report_render_baseline(pairs, 2, REPORT_DEFAULT_FACTOR, REPORT_HTML, sink, &c, &err) == BN_OK);
        CHECK(c.regressed == 0 && c.added == 1);
        CHECK(report_render_baseline(pairs, 1, REPORT_DEFAULT_FACTOR, REPORT_MARKDOWN, sink, &c, &err) == BN_OK);
        fclose(sink);
    }
    report_receipt_free(r);
    return 0;
}
