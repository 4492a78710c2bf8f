/* interrupt.c — SIGINT/SIGTERM become a cancellation request.
 *
 * `interrupted` is the CLI's one piece of static mutable state (house rule:
 * a signal handler can reach nothing else). The handler only sets it; the
 * libraries poll it through the `cancel` pointers in their options, stop,
 * remove their temporary files and return BN_ERR_CANCELLED, which the
 * commands turn into exit code 130. The handlers are installed with
 * SA_RESETHAND: the same signal a second time, during the clean-up, gets the
 * default action and ends the process at once. Outputs are only ever renamed
 * into place when complete, so even then no destination is left
 * half-written (a ".NAME.tmp.XXXXXX" file may stay behind).
 *
 * A signal ignored when bitparity starts (a background job of a
 * non-interactive shell ignores SIGINT, nohup) stays ignored. */
#include <signal.h>
#include <string.h>

#include "commands.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = sig; }

void cli_interrupt_install(void) {
    static const int sigs[] = {SIGINT, SIGTERM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

const volatile sig_atomic_t *cli_interrupt_flag(void) { return &interrupted; }
