"""reference/gguf.py: codecs against the shared models, writer/reader round trips, strict checks."""

import os
import struct
import tempfile
import unittest

import numpy as np

from reference import gguf
from reference.tests import shared

ALL_VALUE_KVS = [
    ('t.u8', gguf.UINT8, 255), ('t.i8', gguf.INT8, -128), ('t.u16', gguf.UINT16, 65535),
    ('t.i16', gguf.INT16, -32768), ('t.u32', gguf.UINT32, 4294967295), ('t.i32', gguf.INT32, -2147483648),
    ('t.f32', gguf.FLOAT32, 1.5), ('t.bool', gguf.BOOL, True), ('t.str', gguf.STRING, 'héllo'),
    ('t.u64', gguf.UINT64, 2 ** 64 - 1), ('t.i64', gguf.INT64, -2 ** 63), ('t.f64', gguf.FLOAT64, -0.1),
    ('t.arr_str', (gguf.ARRAY, gguf.STRING), ['a', '', 'ccc']),
    ('t.arr_i32', (gguf.ARRAY, gguf.INT32), [1, -2, 3]),
    ('t.arr_f32', (gguf.ARRAY, gguf.FLOAT32), [0.25, -1.0]),
    ('t.arr_bool', (gguf.ARRAY, gguf.BOOL), [True, False]),
    ('t.arr_empty', (gguf.ARRAY, gguf.UINT8), []),
]


class TmpFile:
    def __enter__(self):
        fd, self.path = tempfile.mkstemp(suffix='.gguf')
        os.close(fd)
        return self.path

    def __exit__(self, *a):
        os.unlink(self.path)


