"""The trace container written by reference/dumpers/ (the cb_eval dumper for bitnet.cpp and
llama.cpp builds). The dumper itself needs a llama.cpp checkout and is not built here; its
llama-free part (ggml_nodes_format.cpp + write_npz.h) is compiled with a small driver that
feeds it nodes from a plan file, so the bytes it writes are checked:

- replaying every node of a shared bitnet.cpp trace (f16 cache views, transposed and permuted
  views, unnamed pruning nodes) from raw ggml memory laid out at the recorded strides must give
  back the shared trace member for member, meta.yaml and index.tsv byte for byte, and bitparity's
  C reader (`bitparity compare`) and reference/trace.py must accept it;
- hand-made nodes check the f16/bf16/i32 conversions, stride walking, naming, skipped quantized
  nodes, ZIP64 and SHA-256 against hand-computed values and hashlib.
"""

import hashlib
import io
import os
import shutil
import subprocess
import tempfile
import unittest
import zipfile

import numpy as np
import yaml

from reference import trace as tr
from reference.tests import REPO, shared_dir

DUMPERS = os.path.join(REPO, 'reference', 'dumpers')

# Replays a plan (one command per line, tab-separated) through gnodes::TraceWriter; also
# `sha FILE...` (sha256_file) and `many OUT N` (N one-element members: the ZIP64 path).
DRIVER = r'''
#include "ggml_nodes_format.h"
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

static std::vector<std::string> split(const std::string &s, char d) {
    std::vector<std::string> out;
    std::string cur;
    std::istringstream in(s);
    while (std::getline(in, cur, d)) out.push_back(cur);
    if (!s.empty() && s.back() == d) out.push_back("");
    return out;
}
static std::vector<int64_t> ints(const std::string &s) {
    std::vector<int64_t> v;
    if (s.empty()) return v;
    for (const std::string &p : split(s, ',')) v.push_back(std::stoll(p));
    return v;
}
static std::string unhex(const std::string &h) {
    std::string o;
    for (size_t i = 0; i + 1 < h.size(); i += 2) o += (char)std::stoi(h.substr(i, 2), nullptr, 16);
    return o;
}
static gnodes::Elem elem(const std::string &e) {
    if (e == "f32") return gnodes::Elem::F32;
    if (e == "f16") return gnodes::Elem::F16;
    if (e == "bf16") return gnodes::Elem::BF16;
    if (e == "i32") return gnodes::Elem::I32;
    return gnodes::Elem::Unsupported;
}
static int die(const std::string &e) { std::cerr << "driver: " << e << "\n"; return 1; }

int main(int argc, char **argv) {
    std::string mode = argv[1], err;
    if (mode == "sha") {
        for (int i = 2; i < argc; i++) {
            std::string hex;
            if (!gnodes::sha256_file(argv[i], &hex, &err)) return die(err);
            std::cout << hex << "\n";
        }
        return 0;
    }
    if (mode == "many") {
        npzw::Writer w;
        if (!w.open(argv[2], &err)) return die(err);
        for (long i = 0; i < atol(argv[3]); i++) {
            float v = (float)i;
            char name[32];
            snprintf(name, sizeof name, "m%06ld.npy", i);
            if (!w.add_npy_f32(name, {1}, &v, 1, &err)) return die(err);
        }
        return w.close(&err) ? 0 : die(err);
    }
    std::ifstream blob_in(argv[4], std::ios::binary);
    std::vector<char> blob((std::istreambuf_iterator<char>(blob_in)), std::istreambuf_iterator<char>());
    std::ifstream plan(argv[2]);
    gnodes::TraceWriter w;
    gnodes::Meta m;
    if (!w.open(argv[3], &err)) return die(err);
    std::string line;
    while (std::getline(plan, line)) {
        std::vector<std::string> f = split(line, '\t');
        const std::string &c = f[0];
        bool ok = true;
        if (c == "meta") {
            const std::string &k = f[1], v = unhex(f[2]);
            if (k == "name") m.producer_name = v;
            else if (k == "source") m.producer_source = v;
            else if (k == "tool") m.producer_tool = v;
            else if (k == "file") m.model_file = v;
            else if (k == "sha256") m.model_sha256 = v;
            else if (k == "kv_k") m.kv_type_k = v;
            else if (k == "kv_v") m.kv_type_v = v;
            else if (k == "threads") m.threads = std::stoi(v);
            else if (k == "n_ctx") m.n_ctx = std::stoi(v);
            else if (k == "logits_all") m.logits_all = v == "1";
            else if (k == "flash_attn") m.flash_attn = std::stoi(v);
            else if (k == "greedy") for (int64_t t : ints(v)) m.greedy_tokens.push_back((int32_t)t);
            else return die("meta key " + k);
        } else if (c == "eval") {
            std::vector<int32_t> toks;
            for (int64_t t : ints(f[2])) toks.push_back((int32_t)t);
            w.begin_eval(toks, std::stoi(f[1]));
        } else if (c == "node") {
            gnodes::Node n;
            const int64_t seq = std::stoll(f[1]);
            n.name = gnodes::node_name(unhex(f[2]).c_str(), seq);
            n.op = f[3];
            n.type = f[4];
            n.elem = elem(f[5]);
            std::vector<int64_t> ne = ints(f[6]), nb = ints(f[7]);
            for (int i = 0; i < 4; i++) n.ne[i] = ne[i], n.nb[i] = (uint64_t)nb[i];
            n.src0 = f[8];
            n.src1 = f[9];
            n.data = (const uint8_t *)blob.data() + std::stoll(f[10]);
            ok = w.add_node(seq, n, &err);
        } else if (c == "logits") {
            ok = w.add_logits((const float *)(blob.data() + std::stoll(f[3])), std::stoll(f[1]), std::stoll(f[2]), &err);
        } else if (c == "end") {
            ok = w.end_eval(&err);
        } else if (c == "finish") {
            ok = w.finish(m, &err);
        } else {
            return die("command " + c);
        }
        if (!ok) return die(err);
    }
    return 0;
}
'''

