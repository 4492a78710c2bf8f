/* next_checks.h — what to look at next when a tap diverges and no hint
 * (hints.h) names a cause: a short checklist per tap kind, derived from what
 * computes that tap (its weights, its op, its inputs). Written once here so
 * that every front end (the reports, a CLI summary) gives the same advice. */
#ifndef PARITY_NEXT_CHECKS_H
#define PARITY_NEXT_CHECKS_H

#ifdef __cplusplus
extern "C" {
#endif

enum { PARITY_NEXT_CHECKS_MAX = 4 };

/* The checklist of one tap kind. */
typedef struct parity_next_checks {
    const char *kind;                           /* "attn_q", "in_q8", "*_norm" ... as matched */
    const char *computes;                       /* what produces the tap, one phrase */
    const char *checks[PARITY_NEXT_CHECKS_MAX]; /* things to check, most likely first; NULL-terminated
                                                   when fewer than the maximum */
} parity_next_checks;

/* The checklist for a canonical tap name ("blk.3.attn_q", "logits",
 * "blk.0.ffn_down.in_q8"): by its kind (the name after "blk.N."; the last
 * component for in_q8/in_scale), with every norm sharing one entry. For a
 * name of no known kind (or NULL), a generic checklist whose kind is "?";
 * never NULL. The result is static. */
const parity_next_checks *parity_next_checks_for(const char *tap);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_NEXT_CHECKS_H */
