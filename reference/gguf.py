"""GGUF reader/writer and tensor codecs, written from docs/specs/gguf.md, docs/specs/i2s.md and
docs/specs/ternary-llamacpp.md (independent of the C engine).

Reader: ``GGUFFile(path)`` validates the header, every key/value, every tensor info and
every data range against the file size before exposing anything; violations raise
``GGUFError`` with the file, the field and the byte offset.

Codecs (all vectorized numpy; the result is float32 with numpy shape = ggml ne reversed):
  F32, F16, BF16      plain casts
  Q8_0  (id 8)        blocks of 32: f16 d, int8 qs[32];            x = qs * d
  I2_S  (id 36)       n/4 bytes of 2-bit codes in 128-element blocks, then one f32 scale,
                      then 28 pad bytes;                            x = scale * {-1, 0, +1}[code]
  TQ1_0 (id 34)       blocks of 256 in 54 bytes (base-3 fixed point, f16 d last)
  TQ2_0 (id 35)       blocks of 256 in 66 bytes (2-bit codes, f16 d last); x = (code - 1) * d

Quantizers (for fixtures): ``quantize_i2s`` (bitnet.cpp's), ``quantize_tq1_0`` and
``quantize_tq2_0`` (llama.cpp's reference quantizers), ``quantize_q8_0``.
"""

import os
import struct

import numpy as np

# --- GGUF value types (docs/specs/gguf.md) ---------------------------------------------------
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)

_SCALAR_FMT = {UINT8: '<B', INT8: '<b', UINT16: '<H', INT16: '<h', UINT32: '<I', INT32: '<i',
               FLOAT32: '<f', BOOL: '<B', UINT64: '<Q', INT64: '<q', FLOAT64: '<d'}
VALUE_TYPE_NAMES = {UINT8: 'UINT8', INT8: 'INT8', UINT16: 'UINT16', INT16: 'INT16',
                    UINT32: 'UINT32', INT32: 'INT32', FLOAT32: 'FLOAT32', BOOL: 'BOOL',
                    STRING: 'STRING', ARRAY: 'ARRAY', UINT64: 'UINT64', INT64: 'INT64',
                    FLOAT64: 'FLOAT64'}

# --- ggml tensor types --------------------------------------------------------------------
F32, F16, Q8_0, Q8_K, BF16, TQ1_0, TQ2_0, I2_S = 0, 1, 8, 15, 30, 34, 35, 36
TYPE_NAMES = {F32: 'F32', F16: 'F16', Q8_0: 'Q8_0', Q8_K: 'Q8_K', BF16: 'BF16',
              TQ1_0: 'TQ1_0', TQ2_0: 'TQ2_0', I2_S: 'I2_S'}
TYPE_IDS = {v: k for k, v in TYPE_NAMES.items()}
# (elements per block, bytes per block); I2_S is special-cased in tensor_nbytes.
_BLOCK = {F32: (1, 4), F16: (1, 2), BF16: (1, 2), Q8_0: (32, 34), TQ1_0: (256, 54),
          TQ2_0: (256, 66), I2_S: (128, 32)}
TERNARY_TYPES = (I2_S, TQ1_0, TQ2_0)

MAX_DIMS = 4
MAX_NAME = 63          # tensor names must be < 64 bytes
DEFAULT_ALIGNMENT = 32


class GGUFError(ValueError):
    """A malformed or unsupported GGUF file; the message names file, field and offset."""


def tensor_nbytes(ggml_type, ne):
    """Byte size of a tensor of type ``ggml_type`` with dims ``ne`` (ggml order).

    I2_S is n/4 + 32 (codes, f32 scale, 28 pad bytes), never ggml's 1-byte trait."""
    if ggml_type not in _BLOCK:
        raise GGUFError('unsupported tensor type %d' % ggml_type)
    n = 1
    for d in ne:
        n *= int(d)
    blk, size = _BLOCK[ggml_type]
    if ne and int(ne[0]) % blk:
        raise GGUFError('ne[0]=%d is not a multiple of %s block size %d'
                        % (ne[0], TYPE_NAMES[ggml_type], blk))
    if ggml_type == I2_S:
        return n // 4 + 32
    return n // blk * size


