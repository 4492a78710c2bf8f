#!/usr/bin/python3
"""Independent float64 reference forward pass for BitNet b1.58 (and LLaMA) GGUF models.

Written from docs/specs/bitnet-graph.md, docs/specs/i2s.md, docs/specs/ternary-llamacpp.md and docs/design.md; it
shares no code with the C engine.

Architectures (``general.architecture``):
  bitnet-b1.58, bitnet-25   x += Wo·subnorm(attn(rope_neox(Wq h), rope_neox(Wk h), Wv h)),
                            h = rms_norm(x)·attn_norm;  f = relu(Wg h)²·(Wu h);
                            x += Wd·subnorm(f);  logits = token_embd · (rms_norm(x)·output_norm)
  bitnet                    same graph; act = SiLU unless ``bitnet.hidden_activation`` = relu2;
                            optional per-tensor ``blk.N.<W>.scale`` [1] multiplied after each
                            projection; tied output (token_embd)
  llama                     no sub-norms, SwiGLU silu(Wg h)·(Wu h), normal (interleaved) RoPE,
                            output.weight if present else token_embd

Math (everything float64 unless stated):
  rms_norm(x) = x / sqrt(mean(x²) + eps)
  RoPE θ_i = pos·base^(−2i/D), i < D/2; NEOX rotates pairs (i, i+D/2), normal pairs (2i, 2i+1):
      out_a = a·cosθ − b·sinθ,  out_b = a·sinθ + b·cosθ
  attention: softmax(q·kᵀ/√D + causal mask)·v; query head j reads kv head j div (nh/nkv)
  matmuls by weight type:
    F32/F16/BF16  y = W·x (float64)
    I2_S          per token: amax = max(1e-5, max|x|) (double), s = f32(127/amax),
                  q = clamp(rint(f32(x·s)), −128, 127), acc = Σ w·q (exact),
                  y = f32(f32(f32(acc)/s)·scale)
    TQ1_0/TQ2_0   per 256-block Q8_K: m = the x of largest |x| (signed), iscale = f32(−127/m),
                  q = min(127, rint(f32(iscale·x))), d = f32(1/iscale);
                  y = Σ_blocks f32(f32(Σ q·w)·f32(d·d_w)) accumulated in float32
    Q8_0          per 32-block: d = f32(amax/127), q = rint(f32(x·f32(127/amax))), d_a = f16(d);
                  y = Σ_blocks f32(Σ q·w_q)·f32(d_a·d_w) accumulated in float32

Numerics modes:
  f32          the above, no f16 roundings, no float32 rounding between nodes.
  ggml-compat  emulates bitnet.cpp (docs/specs/bitnet-graph.md): every node's output is rounded to
               float32; rms_norm sums float32 products in double, mean = f32(sum/n),
               scale = f32(1/f32(sqrt(f32(mean+eps)))); RoPE θscale = f32(base^(−2/D)) and
               θ_i by repeated float32 multiplication from f32(pos), cos/sin rounded to float32;
               K and V cache rounded to f16; q rounded to f16 before q·kᵀ; scores =
               f32(f32(q·kᵀ)·f32(1/√D)) + mask; softmax as ggml's AVX-512 build (ggml_v_expf
               in chunks of 16 over the KV length padded to 32, chunk sums added in double);
               single-token decode rounds p to f16 before p·V; an F16 weight (the F16
               token_embd used as lm_head) rounds its input to f16 on single-token decode.
               The KV length padding to a multiple of 32 adds −inf columns: they only change
               which softmax elements fall into ggml's vector chunks.
  llama.cpp-compat  emulates upstream llama.cpp's CPU backend (AVX-512 ggml, its `bitnet` graph):
               as ggml-compat, except that K and V stay float32 (no f16 cache, q not rounded),
               q·kᵀ is ggml_vec_dot_f32 (64-element steps, the tail summed in float32 as rounded
               products), p·V of a prompt is tinyBLAS (16 FMA lanes) and of a single token
               ggml_vec_dot_f32, the KV length is padded to 256, and an F16 weight rounds its
               input to f16 for prompts too (its sgemm takes f16 × f16). Established on the
               shared llama.cpp traces: every node of f32, tq2_0, tq1_0 and silu-f32 bit for bit.
  SiLU (both compat modes): ggml's vectorized silu, x / (1 + ggml_v_expf(−x)) in chunks of 16,
               a correctly rounded expf for the tail, then · up.
"""

import argparse
import fnmatch
import os
import subprocess
import sys

import numpy as np

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from reference import detmath, gguf
    from reference.trace import TraceWriter
    from bitparity import sha256_file  # on sys.path through reference.trace
else:
    from . import detmath, gguf
    from .trace import TraceWriter
    from bitparity import sha256_file  # on sys.path through .trace

PRODUCER = 'bitparity-reference'
VERSION = '0.1.0'
PROJECTIONS = ('attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down')
OPT_IN_KEYWORDS = ('attn_scores', 'attn_probs', 'in_q8', 'in_scale')
ARCHS = ('bitnet-b1.58', 'bitnet-25', 'bitnet', 'llama')


class RefError(ValueError):
    """Unsupported or inconsistent model."""


def f32(a):
    """Round to float32 and back to float64 (one IEEE float32 rounding)."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def f16(a):
    """Round to float16 (nearest-even) and back to float64; via float32 like ggml's FP32_TO_FP16."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float16).astype(np.float64)


NUMERICS = ('f32', 'ggml-compat', 'llama.cpp-compat')


# --- int8 activation quantizers (exact emulations) -------------------------------------------
def quantize_act_i2s(x):
    """bitnet.cpp's per-token int8 activation quantization (docs/specs/i2s.md).

    x: [T, K] float. Returns (q int8 [T, K], s float32 [T]) with x ≈ q / s."""
    x = np.asarray(x, dtype=np.float64)
    amax = np.maximum(1e-5, np.max(np.abs(x), axis=-1))
    s = (127.0 / amax).astype(np.float32)
    v = (x * s.astype(np.float64)[:, None]).astype(np.float32)
    q = np.clip(np.rint(v), -128, 127).astype(np.int8)
    return q, s


def i2s_matmul_from_q(q, s, w, scale):
    """y = f32(f32(f32(acc)/s)·scale) with acc = q·wᵀ exact; q [T,K] int8, w [N,K] int8."""
    # float32 BLAS is exact here: every partial sum is an integer below 128·K < 2^24 (K < 2^17).
    acc = q.astype(np.float32) @ w.T.astype(np.float32)
    y = (acc / s[:, None]).astype(np.float32)
    return (y * np.float32(scale)).astype(np.float32)


