/* fuzz_gate.c — libFuzzer target for the gate's two readers: any byte string
 * read as a gate manifest and as a gate summary must load or fail with a
 * located message, never crash or leak; a summary that loads must keep its
 * counts consistent with its entries. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parity/gate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const vars[] = {"shared=/nonexistent", "x=y"};
    bn_error err;
    bn_error_clear(&err);
    size_t n = 0;
    /* Every failure names the origin: a message without it is a bug. */
    if (parity_gate_manifest_check("fuzz/gate.yaml", (const char *)data, size, vars, 2, &n, &err) != BN_OK &&
        strncmp(err.msg, "fuzz/gate.yaml", 14) != 0)
        __builtin_trap();
    bn_error_clear(&err);
    parity_gate_summary *s = NULL;
    if (parity_gate_summary_parse("fuzz/summary.yaml", (const char *)data, size, &s, &err) != BN_OK) {
        if (strncmp(err.msg, "fuzz/summary.yaml", 17) != 0) __builtin_trap();
        return 0;
    }
    size_t total = 0;
    for (int v = 0; v < PARITY_GATE_VERDICT_COUNT; v++) total += s->counts[v];
    if (total != s->n) __builtin_trap();
    for (size_t i = 0; i < s->n; i++)
        if (!s->entries[i].name || (unsigned)s->entries[i].verdict >= PARITY_GATE_VERDICT_COUNT) __builtin_trap();
    (void)parity_gate_exit_code(s);
    parity_gate_summary_free(s);
    return 0;
}
