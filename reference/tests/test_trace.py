"""reference/trace.py containers, the tap selector, hand-computed activation quantizers, and the
bitnet_ref.py CLI writing a canonical trace."""

import os
import subprocess
import sys
import tempfile
import unittest
import zipfile

import numpy as np

from reference import bitnet_ref as br
from reference import trace as tr
from bitparity.trace import _npy_bytes
from reference.tests import REPO, shared


class Container(unittest.TestCase):
    def test_writer_is_atomic(self):
        # the trace appears only at close; abort leaves an older file byte for byte and no temporary
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, 't.npz')
            with open(p, 'wb') as f:
                f.write(b'older trace')
            w = tr.TraceWriter(p, {'name': 'x'}, {'arch': 'a'}, {'numerics': 'f32'})
            w.begin([1], 0)
            w.add('token_embd', np.ones((1, 3)))
            self.assertEqual(open(p, 'rb').read(), b'older trace')
            w.abort()
            self.assertEqual(open(p, 'rb').read(), b'older trace')
            self.assertEqual(os.listdir(d), ['t.npz'])
            w = tr.TraceWriter(p, {'name': 'x'}, {'arch': 'a'}, {'numerics': 'f32'})
            w.begin([1], 0)
            w.add('token_embd', np.ones((1, 3)))
            w.close()
            self.assertEqual(os.listdir(d), ['t.npz'])
            self.assertEqual(tr.CanonicalTrace(p).taps('e0'), ['token_embd'])

    def test_round_trip_and_meta_last(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, 't.npz')
            w = tr.TraceWriter(p, {'name': 'x', 'version': '0', 'commit': 'c'}, {'arch': 'a'}, {'numerics': 'f32'})
            w.begin([1, 2], 0)
            w.add('token_embd', np.arange(6, dtype=np.float64).reshape(2, 3))
            w.add('blk.0.attn_q.in_q8', np.array([[-128, 127], [0, 1]]))
            w.begin([5], 2)
            w.add('token_embd', np.ones((1, 3)))
            w.close([5, 6])
            names = zipfile.ZipFile(p).namelist()
            self.assertEqual(names[-1], 'meta.yaml')
            t = tr.CanonicalTrace(p)
            self.assertEqual(t.meta['evaluations'], [{'id': 'e0', 'tokens': [1, 2], 'p0': 0},
                                                     {'id': 'e1', 'tokens': [5], 'p0': 2}])
            self.assertEqual(t.meta['greedy_tokens'], [5, 6])
            self.assertEqual(t.taps('e0'), ['token_embd', 'blk.0.attn_q.in_q8'])
            a = t.get('e0', 'token_embd')
            self.assertEqual(a.dtype, np.float32)
            np.testing.assert_array_equal(a, np.arange(6).reshape(2, 3))
            self.assertEqual(t.get('e0', 'blk.0.attn_q.in_q8').dtype, np.int8)
            # numpy reads it too
            self.assertEqual(np.load(p)['e1/token_embd'].shape, (1, 3))
            with self.assertRaisesRegex(tr.TraceError, 'missing member'):
                t.get('e1', 'logits')

    def test_rejects_bad_meta_and_truncated_member(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, 'bad.npz')
            with zipfile.ZipFile(p, 'w') as z:
                z.writestr('meta.yaml', 'trace: bitparity/v1\nlayout: canonical\n')
            with self.assertRaisesRegex(tr.TraceError, "missing key 'evaluations'"):
                tr.CanonicalTrace(p)
            with zipfile.ZipFile(p, 'w') as z:
                z.writestr('meta.yaml', 'trace: bitparity/v1\nlayout: canonical\nevaluations: [{id: e0, tokens: [1], p0: 0}]\n')
                full = _npy_bytes(np.zeros((4, 4), np.float32))
                z.writestr('e0/x.npy', full[:-8])
            with self.assertRaisesRegex(tr.TraceError, 'data bytes follow'):
                tr.CanonicalTrace(p).get('e0', 'x')

    def test_tap_selector(self):
        s = br.TapSelector(None)
        self.assertTrue(s('blk.0.attn_q'))
        self.assertFalse(s('blk.0.attn_probs'))
        s = br.TapSelector(['blk.*'])  # the engine's rule: a glob selects what it matches, opt-in taps too
        self.assertTrue(s('blk.3.ffn_out'))
        self.assertTrue(s('blk.3.attn_scores'))
        self.assertFalse(s('logits'))
        with self.assertRaisesRegex(br.RefError, "pattern 'blk.9.*' matches no tap of this model"):
            br.TapSelector(['blk.*', 'blk.9.*']).check(4)
        s = br.TapSelector(['blk.1.attn_probs', '*.in_q8'])
        self.assertTrue(s('blk.1.attn_probs'))
        self.assertTrue(s('blk.2.ffn_up.in_q8'))
        self.assertFalse(s('blk.2.ffn_up.in_scale'))

    def test_mapping_names(self):
        self.assertEqual(tr.ggml_node_for_tap('blk.2.attn_out', 'bitnet.cpp'), ('attn_o_out-2', 'MUL_MAT'))
        self.assertEqual(tr.ggml_node_for_tap('blk.2.attn_out', 'llama.cpp'), ('attn_out-2', 'MUL_MAT'))
        self.assertEqual(tr.ggml_node_for_tap('blk.0.attn_probs', 'llama.cpp'), ('kq_soft_max-0', 'SOFT_MAX'))
        self.assertIsNone(tr.ggml_node_for_tap('blk.0.attn_q.in_q8', 'llama.cpp'))


