/* report_html.c — receipts as one self-contained HTML page: inline CSS,
 * inline SVG plots, no JavaScript (a Content-Security-Policy forbids any).
 * Every string from a receipt goes through esc(): a receipt is untrusted
 * input, and a report is opened in a browser. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_model.h"
#include "reports/report.h"

static const char css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;background:#f3f4f6;color:#1f2328;font:14px/1.45 system-ui,-apple-system,'Segoe UI',"
    "Roboto,'Helvetica Neue',Arial,sans-serif}"
    "main{max-width:1140px;margin:0 auto;padding:20px 24px 40px}"
    "h1{font-size:22px;margin:4px 0 2px}h2{font-size:19px;margin:0;word-break:break-all}"
    "h3{font-size:15px;margin:22px 0 6px;padding-bottom:3px;border-bottom:1px solid #e5e7eb}"
    ".sub{color:#57606a;margin:0 0 12px}"
    "code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}"
    "section.receipt{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:18px 22px;"
    "margin:18px 0}"
    ".head{display:flex;align-items:center;gap:12px;flex-wrap:wrap}"
    ".file{color:#57606a;font-size:12.5px;word-break:break-all}"
    ".badge{display:inline-block;padding:2px 10px;border-radius:5px;font-weight:700;font-size:13px;"
    "letter-spacing:.05em;color:#fff}"
    ".badge.pass{background:#1a7f37}.badge.fail{background:#cf222e}"
    ".badge.regression{background:#cf222e}.badge.degraded{background:#bf8700}.badge.fixed,.badge.improved"
    "{background:#1a7f37}.badge.unchanged,.badge.changed{background:#57606a}"
    ".next ul{margin:4px 0 0;padding-left:22px}.next li{margin:2px 0}"
    "tr.change td{white-space:nowrap}"
    ".badge.small{font-size:11px;padding:1px 6px}"
    ".facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:12px 0 4px}"
    ".facts dt{color:#57606a;font-weight:600}.facts dd{margin:0;word-break:break-word}"
    ".muted{color:#6e7781}.small{font-size:12px}"
    ".callout{border-left:4px solid #cf222e;background:#fff5f5;padding:8px 12px;margin:12px 0;"
    "border-radius:0 6px 6px 0}"
    ".callout.ok{border-color:#1a7f37;background:#f0fff4}.callout.warn{border-color:#bf8700;"
    "background:#fff8e5}"
    ".hint{border:1px solid #d0d7de;border-radius:6px;padding:7px 12px;margin:8px 0;background:#f6f8fa}"
    ".hint .name{font-weight:700;color:#8250df;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;"
    "font-size:12.5px}"
    ".hint p{margin:2px 0}.hint .ev{color:#57606a;font-size:12.5px}"
    ".chips span{display:inline-block;background:#eef1f4;border-radius:12px;padding:1px 10px;margin:2px 4px 2px 0;"
    "font-size:12.5px}"
    ".chips .bad{background:#ffebe9;color:#a40e26}.chips .good{background:#dafbe1;color:#116329}"
    "table{border-collapse:collapse;width:100%;font-size:12.5px}"
    "th,td{padding:3px 8px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}"
    "th{background:#f6f8fa;position:sticky;top:0}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "tr.failrow td:first-child{border-left:3px solid #cf222e}"
    ".scroll{max-height:340px;overflow:auto;border:1px solid #eaeef2;border-radius:6px}"
    "svg{display:block;width:100%;height:auto;background:#fff}"
    "svg text{font:11px system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;fill:#57606a}"
    "svg text.halo{stroke:#fff;stroke-width:3px;paint-order:stroke;stroke-linejoin:round}"
    ".legend{font-size:12px;color:#57606a;margin:2px 0 0}"
    ".legend i{display:inline-block;width:14px;height:3px;margin:0 4px 3px 10px;vertical-align:middle}"
    ".legend i.sq{height:10px;width:10px;margin-bottom:1px}"
    ".legend svg.key{display:inline-block;width:44px;height:16px;margin:0 4px 0 12px;vertical-align:middle;"
    "background:none}"
    "footer{color:#6e7781;font-size:12px;margin-top:16px}"
    "a{color:#0969da}";

/* One colour per evaluation line, cycled (Tableau 10). */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1",
                                      "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"};
#define PALETTE_N (sizeof palette / sizeof palette[0])
#define FAIL_COLOR "#cf222e"
#define PASS_COLOR "#8fb3d9"
#define LIMIT_COLOR "#24292f"

/* Plot geometry (SVG user units; the SVG scales to the page width). */
enum { PLOT_W = 1080, PLOT_LEFT = 84, PLOT_RIGHT = 14, PLOT_TOP = 18, PLOT_BOTTOM = 34 };

/* Escapes text for both element content and quoted attributes; NULL is an
 * em dash. Control characters become spaces (one line per field). */
static void esc(FILE *f, const char *s) {
    if (!s) {
        fputs("\xe2\x80\x94", f);
        return;
    }
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
        }
    }
}


static void badge(FILE *f, int pass, const char *extra) {
    fprintf(f, "<span class=\"badge %s%s\">%s</span>", pass ? "pass" : "fail", extra, pass ? "PASS" : "FAIL");
}

static void code(FILE *f, const char *s) {
    fputs("<code>", f);
    esc(f, s);
    fputs("</code>", f);
}

