/* fault.c — the seeded faults (fault.h): one table giving each fault's name,
 * the porting mistake it reproduces, the tap where it first shows, and how it
 * is applied; then the appliers, in three kinds:
 *
 *   model transforms   change a copy of the bound model (hyper-parameters, or
 *                      weights copied and altered; the source is untouched);
 *   context options    set a genuine numeric variant of bn_ctx_params;
 *   tap edits          change a tapped value in place, through hooks that wrap
 *                      the caller's observe and inject hooks.
 *
 * Nothing here runs inside the forward pass except the tap edits, and those
 * only at the taps they name. */
#include "bitnet/fault.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/quant.h"
#include "bitnet/taps.h"

/* When an edit runs at its tap: before the observer records the value (the
 * op computed it wrongly, and the trace shows it there), or after the
 * injector wrote it (a bad value enters the rest of the graph unrecorded;
 * the first tap after it shows it). */
typedef enum edit_stage { EDIT_BEFORE_OBSERVE, EDIT_AFTER_INJECT } edit_stage;

typedef void tap_edit_fn(const bn_hparams *hp, bn_tap *tap);

#define EVERY_BLOCK (-2)
#define MAX_EDITS 2

typedef struct tap_edit {
    int layer; /* EVERY_BLOCK, or one block */
    bn_tap_kind kind;
    edit_stage stage;
    tap_edit_fn *fn;
} tap_edit;

/* The caller's hook that an edit hook wraps. */
typedef struct inner_hook {
    const bn_tap_set *set;
    bn_tap_fn fn;
    void *user;
} inner_hook;

struct bn_faulted {
    bn_fault fault;
    const bn_model *source;
    bool transformed;      /* copy (not source) is the model to run */
    bn_model copy;         /* shares every pointer of source it does not replace */
    void **owned;          /* [n_owned] buffers of the copy */
    size_t n_owned, cap_owned;
    tap_edit edits[MAX_EDITS];
    int n_edits;
    inner_hook observe, inject;
    bn_tap_set *observe_set, *inject_set; /* the caller's sets plus the edited taps */
};

typedef bn_status apply_fn(bn_faulted *f, bn_ctx_params *p, bn_error *err);

static apply_fn model_scale_norm_weights, model_use_silu, model_use_layernorm, model_drop_sub_norms,
    model_clamp_i2s_scales, model_swap_rope_pairing, model_transpose_wo, option_shift_rope_positions,
    option_round_half_away, option_kv_cache_f32, edit_permute_qk_heads, edit_put_nan_in_ffn_act;

/* How each fault is applied shows in its applier's prefix: model_ (a
 * transform of the bound model), option_ (a context option), edit_ (a tap
 * edit). `bites` is where it first shows in a trace of a model with
 * sub-norms and every tap selected, opt-in ones included; for the two
 * faults that bite only on some models (`what` says which), where it shows
 * on a model it bites at block 0's first projection, as on the fixture
 * b158-i2s-edge (tests/test_fault.cc checks the taps on it and on a
 * synthesized model). */
