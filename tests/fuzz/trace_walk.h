/* trace_walk.h — what the trace fuzz targets (fuzz_npz, fuzz_trace_meta,
 * fuzz_trace_index) do with a trace that opened: touch everything the
 * open promised is valid (evaluations and their tokens, scalars, taps,
 * ggml nodes and the arrays they name) and check the trace's invariants.
 * A violated invariant traps; ASan checks every size on the way. */
#ifndef BITPARITY_FUZZ_TRACE_WALK_H
#define BITPARITY_FUZZ_TRACE_WALK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity/trace.h"
#include "fuzz_support.h"

/* A failed open leaves no trace and one line naming the container. */
static inline void trace_walk_check_error(const parity_trace *t, const bn_error *err, const char *name) {
    CHECK(t == NULL && err->code != BN_OK);
    CHECK(strchr(err->msg, '\n') == NULL && strncmp(err->msg, name, strlen(name)) == 0);
}

/* Loads `name` of evaluation k as float32 and touches its last element. */
static inline void trace_walk_load(const parity_trace *t, int64_t k, const char *name) {
    float *d = NULL;
    npz_array_info info;
    bn_error err;
    if (parity_trace_load_f32(t, k, name, &d, &info, &err) == BN_OK) {
        CHECK(d != NULL);
        if (info.nelem) d[info.nelem - 1] += 0; /* ASan checks the size */
        free(d);
    } else {
        CHECK(d == NULL && strchr(err.msg, '\n') == NULL);
    }
}

static inline void trace_walk_nodes(const parity_trace *t, int64_t k) {
    for (int64_t i = 0; i < parity_trace_node_count(t, k); i++) {
        const parity_node *nd = parity_trace_node(t, k, i);
        const npz_member *m = npz_member_at(parity_trace_npz(t), nd->member_index);
        CHECK(m && strcmp(m->name, nd->member) == 0 && nd->name && nd->op && nd->type);
        CHECK(nd->seq >= 0 && nd->line >= 2);
        for (int d = 0; d < 4; d++) CHECK(nd->ne[d] >= 0);
        if (i) CHECK(nd->seq > parity_trace_node(t, k, i - 1)->seq);
        /* The first node of that name and op is found, and is not after this one. */
        int64_t first = parity_trace_find_node(t, k, nd->name, nd->op, 0);
        CHECK(first >= 0 && first <= i);
        trace_walk_load(t, k, nd->member);
    }
    CHECK(parity_trace_node(t, k, parity_trace_node_count(t, k)) == NULL);
}

static inline void trace_walk(const parity_trace *t) {
    parity_layout layout = parity_trace_layout(t);
    CHECK(layout == PARITY_LAYOUT_CANONICAL || layout == PARITY_LAYOUT_GGML_NODES);
    const char *id = parity_trace_get(t, "trace");
    CHECK(id && strcmp(id, PARITY_TRACE_ID) == 0);
    CHECK(strcmp(parity_trace_get(t, "layout"), parity_trace_layout_name(layout)) == 0);
    int64_t n_evals = parity_trace_eval_count(t);
    CHECK(n_evals >= 1 && parity_trace_eval(t, n_evals) == NULL && parity_trace_eval(t, -1) == NULL);
    for (int64_t k = 0; k < n_evals; k++) {
        const parity_eval *ev = parity_trace_eval(t, k);
        char want[32];
        snprintf(want, sizeof want, "e%lld", (long long)k);
        CHECK(ev && ev->id && strcmp(ev->id, want) == 0 && ev->n_tokens > 0 && ev->tokens && ev->p0 >= 0);
        for (int64_t i = 0; i < ev->n_tokens; i++) CHECK(ev->tokens[i] >= 0);
        if (layout == PARITY_LAYOUT_GGML_NODES) {
            CHECK(parity_trace_node_count(t, k) >= 1);
            trace_walk_nodes(t, k);
        } else {
            CHECK(parity_trace_node_count(t, k) == 0);
            for (int64_t i = 0; i < parity_trace_tap_count(t); i++) trace_walk_load(t, k, parity_trace_tap_name(t, i));
        }
    }
    for (int64_t i = 0; i < parity_trace_tap_count(t); i++) {
        const char *tap = parity_trace_tap_name(t, i);
        CHECK(tap && *tap);
    }
    /* Keys are unique (duplicates are rejected), so each one finds itself. */
    for (int64_t i = 0; i < parity_trace_scalar_count(t); i++) {
        const char *key = parity_trace_scalar_key(t, i), *value = parity_trace_scalar_value(t, i);
        CHECK(key && value && parity_trace_get(t, key) == value);
        int64_t v;
        bn_error err;
        bn_status st = parity_trace_get_int(t, key, &v, &err);
        CHECK(st == BN_OK || (st == BN_ERR_FORMAT && strchr(err.msg, '\n') == NULL));
    }
    CHECK(parity_trace_scalar_key(t, parity_trace_scalar_count(t)) == NULL);
    int64_t n_greedy;
    const int32_t *greedy = parity_trace_greedy_tokens(t, &n_greedy);
    CHECK(n_greedy >= 0 && (n_greedy == 0 || greedy));
    for (int64_t i = 0; i < n_greedy; i++) CHECK(greedy[i] >= 0);
}

#endif
