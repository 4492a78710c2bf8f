"""Deterministic float64 arithmetic for the reference's f32 numerics: results that do not depend
on the machine's BLAS, libm or CPU.

numpy hands float64 matrix products to whatever BLAS the loader finds (Debian's reference BLAS,
OpenBLAS, ...), and its exp/cos/sin/power to SIMD code chosen by the CPU (on an AVX-512 machine
numpy 1.24 uses its SVML kernels, which differ from glibc's in the last bit for about a quarter of
the arguments). Each of those changes a float64 result by an ulp or so; stored as float32 in a
trace, a fraction of the values then changes, and a committed fixture no longer matches.

Everything here is built from operations IEEE 754 defines exactly (+, −, ×, ÷, sqrt, rint,
ldexp, comparisons), each a separate numpy ufunc call (numpy never fuses them into an FMA), in an
order written down below, so the same inputs give the same bits on every machine:

* ``sequential_sum(a)`` adds the last axis left to right from +0.0 (what a C loop
  ``for (i...) s += a[i]`` does in double).
* ``matmul_nt(x, w)`` is x·wᵀ: every product x[t,k]·w[n,k] rounded to float64 and added to its
  accumulator in the order k = 0, 1, ..., K−1, from +0.0.
* ``exp(x)``: x = n·ln2 + r with fdlibm's two-part ln2 (n·LN2_HI is exact), e^r by its Taylor
  polynomial of degree 13 in Horner form (truncation < 4.2e-18 for |r| ≤ ln2/2), scaled by 2^n
  with ldexp. Error < 1 ulp (reference/tests/test_detmath.py measures it against decimal).
* ``cos_sin(x)``: x = k·π/2 + r with fdlibm's three-part π/2 (exact products for |k| < 2^20,
  so |x| < 1.6e6), Taylor polynomials of degree 19 (sin) and 20 (cos) on |r| ≤ π/4, quadrant
  swap by k mod 4. Error < 2 ulp for |x| < 1.6e6 (tested likewise).
* ``power(base, e)``: a float64 scalar computed with Python's decimal module (software
  arithmetic, 40 digits), so it is the same everywhere.

What else the reference computes and why it is machine-independent too:
* int8 × ternary/int8 products (I2_S, TQ1_0/TQ2_0, Q8_0) go through float32 BLAS, but every
  partial sum is an integer below 2^24, so every summation order gives the same exact result.
* ggml-compat numerics emulate ggml's float32 FMA lanes explicitly (``_fma32``: x87 extended
  precision, the same on every x86-64) and call the C library's cosf/sinf through ctypes on
  purpose, because ggml does (and so does the engine): those RoPE values depend on the C
  library, pinned by Debian 12 (glibc 2.36, which picks an FMA build of cosf/sinf on CPUs with
  FMA; every x86-64 CPU this project targets has AVX2 and FMA).
"""

from decimal import Decimal, localcontext

import numpy as np

# fdlibm's constants (e_exp.c, e_rem_pio2.c): the "hi" parts have trailing zero bits so that
# their product with a small integer is exact.
LN2_HI = float.fromhex('0x1.62e42fee00000p-1')
LN2_LO = float.fromhex('0x1.a39ef35793c76p-33')
INV_LN2 = float.fromhex('0x1.71547652b82fep+0')
PIO2_1 = float.fromhex('0x1.921fb544p+0')          # first 33 bits of π/2
PIO2_2 = float.fromhex('0x1.0b4611a6p-34')          # next 33 bits
PIO2_2T = float.fromhex('0x1.3198a2e037073p-69')    # π/2 − PIO2_1 − PIO2_2
TWO_OVER_PI = float.fromhex('0x1.45f306dc9c883p-1')
EXP_MAX = 709.782712893383973096       # above: overflow to inf
EXP_MIN = -745.13321910194110842       # below: 0
TRIG_MAX = 1.6e6                       # |k| < 2^20 keeps k·PIO2_1 and k·PIO2_2 exact

