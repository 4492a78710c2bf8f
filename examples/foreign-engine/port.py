#!/usr/bin/python3
"""port.py — a tiny BitNet b1.58 "port" in numpy, standing for *your* engine: it reads a GGUF
(F32/F16 and I2_S tensors), generates greedily, prints what it generated, and writes every tap it
computes through the bitparity Python writer. Switch on a classic porting bug to see bitparity name it:

  --bug silu              SiLU(gate)·up where BitNet b1.58 needs relu(gate)²·up
  --bug gamma-inv-sqrt-h  the block norms' weights divided by sqrt(H) when loading
  --bug layernorm         LayerNorm (mean subtracted) as the block norms instead of RMSNorm
  --bug no-subnorm        the two sub-norms left out (a LLaMA block)
  --bug rope-normal       RoPE rotating pairs (2i, 2i+1) where BitNet rotates (i, i+D/2)
  --bug head-order        Q/K weights joined from two shards in the wrong order

    PYTHONPATH=python python3 examples/foreign-engine/port.py -m tiny.gguf --tokens 1,2,3 -n 8 -o port.npz

It is written for reading, not speed, and shares no code with bitparity's engine or reference.
"""
import argparse
import struct
import sys

import numpy as np

import bitparity

BUGS = ('silu', 'gamma-inv-sqrt-h', 'layernorm', 'no-subnorm', 'rope-normal', 'head-order')


