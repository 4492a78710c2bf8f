/* quant.h — tensor types: one table of traits, row dequantization and
 * quantization for F32, F16, BF16, Q8_0, I2_S, TQ1_0, TQ2_0.
 *
 * Type ids are ggml's (docs/specs/i2s.md, docs/specs/ternary-llamacpp.md). Sizes are
 * never derived from ggml's own traits for I2_S: an I2_S tensor of n elements
 * occupies n/4 packed bytes + one float32 scale + 28 padding bytes.
 */
#ifndef BITNET_QUANT_H
#define BITNET_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/simd.h" /* bn_simd_level of the _ex kernels */
#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    BN_TYPE_F32 = 0,
    BN_TYPE_F16 = 1,
    BN_TYPE_Q8_0 = 8,
    BN_TYPE_Q8_K = 15, /* activations only; never valid in a file */
    BN_TYPE_BF16 = 30,
    BN_TYPE_TQ1_0 = 34,
    BN_TYPE_TQ2_0 = 35,
    BN_TYPE_I2_S = 36,
    BN_TYPE_I8_S = 37, /* bitnet.cpp internal activation type, rejected in files */
    BN_TYPE_TL1 = 38,  /* bitnet.cpp LUT formats: rejected with a clear message */
    BN_TYPE_TL2 = 39,
};

typedef struct bn_type_traits {
    uint32_t id;            /* ggml type id */
    const char *name;       /* "F32", "I2_S", ... as ggml prints them */
    int64_t block_elems;    /* elements per block; ne[0] must be a multiple */
    size_t block_bytes;     /* bytes per block (I2_S: 32 bytes per 128 elems) */
    size_t tensor_extra;    /* bytes after the packed data (I2_S: 32 = scale + pad) */
    bool ternary;           /* I2_S, TQ1_0, TQ2_0 */
} bn_type_traits;

/* Traits of a type that may appear in a tensor file, or NULL when the id is
 * unknown or not supported (TL1/TL2, I8_S, Q8_K, other ggml types). */
const bn_type_traits *bn_type_traits_get(uint32_t type);

/* Printable name of any id: supported, known-but-unsupported ("TL1") or
 * "unknown" (messages print the numeric id beside it). Never NULL. */
const char *bn_type_name(uint32_t type);
/* The same name in lower case, as ggml_type_name and file names spell it
 * ("i2_s", "f16"), into buf (at most size bytes); returns buf. */
char *bn_type_name_lower(uint32_t type, char *buf, size_t size);

/* Why `type` is not supported, for error messages; NULL when supported. */
const char *bn_type_unsupported_reason(uint32_t type);

/* Byte size of a tensor of `type` with `nelem` elements and rows of `ne0`
 * elements. Fails (naming the rule) when ne0 is not a multiple of the block
 * size, the type is unsupported, or the size overflows. */
bn_status bn_type_tensor_nbytes(uint32_t type, int64_t ne0, int64_t nelem,
                                uint64_t *nbytes, bn_error *err);

/* Scalar conversions with ggml's rounding (round to nearest even). */
float bn_f16_to_f32(uint16_t h);
uint16_t bn_f32_to_f16(float f);
float bn_bf16_to_f32(uint16_t h);
/* y[i] = bn_f32_to_f16(x[i]) for i < n, bit for bit; level BN_SIMD_AVX2
 * (which the caller has checked the CPU has) converts 8 at a time with F16C. */
void bn_f32_to_f16_n(const float *x, uint16_t *y, int64_t n, bn_simd_level level);
uint16_t bn_f32_to_bf16(float f);

/* Dequantizes rows [row0, row0 + nrows) of a tensor whose rows have `ne0`
 * elements and which has `nrows_total` rows in all. `data` points at the
 * whole tensor (I2_S keeps one scale for the whole tensor after the codes).
 * Writes nrows*ne0 floats to dst. Never allocates. */
bn_status bn_dequantize_rows(uint32_t type, const void *data, int64_t ne0,
                             int64_t nrows_total, int64_t row0, int64_t nrows,
                             float *dst, bn_error *err);

/* bn_dequantize_rows with an explicit kernel level (tests, benchmarks).
 * Fails with BN_ERR_UNSUPPORTED when the CPU lacks the requested level. */
bn_status bn_dequantize_rows_ex(uint32_t type, const void *data, int64_t ne0,
                                int64_t nrows_total, int64_t row0, int64_t nrows,
                                float *dst, bn_simd_level level, bn_error *err);

/* Quantizes a whole [nrows, ne0] float tensor into dst (dst_size bytes, at
 * least bn_type_tensor_nbytes). Quantizers follow the reference tools:
 * I2_S as bitnet.cpp's (scale = max|w|, sign codes, |w| < 1e-6 -> 0, 28 zero
 * padding bytes), TQ1_0/TQ2_0/Q8_0 as llama.cpp's, F16/BF16 round to even. */
bn_status bn_quantize(uint32_t type, const float *src, int64_t ne0,
                      int64_t nrows, void *dst, size_t dst_size, bn_error *err);

/* bn_quantize with an explicit kernel level (tests): the same bytes on every
 * level (Q8_0 has an AVX2 kernel; the other types one kernel for both).
 * Fails with BN_ERR_UNSUPPORTED when the CPU lacks the requested level. */
bn_status bn_quantize_ex(uint32_t type, const float *src, int64_t ne0, int64_t nrows, void *dst,
                         size_t dst_size, bn_simd_level level, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_QUANT_H */