static report_ink ink(FILE *f) {
    return (report_ink){.f = f, .text = esc, .code = code, .strong_on = "<b>", .strong_off = "</b>",
                        .head_on = "<h3>", .head_off = "</h3><p>",
                        .hints_on = "<h3>Hints</h3>", .hints_off = "", .hint_on = "<div class=\"hint\">",
                        .hint_off = "</div>", .name_on = "<span class=\"name\">", .name_off = "</span>",
                        .message_on = "<p>", .message_off = "</p>", .evidence_on = "<p class=\"ev\">",
                        .evidence_off = "</p>", .list_on = "<ul>", .list_off = "</ul>", .item_on = "<li>",
                        .item_off = "</li>", .next_on = "<div class=\"next\"><h3>What to check next</h3><p>",
                        .next_off = "</p></div>",
                        .next_folded_on = "<details class=\"next\"><summary><b>What to check next</b> (beyond the "
                                          "hints)</summary><p>",
                        .next_folded_off = "</p></details>"};
}

/* One cell: strings as text (the row's news in bold, a note under it),
 * names in <code>, numbers right-aligned. */
static void html_cell(FILE *f, const cell *c) {
    char b[32];
    switch (c->kind) {
    case CELL_CODE: fputs("<td>", f), code(f, c->text); break;
    case CELL_TEXT:
        fputs(c->strong ? "<td><b>" : "<td>", f), esc(f, c->text), fputs(c->strong ? "</b>" : "", f);
        if (c->code) fputc(' ', f), code(f, c->code);
        if (c->note) fputs("<br><span class=\"muted small\">", f), esc(f, c->note), fputs("</span>", f);
        break;
    case CELL_VERDICT: fputs("<td>", f), badge(f, (int)c->i, " small"); break;
    case CELL_INDEX: fprintf(f, "<td class=\"num\"><a href=\"#r%lld\">%lld</a>", c->i, c->i); break;
    default: fprintf(f, c->strong ? "<td class=\"num\"><b>%s</b>" : "<td class=\"num\">%s", cell_number(c, b));
    }
    fputs("</td>", f);
}

/* The columns cols[0..n_cols) of table t (NULL: all): its headings, then
 * every row (of class cls when set). */
static void html_table_cols(FILE *f, const table *t, const int *cols, size_t n_cols, const char *cls) {
    if (!cols) n_cols = t->n_cols;
    fputs("<table><tr>", f);
    for (size_t k = 0; k < n_cols; k++) {
        const column *c = &t->cols[cols ? (size_t)cols[k] : k];
        fputs(c->num ? "<th class=\"num\">" : "<th>", f);
        esc(f, c->label);
        fputs("</th>", f);
    }
    fputs("</tr>", f);
    for (size_t row = 0; row < t->n_rows; row++) {
        if (cls) fprintf(f, "<tr class=\"%s\">", cls);
        else fputs("<tr>", f);
        for (size_t k = 0; k < n_cols; k++) html_cell(f, table_cell(t, row, cols ? (size_t)cols[k] : k));
        fputs("</tr>", f);
    }
    fputs("</table>", f);
}

static void html_table(FILE *f, const table *t, const char *cls) { html_table_cols(f, t, NULL, 0, cls); }

/* ---- log-scale plots ---------------------------------------------------- */

/* A log10 y axis over [lo, hi] decades. A log axis has no 0: values <= 0
 * are clamped to a floor row one empty decade below the data, labelled
 * "0 (exact)" and set off by a break mark; +inf sits on a top row labelled
 * "inf" (each row only when such values occur). */
typedef struct axis {
    double lo, hi;
    int zero_row, inf_row;
    double y0, y1; /* pixel rows of hi and lo */
} axis;

/* What a plot's values span: the positive finite range, and whether zeros
 * (or negatives) and +inf occur. NaN is left out (a gap). */
typedef struct span {
    double mn, mx;
    int zero, inf;
} span;

#define SPAN_EMPTY {INFINITY, 0, 0, 0}

static void span_add(span *s, double v) {
    if (isnan(v)) return;
    if (v <= 0) s->zero = 1;
    else if (isinf(v)) s->inf = 1;
    else s->mn = fmin(s->mn, v), s->mx = fmax(s->mx, v);
}

static axis axis_make(span s, double height, double bottom) {
    axis a = {0};
    double mn = s.mn, mx = s.mx;
    if (mx <= 0) mn = mx = 1e-1; /* nothing finite and positive: one decade */
    a.lo = floor(log10(mn));
    if (log10(mn) - a.lo < 0.3) a.lo -= 1; /* keep the smallest bar visibly above the floor */
    a.hi = ceil(log10(mx));
    if (a.hi <= a.lo) a.hi = a.lo + 1;
    if (s.zero) a.lo -= 1, a.zero_row = 1;
    if (s.inf) a.hi += 1, a.inf_row = 1;
    a.y0 = PLOT_TOP;
    a.y1 = height - bottom;
    return a;
}

static double axis_y(const axis *a, double v) {
    if (v <= 0) return a->y1;
    double l = isinf(v) ? a->hi : log10(v); /* the inf row, or the top when there is none */
    if (l < a->lo) l = a->lo;
    if (l > a->hi) l = a->hi;
    return a->y1 - (l - a->lo) / (a->hi - a->lo) * (a->y1 - a->y0);
}

