/* bits.h — bit-level helpers internal to the engine: the bit pattern of a
 * float and back (memcpy: no aliasing UB), rounding up to a power of two. */
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

/* x rounded up to a multiple of a, a power of two. */
static inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

#endif
