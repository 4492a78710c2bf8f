/* simd.c — CPU feature detection for the kernel levels (bitnet/simd.h). */
#include "bitnet/simd.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BN_HAVE_X86 1
#include <cpuid.h>
#endif

#ifdef BN_HAVE_X86
/* GCC reads the flag libgcc cached at start-up. Older clang has no "f16c"
 * feature string: ask cpuid, which is slow under virtualisation (a trap per
 * call), but only clang builds (fuzzing) take that path. */
static int cpu_has_f16c(void) {
#if defined(__clang__)
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
#else
    return __builtin_cpu_supports("f16c");
#endif
}
#endif

int bn_cpu_has_avx512_vnni(void) {
#ifdef BN_HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

/* GCC 12 knows the "avxvnni" feature string, clang 14 does not: cpuid leaf 7
 * sub-leaf 1, EAX bit 4 (as for f16c above, only clang builds ask cpuid). */
int bn_cpu_has_avx_vnni(void) {
#ifdef BN_HAVE_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) return 0;
#if defined(__clang__)
    unsigned eax = 0, ebx, ecx, edx;
    return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4));
#else
    return __builtin_cpu_supports("avxvnni");
#endif
#else
    return 0;
#endif
}

unsigned bn_cpu_int8_dot(void) {
    return (bn_cpu_has_avx512_vnni() ? BN_CPU_AVX512_VNNI : 0u) | (bn_cpu_has_avx_vnni() ? BN_CPU_AVX_VNNI : 0u);
}

bn_simd_level bn_simd_best(void) {
#ifdef BN_HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
        return BN_SIMD_AVX2;
#endif
    return BN_SIMD_PORTABLE;
}

const char *bn_simd_name(bn_simd s) {
    switch (s) {
    case BN_SIMD_AUTO: return "auto";
    case BN_SIMD_PORTABLE: return "portable";
    case BN_SIMD_AVX2: return "avx2";
    }
    return "unknown";
}