static void svg_open(FILE *f, const char *id, double height, const char *label) {
    fprintf(f, "<svg id=\"%s\" viewBox=\"0 0 %d %.0f\" role=\"img\" aria-label=\"", id, PLOT_W, height);
    esc(f, label);
    fputs("\">", f);
}

/* Decade grid lines with labels on the left, and the y-axis title. */
static void axis_draw(FILE *f, const axis *a, const char *title) {
    int step = (int)ceil((a->hi - a->lo) / 8.0);
    if (step < 1) step = 1;
    for (double d = a->hi; d >= a->lo - 1e-9; d -= step) {
        double y = a->y1 - (d - a->lo) / (a->hi - a->lo) * (a->y1 - a->y0);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eaeef2\"/>", PLOT_LEFT, y,
                PLOT_W - PLOT_RIGHT, y);
        /* a scale of one or two decades also gets 2x and 5x lines */
        for (int m = 0; m < 2 && a->hi - a->lo <= 2 && d < a->hi - a->inf_row && !(a->zero_row && d <= a->lo + 1e-9);
             m++) {
            double dm = d + log10(m ? 5.0 : 2.0), ym = a->y1 - (dm - a->lo) / (a->hi - a->lo) * (a->y1 - a->y0);
            fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#f3f4f6\"/>"
                       "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%de%d</text>",
                    PLOT_LEFT, ym, PLOT_W - PLOT_RIGHT, ym, PLOT_LEFT - 6, ym + 4, m ? 5 : 2, (int)d);
        }
        if (a->zero_row && d <= a->lo + 1e-9) {
            /* the floor: "0 (exact)", and a dotted break across the empty decade above it */
            double yb = y - (a->y1 - a->y0) / (a->hi - a->lo) / 2;
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" style=\"font-weight:600\">0 (exact)</text>"
                       "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#8c959f\" stroke-dasharray=\"1 4\"/>",
                    PLOT_LEFT - 6, y + 4, PLOT_LEFT, yb, PLOT_W - PLOT_RIGHT, yb);
        }
        else if (a->inf_row && d >= a->hi - 1e-9)
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">inf</text>", PLOT_LEFT - 6, y + 4);
        else
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>", PLOT_LEFT - 6, y + 4, (int)d);
    }
    fprintf(f,
            "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#8c959f\"/>"
            "<text x=\"12\" y=\"%.1f\" transform=\"rotate(-90 12 %.1f)\" text-anchor=\"middle\">%s</text>",
            PLOT_LEFT, a->y1, PLOT_W - PLOT_RIGHT, a->y1, (a->y0 + a->y1) / 2, (a->y0 + a->y1) / 2, title);
}

static void limit_line(FILE *f, const axis *a, double limit, const char *what) {
    if (isnan(limit) || limit <= 0 || isinf(limit)) return;
    char b[32];
    double y = axis_y(a, limit);
    fprintf(f,
            "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"" LIMIT_COLOR "\" stroke-width=\"1.3\" "
            "stroke-dasharray=\"6 4\"/><text class=\"halo\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\" "
            "style=\"fill:" LIMIT_COLOR "\">%s %s</text>",
            PLOT_LEFT, y, PLOT_W - PLOT_RIGHT, y, PLOT_W - PLOT_RIGHT - 2, y - 4, what, report_num(b, limit));
}

/* How evaluation e's line looks: colour, dash, marker and width all differ
 * from its neighbours', so lines stay apart in a grey-scale print too. */
typedef struct line_style {
    const char *color, *dash;
    double width, opacity, size; /* size: the marker's radius */
    int shape;                   /* 0 circle, 1 square, 2 triangle, 3 diamond */
} line_style;

static line_style growth_style(size_t e) {
    static const char *const dashes[] = {"none", "9 4", "2 3", "10 3 2 3", "5 5"};
    double shrink = e < 4 ? (double)e : 4;
    return (line_style){.color = palette[e % PALETTE_N], .dash = dashes[e % 5], .width = 6 - 1.1 * shrink,
                        .opacity = e ? 1 : 0.6, .size = 7 - 1.2 * shrink, .shape = (int)(e % 4)};
}

/* Opens a <g> holding the marker of style ls at (x, y); the caller adds a
 * <title> and closes it. */
static void marker(FILE *f, const line_style *ls, double x, double y) {
    double r = ls->size;
    fprintf(f, "<g fill=\"%s\" stroke=\"#fff\" stroke-width=\"1\">", ls->color);
    switch (ls->shape) {
    case 0: fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>", x, y, r); break;
    case 1: fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", x - r * .85, y - r * .85, r * 1.7, r * 1.7); break;
    case 2: fprintf(f, "<path d=\"M%.1f %.1f l%.1f %.1f h%.1f z\"/>", x, y - r, r, r * 1.7, -2 * r); break;
    default: fprintf(f, "<path d=\"M%.1f %.1f l%.1f %.1f l%.1f %.1f l%.1f %.1f z\"/>", x, y - r, r, r, -r, r, -r, -r);
    }
}

