/* next_checks.c — the per-kind checklists of next_checks.h. The entries
 * follow the evaluation order of docs/design.md (Names); each says what to
 * compare between the two stacks, not what is wrong: no hint fired, so
 * nothing was measured. */
#include "parity/next_checks.h"

#include <string.h>

static const parity_next_checks table[] = {
    {"token_embd", "the embedding lookup of the prompt's tokens",
     {"the token ids of both sides (tokenizer, BOS, the prompt itself)",
      "the token_embd tensor's type and its dequantization (row scale, block layout)",
      "whether the embedding is scaled (some architectures multiply by sqrt(n_embd))"}},
    {"*_norm", "an RMS norm: x / sqrt(mean(x\xc2\xb2) + eps) \xc2\xb7 gamma",
     {"the norm weights (gamma): the right tensor, its type, and a +1 offset some exports fold in",
      "epsilon (rms_norm_eps from the GGUF metadata) and that the mean is over the last axis",
      "RMSNorm vs LayerNorm (no mean subtracted) and where the sub-norms sit",
      "the norm's input: if it already differs, look at the tap before"}},
    {"attn_q", "the query projection (before RoPE)",
     {"the Q weights' layout: row- vs column-major, transposed, and the head order (some converters permute Q/K)",
      "the Q weights' scale: the ternary tensor scale (I2_S: one per tensor) and its type",
      "the quantized input (in_q8 / in_scale taps: int8 rounding, per-token scale)",
      "the attn_norm output feeding it"}},
    {"attn_k", "the key projection (before RoPE)",
     {"the K weights' layout and head order (GQA: n_head_kv heads)",
      "the K weights' scale and type", "the quantized input (in_q8 / in_scale taps)"}},
    {"attn_v", "the value projection",
     {"the V weights' layout (transposed?) and type", "the V weights' scale",
      "the quantized input (in_q8 / in_scale taps)"}},
    {"attn_q_rope", "RoPE applied to Q",
     {"the rotation pairing: NEOX (i, i+D/2) vs normal (2i, 2i+1)",
      "rope_freq_base (theta) and any rope scaling in the GGUF metadata",
      "the positions: p0 of each evaluation, off-by-one after the prompt"}},
    {"attn_k_rope", "RoPE applied to K",
     {"the rotation pairing (NEOX vs normal) and rope_freq_base",
      "the positions written to the K cache (p0 of each evaluation)"}},
    {"attn_scores", "q\xc2\xb7k\xe1\xb5\x80 / sqrt(D) with the causal mask",
     {"the 1/sqrt(head_dim) scale and where it is applied", "the causal mask (-inf above the diagonal, p0 offset)",
      "the K cache type (f16 vs f32) and its rounding", "GQA: which K head each Q head reads"}},
    {"attn_probs", "the softmax of the scores",
     {"the softmax (max subtraction, exp implementation, f16 vs f32 accumulation)",
      "masked positions: exactly 0 after the softmax"}},
    {"attn_ctx", "p\xc2\xb7V, heads concatenated",
     {"the V cache type (f16 vs f32) and its layout", "the head order when heads are concatenated",
      "GQA: which V head each Q head reads"}},
    {"attn_out", "the attention output projection",
     {"the output weights' layout (transposed?) and scale", "the sub-norm before it (BitNet: attn_sub_norm)",
      "the quantized input (in_q8 / in_scale taps)"}},
    {"ffn_inp", "the residual: the block's input + attn_out",
     {"that the residual adds the block's input (not the normed one)", "the attn_out tap feeding it"}},
    {"ffn_gate", "the FFN gate projection",
     {"the gate weights' layout and scale (gate and up swapped?)", "the quantized input (in_q8 / in_scale taps)"}},
    {"ffn_up", "the FFN up projection",
     {"the up weights' layout and scale (gate and up swapped?)", "the quantized input (in_q8 / in_scale taps)"}},
    {"ffn_act", "act(gate) \xc2\xb7 up",
     {"the activation function: relu\xc2\xb2 (BitNet b1.58) vs SiLU vs GELU, from the GGUF architecture",
      "which operand the activation applies to (gate, not up)",
      "the ffn_gate and ffn_up taps feeding it"}},
    {"ffn_out", "the FFN down projection",
     {"the down weights' layout (transposed?) and scale", "the sub-norm before it (BitNet: ffn_sub_norm)",
      "the quantized input (in_q8 / in_scale taps)"}},
    {"out", "the block output: ffn_inp + ffn_out",
     {"the residual addition (ffn_inp, not the normed value)", "the ffn_out tap feeding it"}},
    {"logits", "the output projection of output_norm",
     {"the output weights: a separate output tensor or tied to token_embd",
      "which rows are computed (only the last token in a pruned graph)", "the output_norm tap feeding it"}},
    {"in_q8", "the int8 quantization of a projection's input",
     {"the rounding mode (nearest-even vs away from zero)", "the per-token scale: 127 / max|x| and its clamp",
      "the input before quantization (the tap before the projection)"}},
    {"in_scale", "the per-token scale of a projection's int8 input",
     {"127 / max|x| vs max|x| / 127, and the epsilon clamp", "the input before quantization"}},
};

static const parity_next_checks generic = {
    "?", "a tap of no known kind",
    {"the tap map: whether both sides' nodes are the same computation",
     "the taps before it in evaluation order", "the model file: both sides must read the same GGUF"}};

/* "blk.3.attn_q" -> "attn_q"; "blk.0.ffn_down.in_q8" -> "in_q8". */
static const char *kind_of(const char *tap) {
    const char *k = tap;
    if (!strncmp(k, "blk.", 4)) {
        const char *dot = strchr(k + 4, '.');
        k = dot ? dot + 1 : k;
    }
    const char *last = strrchr(k, '.');
    return last ? last + 1 : k;
}

static int is_norm(const char *kind) {
    size_t n = strlen(kind);
    return n > 5 && !strcmp(kind + n - 5, "_norm");
}

const parity_next_checks *parity_next_checks_for(const char *tap) {
    if (!tap) return &generic;
    const char *kind = kind_of(tap);
    if (is_norm(kind)) kind = "*_norm";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i].kind, kind)) return &table[i];
    return &generic;
}
