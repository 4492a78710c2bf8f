/* progress.h — the CLI side of progress (bitnet/progress.h): one line on
 * stderr, rewritten in place with \r ("trace: recording 96/192 layers (50%)
 * 4.2 MB  310 layers/s  ETA 0.3s") and cleared when the work ends. Shown when
 * stderr is a terminal, never otherwise; --progress forces it on (tests, CI
 * logs), --quiet off. Every long-running command does the same four things:
 *
 *     cli_progress prog = {0};
 *     opts[]: CLI_PROGRESS_OPTS(&prog),                 // --progress, --quiet
 *     if ((rc = cli_progress_start(&prog, "gate")) >= 0) return rc;  // after parsing
 *     library_opts.progress = cli_progress_sink(&prog); // the library reports
 *     ... run ...
 *     cli_progress_end(&prog);                          // before printing results
 */
#ifndef BITPARITY_CLI_PROGRESS_H
#define BITPARITY_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet/progress.h"

typedef struct cli_progress {
    bool force_on, force_off; /* --progress, --quiet */
    bool enabled;
    const char *cmd;
    const char *stage;        /* of the line shown: a new stage restarts the rate */
    double stage_t0, t_last;  /* monotonic seconds */
    int64_t stage_done0;
    uint64_t stage_bytes0;
    int width;                /* characters of the line on screen; 0: none */
} cli_progress;

/* The two option rows: --progress and --quiet. */
#define CLI_PROGRESS_OPTS(p) CLI_FLAG_OPT("--progress", NULL, &(p)->force_on), CLI_FLAG_OPT("--quiet", NULL, &(p)->force_off)

/* Help text for the two options, to paste into a command's help. */
#define CLI_PROGRESS_HELP                                                                               \
    "  --progress      show progress on stderr (done, MB written, rate, ETA) even when it is no terminal\n" \
    "  --quiet         never show progress (default: shown when stderr is a terminal)\n"

/* Decides whether progress shows (force flags, else isatty(2)). Returns -1 to
 * go on, or EXIT_USAGE after a message when both flags are given. */
int cli_progress_start(cli_progress *p, const char *cmd);

/* The sink to put in a library's options: silent (no fn) when disabled. */
bn_progress_sink cli_progress_sink(cli_progress *p);

/* Clears the line if one is shown. Safe to call more than once. */
void cli_progress_end(cli_progress *p);

#endif /* BITPARITY_CLI_PROGRESS_H */
