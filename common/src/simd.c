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
