#define _POSIX_C_SOURCE 200809L
#include "bitnet/clock.h"

#include <time.h>

double bn_clock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
