/* fuzz_tapmap.c — libFuzzer target for tap-map YAML files (user-supplied
 * with --map): arbitrary text is parsed; a map that loads must describe
 * well-formed rules. */
#include <stdint.h>
#include <string.h>

#include "parity/tapmap.h"
#include "fuzz_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_error err;
    parity_tapmap *m = NULL;
    if (parity_tapmap_load_string((const char *)data, size, "fuzz.yaml", &m, &err) == BN_OK) {
        for (size_t i = 0; i < parity_tapmap_rule_count(m); i++) {
            const parity_map_rule *r = parity_tapmap_rule(m, i);
            CHECK(r && r->tap && r->n_ops >= 0 && r->n_ops <= PARITY_MAP_MAX_OPS);
        }
        CHECK(parity_tapmap_name(m) != NULL);
    } else {
        CHECK(strchr(err.msg, '\n') == NULL);
    }
    parity_tapmap_free(m);
    return 0;
}
