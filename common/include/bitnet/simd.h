/* simd.h — the instruction-set level of the kernels, decided from the CPU.
 *
 * Every level computes bit-identical results; a higher level is only faster.
 * The level is a fact about the machine, so it lives in the common core:
 * the thread pool records it once (bn_pool_simd) and the engine's kernels
 * are handed it, so nothing consults global state on the hot path.
 */
#ifndef BITNET_SIMD_H
#define BITNET_SIMD_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bn_simd_level {
    BN_SIMD_AUTO = 0,     /* the best level this CPU supports */
    BN_SIMD_PORTABLE = 1, /* plain C */
    BN_SIMD_AVX2 = 2,     /* x86 AVX2 + FMA + F16C */
} bn_simd_level;

/* The short name the pool, the matmul options and receipts use. */
typedef bn_simd_level bn_simd;

/* The best level this CPU supports (never BN_SIMD_AUTO). */
bn_simd_level bn_simd_best(void);

/* Whether the CPU has the int8 dot-product extensions the ternary kernels
 * can use on top of AVX2: AVX-512 F/BW/VL with VNNI (512-bit tiles with
 * vpdpbusd), and AVX-VNNI (256-bit vpdpbusd, VEX encoding). Both 0 off x86. */
int bn_cpu_has_avx512_vnni(void);
int bn_cpu_has_avx_vnni(void);

/* Both facts as bits, asked once (the thread pool records them). */
enum { BN_CPU_AVX512_VNNI = 1u, BN_CPU_AVX_VNNI = 2u };
unsigned bn_cpu_int8_dot(void);

/* Printable name: "auto", "portable", "avx2" ("unknown" otherwise). */
const char *bn_simd_name(bn_simd s);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_SIMD_H */
