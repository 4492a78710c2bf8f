/* bitparity.h — write a parity trace from your own engine.
 *
 * The public, FFI-friendly face of the trace format (docs/trace-format.md,
 * docs/taps.md): an engine under test (C, C++, or Rust/Go/Zig through their C
 * FFI) records what each tap of docs/taps.md holds, evaluation by
 * evaluation, and `bitparity compare MINE.npz REFERENCE.npz` then says where
 * and why it stops agreeing with the reference.
 *
 *     bitparity_trace_writer *w;
 *     bn_error err;
 *     if (bitparity_trace_writer_open("mine.npz", "my-engine", &w, &err)) goto fail;
 *     bitparity_trace_writer_set_model_file(w, "model.gguf", &err);   // model.sha256
 *     bitparity_trace_writer_begin_evaluation(w, prompt, n_prompt, 0, &err);
 *     bitparity_trace_writer_write_tap(w, "blk.0.attn_norm", x, shape, 2, &err);
 *     ...
 *     if (bitparity_trace_writer_close(w, &err)) goto fail;           // publishes mine.npz
 *
 * Contract shared by every call: a bn_status (0 = BN_OK) is returned and, on
 * failure, err (may be NULL) holds one line naming the trace, the tap, the
 * evaluation or the key. The handle is opaque and owns copies of everything
 * it is given; nothing is kept from the caller's buffers after a call
 * returns. Streaming: a tap's array goes to the file when it is written.
 * Atomic: the trace is written to a temporary file beside `path` and renamed
 * onto it by close; an error, abort or crash leaves an older file at `path`
 * untouched and no partial trace. Not thread-safe per handle.
 *
 * Link with pkg-config (`pkg-config --cflags --libs bitparity`) or CMake
 * (`find_package(bitparity)`, target bitparity::bitparity).
 */
#ifndef BITPARITY_H
#define BITPARITY_H

#include <stdint.h>

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bitparity_trace_writer bitparity_trace_writer;

/* Starts the trace at `path` for the engine `producer_name` (recorded as
 * producer.name; "bitparity" is refused: that name tells the comparer a
 * trace came from bitparity's own engine, which --replay re-runs). INVALID
 * for an empty name, IO when the folder is not writable. On failure *out is
 * NULL. */
bn_status bitparity_trace_writer_open(const char *path, const char *producer_name, bitparity_trace_writer **out,
                                      bn_error *err);

/* Records one metadata value. Keys: producer.version, producer.commit,
 * model.path, model.sha256 (64 hex digits), model.arch, model.weight_type
 * (the projections' type: "i2_s", "tq2_0", "f32"...: it decides the
 * automatic policy), numerics ("f32", "ggml-compat", "llama.cpp-compat" or
 * your own word), kv_cache ("f16" or "f32": your K/V cache type; the
 * automatic policy never calls two different cache types exact).
 * Setting a key again replaces it. INVALID names an unknown key or a bad
 * value. */
bn_status bitparity_trace_writer_set(bitparity_trace_writer *w, const char *key, const char *value, bn_error *err);

/* Sets model.path to `model_path` and model.sha256 to the file's digest, so
 * that the comparer can warn when the two traces ran different files. IO
 * names the file. */
bn_status bitparity_trace_writer_set_model_file(bitparity_trace_writer *w, const char *model_path, bn_error *err);

/* Starts the next evaluation (e0 is the prompt, then one per decode step):
 * the n_tokens > 0 token ids evaluated at positions p0 .. p0+n_tokens-1.
 * Taps written after it belong to it. */
bn_status bitparity_trace_writer_begin_evaluation(bitparity_trace_writer *w, const int32_t *tokens,
                                                  int64_t n_tokens, int64_t p0, bn_error *err);

/* Writes one tap of the current evaluation: float32 data, row-major, of
 * shape[0..ndim-1] (1 <= ndim <= 4, every dimension > 0). The name must be a
 * canonical tap of docs/taps.md ("blk.3.ffn_act", "logits"); its token
 * dimension (the first, or the second for attn_scores / attn_probs) must be
 * the evaluation's n_tokens; each tap once per evaluation. */
bn_status bitparity_trace_writer_write_tap(bitparity_trace_writer *w, const char *tap, const float *data,
                                           const int64_t *shape, int ndim, bn_error *err);

/* Same for the int8 taps ("blk.N.<proj>.in_q8"), which hold int8 data. */
bn_status bitparity_trace_writer_write_tap_int8(bitparity_trace_writer *w, const char *tap, const int8_t *data,
                                                const int64_t *shape, int ndim, bn_error *err);

/* Writes meta.yaml and publishes the trace at its path. Frees w in every
 * case; on failure nothing is published (INVALID when no evaluation was
 * begun). */
bn_status bitparity_trace_writer_close(bitparity_trace_writer *w, bn_error *err);

/* Drops everything written and frees w; the path is left as it was. NULL is
 * fine. */
void bitparity_trace_writer_abort(bitparity_trace_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* BITPARITY_H */