INDEX_COLUMNS = ['seq', 'name', 'op', 'type', 'ne0', 'ne1', 'ne2', 'ne3', 'nb0', 'nb1', 'nb2', 'nb3',
                 'src0', 'src1', 'file']
ESIZE = {'f32': 4, 'f16': 2, 'bf16': 2, 'i32': 4}


def _shared(rel):
    path = os.path.join(shared_dir(), rel)
    if not os.path.exists(path):
        raise unittest.SkipTest('shared data %s not found (set BITPARITY_SHARED_DIR)' % path)
    return path


def _hex(s):
    return s.encode('utf-8').hex()


def _npy_shape(ne):
    s = list(reversed(ne))
    while len(s) > 1 and s[0] == 1:
        s.pop(0)
    return tuple(s)


class Plan:
    """A driver plan plus the raw memory blob its nodes point into."""

    def __init__(self):
        self.lines = []
        self.blob = bytearray()

    def put(self, raw):
        self.blob.extend(b'\0' * (-len(self.blob) % 16))
        off = len(self.blob)
        self.blob.extend(raw)
        return off

    def meta(self, **kv):
        for k, v in kv.items():
            self.lines.append('meta\t%s\t%s' % (k, _hex(str(v))))

    def eval(self, tokens, p0):
        self.lines.append('eval\t%d\t%s' % (p0, ','.join(map(str, tokens))))

    def node(self, seq, name, op, typ, elem, ne, nb, src0, src1, raw):
        self.lines.append('node\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d' % (
            seq, _hex(name), op, typ, elem, ','.join(map(str, ne)), ','.join(map(str, nb)), src0, src1,
            self.put(raw)))

    def logits(self, arr):
        arr = np.ascontiguousarray(arr, dtype='<f4')
        self.lines.append('logits\t%d\t%d\t%d' % (arr.shape[0], arr.shape[1], self.put(arr.tobytes())))

    def end(self):
        self.lines.append('end')


