/* taps.c — tap names and glob selection. */
#include "bitnet/taps.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bn_tap_set {
    int64_t n_layer;
    int64_t count;
    bool *on; /* [(n_layer + 1) * BN_TAP_KIND_COUNT]: slot 0 = global taps */
};

static const char *const kind_names[BN_TAP_KIND_COUNT] = {
    [BN_TAP_ATTN_NORM] = "attn_norm",
    [BN_TAP_ATTN_Q] = "attn_q",
    [BN_TAP_ATTN_K] = "attn_k",
    [BN_TAP_ATTN_V] = "attn_v",
    [BN_TAP_ATTN_Q_ROPE] = "attn_q_rope",
    [BN_TAP_ATTN_K_ROPE] = "attn_k_rope",
    [BN_TAP_ATTN_SCORES] = "attn_scores",
    [BN_TAP_ATTN_PROBS] = "attn_probs",
    [BN_TAP_ATTN_CTX] = "attn_ctx",
    [BN_TAP_ATTN_SUB_NORM] = "attn_sub_norm",
    [BN_TAP_ATTN_OUT] = "attn_out",
    [BN_TAP_FFN_INP] = "ffn_inp",
    [BN_TAP_FFN_NORM] = "ffn_norm",
    [BN_TAP_FFN_GATE] = "ffn_gate",
    [BN_TAP_FFN_UP] = "ffn_up",
    [BN_TAP_FFN_ACT] = "ffn_act",
    [BN_TAP_FFN_SUB_NORM] = "ffn_sub_norm",
    [BN_TAP_FFN_OUT] = "ffn_out",
    [BN_TAP_OUT] = "out",
    [BN_TAP_IN_Q8_FIRST + 0] = "attn_q.in_q8",
    [BN_TAP_IN_Q8_FIRST + 1] = "attn_q.in_scale",
    [BN_TAP_IN_Q8_FIRST + 2] = "attn_k.in_q8",
    [BN_TAP_IN_Q8_FIRST + 3] = "attn_k.in_scale",
    [BN_TAP_IN_Q8_FIRST + 4] = "attn_v.in_q8",
    [BN_TAP_IN_Q8_FIRST + 5] = "attn_v.in_scale",
    [BN_TAP_IN_Q8_FIRST + 6] = "attn_output.in_q8",
    [BN_TAP_IN_Q8_FIRST + 7] = "attn_output.in_scale",
    [BN_TAP_IN_Q8_FIRST + 8] = "ffn_gate.in_q8",
    [BN_TAP_IN_Q8_FIRST + 9] = "ffn_gate.in_scale",
    [BN_TAP_IN_Q8_FIRST + 10] = "ffn_up.in_q8",
    [BN_TAP_IN_Q8_FIRST + 11] = "ffn_up.in_scale",
    [BN_TAP_IN_Q8_FIRST + 12] = "ffn_down.in_q8",
    [BN_TAP_IN_Q8_FIRST + 13] = "ffn_down.in_scale",
    [BN_TAP_TOKEN_EMBD] = "token_embd",
    [BN_TAP_OUTPUT_NORM] = "output_norm",
    [BN_TAP_LOGITS] = "logits",
};

const char *bn_tap_kind_name(bn_tap_kind kind) {
    return (unsigned)kind < BN_TAP_KIND_COUNT ? kind_names[kind] : "?";
}

bool bn_tap_kind_opt_in(bn_tap_kind kind) {
    return kind == BN_TAP_ATTN_SCORES || kind == BN_TAP_ATTN_PROBS ||
           (kind >= BN_TAP_IN_Q8_FIRST && kind < BN_TAP_BLOCK_KINDS);
}

static bool kind_is_global(int kind) { return kind >= BN_TAP_BLOCK_KINDS; }

char *bn_tap_name(char *buf, size_t size, int layer, bn_tap_kind kind) {
    if (layer < 0) snprintf(buf, size, "%s", bn_tap_kind_name(kind));
    else snprintf(buf, size, "blk.%d.%s", layer, bn_tap_kind_name(kind));
    return buf;
}

bool bn_tap_parse(const char *name, int *layer, bn_tap_kind *kind) {
    const char *rest = name;
    int il = -1;
    if (!strncmp(name, "blk.", 4)) {
        char *end;
        long v = strtol(name + 4, &end, 10);
        if (end == name + 4 || *end != '.' || v < 0 || v > 1000000) return false;
        il = (int)v;
        rest = end + 1;
    }
    for (int k = 0; k < BN_TAP_KIND_COUNT; k++)
        if (!strcmp(rest, kind_names[k]) && (il < 0) == kind_is_global(k)) {
            *layer = il;
            *kind = (bn_tap_kind)k;
            return true;
        }
    return false;
}

