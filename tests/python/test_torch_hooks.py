"""bitparity.torch_hooks on small hand-made modules: what each hook records, in which order, the
LLaMA Q/K un-permutation, the RoPE wrapper, and the refusals. The end-to-end check (a PyTorch BitNet
against the engine, six porting bugs) is tests/cli/torch_hooks.sh. Skips without python3-torch."""
import os
import re
import sys
import tempfile
import types
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'python'))
import bitparity  # noqa: E402

try:
    import torch
    from torch import nn
    from bitparity import torch_hooks as th
except ImportError:  # pragma: no cover - the bootstrap installs python3-torch
    torch = None


class Scale(nn.Module if torch else object):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x * self.k


class TinyLayer(nn.Module if torch else object):
    def __init__(self, width, perm=None):
        super().__init__()
        self.input_layernorm = Scale(2.0)
        self.self_attn = nn.Module()
        self.self_attn.q_proj = nn.Linear(width, width, bias=False)
        if perm is not None:
            with torch.no_grad():
                self.self_attn.q_proj.weight.copy_(torch.eye(width)[perm])
        else:
            with torch.no_grad():
                self.self_attn.q_proj.weight.copy_(torch.eye(width))

    def forward(self, x, rope_ns):
        h = self.input_layernorm(x)
        q = self.self_attn.q_proj(h)
        B, T, W = q.shape
        qh = q.view(B, T, 1, W).transpose(1, 2)
        q_rot, _ = rope_ns.apply_rotary_pos_emb(qh, qh, None, None)
        return x + q_rot.transpose(1, 2).reshape(B, T, W)


class Tiny(nn.Module if torch else object):
    def __init__(self, width=4, perm=None, rope_ns=None):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = nn.ModuleList([TinyLayer(width, perm), TinyLayer(width, perm)])
        self.rope_ns = rope_ns

    def forward(self, x):
        for layer in self.model.layers:
            x = layer(x, self.rope_ns)
        return x


def rope_namespace():
    return types.SimpleNamespace(apply_rotary_pos_emb=lambda q, k, cos, sin: (q * 10, k * 10))