def strided_bytes(values, ne, nb, dtype):
    """Raw ggml memory holding ``values`` (numpy shape = ne reversed) at byte strides nb: what a
    view node's data pointer sees."""
    esize = np.dtype(dtype).itemsize
    span = sum((n - 1) * b for n, b in zip(ne, nb)) + esize
    buf = bytearray(span)
    shape, strides = tuple(reversed(ne)), tuple(reversed(nb))
    view = np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides)
    view[...] = np.asarray(values).reshape(shape).astype(dtype)
    # Views whose elements overlap would make this ambiguous: read back to be sure.
    back = np.ndarray(shape, dtype=dtype, buffer=bytes(buf), strides=strides)
    if np.ascontiguousarray(back).tobytes() != np.ascontiguousarray(view).tobytes():
        raise AssertionError('overlapping strides %s' % (nb,))
    return bytes(buf)


class DumperFormat(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cxx = os.environ.get('CXX') or shutil.which('g++') or shutil.which('c++')
        if not cxx:
            raise unittest.SkipTest('SKIP-ALL: no C++ compiler to build the dumper format driver')
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        src = os.path.join(cls.dir, 'driver.cpp')
        with open(src, 'w') as f:
            f.write(DRIVER)
        cls.driver = os.path.join(cls.dir, 'driver')
        cmd = [cxx, '-std=c++17', '-O2', '-Wall', '-Wextra', '-Werror', '-I', DUMPERS, src,
               os.path.join(DUMPERS, 'ggml_nodes_format.cpp'), '-o', cls.driver]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise AssertionError('driver build failed:\n%s\n%s' % (' '.join(cmd), r.stderr))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_plan(self, plan, name):
        pp, bp, out = (os.path.join(self.dir, name + ext) for ext in ('.plan', '.bin', '.npz'))
        with open(pp, 'w') as f:
            f.write('\n'.join(plan.lines + ['finish']) + '\n')
        with open(bp, 'wb') as f:
            f.write(plan.blob)
        r = subprocess.run([self.driver, 'plan', pp, out, bp], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    # --- the shared bitnet.cpp traces, replayed node by node ------------------------------
    def replay(self, rel):
        """Feeds every node of shared trace ``rel`` to the writer as raw ggml memory at the
        recorded strides and types; returns (shared path, replayed path)."""
        path = _shared(rel)
        z = zipfile.ZipFile(path)
        meta = yaml.safe_load(z.read('meta.yaml'))
        kv = meta['settings']['kv_cache']  # "K f16, V f16"
        k_type, v_type = [p.split()[1] for p in kv.split(', ')]
        plan = Plan()
        plan.meta(name=meta['producer']['name'], source=meta['producer']['source'], tool=meta['producer']['tool'],
                  file=meta['model']['file'], sha256=meta['model']['sha256'], kv_k=k_type, kv_v=v_type,
                  threads=meta['settings']['threads'], n_ctx=meta['settings']['n_ctx'],
                  logits_all=int(meta['settings']['logits_for_all_prompt_tokens']),
                  greedy=','.join(map(str, meta['greedy_tokens'])))
        for ev in meta['evaluations']:
            eid = ev['id']
            plan.eval(ev['tokens'], ev['p0'])
            rows = z.read(eid + '/index.tsv').decode().rstrip('\n').split('\n')
            self.assertEqual(rows[0].split('\t'), INDEX_COLUMNS)
            for line in rows[1:]:
                r = dict(zip(INDEX_COLUMNS, line.split('\t')))
                ne = [int(r['ne%d' % i]) for i in range(4)]
                nb = [int(r['nb%d' % i]) for i in range(4)]
                vals = np.load(io.BytesIO(z.read(eid + '/' + r['file'])))
                dtype = {'f32': '<f4', 'f16': '<f2'}[r['type']]
                if r['type'] == 'f16':  # came from f16: must survive the round trip exactly
                    self.assertTrue(np.array_equal(vals.astype('<f2').astype('<f4'), vals, equal_nan=True))
                # unnamed nodes were written as node_<seq>: give the writer the empty ggml name
                name = '' if r['name'] == 'node_%s' % r['seq'] else r['name']
                plan.node(int(r['seq']), name, r['op'], r['type'], r['type'], ne, nb, r['src0'], r['src1'],
                          strided_bytes(vals, ne, nb, dtype))
            plan.logits(np.load(io.BytesIO(z.read(eid + '/logits.npy'))))
            plan.end()
        return path, self.run_plan(plan, rel.replace('/', '_'))

    def assert_same_trace(self, a, b):
        za, zb = zipfile.ZipFile(a), zipfile.ZipFile(b)
        self.assertEqual(sorted(za.namelist()), sorted(zb.namelist()))
        self.assertEqual(zb.namelist()[-1], 'meta.yaml')  # written last
        for m in za.namelist():
            da, db = za.read(m), zb.read(m)
            if m.endswith('.npy'):
                x, y = np.load(io.BytesIO(da)), np.load(io.BytesIO(db))
                self.assertEqual((x.dtype, x.shape), (y.dtype, y.shape), m)
                self.assertTrue(np.array_equal(x.view(np.uint32), y.view(np.uint32)), m)
            else:  # meta.yaml, index.tsv: byte for byte
                self.assertEqual(da.decode(), db.decode(), m)
        for info in zb.infolist():
            self.assertEqual(info.compress_type, zipfile.ZIP_STORED)
        self.assertIsNone(zb.testzip())  # every CRC-32

    def test_replay_bitnetcpp_i2s_p1_is_identical(self):
        # three evaluations; f16 KV-cache views, TRANSPOSE and PERMUTE views with gapped strides
        shared, mine = self.replay('reference-traces/bitnetcpp/i2s/p1.npz')
        self.assert_same_trace(shared, mine)
        t = tr.GgmlNodesTrace(mine)
        self.assertEqual(t.flavor, 'bitnet.cpp')
        k0 = t.node('e0', 'k-0', 'VIEW')  # ne (32, 32, 2), nb (2, 128, 64): heads interleaved in rows
        self.assertEqual(k0.shape, (2, 32, 32))
        ref = tr.GgmlNodesTrace(shared)
        for tap in ('token_embd', 'blk.0.attn_k_rope', 'blk.3.attn_probs', 'logits'):
            np.testing.assert_array_equal(t.canonical('e1', tap), ref.canonical('e1', tap))
        self.bitparity_accepts(mine, shared)

    def test_replay_lastonly_keeps_unnamed_nodes(self):
        shared, mine = self.replay('reference-traces/bitnetcpp/f32/p1_lastonly.npz')
        self.assert_same_trace(shared, mine)
        rows = tr.GgmlNodesTrace(mine).nodes('e0')
        self.assertEqual([(r['seq'], r['name'], r['file']) for r in rows if r['name'].startswith('node_')],
                         [(137, 'node_137', '0137_node_137.npy'), (138, 'node_138', '0138_node_138.npy')])

    def bitparity_accepts(self, mine, shared):
        exe = os.environ.get('BITPARITY_BINARY')
        if not exe or not os.path.exists(exe):
            return  # reference/trace.py read it above; ctest sets BITPARITY_BINARY
        for a, b in ((mine, mine), (mine, shared)):
            r = subprocess.run([exe, 'compare', a, b], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, 'bitparity compare %s %s:\n%s%s' % (a, b, r.stdout, r.stderr))
            self.assertIn('PASS', r.stdout)
            self.assertRegex(r.stdout, r'(\d+) compared: \1 pass \(\1 bit-identical\), 0 fail')

    # --- hand-made nodes ---------------------------------------------------------------
    def synthetic(self):
        p = Plan()
        p.meta(name='llama.cpp', source='llama.cpp abc1234 (2026-01-02) "quoted" \\ back', tool='test driver',
               file='m.gguf', sha256='0' * 64, kv_k='f32', kv_v='f16', threads=1, n_ctx=64, logits_all=1,
               flash_attn=0, greedy='5,6')
        p.eval([509, 1, 2], 0)
        allh = np.arange(65536, dtype=np.uint32).astype('<u2')
        p.node(0, 'halves', 'VIEW', 'f16', 'f16', [65536, 1, 1, 1], [2, 131072, 131072, 131072], 'cache_k_l0',
               '-', allh.tobytes())
        bf = np.array([0x3F80, 0xC000, 0x7F80, 0x0001], '<u2')
        p.node(1, 'bf', 'CPY', 'bf16', 'bf16', [4, 1, 1, 1], [2, 8, 8, 8], 'x', 'y', bf.tobytes())
        ints = np.array([-3, 0, 7, 2 ** 24 + 1], '<i4')
        p.node(2, 'ids', 'ARGSORT', 'i32', 'i32', [2, 2, 1, 1], [4, 8, 16, 16], 'z', '-', ints.tobytes())
        # A = [[0,1,2],[3,4,5]] (ne [3,2], nb [4,12]); its TRANSPOSE has ne [2,3], nb [12,4]
        a = np.arange(6, dtype='<f4')
        p.node(3, 'A (transposed)', 'TRANSPOSE', 'f32', 'f32', [2, 3, 1, 1], [12, 4, 24, 24], 'A', '-', a.tobytes())
        p.node(4, '', 'GET_ROWS', 'f32', 'f32', [3, 1, 1, 1], [4, 12, 12, 12], 'l_out-2', 'inp_out_ids',
               np.array([1.5, -2.5, 3.5], '<f4').tobytes())
        p.node(5, 'ffn_sqr(relu)-3\tx', 'SQR', 'f32', 'f32', [1, 4, 1, 1], [4, 4, 16, 16], 'node_4', '-',
               np.array([1, 2, 3, 4], '<f4').tobytes())
        p.node(6, 'k_cache_view-0 (copy of Kcur-0)', 'CPY', 'q8_0', 'none', [32, 1, 1, 1], [34, 34, 34, 34],
               'Kcur-0', 'k_cache_view-0', b'\0' * 34)
        # k-N style: ne [2,2,2,1], nb [2,8,4,16] (heads interleaved within 8-byte rows), f16
        vals = np.arange(8, dtype=np.float32).reshape(2, 2, 2) * 0.5
        p.node(7, 'k-0', 'VIEW', 'f16', 'f16', [2, 2, 2, 1], [2, 8, 4, 16], 'cache_k_l0', '-',
               strided_bytes(vals, [2, 2, 2, 1], [2, 8, 4, 16], '<f2'))
        p.logits(np.arange(15, dtype=np.float32).reshape(3, 5) - 7)
        p.end()
        p.eval([7], 3)
        p.node(0, 'x', 'ADD', 'f32', 'f32', [2, 1, 1, 1], [4, 8, 8, 8], 'a', 'b', np.array([1, 2], '<f4').tobytes())
        p.logits(np.ones((1, 5), np.float32))
        p.end()
        return self.run_plan(p, 'synthetic'), vals

    def test_synthetic_members_names_shapes_and_values(self):
        out, kvals = self.synthetic()
        z = zipfile.ZipFile(out)
        self.assertEqual(z.namelist(), [
            'e0/0000_halves.npy', 'e0/0001_bf.npy', 'e0/0002_ids.npy', 'e0/0003_A__transposed_.npy',
            'e0/0004_node_4.npy', 'e0/0005_ffn_sqr_relu_-3_x.npy', 'e0/0007_k-0.npy', 'e0/logits.npy',
            'e0/index.tsv', 'e1/0000_x.npy', 'e1/logits.npy', 'e1/index.tsv', 'meta.yaml'])
        self.assertIsNone(z.testzip())

        def get(m):
            return np.load(io.BytesIO(z.read(m)))

        h = get('e0/0000_halves.npy')
        self.assertEqual((h.dtype, h.shape), (np.float32, (65536,)))
        bits = np.arange(65536, dtype=np.uint32)
        want = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
        nan = ((bits >> 10) & 0x1F == 0x1F) & (bits & 0x3FF != 0)
        self.assertTrue(np.array_equal(h.view(np.uint32)[~nan], want.view(np.uint32)[~nan]))
        # NaNs keep sign and payload: sign<<16 | 0x7f800000 | mantissa<<13
        self.assertTrue(np.array_equal(h.view(np.uint32)[nan],
                                       ((bits & 0x8000) << 16 | 0x7F800000 | (bits & 0x3FF) << 13)[nan]))
        self.assertEqual(h[1], 2.0 ** -24)  # smallest subnormal half
        self.assertEqual(h[0x3C00], 1.0)
        self.assertEqual(h[0xFBFF], -65504.0)
        self.assertEqual(list(get('e0/0001_bf.npy').view(np.uint32)), [0x3F800000, 0xC0000000, 0x7F800000, 0x00010000])
        np.testing.assert_array_equal(get('e0/0002_ids.npy'), [[-3, 0], [7, 16777216]])  # 2^24+1 → nearest float
        np.testing.assert_array_equal(get('e0/0003_A__transposed_.npy'), [[0, 3], [1, 4], [2, 5]])
        np.testing.assert_array_equal(get('e0/0004_node_4.npy'), [1.5, -2.5, 3.5])
        self.assertEqual(get('e0/0005_ffn_sqr_relu_-3_x.npy').shape, (4, 1))  # ne [1,4,1,1]
        np.testing.assert_array_equal(get('e0/0007_k-0.npy'), kvals)
        np.testing.assert_array_equal(get('e0/logits.npy'), np.arange(15).reshape(3, 5) - 7)
        self.assertEqual(get('e1/logits.npy').shape, (1, 5))

        rows = z.read('e0/index.tsv').decode().split('\n')
        self.assertEqual(rows[0].split('\t'), INDEX_COLUMNS)
        self.assertEqual(rows[-1], '')  # newline-terminated
        self.assertEqual(rows[4], '3\tA (transposed)\tTRANSPOSE\tf32\t2\t3\t1\t1\t12\t4\t24\t24\tA\t-\t0003_A__transposed_.npy')
        self.assertEqual(rows[5].split('\t')[1], 'node_4')
        self.assertEqual(rows[6].split('\t')[1], 'ffn_sqr(relu)-3 x')  # tab inside a name → space
        self.assertEqual([r.split('\t')[0] for r in rows[1:-1]], ['0', '1', '2', '3', '4', '5', '7'])  # q8_0 skipped

        t = tr.GgmlNodesTrace(out)
        self.assertEqual(t.flavor, 'llama.cpp')
        for r in t.nodes('e0'):
            self.assertEqual(t.load('e0', r).shape, _npy_shape(r['ne']), r['name'])
        np.testing.assert_array_equal(t.node('e1', 'x', 'ADD'), [1, 2])
        exe = os.environ.get('BITPARITY_BINARY')
        if exe and os.path.exists(exe):
            # bitparity's C reader opens it (meta.yaml with skipped_nodes, index, members): exit 1
            # because no node maps to a canonical tap, not 2 (input error)
            r = subprocess.run([exe, 'compare', out, out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn('2 evaluation(s)', r.stdout)

    def test_synthetic_meta_has_the_shared_structure(self):
        out, _ = self.synthetic()
        meta = yaml.safe_load(zipfile.ZipFile(out).read('meta.yaml'))
        self.assertEqual(list(meta), ['trace', 'producer', 'model', 'settings', 'layout', 'evaluations',
                                      'greedy_tokens', 'skipped_nodes'])
        self.assertEqual(meta['producer'], {'name': 'llama.cpp', 'source': 'llama.cpp abc1234 (2026-01-02) "quoted" \\ back',
                                            'tool': 'test driver'})
        self.assertEqual(meta['model'], {'file': 'm.gguf', 'sha256': '0' * 64})
        self.assertEqual(meta['settings'], {'kv_cache': 'K f32, V f16', 'flash_attn': False, 'threads': 1, 'n_ctx': 64,
                                            'logits_for_all_prompt_tokens': True})
        self.assertEqual(meta['layout'], 'ggml-nodes')
        self.assertEqual(meta['evaluations'], [{'id': 'e0', 'tokens': [509, 1, 2], 'p0': 0},
                                               {'id': 'e1', 'tokens': [7], 'p0': 3}])
        self.assertEqual(meta['greedy_tokens'], [5, 6])
        self.assertEqual(meta['skipped_nodes'], [{'eval': 'e0', 'seq': 6, 'name': 'k_cache_view-0 (copy of Kcur-0)',
                                                  'op': 'CPY', 'type': 'q8_0'}])
        # the same keys as the shared bitnet.cpp traces (settings may add flash_attn)
        try:
            ref = yaml.safe_load(zipfile.ZipFile(_shared('reference-traces/bitnetcpp/i2s/p1.npz')).read('meta.yaml'))
        except unittest.SkipTest:
            return
        self.assertEqual(list(meta)[:-1], list(ref))
        for k in ('producer', 'model'):
            self.assertEqual(list(meta[k]), list(ref[k]))
        self.assertEqual(set(meta['settings']) - {'flash_attn'}, set(ref['settings']))

    def test_zip64_when_members_exceed_65535(self):
        out = os.path.join(self.dir, 'many.npz')
        r = subprocess.run([self.driver, 'many', out, '70000'], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, 'rb') as f:
            f.seek(-22 - 20 - 56, 2)
            self.assertEqual(f.read(4), b'PK\x06\x06')  # ZIP64 end of central directory
        z = zipfile.ZipFile(out)
        self.assertEqual(len(z.infolist()), 70000)
        self.assertEqual(float(np.load(io.BytesIO(z.read('m069999.npy')))[0]), 69999.0)

    def test_sha256_matches_hashlib(self):
        paths = []
        rng = np.random.default_rng(7)
        for n in (0, 3, 55, 56, 63, 64, 65, 1000, 3 * 2 ** 20 + 7):
            p = os.path.join(self.dir, 'sha%d.bin' % n)
            with open(p, 'wb') as f:
                f.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            paths.append(p)
        with open(paths[1], 'wb') as f:
            f.write(b'abc')
        r = subprocess.run([self.driver, 'sha'] + paths, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = r.stdout.split()
        self.assertEqual(got[0], 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
        self.assertEqual(got[1], 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
        for p, h in zip(paths, got):
            with open(p, 'rb') as f:
                self.assertEqual(h, hashlib.sha256(f.read()).hexdigest(), p)
        r = subprocess.run([self.driver, 'sha', os.path.join(self.dir, 'missing')], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn('cannot open', r.stderr)

    def test_sha256_of_shared_model_matches_its_trace(self):
        model = _shared('models/tiny-bitnet-i2s.gguf')
        meta = yaml.safe_load(zipfile.ZipFile(_shared('reference-traces/bitnetcpp/i2s/p1.npz')).read('meta.yaml'))
        r = subprocess.run([self.driver, 'sha', model], capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), meta['model']['sha256'])


if __name__ == '__main__':
    unittest.main()