/* (1) log10 NMSE per layer, one polyline per evaluation. */
static void plot_growth(FILE *f, const report_receipt *r, int idx) {
    if (!r->n_growth || r->layers <= 0) {
        fputs("<p class=\"muted\">No layer was compared.</p>", f);
        return;
    }
    double limit = report_uniform_nmse_limit(r);
    span sp = SPAN_EMPTY;
    for (size_t e = 0; e < r->n_growth; e++)
        for (int l = 0; l < r->layers; l++) span_add(&sp, r->growth[e].nmse_max[l]);
    int all_zero = sp.zero && sp.mx <= 0 && !sp.inf;
    span_add(&sp, isinf(limit) ? NAN : limit);
    double height = 290, span = (PLOT_W - PLOT_LEFT - PLOT_RIGHT) / (double)r->layers;
    axis a = axis_make(sp, height, PLOT_BOTTOM);
    char id[32];
    snprintf(id, sizeof id, "growth-%d", idx);
    svg_open(f, id, height, "error growth: max NMSE per layer for each evaluation (log scale)");
    axis_draw(f, &a, "max NMSE (log)");
    int every = r->layers > 40 ? (r->layers + 39) / 40 : 1;
    for (int l = 0; l < r->layers; l += every)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">blk.%d</text>", PLOT_LEFT + (l + 0.5) * span,
                a.y1 + 16, l);
    limit_line(f, &a, limit, "limit");
    char b[32];
    /* Drawn widest first: where lines coincide, each later (narrower, dashed)
     * line and its smaller marker sit inside the earlier one, so e0 stays
     * visible under all the others. */
    for (size_t e = 0; e < r->n_growth; e++) {
        const line_style ls = growth_style(e);
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-opacity=\"%.2f\" "
                   "stroke-dasharray=\"%s\" stroke-linejoin=\"round\" points=\"",
                ls.color, ls.width, ls.opacity, ls.dash);
        for (int l = 0; l < r->layers; l++)
            if (!isnan(r->growth[e].nmse_max[l]))
                fprintf(f, "%.1f,%.1f ", PLOT_LEFT + (l + 0.5) * span, axis_y(&a, r->growth[e].nmse_max[l]));
        fputs("\"/>", f);
        for (int l = 0; l < r->layers; l++) {
            double v = r->growth[e].nmse_max[l];
            if (isnan(v)) continue;
            marker(f, &ls, PLOT_LEFT + (l + 0.5) * span, axis_y(&a, v));
            fputs("<title>", f);
            esc(f, r->growth[e].evaluation);
            fprintf(f, " blk.%d: max NMSE %s</title></g>", l, report_num(b, v));
        }
    }
    fputs("</svg><p class=\"legend\">", f);
    for (size_t e = 0; e < r->n_growth; e++) {
        const line_style ls = growth_style(e);
        fprintf(f, "<svg class=\"key\" viewBox=\"0 0 44 16\" width=\"44\" height=\"16\"><line x1=\"2\" y1=\"8\" "
                   "x2=\"42\" y2=\"8\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-opacity=\"%.2f\" stroke-dasharray=\"%s\"/>",
                ls.color, ls.width > 4 ? 4 : ls.width, ls.opacity, ls.dash);
        marker(f, &ls, 22, 8);
        fputs("</g></svg>", f);
        esc(f, r->growth[e].evaluation);
    }
    if (all_zero) fputs(" &#183; <b>NMSE 0 in every compared layer of every evaluation</b>", f);
    if (r->n_growth > 1) fputs(" &#183; lines drawn widest first: where they coincide, each shows inside the one before", f);
    if (!isnan(limit)) fputs("<i style=\"background:" LIMIT_COLOR "\"></i>policy limit (nmse_max, dashed)", f);
    else fputs(" &#183; the nmse limit differs between taps (or is not set): no limit line", f);
    fputs("</p>", f);
}

static int tap_in(const report_tap *t, const char *eval) {
    return eval && t->evaluation && !strcmp(t->evaluation, eval) && (t->compared || t->failed);
}

/* The tap-name band under the taps plot: room for a rotated name
 * (TAP_LABEL_ROOM units) and the block row under it. */
enum { TAP_LABEL_ROOM = 104, TAP_LABEL_PITCH = 12 };

/* Vertical separators and "blk.N" labels under runs of taps of one layer
 * (under the name band). */
static void layer_marks(FILE *f, const report_receipt *r, const char *eval, double bw, const axis *a) {
    size_t k = 0, start = 0;
    int layer = -2;
    for (size_t i = 0; i <= r->n_taps; i++) {
        int end = i == r->n_taps;
        if (!end && !tap_in(&r->taps[i], eval)) continue;
        if (end || r->taps[i].layer != layer) {
            double x0 = PLOT_LEFT + start * bw, x1 = PLOT_LEFT + k * bw;
            if (layer >= 0 && x1 - x0 >= 26)
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" style=\"font-weight:600\">blk.%d</text>",
                        (x0 + x1) / 2, a->y1 + TAP_LABEL_ROOM + 16, layer);
            if (!end && k > 0)
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d0d7de\"/>", x1, a->y0,
                        x1, a->y1 + TAP_LABEL_ROOM + 4);
            if (end) break;
            layer = r->taps[i].layer;
            start = k;
        }
        k++;
    }
}