@unittest.skipIf(torch is None, 'SKIP: python3-torch is not installed (ci/bootstrap.sh installs it)')
class Hooks(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, 't.npz')

    def tearDown(self):
        self.dir.cleanup()

    def writer(self):
        return bitparity.TraceWriter(self.path, {'name': 'test'})

    def test_records_outputs_inputs_and_rope_in_docs_order(self):
        ns = rope_namespace()
        m = Tiny(rope_ns=ns)
        x = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)
        name_map = {'model.layers.{N}': 'blk.{N}.out',     # a map's order does not matter
                    'model.layers.{N}.input_layernorm': 'blk.{N}.attn_norm',
                    'model.layers.{N}.self_attn.q_proj': [('blk.{N}.attn_q', 'output')]}
        w = self.writer()
        with th.TapRecorder(m, w, name_map) as rec:
            rec.wrap_rotary(ns)
            with rec.evaluation([1, 2, 3], p0=0):
                y = m(x)
        w.close()
        self.assertEqual(ns.apply_rotary_pos_emb.__name__, '<lambda>')   # restored at exit
        with bitparity.CanonicalTrace(self.path) as t:
            self.assertEqual(t.meta['taps'], ['blk.0.attn_norm', 'blk.0.attn_q', 'blk.0.attn_q_rope', 'blk.0.attn_k_rope',
                                              'blk.0.out', 'blk.1.attn_norm', 'blk.1.attn_q', 'blk.1.attn_q_rope',
                                              'blk.1.attn_k_rope', 'blk.1.out'])
            x0 = x[0].numpy()
            np.testing.assert_array_equal(t.get('e0', 'blk.0.attn_norm'), 2 * x0)
            np.testing.assert_array_equal(t.get('e0', 'blk.0.attn_q_rope'), 20 * x0)
            np.testing.assert_array_equal(t.get('e0', 'blk.0.out'), 21 * x0)
            np.testing.assert_array_equal(t.get('e0', 'blk.1.attn_norm'), 42 * x0)
            np.testing.assert_array_equal(t.get('e0', 'blk.1.out'), 21 * 21 * x0)
            np.testing.assert_array_equal(t.get('e0', 'blk.1.out'), y[0].detach().numpy())

    def test_nothing_recorded_outside_an_evaluation_and_hooks_removed_at_close(self):
        m = Tiny(rope_ns=rope_namespace())
        w = self.writer()
        rec = th.TapRecorder(m, w, {'model.layers.{N}.input_layernorm': 'blk.{N}.attn_norm'})
        m(torch.ones(1, 2, 4))                       # outside evaluation(): ignored
        with rec.evaluation([5], p0=0):
            m(torch.ones(1, 1, 4))
        rec.close()
        with rec.evaluation([6], p0=1):
            m(torch.ones(1, 1, 4))                   # hooks gone: an empty evaluation
        w.close()
        with bitparity.CanonicalTrace(self.path) as t:
            self.assertEqual(t.taps('e0'), ['blk.0.attn_norm', 'blk.1.attn_norm'])
            self.assertEqual(t.taps('e1'), [])

    def test_unpermute_hand_computed(self):
        # one head, D = 4: transformers-LLaMA rows (0, 1 | 2, 3) = pairs (0,2), (1,3) -> GGUF (0, 2, 1, 3)
        x = np.array([[10., 11., 12., 13., 20., 21., 22., 23.]])
        np.testing.assert_array_equal(th.unpermute_qk_rows(x, 4), [[10, 12, 11, 13, 20, 22, 21, 23]])
        with self.assertRaisesRegex(bitparity.TraceError, 'width of 6 with head_dim 4'):
            th.unpermute_qk_rows(np.zeros((1, 6)), 4)

    def test_hf_llama_layout_undoes_the_converter_permutation(self):
        # q_proj rows permuted as LLaMA converters permute them: GGUF row order (0, 2, 1, 3) -> HF (0, 1 | 2, 3)
        m = Tiny(perm=[0, 2, 1, 3], rope_ns=rope_namespace())
        w = self.writer()
        with th.TapRecorder(m, w, {'model.layers.{N}.self_attn.q_proj': 'blk.{N}.attn_q',
                                   'model.layers.{N}.input_layernorm': 'blk.{N}.attn_norm'},
                            qk_layout='hf-llama', head_dim=4) as rec:
            with rec.evaluation([1], p0=0):
                m(torch.tensor([[[1., 2., 3., 4.]]]))
        w.close()
        with bitparity.CanonicalTrace(self.path) as t:
            np.testing.assert_array_equal(t.get('e0', 'blk.0.attn_q'), t.get('e0', 'blk.0.attn_norm'))

    def test_refusals(self):
        m = Tiny(rope_ns=rope_namespace())
        w = self.writer()
        with self.assertRaisesRegex(bitparity.TraceError, 'matches no module of Tiny'):
            th.TapRecorder(m, w, {'model.decoder.{N}.fc': 'blk.{N}.ffn_up'})
        with self.assertRaisesRegex(bitparity.TraceError, '{N} must appear in both'):
            th.TapRecorder(m, w, {'model.layers.{N}.input_layernorm': 'token_embd'})
        with self.assertRaisesRegex(bitparity.TraceError, 'needs head_dim'):
            th.TapRecorder(m, w, qk_layout='hf-llama')
        rec = th.TapRecorder(m, w, {'model.layers.{N}.input_layernorm': 'blk.{N}.attn_norm'})
        with self.assertRaisesRegex(bitparity.TraceError, r'shape \(2, 1, 4\) is not \[1, T, ...\]'):
            with rec.evaluation([1], p0=0):
                m(torch.ones(2, 1, 4))
        with self.assertRaisesRegex(RuntimeError, 'boom'):   # a failing forward writes nothing
            with rec.evaluation([1], p0=0):
                raise RuntimeError('boom')
        rec.close()
        self.assertEqual(w.meta['evaluations'], [])
        w.abort()
        self.assertEqual(os.listdir(self.dir.name), [])

    def test_twice_in_one_evaluation(self):
        m = Tiny(rope_ns=rope_namespace())
        w = self.writer()
        with th.TapRecorder(m, w, {'model.layers.{N}.input_layernorm': 'blk.{N}.attn_norm',
                                   'model.layers.{N}.self_attn.q_proj': 'blk.{N}.attn_norm'}) as rec:
            with self.assertRaisesRegex(bitparity.TraceError, 'blk.0.attn_norm recorded twice'):
                with rec.evaluation([1], p0=0):
                    m(torch.ones(1, 1, 4))
        w.abort()

    def test_sort_key_is_docs_order(self):
        rows = re.findall(r'^\| `([^`]+)` \|', open(os.path.join(ROOT, 'docs', 'taps.md')).read(), re.M)
        taps = [r.replace('{N}', '3') for r in rows]
        self.assertEqual(len(taps), 3 + len(bitparity.BLOCK_TAPS) + 2 * len(bitparity.PROJECTIONS))
        self.assertEqual(sorted(reversed(taps), key=th.tap_sort_key), taps)
        self.assertLess(th.tap_sort_key('blk.9.out'), th.tap_sort_key('blk.10.attn_norm'))

    def test_transformers_map_is_the_docs_column(self):
        text = open(os.path.join(ROOT, 'docs', 'taps.md')).read()
        doc = {}
        for tap, module in re.findall(r'^\| `([^`]+)` \|.*\| ([^|]+) \|$', text, re.M):
            for where, name in re.findall(r'(input of )?`([^`]+)`', module):
                doc.setdefault(name, []).append((tap, 'input' if where else 'output'))
        ours = {k: ([(v, 'output')] if isinstance(v, str) else sorted(v)) for k, v in th.TRANSFORMERS_BITNET.items()}
        self.assertEqual({k: sorted(v) for k, v in doc.items()}, ours)


if __name__ == '__main__':
    unittest.main()
