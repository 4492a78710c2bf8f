/* quant.c — the table of tensor-type traits and sizes. Row kernels live in
 * quant_rows.c (dequantize/quantize). */
#include "bitnet/quant.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const bn_type_traits type_table[] = {
    {BN_TYPE_F32, "F32", 1, 4, 0, false},
    {BN_TYPE_F16, "F16", 1, 2, 0, false},
    {BN_TYPE_Q8_0, "Q8_0", 32, 34, 0, false},
    {BN_TYPE_BF16, "BF16", 1, 2, 0, false},
    {BN_TYPE_TQ1_0, "TQ1_0", 256, 54, 0, true},
    {BN_TYPE_TQ2_0, "TQ2_0", 256, 66, 0, true},
    /* 128 elements -> 32 bytes of 2-bit codes; then a float32 scale and 28
     * padding bytes once per tensor (docs/specs/i2s.md). */
    {BN_TYPE_I2_S, "I2_S", 128, 32, 32, true},
};

static const struct {
    uint32_t id;
    const char *name;
    const char *reason;
} unsupported_table[] = {
    {BN_TYPE_Q8_K, "Q8_K", "Q8_K is an activation type and cannot be stored in a model file"},
    {BN_TYPE_I8_S, "I8_S", "I8_S is bitnet.cpp's internal activation type and cannot be stored in a model file"},
    {BN_TYPE_TL1, "TL1", "TL1 (bitnet.cpp LUT format tied to generated kernels) is not supported; re-quantize to I2_S"},
    {BN_TYPE_TL2, "TL2", "TL2 (bitnet.cpp LUT format tied to generated kernels) is not supported; re-quantize to I2_S"},
    {2, "Q4_0", "Q4_0 is not a BitNet tensor type and is not supported"},
    {3, "Q4_1", "Q4_1 is not a BitNet tensor type and is not supported"},
    {6, "Q5_0", "Q5_0 is not a BitNet tensor type and is not supported"},
    {7, "Q5_1", "Q5_1 is not a BitNet tensor type and is not supported"},
    {9, "Q8_1", "Q8_1 is not a BitNet tensor type and is not supported"},
    {10, "Q2_K", "Q2_K is not a BitNet tensor type and is not supported"},
    {11, "Q3_K", "Q3_K is not a BitNet tensor type and is not supported"},
    {12, "Q4_K", "Q4_K is not a BitNet tensor type and is not supported"},
    {13, "Q5_K", "Q5_K is not a BitNet tensor type and is not supported"},
    {14, "Q6_K", "Q6_K is not a BitNet tensor type and is not supported"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const bn_type_traits *bn_type_traits_get(uint32_t type) {
    for (size_t i = 0; i < COUNT(type_table); i++)
        if (type_table[i].id == type) return &type_table[i];
    return NULL;
}

const char *bn_type_name(uint32_t type) {
    const bn_type_traits *t = bn_type_traits_get(type);
    if (t) return t->name;
    for (size_t i = 0; i < COUNT(unsupported_table); i++)
        if (unsupported_table[i].id == type) return unsupported_table[i].name;
    return "unknown";
}

char *bn_type_name_lower(uint32_t type, char *buf, size_t size) {
    snprintf(buf, size, "%s", bn_type_name(type));
    for (char *p = buf; *p; p++) *p = (char)tolower((unsigned char)*p);
    return buf;
}

const char *bn_type_unsupported_reason(uint32_t type) {
    if (bn_type_traits_get(type)) return NULL;
    for (size_t i = 0; i < COUNT(unsupported_table); i++)
        if (unsupported_table[i].id == type) return unsupported_table[i].reason;
    return "unknown tensor type id";
}

bn_status bn_type_tensor_nbytes(uint32_t type, int64_t ne0, int64_t nelem, uint64_t *nbytes,
                                bn_error *err) {
    const bn_type_traits *t = bn_type_traits_get(type);
    if (!t)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "tensor type %u (%s): %s", type,
                            bn_type_name(type), bn_type_unsupported_reason(type));
    if (ne0 <= 0 || nelem < 0 || nelem % ne0 != 0)
        return bn_error_set(err, BN_ERR_INVALID, "bad shape: ne0 %lld, %lld elements", (long long)ne0,
                            (long long)nelem);
    if (ne0 % t->block_elems != 0)
        return bn_error_set(err, BN_ERR_INVALID,
                            "ne[0] = %lld is not a multiple of the %s block size %lld", (long long)ne0,
                            t->name, (long long)t->block_elems);
    uint64_t blocks = (uint64_t)nelem / (uint64_t)t->block_elems;
    if (blocks > (UINT64_MAX - t->tensor_extra) / t->block_bytes)
        return bn_error_set(err, BN_ERR_INVALID, "%s tensor of %lld elements: byte size overflows",
                            t->name, (long long)nelem);
    *nbytes = blocks * t->block_bytes + t->tensor_extra;
    return BN_OK;
}