class Quantizers(unittest.TestCase):
    def test_i2s_activation_hand_computed(self):
        # amax 2 -> s = 63.5; x·s = 127, -31.75 -> -32, 0.5·63.5 = 31.75 -> 32, 1/127·63.5 = 0.5 -> 0 (even)
        x = np.array([[2.0, -0.5, 0.5, 1.0 / 127]])
        q, s = br.quantize_act_i2s(x)
        self.assertEqual(s[0], np.float32(63.5))
        np.testing.assert_array_equal(q, [[127, -32, 32, 0]])
        w = np.array([[1, -1, 1, 0], [0, 0, 0, 1]], dtype=np.int8)
        y = br.i2s_matmul(x, w, np.float32(0.5))
        # acc = 127 + 32 + 32 = 191 -> 191/63.5*0.5 ; second row acc 0
        self.assertEqual(y[0, 0], np.float32(np.float32(np.float32(191) / np.float32(63.5)) * np.float32(0.5)))
        self.assertEqual(y[0, 1], 0.0)

    def test_q8k_hand_computed(self):
        x = np.zeros((1, 256))
        x[0, 0], x[0, 1], x[0, 2] = -4.0, 2.0, 1.0
        q, d = br.quantize_act_q8k(x)
        # max by |x| keeps its sign: -4 -> iscale = 31.75, q = -127, 63.5 -> 64 (even), 31.75 -> 32
        np.testing.assert_array_equal(q[0, :3], [-127, 64, 32])
        self.assertEqual(d[0, 0], np.float32(1) / np.float32(31.75))


