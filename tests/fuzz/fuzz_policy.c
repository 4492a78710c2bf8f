/* fuzz_policy.c — libFuzzer target for the policy parser: any byte string
 * must load or fail with a located message, never crash or leak; a policy
 * that loads must resolve and check without surprises. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parity/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    parity_policy *p = NULL;
    bn_error err;
    bn_error_clear(&err);
    if (parity_policy_load_string((const char *)data, size, "fuzz.yaml", &p, &err) != BN_OK) {
        /* Every failure names the origin: a message without it is a bug. */
        if (strncmp(err.msg, "fuzz.yaml", 9) != 0) __builtin_trap();
        return 0;
    }
    static const char *const taps[] = {"token_embd", "blk.0.attn_norm", "blk.12.ffn_out", "logits", "", "x"};
    parity_metrics m;
    parity_logits_summary s;
    memset(&m, 0, sizeof m);
    memset(&s, 0, sizeof s);
    m.nmse = 1e-3;
    m.cosine = 0.9;
    s.kld_mean = 0.5;
    for (size_t i = 0; i < sizeof taps / sizeof taps[0]; i++) {
        parity_limits lim = parity_policy_resolve(p, taps[i]);
        parity_check c = parity_policy_check(&lim, &m, &s);
        if (!c.pass && !c.metric) __builtin_trap();
    }
    (void)parity_policy_sha256(p);
    (void)parity_policy_calibrated_for(p, "f32");
    parity_policy_free(p);
    return 0;
}