static bn_status set_alloc(int64_t n_layer, bn_tap_set **out, bn_error *err) {
    *out = NULL;
    if (n_layer < 0 || n_layer > 100000)
        return bn_error_set(err, BN_ERR_INVALID, "tap set: bad layer count %lld", (long long)n_layer);
    bn_tap_set *s = calloc(1, sizeof *s);
    if (s) s->on = calloc((size_t)(n_layer + 1) * BN_TAP_KIND_COUNT, sizeof *s->on);
    if (!s || !s->on) {
        free(s);
        return bn_error_nomem(err, (unsigned long long)(n_layer + 1) * BN_TAP_KIND_COUNT * sizeof *s->on,
                              "the tap set of %lld blocks", (long long)n_layer);
    }
    s->n_layer = n_layer;
    *out = s;
    return BN_OK;
}

bn_status bn_tap_set_none(int64_t n_layer, bn_tap_set **out, bn_error *err) {
    return set_alloc(n_layer, out, err);
}

/* Marks every tap whose name matches `glob` (NULL: the default set);
 * returns how many matched. */
static int64_t select_taps(bn_tap_set *s, const char *glob) {
    int64_t matched = 0;
    char name[96];
    for (int64_t slot = 0; slot <= s->n_layer; slot++)
        for (int k = 0; k < BN_TAP_KIND_COUNT; k++) {
            if (kind_is_global(k) != (slot == 0)) continue;
            bool hit = glob ? fnmatch(glob, bn_tap_name(name, sizeof name, (int)slot - 1, (bn_tap_kind)k), 0) == 0
                            : !bn_tap_kind_opt_in((bn_tap_kind)k);
            if (!hit) continue;
            matched++;
            bool *on = &s->on[slot * BN_TAP_KIND_COUNT + k];
            s->count += !*on;
            *on = true;
        }
    return matched;
}

bn_status bn_tap_set_create(int64_t n_layer, const char *globs, bn_tap_set **out, bn_error *err) {
    *out = NULL; /* also on a bad pattern, as every other _create */
    bn_tap_set *s;
    bn_status st = set_alloc(n_layer, &s, err);
    if (st) return st;
    if (!globs) {
        select_taps(s, NULL);
        *out = s;
        return BN_OK;
    }
    char glob[256];
    for (const char *p = globs; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof glob) {
            bn_tap_set_free(s);
            return bn_error_set(err, BN_ERR_INVALID, "--taps: empty or too long pattern in '%s'", globs);
        }
        memcpy(glob, p, len);
        glob[len] = '\0';
        if (select_taps(s, glob) == 0) {
            bn_tap_set_free(s);
            return bn_error_set(err, BN_ERR_INVALID,
                                "--taps: pattern '%s' matches no tap of this model (%lld blocks; names like "
                                "blk.0.attn_q, logits)",
                                glob, (long long)n_layer);
        }
        p += len + (p[len] == ',');
    }
    *out = s;
    return BN_OK;
}

void bn_tap_set_free(bn_tap_set *s) {
    if (!s) return;
    free(s->on);
    free(s);
}

bn_status bn_tap_set_copy(const bn_tap_set *s, int64_t n_layer, bn_tap_set **out, bn_error *err) {
    if (s && s->n_layer != n_layer) {
        *out = NULL;
        return bn_error_set(err, BN_ERR_INVALID, "tap set of %lld blocks used for a model of %lld",
                            (long long)s->n_layer, (long long)n_layer);
    }
    bn_status st = set_alloc(n_layer, out, err);
    if (st || !s) return st;
    memcpy((*out)->on, s->on, (size_t)(n_layer + 1) * BN_TAP_KIND_COUNT * sizeof *s->on);
    (*out)->count = s->count;
    return BN_OK;
}

bool bn_tap_set_add(bn_tap_set *s, int layer, bn_tap_kind kind) {
    if (layer < -1 || layer >= s->n_layer || (unsigned)kind >= BN_TAP_KIND_COUNT ||
        kind_is_global(kind) != (layer < 0))
        return false;
    bool *on = &s->on[(int64_t)(layer + 1) * BN_TAP_KIND_COUNT + kind];
    s->count += !*on;
    *on = true;
    return true;
}

bool bn_tap_set_has(const bn_tap_set *s, int layer, bn_tap_kind kind) {
    if (!s || layer < -1 || layer >= s->n_layer || (unsigned)kind >= BN_TAP_KIND_COUNT) return false;
    return s->on[(int64_t)(layer + 1) * BN_TAP_KIND_COUNT + kind];
}

const bool *bn_tap_set_table(const bn_tap_set *s) { return s->on; }
int64_t bn_tap_set_count(const bn_tap_set *s) { return s->count; }
