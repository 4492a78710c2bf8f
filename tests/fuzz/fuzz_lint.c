/* fuzz_lint.c — libFuzzer target for `bitparity lint` on an untrusted GGUF
 * (parity_lint_memory): lint reads what the model binder never looks at
 * when it refuses a file (I2_S codes and scales of any tensor, norms of any
 * type, vocabulary arrays, keys of any type), so every finding must come
 * out well formed and the document must be writable whatever the file holds.
 * Seeds: tests/fuzz/seeds/gguf and the fixture models (ci/fuzz.sh). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_support.h"
#include "parity/doc.h"
#include "parity/lint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    parity_lint_result *r = NULL;
    bn_error err;
    if (parity_lint_memory(data, size, "fuzz.gguf", &r, &err) != BN_OK) {
        CHECK(r == NULL && strchr(err.msg, '\n') == NULL);
        return 0;
    }
    size_t by_severity[3] = {0, 0, 0};
    for (size_t i = 0; i < r->n; i++) {
        const parity_lint_finding *f = &r->findings[i];
        CHECK(f->rule && f->rule->id && f->subject && f->message && f->message[0]);
        CHECK(strchr(f->message, '\n') == NULL && strchr(f->subject, '\n') == NULL); /* one line each */
        CHECK((unsigned)f->rule->severity < 3);
        by_severity[f->rule->severity]++;
        if (i) CHECK(r->findings[i - 1].rule <= f->rule); /* rule-table order */
    }
    for (int s = 0; s < 3; s++) CHECK(by_severity[s] == r->count[s]);
    parity_doc_builder b = {0, 0};
    parity_doc_node *root = parity_doc_root(&b);
    parity_lint_to_doc(r, &b, root);
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull && !b.oom) {
        CHECK(parity_doc_emit(root, PARITY_DOC_JSON, devnull, &err) == BN_OK);
        CHECK(parity_doc_emit(root, PARITY_DOC_YAML, devnull, &err) == BN_OK);
    }
    if (devnull) fclose(devnull);
    parity_doc_free(root);
    parity_lint_result_free(r);
    return 0;
}
