"""calibrate.py — the noise model behind the built-in policies, measured, not assumed.

Every built-in policy that allows a difference (`reference`, `reference-int8`, `cross-backend`) is
there to absorb *legitimate* differences between two correct stacks: float32 against float64, an f16
KV cache against an f32 one, another summation order. This tool generates those differences in
quantity and reports their spread, per policy and per tap kind, so that the limits in
parity/policies/*.yaml rest on many prompts instead of one:

  pairs     engine vs the Python reference, each numerics mode (f32, ggml-compat, llama.cpp-compat),
            on every fixture model (every architecture and weight type; not b158-i2s-edge, made for faults);
            engine ggml-compat (f16 KV cache) vs engine f32 on the dense-weight models (cross-backend);
            engine with 2 threads vs 3 threads (exact);
            one model in four weight formats (`synth --shape tiny`: the same ternary weights as F32, I2_S,
            TQ2_0, TQ1_0), the engine in ggml-compat on each, formats against one another (quantized).
  prompts   PROMPTS random prompts per model (token ids from a seeded generator), of lengths cycling
            through LENGTHS (up to 96 tokens: longer than every shared trace), then DECODE greedy
            steps, teacher-forced on both legs (`trace --tokens-from`).
  measured  for each policy: the largest NMSE per tap kind over every tap, evaluation, prompt and
            model, where it happened, and the logits' worst KL divergence and top-1 agreement;
            every pair is also judged by `bitparity compare` under the policy chosen automatically.

    /usr/bin/python3 reference/calibrate.py --bin build/bitparity [--prompts 3] [--seed 1] [-o NOISE.yaml]
exits 1 when any pair fails its automatic policy (a policy too tight for legitimate noise), and
prints the floors as YAML (the `noise_model` entries of the policies' `floors` come from
`--seed 1 --prompts 3`; tests/cli/policy_noise.sh re-derives them and checks held-out prompts).
"""

import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from reference import gguf  # noqa: E402

MODES = ('f32', 'ggml-compat', 'llama.cpp-compat')
LENGTHS = (20, 64, 96)
DECODE = 2
DENSE = (gguf.F32, gguf.F16, gguf.BF16)
PRE_INT8 = ('token_embd', 'blk.0.attn_norm')
QUANT_TYPES = ('f32', 'i2_s', 'tq2_0', 'tq1_0')


def run(cmd, ok=(0,)):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode not in ok:
        raise SystemExit('calibrate: %s exited %d: %s' % (' '.join(cmd[:3]), p.returncode, p.stderr.strip()[-400:]))
    return p


def prompt(seed, model_name, i, n_vocab):
    r = random.Random('%s/%s/%d' % (seed, model_name, i))
    return [r.randrange(n_vocab) for _ in range(LENGTHS[i % len(LENGTHS)])]


def tap_kind(name):
    parts = name.split('.')
    return '.'.join(parts[2:]) if parts[0] == 'blk' else name


class Noise:
    """The spread of one policy's pairs."""

    def __init__(self):
        self.kinds = {}                    # tap kind -> [max nmse, where]
        self.kld_max, self.kld_mean, self.top1_min, self.pairs, self.failures = 0.0, 0.0, 1.0, 0, []
        self.pre_int8 = 0.0                # taps before any int8 step: token_embd, blk.0.attn_norm

    def add(self, receipt, where):
        self.pairs += 1
        if receipt['summary']['verdict'] != 'pass':
            fd = receipt['summary'].get('first_divergence') or {}
            self.failures.append('%s: %s %s' % (where, fd.get('evaluation'), fd.get('tap')))
        for t in receipt['taps']:
            m = t.get('metrics')
            if not m or t['status'] not in ('pass', 'fail'):
                continue
            k = tap_kind(t['name'])
            if t['name'] in PRE_INT8:
                self.pre_int8 = max(self.pre_int8, m['nmse'])
            cur = self.kinds.setdefault(k, [0.0, None])
            if m['nmse'] > cur[0]:
                cur[:] = [m['nmse'], '%s %s %s' % (where, t['evaluation'], t['name'])]
        for lg in receipt.get('logits') or []:
            self.kld_max = max(self.kld_max, lg.get('kld_max') or 0.0)
            self.kld_mean = max(self.kld_mean, lg.get('kld_mean') or 0.0)
            self.top1_min = min(self.top1_min, lg.get('top1_agree', 1.0))

    def summary(self):
        worst = max(self.kinds.items(), key=lambda kv: kv[1][0]) if self.kinds else (None, [0.0, None])
        return {'pairs': self.pairs, 'failures': self.failures,
                'max_tap_nmse': float('%.3g' % worst[1][0]), 'at': worst[1][1],
                'before_first_int8_nmse': float('%.3g' % self.pre_int8),
                'logits_kld_max': float('%.3g' % self.kld_max), 'logits_kld_mean_max': float('%.3g' % self.kld_mean),
                'top1_min': round(self.top1_min, 4),
                'per_tap_kind': {k: float('%.3g' % v[0]) for k, v in sorted(self.kinds.items())}}


def compare(bp, a, b):
    p = run([bp, 'compare', a, b, '--format', 'json'], ok=(0, 1))
    r = json.loads(p.stdout)
    return r['policy']['name'], r


