"""fixtures/: the checked-in models and expected traces are exactly what fixtures/make_models.py
produces (``--check`` regenerates into a temporary folder and compares bytes), the manifest's
sha256 sums hold, the size budget holds, and the models cover the shapes and types the engine's
fixture test (tests/test_fixtures.cc) relies on. Skips with "SKIP-ALL:" when fixtures/ is absent."""

import hashlib
import os
import subprocess
import sys
import unittest

import numpy as np

from reference import gguf
from reference.tests import REPO

FIX = os.path.join(REPO, 'fixtures')
SIZE_BUDGET = 8 * 1000 * 1000      # bytes of fixtures/models + fixtures/expected


def need(rel):
    path = os.path.join(FIX, rel)
    if not os.path.exists(path):
        raise unittest.SkipTest('SKIP-ALL: %s not found' % path)
    return path


def manifest():
    with open(need('MANIFEST.sha256')) as f:
        return [line.rstrip('\n').split('  ', 1) for line in f if line.strip()]


class Regenerate(unittest.TestCase):
    def test_make_models_check_is_byte_identical(self):
        script = need('make_models.py')
        need('prompts.txt')
        r = subprocess.run([sys.executable, script, '--check'], capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('all files identical', r.stdout)

    def test_manifest_sums_hold(self):
        entries = manifest()
        self.assertEqual(len(entries), 9 + 40)   # 9 models, 40 expected traces (tests/test_fixtures.cc lists them)
        for digest, rel in entries:
            with open(need(rel), 'rb') as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest, rel)

    def test_size_budget(self):
        total = sum(os.path.getsize(os.path.join(FIX, rel)) for _, rel in manifest())
        self.assertLess(total, SIZE_BUDGET)


class Coverage(unittest.TestCase):
    """What the models must exercise (issue 4): every arch and weight type, GQA 1/2/4, head_dim
    32/64/128, n_ff off the 256 grid for F32/F16/Q8_0, the zero embedding row, bitnet's .scale
    tensors and hidden_activation key, an untied output.weight."""

    @classmethod
    def setUpClass(cls):
        cls.models = {}
        for _, rel in manifest():
            if rel.endswith('.gguf'):
                cls.models[os.path.basename(rel)[:-5]] = gguf.GGUFFile(need(rel))

    def hp(self, g, key):
        return g.kv['%s.%s' % (g.kv['general.architecture'], key)]

    def proj_type(self, g):
        return g.by_name['blk.0.attn_q.weight'].type

    def test_archs_and_types(self):
        have = {(g.kv['general.architecture'], gguf.TYPE_NAMES[self.proj_type(g)]) for g in self.models.values()}
        self.assertEqual(have, {('bitnet-b1.58', 'I2_S'), ('bitnet-b1.58', 'F32'), ('bitnet-25', 'I2_S'),
                                ('bitnet', 'TQ2_0'), ('bitnet', 'TQ1_0'), ('llama', 'F32'), ('llama', 'F16'),
                                ('llama', 'Q8_0')})

    def test_shapes(self):
        gqa, dims = set(), set()
        for name, g in self.models.items():
            H, nh = self.hp(g, 'embedding_length'), self.hp(g, 'attention.head_count')
            self.assertLessEqual(H, 256, name)
            self.assertEqual(self.hp(g, 'block_count'), 2, name)
            gqa.add(nh // self.hp(g, 'attention.head_count_kv'))
            dims.add(H // nh)
            ff = self.hp(g, 'feed_forward_length')
            if self.proj_type(g) in (gguf.F32, gguf.F16, gguf.Q8_0):
                self.assertNotEqual(ff % 256, 0, name)
            if self.proj_type(g) == gguf.I2_S:
                self.assertEqual(ff, 384, name)
        self.assertEqual(gqa, {1, 2, 4})
        self.assertEqual(dims, {32, 64, 128})

    def test_zero_row_and_vocabulary(self):
        for name, g in self.models.items():
            emb = g.tensor('token_embd.weight')
            self.assertEqual(emb.shape[0], 267, name)
            zero = np.flatnonzero(~emb.any(axis=1))
            self.assertEqual(zero.tolist(), [188], name)
            self.assertEqual(g.kv['tokenizer.ggml.model'], 'gpt2')
            self.assertEqual(g.kv['tokenizer.ggml.tokens'][188], 'Ā')    # byte 0x00 in GPT-2 order

    def test_bitnet_extras(self):
        tq2, tq1, q8 = self.models['bitnet-tq2-silu'], self.models['bitnet-tq1-relu2'], self.models['llama-q8_0']
        self.assertNotIn('bitnet.hidden_activation', tq2.kv)
        self.assertEqual(tq2.tensor('blk.1.ffn_down.scale').shape, (1,))
        self.assertEqual(tq1.kv['bitnet.hidden_activation'], 'relu2')
        self.assertNotIn('blk.0.attn_q.scale', tq1.by_name)
        self.assertEqual(q8.by_name['output.weight'].type, gguf.Q8_0)

    def test_expected_i2s_zero_row_scale(self):
        """The reference quantized p1's all-zero row 0 with amax clamped to 1e-5."""
        import zipfile
        import io
        for name in ('b158-i2s', 'b25-i2s'):
            for mode in ('compat', 'f32'):
                z = zipfile.ZipFile(need('expected/%s.p1.%s.npz' % (name, mode)))
                s = np.load(io.BytesIO(z.read('e0/blk.1.ffn_down.in_scale.npy')))
                self.assertEqual(s[0], np.float32(127 / 1e-5))
                self.assertTrue(np.all(s[1:] < 1e3))


if __name__ == '__main__':
    unittest.main()