static void tap_bar(FILE *f, const report_tap *t, const axis *a, double x, double bw, int uniform) {
    char b1[32], b2[32];
    int shape = !t->compared;
    double y = shape || isnan(t->nmse) ? a->y0 : axis_y(a, t->nmse); /* no NMSE: a full-height bar */
    if (a->y1 - y < 2) y = a->y1 - 2; /* zero: a stub, so the tap is still visible */
    fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"%s><title>", x, y,
            bw > 2.5 ? bw - 0.8 : bw, a->y1 - y, t->failed ? FAIL_COLOR : PASS_COLOR,
            shape ? " fill-opacity=\"0.45\"" : "");
    esc(f, t->name);
    fputs(": ", f);
    esc(f, t->status);
    if (t->compared) fprintf(f, ", nmse %s", report_num(b1, t->nmse));
    if (t->failed_metric) {
        fputs(", ", f);
        esc(f, t->failed_metric);
        fprintf(f, " %s (limit %s)", report_num(b1, t->failed_value), report_num(b2, t->failed_limit));
    }
    fputs("</title></rect>", f);
    if (!uniform && t->compared && !isnan(t->nmse_limit) && t->nmse_limit > 0)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" stroke=\"" LIMIT_COLOR "\"/>", x,
                axis_y(a, t->nmse_limit), x + bw, axis_y(a, t->nmse_limit));
}

/* The first divergence: a marker over its bar and its name beside it. */
static void divergence_mark(FILE *f, const report_tap *t, const axis *a, double x, double bw) {
    double cx = x + bw / 2, mid = PLOT_LEFT + (PLOT_W - PLOT_LEFT - PLOT_RIGHT) / 2.0;
    fprintf(f, "<path d=\"M%.1f %.1f l-5 -8 h10 z\" fill=\"#1f2328\"/>", cx, a->y0 - 1);
    fprintf(f, "<text class=\"halo\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" style=\"fill:#1f2328;font-weight:600\">"
            "first divergence: ",
            cx < mid ? cx + 8 : cx - 8, a->y0 + 2, cx < mid ? "start" : "end");
    esc(f, t->name);
    fputs("</text>", f);
}

/* A tap's name without its block ("blk.3.attn_q" -> "attn_q"): the block
 * is written once under its run of bars. */
static const char *short_name(const report_tap *t) {
    const char *s = t->name;
    if (t->layer >= 0 && !strncmp(s, "blk.", 4) && strchr(s + 4, '.')) s = strchr(s + 4, '.') + 1;
    return s;
}

/* Names under the bars, rotated to read bottom-up. Where bars are too
 * narrow for every name, names are placed greedily at least a text height
 * apart: first the first divergence, then the failing taps, then the rest
 * in order; returns how many were written. */
static size_t tap_labels(FILE *f, const report_receipt *r, const char *eval, size_t m, double bw, const axis *a,
                         const report_tap *first) {
    double *placed = malloc(m * sizeof *placed);
    const report_tap **taps = malloc(m * sizeof *taps);
    size_t n_placed = 0, k = 0;
    if (!placed || !taps) { /* labels are a nicety: without memory, the hover titles remain */
        free(placed), free(taps);
        return 0;
    }
    for (size_t i = 0; i < r->n_taps; i++)
        if (tap_in(&r->taps[i], eval)) taps[k++] = &r->taps[i];
    for (int pass = 0; pass < 3; pass++) {
        for (k = 0; k < m; k++) {
            const report_tap *t = taps[k];
            if ((pass == 0) != (t == first) || (pass == 1 && !t->failed) || (pass == 2 && t->failed)) continue;
            double x = PLOT_LEFT + (k + 0.5) * bw;
            int room = 1;
            for (size_t j = 0; j < n_placed && room; j++) room = fabs(placed[j] - x) >= TAP_LABEL_PITCH;
            if (!room) continue;
            placed[n_placed++] = x;
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" transform=\"rotate(-90 %.1f %.1f)\"%s>", x + 4,
                    a->y1 + 6, x + 4, a->y1 + 6, t->failed ? " style=\"fill:" FAIL_COLOR ";font-weight:600\"" : "");
            esc(f, short_name(t));
            fputs("</text>", f);
        }
    }
    free(placed), free(taps);
    return n_placed;
}

/* (2) per-tap NMSE of one evaluation in evaluation order, failures in red. */
static void plot_taps(FILE *f, const report_receipt *r, int idx) {
    const char *eval = report_focus_evaluation(r);
    size_t m = 0;
    span sp = SPAN_EMPTY;
    for (size_t i = 0; i < r->n_taps; i++) {
        if (!tap_in(&r->taps[i], eval)) continue;
        m++;
        span_add(&sp, r->taps[i].compared ? r->taps[i].nmse : NAN);
        span_add(&sp, isinf(r->taps[i].nmse_limit) ? NAN : r->taps[i].nmse_limit);
    }
    if (!m) {
        fputs("<p class=\"muted\">No tap was compared.</p>", f);
        return;
    }
    double height = 240 + TAP_LABEL_ROOM, bw = (PLOT_W - PLOT_LEFT - PLOT_RIGHT) / (double)m;
    double limit = report_uniform_nmse_limit(r);
    axis a = axis_make(sp, height, PLOT_BOTTOM + TAP_LABEL_ROOM);
    char id[32];
    snprintf(id, sizeof id, "taps-%d", idx);
    svg_open(f, id, height, "NMSE of every compared tap of one evaluation, in evaluation order");
    axis_draw(f, &a, "NMSE (log)");
    layer_marks(f, r, eval, bw, &a);
    size_t k = 0;
    const report_tap *first = NULL;
    double first_x = 0;
    for (size_t i = 0; i < r->n_taps; i++) {
        const report_tap *t = &r->taps[i];
        if (!tap_in(t, eval)) continue;
        tap_bar(f, t, &a, PLOT_LEFT + k * bw, bw, !isnan(limit));
        if (r->has_divergence && !first && t->failed && !strcmp(t->name, r->div_tap) &&
            !strcmp(eval, r->div_evaluation))
            first = t, first_x = PLOT_LEFT + k * bw;
        k++;
    }
    limit_line(f, &a, limit, "limit");
    if (first) divergence_mark(f, first, &a, first_x, bw);
    size_t labelled = tap_labels(f, r, eval, m, bw, &a, first);
    fputs("</svg><p class=\"legend\"><i class=\"sq\" style=\"background:" PASS_COLOR "\"></i>pass"
          "<i class=\"sq\" style=\"background:" FAIL_COLOR "\"></i>fail (pale: shape mismatch)",
          f);
    int any_limit = 0;
    for (size_t i = 0; i < r->n_taps && !any_limit; i++)
        any_limit = tap_in(&r->taps[i], eval) && r->taps[i].nmse_limit > 0;
    if (any_limit)
        fputs(isnan(limit) ? "<i style=\"background:" LIMIT_COLOR "\"></i>each tap's nmse limit"
                           : "<i style=\"background:" LIMIT_COLOR "\"></i>policy limit (nmse_max, dashed)",
              f);
    else
        fputs(" &#183; no nmse limit in this policy", f);
    if (labelled == m) fprintf(f, " &#183; %zu taps, each named under its bar</p>", m);
    else fprintf(f, " &#183; %zu taps, %zu named under their bars (failing ones first; hover a bar for the others)</p>", m, labelled);
}

