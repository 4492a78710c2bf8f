/* clock.h — the one monotonic clock the project times itself with (load,
 * evaluation, compare and hash durations in receipts and `run --timings`,
 * progress redraws). Monotonic, so a wall-clock step never makes a duration
 * negative. */
#ifndef BITNET_CLOCK_H
#define BITNET_CLOCK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds on CLOCK_MONOTONIC from an unspecified origin; only differences of
 * two readings mean anything. Never fails. */
double bn_clock_seconds(void);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_CLOCK_H */
