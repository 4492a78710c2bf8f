/* tapmap_builtin.c — the built-in tap maps: every parity/maps/ .yaml compiled in at
 * build time (see embedded.h). */
#include "embedded.h"
#include "parity/tapmap.h"

const char *parity_tapmap_builtin_text(const char *name) {
    return embedded_find(parity_maps_names, parity_maps_texts, parity_maps_count, name);
}

const char *const *parity_tapmap_builtin_names(size_t *n) {
    *n = parity_maps_count;
    return parity_maps_names;
}