static const struct {
    const char *name;  /* --fault NAME */
    const char *what;  /* the porting mistake */
    const char *bites; /* where it first shows */
    apply_fn *apply;   /* how; NULL: nothing to do */
} FAULTS[BN_FAULT_COUNT] = {
    [BN_FAULT_NONE] = {"none", "no fault", "nowhere", NULL},
    [BN_FAULT_GAMMA_INV_SQRT_H] = {"gamma-inv-sqrt-h", "block norm weights scaled by 1/sqrt(H)", "blk.0.attn_norm",
                                   model_scale_norm_weights},
    [BN_FAULT_SILU] = {"silu", "SiLU(gate)·up instead of relu(gate)²·up", "blk.0.ffn_act", model_use_silu},
    [BN_FAULT_LAYERNORM] = {"layernorm", "LayerNorm (mean subtracted) instead of RMSNorm in the blocks",
                            "blk.0.attn_norm", model_use_layernorm},
    [BN_FAULT_NO_SUBNORM] = {"no-subnorm", "the sub-norms skipped", "blk.0.attn_sub_norm", model_drop_sub_norms},
    [BN_FAULT_I2S_SCALE_CLAMP] = {"i2s-scale-clamp",
                                  "I2_S weight scales clamped to [1e-3, 1e3]; changes nothing unless a scale lies "
                                  "outside (none does in the shipped models but fixtures/models/b158-i2s-edge.gguf, "
                                  "whose blk.0.attn_q scale is 5e-4)",
                                  "blk.0.attn_q", model_clamp_i2s_scales},
    [BN_FAULT_ROPE_NORMAL] = {"rope-normal", "RoPE pairing swapped (NEOX <-> normal)", "blk.0.attn_q_rope",
                              model_swap_rope_pairing},
    [BN_FAULT_ROPE_POS_SHIFT] = {"rope-pos-shift", "RoPE positions off by one (counted from 1)", "blk.0.attn_q_rope",
                                 option_shift_rope_positions},
    [BN_FAULT_QK_HEAD_PERM] = {"qk-head-perm", "Q and K heads 2i and 2i+1 swapped (a wrong head permutation)",
                               "blk.0.attn_q", edit_permute_qk_heads},
    [BN_FAULT_ROUND_AWAY] = {"round-away",
                             "I2_S int8 activations rounded half away from zero, not to even; changes nothing "
                             "unless some x*127/amax is exactly k+0.5 with k even (rare: none is in the shipped "
                             "models but fixtures/models/b158-i2s-edge.gguf, whose block 0 input has such ties)",
                             "blk.0.attn_q.in_q8", option_round_half_away},
    [BN_FAULT_KV_F32] = {"kv-f32", "K/V cache kept in f32 under ggml-compat", "blk.0.attn_scores",
                         option_kv_cache_f32},
    [BN_FAULT_NAN] = {"nan", "one NaN in blk.1's FFN activation, after its tap", "blk.1.ffn_sub_norm",
                      edit_put_nan_in_ffn_act},
    [BN_FAULT_TRANSPOSE_WO] = {"transpose-wo", "attn_output weights used transposed (square ones only)",
                               "blk.0.attn_out", model_transpose_wo},
};

const char *bn_fault_name(bn_fault f) { return (unsigned)f < BN_FAULT_COUNT ? FAULTS[f].name : "?"; }

const char *bn_fault_description(bn_fault f) { return (unsigned)f < BN_FAULT_COUNT ? FAULTS[f].what : "?"; }

const char *bn_fault_first_tap(bn_fault f) { return (unsigned)f < BN_FAULT_COUNT ? FAULTS[f].bites : "?"; }

bool bn_fault_parse(const char *s, bn_fault *out) {
    for (int i = 0; i < BN_FAULT_COUNT; i++)
        if (!strcmp(s, FAULTS[i].name)) return *out = (bn_fault)i, true;
    return false;
}

/* ------------------------------------------------------------ the copy -- */

/* *out = a buffer of `bytes` owned by f (freed with it); `what` names it in
 * the error. */
static bn_status own(bn_faulted *f, size_t bytes, const char *what, void **out, bn_error *err) {
    if (f->n_owned == f->cap_owned) {
        const size_t cap = f->cap_owned ? 2 * f->cap_owned : 16;
        void **grown = realloc(f->owned, cap * sizeof *grown);
        if (!grown)
            return bn_error_set(err, BN_ERR_NOMEM, "fault %s: buffer list: cannot allocate %zu bytes",
                                FAULTS[f->fault].name, cap * sizeof *grown);
        f->owned = grown, f->cap_owned = cap;
    }
    if (!(*out = malloc(bytes ? bytes : 1)))
        return bn_error_set(err, BN_ERR_NOMEM, "fault %s: %s: cannot allocate %zu bytes", FAULTS[f->fault].name, what,
                            bytes);
    f->owned[f->n_owned++] = *out;
    return BN_OK;
}

/* Makes the copy the model to run (once): its own layer table, every other
 * pointer shared with the source until an applier replaces it. */
static bn_status transform(bn_faulted *f, bn_error *err) {
    if (f->transformed) return BN_OK;
    const bn_model *m = f->source;
    const size_t bytes = (size_t)m->hp.n_layer * sizeof *m->layers;
    void *layers;
    bn_status st = own(f, bytes, "layer table", &layers, err);
    if (st) return st;
    if (bytes) memcpy(layers, m->layers, bytes);
    f->copy = *m;
    f->copy.layers = layers;
    f->transformed = true;
    return BN_OK;
}

