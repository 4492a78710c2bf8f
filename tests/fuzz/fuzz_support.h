/* fuzz_support.h — what the libFuzzer targets share: CHECK (a violated
 * property is a crash libFuzzer records, in every build type) and a scratch
 * folder for targets whose code under test reads and writes files. */
#ifndef BITPARITY_FUZZ_SUPPORT_H
#define BITPARITY_FUZZ_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHECK(c)                    \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

#define FUZZ_SCRATCH_FILES 4

/* One scratch folder per process under /tmp, with up to FUZZ_SCRATCH_FILES
 * file paths in it; everything is removed at exit. */
typedef struct fuzz_scratch {
    char dir[64];
    char path[FUZZ_SCRATCH_FILES][96];
    int n;
} fuzz_scratch;

static inline fuzz_scratch *fuzz_scratch_state(void) {
    static fuzz_scratch s; /* the process's one scratch folder (atexit needs a static) */
    return &s;
}

static inline void fuzz_scratch_remove(void) {
    fuzz_scratch *s = fuzz_scratch_state();
    for (int i = 0; i < s->n; i++) unlink(s->path[i]);
    rmdir(s->dir);
}

/* Makes /tmp/<name>.XXXXXX and the paths <dir>/<files[i]> (NULL-terminated),
 * registered for removal at exit. Returns the scratch state. */
static inline const fuzz_scratch *fuzz_scratch_open(const char *name, const char *const *files) {
    fuzz_scratch *s = fuzz_scratch_state();
    snprintf(s->dir, sizeof s->dir, "/tmp/%s.XXXXXX", name);
    CHECK(mkdtemp(s->dir) != NULL);
    for (s->n = 0; files[s->n]; s->n++) {
        CHECK(s->n < FUZZ_SCRATCH_FILES);
        snprintf(s->path[s->n], sizeof s->path[s->n], "%s/%s", s->dir, files[s->n]);
    }
    atexit(fuzz_scratch_remove);
    return s;
}

#endif
