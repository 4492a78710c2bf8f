/* fuzz_compare.c — libFuzzer target for comparing a hostile trace with a
 * good one (bitparity compare/check): the input is the tap arrays of a
 * canonical subject trace, three .npy images (token_embd, blk.0.attn_norm,
 * logits) separated by the line "\n--\n", so mutations reach the .npy header
 * (dtype, shape, order) and the values (NaN, inf, denormals). The reference
 * is a fixed trace of float32 arrays of shape (2, 8), (2, 8), (2, 16).
 * Whatever the arrays, the comparison must give a result (a failure is a
 * result) or a located one-line error, and a result must keep its
 * invariants: counts add up, every tap has a status, verdict and first
 * divergence agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parity/compare.h"
#include "parity/policy.h"
#include "parity/tapmap.h"
#include "parity/trace.h"
#include "stored_zip.h"
#include "trace_walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_TAPS 3
static const char *const tap_members[N_TAPS] = {"e0/token_embd.npy", "e0/blk.0.attn_norm.npy", "e0/logits.npy"};
static const char meta_yaml[] = "trace: bitparity/v1\n"
                                "layout: canonical\n"
                                "producer: {name: bitparity}\n"
                                "settings: {numerics: ggml-compat}\n"
                                "evaluations:\n"
                                "  - {id: e0, tokens: [5, 9], p0: 0}\n"
                                "taps: [token_embd, blk.0.attn_norm, logits]\n";

static parity_trace *open_trace(const stored_zip_member *m, uint8_t **zip, const char *name) {
    size_t len;
    *zip = stored_zip_build(m, N_TAPS + 1, &len);
    if (!*zip) return NULL;
    parity_trace *t = NULL;
    bn_error err;
    if (parity_trace_open_memory(*zip, len, name, &t, &err) != BN_OK) trace_walk_check_error(t, &err, name);
    return t;
}

static void check_result(const parity_compare_result *r) {
    const parity_compare_counts *c = &r->counts;
    CHECK(r->n_evals <= 1 && (r->n_taps == 0 || r->taps) && c->taps == (int64_t)r->n_taps);
    int64_t by_status[PARITY_TAP_STATUS_COUNT] = {0};
    for (size_t i = 0; i < r->n_taps; i++) {
        const parity_tap_result *t = &r->taps[i];
        CHECK(t->name && t->status < PARITY_TAP_STATUS_COUNT && t->ndim >= 0 && t->ndim <= 3);
        by_status[t->status]++;
    }
    CHECK(c->pass == by_status[PARITY_TAP_PASS] && c->fail == by_status[PARITY_TAP_FAIL]);
    CHECK(c->compared == c->pass + c->fail && c->bit_identical <= c->compared);
    CHECK(c->shape_mismatch == by_status[PARITY_TAP_SHAPE_MISMATCH]);
    if (r->pass) CHECK(c->fail == 0 && c->shape_mismatch == 0 && !r->tokenization_mismatch && c->compared >= 1);
    if (r->first.found) CHECK(r->first.tap_index < r->n_taps && r->first.tap == r->taps[r->first.tap_index].name);
    CHECK(strchr(r->diagnosis, '\n') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the reference: good arrays */
    static uint8_t ref_npy[N_TAPS][256];
    static size_t ref_len[N_TAPS];
    const int64_t shapes[N_TAPS][2] = {{2, 8}, {2, 8}, {2, 16}};
    for (int i = 0; i < N_TAPS; i++) {
        ref_len[i] = stored_zip_npy_f32(shapes[i], 2, 0.25f * (float)(i + 1), ref_npy[i], sizeof ref_npy[i]);
        CHECK(ref_len[i]);
    }
    stored_zip_member ref[N_TAPS + 1], sub[N_TAPS + 1];
    /* the subject: the input cut at "\n--\n" into the three arrays (missing ones empty) */
    const uint8_t *p = data, *end = data + size;
    for (int i = 0; i < N_TAPS; i++) {
        ref[i] = (stored_zip_member){tap_members[i], ref_npy[i], ref_len[i]};
        const uint8_t *cut = NULL;
        for (const uint8_t *q = p; q + 4 <= end; q++)
            if (memcmp(q, "\n--\n", 4) == 0) {
                cut = q;
                break;
            }
        const uint8_t *stop = i < N_TAPS - 1 && cut ? cut : end;
        sub[i] = (stored_zip_member){tap_members[i], p, (size_t)(stop - p)};
        p = stop < end ? stop + 4 : end;
        if (p > end) p = end;
    }
    ref[N_TAPS] = sub[N_TAPS] = (stored_zip_member){"meta.yaml", meta_yaml, sizeof meta_yaml - 1};
    uint8_t *ref_zip = NULL, *sub_zip = NULL;
    parity_trace *rt = open_trace(ref, &ref_zip, "ref.npz"), *st = open_trace(sub, &sub_zip, "sub.npz");
    CHECK(rt != NULL);
    parity_tapmap *rm = NULL, *sm = NULL;
    parity_policy *pol = NULL;
    bn_error err;
    if (st) {
        CHECK(parity_tapmap_for_trace(rt, &rm, &err) == BN_OK && parity_tapmap_for_trace(st, &sm, &err) == BN_OK);
        CHECK(parity_policy_load_builtin(parity_compare_default_policy(st, rt, NULL, 0), &pol, &err) == BN_OK);
        for (int swap = 0; swap < 2; swap++) {
            parity_compare_result *r = NULL;
            bn_status s = swap ? parity_compare(rt, rm, st, sm, pol, NULL, &r, &err)
                               : parity_compare(st, sm, rt, rm, pol, NULL, &r, &err);
            if (s == BN_OK) {
                CHECK(r != NULL);
                check_result(r);
                parity_compare_result_free(r);
            } else {
                CHECK(r == NULL && strchr(err.msg, '\n') == NULL);
            }
        }
    }
    parity_policy_free(pol);
    parity_tapmap_free(rm);
    parity_tapmap_free(sm);
    parity_trace_close(st);
    parity_trace_close(rt);
    free(ref_zip);
    free(sub_zip);
    return 0;
}