/* ---------------------------------------------------- model transforms -- */

/* gamma·(1/sqrt(H)) in a copy of every block norm and sub-norm weight (the
 * output norm is not a block norm). When 1/sqrt(H) is a power of two (H a
 * power of 4) this is bit for bit the old (x̂·gamma)·(1/sqrt(H)). */
static bn_status model_scale_norm_weights(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)p;
    bn_status st = transform(f, err);
    if (st) return st;
    const bn_hparams *hp = &f->copy.hp;
    const float s = 1.0f / sqrtf((float)hp->n_embd);
    const int64_t Dq = hp->n_head * hp->head_dim;
    for (int il = 0; il < hp->n_layer; il++) {
        bn_layer *L = &f->copy.layers[il];
        struct {
            const float **w;
            int64_t n;
        } norms[] = {{&L->attn_norm, hp->n_embd}, {&L->attn_sub_norm, Dq}, {&L->ffn_norm, hp->n_embd},
                     {&L->ffn_sub_norm, hp->n_ff}};
        for (size_t k = 0; k < sizeof norms / sizeof norms[0]; k++) {
            if (!*norms[k].w) continue;
            void *buf;
            if ((st = own(f, (size_t)norms[k].n * sizeof(float), "scaled norm weights", &buf, err))) return st;
            float *scaled = buf;
            for (int64_t i = 0; i < norms[k].n; i++) scaled[i] = (*norms[k].w)[i] * s;
            *norms[k].w = scaled;
        }
    }
    return BN_OK;
}

static bn_status model_use_silu(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)p;
    bn_status st = transform(f, err);
    if (!st) f->copy.hp.act = BN_ACT_SILU;
    return st;
}

static bn_status model_use_layernorm(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)p;
    bn_status st = transform(f, err);
    if (!st) f->copy.hp.block_norm = BN_NORM_LAYER;
    return st;
}

/* The sub-norm weights dropped; the sub-norm taps still fire (model.h). */
static bn_status model_drop_sub_norms(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)p;
    bn_status st = transform(f, err);
    for (int il = 0; !st && il < f->copy.hp.n_layer; il++)
        f->copy.layers[il].attn_sub_norm = f->copy.layers[il].ffn_sub_norm = NULL;
    return st;
}

static bn_status model_swap_rope_pairing(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)p;
    bn_status st = transform(f, err);
    if (!st) f->copy.hp.rope_neox = !f->copy.hp.rope_neox;
    return st;
}

/* An I2_S tensor keeps its scale in the float after the codes (docs/specs/i2s.md);
 * a weight whose scale is outside [lo, hi] gets a copy with it clamped. The
 * others are left shared: clamping changes nothing for them. */
static bn_status clamp_i2s_weight(bn_faulted *f, bn_weight *w, bn_error *err) {
    const float lo = 1e-3f, hi = 1e3f;
    if (w->type != BN_TYPE_I2_S) return BN_OK;
    const size_t at = (size_t)(w->n * w->k / 4);
    float scale;
    memcpy(&scale, (const uint8_t *)w->data + at, sizeof scale);
    if (!(scale < lo || scale > hi)) return BN_OK;
    uint64_t nbytes;
    void *copy;
    bn_status st = bn_type_tensor_nbytes(w->type, w->k, w->k * w->n, &nbytes, err);
    if (!st) st = own(f, (size_t)nbytes, "I2_S weight with a clamped scale", &copy, err);
    if (st) return st;
    memcpy(copy, w->data, (size_t)nbytes);
    scale = scale < lo ? lo : hi;
    memcpy((uint8_t *)copy + at, &scale, sizeof scale);
    w->data = copy;
    return BN_OK;
}

static bn_status model_clamp_i2s_scales(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)p;
    bn_status st = transform(f, err);
    for (int il = 0; !st && il < f->copy.hp.n_layer; il++)
        for (int k = 0; !st && k < BN_PROJ_COUNT; k++) st = clamp_i2s_weight(f, &f->copy.layers[il].w[k], err);
    if (!st) st = clamp_i2s_weight(f, &f->copy.lm_head, err);
    return st;
}