def i2s_matmul(x, w, scale):
    """bitnet.cpp's I2_S matmul of activations x [T, K] with ternary w [N, K] (int8) and the
    tensor scale; returns float32 [T, N], bit-exact with bitnet.cpp on x86."""
    q, s = quantize_act_i2s(x)
    return i2s_matmul_from_q(q, s, w, scale)


def quantize_act_q8k(x):
    """llama.cpp's quantize_row_q8_K_ref per 256-block. x [T, K] -> (q int8 [T, K], d float32
    [T, K/256]) with x ≈ q·d (d may be negative)."""
    x = np.asarray(x, dtype=np.float64).astype(np.float32)
    t, k = x.shape
    xb = x.reshape(t, k // 256, 256)
    idx = np.argmax(np.abs(xb), axis=-1)              # first of equal |x|, as the C loop's '>'
    m = np.take_along_axis(xb, idx[..., None], axis=-1)[..., 0]
    with np.errstate(divide='ignore', invalid='ignore'):
        iscale = np.where(m != 0, np.float32(-127.0) / np.where(m != 0, m, 1), 0).astype(np.float32)
        d = np.where(m != 0, np.float32(1.0) / np.where(iscale != 0, iscale, 1), 0).astype(np.float32)
    v = (iscale[..., None] * xb).astype(np.float32)
    q = np.minimum(127, np.rint(v)).astype(np.int8)
    return q.reshape(t, k), d


def tq_matmul(x, w, dw, lanes8=False):
    """llama.cpp TQ1_0/TQ2_0 · Q8_K: w [N, K] int8 ternary, dw [N, K/256] float32 block scales.
    lanes8: ggml's x86 kernel order (the compat modes): per block 8 int32 lanes, lane k = Σ over
    the elements e with (e mod 32) div 4 = k of (w+1)·q, minus the q sum of elements 32k..32k+31;
    each lane accumulated across blocks as fma(lane, f32(d·d_w), acc), a halving tree at the end.
    Otherwise one float32 sum of the blocks' exact integer dot products."""
    q, d = quantize_act_q8k(x)
    t, k = q.shape
    nb = k // 256
    if lanes8:
        n = w.shape[0]
        acc = np.zeros((t, n, 8), dtype=np.float32)
        for b in range(nb):
            sl = slice(b * 256, (b + 1) * 256)
            qb = q[:, sl].astype(np.int64).reshape(t, 8, 8, 4)            # e = 32g + 4k + r
            cb = (w[:, sl].astype(np.int64) + 1).reshape(n, 8, 8, 4)
            lanes = np.einsum('tgkr,ngkr->tnk', qb, cb) - q[:, sl].astype(np.int64).reshape(t, 8, 32).sum(-1)[:, None, :]
            db = (d[:, b][:, None] * dw[:, b][None, :]).astype(np.float32)
            acc = _fma32(lanes.astype(np.float32), db[..., None], acc)
        h = (acc[..., :4] + acc[..., 4:]).astype(np.float32)
        y = ((h[..., 0] + h[..., 2]).astype(np.float32) + (h[..., 1] + h[..., 3]).astype(np.float32)).astype(np.float32)
        return y, q, d
    y = np.zeros((t, w.shape[0]), dtype=np.float32)
    for b in range(nb):
        sl = slice(b * 256, (b + 1) * 256)
        acc = q[:, sl].astype(np.float32) @ w[:, sl].T.astype(np.float32)     # exact integers
        y = (y + acc * (d[:, b][:, None] * dw[:, b][None, :]).astype(np.float32)).astype(np.float32)
    return y, q, d


def quantize_act_q8_0(x):
    """ggml's AVX2 quantize_row_q8_0: per 32-block d = amax/127, q = rint(x·127/amax);
    returns (q int8 [T,K], d as stored f16 -> float32 [T, K/32])."""
    x = np.asarray(x, dtype=np.float64).astype(np.float32)
    t, k = x.shape
    xb = x.reshape(t, k // 32, 32)
    amax = np.max(np.abs(xb), axis=-1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide='ignore'):
        idv = np.where(amax != 0, np.float32(127) / np.where(amax != 0, amax, 1), 0).astype(np.float32)
    q = np.rint((xb * idv[..., None]).astype(np.float32)).astype(np.int8)
    return q.reshape(t, k), d.astype(np.float16).astype(np.float32)


def q8_0_matmul(x, w, dw, lanes8=False):
    """Q8_0 weights (w [N,K] int8, dw [N,K/32]) times Q8_0-quantized activations. lanes8: ggml's
    x86 order (the compat modes): per block 8 int32 lanes of 4 consecutive products each,
    accumulated across blocks as fma(f32(d_w·d), lane, acc), a halving tree at the end.
    Otherwise one float32 sum of the blocks' exact integer dot products."""
    q, d = quantize_act_q8_0(x)
    t, k = q.shape
    if lanes8:
        n = w.shape[0]
        acc = np.zeros((t, n, 8), dtype=np.float32)
        for b in range(k // 32):
            sl = slice(b * 32, (b + 1) * 32)
            lanes = np.einsum('tkr,nkr->tnk', q[:, sl].astype(np.int64).reshape(t, 8, 4),
                              w[:, sl].astype(np.int64).reshape(n, 8, 4))
            db = (d[:, b][:, None] * dw[:, b][None, :]).astype(np.float32)
            acc = _fma32(lanes.astype(np.float32), db[..., None], acc)
        h = (acc[..., :4] + acc[..., 4:]).astype(np.float32)
        return ((h[..., 0] + h[..., 2]).astype(np.float32) + (h[..., 1] + h[..., 3]).astype(np.float32)).astype(np.float32)
    y = np.zeros((t, w.shape[0]), dtype=np.float32)
    for b in range(k // 32):
        sl = slice(b * 32, (b + 1) * 32)
        acc = q[:, sl].astype(np.float32) @ w[:, sl].T.astype(np.float32)
        y = (y + acc * (d[:, b][:, None] * dw[:, b][None, :]).astype(np.float32)).astype(np.float32)
    return y


_LIBM = None


def _libm_f32(name, x):
    """The C library's float function (cosf, sinf) element-wise, as float64 values: ggml calls
    cosf/sinf, whose results differ from a correctly rounded float64 cos in the last float32
    bit for a fraction of the arguments. Falls back to numpy when libm cannot be loaded."""
    global _LIBM
    x = np.asarray(x, dtype=np.float32)
    try:
        if _LIBM is None:
            import ctypes
            import ctypes.util
            _LIBM = ctypes.CDLL(ctypes.util.find_library('m') or 'libm.so.6')
            for fn in ('cosf', 'sinf'):
                getattr(_LIBM, fn).restype = ctypes.c_float
                getattr(_LIBM, fn).argtypes = [ctypes.c_float]
        f = getattr(_LIBM, name)
        flat = [f(float(v)) for v in x.ravel()]
        return np.asarray(flat, dtype=np.float32).reshape(x.shape).astype(np.float64)
    except OSError:
        return getattr(np, name[:-1])(x.astype(np.float64)).astype(np.float32).astype(np.float64)


def _fma32(a, b, c):
    """float32 fused multiply-add: the float64 product of two float32 values is exact; adding c
    in extended precision (64-bit mantissa) and rounding once to float32 matches a true FMA
    except in double-rounding ties, which need the exact sum to exceed 64 bits."""
    p = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    return (p.astype(np.longdouble) + np.asarray(c, np.float64)).astype(np.float32)


def ggml_expf_avx512(x):
    """ggml_v_expf of an AVX-512 build of ggml, element-wise (ggml-compat softmax).

    ARM optimized-routines expf: n = round(x·log2e) by the 1.5·2^23 shift, b = x − n·ln2 in two
    FMA steps, a degree-5 polynomial j ≈ e^b with its leading 1, result = scalef(j, n) = j·2^n;
    |n| > 192 saturates to 0 (n ≤ 0) or inf. Not in the specs: established on the shared
    bitnet.cpp traces, whose softmax nodes it reproduces bit for bit."""
    x = np.asarray(x, dtype=np.float32)
    r = np.float32(float.fromhex('0x1.8p23'))
    with np.errstate(invalid='ignore', over='ignore'):
        z = _fma32(x, np.float32(float.fromhex('0x1.715476p+0')), r)
        n = (z - r).astype(np.float32)
        b = _fma32(-n, np.float32(float.fromhex('0x1.62e4p-1')), x)
        b = _fma32(-n, np.float32(float.fromhex('0x1.7f7d1cp-20')), b)
        u = (b * b).astype(np.float32)
        j = _fma32(_fma32(_fma32(np.float32(float.fromhex('0x1.0e4020p-7')), b, np.float32(float.fromhex('0x1.573e2ep-5'))), u,
                          _fma32(np.float32(float.fromhex('0x1.555e66p-3')), b, np.float32(float.fromhex('0x1.fffdb6p-2')))),
                   u, _fma32(np.float32(float.fromhex('0x1.ffffecp-1')), b, np.float32(1.0)))
        nn = np.where(np.isfinite(n), n, 0).astype(np.int32)
        res = np.ldexp(j, nn).astype(np.float32)
        big = np.abs(n) > 192
        return np.where(big, np.where(n <= 0, np.float32(0), np.float32(np.inf)), res).astype(np.float32)


def ggml_silu(x, lanes=16):
    """ggml's silu of float32 rows x [..., n]: x / (1 + ggml_v_expf(−x)) with float32 steps over
    the first n − n mod 16 elements (its AVX-512 vector loop), a correctly rounded expf for the
    rest (its scalar tail; the engine calls libm's expf there). Returns float64 values."""
    x = np.asarray(x, dtype=np.float32)
    nv = x.shape[-1] // lanes * lanes
    e = np.empty_like(x)
    e[..., :nv] = ggml_expf_avx512(-x[..., :nv])
    e[..., nv:] = detmath.exp(-x[..., nv:].astype(np.float64)).astype(np.float32)
    return (x / (np.float32(1) + e).astype(np.float32)).astype(np.float32).astype(np.float64)


def ggml_softmax_rows(scores, n_cols):
    """ggml's soft_max_ext on float32 rows of already scaled and masked scores (AVX-512 build):
    the rows are padded with −inf to ``n_cols`` (the KV length, a multiple of 32), exponentials
    come from ggml_v_expf in chunks of 16 whose halving-tree sums are added in double (a libm
    expf tail when n_cols is not a multiple of 16), then every value is multiplied by
    f32(1/sum). Returns the unpadded rows."""
    scores = np.asarray(scores, dtype=np.float32)
    n = scores.shape[-1]
    pad = np.full(scores.shape[:-1] + (n_cols,), -np.inf, dtype=np.float32)
    pad[..., :n] = scores
    mx = np.max(pad, axis=-1, keepdims=True)
    d = (pad - mx).astype(np.float32)
    nv = n_cols // 16 * 16
    e = np.empty_like(d)
    e[..., :nv] = ggml_expf_avx512(d[..., :nv])
    e[..., nv:] = detmath.exp(d[..., nv:].astype(np.float64)).astype(np.float32)
    total = np.zeros(d.shape[:-1], dtype=np.float64)
    for c in range(0, nv, 16):
        v = e[..., c:c + 16]
        while v.shape[-1] > 1:
            h = v.shape[-1] // 2
            v = (v[..., :h] + v[..., h:]).astype(np.float32)
        total += v[..., 0].astype(np.float64)
    for c in range(nv, n_cols):
        total += e[..., c].astype(np.float64)
    inv = (1.0 / total).astype(np.float32)[..., None]
    return (e * inv).astype(np.float32)[..., :n]


def ggml_vec_dot_f16(a, b, lanes=16, tail='double'):
    """Σ a·b over the last axis as ggml_vec_dot_f16 of an AVX-512 build sums it (ggml-compat
    attention products): operands are f16 values; 4 accumulators of ``lanes`` float32 FMA lanes
    take chunks of 4·lanes elements (accumulator j the j-th quarter), then acc0+acc2, acc1+acc3,
    their sum and a halving tree; tail='float' is ggml_vec_dot_f32 (float32 operands, the tail
    added to the float32 sum as rounded products). Otherwise the tail (n not a multiple of 4·lanes) adds the exact f16×f16
    products in double. Below 4·lanes elements everything is tail: an exact float64 sum. Not in
    the specs: it reproduces the engine's kernel, which matches every kq/kqv node of the shared
    traces. Broadcasts a and b; returns float64 values of the float32 results."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    n = a.shape[-1]
    step = 4 * lanes
    nv = n // step * step
    s32 = np.zeros(a.shape[:-1], dtype=np.float32)
    if nv:
        acc = np.zeros(a.shape[:-1] + (4, lanes), dtype=np.float32)
        for i in range(0, nv, step):
            ca = a[..., i:i + step].reshape(a.shape[:-1] + (4, lanes))
            cb = b[..., i:i + step].reshape(a.shape[:-1] + (4, lanes))
            acc = _fma32(ca, cb, acc)
        v = ((acc[..., 0, :] + acc[..., 2, :]).astype(np.float32) +
             (acc[..., 1, :] + acc[..., 3, :]).astype(np.float32)).astype(np.float32)
        while v.shape[-1] > 1:
            h = v.shape[-1] // 2
            v = (v[..., :h] + v[..., h:]).astype(np.float32)
        s32 = v[..., 0]
    if tail == 'float':    # ggml_vec_dot_f32: sumf += x·y in float32, the product rounded first
        s = s32
        for i in range(nv, n):
            s = (s + (a[..., i] * b[..., i]).astype(np.float32)).astype(np.float32)
        return s.astype(np.float64)
    total = s32.astype(np.float64)
    for i in range(nv, n):
        total = total + (a[..., i] * b[..., i]).astype(np.float32).astype(np.float64)
    return total.astype(np.float32).astype(np.float64)


def ggml_dot(x, w, lanes, tail_fma=True):
    """x [T,K] · w [N,K]ᵀ summed as ggml's x86 float kernels do (ggml-compat mode).

    ``lanes`` float32 FMA accumulators (lane l takes the products k ≡ l mod lanes, in order),
    folded in halves down to 8 lanes, then [l_i + l_(i+4)] and (t0 + t2) + (t1 + t3); leftover
    products (K not a multiple of lanes) are added in order afterwards, each as one fma
    (bitnet.cpp's build; ``tail_fma=False``: rounded product, then add, as upstream llama.cpp's
    build does — both established on the shared traces' q·k nodes). Not in the specs: this
    order was established on the shared bitnet.cpp traces, where it reproduces every F32/F16
    weight matmul bit for bit with lanes = 16 for prompts (T > 1) and 64 for single tokens.
    The FMA is emulated as one rounding of the exact float64 sum (a double rounding can differ
    from a fused one only in rare ties)."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    w32 = np.asarray(w, dtype=np.float32)
    t, k = x.shape
    kl = k // lanes * lanes
    out = np.empty((t, w32.shape[0]), dtype=np.float32)
    for r in range(0, w32.shape[0], Linear.CHUNK):
        wc = w32[r:r + Linear.CHUNK].astype(np.float64)
        acc = np.zeros((t, wc.shape[0], lanes), dtype=np.float32)
        for j in range(0, kl, lanes):
            # FMA: the exact float64 product plus the float32 accumulator, summed in extended
            # precision so that the one rounding to float32 is (almost always) the fused one
            acc = (acc.astype(np.longdouble) + x[:, None, j:j + lanes] * wc[None, :, j:j + lanes]).astype(np.float32)
        while acc.shape[-1] > 8:
            h = acc.shape[-1] // 2
            acc = (acc[..., :h] + acc[..., h:]).astype(np.float32)
        t4 = (acc[..., :4] + acc[..., 4:]).astype(np.float32)
        y = ((t4[..., 0] + t4[..., 2]).astype(np.float32) + (t4[..., 1] + t4[..., 3]).astype(np.float32)).astype(np.float32)
        for j in range(kl, k):
            if tail_fma:
                y = (y.astype(np.longdouble) + x[:, None, j] * wc[None, :, j]).astype(np.float32)
            else:
                y = (y + (x[:, None, j] * wc[None, :, j]).astype(np.float32)).astype(np.float32)
        out[:, r:r + Linear.CHUNK] = y
    return out


# --- weights ---------------------------------------------------------------------------------
class Linear:
    """One projection weight [N out, K in] with the arithmetic its type implies.

    kind 'float' (F32/F16/BF16: w float32 holds the exact values), 'i2s' (w int8, scale),
    'tq' (w int8, dw [N, K/256]), 'q8_0' (w int8, dw [N, K/32])."""

    CHUNK = 8192    # output rows per float64 block: bounds temporaries for 128k-row lm_heads

    def __init__(self, g, name):
        t = g.by_name[name]
        if len(t.ne) != 2:
            raise RefError('%s: %s must be 2-D, has ne=%s' % (g.path, name, list(t.ne)))
        self.name, self.type = name, t.type
        self.n_out, self.n_in = t.ne[1], t.ne[0]
        if t.type in (gguf.F32, gguf.F16, gguf.BF16):
            self.kind, self.w = 'float', g.tensor(name)
        elif t.type == gguf.I2_S:
            self.kind = 'i2s'
            self.w, self.scale = gguf.i2s_ternary(g.raw(name), t.ne)
        elif t.type in (gguf.TQ1_0, gguf.TQ2_0):
            self.kind = 'tq'
            self.w, self.dw = gguf.ternary_codes(g.raw(name), t.type, t.ne)
        elif t.type == gguf.Q8_0:
            self.kind = 'q8_0'
            blocks = np.frombuffer(g.raw(name), dtype=np.uint8).reshape(-1, 34)
            self.w = blocks[:, 2:].view(np.int8).reshape(self.n_out, self.n_in)
            self.dw = gguf.f16_bits_to_f32(blocks[:, :2].copy().view('<u2')[:, 0]).reshape(self.n_out, -1)
        else:
            raise RefError('%s: %s has unsupported type %s' % (g.path, name, gguf.TYPE_NAMES.get(t.type)))

    @property
    def ternary(self):
        return self.kind in ('i2s', 'tq')

    def __call__(self, x, compat, single_token=False, lcpp=False):
        """(y float64 [T, N], q8 or None, in_scale or None). lcpp (llama.cpp-compat): an F16
        weight rounds its input to f16 for prompts too, and float tails are not fused."""
        if self.kind == 'i2s':
            q, s = quantize_act_i2s(x)
            return i2s_matmul_from_q(q, s, self.w, self.scale).astype(np.float64), q, s
        if self.kind == 'tq':
            y, q, d = tq_matmul(x, self.w, self.dw, lanes8=compat)
            return y.astype(np.float64), q, d
        if self.kind == 'q8_0':
            return q8_0_matmul(x, self.w, self.dw, lanes8=compat).astype(np.float64), None, None
        if compat and (single_token or lcpp) and self.type == gguf.F16:
            x = f16(x)
        if compat:
            return ggml_dot(x, self.w, 64 if single_token else 16, tail_fma=not lcpp).astype(np.float64), None, None
        x = np.asarray(x, dtype=np.float64)
        out = np.empty((x.shape[0], self.n_out))
        for r in range(0, self.n_out, self.CHUNK):
            out[:, r:r + self.CHUNK] = detmath.matmul_nt(x, self.w[r:r + self.CHUNK])
        return out, None, None


class Model:
    """Hyper-parameters and weights of a GGUF model (attributes documented inline)."""

    def __init__(self, path):
        g = gguf.GGUFFile(path)
        self.path = str(path)
        self.gguf = g
        arch = g.get('general.architecture')
        if arch not in ARCHS:
            raise RefError('%s: general.architecture %r not supported (%s)' % (path, arch, ', '.join(ARCHS)))
        self.arch = arch

        def hp(key, default=None, required=True):
            v = g.get('%s.%s' % (arch, key), default)
            if v is None and required:
                raise RefError('%s: missing %s.%s' % (path, arch, key))
            return v

        self.n_embd = int(hp('embedding_length'))                 # H
        self.n_layer = int(hp('block_count'))
        self.n_ff = int(hp('feed_forward_length'))                # F
        self.n_head = int(hp('attention.head_count'))             # nh
        self.n_head_kv = int(hp('attention.head_count_kv', self.n_head))
        self.head_dim = self.n_embd // self.n_head                # D
        self.rope_base = float(hp('rope.freq_base', 10000.0))
        self.rope_dim = int(hp('rope.dimension_count', self.head_dim))
        self.eps = float(np.float32(hp('attention.layer_norm_rms_epsilon')))
        self.n_ctx = int(hp('context_length', 4096))
        if self.rope_dim != self.head_dim:
            raise RefError('%s: rope.dimension_count %d != head_dim %d' % (path, self.rope_dim, self.head_dim))
        if self.n_head % self.n_head_kv:
            raise RefError('%s: head_count %d not a multiple of head_count_kv %d' % (path, self.n_head, self.n_head_kv))
        act = g.get('%s.hidden_activation' % arch)
        if act is None:
            act = 'relu2' if arch in ('bitnet-b1.58', 'bitnet-25') else 'silu'
        if act not in ('relu2', 'silu'):
            raise RefError('%s: %s.hidden_activation %r not supported (relu2, silu)' % (path, arch, act))
        self.activation = act
        self.sub_norms = arch != 'llama'
        self.rope_neox = arch != 'llama'

        def vec(name):
            if name not in g.by_name:
                raise RefError('%s: missing tensor %s' % (path, name))
            return g.tensor(name).astype(np.float64).reshape(-1)

        self.tok_embd = g.tensor('token_embd.weight')              # [V, H] float32
        self.n_vocab = self.tok_embd.shape[0]
        self.output_norm = vec('output_norm.weight')               # [H]
        if arch == 'llama' and 'output.weight' in g.by_name:
            self.lm_head = Linear(g, 'output.weight')
        else:
            self.lm_head = Linear(g, 'token_embd.weight')          # tied (bitnet.cpp ignores output.weight)
        self.layers = []
        for i in range(self.n_layer):
            p = 'blk.%d.' % i
            lay = {'attn_norm': vec(p + 'attn_norm.weight'), 'ffn_norm': vec(p + 'ffn_norm.weight')}
            if self.sub_norms:
                lay['attn_sub_norm'] = vec(p + 'attn_sub_norm.weight')      # [nh·D]
                lay['ffn_sub_norm'] = vec(p + 'ffn_sub_norm.weight')        # [F]
            for w in PROJECTIONS:
                if p + w + '.weight' not in g.by_name:
                    raise RefError('%s: missing tensor %s' % (path, p + w + '.weight'))
                lay[w] = Linear(g, p + w + '.weight')
                sname = p + w + '.scale'
                lay[w + '.scale'] = (float(g.tensor(sname).reshape(-1)[0])
                                     if arch == 'bitnet' and sname in g.by_name else None)
            self._check_shapes(i, lay)
            self.layers.append(lay)

    def _check_shapes(self, i, lay):
        H, F, qd, kvd = self.n_embd, self.n_ff, self.n_head * self.head_dim, self.n_head_kv * self.head_dim
        want = {'attn_q': (qd, H), 'attn_k': (kvd, H), 'attn_v': (kvd, H), 'attn_output': (H, qd),
                'ffn_gate': (F, H), 'ffn_up': (F, H), 'ffn_down': (H, F)}
        for w, (n, k) in want.items():
            if (lay[w].n_out, lay[w].n_in) != (n, k):
                raise RefError('%s: blk.%d.%s.weight is [out %d, in %d], expected [%d, %d]'
                               % (self.path, i, w, lay[w].n_out, lay[w].n_in, n, k))


# --- tap selection ----------------------------------------------------------------------------
# Every tap name a model of n blocks has, as the engine's tap table lists them (docs/taps.md).
BLOCK_TAP_KINDS = ('attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_q_rope', 'attn_k_rope', 'attn_scores',
                   'attn_probs', 'attn_ctx', 'attn_sub_norm', 'attn_out', 'ffn_inp', 'ffn_norm', 'ffn_gate',
                   'ffn_up', 'ffn_act', 'ffn_sub_norm', 'ffn_out', 'out') + tuple(
                       '%s.%s' % (p, k) for p in PROJECTIONS for k in ('in_q8', 'in_scale'))
GLOBAL_TAPS = ('token_embd', 'output_norm', 'logits')


def tap_names(n_layer):
    return list(GLOBAL_TAPS) + ['blk.%d.%s' % (i, k) for i in range(n_layer) for k in BLOCK_TAP_KINDS]


class TapSelector:
    """Glob selection of canonical taps, by the engine's rule (engine/src/taps.c): None selects
    every tap except the opt-in ones (attn_scores, attn_probs, *.in_q8, *.in_scale); globs select
    every tap they match, opt-in ones included (``*`` is everything)."""

    def __init__(self, globs=None):
        self.globs = list(globs) if globs else None

    @staticmethod
    def _hit(tap, glob):
        return fnmatch.fnmatchcase(tap, glob)

    def __call__(self, tap):
        if self.globs is None:
            return not any(tap.endswith(k) for k in OPT_IN_KEYWORDS)
        return any(self._hit(tap, g) for g in self.globs)

    def check(self, n_layer):
        """Raises RefError for a glob that selects no tap of a model of n_layer blocks (a typo)."""
        names = tap_names(n_layer)
        for g in self.globs or ():
            if not any(self._hit(t, g) for t in names):
                raise RefError("--taps: pattern '%s' matches no tap of this model (%d blocks; names like "
                               "blk.0.attn_q, logits)" % (g, n_layer))


# --- the forward pass -------------------------------------------------------------------------
class Session:
    """A model with a KV cache: ``eval(tokens)`` runs one evaluation at positions p0.. (p0 = the
    number of tokens already cached) and returns (logits float64 [T, V], taps dict in evaluation
    order of float32 / int8 arrays)."""

    def __init__(self, model, numerics='f32', taps=None, kv=None):
        if numerics not in NUMERICS:
            raise RefError('numerics must be one of %s, not %r' % (', '.join(NUMERICS), numerics))
        if kv not in (None, 'f16', 'f32') or (kv == 'f32' and numerics == 'ggml-compat') or (kv and numerics == 'f32'):
            raise RefError('kv %r: the reference runs f16 in ggml-compat, f32 in f32, either in llama.cpp-compat' % kv)
        self.m = model
        self.compat = numerics != 'f32'           # ggml's roundings (bitnet.cpp's or llama.cpp's)
        self.lcpp = numerics == 'llama.cpp-compat'
        self.kv16 = numerics == 'ggml-compat' or (self.lcpp and kv == 'f16')   # the K/V cache is f16
        self.numerics = numerics
        self.select = taps if isinstance(taps, TapSelector) else TapSelector(taps)
        self.select.check(model.n_layer)
        m = model
        self.k_cache = [np.zeros((0, m.n_head_kv, m.head_dim)) for _ in range(m.n_layer)]   # [pos, nkv, D]
        self.v_cache = [np.zeros((0, m.n_head_kv, m.head_dim)) for _ in range(m.n_layer)]
        self.n_past = 0

    # node output rounding: float32 storage of ggml tensors in compat mode
    def _r(self, a):
        return f32(a) if self.compat else np.asarray(a, dtype=np.float64)

    def _tap(self, taps, name, value):
        if self.select(name):
            v = np.asarray(value)
            taps[name] = v.astype(np.int8 if name.endswith('.in_q8') else np.float32)

    def rms_norm(self, x, gamma):
        """x / sqrt(mean(x²)+eps) · gamma (ggml-compat: bitnet.cpp's float/double steps)."""
        if not self.compat:
            mean = detmath.sequential_sum(x * x)[..., None] / x.shape[-1]
            return x / np.sqrt(mean + self.m.eps) * gamma
        ssum = detmath.sequential_sum(f32(x * x))[..., None]     # ggml: a double loop
        mean = f32(ssum / x.shape[-1])
        scale = f32(1.0 / f32(np.sqrt(f32(mean + self.m.eps))))
        return f32(f32(x * scale) * gamma)

    def rope_angles(self, positions):
        """cos, sin [T, D/2] of θ_i = pos·base^(−2i/D)."""
        half = self.m.head_dim // 2
        if not self.compat:
            inv = np.array([detmath.power(self.m.rope_base, -2.0 * i / self.m.head_dim) for i in range(half)])
            th = np.asarray(positions, dtype=np.float64)[:, None] * inv[None, :]
            return detmath.cos_sin(th)
        tscale = np.float32(detmath.power(self.m.rope_base, -2.0 / self.m.head_dim))
        th = np.empty((len(positions), half), dtype=np.float32)
        cur = np.asarray(positions, dtype=np.float32)
        for i in range(half):
            th[:, i] = cur
            cur = (cur * tscale).astype(np.float32)
        return _libm_f32('cosf', th), _libm_f32('sinf', th)

    def rope(self, x, cos, sin):
        """x [T, heads, D] rotated (NEOX pairs (i, i+D/2) or normal pairs (2i, 2i+1))."""
        D = x.shape[-1]
        c, s = cos[:, None, :], sin[:, None, :]
        out = np.empty_like(x)
        r = self._r
        # ggml-compat: the compiler fuses x0·cos − (x1·sin) into one FMA (established on the
        # shared bitnet.cpp traces), so the second product is rounded and the first is not.
        if self.m.rope_neox:
            a, b = x[..., :D // 2], x[..., D // 2:]
            out[..., :D // 2] = a * c - r(b * s)
            out[..., D // 2:] = a * s + r(b * c)
        else:
            a, b = x[..., 0::2], x[..., 1::2]
            out[..., 0::2] = a * c - r(b * s)
            out[..., 1::2] = a * s + r(b * c)
        return r(out)

    def _proj(self, taps, lay, w, x, prefix, single):
        lin = lay[w]
        y, q, s = lin(x, self.compat, single, lcpp=self.lcpp)
        if lin.ternary:
            self._tap(taps, '%s%s.in_q8' % (prefix, w), q)
            self._tap(taps, '%s%s.in_scale' % (prefix, w), s)
        if lay.get(w + '.scale') is not None:
            y = self._r(y * np.float64(np.float32(lay[w + '.scale'])))
        return self._r(y)

    def attention(self, taps, prefix, q, il, T, p0):
        """q [T, nh, D] after RoPE; cache already holds positions 0..p0+T-1. Returns ctx [T, nh·D]."""
        m = self.m
        K, V = self.k_cache[il], self.v_cache[il]              # [n_kv, nkv, D]
        n_kv = K.shape[0]
        group = m.n_head // m.n_head_kv
        Kh = np.repeat(K.transpose(1, 0, 2), group, axis=0)    # [nh, n_kv, D]
        Vh = np.repeat(V.transpose(1, 0, 2), group, axis=0)
        qh = q.transpose(1, 0, 2)                              # [nh, T, D]
        mask = np.arange(n_kv)[None, :] > (p0 + np.arange(T))[:, None]     # [T, n_kv]
        # llama.cpp-compat with an f16 cache: q is converted to f16 and a prompt's q·kᵀ goes through
        # tinyBLAS f16 × f16 (16 lanes, when D is a multiple of 16); a single token's as bitnet.cpp's
        gemm16 = self.lcpp and self.kv16 and T > 1 and m.head_dim % 16 == 0
        if gemm16:
            kq = np.stack([ggml_dot(f16(qh[h]), Kh[h], 16) for h in range(m.n_head)]).astype(np.float64)
            scores = f32(kq * np.float64(np.float32(1.0) / np.sqrt(np.float32(m.head_dim))))
        elif self.lcpp and not self.kv16:
            kq = ggml_vec_dot_f16(qh[:, :, None, :], Kh[:, None, :, :], tail='float')
            scores = f32(kq * np.float64(np.float32(1.0) / np.sqrt(np.float32(m.head_dim))))
        elif self.compat:
            kq = ggml_vec_dot_f16(f16(qh)[:, :, None, :], Kh[:, None, :, :])
            scores = f32(kq * np.float64(np.float32(1.0) / np.sqrt(np.float32(m.head_dim))))
        else:
            scores = detmath.matmul_nt(qh, Kh) / np.sqrt(m.head_dim)
        scores = np.where(mask[None], -np.inf, scores)
        self._tap(taps, prefix + 'attn_scores', scores)
        mx = np.max(scores, axis=-1, keepdims=True)
        pad = 256 if self.lcpp else 32   # the KV length ggml sees: llama.cpp's padding, bitnet.cpp's
        if self.compat:
            p = ggml_softmax_rows(scores, min(-(-n_kv // pad) * pad, m.n_ctx)).astype(np.float64)
        else:
            e = detmath.exp(scores - mx)
            p = e / detmath.sequential_sum(e)[..., None]
        self._tap(taps, prefix + 'attn_probs', p)
        if not self.compat:
            ctx = detmath.matmul_nt(p, Vh.transpose(0, 2, 1))   # [nh, T, D]
        else:
            # ggml sums p·V over its padded KV length: the zero columns decide which products
            # share an FMA lane. A single token rounds p to f16 (ggml_vec_dot_f16); a prompt
            # keeps it f32 (tinyBLAS, 16 lanes).
            npad = min(-(-n_kv // pad) * pad, m.n_ctx)
            pp = np.zeros(p.shape[:-1] + (npad,))
            pp[..., :n_kv] = f16(p) if (T == 1 and not (self.lcpp and not self.kv16)) or gemm16 else p
            Vp = np.zeros((Vh.shape[0], npad, Vh.shape[2]))
            Vp[:, :n_kv] = Vh
            if T == 1 and self.lcpp and not self.kv16:    # llama.cpp's sgemm serves prompts only
                ctx = ggml_vec_dot_f16(pp[:, :, None, :], Vp.transpose(0, 2, 1)[:, None, :, :], tail='float')
            elif T == 1:
                ctx = ggml_vec_dot_f16(pp[:, :, None, :], Vp.transpose(0, 2, 1)[:, None, :, :])
            else:
                ctx = np.stack([ggml_dot(pp[h], Vp[h].T, 16) for h in range(m.n_head)]).astype(np.float64)
        return ctx.transpose(1, 0, 2).reshape(T, m.n_head * m.head_dim)

    def eval(self, tokens):
        m = self.m
        tokens = [int(t) for t in tokens]
        T, p0 = len(tokens), self.n_past
        if not T:
            raise RefError('empty evaluation')
        if p0 + T > m.n_ctx:
            raise RefError('context overflow: %d + %d > n_ctx %d' % (p0, T, m.n_ctx))
        bad = [t for t in tokens if not 0 <= t < m.n_vocab]
        if bad:
            raise RefError('token id %d outside the vocabulary (0..%d)' % (bad[0], m.n_vocab - 1))
        single = T == 1
        taps = {}
        x = m.tok_embd[tokens].astype(np.float64)
        self._tap(taps, 'token_embd', x)
        cos, sin = self.rope_angles(np.arange(p0, p0 + T))
        nh, nkv, D = m.n_head, m.n_head_kv, m.head_dim
        for il, lay in enumerate(m.layers):
            pre = 'blk.%d.' % il
            h = self.rms_norm(x, lay['attn_norm'])
            self._tap(taps, pre + 'attn_norm', h)
            q = self._proj(taps, lay, 'attn_q', h, pre, single)
            self._tap(taps, pre + 'attn_q', q)
            k = self._proj(taps, lay, 'attn_k', h, pre, single)
            self._tap(taps, pre + 'attn_k', k)
            v = self._proj(taps, lay, 'attn_v', h, pre, single)
            self._tap(taps, pre + 'attn_v', v)
            q = self.rope(q.reshape(T, nh, D), cos, sin)
            k = self.rope(k.reshape(T, nkv, D), cos, sin)
            self._tap(taps, pre + 'attn_q_rope', q.reshape(T, -1))
            self._tap(taps, pre + 'attn_k_rope', k.reshape(T, -1))
            store = f16 if self.kv16 else (lambda a: a)
            self.k_cache[il] = np.concatenate([self.k_cache[il], store(k)])
            self.v_cache[il] = np.concatenate([self.v_cache[il], store(v.reshape(T, nkv, D))])
            o = self.attention(taps, pre, q, il, T, p0)
            self._tap(taps, pre + 'attn_ctx', o)
            if m.sub_norms:
                o = self.rms_norm(o, lay['attn_sub_norm'])
                self._tap(taps, pre + 'attn_sub_norm', o)
            o = self._proj(taps, lay, 'attn_output', o, pre, single)
            self._tap(taps, pre + 'attn_out', o)
            x = self._r(o + x)
            self._tap(taps, pre + 'ffn_inp', x)
            h = self.rms_norm(x, lay['ffn_norm'])
            self._tap(taps, pre + 'ffn_norm', h)
            g = self._proj(taps, lay, 'ffn_gate', h, pre, single)
            self._tap(taps, pre + 'ffn_gate', g)
            u = self._proj(taps, lay, 'ffn_up', h, pre, single)
            self._tap(taps, pre + 'ffn_up', u)
            if m.activation == 'relu2':
                r = np.maximum(g, 0.0)
                a = self._r(self._r(r * r) * u)
            elif self.compat:
                a = self._r(ggml_silu(g) * u)
            else:
                a = self._r(self._r(g / self._r(1.0 + self._r(detmath.exp(-g)))) * u)
            self._tap(taps, pre + 'ffn_act', a)
            if m.sub_norms:
                a = self.rms_norm(a, lay['ffn_sub_norm'])
                self._tap(taps, pre + 'ffn_sub_norm', a)
            d = self._proj(taps, lay, 'ffn_down', a, pre, single)
            self._tap(taps, pre + 'ffn_out', d)
            x = self._r(d + x)
            self._tap(taps, pre + 'out', x)
        h = self.rms_norm(x, m.output_norm)
        self._tap(taps, 'output_norm', h)
        logits, _, _ = m.lm_head(h, self.compat, single, lcpp=self.lcpp)
        logits = self._r(logits)
        self._tap(taps, 'logits', logits)
        self.n_past += T
        return logits, taps


def greedy(logits):
    """Index of the largest logit of the last row (first one on ties)."""
    return int(np.argmax(logits[-1]))


def run_trace(model, tokens, decode=0, numerics='f32', taps=None, callback=None, kv=None, follow=None):
    """Prompt evaluation then ``decode`` greedy single-token steps, or (``follow``: a list of token
    lists) exactly those evaluations after the prompt, whatever greedy would choose (teacher
    forcing, to follow another trace's evaluations). Calls callback(k, tokens, p0, taps) per
    evaluation; returns the greedy token after each evaluation."""
    s = Session(model, numerics, taps, kv)
    chosen, cur = [], list(tokens)
    steps = decode if follow is None else len(follow)
    for k in range(steps + 1):
        p0 = s.n_past
        logits, tp = s.eval(cur)
        if callback:
            callback(k, cur, p0, tp)
        chosen.append(greedy(logits))
        if k < steps:
            cur = [chosen[-1]] if follow is None else list(follow[k])
    return chosen


# --- CLI ---------------------------------------------------------------------------------------
def _commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(['git', 'rev-parse', '--short=12', 'HEAD'], cwd=here, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def _tokens(s):
    try:
        toks = [int(t) for t in s.split(',') if t.strip() != '']
    except ValueError:
        raise argparse.ArgumentTypeError('--tokens wants comma-separated integers, got %r' % s)
    if not toks:
        raise argparse.ArgumentTypeError('--tokens is empty')
    return toks


def _evals(s):
    """'1,2;3;4' -> [[1, 2], [3], [4]]; '' -> [] (the prompt alone)."""
    return [_tokens(e) for e in s.split(';') if e.strip() != '']


_TYPE_NAMES = {0: 'f32', 1: 'f16', 8: 'q8_0', 30: 'bf16', 34: 'tq1_0', 35: 'tq2_0', 36: 'i2_s'}


def _weight_type(model):
    """The projections' tensor type in lower case ("i2_s"), recorded in meta.yaml: it decides
    which default policy a comparison uses."""
    info = model.gguf.by_name.get('blk.0.attn_q.weight')
    return _TYPE_NAMES.get(info.type, 'type%d' % info.type) if info is not None else 'none'


def write_trace(model_path, tokens, out, decode=0, numerics='ggml-compat', taps=None, kv=None, follow=None,
                activation=None):
    """Run and write the canonical trace ``out``; returns the greedy tokens. ``follow``: see
    run_trace; ``activation``: run this FFN activation instead of the one the model declares
    (recorded as settings.activation)."""
    model = Model(model_path)
    if activation is not None:
        model.activation = activation
    w = TraceWriter(out, {'name': PRODUCER, 'version': VERSION, 'commit': _commit()},
                    {'path': str(model_path), 'sha256': sha256_file(model_path), 'arch': model.arch,
                     'weight_type': _weight_type(model)},
                    {'numerics': numerics,
                     'kv_cache': 'f16' if numerics == 'ggml-compat' or (numerics == 'llama.cpp-compat' and kv == 'f16')
                     else 'f32', 'threads': 1, 'fault': 'none', 'activation': model.activation})
    try:
        def cb(k, toks, p0, tp):
            w.begin(toks, p0)
            for name, arr in tp.items():
                w.add(name, arr)
        chosen = run_trace(model, tokens, decode, numerics, taps, cb, kv, follow)
        w.close(chosen)
    except BaseException:
        w.abort()  # nothing partial: the temporary file goes, an older `out` stays
        raise
    return chosen


def main(argv=None):
    ap = argparse.ArgumentParser(prog='bitnet_ref.py', description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    for name in ('trace', 'run'):
        p = sub.add_parser(name)
        p.add_argument('-m', '--model', required=True)
        p.add_argument('--tokens', required=True, type=_tokens, help='comma-separated ids, used as given')
        p.add_argument('--numerics', choices=NUMERICS, default='ggml-compat')
        p.add_argument('--kv-type', choices=('f16', 'f32'), default=None,
                       help='the K/V cache in llama.cpp-compat (default f32; llama.cpp itself defaults to f16)')
        if name == 'trace':
            p.add_argument('--decode', type=int, default=0, help='greedy single-token steps after the prompt')
            p.add_argument('--evals', type=_evals, default=None,
                           help='instead of --decode: the evaluations after the prompt, each a comma-separated '
                                'token list, separated by ";" (teacher-forced, e.g. another trace\'s steps)')
            p.add_argument('--activation', choices=('relu2', 'silu'), default=None,
                           help='run this FFN activation instead of the one the model declares')
            p.add_argument('--taps', default=None,
                           help='comma-separated globs; without it every tap but the opt-in ones')
            p.add_argument('-o', '--output', required=True)
        else:
            p.add_argument('-n', '--n-predict', type=int, default=16)
    a = ap.parse_args(argv)
    try:
        if a.cmd == 'trace':
            if a.decode < 0:
                ap.error('--decode must be >= 0')
            globs = [g for g in a.taps.split(',') if g] if a.taps else None
            if a.evals is not None and a.decode:
                ap.error('--evals and --decode exclude each other')
            chosen = write_trace(a.model, a.tokens, a.output, a.decode, a.numerics, globs, a.kv_type, a.evals,
                                 a.activation)
            print(' '.join(str(t) for t in chosen))
        else:
            if a.n_predict < 1:
                ap.error('-n must be >= 1')
            chosen = run_trace(Model(a.model), a.tokens, a.n_predict - 1, a.numerics, taps=['logits'])
            print(' '.join(str(t) for t in chosen))
    except (gguf.GGUFError, RefError, OSError) as e:
        print('bitnet_ref.py: error: %s' % e, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
