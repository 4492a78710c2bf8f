/* lint.h — `bitparity lint`: rules that read a GGUF export and name the
 * classic converter bugs (docs/lint.md lists every rule).
 *
 * Lint reads the file itself through the GGUF reader (bitnet/gguf.h), so it
 * works on files the engine's model binder refuses (rope dimension ≠
 * head_dim, vocabulary ≠ embedding rows, a quantized norm): it binds the
 * model only to report whether the engine accepts it. Each finding has a
 * stable rule id, the rule's severity and one line naming the tensor or key.
 */
#ifndef PARITY_LINT_H
#define PARITY_LINT_H

#include <signal.h>
#include <stddef.h>

#include "bitnet/gguf.h"
#include "bitnet/status.h"
#include "parity/doc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum parity_lint_severity {
    PARITY_LINT_INFO = 0,
    PARITY_LINT_WARNING = 1,
    PARITY_LINT_ERROR = 2
} parity_lint_severity;

/* "info", "warning", "error". */
const char *parity_lint_severity_name(parity_lint_severity s);

typedef struct parity_lint_rule {
    const char *id;               /* stable: "norm-quantized", ... */
    parity_lint_severity severity;
    const char *summary;          /* what the rule checks, one line */
} parity_lint_rule;

/* The rule table (docs/lint.md): *n rules. */
const parity_lint_rule *parity_lint_rules(size_t *n);

typedef struct parity_lint_finding {
    const parity_lint_rule *rule;
    char *subject; /* the tensor or key it is about (owned) */
    char *message; /* one line (owned) */
} parity_lint_finding;

typedef struct parity_lint_result {
    char *path;                    /* the file linted (owned) */
    parity_lint_finding *findings; /* [n] in rule-table order, then file order */
    size_t n;
    size_t count[3];               /* by severity: info, warning, error */
} parity_lint_result;

/* Opens path (IO/FORMAT from the GGUF reader for an unreadable or invalid
 * file: those are input errors, not findings) and lints it. The result
 * holds every finding whatever their severity; other errors: NOMEM,
 * CANCELLED when *cancel (NULL: never) is found set (polled per tensor). */
bn_status parity_lint_file(const char *path, const volatile sig_atomic_t *cancel, parity_lint_result **out,
                           bn_error *err);

/* The same for a GGUF in memory (fuzzing, tests); `name` is used in
 * messages; the buffer is only read during the call. */
bn_status parity_lint_memory(const void *data, size_t size, const char *name, parity_lint_result **out,
                             bn_error *err);

/* The result as a document: {lint: bitparity/lint-v1, model, summary {error,
 * warning, info}, findings [{rule, severity, subject, message}]} under
 * root. */
void parity_lint_to_doc(const parity_lint_result *r, parity_doc_builder *b, parity_doc_node *root);

void parity_lint_result_free(parity_lint_result *r); /* NULL is fine */

#ifdef __cplusplus
}
#endif

#endif /* PARITY_LINT_H */
