/* policy_builtin.c — the built-in policies: every parity/policies/ .yaml compiled in
 * at build time (see embedded.h). */
#include "embedded.h"
#include "parity/policy.h"

const char *parity_policy_builtin_text(const char *name) {
    return embedded_find(parity_policies_names, parity_policies_texts, parity_policies_count, name);
}

const char *const *parity_policy_builtin_names(size_t *n) {
    *n = parity_policies_count;
    return parity_policies_names;
}
