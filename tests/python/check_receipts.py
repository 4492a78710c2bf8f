#!/usr/bin/env python3
"""Receipts against their documentation and their JSON Schema (run by tests/cli/receipt_schema.sh):

    BITPARITY_BINARY=build/bitparity python3 tests/python/check_receipts.py

Real receipts of `check` and `compare` on the fixtures (passing and failing, YAML and JSON, with and
without the model, with --replay and --keep-trace) must validate against docs/receipt.schema.json, use only
keys docs/receipt.md lists, and carry the model's facts as the model file says them (read here with the
reference's own GGUF reader); the schema must be what receipt_schema.h generates and must reject broken
receipts; two runs of one check must agree in every key but the run's own (created, host, engine, timings,
tool).
"""
import copy
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import yaml
import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
import receipt_schema  # noqa: E402
from reference import gguf  # noqa: E402

BIN = os.environ.get('BITPARITY_BINARY') or os.path.join(ROOT, 'build', 'bitparity')
MODEL = os.path.join(ROOT, 'fixtures', 'models', 'b158-i2s.gguf')
OTHER = os.path.join(ROOT, 'fixtures', 'models', 'b158-f32.gguf')
REF = os.path.join(ROOT, 'fixtures', 'expected', 'b158-i2s.p1.compat.npz')
VOLATILE = ('created', 'host', 'engine', 'timings', 'tool')


def run(*args, rc=0):
    p = subprocess.run([BIN, *args], capture_output=True, text=True)
    if p.returncode != rc:
        raise AssertionError(f'bitparity {" ".join(args)}: exit {p.returncode}, want {rc}\n{p.stderr}')
    return p


def load(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f) if path.endswith('.json') else yaml.safe_load(f)


def key_paths(node, path=''):
    """Every key path as docs/receipt.md spells it ([] for list items, reference as subject)."""
    out = set()
    if isinstance(node, list):
        for item in node:
            out |= key_paths(item, path + '[]')
    elif isinstance(node, dict):
        for k, v in node.items():
            if path == '' and k == 'reference':
                k = 'subject'
            if path == 'input' and k == 'reference_evaluations':
                k = 'evaluations'
            full = f'{path}.{k}' if path else k
            out.add(full)
            out |= key_paths(v, full)
    return out


def doc_keys():
    keys, in_table = set(), False
    with open(os.path.join(ROOT, 'docs', 'receipt.md'), encoding='utf-8') as f:
        for line in f:
            if line.startswith('## '):
                in_table = line.strip() == '## Keys'
            if in_table and line.startswith('| `'):
                keys.add(line[3:line.index('`', 3)])
    return keys


def tokenizer_sha256(path):
    """docs/receipt.md "Tokenizer hash", from the reference's GGUF reader's decoded values."""
    g = gguf.GGUFFile(path)
    h = hashlib.sha256()
    u32, u64 = (lambda v: struct.pack('<I', v)), (lambda v: struct.pack('<Q', v))

    def string(s):
        b = s.encode('utf-8') if isinstance(s, str) else bytes(s)
        return u64(len(b)) + b

    for key in sorted((k for k in g.kv if k.startswith('tokenizer.ggml.')), key=lambda k: k.encode()):
        t = g.kv_types[key]
        h.update(string(key))
        v = g.kv[key]
        if isinstance(t, tuple):
            h.update(u32(gguf.ARRAY) + u32(t[1]) + u64(len(v)))
            if t[1] == gguf.STRING:
                for s in v:
                    h.update(string(s))
            else:
                h.update(b''.join(struct.pack(gguf._SCALAR_FMT[t[1]], int(x) if t[1] == gguf.BOOL else x)
                                  for x in v.tolist()))
        else:
            h.update(u32(t))
            h.update(string(v) if t == gguf.STRING else struct.pack(gguf._SCALAR_FMT[t], v))
    return h.hexdigest()


