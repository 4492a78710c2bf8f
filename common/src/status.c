/* status.c — the error channel (contracts in bitnet/status.h). */
#include "bitnet/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int exit_code;
} status_table[BN_STATUS_COUNT] = {
    [BN_OK] = {"BN_OK", 0},
    [BN_ERR_IO] = {"BN_ERR_IO", 2},
    [BN_ERR_FORMAT] = {"BN_ERR_FORMAT", 2},
    [BN_ERR_UNSUPPORTED] = {"BN_ERR_UNSUPPORTED", 2},
    [BN_ERR_INVALID] = {"BN_ERR_INVALID", 2},
    [BN_ERR_NOMEM] = {"BN_ERR_NOMEM", 3},
    [BN_ERR_NOT_FOUND] = {"BN_ERR_NOT_FOUND", 2},
    [BN_ERR_PARITY] = {"BN_ERR_PARITY", 1},
    [BN_ERR_INTERNAL] = {"BN_ERR_INTERNAL", 3},
    [BN_ERR_CANCELLED] = {"BN_ERR_CANCELLED", 130}, /* 128 + SIGINT, the shells' convention */
};

const char *bn_status_name(bn_status s) {
    if ((unsigned)s >= BN_STATUS_COUNT) return "BN_ERR_UNKNOWN";
    return status_table[s].name;
}

int bn_status_exit_code(bn_status s) {
    if ((unsigned)s >= BN_STATUS_COUNT) return 3;
    return status_table[s].exit_code;
}

bool bn_cancelled(const volatile sig_atomic_t *cancel) { return cancel && *cancel; }

bn_status bn_cancel_check(const volatile sig_atomic_t *cancel, bn_error *err) {
    return bn_cancelled(cancel) ? bn_error_set(err, BN_ERR_CANCELLED, "interrupted") : BN_OK;
}

/* Messages are one line by contract: fold any newline a caller let in. */
static void one_line(char *msg) {
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

bn_status bn_error_setv(bn_error *err, bn_status code, const char *fmt, va_list ap) {
    if (err) {
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        one_line(err->msg);
        err->code = code;
    }
    return code;
}

bn_status bn_error_set(bn_error *err, bn_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bn_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

bn_status bn_error_nomem(bn_error *err, unsigned long long bytes, const char *what_fmt, ...) {
    if (!err) return BN_ERR_NOMEM;
    va_list ap;
    va_start(ap, what_fmt);
    bn_error_setv(err, BN_ERR_NOMEM, what_fmt, ap);
    va_end(ap);
    if (bytes >= 1ull << 20) bn_error_appendf(err, ": out of memory (%llu bytes, %llu MiB)", bytes, bytes >> 20);
    else bn_error_appendf(err, ": out of memory (%llu bytes)", bytes);
    return BN_ERR_NOMEM;
}

void bn_error_prefix(bn_error *err, const char *prefix) {
    if (!err || !prefix) return;
    /* Shift the message right to make room; the tail is cut if it must be. */
    size_t lp = strlen(prefix), lm = strlen(err->msg);
    if (lp + 2 >= sizeof err->msg) lp = sizeof err->msg - 3;
    if (lp + 2 + lm >= sizeof err->msg) lm = sizeof err->msg - 1 - lp - 2;
    memmove(err->msg + lp + 2, err->msg, lm);
    memcpy(err->msg, prefix, lp);
    err->msg[lp] = ':';
    err->msg[lp + 1] = ' ';
    err->msg[lp + 2 + lm] = '\0';
}

void bn_error_prefixf(bn_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[BN_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    one_line(prefix);
    bn_error_prefix(err, prefix);
}

void bn_error_appendf(bn_error *err, const char *fmt, ...) {
    if (!err) return;
    size_t used = strlen(err->msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + used, sizeof err->msg - used, fmt, ap);
    va_end(ap);
    one_line(err->msg + used);
}

void bn_error_clear(bn_error *err) {
    if (!err) return;
    err->code = BN_OK;
    err->msg[0] = '\0';
}