/* One square weight dequantized, transposed and quantized back to its own
 * type, in a buffer owned by f. */
static bn_status transpose_weight(bn_faulted *f, const char *name, bn_weight *w, bn_error *err) {
    if (w->k != w->n)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "fault %s needs square weights: %s is %lld x %lld",
                            FAULTS[f->fault].name, name, (long long)w->k, (long long)w->n);
    const int64_t n = w->k;
    const size_t floats = (size_t)(n * n) * sizeof(float);
    uint64_t nbytes;
    void *data;
    bn_status st = bn_type_tensor_nbytes(w->type, n, n * n, &nbytes, err);
    if (!st) st = own(f, (size_t)nbytes, name, &data, err);
    if (st) return st;
    float *a = malloc(floats), *t = malloc(floats);
    if (!a || !t)
        st = bn_error_set(err, BN_ERR_NOMEM, "fault %s: %s as floats: cannot allocate 2 x %zu bytes",
                          FAULTS[f->fault].name, name, floats);
    if (!st) st = bn_weight_dequantize_rows(w, 0, n, a, err);
    if (!st) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
        st = bn_quantize(w->type, t, n, n, data, (size_t)nbytes, err);
    }
    free(a), free(t);
    if (!st) {
        w->data = data;
        w->layout = BN_LAYOUT_ROWS; /* quantized row after row, whatever the model's layout */
    }
    return st;
}

static bn_status model_transpose_wo(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)p;
    bn_status st = transform(f, err);
    char name[64];
    for (int il = 0; !st && il < f->copy.hp.n_layer; il++) {
        snprintf(name, sizeof name, "blk.%d.attn_output.weight", il);
        st = transpose_weight(f, name, &f->copy.layers[il].w[BN_PROJ_O], err);
    }
    return st;
}

/* ----------------------------------------------------- context options -- */

static bn_status option_shift_rope_positions(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)f, (void)err;
    p->rope_pos_offset += 1;
    return BN_OK;
}

static bn_status option_round_half_away(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)f, (void)err;
    p->act_round = BN_ROUND_HALF_AWAY;
    return BN_OK;
}

static bn_status option_kv_cache_f32(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)f, (void)err;
    p->kv_type = BN_KV_F32;
    return BN_OK;
}

/* ----------------------------------------------------------- tap edits -- */

/* Heads 2i and 2i+1 of every token trade places; tap: [T, n_heads·D]. */
static void swap_head_pairs(const bn_hparams *hp, bn_tap *tap) {
    const int64_t T = tap->shape[0], D = hp->head_dim, n_heads = tap->shape[1] / D;
    float *x = tap->data;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h + 1 < n_heads; h += 2)
            for (int64_t d = 0; d < D; d++) {
                float *a = x + (t * n_heads + h) * D + d, tmp = *a;
                *a = a[D];
                a[D] = tmp;
            }
}

/* One bad element mid-tensor. */
static void put_nan(const bn_hparams *hp, bn_tap *tap) {
    (void)hp;
    ((float *)tap->data)[tap->shape[0] * tap->shape[1] / 2] = NAN;
}

static void add_edit(bn_faulted *f, int layer, bn_tap_kind kind, edit_stage stage, tap_edit_fn *fn) {
    f->edits[f->n_edits++] = (tap_edit){layer, kind, stage, fn};
}

static bn_status edit_permute_qk_heads(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)p, (void)err;
    add_edit(f, EVERY_BLOCK, BN_TAP_ATTN_Q, EDIT_BEFORE_OBSERVE, swap_head_pairs);
    add_edit(f, EVERY_BLOCK, BN_TAP_ATTN_K, EDIT_BEFORE_OBSERVE, swap_head_pairs);
    return BN_OK;
}

static bn_status edit_put_nan_in_ffn_act(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    (void)p, (void)err;
    if (f->source->hp.n_layer > 1) add_edit(f, 1, BN_TAP_FFN_ACT, EDIT_AFTER_INJECT, put_nan);
    return BN_OK;
}

static void run_edits(const bn_faulted *f, edit_stage stage, bn_tap *tap) {
    for (int i = 0; i < f->n_edits; i++) {
        const tap_edit *e = &f->edits[i];
        if (e->stage == stage && e->kind == tap->kind && (e->layer == EVERY_BLOCK || e->layer == tap->layer))
            e->fn(&bn_faulted_model(f)->hp, tap);
    }
}