static double logits_limit(const report_receipt *r) {
    for (size_t i = 0; i < r->n_taps; i++)
        if (!isnan(r->taps[i].kld_mean_limit)) return r->taps[i].kld_mean_limit;
    return NAN;
}

/* (3) KL divergence of the logits per evaluation: mean, p99, max bars. */
static void plot_kld(FILE *f, const report_receipt *r, int idx) {
    static const char *const shade[3] = {"#4e79a7", "#8fb3d9", "#c9d9ec"};
    static const char *const what[3] = {"mean", "p99", "max"};
    if (!r->n_logits) {
        fputs("<p class=\"muted\">No logits were compared.</p>", f);
        return;
    }
    double limit = logits_limit(r);
    span sp = SPAN_EMPTY;
    for (size_t i = 0; i < r->n_logits; i++) {
        const report_logits *l = &r->logits[i];
        span_add(&sp, l->kld_mean), span_add(&sp, l->kld_p99), span_add(&sp, l->kld_max);
    }
    span_add(&sp, isinf(limit) ? NAN : limit);
    double height = 220, width = PLOT_W - PLOT_LEFT - PLOT_RIGHT;
    double gw = width / (double)r->n_logits;
    if (gw > 120) gw = 120;
    double x0 = PLOT_LEFT + (width - gw * (double)r->n_logits) / 2;
    axis a = axis_make(sp, height, PLOT_BOTTOM);
    char id[32], b[32];
    snprintf(id, sizeof id, "kld-%d", idx);
    svg_open(f, id, height, "KL divergence of the logits per evaluation: mean, p99 and max");
    axis_draw(f, &a, "KLD, nats (log)");
    for (size_t i = 0; i < r->n_logits; i++) {
        const report_logits *l = &r->logits[i];
        double v[3] = {l->kld_mean, l->kld_p99, l->kld_max}, bw = gw * 0.8 / 3;
        for (int k = 0; k < 3; k++) {
            double y = isnan(v[k]) ? a.y1 : axis_y(&a, v[k]);
            if (a.y1 - y < 2) y = a.y1 - 2;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                    x0 + i * gw + gw * 0.1 + k * bw, y, bw - 1, a.y1 - y, shade[k]);
            esc(f, l->evaluation);
            fprintf(f, " KLD %s %s</title></rect>", what[k], report_num(b, v[k]));
        }
        if (gw >= 24) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x0 + (i + 0.5) * gw, a.y1 + 16);
            esc(f, l->evaluation);
            fputs("</text>", f);
        }
    }
    limit_line(f, &a, limit, "kld_mean limit");
    fputs("</svg><p class=\"legend\">", f);
    for (int k = 0; k < 3; k++) fprintf(f, "<i class=\"sq\" style=\"background:%s\"></i>KLD %s", shade[k], what[k]);
    fputs(" &#183; KL(reference &#8214; subject) per position, nats</p>", f);
}

/* ---- text sections ------------------------------------------------------ */

static void side_fact(FILE *f, const char *label, const report_side *s) {
    const report_ink k = ink(f);
    fprintf(f, "<dt>%s</dt><dd>", label);
    ink_side(&k, s);
    fputs("<br><span class=\"mono small\">", f);
    esc(f, s->trace);
    fputs("</span> <span class=\"muted small\">(", f);
    esc(f, s->layout);
    fputs(" layout, map ", f);
    esc(f, s->map);
    if (s->evaluations >= 0) fprintf(f, ", %lld evaluation(s)", (long long)s->evaluations);
    fputs(")</span>", f);
    if (s->source) fputs("<br><span class=\"muted small\">", f), esc(f, s->source), fputs("</span>", f);
    fputs("</dd>", f);
}