class Receipts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.schema = json.loads(receipt_schema.schema_text())
        jsonschema.Draft202012Validator.check_schema(cls.schema)
        cls.validator = jsonschema.Draft202012Validator(cls.schema)
        r = {}
        r['check'] = os.path.join(d, 'check.yaml')
        run('check', '-m', MODEL, '--reference', REF, '-o', r['check'])
        r['check_again'] = os.path.join(d, 'check_again.yaml')
        run('check', '-m', MODEL, '--reference', REF, '-o', r['check_again'])
        cls.kept = os.path.join(d, 'kept.npz')
        r['check_kept'] = os.path.join(d, 'check_kept.json')
        run('check', '-m', MODEL, '--reference', REF, '--keep-trace', cls.kept, '-o', r['check_kept'])
        r['check_fail'] = os.path.join(d, 'check_fail.json')
        run('check', '-m', OTHER, '--reference', REF, '-o', r['check_fail'], rc=1)
        silu = os.path.join(d, 'silu.npz')
        run('trace', '-m', MODEL, '--tokens-from', REF, '--fault', 'silu', '-o', silu)
        r['compare_fail'] = os.path.join(d, 'compare_fail.yaml')
        run('compare', silu, REF, '-o', r['compare_fail'], rc=1)
        r['compare_replay'] = os.path.join(d, 'compare_replay.json')
        run('compare', silu, REF, '-m', MODEL, '--replay', '--replay-mode', 'op', '-o', r['compare_replay'], rc=1)
        r['compare_pass'] = os.path.join(d, 'compare_pass.yaml')
        run('compare', cls.kept, REF, '-o', r['compare_pass'])
        cls.paths = r
        cls.receipts = {k: load(p) for k, p in r.items()}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_schema_file_is_generated_from_the_header(self):
        with open(receipt_schema.SCHEMA, encoding='utf-8') as f:
            self.assertEqual(json.load(f), self.schema,
                             'docs/receipt.schema.json is stale: python3 tests/python/receipt_schema.py --write')

    def test_schema_requires_what_the_header_requires(self):
        rows, required = receipt_schema.read_table()
        by_id = {rid: (section, key) for rid, section, key, _, _ in rows}
        def obj(section):
            node = self.schema
            for part in [p for p in section.replace('[]', '.[]').split('.') if p]:
                if part == '[]':
                    node = node['items']
                else:
                    node = node['properties'][part]
                    node = node['anyOf'][0] if 'anyOf' in node and node['anyOf'][0].get('type') == 'object' else node
            return node
        for rid, (section, key) in by_id.items():
            self.assertEqual(key in obj(section)['required'], rid in required, f'{section}.{key}')
        self.assertIn('verdict', obj('summary')['required'])
        self.assertNotIn('replay', self.schema['required'])

    def test_real_receipts_validate(self):
        for name, r in self.receipts.items():
            errors = [f'{list(e.path)}: {e.message}' for e in self.validator.iter_errors(r)]
            self.assertEqual(errors, [], name)
        self.assertEqual(self.receipts['check']['summary']['verdict'], 'pass')
        self.assertEqual(self.receipts['compare_pass']['summary']['verdict'], 'pass')
        for name in ('check_fail', 'compare_fail', 'compare_replay'):
            self.assertEqual(self.receipts[name]['summary']['verdict'], 'fail', name)
        self.assertIn('replay', self.receipts['compare_replay'])

    def test_docs_list_every_key_a_receipt_holds(self):
        docs = doc_keys()
        seen = set()
        for name, r in self.receipts.items():
            paths = key_paths(r)
            self.assertEqual(paths - docs, set(), f'{name}: keys docs/receipt.md does not list')
            seen |= paths
        for k in ('model.hparams.rope_type', 'model.tensors.types[].bytes', 'model.tokenizer_sha256',
                  'engine.matmul', 'subject.storage', 'replay.failing_taps[].nmse', 'taps[].failed.metric'):
            self.assertIn(k, seen)

    def test_schema_rejects_broken_receipts(self):
        good = self.receipts['check']
        broken = []
        r = copy.deepcopy(good); del r['summary']['verdict']; broken.append(('missing summary.verdict', r))
        r = copy.deepcopy(good); del r['model']['tokenizer_sha256']; broken.append(('missing tokenizer_sha256', r))
        r = copy.deepcopy(good); r['summary']['counts']['taps'] = 'many'; broken.append(('string count', r))
        r = copy.deepcopy(good); r['model']['hparams']['n_layer'] = 2.5; broken.append(('float n_layer', r))
        r = copy.deepcopy(good); r['taps'] = {'e0': 1}; broken.append(('taps not a list', r))
        r = copy.deepcopy(good); r['taps'][0]['metrics']['nmse'] = 'small'; broken.append(('nmse a word', r))
        r = copy.deepcopy(good); r['summary']['extra'] = 1; broken.append(('unknown key', r))
        for what, r in broken:
            self.assertFalse(self.validator.is_valid(r), what)
        self.assertTrue(self.validator.is_valid(good))

    def test_model_facts_are_the_model_files(self):
        g = gguf.GGUFFile(MODEL)
        m = self.receipts['check']['model']
        hp = m['hparams']
        arch = g.kv['general.architecture']
        self.assertEqual(hp['arch'], arch)
        self.assertEqual(hp['n_embd'], g.kv[f'{arch}.embedding_length'])
        self.assertEqual(hp['n_layer'], g.kv[f'{arch}.block_count'])
        self.assertEqual(hp['n_ff'], g.kv[f'{arch}.feed_forward_length'])
        self.assertEqual(hp['n_head'], g.kv[f'{arch}.attention.head_count'])
        self.assertEqual(hp['n_head_kv'], g.kv[f'{arch}.attention.head_count_kv'])
        self.assertEqual(hp['head_dim'], hp['n_embd'] // hp['n_head'])
        self.assertEqual(hp['n_vocab'], g.by_name['token_embd.weight'].ne[1])
        self.assertEqual(hp['rms_eps'], float(struct.unpack('<f', struct.pack('<f', g.kv[f'{arch}.attention.layer_norm_rms_epsilon']))[0]))
        self.assertEqual((hp['rope_type'], hp['activation'], hp['sub_norms']), ('neox', 'relu2', True))
        self.assertEqual((hp['lm_head'], hp['lm_head_type']), ('tied', 'f16'))  # b158: token_embd F16, tied
        hist = {}
        for t in g.tensors:
            name = gguf.TYPE_NAMES[t.type].lower()
            c, b = hist.get(name, (0, 0))
            hist[name] = (c + 1, b + t.nbytes)
        self.assertEqual({e['type']: (e['count'], e['bytes']) for e in m['tensors']['types']}, hist)
        self.assertEqual(m['tensors']['count'], len(g.tensors))
        self.assertEqual(m['tensors']['bytes'], sum(t.nbytes for t in g.tensors))
        self.assertEqual(m['tokenizer_sha256'], tokenizer_sha256(MODEL))
        # another model file with the same tokenizer: the same hash; hyper-parameters as its own
        other = self.receipts['check_fail']['model']
        self.assertEqual(other['tokenizer_sha256'], tokenizer_sha256(OTHER))
        self.assertEqual({e['type'] for e in other['tensors']['types']}, {'f32'})

    def test_engine_and_trace_provenance(self):
        c, kept = self.receipts['check'], self.receipts['check_kept']
        self.assertEqual(c['subject']['storage'], 'memory')
        self.assertEqual(c['subject']['trace'], '(engine trace in memory)')
        self.assertEqual(kept['subject']['storage'], 'kept')
        self.assertEqual(kept['subject']['trace'], self.kept)
        with open(self.kept, 'rb') as f:
            self.assertEqual(kept['subject']['sha256'], hashlib.sha256(f.read()).hexdigest())
        self.assertEqual(kept['subject']['size_bytes'], os.path.getsize(self.kept))
        self.assertEqual(c['engine']['simd'], c['host']['simd'])
        self.assertEqual(c['engine']['matmul'], f"i2_s x int8/token, {c['host']['simd']}")
        self.assertEqual(c['engine']['lm_head'], f"f16 x f32, {c['host']['simd']}")
        self.assertEqual(self.receipts['check_fail']['engine']['matmul'], f"f32 x f32, {c['host']['simd']}")
        for name in ('compare_fail', 'compare_pass'):  # read from files, no -m: no engine run, no model file
            r = self.receipts[name]
            self.assertEqual(r['subject']['storage'], 'file', name)
            self.assertEqual(r['reference']['storage'], 'file', name)
            self.assertIsNone(r['engine'], name)
            self.assertIsNone(r['model']['hparams'], name)
            self.assertIsNone(r['model']['tensors'], name)
        self.assertEqual(self.receipts['compare_replay']['model']['tokenizer_sha256'], c['model']['tokenizer_sha256'])

    def test_check_against_bitnet_cpp(self):
        """A foreign reference (a bitnet.cpp ggml-nodes dump) and a real vocabulary (BPE merges, token types)."""
        shared = os.environ.get('BITPARITY_SHARED_DIR') or os.path.join(os.path.dirname(ROOT), 'shared')
        model = os.path.join(shared, 'models', 'tiny-bitnet-i2s.gguf')
        ref = os.path.join(shared, 'reference-traces', 'bitnetcpp', 'i2s', 'p1.npz')
        if not (os.path.isfile(model) and os.path.isfile(ref)):
            self.skipTest(f'{shared}: shared models/reference traces absent')
        out = os.path.join(self.tmp.name, 'bitnetcpp.json')
        run('check', '-m', model, '--reference', ref, '-o', out)
        r = load(out)
        self.assertEqual([f'{list(e.path)}: {e.message}' for e in self.validator.iter_errors(r)], [])
        self.assertEqual(key_paths(r) - doc_keys(), set())
        self.assertEqual(r['reference']['layout'], 'ggml-nodes')
        self.assertEqual(r['model']['tokenizer_sha256'], tokenizer_sha256(model))
        self.assertEqual((r['model']['hparams']['n_layer'], r['model']['hparams']['n_head_kv']), (4, 2))

    def test_receipts_are_deterministic_but_for_the_runs_own_keys(self):
        a, b = self.receipts['check'], self.receipts['check_again']
        strip = lambda r: {k: v for k, v in r.items() if k not in VOLATILE}
        self.assertEqual(strip(a), strip(b))
        with open(self.paths['check'], encoding='utf-8') as fa, open(self.paths['check_again'], encoding='utf-8') as fb:
            ta = [line for line in fa if not line.startswith('created:')]
            tb = [line for line in fb if not line.startswith('created:')]
        cut = lambda t: t[:next(i for i, line in enumerate(t) if line.startswith('timings:'))]
        self.assertEqual(cut(ta), cut(tb))  # text too, floats bit for bit


if __name__ == '__main__':
    unittest.main(verbosity=2)
