"""reference/bitnet_ref.py against the shared bitnet.cpp / llama.cpp traces (docs/specs/ggml-trace-names.md).

Measured (float64 reference, this suite's inputs): llama.cpp F32 max NMSE 2.6e-13; TQ1_0/TQ2_0
1.5e-13; SiLU 2e-13; bitnet.cpp I2_S in ggml-compat 9e-14; bitnet.cpp F32 in ggml-compat:
every tap of every evaluation bit-identical (NMSE 0) once the softmax emulates ggml's AVX-512
expf over the padded KV length, RoPE uses libm's cosf/sinf and the prompt's p·V sums over the
padded KV length; the scaled attn_scores differ from f32(kq)·f32(1/√D) by nothing either."""

import unittest

import numpy as np

from reference import bitnet_ref as br
from reference import gguf
from reference import trace as tr
from reference.tests import shared

ALL_TAPS = ['*', '*.attn_scores', '*.attn_probs']
# bitnet.cpp F32 traces in ggml-compat mode: the issue asks NMSE <= 1e-10 at every tap; the
# reference reaches 0. (Before the AVX-512 expf and padded p·V emulation, 1-ulp softmax and
# cosf differences flipped f16 K/V cells and lifted late layers to ~2e-9.)
COMPAT_F32_LIMIT = 1e-10


def compare(model_path, trace_path, numerics, taps=ALL_TAPS):
    """Run the reference over the trace's evaluations; returns ({(eid, tap): nmse}, sessions' logits)."""
    m = br.Model(model_path)
    g = tr.GgmlNodesTrace(trace_path)
    s = br.Session(m, numerics, taps)
    out, logits = {}, {}
    scale = np.float32(1) / np.sqrt(np.float32(m.head_dim))
    for ev in g.evaluations:
        lg, tp = s.eval(ev['tokens'])
        logits[ev['id']] = lg
        for name, a in tp.items():
            b = g.canonical(ev['id'], name)
            if b is None:
                continue
            if name.endswith('attn_scores'):       # ggml node is unscaled; masked part is garbage
                b = b * scale
                keep = np.isfinite(a)
                a, b = a[keep], b[keep]
            out[(ev['id'], name)] = tr.nmse(a, b)
    return out, logits, g


def layer_of(tap):
    parts = tap.split('.')
    return int(parts[1]) if parts[0] == 'blk' else None


class LlamaCpp(unittest.TestCase):
    def test_f32_matches_llamacpp(self):
        res, logits, g = compare(shared('models/tiny-bitnet-llamacpp-f32.gguf'),
                                 shared('reference-traces/llamacpp/f32-p1.npz'), 'f32')
        self.assertEqual(len(res), 4 * 19 + 3)   # every mapped tap of e0
        worst = max(res.items(), key=lambda kv: kv[1])
        self.assertLessEqual(worst[1], 1e-12, worst)
        # greedy: the trace holds only e0; its last-row argmax must be ours
        self.assertEqual(br.greedy(logits['e0']), int(np.argmax(g.logits('e0')[-1])))

    def test_ternary_llamacpp(self):
        for q in ('tq1_0', 'tq2_0'):
            res, logits, g = compare(shared('models/tiny-bitnet-llamacpp-%s.gguf' % q),
                                     shared('reference-traces/llamacpp/%s-p1.npz' % q), 'f32')
            worst = max(res.items(), key=lambda kv: kv[1])
            print('\n%s: max NMSE %.3g at %s over %d taps' % (q, worst[1], worst[0], len(res)))
            self.assertLessEqual(worst[1], 1e-11, (q, worst))
            self.assertEqual(br.greedy(logits['e0']), int(np.argmax(g.logits('e0')[-1])))

    def test_llamacpp_compat_is_bit_identical(self):
        # llama.cpp-compat numerics: every mapped tap of every llama.cpp trace, and the logits
        for q in ('f32', 'tq2_0', 'tq1_0', 'silu-f32'):
            res, logits, g = compare(shared('models/tiny-bitnet-llamacpp-%s.gguf' % q),
                                     shared('reference-traces/llamacpp/%s-p1.npz' % q), 'llama.cpp-compat')
            self.assertEqual(len(res), 4 * 19 + 3, q)   # every mapped tap of e0
            self.assertEqual({k: v for k, v in res.items() if v != 0}, {}, q)
            np.testing.assert_array_equal(logits['e0'].astype(np.float32), g.logits('e0'), q)

    def test_tq2_matmul_from_recorded_inputs(self):
        m = gguf.GGUFFile(shared('models/tiny-bitnet-llamacpp-tq2_0.gguf'))
        g = tr.GgmlNodesTrace(shared('reference-traces/llamacpp/tq2_0-p1.npz'))
        x = g.node('e0', 'attn_norm-0', 'MUL')
        t = m.by_name['blk.0.attn_q.weight']
        w, dw = gguf.ternary_codes(m.raw(t.name), t.type, t.ne)
        y, _, _ = br.tq_matmul(x, w, dw)
        ref = g.node('e0', 'Qcur-0', 'MUL_MAT')
        # llama.cpp's AVX2 lane order differs from our per-block float sum: rounding-level
        # differences only (relative to each row's magnitude) and NMSE far below 1e-12
        rowmax = np.max(np.abs(ref), axis=1, keepdims=True)
        self.assertLessEqual(np.max(np.abs(y - ref) / rowmax), 2 ** -21)
        self.assertLess(tr.nmse(y, ref), 1e-13)

    def test_silu_trace_diverges_at_ffn_act(self):
        res, _, _ = compare(shared('models/tiny-bitnet-llamacpp-f32.gguf'),
                            shared('reference-traces/llamacpp/silu-f32-p1.npz'), 'f32', ['*'])
        order = [k for k in res]                  # evaluation order
        first = next(k for k in order if res[k] > 1e-6)
        self.assertEqual(first, ('e0', 'blk.0.ffn_act'))
        self.assertGreater(res[first], 1e-2)
        # and the SiLU file (no activation key) is reproduced by the reference's SiLU branch
        res2, _, _ = compare(shared('models/tiny-bitnet-llamacpp-silu-f32.gguf'),
                             shared('reference-traces/llamacpp/silu-f32-p1.npz'), 'f32', ['*'])
        self.assertLessEqual(max(res2.values()), 1e-12)


