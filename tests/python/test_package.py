"""The installable bitparity package (python/bitparity): its own meta.yaml codec reads what every
bitparity writer emits exactly as PyYAML does, its writer refuses what a port gets wrong, and
docs/taps.md and the package agree on the tap names. Run from the source tree:
    /usr/bin/python3 -m unittest discover -s tests/python
"""
import glob
import os
import random
import re
import sys
import tempfile
import unittest
import zipfile

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'python'))
import bitparity  # noqa: E402


def meta_texts():
    """meta.yaml of every committed trace: the reference's (PyYAML) and the shared dumps when present."""
    paths = sorted(glob.glob(os.path.join(ROOT, 'fixtures', '**', '*.npz'), recursive=True))
    shared = os.path.join(os.path.dirname(ROOT), 'shared', 'reference-traces')
    paths += sorted(glob.glob(os.path.join(shared, '**', '*.npz'), recursive=True))
    for p in paths:
        with zipfile.ZipFile(p) as z:
            if 'meta.yaml' in z.namelist():
                yield p, z.read('meta.yaml').decode()


class Codec(unittest.TestCase):
    def test_reads_committed_traces_as_pyyaml_does(self):
        n = 0
        for path, text in meta_texts():
            self.assertEqual(bitparity.load_meta(text, path), yaml.safe_load(text), path)
            n += 1
        self.assertGreater(n, 10)

    def test_reads_libyaml_emitter_output(self):
        # What the engine's emitter writes (libyaml: quoted digits, long flow lists wrapped).
        text = ('trace: bitparity/v1\nlayout: canonical\nproducer:\n  name: bitparity\n  version: "0.1.0"\n'
                '  commit: "8cc0175aec1f"\nmodel:\n  path: /tmp/m.gguf\n  sha256: "228d"\nsettings:\n'
                '  numerics: ggml-compat\n  threads: 2\n  fault: none\nevaluations:\n'
                '- {id: e0, tokens: [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,\n'
                '    25, 26], p0: 0}\n- {id: e1, tokens: [7], p0: 26}\ntaps: [blk.0.attn_norm, logits]\n'
                "greedy_tokens: [7, 7]\nnote: 'it''s'\n")
        self.assertEqual(bitparity.load_meta(text), yaml.safe_load(text))

    def test_round_trip_of_random_meta(self):
        rng = random.Random(5)
        for _ in range(200):
            words = ['x', 'a b', 'é', '1.5', '07', 'null', 'yes: no', "it's", '"q"', '#c', '-', 'a\\b', 'tab\there']
            meta = {'trace': 'bitparity/v1', 'layout': 'canonical',
                    'producer': {'name': rng.choice(words), 'version': rng.choice(words)},
                    'model': {'path': rng.choice(words), 'n': rng.randint(-5, 5), 'f': None, 'ok': True},
                    'evaluations': [{'id': 'e%d' % i, 'tokens': [rng.randint(0, 10**6) for _ in range(rng.randint(1, 40))],
                                     'p0': i} for i in range(rng.randint(1, 4))],
                    'taps': ['blk.%d.attn_q' % i for i in range(rng.randint(0, 30))]}
            text = bitparity.dump_meta(meta)
            self.assertEqual(yaml.safe_load(text), meta, text)
            self.assertEqual(bitparity.load_meta(text), meta, text)

    def test_malformed_meta_names_the_line(self):
        for text, words in [('trace: x\n  bad: indent\n', 'line 2: unexpected indentation'),
                            ('trace: x\nno colon here\n', 'line 2: expected "key: value"'),
                            ('a: [1, 2\n', 'line 1'),
                            ('a: 1\na: 2\n', "line 2: key 'a' repeated")]:
            with self.assertRaisesRegex(bitparity.TraceError, re.escape(words)):
                bitparity.load_meta(text)


class Writer(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, 't.npz')

    def tearDown(self):
        self.dir.cleanup()

    def writer(self, **kw):
        return bitparity.TraceWriter(self.path, {'name': 'eng'}, {'weight_type': 'f32'}, {'numerics': 'f32'}, **kw)

    def test_writes_and_reads_back(self):
        with self.writer() as w:
            w.begin_evaluation([1, 2], 0)
            w.write_tap('blk.0.attn_scores', np.zeros((4, 2, 2)))
            w.write_tap('blk.0.ffn_down.in_q8', np.array([[1, -2], [3, 4]]))
        with bitparity.CanonicalTrace(self.path) as t:
            self.assertEqual(t.taps('e0'), ['blk.0.attn_scores', 'blk.0.ffn_down.in_q8'])
            self.assertEqual(t.get('e0', 'blk.0.ffn_down.in_q8').dtype, np.int8)
            self.assertEqual(t.meta['producer'], {'name': 'eng'})
        self.assertEqual(os.listdir(self.dir.name), ['t.npz'])

    def test_refusals_leave_nothing(self):
        cases = [(lambda w: w.write_tap('blk.0.attn_qq', np.zeros((2, 3))), "'blk.0.attn_qq' is not a canonical tap"),
                 (lambda w: w.write_tap('blk.0.attn_norm', np.zeros((3, 3))), "dimension 0 must be the evaluation's 2"),
                 (lambda w: w.write_tap('blk.0.attn_probs', np.zeros((2, 4, 2))), "dimension 1 must be"),
                 (lambda w: [w.write_tap('logits', np.zeros((2, 3))) for _ in range(2)], 'written twice')]
        for act, words in cases:
            with self.assertRaisesRegex(bitparity.TraceError, re.escape(words)):
                with self.writer() as w:
                    w.begin([1, 2], 0)
                    act(w)
            self.assertEqual(os.listdir(self.dir.name), [], words)
        with self.assertRaisesRegex(bitparity.TraceError, 'reserved'):
            bitparity.TraceWriter(self.path, {'name': 'bitparity'})
        with self.assertRaisesRegex(bitparity.TraceError, 'nothing to publish'):
            self.writer().close()
        self.assertEqual(os.listdir(self.dir.name), [])


class TapNames(unittest.TestCase):
    def test_docs_taps_table_and_package_agree(self):
        with open(os.path.join(ROOT, 'docs', 'taps.md')) as f:
            rows = re.findall(r'^\| `([^`]+)` \|', f.read(), re.M)
        names = [r.replace('{N}', '7') for r in rows]
        self.assertGreater(len(names), 30)
        for n in names:
            self.assertTrue(bitparity.is_canonical_tap(n), n)
        doc_block = {n.split('.', 2)[2] for n in names if n.startswith('blk.')}
        pkg_block = set(bitparity.BLOCK_TAPS) | {'%s.%s' % (p, s) for p in bitparity.PROJECTIONS
                                                  for s in ('in_q8', 'in_scale')}
        self.assertEqual(doc_block, pkg_block)
        self.assertEqual({n for n in names if not n.startswith('blk.')}, set(bitparity.GLOBAL_TAPS))
        for bad in ('blk.01.attn_q', 'blk.0.attn_q.in_q9', 'blk.x.out', 'logits.in_q8', 'blk.0.out.in_q8'):
            self.assertFalse(bitparity.is_canonical_tap(bad), bad)


if __name__ == '__main__':
    unittest.main()
