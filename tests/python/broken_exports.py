#!/usr/bin/python3
"""broken_exports.py — writes broken copies of a GGUF model, one classic export bug each.

The tests of `bitparity lint`, `bitparity diff` and the weight-aware hints make their broken
exports with this generator from the fixture models (never from files they ship), so every
kind of bug can be put into any layer or tensor:

    broken_exports.py --list
    broken_exports.py MODEL.gguf KIND OUT.gguf [--tensor NAME] [--layer N] [--which attn|ffn]
                      [--value X] [--key KEY]

Kinds (what a converter gets wrong; the tensor/layer options choose where):
  norm-scale          every norm weight (or --tensor's) multiplied by --value (default sqrt(H))
  bitnet-no-act       arch renamed to `bitnet` and `<arch>.hidden_activation` left out (SiLU runs)
  subnorm-ones        layer --layer's --which (attn|ffn) sub-norm weights replaced by ones
  qk-permute          attn_q/attn_k rows of every layer (or --layer's) permuted within each head
                      the way HF's LLaMA converter `permute` does (NEOX halves -> interleaved pairs)
  sign-flip           --tensor's weights negated
  transpose           --tensor's weights stored transposed: the data of W^T written under W's shape
                      (a square tensor is plainly transposed, a non-square one mis-strided)
  i2s-pack-linear     I2_S codes of --tensor (or every I2_S tensor) packed 4 consecutive per byte
                      (bits 7..6 first) instead of bitnet.cpp's 128-element interleave
  i2s-scale           --tensor's I2_S scale set to --value (0, -1, nan, inf, ...)
  i2s-code3           a few zero codes of --tensor replaced by the unused code 3
  drop-key            metadata key --key removed (e.g. tokenizer.ggml.pre)
  vocab-trim          the last token dropped from the vocabulary arrays (vocab < embedding rows)
  rope-dim            <arch>.rope.dimension_count set to --value
  norm-quantize       --tensor (a norm weight) stored as Q8_0
  extra-tensor        a tensor --key (name) the architecture does not use added (F32, 32 values)

Writes OUT atomically (reference/gguf.py's writer). Exit 0 written, 2 on bad arguments.
"""

import argparse
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..'))

from reference import gguf  # noqa: E402


class Model:
    """A GGUF file as editable lists: kvs [(key, vtype, value)], tensors [(name, type, ne, bytes)]."""

    def __init__(self, path):
        f = gguf.GGUFFile(path)
        self.kvs = [(k, f.kv_types[k], f.kv[k]) for k in f.kv]
        self.tensors = [(t.name, t.type, t.ne, bytes(f.raw(t.name))) for t in f.tensors]
        self.arch = f.kv['general.architecture']

    def kv(self, suffix):
        for k, _, v in self.kvs:
            if k == '%s.%s' % (self.arch, suffix):
                return v
        raise KeyError(suffix)

    def index(self, name):
        for i, t in enumerate(self.tensors):
            if t[0] == name:
                return i
        raise SystemExit('broken_exports: no tensor %r in the model' % name)

    def dense(self, name):
        """float32 values of a tensor, numpy shape = ne reversed."""
        _, ttype, ne, data = self.tensors[self.index(name)]
        return gguf.dequantize(data, ttype, ne)

    def put(self, name, values, ttype=None, ne=None):
        """Re-encodes `values` in the tensor's type (or ttype) and shape (or ne)."""
        i = self.index(name)
        _, old_type, old_ne, _ = self.tensors[i]
        ttype = old_type if ttype is None else ttype
        ne = old_ne if ne is None else tuple(ne)
        data = gguf.quantize(np.asarray(values, dtype=np.float32).reshape(tuple(reversed(ne))), ttype)
        self.tensors[i] = (name, ttype, ne, data)

    def write(self, path):
        gguf.write_gguf(path, self.kvs, self.tensors)


def _layers(m, layer):
    n = int(m.kv('block_count'))
    return range(n) if layer is None else [layer]


def _is_norm(name):
    return name.endswith('norm.weight')


def norm_scale(m, a):
    h = int(m.kv('embedding_length'))
    factor = a.value if a.value is not None else math.sqrt(h)
    names = [a.tensor] if a.tensor else [t[0] for t in m.tensors if _is_norm(t[0])]
    for n in names:
        m.put(n, m.dense(n) * np.float32(factor))


def bitnet_no_act(m, a):
    old = m.arch
    kvs = []
    for k, t, v in m.kvs:
        if k == '%s.hidden_activation' % old:
            continue
        if k == 'general.architecture':
            v = 'bitnet'
        elif k.startswith(old + '.'):
            k = 'bitnet.' + k[len(old) + 1:]
        kvs.append((k, t, v))
    m.kvs, m.arch = kvs, 'bitnet'


def subnorm_ones(m, a):
    n = 'blk.%d.%s_sub_norm.weight' % (a.layer or 0, a.which)
    m.put(n, np.ones_like(m.dense(n)))