static void facts(FILE *f, const report_receipt *r) {
    fputs("<dl class=\"facts\"><dt>model</dt><dd><span class=\"mono\">", f);
    esc(f, r->model_path);
    fputs("</span>", f);
    if (r->model_arch) fputs(" &#183; ", f), esc(f, r->model_arch);
    if (r->model_sha256) {
        char sha[13];
        snprintf(sha, sizeof sha, "%s", r->model_sha256);
        fputs(" &#183; <span class=\"muted mono small\">sha256 ", f);
        esc(f, sha);
        fputs("&#8230;</span>", f);
    }
    fputs("</dd>", f);
    side_fact(f, "subject", &r->subject);
    side_fact(f, "reference", &r->reference);
    fputs("<dt>policy</dt><dd><b>", f);
    esc(f, r->policy_name);
    fputs("</b> <span class=\"muted\">", f);
    esc(f, r->policy_choice);
    fputs("</span></dd><dt>evaluations</dt><dd>", f);
    fprintf(f, "%lld compared (subject %lld, reference %lld)", (long long)r->evals_compared,
            (long long)r->evals_subject, (long long)r->evals_reference);
    fputs("</dd></dl>", f);
}

static void counts_chips(FILE *f, const report_receipt *r) {
    const parity_compare_counts *c = &r->counts;
    fprintf(f,
            "<p class=\"chips\"><span>%lld taps compared</span><span class=\"good\">%lld pass</span>"
            "<span class=\"%s\">%lld fail</span><span>%lld bit-identical</span>"
            "<span class=\"%s\">%lld shape mismatch</span><span>%lld only in subject</span>"
            "<span>%lld only in reference</span><span>%lld skipped by policy</span></p>",
            (long long)c->compared, (long long)c->pass, c->fail ? "bad" : "", (long long)c->fail,
            (long long)c->bit_identical, c->shape_mismatch ? "bad" : "", (long long)c->shape_mismatch,
            (long long)c->missing_reference, (long long)c->missing_subject, (long long)c->policy_skip);
}

static void divergence(FILE *f, const report_receipt *r) {
    if (r->diagnosis) {
        fputs("<div class=\"callout warn\"><b>Diagnosis:</b> ", f);
        esc(f, r->diagnosis);
        fputs("</div>", f);
    }
    if (!r->has_divergence) {
        fprintf(f, "<div class=\"callout %s\">%s</div>", r->pass ? "ok" : "warn",
                r->pass ? "Every compared tap is within the policy's limits."
                        : "No tap failed, but the verdict is fail.");
        return;
    }
    const report_ink k = ink(f);
    fputs("<div class=\"callout\"><b>First divergence:</b> ", f);
    ink_divergence(&k, r);
    fputs("</div>", f);
}

static void replay(FILE *f, const report_model *m) {
    const report_replay *p = &m->r->replay;
    if (!p->present) return;
    const report_ink k = ink(f);
    ink_replay(&k, p);
    fprintf(f, ". <span class=\"muted\">%zu tap(s) fail in the replay; model <span class=\"mono\">", p->n_failing_taps);
    esc(f, p->model);
    fputs("</span></span></p>", f);
    if (m->blocks.n_rows) html_table(f, &m->blocks, NULL);
}

static void tables(FILE *f, const report_model *m) {
    if (m->failing.n_rows) {
        fprintf(f, "<h3>%s (%zu, in evaluation order)</h3><div class=\"scroll\">", m->failing.title, m->failing.n_rows);
        html_table(f, &m->failing, "failrow");
        fputs("</div>", f);
    }
    fprintf(f, "<h3>%s</h3>", m->worst.title);
    if (m->all_zero) fputs("<p class=\"muted\">Every compared tap has NMSE 0.</p>", f);
    else html_table(f, &m->worst, "worstrow");
}

static void footer(FILE *f, const report_receipt *r) {
    char b[32];
    fputs("<footer>receipt ", f);
    esc(f, r->file);
    fputs(" &#183; created ", f);
    esc(f, r->created);
    fputs(" &#183; bitparity ", f);
    esc(f, r->tool_version);
    fputs(" (", f);
    esc(f, r->tool_commit);
    fputs(") &#183; ", f);
    esc(f, r->host_cpu);
    fputs(", ", f);
    esc(f, r->host_simd);
    if (r->host_threads >= 0) fprintf(f, ", %lld thread(s)", (long long)r->host_threads);
    if (!isnan(r->compare_s)) fprintf(f, " &#183; compared in %s s", report_num(b, r->compare_s));
    fputs("</footer>", f);
}

static void section(FILE *f, const report_model *m, int idx) {
    const report_receipt *r = m->r;
    fprintf(f, "<section class=\"receipt\" id=\"r%d\"><div class=\"head\">", idx);
    badge(f, r->pass, "");
    fputs("<h2>", f);
    esc(f, report_base_name(r->model_path ? r->model_path : r->file));
    fputs("</h2><span class=\"file\">", f);
    esc(f, r->file);
    fputs("</span></div>", f);
    facts(f, r);
    counts_chips(f, r);
    divergence(f, r);
    const report_ink k = ink(f);
    ink_hints(&k, r);
    ink_next_checks(&k, r);
    fputs("<h3>Error growth: max NMSE per layer</h3>", f);
    plot_growth(f, r, idx);
    fputs("<h3>Taps of ", f);
    esc(f, report_focus_evaluation(r));
    fputs(r->pass ? " in evaluation order</h3>" : " (the first failing evaluation) in evaluation order</h3>", f);
    plot_taps(f, r, idx);
    fputs("<h3>Logits: KL divergence per evaluation</h3>", f);
    plot_kld(f, r, idx);
    if (m->logits.n_rows) html_table(f, &m->logits, NULL);
    replay(f, m);
    tables(f, m);
    footer(f, r);
    fputs("</section>", f);
}

