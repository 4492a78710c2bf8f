#!/usr/bin/env bash
# The K/V cache type as an option (issue 12: llama.cpp's own default is an f16 cache).
set -u
. "$(dirname "$0")/lib/common.sh"
# llama.cpp's default f16 K/V cache: --kv-type f16 is recorded (settings.kv_cache), bit-identical
# for any thread count, and a comparison across cache types is never judged exact.
m="$src/fixtures/models/b158-i2s.gguf"
for th in 1 3; do
    "$bp" trace -m "$m" --tokens 1,2,3,4,5,6,7,8,9,10,11,12 --decode 2 --numerics llama.cpp-compat --kv-type f16 \
        --threads $th -o "$tmp/kv16-$th.npz" 2>/dev/null || fail "trace --kv-type f16 ($th threads)"
done
"$py" -c "import sys, zipfile, yaml; s = yaml.safe_load(zipfile.ZipFile(sys.argv[1]).read('meta.yaml'))['settings']
assert s['kv_cache'] == 'f16' and s['numerics'] == 'llama.cpp-compat', s" "$tmp/kv16-1.npz" || fail "kv_cache not recorded"
"$bp" compare "$tmp/kv16-1.npz" "$tmp/kv16-3.npz" >"$tmp/out" || fail "f16 cache: threads differ: $(cat "$tmp/out")"
grep -q '111 compared: 111 pass (111 bit-identical)' "$tmp/out" || fail "f16 cache, threads: $(cat "$tmp/out")"
"$bp" trace -m "$m" --tokens-from "$tmp/kv16-1.npz" --numerics llama.cpp-compat -o "$tmp/kv32.npz" 2>/dev/null ||
    fail "trace (f32 cache)"
"$bp" compare "$tmp/kv16-1.npz" "$tmp/kv32.npz" >"$tmp/out"
grep -q 'policy     cross-backend (auto' "$tmp/out" || fail "f16 vs f32 cache judged as: $(cat "$tmp/out")"
"$bp" trace -m "$m" --tokens 1,2 --kv-type f8 -o "$tmp/x.npz" >"$tmp/out" 2>&1
[ $? -eq 2 ] && grep -q "kv-type 'f8': expected f16, f32 or K,V (f32,f16)" "$tmp/out" || fail "bad --kv-type: $(cat "$tmp/out")"
# The engine and the independent Python reference agree bit for bit with llama.cpp's f16 cache too:
# a prompt's q·k and p·V through tinyBLAS f16 x f16, a single token's through ggml_vec_dot_f16.
for name in b158-i2s llama-f16; do
    model="$src/fixtures/models/$name.gguf"
    "$py" "$src/reference/bitnet_ref.py" trace -m "$model" --tokens 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20 \
        --decode 2 --numerics llama.cpp-compat --kv-type f16 --taps '*' -o "$tmp/r16.npz" >/dev/null || fail "reference f16 $name"
    "$bp" trace -m "$model" --tokens-from "$tmp/r16.npz" --numerics llama.cpp-compat --kv-type f16 --taps '*' \
        -o "$tmp/e16.npz" 2>/dev/null || fail "engine f16 $name"
    "$bp" compare "$tmp/e16.npz" "$tmp/r16.npz" --policy exact >"$tmp/out" || fail "$name f16 cache: $(cat "$tmp/out")"
done
# K and V of different types ("K f32, V f16", as bitnet.cpp's p1_kf32 dumps): recorded so, and parsed
# in both spellings
"$bp" trace -m "$m" --tokens 1,2,3 --kv-type f32,f16 -o "$tmp/kv-mixed.npz" 2>/dev/null || fail "--kv-type f32,f16"
"$py" -c "import sys, zipfile, yaml; s = yaml.safe_load(zipfile.ZipFile(sys.argv[1]).read('meta.yaml'))['settings']
assert s['kv_cache'] == 'K f32, V f16', s" "$tmp/kv-mixed.npz" || fail "mixed kv_cache not recorded"
"$bp" trace -m "$m" --tokens 1,2,3 --kv-type 'K f32, V f16' -o "$tmp/kv-mixed2.npz" 2>/dev/null || fail "--kv-type 'K f32, V f16'"
"$bp" compare "$tmp/kv-mixed.npz" "$tmp/kv-mixed2.npz" --policy exact >/dev/null || fail "the two spellings differ"
echo "kv_cache: ok"
