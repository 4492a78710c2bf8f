"""A small PyTorch BitNet b1.58 with transformers' module layout (BitNetForCausalLM's names), loading
a GGUF's weights, for testing the hooks of bitparity.torch_hooks as a user's port would be tested.

It is written independently of reference/bitnet_ref.py (plain float32 torch, transformers' way:
rotate_half RoPE, an f32 KV cache, torch.softmax) and has switches for the classic porting bugs:

  silu              SiLU(gate)·up where BitNet b1.58 needs relu(gate)²·up
  gamma-inv-sqrt-h  the block norms' weights divided by sqrt(H) by the loader
  layernorm         LayerNorm (mean subtracted) as the block norms instead of RMSNorm
  no-subnorm        a LLaMA-style layer class: the sub-norms are nn.Identity
  rope-normal       RoPE rotating pairs (2i, 2i+1) (Meta's LLaMA code) where BitNet rotates (i, i+D/2)
  head-order        Q/K weights joined from two tensor-parallel shards in the wrong order

    python3 torch_bitnet.py -m MODEL.gguf --tokens 1,2,3 --decode 1 [--bug NAME] -o TRACE.npz
writes the hooks' trace (producer torch-bitnet-test) through bitparity.TraceWriter.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'python'))
sys.path.insert(0, os.path.join(ROOT, 'reference'))
import bitparity  # noqa: E402
import gguf  # noqa: E402  (the reference's GGUF reader: only to get at the file's tensors)
from bitparity.torch_hooks import TRANSFORMERS_BITNET, TapRecorder  # noqa: E402

BUGS = ('silu', 'gamma-inv-sqrt-h', 'layernorm', 'no-subnorm', 'rope-normal', 'head-order')


class Config:
    def __init__(self, g):
        arch = g.get('general.architecture')
        if arch not in ('bitnet-b1.58', 'bitnet', 'bitnet-25'):
            raise SystemExit('%s: architecture %s is not a BitNet' % (g.path, arch))
        hp = lambda k, d=None: g.get('%s.%s' % (arch, k), d)  # noqa: E731
        self.hidden_size = int(hp('embedding_length'))
        self.num_hidden_layers = int(hp('block_count'))
        self.intermediate_size = int(hp('feed_forward_length'))
        self.num_attention_heads = int(hp('attention.head_count'))
        self.num_key_value_heads = int(hp('attention.head_count_kv', self.num_attention_heads))
        self.head_dim = self.hidden_size // self.num_attention_heads
        self.rope_theta = float(hp('rope.freq_base', 10000.0))
        self.rms_norm_eps = float(hp('attention.layer_norm_rms_epsilon'))
        self.hidden_act = hp('hidden_activation', 'relu2' if arch != 'bitnet' else 'silu')


class AutoBitLinear(nn.Module):
    """A ternary projection: int8 per-token activation quantization (127/absmax), integer matmul,
    then the two scales; float weights (F32/F16) run as a plain matmul."""

    def __init__(self, g, name):
        super().__init__()
        t = g.by_name[name]
        if t.type == gguf.I2_S:
            w, scale = gguf.i2s_ternary(g.raw(name), t.ne)
            self.register_buffer('weight', torch.from_numpy(w.astype(np.float32)))
            self.weight_scale = float(scale)
        elif t.type in (gguf.F32, gguf.F16, gguf.BF16):
            self.register_buffer('weight', torch.from_numpy(g.tensor(name).astype(np.float32)))
            self.weight_scale = None
        else:
            raise SystemExit('%s: %s type %s not supported by this test model' % (g.path, name, t.type))

    def forward(self, x):
        if self.weight_scale is None:
            return x @ self.weight.T
        s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
        q = torch.clamp(torch.round(x * s), -128, 127)
        return (q @ self.weight.T) / s * self.weight_scale   # integer sums: exact in float32


class BitNetRMSNorm(nn.Module):
    def __init__(self, weight, eps, layernorm=False):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(weight.astype(np.float32)), requires_grad=False)
        self.eps, self.layernorm = eps, layernorm

    def forward(self, x):
        if self.layernorm:
            x = x - x.mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    x1, x2 = x[..., :x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, interleaved=False):
    """transformers' RoPE: pairs (i, i+D/2); q, k [1, heads, T, D]. interleaved: Meta's LLaMA code,
    pairs (2i, 2i+1) (the 'rope-normal' bug on a BitNet)."""
    if not interleaved:
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin

    def rot(x):
        c, s = cos[..., :x.shape[-1] // 2], sin[..., :x.shape[-1] // 2]
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2)
    return rot(q), rot(k)


class BitNetAttention(nn.Module):
    def __init__(self, g, cfg, i, bugs):
        super().__init__()
        p = 'blk.%d.' % i
        self.cfg, self.bugs = cfg, bugs
        self.q_proj, self.k_proj = AutoBitLinear(g, p + 'attn_q.weight'), AutoBitLinear(g, p + 'attn_k.weight')
        self.v_proj, self.o_proj = AutoBitLinear(g, p + 'attn_v.weight'), AutoBitLinear(g, p + 'attn_output.weight')
        if 'head-order' in bugs:   # shards [0:n/2], [n/2:n] of the output rows concatenated swapped
            for proj in (self.q_proj, self.k_proj):
                w = proj.weight
                proj.weight = torch.cat((w[w.shape[0] // 2:], w[:w.shape[0] // 2]))
        self.attn_sub_norm = (nn.Identity() if 'no-subnorm' in bugs
                              else BitNetRMSNorm(g.tensor(p + 'attn_sub_norm.weight'), cfg.rms_norm_eps))

    def forward(self, x, cos, sin, cache):
        B, T, _ = x.shape
        nh, nkv, D = self.cfg.num_attention_heads, self.cfg.num_key_value_heads, self.cfg.head_dim
        q = self.q_proj(x).view(B, T, nh, D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, nkv, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, nkv, D).transpose(1, 2)
        # looked up at call time, as transformers does: TapRecorder.wrap_rotary replaces it
        q, k = sys.modules[__name__].apply_rotary_pos_emb(q, k, cos, sin, interleaved='rope-normal' in self.bugs)
        if cache:
            k, v = torch.cat((cache[0], k), dim=2), torch.cat((cache[1], v), dim=2)
        cache[:] = [k, v]
        k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)
        n_kv = k.shape[2]
        scores = q @ k.transpose(2, 3) / math.sqrt(D)
        mask = torch.arange(n_kv)[None, :] > (n_kv - T + torch.arange(T))[:, None]
        probs = torch.softmax(scores.masked_fill(mask, float('-inf')), dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, nh * D)
        return self.o_proj(self.attn_sub_norm(ctx))


class BitNetMLP(nn.Module):
    def __init__(self, g, cfg, i, bugs):
        super().__init__()
        p = 'blk.%d.' % i
        self.gate_proj, self.up_proj = AutoBitLinear(g, p + 'ffn_gate.weight'), AutoBitLinear(g, p + 'ffn_up.weight')
        self.down_proj = AutoBitLinear(g, p + 'ffn_down.weight')
        self.ffn_sub_norm = (nn.Identity() if 'no-subnorm' in bugs
                             else BitNetRMSNorm(g.tensor(p + 'ffn_sub_norm.weight'), cfg.rms_norm_eps))
        silu = cfg.hidden_act == 'silu' or 'silu' in bugs
        self.act_fn = nn.SiLU() if silu else (lambda x: torch.relu(x) ** 2)

    def forward(self, x):
        return self.down_proj(self.ffn_sub_norm(self.act_fn(self.gate_proj(x)) * self.up_proj(x)))


class BitNetDecoderLayer(nn.Module):
    def __init__(self, g, cfg, i, bugs):
        super().__init__()
        p = 'blk.%d.' % i
        gamma = 1.0 / math.sqrt(cfg.hidden_size) if 'gamma-inv-sqrt-h' in bugs else 1.0
        ln = 'layernorm' in bugs
        self.input_layernorm = BitNetRMSNorm(g.tensor(p + 'attn_norm.weight') * gamma, cfg.rms_norm_eps, ln)
        self.self_attn = BitNetAttention(g, cfg, i, bugs)
        self.post_attention_layernorm = BitNetRMSNorm(g.tensor(p + 'ffn_norm.weight') * gamma, cfg.rms_norm_eps, ln)
        self.mlp = BitNetMLP(g, cfg, i, bugs)

    def forward(self, x, cos, sin, cache):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class BitNetModel(nn.Module):
    def __init__(self, g, cfg, bugs):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding.from_pretrained(torch.from_numpy(g.tensor('token_embd.weight')))
        self.layers = nn.ModuleList(BitNetDecoderLayer(g, cfg, i, bugs) for i in range(cfg.num_hidden_layers))
        self.norm = BitNetRMSNorm(g.tensor('output_norm.weight'), cfg.rms_norm_eps)
        D = cfg.head_dim
        self.inv_freq = cfg.rope_theta ** -(torch.arange(0, D, 2, dtype=torch.float64) / D)

    def forward(self, ids, p0, caches):
        pos = torch.arange(p0, p0 + ids.shape[1], dtype=torch.float64)
        ang = torch.outer(pos, self.inv_freq)
        ang = torch.cat((ang, ang), dim=-1)
        cos, sin = ang.cos().float()[None, None], ang.sin().float()[None, None]
        x = self.embed_tokens(ids)
        for layer, cache in zip(self.layers, caches):
            x = layer(x, cos, sin, cache)
        return self.norm(x)


class BitNetForCausalLM(nn.Module):
    """model.* and lm_head (tied to the embeddings, as bitnet.cpp runs BitNet)."""

    def __init__(self, path, bugs=()):
        super().__init__()
        g = gguf.GGUFFile(path)
        unknown = set(bugs) - set(BUGS)
        if unknown:
            raise SystemExit('unknown bug %s (%s)' % (', '.join(sorted(unknown)), ', '.join(BUGS)))
        self.cfg = Config(g)
        self.model = BitNetModel(g, self.cfg, set(bugs))
        self.lm_head = AutoBitLinear(g, 'token_embd.weight')
        self.caches = [[] for _ in range(self.cfg.num_hidden_layers)]
        self.n_past = 0

    def forward(self, ids):
        logits = self.lm_head(self.model(ids, self.n_past, self.caches))
        self.n_past += ids.shape[1]
        return logits


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('-m', '--model', required=True)
    ap.add_argument('--tokens', required=True)
    ap.add_argument('--decode', type=int, default=0)
    ap.add_argument('--bug', action='append', default=[], choices=BUGS)
    ap.add_argument('-o', '--output', required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = BitNetForCausalLM(a.model, a.bug)
    producer = {'name': 'torch-bitnet-test', 'version': torch.__version__}
    g = gguf.GGUFFile(a.model)
    info = {'path': a.model, 'sha256': bitparity.sha256_file(a.model), 'arch': g.get('general.architecture'),
            'weight_type': gguf.TYPE_NAMES[g.by_name['blk.0.attn_q.weight'].type].lower()}
    cur, greedy = [int(t) for t in a.tokens.split(',')], []
    w = bitparity.TraceWriter(a.output, producer, info, {'numerics': 'f32'})
    try:
        with torch.no_grad(), TapRecorder(model, w, TRANSFORMERS_BITNET) as rec:
            rec.wrap_rotary(sys.modules[__name__])
            for _ in range(a.decode + 1):
                with rec.evaluation(cur, p0=model.n_past):
                    logits = model(torch.tensor([cur]))
                cur = [int(torch.argmax(logits[0, -1]))]
                greedy += cur
        w.close(greedy_tokens=greedy)
    except BaseException:
        w.abort()
        raise
    return 0


if __name__ == '__main__':
    sys.exit(main())