# --- reader ----------------------------------------------------------------------------------
class TensorInfo:
    """One tensor info record: name, ne (ggml order), type, offset (relative to the data
    section), nbytes, and the absolute file offset of its data."""

    __slots__ = ('name', 'ne', 'type', 'offset', 'nbytes', 'abs_offset')

    def __init__(self, name, ne, ggml_type, offset, nbytes, abs_offset):
        self.name, self.ne, self.type = name, tuple(ne), ggml_type
        self.offset, self.nbytes, self.abs_offset = offset, nbytes, abs_offset

    @property
    def shape(self):
        """numpy shape = ne reversed (row-major, ne[0] fastest)."""
        return tuple(reversed(self.ne))

    @property
    def n_elements(self):
        n = 1
        for d in self.ne:
            n *= d
        return n

    def __repr__(self):
        return 'TensorInfo(%s, ne=%s, %s, off=%d)' % (self.name, list(self.ne),
                                                      TYPE_NAMES.get(self.type, self.type), self.offset)


class _Cursor:
    def __init__(self, buf, path):
        self.buf, self.path, self.pos = buf, path, 0

    def fail(self, field, msg, pos=None):
        raise GGUFError('%s: %s at offset %d: %s' % (self.path, field, self.pos if pos is None else pos, msg))

    def need(self, n, field):
        if n < 0 or self.pos + n > len(self.buf):
            self.fail(field, 'needs %d bytes, only %d left' % (n, len(self.buf) - self.pos))

    def scalar(self, vtype, field):
        fmt = _SCALAR_FMT[vtype]
        size = struct.calcsize(fmt)
        self.need(size, field)
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        if vtype == BOOL:
            if v > 1:
                self.fail(field, 'bool value %d is not 0 or 1' % v, self.pos - 1)
            v = bool(v)
        return v

    def string(self, field):
        n = self.scalar(UINT64, field + ' length')
        self.need(n, field)
        raw = bytes(self.buf[self.pos:self.pos + n])
        try:
            s = raw.decode('utf-8')
        except UnicodeDecodeError as e:
            self.fail(field, 'invalid UTF-8 (%s)' % e)
        self.pos += n
        return s


