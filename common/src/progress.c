/* progress.c — see progress.h. */
#include "bitnet/progress.h"

#include <stddef.h>

void bn_progress_report(const bn_progress_sink *s, const bn_progress *p) {
    if (s && s->fn) s->fn(s->user, p);
}
