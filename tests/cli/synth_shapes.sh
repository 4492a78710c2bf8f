#!/usr/bin/env bash
# synth --shape 700m: a real model's shapes (bitnet_b1_58-large) streamed
# piece by piece — what inspect reads back (hyper-parameters, vocabulary
# size, special ids, tensor shapes and sizes), the I2_S tensors' one scale
# and ternary codes as the whole-tensor quantizer would write them (checked
# in numpy), and a short greedy run. (2b4t has the same code path at 4x the
# size: bench/run.sh writes it.)
set -euo pipefail
bp=$1
py=${BITPARITY_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bp" synth --shape 700m --type i2_s --seed 5 -o "$tmp/m.gguf" 2>/dev/null || fail "synth --shape 700m"
# 24 layers x (4 x 1536^2 + 3 x 1536 x 4096) ternary / 4 bytes + 32 per tensor, F16 embeddings, F32 norms
size=$(stat -c %s "$tmp/m.gguf")
[ "$size" -gt 269000000 ] && [ "$size" -lt 271000000 ] || fail "700m file size $size"
"$bp" inspect "$tmp/m.gguf" > "$tmp/inspect.txt"
grep -q "vocab 32002  embd 1536  layers 24  ff 4096  heads 16 (kv 16, head_dim 96)  ctx 2048" "$tmp/inspect.txt" ||
    fail "700m hyper-parameters: $(sed -n 2p "$tmp/inspect.txt")"
grep -q "32002 tokens  253 merges  bos 31999  eos 32000  eot 32001" "$tmp/inspect.txt" || fail "700m vocabulary"
"$bp" inspect "$tmp/m.gguf" --json > "$tmp/m.json"
"$bp" inspect "$tmp/m.gguf" --tensor blk.23.ffn_down.weight --dump "$tmp/down.npy"
"$py" - "$tmp" <<'PY'
import json, sys, numpy as np
d = sys.argv[1]
m = json.load(open(f"{d}/m.json"))
t = {x["name"]: x for x in m["tensors"]}
assert len(t) == 2 + 24 * 11, len(t)
assert t["token_embd.weight"]["shape"] == [1536, 32002] and t["token_embd.weight"]["type"] == "F16", t["token_embd.weight"]
for n, shape in [("attn_q", [1536, 1536]), ("attn_k", [1536, 1536]), ("ffn_up", [1536, 4096]), ("ffn_down", [4096, 1536])]:
    x = t[f"blk.7.{n}.weight"]
    assert x["shape"] == shape and x["type"] == "I2_S", (n, x)
    assert x["nbytes"] == shape[0] * shape[1] // 4 + 32, (n, x["nbytes"])
w = np.load(f"{d}/down.npy")
assert w.shape == (1536, 4096), w.shape
vals = np.unique(w)
# one scale for the whole tensor, written after the last piece: {-s, 0, s}
assert len(vals) == 3 and vals[0] == -vals[2] and vals[1] == 0 and 0.02 <= vals[2] <= 0.05, vals
zeros = float((w == 0).mean())
assert 0.30 < zeros < 0.32, zeros
print("700m shapes ok")
PY
out=$("$bp" run -m "$tmp/m.gguf" --tokens 1,2,3 -n 2 --temp 0 --ids -t 2) || fail "run on 700m"
[ "$(echo "$out" | wc -w)" -eq 2 ] || fail "run on 700m printed '$out'"
echo "synth shapes: ok"