def _inv_factorial(i):
    """1/i! as one division of exact integers (the same float64 on every machine)."""
    f = 1
    for j in range(2, i + 1):
        f *= j
    return 1.0 / float(f)


_EXP_COEF = [_inv_factorial(i) for i in range(14)]
_SIN_COEF = [(-1) ** j * _inv_factorial(2 * j + 1) for j in range(10)]   # r, r³, ..., r¹⁹
_COS_COEF = [(-1) ** j * _inv_factorial(2 * j) for j in range(11)]       # 1, r², ..., r²⁰


def sequential_sum(a):
    """Left-to-right sum over the last axis, starting from +0.0, in float64."""
    v = np.asarray(a, dtype=np.float64)
    acc = np.zeros(v.shape[:-1])
    for i in range(v.shape[-1]):
        acc = acc + v[..., i]
    return acc


def matmul_nt(x, w):
    """x [..., T, K] · w [..., N, K]ᵀ → [..., T, N] (leading axes broadcast), float64: for k from
    0 to K−1, acc = acc + x[..., t, k]·w[..., n, k] (the product rounded, then the sum), from +0.0."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    k = x.shape[-1]
    if w.shape[-1] != k:
        raise ValueError('matmul_nt: inner sizes differ (%d, %d)' % (k, w.shape[-1]))
    xk = np.ascontiguousarray(np.moveaxis(x, -1, 0))[..., :, None]      # [K, ..., T, 1]
    wk = np.ascontiguousarray(np.moveaxis(w, -1, 0))[..., None, :]      # [K, ..., 1, N]
    acc = np.zeros(np.broadcast_shapes(x.shape[:-2], w.shape[:-2]) + (x.shape[-2], w.shape[-2]))
    for i in range(k):
        acc += xk[i] * wk[i]
    return acc


def exp(x):
    """e^x element-wise, float64, from IEEE operations only (see the module doc)."""
    x = np.asarray(x, dtype=np.float64)
    xc = np.clip(np.where(np.isnan(x), 0.0, x), EXP_MIN - 1.0, EXP_MAX + 1.0)
    n = np.rint(xc * INV_LN2)
    r = (xc - n * LN2_HI) - n * LN2_LO
    p = np.full(r.shape, _EXP_COEF[13])
    for c in reversed(_EXP_COEF[:13]):
        p = p * r + c
    with np.errstate(over='ignore', under='ignore'):
        y = np.ldexp(p, n.astype(np.int64))
    y = np.where(x > EXP_MAX, np.inf, y)
    y = np.where(x < EXP_MIN, 0.0, y)
    return np.where(np.isnan(x), x, y)


def cos_sin(x):
    """(cos x, sin x) element-wise, float64, for |x| < 1.6e6 (see the module doc)."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(np.abs(x[np.isfinite(x)]) >= TRIG_MAX):
        raise ValueError('cos_sin: argument beyond %g' % TRIG_MAX)
    bad = ~np.isfinite(x)
    x = np.where(bad, 0.0, x)
    k = np.rint(x * TWO_OVER_PI)
    r = ((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_2T
    r2 = r * r
    s = np.full(r.shape, _SIN_COEF[-1])
    for c in reversed(_SIN_COEF[:-1]):
        s = s * r2 + c
    s = s * r
    c_ = np.full(r.shape, _COS_COEF[-1])
    for c in reversed(_COS_COEF[:-1]):
        c_ = c_ * r2 + c
    q = np.mod(k, 4).astype(np.int64)
    cos = np.select([q == 0, q == 1, q == 2], [c_, -s, -c_], s)
    sin = np.select([q == 0, q == 1, q == 2], [s, c_, -s], -c_)
    return np.where(bad, np.nan, cos), np.where(bad, np.nan, sin)


def power(base, e):
    """base^e for float scalars, correctly rounded to float64 in practice (40-digit decimal)."""
    with localcontext() as ctx:
        ctx.prec = 40
        return float(Decimal(float(base)) ** Decimal(float(e)))
