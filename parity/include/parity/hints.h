/* hints.h — after a comparison: why the first divergent tap diverges, as
 * named hints with the numbers behind them.
 *
 * Hints look at the traces only: a constant scale factor (and the nearest of
 * √H, 1/√H, n_ff, 127, ...), SiLU vs relu² recomputed from the recorded
 * gate/up, LayerNorm vs RMSNorm and a skipped (sub-)norm recomputed from the
 * norm's recorded input, RoPE pairing (NEOX vs normal) and positions off by
 * one recomputed from the recorded pre-RoPE values, permuted heads, a
 * transposed weight (given the model), f16 rounding of the attention inputs,
 * the int8 rounding mode from the in_q8 taps and the origin of NaN/Inf, a
 * constant per-channel ratio (a norm's gamma), q/k rows permuted within
 * heads and, when that is all that differs and the attention agrees, the
 * equivalent rotary layout (which a policy may accept).
 * With a model (the subject's, the reference's or both) a failing projection
 * is recomputed from the reference's input with the weight as stored and
 * with each classic export bug applied or undone: transposed / mis-strided,
 * q/k rows permuted within heads (HF `permute`, both ways), negated, I2_S
 * codes packed linearly (hi- or lo-first), I2_S scale clamped.
 * The hint ids are listed in docs/hints.md.
 * (Tokenization mismatches are diagnosed by the comparison, which then
 * compares nothing.) Where the error is born is replay.h's question. */
#ifndef PARITY_HINTS_H
#define PARITY_HINTS_H

#include <stdbool.h>

#include "bitnet/model.h"
#include "bitnet/status.h"
#include "parity/compare.h"
#include "parity/policy.h"
#include "parity/tapmap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Adds the hints that apply to r (parity_compare_add_hint), most specific
 * first. Reads the few taps it needs around the first divergence from both
 * views. model (may be NULL) is the subject's model (the file the subject
 * ran), reference_model (may be NULL) the reference's: with either, a
 * projection that diverges is tested against the classic weight bugs (see
 * above). A passing result gets no diagnosis; whatever the verdict, two
 * traces that record different model.sha256 get the warning hint
 * "model-mismatch" first. */
bn_status parity_hints_find(parity_compare_result *r, const parity_tapview *subject, const parity_tapview *reference,
                            const bn_model *model, const bn_model *reference_model, bn_error *err);

/* After parity_hints_find: a failing r whose hints include an equivalence
 * the policy accepts (parity_policy_accepts: "equivalent-rotary-layout")
 * becomes a pass, the equivalence recorded in r->accepted. Returns whether
 * it did. */
bool parity_hints_accept(parity_compare_result *r, const parity_policy *policy);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_HINTS_H */
