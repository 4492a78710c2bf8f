/* embedded.h — text files compiled into libparity (built-in policies and tap
 * maps), generated at build time by cmake/embed_text.cmake from
 * parity/policies/ and parity/maps/ (every .yaml), so the binary needs no data
 * files and the compiled text cannot drift from the files. Internal. */
#ifndef PARITY_EMBEDDED_H
#define PARITY_EMBEDDED_H

#include <stddef.h>
#include <string.h>

extern const size_t parity_policies_count;
extern const char *const parity_policies_names[];
extern const char *const parity_policies_texts[];
extern const size_t parity_maps_count;
extern const char *const parity_maps_names[];
extern const char *const parity_maps_texts[];

/* The text named `name` among n (names, texts), or NULL. */
static inline const char *embedded_find(const char *const *names, const char *const *texts, size_t n,
                                        const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return texts[i];
    return NULL;
}

#endif
