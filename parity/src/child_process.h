/* child_process.h — running another program (the Python reference) from the
 * parity library: no shell, argv as given, its stdout and stderr into a log
 * file, cancellable. Private to parity/ (the arbiter and the gate's
 * `reference: python` entries). */
#ifndef PARITY_CHILD_PROCESS_H
#define PARITY_CHILD_PROCESS_H

#include <signal.h>

#include "bitnet/status.h"

/* Runs argv (argv[0] a path, NULL-terminated) with stdout and stderr into
 * log (created or truncated), and waits for it, polling *cancel every 20 ms
 * (then the child gets SIGTERM: BN_ERR_CANCELLED). BN_OK when it exits 0;
 * NOT_FOUND when it cannot be started; IO when it fails, the message
 * prefixed with `who` and ending with the last line of its log. */
bn_status parity_run_child(const char *who, char *const argv[], const char *log, const volatile sig_atomic_t *cancel,
                           bn_error *err);

#endif /* PARITY_CHILD_PROCESS_H */