# --- a minimal GGUF reader (v2/v3, little-endian) -----------------------------------------------
def read_gguf(path):
    """(metadata dict, {name: (ggml type, ne, bytes)}) of a GGUF file."""
    buf = open(path, 'rb').read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take('<Q')
        pos += n
        return buf[pos - n:pos].decode('utf-8', 'replace')

    scalars = {0: '<B', 1: '<b', 2: '<H', 3: '<h', 4: '<I', 5: '<i', 6: '<f', 7: '<?', 10: '<Q', 11: '<q', 12: '<d'}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            item, n = take('<I'), take('<Q')
            return [value(item) for _ in range(n)]
        return take(scalars[t])

    if buf[:4] != b'GGUF':
        sys.exit('%s: not a GGUF file' % path)
    pos = 4
    take('<I')
    n_tensors, n_kv = take('<Q'), take('<Q')
    meta = {}
    for _ in range(n_kv):
        key = string()
        meta[key] = value(take('<I'))
    infos = []
    for _ in range(n_tensors):
        name = string()
        ne = [take('<Q') for _ in range(take('<I'))]
        infos.append((name, take('<I'), ne, take('<Q')))
    align = meta.get('general.alignment', 32)
    data = (pos + align - 1) // align * align
    tensors = {}
    for name, t, ne, off in infos:
        n = int(np.prod(ne))
        size = {0: 4 * n, 1: 2 * n, 36: n // 4 + 32}.get(t)
        if size is None:
            sys.exit('%s: %s has type %d; this port reads F32, F16 and I2_S' % (path, name, t))
        tensors[name] = (t, ne, buf[data + off:data + off + size])
    return meta, tensors


def weight(tensors, name):
    """F32/F16 -> float32 [rows, cols]; I2_S -> (ternary int8 [rows, cols], scale)."""
    t, ne, raw = tensors[name]
    shape = tuple(reversed(ne))
    if t == 0:
        return np.frombuffer(raw, '<f4').reshape(shape).astype(np.float32)
    if t == 1:
        return np.frombuffer(raw, '<f2').reshape(shape).astype(np.float32)
    n = int(np.prod(ne))
    # I2_S: blocks of 128 values in 32 bytes; value j of a block is byte j % 32, bits 6 - 2*(j // 32)
    packed = np.frombuffer(raw, np.uint8, n // 4).reshape(-1, 1, 32)
    codes = (packed >> np.array([6, 4, 2, 0], np.uint8).reshape(1, 4, 1)) & 3
    ternary = np.array([-1, 0, 1, 0], np.int8)[codes.reshape(-1)].reshape(shape)
    return ternary, np.frombuffer(raw, '<f4', 1, n // 4)[0]


# --- the forward -------------------------------------------------------------------------------
def bitlinear(x, w):
    """x [T, K] float32 times a projection: int8 per-token activations for ternary weights."""
    if not isinstance(w, tuple):
        return x @ w.T
    ternary, scale = w
    s = np.float32(127) / np.maximum(np.abs(x).max(axis=1, keepdims=True), np.float32(1e-5))
    q = np.clip(np.rint(x * s), -128, 127)
    return (q @ ternary.T.astype(np.float32)) / s * scale


class Port:
    def __init__(self, path, bugs):
        self.meta, tensors = read_gguf(path)
        arch = self.meta['general.architecture']
        hp = lambda k, d=None: self.meta.get('%s.%s' % (arch, k), d)  # noqa: E731
        self.H, self.n_layer = hp('embedding_length'), hp('block_count')
        self.nh = hp('attention.head_count')
        self.nkv = hp('attention.head_count_kv', self.nh)
        self.D, self.eps, self.base = self.H // self.nh, np.float32(hp('attention.layer_norm_rms_epsilon')), \
            hp('rope.freq_base', 10000.0)
        self.bugs = set(bugs)
        self.embd = weight(tensors, 'token_embd.weight')
        self.out_norm = weight(tensors, 'output_norm.weight')
        gamma = np.float32(1 / np.sqrt(self.H)) if 'gamma-inv-sqrt-h' in bugs else np.float32(1)
        self.layers = []
        for i in range(self.n_layer):
            L = {k: weight(tensors, 'blk.%d.%s.weight' % (i, k)) for k in (
                'attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up',
                'ffn_down', 'attn_sub_norm', 'ffn_sub_norm')}
            L['attn_norm'], L['ffn_norm'] = L['attn_norm'] * gamma, L['ffn_norm'] * gamma
            if 'head-order' in bugs:
                for k in ('attn_q', 'attn_k'):
                    w, s = L[k]
                    L[k] = (np.concatenate((w[len(w) // 2:], w[:len(w) // 2])), s)
            self.layers.append(L)
        self.cache = [[np.zeros((0, self.nkv, self.D), np.float32)] * 2 for _ in range(self.n_layer)]
        self.n_past = 0

    def norm(self, x, g, block=False):
        if block and 'layernorm' in self.bugs:
            x = x - x.mean(axis=1, keepdims=True)
        return x / np.sqrt((x * x).mean(axis=1, keepdims=True) + self.eps) * g

    def rope(self, x, pos):
        """x [T, heads, D] rotated at positions pos."""
        half = self.D // 2
        ang = pos[:, None] * self.base ** (-np.arange(half) * 2.0 / self.D)
        c, s = np.cos(ang)[:, None, :].astype(np.float32), np.sin(ang)[:, None, :].astype(np.float32)
        a, b = (x[..., 0::2], x[..., 1::2]) if 'rope-normal' in self.bugs else (x[..., :half], x[..., half:])
        out = np.empty_like(x)
        ia, ib = (slice(0, None, 2), slice(1, None, 2)) if 'rope-normal' in self.bugs else \
            (slice(0, half), slice(half, None))
        out[..., ia], out[..., ib] = a * c - b * s, a * s + b * c
        return out

    def forward(self, tokens, tap):
        """Evaluates tokens at positions n_past..; tap(name, array) sees every intermediate."""
        T, nh, nkv, D = len(tokens), self.nh, self.nkv, self.D
        pos = np.arange(self.n_past, self.n_past + T, dtype=np.float64)
        x = self.embd[tokens]
        tap('token_embd', x)
        for i, L in enumerate(self.layers):
            b = 'blk.%d.' % i

            def sub_norm_then(v, sub, proj, out):
                """BitNet's sub-norm (left out by the no-subnorm bug), then the output projection."""
                if 'no-subnorm' not in self.bugs:
                    v = self.norm(v, L[sub])
                    tap(b + sub, v)
                y = bitlinear(v, L[proj])
                tap(b + out, y)
                return y
            h = self.norm(x, L['attn_norm'], block=True)
            tap(b + 'attn_norm', h)
            q, k, v = (bitlinear(h, L[w]) for w in ('attn_q', 'attn_k', 'attn_v'))
            tap(b + 'attn_q', q), tap(b + 'attn_k', k), tap(b + 'attn_v', v)
            q, k = self.rope(q.reshape(T, nh, D), pos), self.rope(k.reshape(T, nkv, D), pos)
            tap(b + 'attn_q_rope', q.reshape(T, -1)), tap(b + 'attn_k_rope', k.reshape(T, -1))
            K = self.cache[i][0] = np.concatenate((self.cache[i][0], k))
            V = self.cache[i][1] = np.concatenate((self.cache[i][1], v.reshape(T, nkv, D)))
            ctx = np.empty((T, nh, D), np.float32)
            for hd in range(nh):
                kv = hd // (nh // nkv)
                sc = q[:, hd] @ K[:, kv].T / np.float32(np.sqrt(D))
                sc[np.arange(len(K))[None, :] > (self.n_past + np.arange(T))[:, None]] = -np.inf
                p = np.exp(sc - sc.max(axis=1, keepdims=True))
                ctx[:, hd] = (p / p.sum(axis=1, keepdims=True)) @ V[:, kv]
            ctx = ctx.reshape(T, nh * D)
            tap(b + 'attn_ctx', ctx)
            x = x + sub_norm_then(ctx, 'attn_sub_norm', 'attn_output', 'attn_out')
            tap(b + 'ffn_inp', x)
            h = self.norm(x, L['ffn_norm'], block=True)
            tap(b + 'ffn_norm', h)
            g, u = bitlinear(h, L['ffn_gate']), bitlinear(h, L['ffn_up'])
            tap(b + 'ffn_gate', g), tap(b + 'ffn_up', u)
            a = (g / (1 + np.exp(-g)) if 'silu' in self.bugs else np.maximum(g, 0) ** 2) * u
            tap(b + 'ffn_act', a)
            x = x + sub_norm_then(a, 'ffn_sub_norm', 'ffn_down', 'ffn_out')
            tap(b + 'out', x)
        h = self.norm(x, self.out_norm)
        tap('output_norm', h)
        logits = h @ self.embd.T                      # tied embeddings, as BitNet b1.58
        tap('logits', logits)
        self.n_past += T
        return logits


def main():
    ap = argparse.ArgumentParser(description='a numpy BitNet port with switchable porting bugs')
    ap.add_argument('-m', '--model', required=True)
    ap.add_argument('--tokens', required=True, help='prompt token ids, comma-separated')
    ap.add_argument('-n', type=int, default=8, help='tokens to generate (greedy)')
    ap.add_argument('--bug', action='append', default=[], choices=BUGS)
    ap.add_argument('-o', '--output', required=True, help='the trace to write')
    a = ap.parse_args()
    port = Port(a.model, a.bug)
    model_info = {'path': a.model, 'sha256': bitparity.sha256_file(a.model),
                  'arch': port.meta['general.architecture'], 'weight_type': 'i2_s'}
    tokens, out = [int(t) for t in a.tokens.split(',')], []
    with bitparity.TraceWriter(a.output, {'name': 'numpy-port', 'version': '1'}, model_info,
                               {'numerics': 'f32'}) as w:
        for _ in range(a.n):
            w.begin_evaluation(tokens, port.n_past)
            logits = port.forward(tokens, w.write_tap)
            tokens = [int(np.argmax(logits[-1]))]
            out += tokens
        w.close(greedy_tokens=out)
    vocab = port.meta.get('tokenizer.ggml.tokens')
    text = ''.join(vocab[t] for t in out).replace('\u0120', ' ').replace('\u010a', '\n') if vocab else ''
    print('generated ids: %s' % ' '.join(map(str, out)))
    print('generated text: %r' % text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
