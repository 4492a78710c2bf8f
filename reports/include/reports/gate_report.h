/* gate_report.h — a gate's summary (parity/gate.h) rendered for people: the
 * gate matrix (entries × verdict, with each entry's result and a link to its
 * detail page) as Markdown for CI step summaries and pull-request comments,
 * and as one self-contained HTML page (the receipt report's stylesheet, no
 * JavaScript). Every string of a summary is escaped. */
#ifndef REPORTS_GATE_REPORT_H
#define REPORTS_GATE_REPORT_H

#include <stdio.h>

#include "bitnet/status.h"
#include "parity/gate.h"
#include "reports/report.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Renders s to f as fmt. IO on a write error. */
bn_status report_gate_render(const parity_gate_summary *s, report_format fmt, FILE *f, bn_error *err);

/* Writes out_dir/summary.md and out_dir/summary.html (atomically), and with
 * details set, each parity entry's detail page (its receipt rendered as the
 * HTML report, at the entry's `detail` path). FORMAT/IO naming the file. */
bn_status report_gate_write(const parity_gate_summary *s, const char *out_dir, int details, bn_error *err);

/* Two gate summaries prepared for report_render_baseline: their entries
 * paired by name (the current summary's order, then the baseline's entries
 * that are gone), each parity entry's receipt loaded from the summary's
 * folder, entries without a receipt (perplexity, skipped, error) by their
 * verdict and figures. */
typedef struct report_gate_baseline {
    report_pair *pairs; /* [n] */
    size_t n;
    parity_gate_summary *old, *now;
    report_receipt **receipts; /* [2n]: what pairs point to */
    char **notes;              /* [2n] */
} report_gate_baseline;

/* Loads the summaries at old_path and new_path and the receipts they name.
 * FORMAT/IO naming the file (a summary, or a receipt it names), NOMEM. */
bn_status report_gate_baseline_load(const char *old_path, const char *new_path, report_gate_baseline *out,
                                    bn_error *err);
void report_gate_baseline_free(report_gate_baseline *b);

#ifdef __cplusplus
}
#endif

#endif /* REPORTS_GATE_REPORT_H */