class Cli(unittest.TestCase):
    def test_trace_cli_matches_module(self):
        model = shared('models/tiny-bitnet-i2s.gguf')
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, 'r.npz')
            r = subprocess.run([sys.executable, os.path.join(REPO, 'reference', 'bitnet_ref.py'), 'trace',
                                '-m', model, '--tokens', '509,12,300', '--decode', '2',
                                '--taps', 'token_embd,blk.0.*,*.in_q8,*.in_scale,logits', '-o', out],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            t = tr.CanonicalTrace(out)
            self.assertEqual(t.meta['producer']['name'], 'bitparity-reference')
            self.assertEqual(t.meta['settings']['numerics'], 'ggml-compat')
            self.assertEqual(len(t.meta['model']['sha256']), 64)
            self.assertEqual([e['p0'] for e in t.evaluations], [0, 3, 4])
            greedy = t.meta['greedy_tokens']
            self.assertEqual([e['tokens'][0] for e in t.evaluations[1:]], greedy[:2])
            self.assertEqual(r.stdout.split(), [str(g) for g in greedy])
            taps = t.taps('e0')
            self.assertEqual(taps[:3], ['token_embd', 'blk.0.attn_norm', 'blk.0.attn_q.in_q8'])
            self.assertIn('blk.3.ffn_down.in_scale', taps)
            self.assertNotIn('blk.1.attn_q', taps)
            self.assertIn('blk.0.attn_probs', taps)  # blk.0.* matches it
            self.assertEqual(t.get('e0', 'blk.2.ffn_down.in_q8').dtype, np.int8)
            self.assertEqual(t.get('e0', 'blk.2.ffn_down.in_q8').shape, (3, 512))
            self.assertEqual(t.get('e1', 'logits').shape, (1, 512))
            # identical to the module's own evaluation
            s = br.Session(br.Model(model), 'ggml-compat', ['logits', 'blk.0.attn_q'])
            lg, tp = s.eval([509, 12, 300])
            np.testing.assert_array_equal(t.get('e0', 'logits'), tp['logits'])
            np.testing.assert_array_equal(t.get('e0', 'blk.0.attn_q'), tp['blk.0.attn_q'])

    def test_trace_cli_follows_given_evaluations_and_forces_an_activation(self):
        # --evals teacher-forces the steps (what `bitparity check --arbiter` asks for), --activation overrides the
        # declared one: the fixture b158-i2s declares relu² (bitnet-b1.58's default)
        model = os.path.join(REPO, 'fixtures', 'models', 'b158-i2s.gguf')
        with tempfile.TemporaryDirectory() as d:
            outs = {}
            for act in (None, 'silu'):
                out = os.path.join(d, '%s.npz' % act)
                cmd = [sys.executable, os.path.join(REPO, 'reference', 'bitnet_ref.py'), 'trace', '-m', model,
                       '--tokens', '39,72,11', '--evals', '258;220,259', '--taps', 'blk.0.ffn_gate,blk.0.ffn_up,'
                       'blk.0.ffn_act', '-o', out] + (['--activation', act] if act else [])
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
                outs[act] = tr.CanonicalTrace(out)
            t, s = outs[None], outs['silu']
            self.assertEqual([(e['tokens'], e['p0']) for e in t.evaluations],
                             [([39, 72, 11], 0), ([258], 3), ([220, 259], 4)])
            self.assertEqual((t.meta['settings']['activation'], s.meta['settings']['activation']), ('relu2', 'silu'))
            for e in ('e0', 'e1', 'e2'):
                g, u = t.get(e, 'blk.0.ffn_gate'), t.get(e, 'blk.0.ffn_up')
                np.testing.assert_array_equal(g, s.get(e, 'blk.0.ffn_gate'))   # the same up to the activation
                r2 = np.maximum(g, 0)
                np.testing.assert_array_equal(t.get(e, 'blk.0.ffn_act'), (r2 * r2).astype(np.float32) * u)
                self.assertFalse(np.array_equal(s.get(e, 'blk.0.ffn_act'), t.get(e, 'blk.0.ffn_act')))

    def test_cli_errors(self):
        r = subprocess.run([sys.executable, os.path.join(REPO, 'reference', 'bitnet_ref.py'), 'run',
                            '-m', '/nonexistent.gguf', '--tokens', '1'], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn('nonexistent', r.stderr)


class PrunedTrace(unittest.TestCase):
    def test_lastonly_rows_subset(self):
        g = tr.GgmlNodesTrace(shared('reference-traces/bitnetcpp/i2s/p1_lastonly.npz'))
        full = tr.GgmlNodesTrace(shared('reference-traces/bitnetcpp/i2s/p1.npz'))
        a = g.canonical('e0', 'blk.3.ffn_out')
        b = full.canonical('e0', 'blk.3.ffn_out')
        self.assertEqual(a.shape, (1, 256))
        np.testing.assert_array_equal(a[0], b[-1])


if __name__ == '__main__':
    unittest.main()
