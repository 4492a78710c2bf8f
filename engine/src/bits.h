/* bits.h — the bit pattern of a float and back (memcpy: no aliasing UB).
 * Internal to the engine. */
#ifndef BITNET_BITS_H
#define BITNET_BITS_H

#include <stdint.h>
#include <string.h>

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
