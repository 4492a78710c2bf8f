#!/usr/bin/env bash
# tap_globs.sh — one tap-selection language on every leg: each glob below
# (the examples the docs and --help show, plus edge cases) selects the same
# tap names in the engine (`bitparity trace --taps`) and in the Python
# reference (`reference/bitnet_ref.py trace --taps`), on an I2_S model (which
# has every opt-in tap, the int8 inputs among them), and so does the default
# set. A glob that matches nothing is refused by both. Needs no shared data.
# $1 = the binary.
set -u
. "$(dirname "$0")/lib/common.sh"

"$bp" synth --shape tiny --type i2_s --seed 1 -o "$tmp/m.gguf" 2>/dev/null || fail "synth"
names() { # the taps of e0 recorded in a trace's meta.yaml, one per line, sorted
    "$py" -c 'import sys, yaml, zipfile
print("\n".join(sorted(yaml.safe_load(zipfile.ZipFile(sys.argv[1]).read("meta.yaml"))["taps"])))' "$1"
}
n=0
for glob in 'blk.*.attn_norm' 'blk.3.*' 'logits' 'blk.*' '*' 'blk.*.attn_*' 'blk.*.attn_*,logits' \
    'blk.*.attn_probs' 'blk.*.attn_scores,blk.0.attn_probs' '*.in_q8' 'blk.1.*.in_scale' 'blk.0.attn_q*' \
    '*attn_q*' 'blk.[01].ffn_*' 'blk.?.out' 'token_embd,output_norm'; do
    n=$((n + 1))
    "$bp" trace -m "$tmp/m.gguf" --tokens 509,286 --decode 0 --taps "$glob" -o "$tmp/e$n.npz" 2>"$tmp/err" ||
        fail "engine --taps '$glob': $(cat "$tmp/err")"
    "$py" "$src/reference/bitnet_ref.py" trace -m "$tmp/m.gguf" --tokens 509,286 --decode 0 --taps "$glob" \
        -o "$tmp/r$n.npz" >/dev/null 2>"$tmp/err" || fail "reference --taps '$glob': $(cat "$tmp/err")"
    names "$tmp/e$n.npz" >"$tmp/e$n.txt"
    names "$tmp/r$n.npz" >"$tmp/r$n.txt"
    [ -s "$tmp/e$n.txt" ] || fail "'$glob' selected nothing"
    diff "$tmp/e$n.txt" "$tmp/r$n.txt" >"$tmp/diff" || fail "'$glob' selects different taps (< engine, > reference): $(cat "$tmp/diff")"
done
# a glob selects what it matches, opt-in taps included: blk.* has attn_probs and in_q8; *.in_q8 nothing else
grep -q 'attn_probs' "$tmp/e4.txt" && grep -q 'in_q8' "$tmp/e4.txt" || fail "blk.* left out opt-in taps"
[ "$(grep -vc '\.in_q8$' "$tmp/e10.txt")" -eq 0 ] || fail "*.in_q8 selected other taps: $(cat "$tmp/e10.txt")"
# without --taps: no opt-in tap on either leg
"$bp" trace -m "$tmp/m.gguf" --tokens 509,286 --decode 0 -o "$tmp/ed.npz" 2>/dev/null || fail "engine default"
"$py" "$src/reference/bitnet_ref.py" trace -m "$tmp/m.gguf" --tokens 509,286 --decode 0 -o "$tmp/rd.npz" \
    >/dev/null 2>&1 || fail "reference default"
names "$tmp/ed.npz" >"$tmp/ed.txt"
names "$tmp/rd.npz" >"$tmp/rd.txt"
diff "$tmp/ed.txt" "$tmp/rd.txt" >"$tmp/diff" || fail "default sets differ: $(cat "$tmp/diff")"
grep -q 'attn_probs\|in_q8\|in_scale\|attn_scores' "$tmp/ed.txt" && fail "the default set has an opt-in tap"
"$bp" trace -m "$tmp/m.gguf" --tokens 509 --decode 0 --taps 'blk.9.*' -o "$tmp/x.npz" 2>/dev/null
[ $? -eq 2 ] || fail "engine: a glob matching nothing was not refused"
"$py" "$src/reference/bitnet_ref.py" trace -m "$tmp/m.gguf" --tokens 509 --decode 0 --taps 'blk.9.*' \
    -o "$tmp/x.npz" >/dev/null 2>&1 && fail "reference: a glob matching nothing was not refused"
echo "tap_globs: $n globs, same taps on both legs"
