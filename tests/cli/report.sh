#!/usr/bin/env bash
# report.sh — `bitparity report` and ci/parity-gate.sh end to end: receipts
# from `bitparity check` (a bitnet.cpp pass, a llama.cpp SiLU failure with
# replay) rendered as HTML and Markdown, format choice, exit codes of bad
# input, and the gate on a pass and a fail.
# $1 = the bitparity binary. Exit 77 (skip) without the shared data.
set -u
bin=$1
shared=${BITPARITY_SHARED_DIR:-}
src=${BITPARITY_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
gate=$src/ci/parity-gate.sh
if [ -z "$shared" ] || [ ! -f "$shared/reference-traces/bitnetcpp/i2s/p1.npz" ]; then
    echo "SKIP: \$BITPARITY_SHARED_DIR/reference-traces absent"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
models=$shared/models
refs=$shared/reference-traces
i2s=$models/tiny-bitnet-i2s.gguf
f32=$models/tiny-bitnet-llamacpp-f32.gguf

"$bin" --help | grep -q '^  report ' || fail "bitparity --help does not list report"
"$bin" report --help >"$tmp/help" || fail "report --help exited $?"
for opt in -o --format html markdown; do grep -q -- "$opt" "$tmp/help" || fail "report --help lacks $opt"; done

"$bin" check -m "$i2s" --reference "$refs/bitnetcpp/i2s/p1.npz" -o "$tmp/pass.yaml" >/dev/null ||
    fail "check (pass) exited $?"
"$bin" check -m "$f32" --reference "$refs/llamacpp/silu-f32-p1.npz" --numerics f32 --replay -o "$tmp/fail.yaml" >/dev/null
[ $? -eq 1 ] || fail "check (fail) did not exit 1"

# Markdown on stdout by default; the verdict does not decide the exit code.
"$bin" report "$tmp/fail.yaml" >"$tmp/fail.md" || fail "report (markdown) exited $?"
grep -q '^## ❌ FAIL — tiny-bitnet-llamacpp-f32.gguf$' "$tmp/fail.md" || fail "md title: $(head -3 "$tmp/fail.md")"
grep -qF '**First divergence:** e0 `blk.0.ffn_act` (layer 0): nmse = **0.467**, limit 1e-05' "$tmp/fail.md" ||
    fail "md first divergence"
grep -qF '| e0 | `blk.0.ffn_act` | fail | nmse | 0.467 | 1e-05 |' "$tmp/fail.md" || fail "md failing row"
grep -qF '| e0 | fail | 8 | 25.0% | 45.0% | 2.53 | 5.34 | 5.5 |' "$tmp/fail.md" || fail "md logits row"
[ "$(grep -c '^| e0 | `blk\.' "$tmp/fail.md")" -eq 20 ] || fail "md: expected 15 failing + 5 worst rows"
grep -q '^e0     ▁▃▄█  max 1.06 at blk.3$' "$tmp/fail.md" || fail "md sparkline: $(grep -A2 'text' "$tmp/fail.md")"

# HTML from the -o extension; --format overrides it.
"$bin" report "$tmp/fail.yaml" -o "$tmp/fail.html" || fail "report -o html exited $?"
head -c 15 "$tmp/fail.html" | grep -q '<!DOCTYPE html>' || fail "not HTML"
[ "$(grep -o '<tr class="failrow">' "$tmp/fail.html" | wc -l)" -eq 57 ] || fail "HTML failing rows"
grep -qi '<script' "$tmp/fail.html" && fail "HTML has a script tag"
grep -q '<svg id="growth-1"' "$tmp/fail.html" || fail "no growth plot"
"$bin" report "$tmp/fail.yaml" -o "$tmp/fail.txt" --format html || fail "--format html exited $?"
cmp -s "$tmp/fail.html" "$tmp/fail.txt" || fail "--format html differs from .html"
"$bin" report "$tmp/fail.yaml" -o "$tmp/fail2.md" || fail "report -o md exited $?"
cmp -s "$tmp/fail.md" "$tmp/fail2.md" || fail "-o x.md differs from stdout"

# Several receipts: one report with a summary table.
"$bin" report "$tmp/pass.yaml" "$tmp/fail.yaml" >"$tmp/both.md" || fail "report of two exited $?"
grep -q '^# bitparity report: FAIL (1 of 2 receipts pass)$' "$tmp/both.md" || fail "summary title"
[ "$(grep -c '^| [12] | ' "$tmp/both.md")" -eq 2 ] || fail "summary rows"

# Bad input: exit 2 with file:line: key; unwritable output: exit 3.
sed 's/^  verdict: fail$/  verdict: maybe/' "$tmp/fail.yaml" >"$tmp/bad.yaml"
"$bin" report "$tmp/bad.yaml" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "malformed receipt did not exit 2"
grep -q "bad.yaml:[0-9]*: summary.verdict: expected pass or fail, got 'maybe'" "$tmp/err" || fail "error: $(cat "$tmp/err")"
head -c 2000 "$tmp/fail.yaml" >"$tmp/cut.yaml"
"$bin" report "$tmp/cut.yaml" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "truncated receipt did not exit 2"
"$bin" report "$tmp/missing.yaml" >/dev/null 2>&1
[ $? -eq 2 ] || fail "missing receipt did not exit 2"
"$bin" report >/dev/null 2>&1
[ $? -eq 2 ] || fail "no receipt did not exit 2"
"$bin" report "$tmp/fail.yaml" --format pdf >/dev/null 2>&1
[ $? -eq 2 ] || fail "--format pdf did not exit 2"
"$bin" report "$tmp/fail.yaml" -o "$tmp/no/such/dir/r.html" >/dev/null 2>&1
[ $? -eq 3 ] || fail "unwritable output did not exit 3"
# A JSON receipt is read as YAML flow.
"$bin" check -m "$i2s" --reference "$refs/bitnetcpp/i2s/p1.npz" -o "$tmp/pass.json" >/dev/null ||
    fail "check -o json exited $?"
"$bin" report "$tmp/pass.json" | grep -q '^## ✅ PASS — tiny-bitnet-i2s.gguf$' || fail "JSON receipt"

# The gate: pass -> 0, fail -> 1, bad input -> 2; artifacts in --out.
BITPARITY=$bin bash "$gate" -m "$i2s" --reference "$refs/bitnetcpp/i2s/p1.npz" --out "$tmp/g1" >"$tmp/g1.log" 2>&1
[ $? -eq 0 ] || fail "gate on a pass: $(cat "$tmp/g1.log")"
for f in receipt.yaml report.html report.md check.log; do [ -s "$tmp/g1/$f" ] || fail "gate: no $f"; done
grep -q '^## ✅ PASS' "$tmp/g1.log" || fail "gate did not print the markdown"
BITPARITY=$bin GITHUB_STEP_SUMMARY=$tmp/summary.md bash "$gate" -m "$f32" \
    --reference "$refs/llamacpp/silu-f32-p1.npz" --policy cross-backend --out "$tmp/g2" -- --replay >"$tmp/g2.log" 2>&1
[ $? -eq 1 ] || fail "gate on a fail did not exit 1: $(tail -5 "$tmp/g2.log")"
grep -q '<h3>Replay (block mode)</h3>' "$tmp/g2/report.html" || fail "gate: --replay not passed on"
grep -q '^## ❌ FAIL' "$tmp/summary.md" || fail "gate: no step summary"
grep -qF "choice: \"--policy cross-backend\"" "$tmp/g2/receipt.yaml" || fail "gate: --policy not passed on"
bash "$gate" --bitparity "$bin" -m "$f32" --reference "$tmp/none.npz" --out "$tmp/g3" >/dev/null 2>&1
[ $? -eq 2 ] || fail "gate on a missing trace did not exit 2"
bash "$gate" --bitparity "$bin" >/dev/null 2>&1
[ $? -eq 2 ] || fail "gate without arguments did not exit 2"
echo "OK"
