/* model.h — a GGUF file bound as a BitNet (or LLaMA) model: architecture,
 * hyper-parameters validated against tensor shapes, and per-layer weights.
 *
 * Architectures (docs/specs/bitnet-graph.md):
 *   bitnet-b1.58, bitnet-25  relu(gate)^2 * up, sub-norms, NEOX RoPE, token_embd as lm_head
 *   bitnet                   silu(gate) * up unless <arch>.hidden_activation says relu2; optional per-tensor
 *                            blk.N.<W>.scale [1] multiplied after each projection; sub-norms; NEOX RoPE
 *   llama                    SwiGLU, no sub-norms, normal (interleaved) RoPE, output.weight or tied
 */
#ifndef BITNET_MODEL_H
#define BITNET_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet/gguf.h"
#include "bitnet/matmul.h"
#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bn_arch {
    BN_ARCH_BITNET_B158,
    BN_ARCH_BITNET_25,
    BN_ARCH_BITNET,
    BN_ARCH_LLAMA,
    BN_ARCH_COUNT
} bn_arch;

typedef enum bn_ffn_act { BN_ACT_RELU2, BN_ACT_SILU } bn_ffn_act;

/* The normalization of the blocks' norms and sub-norms. Every architecture
 * uses RMSNorm; LAYER (the row mean subtracted first, no bias) exists for the
 * layernorm fault (bitnet/fault.h). The output norm is always RMSNorm. */
typedef enum bn_norm_kind { BN_NORM_RMS, BN_NORM_LAYER } bn_norm_kind;

/* The projections of one block, in graph order; indexes bn_layer.w[] and the
 * names of the `.in_q8`/`.in_scale` taps. */
typedef enum bn_proj {
    BN_PROJ_Q,
    BN_PROJ_K,
    BN_PROJ_V,
    BN_PROJ_O,
    BN_PROJ_GATE,
    BN_PROJ_UP,
    BN_PROJ_DOWN,
    BN_PROJ_COUNT
} bn_proj;

typedef struct bn_hparams {
    bn_arch arch;
    int64_t n_vocab;     /* V: rows of token_embd */
    int64_t n_embd;      /* H */
    int64_t n_layer;
    int64_t n_ff;        /* F */
    int64_t n_head;      /* nh */
    int64_t n_head_kv;   /* nkv; nh % nkv == 0 */
    int64_t head_dim;    /* D = H / nh = rope dimension */
    int64_t n_ctx_train; /* context_length */
    float rope_base;     /* rope.freq_base */
    float norm_eps;      /* attention.layer_norm_rms_epsilon */
    bn_ffn_act act;      /* from the arch and <arch>.hidden_activation */
    bn_norm_kind block_norm; /* BN_NORM_RMS */
    bool rope_neox;      /* pairs (i, i+D/2) when true, (2i, 2i+1) when false */
    bool sub_norms;      /* the blocks have sub-norms (and their taps) */
} bn_hparams;

typedef struct bn_layer {
    const float *attn_norm;          /* [H] */
    const float *attn_sub_norm;      /* [nh*D], applied when hp.sub_norms; NULL when
                                        absent or dropped by the no-subnorm fault (the
                                        sub-norm tap then shows the value unnormed) */
    const float *ffn_norm;           /* [H] */
    const float *ffn_sub_norm;       /* [F]; NULL as attn_sub_norm */
    bn_weight w[BN_PROJ_COUNT];      /* q [H->nh*D], k,v [H->nkv*D], o [nh*D->H],
                                        gate,up [H->F], down [F->H] */
    float w_scale[BN_PROJ_COUNT];    /* `bitnet` arch per-tensor .scale, else 1 */
    bool has_scale[BN_PROJ_COUNT];
} bn_layer;

typedef struct bn_model {
    bn_gguf *gguf;                   /* owns the mapping every pointer below points into */
    bn_hparams hp;
    const bn_gguf_tensor *token_embd;/* [V, H] any supported type (read with dequantize_rows) */
    const float *output_norm;        /* [H] */
    bn_weight lm_head;               /* [H -> V]: output.weight or token_embd (tied), or the
                                        copy bn_model_requantize_lm_head made */
    bool tied_output;
    void *lm_head_copy;              /* that copy (owned), NULL while lm_head is the file's */
    bn_layer *layers;                /* [n_layer] */
} bn_model;

/* Opens `path` and binds it as a model. Every hyper-parameter is checked
 * against the tensor shapes; messages name the key and the tensor. */
bn_status bn_model_load(const char *path, bn_model **out, bn_error *err);

/* bn_model_load with the file's bytes placed as `how` says (gguf.h): the
 * results are the same bits either way, only the speed differs. Read into
 * memory on a CPU with the AVX-512 VNNI kernels, the I2_S projections that
 * fit are regrouped by 8 rows (matmul.h's BN_LAYOUT_I2S_ROWS8, their
 * layout field says so): read their values with bn_weight_dequantize_rows,
 * not from the tensor's bytes. */
bn_status bn_model_load_with(const char *path, bn_gguf_load how, bn_model **out, bn_error *err);

/* Binds an open file. Takes `g` in every case: on success the model owns it
 * (bn_model_free closes it), on failure it is already closed. */
bn_status bn_model_from_gguf(bn_gguf *g, bn_model **out, bn_error *err);

void bn_model_free(bn_model *m);

/* Replaces the model's lm_head by a copy in `type` (BN_TYPE_Q8_0 is the one
 * supported), quantized from its weights row by row: each row widened
 * exactly to f32, then llama.cpp's quantize_row_q8_0_ref (d = amax/127 as
 * f16, q = roundf(x/d)). Runs on n_threads threads of a pool of its own;
 * the result does not depend on their number. An explicit trade, never a
 * default, which the caller records (bn_model_lm_head_override): a decoded
 * token reads 34 bytes per 32 lm_head weights instead of 64 (F16), and
 * the logits then differ from the stored lm_head's by Q8_0's rounding, so
 * ggml-compat logits no longer equal bitnet.cpp's. token_embd (the input
 * embedding, also a tied lm_head's source) is untouched; the model owns the
 * copy. A lm_head already of `type` is left as it is. INVALID for another
 * type or a second call; UNSUPPORTED when the lm_head's type cannot be
 * widened; NOMEM. The model must not be in use by a context meanwhile. */
bn_status bn_model_requantize_lm_head(bn_model *m, uint32_t type, int n_threads, bn_error *err);

/* The type a --lm-head / settings.lm_head name asks for: "stored" -> 0 (the
 * file's own), "q8_0" -> BN_TYPE_Q8_0; false for any other name. */
bool bn_model_lm_head_type_parse(const char *name, uint32_t *type);

/* The lower-case type name ("q8_0") of a requantized lm_head, or NULL when
 * the lm_head is the file's own: what traces record as settings.lm_head. */
const char *bn_model_lm_head_override(const bn_model *m);

const char *bn_arch_name(bn_arch a);
const char *bn_act_name(bn_ffn_act a);
const char *bn_proj_name(bn_proj p); /* "attn_q", ..., "ffn_down" */

#ifdef __cplusplus
}
#endif

#endif /* BITNET_MODEL_H */