class RoundTrip(unittest.TestCase):
    def test_every_value_type_and_version(self):
        for version in (2, 3):
            with TmpFile() as p:
                gguf.write_gguf(p, ALL_VALUE_KVS, [], version=version)
                g = gguf.GGUFFile(p)
                self.assertEqual(g.version, version)
                self.assertEqual(len(g.kv), len(ALL_VALUE_KVS))
                for key, vtype, value in ALL_VALUE_KVS:
                    self.assertEqual(g.kv_types[key], vtype, key)
                    got = g.kv[key]
                    if isinstance(value, list):
                        self.assertEqual(list(got), value, key)
                    else:
                        self.assertEqual(got, value, key)

    def test_tensors_all_types(self):
        rng = np.random.default_rng(1)
        tern = (rng.integers(-1, 2, size=(2, 512)) * 0.25).astype(np.float32)
        dense = rng.normal(size=(3, 256)).astype(np.float32)
        tensors = [('a', gguf.F32, [256, 3], dense), ('b', gguf.F16, [256, 3], dense),
                   ('c', gguf.BF16, [256, 3], dense), ('d', gguf.Q8_0, [256, 3], dense),
                   ('e', gguf.I2_S, [512, 2], tern), ('f', gguf.TQ2_0, [512, 2], tern),
                   ('g', gguf.TQ1_0, [512, 2], tern)]
        with TmpFile() as p:
            gguf.write_gguf(p, [('general.alignment', gguf.UINT32, 64)], tensors)
            g = gguf.GGUFFile(p)
            self.assertEqual(g.alignment, 64)
            self.assertEqual([t.name for t in g.tensors], list('abcdefg'))
            for t in g.tensors:
                self.assertEqual(t.abs_offset % 64, 0)
            np.testing.assert_array_equal(g.tensor('a'), dense)
            np.testing.assert_array_equal(g.tensor('b'), dense.astype(np.float16).astype(np.float32))
            # bf16 keeps the top 16 bits after round-to-nearest-even
            self.assertLess(np.max(np.abs(g.tensor('c') - dense) / np.abs(dense)), 2 ** -8)
            self.assertLess(np.max(np.abs(g.tensor('d') - dense)), np.max(np.abs(dense)) / 127)
            for n in 'efg':        # 0.25 is exact in f16: ternary data round-trips exactly
                np.testing.assert_array_equal(g.tensor(n), tern, n)
            self.assertEqual(g.by_name['e'].nbytes, 1024 // 4 + 32)

    def test_hand_computed_i2s_layout(self):
        # element j of a 128-block: byte j mod 32, shift 6 - 2*(j div 32); codes 0/1/2 = -1/0/+1
        w = np.zeros(128, dtype=np.float32)
        w[0], w[32], w[95], w[127] = 2.0, -2.0, 1e-7, 2.0
        raw = gguf.quantize_i2s(w)
        self.assertEqual(len(raw), 32 + 4 + 28)
        self.assertEqual(raw[0], (2 << 6) | (0 << 4) | (1 << 2) | 1)        # elems 0, 32, 64, 96
        self.assertEqual(raw[31], (1 << 6) | (1 << 4) | (1 << 2) | 2)       # elems 31, 63, 95(≈0), 127
        self.assertEqual(struct.unpack('<f', raw[32:36])[0], 2.0)
        d = gguf.dequantize(raw, gguf.I2_S, [128, 1]).reshape(-1)
        self.assertEqual((d[0], d[32], d[95], d[127], d[1]), (2.0, -2.0, 0.0, 2.0, 0.0))

    def test_hand_computed_tq1_byte(self):
        # trits (2,1,0,1,2) -> q = 2*81+1*27+0*9+1*3+2 = 194 -> ceil(194*256/243) = 205
        x = np.zeros(256, dtype=np.float32)
        for n, t in enumerate((2, 1, 0, 1, 2)):
            x[n * 32] = t - 1
        raw = gguf.quantize_tq1_0(x)
        self.assertEqual(raw[0], 205)
        np.testing.assert_array_equal(gguf.dequantize(raw, gguf.TQ1_0, [256]), x)


class Strict(unittest.TestCase):
    def good(self):
        with TmpFile() as p:
            gguf.write_gguf(p, [('k', gguf.UINT32, 1)], [('t', gguf.F32, [32], np.zeros(32, np.float32))])
            with open(p, 'rb') as f:
                return bytearray(f.read())

    def expect(self, data, pattern):
        with TmpFile() as p:
            with open(p, 'wb') as f:
                f.write(bytes(data))
            with self.assertRaisesRegex(gguf.GGUFError, pattern):
                gguf.GGUFFile(p)

    def test_errors(self):
        b = self.good()
        self.expect(b'GGUX' + b[4:], 'magic')
        self.expect(b[:4] + struct.pack('<I', 1) + b[8:], 'version 1')
        self.expect(b[:4] + struct.pack('<I', 3 << 16) + b[8:], 'byte-swapped')
        self.expect(b[:4] + struct.pack('<I', 4) + b[8:], 'version 4')
        self.expect(b[:30], 'offset')
        self.expect(b[:-4], 'past end of file')
        self.expect(b[:8] + struct.pack('<q', 1 << 40) + b[16:], 'n_tensors')
        bad_type = bytearray(b)
        kpos = 24 + 8 + 1
        bad_type[kpos:kpos + 4] = struct.pack('<i', 99)
        self.expect(bad_type, 'unknown value type 99')

    def test_duplicate_and_nested(self):
        with TmpFile() as p:
            gguf.write_gguf(p, [('k', gguf.UINT8, 1), ('k', gguf.UINT8, 2)], [])
            with self.assertRaisesRegex(gguf.GGUFError, "duplicate key 'k'"):
                gguf.GGUFFile(p)
        nested = bytearray(b'GGUF' + struct.pack('<IqQ', 3, 0, 1) + struct.pack('<Q', 1) + b'k'
                           + struct.pack('<iiQ', gguf.ARRAY, gguf.ARRAY, 0))
        self.expect(nested, 'nested arrays')

    def test_overlap(self):
        with TmpFile() as p:
            gguf.write_gguf(p, [], [('a', gguf.F32, [32], np.zeros(32, np.float32)),
                                    ('b', gguf.F32, [32], np.zeros(32, np.float32))])
            with open(p, 'rb') as f:
                b = bytearray(f.read())
        # b's offset field (uint64, relative) is the last 8 bytes before the padding; set it to 0
        i = b.index(b'b', 24) + 1 + 4 + 8 + 4
        b[i:i + 8] = struct.pack('<Q', 0)
        self.expect(b, "overlaps tensor 'a'")

    def test_block_multiple(self):
        with TmpFile() as p:
            with self.assertRaisesRegex(gguf.GGUFError, 'multiple'):
                gguf.write_gguf(p, [], [('a', gguf.I2_S, [64, 2], bytes(64))])


class SharedModels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.f32 = gguf.GGUFFile(shared('models/tiny-bitnet-f32.gguf'))

    def test_i2s_bit_exact_and_requantize(self):
        g = gguf.GGUFFile(shared('models/tiny-bitnet-i2s.gguf'))
        n_i2s = 0
        for t in g.tensors:
            ref = self.f32.tensor(t.name)
            if t.type == gguf.I2_S:
                n_i2s += 1
                np.testing.assert_array_equal(g.tensor(t.name), ref, t.name)
                # quantizer reproduces the stored bytes except the 28 uninitialised pad bytes
                self.assertEqual(gguf.quantize_i2s(ref)[:-28], bytes(g.raw(t.name))[:-28], t.name)
            elif t.type == gguf.F16:
                np.testing.assert_array_equal(g.tensor(t.name), ref.astype(np.float16).astype(np.float32))
            else:
                np.testing.assert_array_equal(g.tensor(t.name), ref, t.name)
        self.assertEqual(n_i2s, 28)

    def test_tq_equal_to_f32_up_to_f16_scale(self):
        for q, qt in (('tq1_0', gguf.TQ1_0), ('tq2_0', gguf.TQ2_0)):
            g = gguf.GGUFFile(shared('models/tiny-bitnet-llamacpp-%s.gguf' % q))
            n = 0
            for t in g.tensors:
                ref = self.f32.tensor(t.name)
                if t.type == qt:
                    n += 1
                    blocks = ref.reshape(-1, 256)
                    d = np.max(np.abs(blocks), axis=1).astype(np.float16).astype(np.float32)
                    want = (np.sign(blocks) * d[:, None]).reshape(ref.shape)
                    np.testing.assert_array_equal(g.tensor(t.name), want, t.name)
                    self.assertEqual(gguf.quantize(ref, qt), bytes(g.raw(t.name)), t.name)
                else:
                    np.testing.assert_array_equal(g.tensor(t.name), ref, t.name)
            self.assertEqual(n, 28, q)


if __name__ == '__main__':
    unittest.main()