class BitnetCpp(unittest.TestCase):
    def test_compat_f32_traces(self):
        for p in ('p1', 'p2'):
            res, _, g = compare(shared('models/tiny-bitnet-f32.gguf'),
                                shared('reference-traces/bitnetcpp/f32/%s.npz' % p), 'ggml-compat')
            self.assertEqual(len({k[0] for k in res}), 3)
            worst = max(res.items(), key=lambda kv: kv[1])
            print('\nbitnet.cpp f32/%s ggml-compat: max NMSE %.3g at %s' % (p, worst[1], worst[0]))
            for (eid, tap), v in res.items():
                self.assertLessEqual(v, COMPAT_F32_LIMIT, (p, eid, tap))
            exact = sum(1 for v in res.values() if v == 0)
            self.assertEqual(exact, len(res), 'taps not bit-identical')

    def test_compat_i2s_traces(self):
        for p in ('p1', 'p2'):
            res, _, _ = compare(shared('models/tiny-bitnet-i2s.gguf'),
                                shared('reference-traces/bitnetcpp/i2s/%s.npz' % p), 'ggml-compat')
            worst = max(res.items(), key=lambda kv: kv[1])
            print('\nbitnet.cpp i2s/%s ggml-compat: max NMSE %.3g at %s' % (p, worst[1], worst[0]))
            self.assertLessEqual(worst[1], 1e-12, worst)

    def test_greedy_tokens(self):
        for kind in ('f32', 'i2s'):
            g = tr.GgmlNodesTrace(shared('reference-traces/bitnetcpp/%s/p1.npz' % kind))
            m = br.Model(shared('models/tiny-bitnet-%s.gguf' % kind))
            want = g.meta['greedy_tokens']
            self.assertEqual([e['tokens'][0] for e in g.evaluations[1:]], want[:2])
            for numerics in ('ggml-compat', 'f32'):
                got = br.run_trace(m, g.evaluations[0]['tokens'], len(want) - 1, numerics, ['logits'])
                self.assertEqual(got, want, (kind, numerics))

    def test_i2s_matmuls_bit_exact(self):
        m = gguf.GGUFFile(shared('models/tiny-bitnet-i2s.gguf'))
        pairs = [('Qcur-{}', 'attn_norm-{}', 'attn_q'), ('Kcur-{}', 'attn_norm-{}', 'attn_k'),
                 ('Vcur-{}', 'attn_norm-{}', 'attn_v'), ('attn_o_out-{}', 'attn_sub_norm-{}', 'attn_output'),
                 ('ffn_gate-{}', 'ffn_norm-{}', 'ffn_gate'), ('ffn_up-{}', 'ffn_norm-{}', 'ffn_up'),
                 ('ffn_down-{}', 'ffn_sub_norm-{}', 'ffn_down')]
        weights = {}
        checked = 0
        for p in ('p1', 'p2'):
            g = tr.GgmlNodesTrace(shared('reference-traces/bitnetcpp/i2s/%s.npz' % p))
            for ev in g.evaluations:
                for layer in range(4):
                    for out, inp, w in pairs:
                        name = 'blk.%d.%s.weight' % (layer, w)
                        if name not in weights:
                            t = m.by_name[name]
                            weights[name] = gguf.i2s_ternary(m.raw(name), t.ne)
                        x = g.node(ev['id'], inp.format(layer), 'MUL')
                        x = x.reshape(-1, x.shape[-1])
                        y = br.i2s_matmul(x, *weights[name])
                        ref = g.node(ev['id'], out.format(layer), 'MUL_MAT').reshape(y.shape)
                        np.testing.assert_array_equal(y, ref, '%s %s %s' % (p, ev['id'], out.format(layer)))
                        checked += 1
        self.assertEqual(checked, 2 * 3 * 4 * 7)


if __name__ == '__main__':
    unittest.main()
