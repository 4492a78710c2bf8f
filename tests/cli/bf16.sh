#!/usr/bin/env bash
# bf16.sh — BF16 weights run: a synth model with BF16 projections traces the
# same taps with 1 and 3 threads (bit for bit), and agrees with the Python
# reference (which widens BF16 exactly too) under the auto policy, in f32
# numerics. Needs no shared data. $1 = the bitparity binary.
set -u
. "$(dirname "$0")/lib/common.sh"

"$bp" synth --shape tiny --type bf16 --seed 3 -o "$tmp/bf16.gguf" 2>/dev/null || fail "synth --type bf16"
"$bp" inspect "$tmp/bf16.gguf" >"$tmp/inspect" 2>&1 || fail "inspect: $(cat "$tmp/inspect")"
grep -q 'blk.0.attn_q.weight *BF16' "$tmp/inspect" || fail "the projections are not BF16: $(cat "$tmp/inspect")"
tokens=509,286,220,457,496
for t in 1 3; do
    "$bp" trace -m "$tmp/bf16.gguf" --tokens $tokens --decode 2 --numerics f32 --threads $t -o "$tmp/t$t.npz" \
        2>"$tmp/err" || fail "trace --threads $t: $(cat "$tmp/err")"
done
"$bp" compare "$tmp/t1.npz" "$tmp/t3.npz" --policy exact >"$tmp/out" 2>&1 || fail "1 vs 3 threads: $(cat "$tmp/out")"
grep -q "compared: \([0-9]*\) pass (\1 bit-identical), 0 fail" "$tmp/out" || fail "not bit-identical: $(cat "$tmp/out")"
"$py" "$src/reference/bitnet_ref.py" trace -m "$tmp/bf16.gguf" --tokens $tokens --decode 2 --numerics f32 \
    -o "$tmp/ref.npz" >/dev/null 2>"$tmp/err" || fail "the reference on BF16: $(cat "$tmp/err")"
"$bp" compare "$tmp/t1.npz" "$tmp/ref.npz" >"$tmp/out" 2>&1 || fail "engine vs reference on BF16: $(cat "$tmp/out")"
grep -q '^bitparity compare: PASS' "$tmp/out" || fail "no PASS: $(cat "$tmp/out")"
echo "bf16: ok"
