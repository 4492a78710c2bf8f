#!/usr/bin/env bash
# bitparity perplexity on the trained tiny BitNet (fixtures/trained) matches
# the training script's own measurement to 3 significant digits, for the I2_S
# and the F32 export; the KL-divergence statistics of I2_S against F32 logits
# are small but not zero (the int8 activation step is real), and bad input
# exits 2.
set -euo pipefail
bp=$1
src=${BITPARITY_SOURCE_DIR:?}
d=$src/fixtures/trained
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
[ -f "$d/metrics.yaml" ] || { echo "SKIP: fixtures/trained absent"; exit 77; }

want() {  # perplexity of heldout for a variant, from metrics.yaml
  awk -v v="$1" '/^    heldout:|^  heldout:/ {h=1} h && $1 == v":" {f=1} f && $1 == "perplexity:" {print $2; exit}' "$d/metrics.yaml"
}
same3() { awk -v a="$1" -v b="$2" 'BEGIN {r = a / b; exit !(r > 0.9995 && r < 1.0005)}'; }

for v in i2s f32; do
  out=$("$bp" perplexity -m "$d/tiny-kjv-$v.gguf" -f "$d/heldout.txt" --ctx 128 --threads 2)
  got=$(awk '$1 == "perplexity" {print $3}' <<< "$out")
  exp=$(want "$v")
  [ -n "$exp" ] || fail "no expected perplexity for $v in metrics.yaml"
  same3 "$got" "$exp" || fail "$v: perplexity $got, the training script measured $exp"
  tokens=$(awk '$1 == "tokens" {print $3}' <<< "$out")
  [ "$tokens" = "$(wc -c < "$d/heldout.txt")" ] || fail "$v: scored $tokens tokens, the file has $(wc -c < "$d/heldout.txt") bytes"
  echo "$v: perplexity $got (training script: $exp)"
done

# KL divergence of the I2_S model against the F32 model's logits
head -c 6000 "$d/heldout.txt" > "$tmp/t.txt"
"$bp" perplexity -m "$d/tiny-kjv-f32.gguf" -f "$tmp/t.txt" --ctx 128 --save-logits "$tmp/base.npz" > /dev/null
out=$("$bp" perplexity -m "$d/tiny-kjv-i2s.gguf" -f "$tmp/t.txt" --ctx 128 --kld-base "$tmp/base.npz")
kld=$(awk '$1 == "kld_mean" {print $3}' <<< "$out")
same=$(awk '$1 == "same_top_p" {print $3}' <<< "$out")
awk -v k="$kld" -v s="$same" 'BEGIN {exit !(k > 1e-5 && k < 0.05 && s > 80 && s < 100)}' ||
  fail "KLD mean $kld, same top $same %"
# the same model against itself: KLD 0, same top 100 %
out=$("$bp" perplexity -m "$d/tiny-kjv-f32.gguf" -f "$tmp/t.txt" --ctx 128 --kld-base "$tmp/base.npz")
grep -q "^kld_max = 0$" <<< "$out" || fail "self KLD: $out"
grep -q "^same_top_p = 100.0000 %" <<< "$out" || fail "self same top: $out"
echo "i2s vs f32: kld_mean $kld, same top $same %"

# bad input
set +e
"$bp" perplexity -m "$d/tiny-kjv-i2s.gguf" -f "$tmp/missing.txt" 2> "$tmp/err"; rc=$?
"$bp" perplexity -m "$d/tiny-kjv-i2s.gguf" -f "$tmp/t.txt" --ctx 1 2> /dev/null; rc2=$?
"$bp" perplexity -m "$d/tiny-kjv-i2s.gguf" -f "$tmp/t.txt" --ctx 64 --kld-base "$tmp/base.npz" > /dev/null 2> "$tmp/err3"; rc3=$?
set -e
[ "$rc" = 2 ] && grep -q "missing.txt" "$tmp/err" || fail "missing file: exit $rc, $(cat "$tmp/err")"
[ "$rc2" = 2 ] || fail "--ctx 1: exit $rc2"
[ "$rc3" = 2 ] && grep -q "kld-base" "$tmp/err3" || fail "mismatched base: exit $rc3, $(cat "$tmp/err3")"
echo "perplexity: ok"