def hf_permute(w, n_head):
    """HF's convert_llama_weights_to_hf `permute`: rows of each head reordered from the NEOX
    halves [x0..x(d/2-1) | y0..] to interleaved pairs [x0 y0 x1 y1 ...]."""
    rows, cols = w.shape
    d = rows // n_head
    return w.reshape(n_head, 2, d // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def qk_permute(m, a):
    heads, heads_kv = int(m.kv('attention.head_count')), int(m.kv('attention.head_count_kv'))
    for layer in _layers(m, a.layer):
        for proj, nh in (('attn_q', heads), ('attn_k', heads_kv)):
            n = 'blk.%d.%s.weight' % (layer, proj)
            m.put(n, hf_permute(m.dense(n), nh))


def sign_flip(m, a):
    m.put(a.tensor, -m.dense(a.tensor))


def transpose(m, a):
    w = m.dense(a.tensor)
    m.put(a.tensor, np.ascontiguousarray(w.T).reshape(w.shape))


def _i2s_tensors(m, a):
    names = [a.tensor] if a.tensor else [t[0] for t in m.tensors if t[1] == gguf.I2_S]
    for n in names:
        if m.tensors[m.index(n)][1] != gguf.I2_S:
            raise SystemExit('broken_exports: %s is not I2_S' % n)
    return names


def i2s_pack_linear(m, a):
    for n in _i2s_tensors(m, a):
        i = m.index(n)
        name, ttype, ne, data = m.tensors[i]
        count = int(np.prod(ne))
        codes = gguf.i2s_codes(np.frombuffer(data, dtype=np.uint8), count).reshape(-1, 4)
        packed = (codes[:, 0] << 6) | (codes[:, 1] << 4) | (codes[:, 2] << 2) | codes[:, 3]
        m.tensors[i] = (name, ttype, ne, packed.astype(np.uint8).tobytes() + data[count // 4:])


def i2s_scale(m, a):
    (n,) = _i2s_tensors(m, a) if a.tensor else (None,)
    if n is None or a.value is None:
        raise SystemExit('broken_exports: i2s-scale needs --tensor and --value')
    i = m.index(n)
    name, ttype, ne, data = m.tensors[i]
    at = int(np.prod(ne)) // 4
    m.tensors[i] = (name, ttype, ne, data[:at] + np.float32(a.value).tobytes() + data[at + 4:])


def i2s_code3(m, a):
    (n,) = _i2s_tensors(m, a) if a.tensor else (None,)
    if n is None:
        raise SystemExit('broken_exports: i2s-code3 needs --tensor')
    i = m.index(n)
    name, ttype, ne, data = m.tensors[i]
    b = bytearray(data)
    # every 7th byte: the first 2-bit field holding a zero (code 1) becomes 3
    for off in range(0, int(np.prod(ne)) // 4, 7):
        for shift in (6, 4, 2, 0):
            if (b[off] >> shift) & 3 == 1:
                b[off] |= 3 << shift
                break
    m.tensors[i] = (name, ttype, ne, bytes(b))


def drop_key(m, a):
    if not any(k == a.key for k, _, _ in m.kvs):
        raise SystemExit('broken_exports: no key %r' % a.key)
    m.kvs = [kv for kv in m.kvs if kv[0] != a.key]


def vocab_trim(m, a):
    kvs = []
    for k, t, v in m.kvs:
        if k in ('tokenizer.ggml.tokens', 'tokenizer.ggml.token_type', 'tokenizer.ggml.scores'):
            v = v[:-1]
        elif k == '%s.vocab_size' % m.arch:
            v = v - 1
        kvs.append((k, t, v))
    m.kvs = kvs


def rope_dim(m, a):
    key = '%s.rope.dimension_count' % m.arch
    if a.value is None:
        raise SystemExit('broken_exports: rope-dim needs --value')
    present = any(k == key for k, _, _ in m.kvs)
    m.kvs = [(k, t, int(a.value) if k == key else v) for k, t, v in m.kvs]
    if not present:
        m.kvs.append((key, gguf.UINT32, int(a.value)))


def norm_quantize(m, a):
    if not a.tensor or not _is_norm(a.tensor):
        raise SystemExit('broken_exports: norm-quantize needs --tensor NAME.norm.weight')
    m.put(a.tensor, m.dense(a.tensor), ttype=gguf.Q8_0)


def extra_tensor(m, a):
    if not a.key:
        raise SystemExit('broken_exports: extra-tensor needs --key NAME')
    m.tensors.append((a.key, gguf.F32, (32,), np.arange(32, dtype='<f4').tobytes()))


KINDS = {
    'norm-scale': norm_scale,
    'bitnet-no-act': bitnet_no_act,
    'subnorm-ones': subnorm_ones,
    'qk-permute': qk_permute,
    'sign-flip': sign_flip,
    'transpose': transpose,
    'i2s-pack-linear': i2s_pack_linear,
    'i2s-scale': i2s_scale,
    'i2s-code3': i2s_code3,
    'drop-key': drop_key,
    'vocab-trim': vocab_trim,
    'rope-dim': rope_dim,
    'norm-quantize': norm_quantize,
    'extra-tensor': extra_tensor,
}
NEEDS_TENSOR = ('sign-flip', 'transpose')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--list', action='store_true', help='print the kinds and exit')
    p.add_argument('model', nargs='?')
    p.add_argument('kind', nargs='?')
    p.add_argument('out', nargs='?')
    p.add_argument('--tensor')
    p.add_argument('--layer', type=int)
    p.add_argument('--which', choices=('attn', 'ffn'), default='attn')
    p.add_argument('--value', type=float)
    p.add_argument('--key')
    a = p.parse_args(argv)
    if a.list:
        print('\n'.join(KINDS))
        return 0
    if not (a.model and a.kind and a.out):
        p.error('MODEL KIND OUT are required')
    if a.kind not in KINDS:
        p.error('unknown kind %r (see --list)' % a.kind)
    if a.kind in NEEDS_TENSOR and not a.tensor:
        p.error('%s needs --tensor' % a.kind)
    m = Model(a.model)
    KINDS[a.kind](m, a)
    m.write(a.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
