#!/usr/bin/env bash
# bitparity synth + inspect: determinism, what inspect reports (text, --stats,
# --json, --dump) checked against the Python reference's own reading of the
# same file, and one-line errors with exit 2 on bad input.
set -euo pipefail
bp=$1
py=${BITPARITY_PYTHON:-/usr/bin/python3}
src=${BITPARITY_SOURCE_DIR:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# synth is deterministic: same options -> same bytes; another seed -> other bytes
"$bp" synth --type i2_s --seed 7 -o "$tmp/a.gguf" 2>/dev/null
"$bp" synth --type i2_s --seed 7 -o "$tmp/b.gguf" 2>/dev/null
"$bp" synth --type i2_s --seed 8 -o "$tmp/c.gguf" 2>/dev/null
cmp -s "$tmp/a.gguf" "$tmp/b.gguf" || fail "synth is not deterministic"
cmp -s "$tmp/a.gguf" "$tmp/c.gguf" && fail "the seed changes nothing"
for t in f32 tq2_0 tq1_0; do "$bp" synth --type $t --seed 7 -o "$tmp/$t.gguf" 2>/dev/null; done
"$bp" synth --type f32 --arch llama -o "$tmp/llama.gguf" 2>/dev/null
"$bp" synth --type i2_s --arch bitnet -o "$tmp/bitnet.gguf" 2>/dev/null
"$bp" synth --type i2_s --shape tiny-mha -o "$tmp/mha.gguf" 2>/dev/null
"$bp" synth --type tq2_0 --embd-type f16 --seed 7 -o "$tmp/tq2_f16.gguf" 2>/dev/null
"$bp" synth --type i2_s --embd-type f32 --seed 7 -o "$tmp/i2s_f32.gguf" 2>/dev/null

# the reference reader agrees with what synth wrote: I2_S decodes to the F32
# file's values (same seed), TQ to them up to the f16 block scale
"$py" - "$tmp" <<'PY'
import sys, numpy as np
sys.path.insert(0, __import__('os').environ['BITPARITY_SOURCE_DIR'])
from reference import gguf
d = sys.argv[1]
f32, i2s = gguf.GGUFFile(d + '/f32.gguf'), gguf.GGUFFile(d + '/a.gguf')
for name in f32.by_name:
    a, b = f32.tensor(name), i2s.tensor(name)
    if name == 'token_embd.weight':
        assert np.array_equal(a.astype(np.float16).astype(np.float32), b), name
    else:
        assert np.array_equal(np.abs(a), np.abs(b)) and np.array_equal(a, b + 0.0), name
tq = gguf.GGUFFile(d + '/tq2_0.gguf').tensor('blk.0.ffn_up.weight')
w = f32.tensor('blk.0.ffn_up.weight')
assert np.array_equal(np.sign(tq), np.sign(w)), 'tq2_0 signs'
assert i2s.kv['tokenizer.ggml.bos_token_id'] == 509 and len(i2s.kv['tokenizer.ggml.merges']) == 253
# --embd-type changes token_embd's type only: the I2_S file's f16 embedding in
# a TQ2_0 file, the f32 one in an I2_S file; every other tensor as without it
tq2, tq2_f16, i2s_f32 = (gguf.GGUFFile(d + f) for f in ('/tq2_0.gguf', '/tq2_f16.gguf', '/i2s_f32.gguf'))
assert np.array_equal(tq2_f16.tensor('token_embd.weight'), i2s.tensor('token_embd.weight')), 'tq2_0 f16 embd'
assert np.array_equal(i2s_f32.tensor('token_embd.weight'), f32.tensor('token_embd.weight')), 'i2_s f32 embd'
for name in f32.by_name:
    if name != 'token_embd.weight':
        assert np.array_equal(tq2_f16.tensor(name), tq2.tensor(name)), name
        assert np.array_equal(i2s_f32.tensor(name), i2s.tensor(name)), name
print('reference reader agrees with synth')
PY

# inspect: text
out=$("$bp" inspect "$tmp/a.gguf")
grep -q "^model: bitnet-b1.58  vocab 512  embd 256  layers 4  ff 512  heads 8 (kv 2, head_dim 32)" <<< "$out" || fail "model line: $out"
grep -q "blk.0.attn_q.weight *I2_S *\[256, 256\] *16416" <<< "$out" || fail "tensor table"
grep -q "tokenizer: gpt2 / llama-bpe  512 tokens  253 merges  bos 509  eos 510  eot 511" <<< "$out" || fail "tokenizer line"
# (grep reads whole outputs: with pipefail, `cmd | grep -q` fails when grep exits early)
grep -q "rope normal.*sub-norms no" <<< "$("$bp" inspect "$tmp/llama.gguf")" || fail "llama arch"
grep -q "rope neox base 500000  rms eps 1e-05  ffn relu2" <<< "$("$bp" inspect "$tmp/bitnet.gguf")" || fail "bitnet arch honors hidden_activation"

# --stats: the I2_S scale and ternary histogram equal the reference's numbers
"$bp" inspect --stats --json "$tmp/a.gguf" > "$tmp/a.json"
"$py" - "$tmp" <<'PY'
import json, sys, numpy as np
sys.path.insert(0, __import__('os').environ['BITPARITY_SOURCE_DIR'])
from reference import gguf
d = sys.argv[1]
j = json.load(open(d + '/a.json'))
g = gguf.GGUFFile(d + '/a.gguf')
assert j['data_offset'] == g.data_offset, (j['data_offset'], g.data_offset)
assert j['metadata']['general.architecture'] == 'bitnet-b1.58'
assert len(j['metadata']['tokenizer.ggml.tokens']) == 512
assert j['model']['n_head_kv'] == 2 and j['model']['activation'] == 'relu2'
by = {t['name']: t for t in j['tensors']}
assert len(by) == len(g.by_name) == 46
for name, info in g.by_name.items():
    t = by[name]
    assert t['shape'] == list(info.ne), name
    assert t['offset'] == info.offset and t['absolute_offset'] == g.data_offset + info.offset, name
    x = g.tensor(name).astype(np.float64)
    s = t['stats']
    assert abs(s['mean'] - x.mean()) <= 1e-9 + 1e-6 * abs(x.mean()), (name, s['mean'], x.mean())
    assert abs(s['rms'] - np.sqrt((x * x).mean())) <= 1e-7 * np.sqrt((x * x).mean()), name
    assert s['min'] == x.min() and s['max'] == x.max(), name
    assert abs(s['zero_frac'] - (x == 0).mean()) < 1e-12, name
    if info.type == 36:
        assert s['scales']['count'] == 1 and abs(s['scales']['min'] - np.abs(x).max()) < 1e-9, name
        assert abs(s['neg_frac'] + s['pos_frac'] + s['zero_frac'] - 1) < 1e-12
print('inspect --stats --json agrees with the reference reader')
PY

# --tensor/--dump: float32 .npy, numpy shape = ne reversed, values as decoded
"$bp" inspect "$tmp/a.gguf" --tensor blk.1.ffn_down.weight --dump "$tmp/down.npy"
"$py" -c "
import sys, numpy as np
sys.path.insert(0, '$src')
from reference import gguf
a = np.load('$tmp/down.npy'); b = gguf.GGUFFile('$tmp/a.gguf').tensor('blk.1.ffn_down.weight')
assert a.dtype == np.float32 and a.shape == (256, 512), a.shape
assert np.array_equal(a, b)
"

# bad input: exit 2, one line on stderr naming the file
check_bad() {  # file, expected substring
  set +e
  "$bp" inspect "$1" > /dev/null 2> "$tmp/err"
  rc=$?
  set -e
  [ "$rc" = 2 ] || fail "inspect $1: exit $rc, want 2 ($(cat "$tmp/err"))"
  [ "$(wc -l < "$tmp/err")" = 1 ] || fail "inspect $1: not one line: $(cat "$tmp/err")"
  grep -q "$2" "$tmp/err" || fail "inspect $1: '$(cat "$tmp/err")' lacks '$2'"
}
head -c 5000 "$tmp/a.gguf" > "$tmp/trunc.gguf"
check_bad "$tmp/trunc.gguf" "trunc.gguf"
printf 'GGUF\003\000\000\000' > "$tmp/short.gguf"
check_bad "$tmp/short.gguf" "short.gguf"
printf 'NOPE\003\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' > "$tmp/magic.gguf"
check_bad "$tmp/magic.gguf" "magic"
check_bad "$tmp/missing.gguf" "missing.gguf"
set +e
"$bp" inspect "$tmp/a.gguf" --tensor nope --dump "$tmp/x.npy" 2> "$tmp/err"; rc=$?
"$bp" inspect 2>/dev/null; rc2=$?
"$bp" synth --type q4_0 -o "$tmp/x.gguf" 2>/dev/null; rc3=$?
"$bp" synth --type tq2_0 --embd-type bf16 -o "$tmp/x.gguf" 2>"$tmp/err4"; rc4=$?
[ "$rc4" = 2 ] && grep -q "embd-type 'bf16': expected f16 or f32" "$tmp/err4" || fail "--embd-type bf16: $rc4 $(cat "$tmp/err4")"
[ ! -e "$tmp/x.gguf" ] || fail "a refused synth wrote its output"
set -e
[ "$rc" = 2 ] && grep -q "no tensor named 'nope'" "$tmp/err" || fail "unknown tensor: $rc $(cat "$tmp/err")"
[ "$rc2" = 2 ] && [ "$rc3" = 2 ] || fail "usage errors: $rc2 $rc3"
grep -q -- "--dump" <<< "$("$bp" inspect --help)" || fail "inspect --help"
echo "synth/inspect: ok"