class GGUFFile:
    """A validated GGUF v2/v3 file.

    Attributes: path, version, alignment, data_offset, kv (dict key -> python value; arrays
    are lists, or numpy arrays for numeric element types), kv_types (key -> value type, or
    (ARRAY, element type)), tensors (list of TensorInfo in file order), by_name (dict)."""

    def __init__(self, path):
        self.path = str(path)
        with open(self.path, 'rb') as f:
            self._buf = f.read()
        self._parse()

    # The whole file is read into memory: the largest file we deal with (2B-4T, ~1.2 GB)
    # still fits, and bytes slicing makes every bounds check explicit.
    def _parse(self):
        c = _Cursor(self._buf, self.path)
        c.need(4, 'magic')
        if self._buf[:4] != b'GGUF':
            c.fail('magic', 'expected "GGUF", got %r' % bytes(self._buf[:4]))
        c.pos = 4
        version = c.scalar(UINT32, 'version')
        if version & 0xFFFF == 0 and version != 0:
            c.fail('version', 'version 0x%08x looks byte-swapped: big-endian GGUF is not supported' % version, 4)
        if version not in (2, 3):
            c.fail('version', 'unsupported GGUF version %d (need 2 or 3)' % version, 4)
        self.version = version
        n_tensors = c.scalar(INT64, 'n_tensors')
        n_kv = c.scalar(INT64, 'n_kv')
        # Each KV needs >= 8+1+4 bytes and each tensor info >= 8+1+4+8+4+8: bound the counts
        # by the file size before looping so hostile counts cannot make us spin.
        if n_kv < 0 or n_kv * 13 > len(self._buf):
            c.fail('n_kv', 'count %d impossible for a %d-byte file' % (n_kv, len(self._buf)), 16)
        if n_tensors < 0 or n_tensors * 33 > len(self._buf):
            c.fail('n_tensors', 'count %d impossible for a %d-byte file' % (n_tensors, len(self._buf)), 8)
        self.kv, self.kv_types = {}, {}
        for i in range(n_kv):
            kpos = c.pos
            key = c.string('kv[%d].key' % i)
            if not key:
                c.fail('kv[%d].key' % i, 'empty key', kpos)
            if '\0' in key:
                c.fail('kv[%d].key' % i, 'key contains NUL', kpos)
            if key in self.kv:
                c.fail('kv[%d].key' % i, 'duplicate key %r' % key, kpos)
            vtype = c.scalar(INT32, 'kv[%s].type' % key)
            self.kv[key], self.kv_types[key] = self._value(c, vtype, key)
        self.alignment = DEFAULT_ALIGNMENT
        if 'general.alignment' in self.kv:
            a = self.kv['general.alignment']
            if self.kv_types['general.alignment'] != UINT32 or a == 0 or a & (a - 1):
                c.fail('general.alignment', 'must be a UINT32 power of two, got %r' % (a,), 0)
            self.alignment = a
        infos = []
        names = set()
        for i in range(n_tensors):
            npos = c.pos
            name = c.string('tensor[%d].name' % i)
            field = 'tensor %r' % name
            if len(name.encode()) > MAX_NAME:
                c.fail(field + ' name', 'name longer than %d bytes' % MAX_NAME, npos)
            if name in names:
                c.fail(field + ' name', 'duplicate tensor name', npos)
            names.add(name)
            n_dims = c.scalar(UINT32, field + ' n_dims')
            if n_dims == 0 or n_dims > MAX_DIMS:
                c.fail(field + ' n_dims', 'n_dims %d not in 1..%d' % (n_dims, MAX_DIMS))
            ne = [c.scalar(INT64, field + ' ne[%d]' % d) for d in range(n_dims)]
            total = 1
            for d, v in enumerate(ne):
                if v <= 0:
                    c.fail(field + ' ne[%d]' % d, 'dimension %d must be positive' % v)
                total *= v
                if total >= 1 << 62:
                    c.fail(field + ' ne', 'element count overflows')
            tpos = c.pos
            ttype = c.scalar(INT32, field + ' type')
            if ttype not in _BLOCK:
                c.fail(field + ' type', 'unsupported tensor type %d' % ttype, tpos)
            off = c.scalar(UINT64, field + ' offset')
            try:
                nbytes = tensor_nbytes(ttype, ne)
            except GGUFError as e:
                c.fail(field + ' ne[0]', str(e), npos)
            if off % self.alignment:
                c.fail(field + ' offset', 'offset %d not aligned to %d' % (off, self.alignment))
            infos.append((name, ne, ttype, off, nbytes))
        self.data_offset = -(-c.pos // self.alignment) * self.alignment
        if n_tensors and self.data_offset > len(self._buf):
            c.fail('data section', 'starts at %d past the end of the file (%d bytes)'
                   % (self.data_offset, len(self._buf)))
        self.tensors, self.by_name = [], {}
        spans = []
        for name, ne, ttype, off, nbytes in infos:
            start = self.data_offset + off
            if start + nbytes > len(self._buf):
                raise GGUFError('%s: tensor %r offset at data+%d: %d bytes run past end of file (%d bytes)'
                                % (self.path, name, off, nbytes, len(self._buf)))
            t = TensorInfo(name, ne, ttype, off, nbytes, start)
            self.tensors.append(t)
            self.by_name[name] = t
            spans.append((off, off + nbytes, name))
        spans.sort()
        for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
            if b0 < a1:
                raise GGUFError('%s: tensor %r offset at data+%d: overlaps tensor %r (data+%d..%d)'
                                % (self.path, bn, b0, an, a0, a1))

    def _value(self, c, vtype, key):
        if vtype in _SCALAR_FMT:
            return c.scalar(vtype, 'kv[%s]' % key), vtype
        if vtype == STRING:
            return c.string('kv[%s]' % key), vtype
        if vtype == ARRAY:
            epos = c.pos
            etype = c.scalar(INT32, 'kv[%s] array type' % key)
            n = c.scalar(UINT64, 'kv[%s] array count' % key)
            if etype == ARRAY:
                c.fail('kv[%s]' % key, 'nested arrays are not allowed', epos)
            if etype in _SCALAR_FMT:
                size = struct.calcsize(_SCALAR_FMT[etype])
                c.need(n * size, 'kv[%s] array data' % key)
                arr = np.frombuffer(self._buf, dtype=np.dtype(_SCALAR_FMT[etype]), count=n, offset=c.pos)
                if etype == BOOL:
                    if n and arr.max() > 1:
                        c.fail('kv[%s]' % key, 'bool array element not 0 or 1')
                    arr = arr.astype(bool)
                c.pos += n * size
                return arr.copy(), (ARRAY, etype)
            if etype == STRING:
                if n * 8 > len(self._buf) - c.pos:
                    c.fail('kv[%s] array count' % key, 'count %d impossible for the file size' % n)
                return [c.string('kv[%s][%d]' % (key, i)) for i in range(n)], (ARRAY, etype)
            c.fail('kv[%s] array type' % key, 'unknown element type %d' % etype, epos)
        c.fail('kv[%s].type' % key, 'unknown value type %d' % vtype, c.pos - 4)

    # -- tensor access --
    def raw(self, name):
        """The tensor's bytes (memoryview, no copy)."""
        t = self._info(name)
        return memoryview(self._buf)[t.abs_offset:t.abs_offset + t.nbytes]

    def _info(self, name):
        if name not in self.by_name:
            raise GGUFError('%s: no tensor named %r' % (self.path, name))
        return self.by_name[name]

    def tensor(self, name):
        """Dequantized float32 array, numpy shape = ne reversed."""
        t = self._info(name)
        return dequantize(self.raw(name), t.type, t.ne)

    def get(self, key, default=None):
        return self.kv.get(key, default)


# --- dequantization ----------------------------------------------------------------------------
def f16_bits_to_f32(u16):
    return np.asarray(u16, dtype=np.uint16).view(np.float16).astype(np.float32)


def dequantize(buf, ggml_type, ne):
    """Decode ``buf`` (bytes-like) holding a tensor of ``ggml_type`` and dims ``ne``."""
    nbytes = tensor_nbytes(ggml_type, ne)
    b = np.frombuffer(buf, dtype=np.uint8, count=nbytes)
    n = int(np.prod(ne, dtype=np.int64))
    shape = tuple(int(d) for d in reversed(ne))
    if ggml_type == F32:
        out = b.view('<f4').astype(np.float32)
    elif ggml_type == F16:
        out = b.view('<f2').astype(np.float32)
    elif ggml_type == BF16:
        out = (b.view('<u2').astype(np.uint32) << 16).view(np.float32)
    elif ggml_type == Q8_0:
        blocks = b.reshape(-1, 34)
        d = f16_bits_to_f32(blocks[:, :2].copy().view('<u2')[:, 0])
        out = (blocks[:, 2:].view(np.int8).astype(np.float32) * d[:, None]).reshape(-1)
    elif ggml_type == I2_S:
        codes = i2s_codes(b, n)
        scale = b[n // 4:n // 4 + 4].view('<f4')[0]
        out = _TERNARY_F32[codes] * np.float32(scale)
    elif ggml_type == TQ2_0:
        codes, d = tq2_0_codes(b)
        out = ((codes.astype(np.float32) - 1.0) * d[:, None]).reshape(-1)
    elif ggml_type == TQ1_0:
        codes, d = tq1_0_codes(b)
        out = ((codes.astype(np.float32) - 1.0) * d[:, None]).reshape(-1)
    else:
        raise GGUFError('cannot dequantize type %d' % ggml_type)
    return out.astype(np.float32, copy=False).reshape(shape)


_TERNARY_F32 = np.array([-1.0, 0.0, 1.0, 0.0], dtype=np.float32)   # code 3 is unused -> 0
_TERNARY_I8 = np.array([-1, 0, 1, 0], dtype=np.int8)


def i2s_codes(b, n):
    """2-bit codes (0..3) of an I2_S tensor of n elements, flat row-major.

    Block i of 128 elements is bytes i*32..i*32+31; element j sits in byte j mod 32 at
    bit shift 6 - 2*(j div 32)."""
    packed = np.frombuffer(b, dtype=np.uint8, count=n // 4).reshape(-1, 1, 32)
    shifts = np.array([6, 4, 2, 0], dtype=np.uint8).reshape(1, 4, 1)
    return ((packed >> shifts) & 3).reshape(-1)


def i2s_ternary(buf, ne):
    """(int8 weights in {-1,0,1} with numpy shape ne reversed, float32 scale)."""
    n = int(np.prod(ne, dtype=np.int64))
    b = np.frombuffer(buf, dtype=np.uint8, count=n // 4 + 32)
    w = _TERNARY_I8[i2s_codes(b, n)].reshape(tuple(reversed([int(x) for x in ne])))
    return w, np.float32(b[n // 4:n // 4 + 4].view('<f4')[0])


def tq2_0_codes(b):
    """(codes [nblocks, 256] uint8 in 0..2, d [nblocks] float32) of TQ2_0 data."""
    blocks = np.frombuffer(b, dtype=np.uint8).reshape(-1, 66)
    qs = blocks[:, :64].reshape(-1, 2, 1, 32)           # [blk, half h, -, m]
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
    codes = ((qs >> shifts) & 3).reshape(-1, 256)      # element h*128 + n*32 + m
    d = f16_bits_to_f32(blocks[:, 64:66].copy().view('<u2')[:, 0])
    return codes, d


_POW3 = np.array([1, 3, 9, 27, 81], dtype=np.uint16)


def _trits(bytes_u8):
    """Five base-3 digits of each byte (first trit most significant): [..., 5]."""
    t = (bytes_u8.astype(np.uint16)[..., None] * _POW3) & 0xFF
    return ((t * 3) >> 8).astype(np.uint8)


def tq1_0_codes(b):
    """(codes [nblocks, 256] uint8 in 0..2, d [nblocks] float32) of TQ1_0 data."""
    blocks = np.frombuffer(b, dtype=np.uint8).reshape(-1, 54)
    nb = blocks.shape[0]
    codes = np.empty((nb, 256), dtype=np.uint8)
    # qs[0..31]: byte m holds x[m + n*32], n = 0..4 -> elements 0..159
    codes[:, :160] = _trits(blocks[:, :32]).transpose(0, 2, 1).reshape(nb, 160)
    # qs[32..47]: byte 32+m holds x[160 + m + n*16]
    codes[:, 160:240] = _trits(blocks[:, 32:48]).transpose(0, 2, 1).reshape(nb, 80)
    # qh[0..3]: byte j holds x[240 + j + m*4], m = 0..3
    codes[:, 240:] = _trits(blocks[:, 48:52])[:, :, :4].transpose(0, 2, 1).reshape(nb, 16)
    d = f16_bits_to_f32(blocks[:, 52:54].copy().view('<u2')[:, 0])
    return codes, d


def ternary_codes(buf, ggml_type, ne):
    """Weights of a ternary tensor as (int8 w in {-1,0,1} [rows, K], scales) where scales is a
    float32 scalar (I2_S) or an array [rows, K/256] of f16-decoded block scales (TQ*)."""
    if ggml_type == I2_S:
        return i2s_ternary(buf, ne)
    nbytes = tensor_nbytes(ggml_type, ne)
    b = np.frombuffer(buf, dtype=np.uint8, count=nbytes)
    codes, d = (tq2_0_codes if ggml_type == TQ2_0 else tq1_0_codes)(b)
    rows, k = int(np.prod(ne[1:], dtype=np.int64)), int(ne[0])
    w = codes.astype(np.int8) - 1
    return w.reshape(rows, k), d.reshape(rows, k // 256)


# --- quantizers (fixtures) ---------------------------------------------------------------------
def quantize_i2s(w):
    """bitnet.cpp's I2_S quantizer: scale = max|w| (float32), codes from signs with |w| < 1e-6
    -> 0, x86 128-element block packing, f32 scale, then 28 zero pad bytes."""
    w = np.ascontiguousarray(w, dtype=np.float32).reshape(-1)
    if w.size % 128:
        raise GGUFError('I2_S needs a multiple of 128 elements, got %d' % w.size)
    scale = np.float32(np.max(np.abs(w))) if w.size else np.float32(0)
    codes = np.where(np.abs(w) < 1e-6, 1, np.where(w > 0, 2, 0)).astype(np.uint8)
    c = codes.reshape(-1, 4, 32)                       # [block, j div 32, j mod 32]
    packed = (c[:, 0] << 6) | (c[:, 1] << 4) | (c[:, 2] << 2) | c[:, 3]
    return packed.astype(np.uint8).tobytes() + struct.pack('<f', scale) + bytes(28)


def _block_absmax_codes(w):
    """llama.cpp TQ quantizer core: d = max|x| per 256-block, code = lroundf(x * (1/d)) + 1."""
    x = np.ascontiguousarray(w, dtype=np.float32).reshape(-1, 256)
    d = np.max(np.abs(x), axis=1)
    with np.errstate(divide='ignore'):
        idv = np.where(d != 0, np.float32(1.0) / np.where(d != 0, d, 1), 0).astype(np.float32)
    v = (x * idv[:, None]).astype(np.float32)
    q = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int64) + 1   # lroundf
    return q.astype(np.uint8), d.astype(np.float16)


def quantize_tq2_0(w):
    """llama.cpp's quantize_row_tq2_0_ref: 66-byte blocks, codes 2 bits LSB-first."""
    codes, d = _block_absmax_codes(w)
    nb = codes.shape[0]
    c = codes.reshape(nb, 2, 4, 32).astype(np.uint8)   # [blk, h, n, m]
    qs = (c[:, :, 0] | (c[:, :, 1] << 2) | (c[:, :, 2] << 4) | (c[:, :, 3] << 6)).reshape(nb, 64)
    out = np.empty((nb, 66), dtype=np.uint8)
    out[:, :64] = qs
    out[:, 64:] = d.view(np.uint8).reshape(nb, 2)
    return out.tobytes()


def _pack_trits(c):
    """c [..., 5] trits, first most significant -> byte ceil(q*256/243)."""
    q = np.zeros(c.shape[:-1], dtype=np.uint32)
    for n in range(5):
        q = q * 3 + c[..., n]
    return ((q * 256 + 242) // 243).astype(np.uint8)


def quantize_tq1_0(w):
    """llama.cpp's quantize_row_tq1_0_ref: 54-byte blocks (qs[48], qh[4], f16 d)."""
    codes, d = _block_absmax_codes(w)
    nb = codes.shape[0]
    out = np.empty((nb, 54), dtype=np.uint8)
    out[:, :32] = _pack_trits(codes[:, :160].reshape(nb, 5, 32).transpose(0, 2, 1))
    out[:, 32:48] = _pack_trits(codes[:, 160:240].reshape(nb, 5, 16).transpose(0, 2, 1))
    qh = np.zeros((nb, 4, 5), dtype=np.uint8)
    qh[:, :, :4] = codes[:, 240:].reshape(nb, 4, 4).transpose(0, 2, 1)
    out[:, 48:52] = _pack_trits(qh)
    out[:, 52:] = d.view(np.uint8).reshape(nb, 2)
    return out.tobytes()


def quantize_q8_0(w):
    """ggml's quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d) (half away from zero)."""
    x = np.ascontiguousarray(w, dtype=np.float32).reshape(-1, 32)
    amax = np.max(np.abs(x), axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide='ignore'):
        idv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    v = (x * idv[:, None]).astype(np.float32)
    q = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int8)
    out = np.empty((x.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def quantize(w, ggml_type):
    """Encode float array ``w`` (numpy shape = ne reversed) as ``ggml_type`` bytes."""
    w = np.asarray(w)
    if ggml_type == F32:
        return np.ascontiguousarray(w, dtype='<f4').tobytes()
    if ggml_type == F16:
        return np.ascontiguousarray(w, dtype='<f2').tobytes()
    if ggml_type == BF16:
        u = np.ascontiguousarray(w, dtype=np.float32).view(np.uint32)
        # round to nearest even, as ggml's fp32_to_bf16 (NaN kept quiet)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        r = np.where((u & 0x7FFFFFFF) > 0x7F800000, ((u >> 16) | 64).astype(np.uint16), r)
        return r.astype('<u2').tobytes()
    if ggml_type == Q8_0:
        return quantize_q8_0(w)
    if ggml_type == I2_S:
        return quantize_i2s(w)
    if ggml_type == TQ2_0:
        return quantize_tq2_0(w)
    if ggml_type == TQ1_0:
        return quantize_tq1_0(w)
    raise GGUFError('cannot quantize to type %d' % ggml_type)


# --- writer --------------------------------------------------------------------------------------
def _pack_value(vtype, value):
    if vtype in _SCALAR_FMT:
        return struct.pack(_SCALAR_FMT[vtype], int(value) if vtype == BOOL else value)
    if vtype == STRING:
        raw = value.encode('utf-8')
        return struct.pack('<Q', len(raw)) + raw
    raise GGUFError('cannot pack value type %r' % (vtype,))


def write_gguf(path, kvs, tensors, version=3, alignment=None):
    """Write a GGUF file.

    kvs: list of (key, vtype, value); vtype is a value type or (ARRAY, element type).
    tensors: list of (name, ggml_type, ne, data) where data is bytes (already encoded) or a
    float array (encoded with ``quantize``; numpy shape must be ne reversed).
    Tensors are packed in order, each padded to the alignment (general.alignment if given
    among kvs, else 32)."""
    out = bytearray(b'GGUF')
    out += struct.pack('<IqQ', version, len(tensors), len(kvs))
    align = alignment or DEFAULT_ALIGNMENT
    for key, vtype, value in kvs:
        if key == 'general.alignment' and alignment is None:
            align = value
        out += _pack_value(STRING, key)
        if isinstance(vtype, tuple):
            _, etype = vtype
            out += struct.pack('<iiQ', ARRAY, etype, len(value))
            for v in value:
                out += _pack_value(etype, v)
        else:
            out += struct.pack('<i', vtype) + _pack_value(vtype, value)
    blobs, off = [], 0
    for name, ttype, ne, data in tensors:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            data = quantize(np.asarray(data).reshape(tuple(reversed(ne))), ttype)
        if len(data) != tensor_nbytes(ttype, ne):
            raise GGUFError('tensor %r: %d bytes given, type needs %d' % (name, len(data), tensor_nbytes(ttype, ne)))
        out += _pack_value(STRING, name) + struct.pack('<I', len(ne))
        out += struct.pack('<%dq' % len(ne), *ne) + struct.pack('<iQ', ttype, off)
        blobs.append(data)
        off += -(-len(data) // align) * align
    out += bytes(-len(out) % align)
    for data in blobs:
        out += data
        out += bytes(-len(data) % align)
    tmp = str(path) + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(out)
    os.replace(tmp, path)