# fixtures/models/b158-i2s-edge.gguf is built for the seeded faults (exact int8 ties, a 5e-4 I2_S scale:
# fixtures/README.md), not to represent legitimate noise; the floors were measured without it.
NOT_NOISE = ('b158-i2s-edge.gguf',)


def model_paths(pattern):
    return sorted(m for m in glob.glob(pattern) if os.path.basename(m) not in NOT_NOISE)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--bin', required=True, help='the bitparity binary')
    ap.add_argument('--prompts', type=int, default=3, help='prompts per model (default 3)')
    ap.add_argument('--seed', default='1', help='prompt generator seed (policy floors: 1)')
    ap.add_argument('--models', default=os.path.join(ROOT, 'fixtures', 'models', '*.gguf'))
    ap.add_argument('-o', '--output', help='also write the YAML here')
    a = ap.parse_args(argv)
    bp, py = os.path.abspath(a.bin), sys.executable
    ref = os.path.join(HERE, 'bitnet_ref.py')
    noise = {}
    with tempfile.TemporaryDirectory(prefix='bitparity-calibrate-') as tmp:
        for model in model_paths(a.models):
            name = os.path.basename(model)[:-5]
            g = gguf.GGUFFile(model)
            n_vocab = g.by_name['token_embd.weight'].ne[1]
            dense = g.by_name['blk.0.attn_q.weight'].type in DENSE
            for i in range(a.prompts):
                toks = ','.join(map(str, prompt(a.seed, name, i, n_vocab)))
                where = '%s p%d(%d)' % (name, i, LENGTHS[i % len(LENGTHS)])
                traces = {}
                for mode in MODES:      # the reference decodes greedily; the engine follows its tokens
                    r = os.path.join(tmp, 'r-%s.npz' % mode)
                    run([py, ref, 'trace', '-m', model, '--tokens', toks, '--decode', str(DECODE), '--numerics', mode,
                         '-o', r])
                    e = os.path.join(tmp, 'e-%s.npz' % mode)
                    run([bp, 'trace', '-m', model, '--tokens-from', r, '--numerics', mode, '-o', e])
                    pol, rec = compare(bp, e, r)
                    noise.setdefault('%s (engine vs reference, %s)' % (pol, mode), Noise()).add(rec, where)
                    traces[mode] = e
                if dense:   # two float backends: f16 KV cache and ggml's orders vs f32 in index order
                    e = os.path.join(tmp, 'e-cross.npz')
                    run([bp, 'trace', '-m', model, '--tokens-from', traces['f32'], '--numerics', 'ggml-compat',
                         '-o', e])
                    pol, rec = compare(bp, e, traces['f32'])
                    noise.setdefault('%s (engine ggml-compat vs engine f32, dense weights)' % pol,
                                     Noise()).add(rec, where)
                e3 = os.path.join(tmp, 'e3.npz')
                run([bp, 'trace', '-m', model, '--tokens-from', traces['ggml-compat'], '--threads', '3', '-o', e3])
                pol, rec = compare(bp, traces['ggml-compat'], e3)
                noise.setdefault('%s (engine 2 vs 3 threads)' % pol, Noise()).add(rec, where)
        # one model in four weight formats: what the format alone changes (the `quantized` policy)
        synth = {}
        for wt in QUANT_TYPES:
            synth[wt] = os.path.join(tmp, 'synth-%s.gguf' % wt)
            run([bp, 'synth', '--shape', 'tiny', '--type', wt, '-o', synth[wt]])
        n_vocab = gguf.GGUFFile(synth['f32']).by_name['token_embd.weight'].ne[1]
        for i in range(a.prompts):
            toks = ','.join(map(str, prompt(a.seed, 'synth-tiny', i, n_vocab)))
            where = 'synth-tiny p%d(%d)' % (i, LENGTHS[i % len(LENGTHS)])
            f32 = os.path.join(tmp, 'q-f32.npz')
            run([bp, 'trace', '-m', synth['f32'], '--tokens', toks, '--decode', str(DECODE), '-o', f32])
            for wt in QUANT_TYPES[1:]:
                q = os.path.join(tmp, 'q-%s.npz' % wt)
                run([bp, 'trace', '-m', synth[wt], '--tokens-from', f32, '-o', q])
                pol, rec = compare(bp, q, f32)
                noise.setdefault('%s (weight formats vs f32, ggml-compat)' % pol, Noise()).add(rec, '%s %s' % (where, wt))
    out = {'calibration': {'seed': a.seed, 'prompts_per_model': a.prompts, 'lengths': list(LENGTHS),
                           'decode': DECODE, 'models': [os.path.basename(m) for m in model_paths(a.models)]},
           'noise': {k: v.summary() for k, v in sorted(noise.items())}}
    text = yaml.safe_dump(out, sort_keys=False, default_flow_style=None, width=110)
    sys.stdout.write(text)
    if a.output:
        with open(a.output + '.tmp', 'w') as f:
            f.write(text)
        os.replace(a.output + '.tmp', a.output)
    return 1 if any(v.failures for v in noise.values()) else 0



if __name__ == '__main__':
    sys.exit(main())
