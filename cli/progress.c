/* progress.c — renders bitnet/progress.h reports as one updating line. */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/clock.h"
#include "commands.h"

#define REDRAW_S 0.1 /* at most ten lines a second: a terminal is slower than a per-tap report */

int cli_progress_start(cli_progress *p, const char *cmd) {
    if (p->force_on && p->force_off) return cli_usage_error(cmd, "--progress and --quiet exclude each other");
    p->cmd = cmd;
    p->enabled = p->force_on || (!p->force_off && isatty(2));
    p->stage = NULL;
    p->width = 0;
    return -1;
}

/* "12s", "3m05s", "1h02m"; "-" when unknown. */
static void format_eta(double s, char *buf, size_t size) {
    if (!(s >= 0) || s > 360000) snprintf(buf, size, "-");
    else if (s < 60) snprintf(buf, size, "%.*fs", s < 10 ? 1 : 0, s);
    else if (s < 3600) snprintf(buf, size, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, size, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static void render(void *user, const bn_progress *r) {
    cli_progress *p = user;
    const double t = bn_clock_seconds();
    const bool new_stage = !p->stage || strcmp(p->stage, r->stage);
    const bool finished = r->total > 0 && r->done >= r->total;
    if (new_stage) {
        p->stage = r->stage;
        p->stage_t0 = t;
        p->stage_done0 = r->done;
        p->stage_bytes0 = r->bytes;
    } else if (t - p->t_last < REDRAW_S && !finished) {
        return;
    }
    p->t_last = t;
    const double dt = t - p->stage_t0;
    /* under a millisecond a rate is mostly clock noise, but a stage that
     * finished within it still has one (111 taps of a tiny model compare in
     * well under a millisecond on a fast machine) */
    const double rate = (dt > 1e-3 || (finished && dt > 0)) && r->done > p->stage_done0
                            ? (double)(r->done - p->stage_done0) / dt
                            : -1;
    char line[256], eta[32], rate_s[32], pct[16] = "", bytes[48] = "";
    format_eta(rate > 0 && r->total > 0 ? (double)(r->total - r->done) / rate : finished ? 0 : -1,
               eta, sizeof eta);
    if (rate > 0) snprintf(rate_s, sizeof rate_s, "%.*f", rate < 10 ? 1 : 0, rate);
    else snprintf(rate_s, sizeof rate_s, "-");
    if (r->total > 0) snprintf(pct, sizeof pct, " (%d%%)", (int)(100 * r->done / r->total));
    if (r->bytes) {
        const double mb = (double)r->bytes / 1e6, mbs = dt > 1e-3 ? (double)(r->bytes - p->stage_bytes0) / 1e6 / dt : 0;
        snprintf(bytes, sizeof bytes, "  %.1f MB written (%.1f MB/s)", mb, mbs);
    }
    int n;
    if (r->total > 0)
        n = snprintf(line, sizeof line, "%s: %s %lld/%lld %s%s%s  %s %s/s  ETA %s", p->cmd, r->stage,
                     (long long)r->done, (long long)r->total, r->unit, pct, bytes, rate_s, r->unit, eta);
    else
        n = snprintf(line, sizeof line, "%s: %s %lld %s%s  %s %s/s  ETA %s", p->cmd, r->stage, (long long)r->done,
                     r->unit, bytes, rate_s, r->unit, eta);
    if (n < 0) return;
    if (n >= (int)sizeof line) n = (int)sizeof line - 1;
    /* pad over what is left of a longer previous line */
    fprintf(stderr, "\r%s%*s", line, p->width > n ? p->width - n : 0, "");
    fflush(stderr);
    if (n > p->width) p->width = n;
}

bn_progress_sink cli_progress_sink(cli_progress *p) {
    return p->enabled ? (bn_progress_sink){render, p} : (bn_progress_sink){0};
}

void cli_progress_end(cli_progress *p) {
    if (p->width) {
        fprintf(stderr, "\r%*s\r", p->width, "");
        fflush(stderr);
    }
    p->width = 0;
    p->stage = NULL;
}