/* The page around the sections: a CSP that forbids scripts and loads, the
 * styles, and the title "bitparity <what>: <verdict>[ — name]". */
static void page_open(FILE *f, const char *what, const char *verdict, const char *name) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>bitparity ",
          f);
    fprintf(f, "%s: %s", what, verdict);
    if (name) fputs(" \xe2\x80\x94 ", f), esc(f, name);
    fprintf(f, "</title><style>%s</style></head>\n<body><main>", css);
}

static bn_status page_close(FILE *f, bn_error *err) {
    fputs("</main></body></html>\n", f);
    if (fflush(f) || ferror(f)) return bn_error_set(err, BN_ERR_IO, "writing the HTML report failed");
    return BN_OK;
}

/* The summary table (several receipts) and one section per receipt. */
static void receipts_body(FILE *f, const report_doc *d) {
    if (d->n > 1) {
        fprintf(f, "<section class=\"receipt\"><h2>%s</h2>", d->summary.title);
        html_table(f, &d->summary, "sumrow");
        fputs("</section>", f);
    }
    for (size_t i = 0; i < d->n; i++) section(f, &d->models[i], (int)i + 1), fputc('\n', f);
}

bn_status report_render_html(const report_receipt *const *rs, size_t n, FILE *f, bn_error *err) {
    if (!f) return bn_error_set(err, BN_ERR_INVALID, "report_render_html: no output stream");
    report_doc d;
    bn_status st = report_doc_build(rs, n, "report_render_html", &d, err);
    if (st) return st;
    page_open(f, "report", d.pass == n ? "PASS" : "FAIL",
              n == 1 ? report_base_name(rs[0]->model_path ? rs[0]->model_path : rs[0]->file) : NULL);
    fputs("<h1>bitparity parity report</h1>", f);
    fprintf(f, "<p class=\"sub\">%zu receipt(s): %zu pass, %zu fail &#183; ", n, d.pass, n - d.pass);
    fputs("subject = the stack under test, reference = what it should agree with</p>\n", f);
    receipts_body(f, &d);
    report_doc_free(&d);
    return page_close(f, err);
}

/* ---- against a baseline ----------------------------------------------------- */

static void diff_badge(FILE *f, const char *word) {
    fputs("<span class=\"badge ", f);
    for (const char *c = word; *c; c++) fputc(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c, f);
    fprintf(f, "\">%s</span>", word);
}

bn_status html_render_baseline(const report_diff *d, FILE *f, bn_error *err) {
    size_t n = 0;
    report_doc doc = {0};
    bn_status st = diff_current_doc(d, &doc, &n, err);
    if (st) return st;
    const char *word = diff_verdict(d);
    page_open(f, "regression report", word, d->n == 1 ? d->entries[0].name : NULL);
    fputs("<h1>bitparity regression report</h1><p class=\"sub\">", f);
    if (d->n == 1) {
        fputs("baseline <span class=\"mono\">", f);
        esc(f, d->entries[0].before ? d->entries[0].before->file : NULL);
        fputs("</span> &#8594; now <span class=\"mono\">", f);
        esc(f, d->entries[0].after ? d->entries[0].after->file : NULL);
        fputs("</span>", f);
    } else {
        fprintf(f, "%zu entries compared with their baselines", d->n);
    }
    fputs("</p>\n<section class=\"receipt\" id=\"changes\"><div class=\"head\">", f);
    diff_badge(f, word);
    fputs("<h2>Changes against the baseline</h2></div>", f);
    const report_ink k = ink(f);
    fprintf(f, "<div class=\"callout%s\">", d->counts.regressed ? "" : d->counts.degraded ? " warn" : " ok");
    ink_diff_headline(&k, d);
    fputs("</div>", f);
    if (d->n > 1) fprintf(f, "<h3>%s</h3>", d->entry_table.title), html_table(f, &d->entry_table, NULL);
    if (d->change_table.n_rows) {
        fprintf(f, "<h3>%s (%zu, most severe first)</h3><div class=\"scroll\">", d->change_table.title,
                d->change_table.n_rows);
        /* before and after of the secondary metrics would not fit beside the tap names */
        static const int cols[] = {CHG_ENTRY,      CHG_EVAL,  CHG_TAP,   CHG_CHANGE,        CHG_VERDICT,      CHG_NMSE_BEFORE,
                                   CHG_NMSE_AFTER, CHG_RATIO, CHG_DELTA, CHG_MAX_ABS_AFTER, CHG_COSINE_AFTER};
        const size_t skip = d->n == 1; /* one entry: no entry column */
        html_table_cols(f, &d->change_table, cols + skip, sizeof cols / sizeof *cols - skip, "change");
        fputs("</div>", f);
    }
    fputs("</section>\n", f);
    if (n) receipts_body(f, &doc);
    report_doc_free(&doc);
    return page_close(f, err);
}

/* For the other pages of reports/ (the gate summary): the same escaping and stylesheet. */
void report_html_text(FILE *f, const char *s) { esc(f, s); }
const char *report_html_css(void) { return css; }
