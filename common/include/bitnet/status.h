/* status.h — the one error channel of bitparity.
 *
 * Every fallible function returns a bn_status and, when it fails, fills a
 * caller-owned bn_error with a one-line message that names the file, the field
 * or tensor, and the byte offset where the problem is. The CLI prints
 * err.msg and maps the status to an exit code with bn_status_exit_code().
 */
#ifndef BITNET_STATUS_H
#define BITNET_STATUS_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bn_status {
    BN_OK = 0,
    BN_ERR_IO,          /* open/read/write/mmap failed */
    BN_ERR_FORMAT,      /* malformed or hostile input file */
    BN_ERR_UNSUPPORTED, /* well-formed but not supported (type, version, layout) */
    BN_ERR_INVALID,     /* bad argument or inconsistent metadata/shapes */
    BN_ERR_NOMEM,       /* allocation failed */
    BN_ERR_NOT_FOUND,   /* key, tensor or tap absent */
    BN_ERR_PARITY,      /* comparison found a divergence (not an error of the tool) */
    BN_ERR_INTERNAL,    /* a bug in bitparity itself */
    BN_ERR_CANCELLED,   /* stopped on request (the CLI's SIGINT/SIGTERM); nothing was published */
    BN_STATUS_COUNT
} bn_status;

#define BN_ERROR_MSG_MAX 512

typedef struct bn_error {
    bn_status code;
    char msg[BN_ERROR_MSG_MAX]; /* one line, no trailing newline */
} bn_error;

/* Symbolic name of a status ("BN_ERR_FORMAT"); never NULL. */
const char *bn_status_name(bn_status s);

/* Process exit code for a status: 0 ok, 1 parity failure, 2 usage/input
 * error, 3 internal error (docs/design.md), 130 cancelled (interrupted). */
int bn_status_exit_code(bn_status s);

/* Cancellation. Long-running calls take a `const volatile sig_atomic_t
 * *cancel` in their options (NULL: never cancelled): the caller sets the
 * flag to nonzero (e.g. from a signal handler) and the call returns
 * BN_ERR_CANCELLED at its next poll point, after removing anything it had
 * half-written. The libraries never own or set such a flag themselves. */

/* True when cancel is non-NULL and set. */
bool bn_cancelled(const volatile sig_atomic_t *cancel);

/* BN_OK, or BN_ERR_CANCELLED with the message "interrupted" when
 * bn_cancelled(cancel): `if ((st = bn_cancel_check(c, err))) return st;`. */
bn_status bn_cancel_check(const volatile sig_atomic_t *cancel, bn_error *err);

/* Lets the compiler check printf-style arguments: fmt is argument number
 * `f`, the values start at `a` (0 for a va_list). */
#if defined(__GNUC__)
#define BN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BN_PRINTF(f, a)
#endif

/* Sets err (if not NULL) to code and a printf-formatted message; returns code
 * so callers can write `return bn_error_set(err, BN_ERR_FORMAT, ...)`.
 * A message longer than BN_ERROR_MSG_MAX-1 is truncated; newlines and
 * carriage returns become spaces (messages are one line). */
bn_status bn_error_set(bn_error *err, bn_status code, const char *fmt, ...) BN_PRINTF(3, 4);

/* bn_error_set with a va_list, for a module's own error helper that adds
 * where the problem is (bn_error_prefixf, bn_error_appendf) around a
 * message its callers format. Leaves ap to the caller (va_end). */
bn_status bn_error_setv(bn_error *err, bn_status code, const char *fmt, va_list ap) BN_PRINTF(3, 0);

/* An allocation failure: sets BN_ERR_NOMEM with "<what>: out of memory
 * (<bytes> bytes)" — and ", <N> MiB" from 1 MiB on — where what_fmt says
 * what was being allocated, for which file or tensor ("t.npz: central
 * directory of 1200 members"). Returns BN_ERR_NOMEM. */
bn_status bn_error_nomem(bn_error *err, unsigned long long bytes, const char *what_fmt, ...) BN_PRINTF(3, 4);

/* Prefixes err->msg with "prefix: " (e.g. a file name), keeping the code. */
void bn_error_prefix(bn_error *err, const char *prefix);

/* bn_error_prefix with a printf-formatted prefix ("%s: member '%s'"). */
void bn_error_prefixf(bn_error *err, const char *fmt, ...) BN_PRINTF(2, 3);

/* Appends printf-formatted text to err->msg (" at byte offset 12"), keeping
 * the code; the tail is cut at BN_ERROR_MSG_MAX-1. */
void bn_error_appendf(bn_error *err, const char *fmt, ...) BN_PRINTF(2, 3);

/* Resets err to BN_OK and an empty message. */
void bn_error_clear(bn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_STATUS_H */