static bn_status edit_then_observe(void *user, bn_tap *tap, bn_error *err) {
    const bn_faulted *f = user;
    run_edits(f, EDIT_BEFORE_OBSERVE, tap);
    return bn_tap_set_has(f->observe.set, tap->layer, tap->kind) ? f->observe.fn(f->observe.user, tap, err) : BN_OK;
}

static bn_status inject_then_edit(void *user, bn_tap *tap, bn_error *err) {
    const bn_faulted *f = user;
    if (bn_tap_set_has(f->inject.set, tap->layer, tap->kind)) {
        bn_status st = f->inject.fn(f->inject.user, tap, err);
        if (st) return st;
    }
    run_edits(f, EDIT_AFTER_INJECT, tap);
    return BN_OK;
}

/* The caller's selection plus the taps of the edits of one stage. */
static bn_status edited_set(const bn_faulted *f, edit_stage stage, const bn_tap_set *inner, bn_tap_set **out,
                            bn_error *err) {
    const int64_t n_layer = f->source->hp.n_layer;
    bn_status st = bn_tap_set_copy(inner, n_layer, out, err);
    for (int i = 0; !st && i < f->n_edits; i++) {
        const tap_edit *e = &f->edits[i];
        if (e->stage != stage) continue;
        for (int il = e->layer == EVERY_BLOCK ? 0 : e->layer; il < n_layer; il++) {
            bn_tap_set_add(*out, il, e->kind);
            if (e->layer != EVERY_BLOCK) break;
        }
    }
    return st;
}

/* Routes the context's hooks through the edits: the observe hook edits
 * before it observes, the inject hook edits after it injects. */
static bn_status wrap_hooks(bn_faulted *f, bn_ctx_params *p, bn_error *err) {
    bool before = false, after = false;
    for (int i = 0; i < f->n_edits; i++) {
        before |= f->edits[i].stage == EDIT_BEFORE_OBSERVE;
        after |= f->edits[i].stage == EDIT_AFTER_INJECT;
    }
    bn_status st = BN_OK;
    if (before && !(st = edited_set(f, EDIT_BEFORE_OBSERVE, p->observe, &f->observe_set, err))) {
        f->observe = (inner_hook){p->observe, p->observe_fn, p->observe_user};
        p->observe = f->observe_set, p->observe_fn = edit_then_observe, p->observe_user = f;
    }
    if (!st && after && !(st = edited_set(f, EDIT_AFTER_INJECT, p->inject, &f->inject_set, err))) {
        f->inject = (inner_hook){p->inject, p->inject_fn, p->inject_user};
        p->inject = f->inject_set, p->inject_fn = inject_then_edit, p->inject_user = f;
    }
    return st;
}

/* ------------------------------------------------------------------ API -- */

bn_status bn_fault_apply(const bn_model *m, bn_fault fault, bn_ctx_params *p, bn_faulted **out, bn_error *err) {
    *out = NULL;
    if ((unsigned)fault >= BN_FAULT_COUNT)
        return bn_error_set(err, BN_ERR_INVALID, "unknown fault %d", (int)fault);
    bn_faulted *f = calloc(1, sizeof *f);
    if (!f) return bn_error_set(err, BN_ERR_NOMEM, "fault %s: cannot allocate %zu bytes", FAULTS[fault].name, sizeof *f);
    f->fault = fault;
    f->source = m;
    bn_ctx_params q = *p;
    bn_status st = FAULTS[fault].apply ? FAULTS[fault].apply(f, &q, err) : BN_OK;
    if (!st && f->n_edits) st = wrap_hooks(f, &q, err);
    if (st) {
        bn_faulted_free(f);
        return st;
    }
    *p = q;
    *out = f;
    return BN_OK;
}

const bn_model *bn_faulted_model(const bn_faulted *f) { return f->transformed ? &f->copy : f->source; }

void bn_faulted_free(bn_faulted *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_owned; i++) free(f->owned[i]);
    free(f->owned);
    bn_tap_set_free(f->observe_set);
    bn_tap_set_free(f->inject_set);
    free(f);
}
