#!/usr/bin/env bash
# compare_fixtures.sh — trace, compare and localize through the binary on the
# fixture models (fixtures/models, fixtures/expected), so that a checkout
# without ../shared still covers them end to end (compare_traces.sh and
# report.sh do the same against the shared bitnet.cpp / llama.cpp traces):
#   - the engine's ggml-compat trace of b158-i2s is bit-identical to the
#     Python reference's expected trace (exact policy), exit 0;
#   - `check` on the f32 expected trace passes under the auto policy;
#   - a seeded SiLU fault is localized at blk.0.ffn_act, named, and placed by
#     the op-level replay; exit 1 and a receipt that says so;
#   - ci/parity-gate.sh gates a pair of traces (--subject) with its artifacts.
# $1 = the bitparity binary; BITPARITY_SOURCE_DIR = the source tree.
set -u
bin=$1
src=${BITPARITY_SOURCE_DIR:?BITPARITY_SOURCE_DIR is not set}
fx=$src/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
p1=$(awk '$1 == "p1" {print $2}' "$fx/prompts.txt")
[ -n "$p1" ] || fail "no p1 in fixtures/prompts.txt"
model=$fx/models/b158-i2s.gguf
expected=$fx/expected/b158-i2s.p1.compat.npz

# The expected trace stores 24 taps (fixtures/README.md): record those.
py=${BITPARITY_PYTHON:-/usr/bin/python3}
taps=$("$py" -c 'import sys, yaml, zipfile
print(",".join(yaml.safe_load(zipfile.ZipFile(sys.argv[1]).read("meta.yaml"))["taps"]))' "$expected")
[ -n "$taps" ] || fail "no taps in $expected's meta.yaml"

"$bin" trace -m "$model" --tokens "$p1" --decode 2 --taps "$taps" -o "$tmp/e.npz" >/dev/null ||
    fail "trace exited $?"
"$bin" compare "$tmp/e.npz" "$expected" --policy exact >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "compare vs the expected trace exited $rc: $(cat "$tmp/out")"
grep -q '^bitparity compare: PASS' "$tmp/out" || fail "no PASS line: $(cat "$tmp/out")"
grep -q '72 compared: 72 pass (72 bit-identical), 0 fail' "$tmp/out" || fail "counts: $(cat "$tmp/out")"

# check holds its own trace in memory: nothing appears in TMPDIR or the working folder
mkdir "$tmp/tmpdir" "$tmp/cwd"
(cd "$tmp/cwd" && TMPDIR="$tmp/tmpdir" "$bin" check -m "$fx/models/b158-f32.gguf" \
    --reference "$fx/expected/b158-f32.p1.f32.npz" >"$tmp/out" 2>&1)
rc=$?
[ $rc -eq 0 ] || fail "check vs the f32 expected trace exited $rc: $(cat "$tmp/out")"
grep -q 'policy     reference (auto: ' "$tmp/out" || fail "policy line: $(cat "$tmp/out")"
left=$(find "$tmp/tmpdir" "$tmp/cwd" -mindepth 1)
[ -z "$left" ] || fail "check left files behind: $left"

# A seeded bug: SiLU instead of relu².
"$bin" trace -m "$model" --tokens "$p1" --decode 2 -o "$tmp/clean.npz" >/dev/null || fail "trace exited $?"
"$bin" trace -m "$model" --tokens "$p1" --decode 2 --fault silu -o "$tmp/silu.npz" >/dev/null ||
    fail "trace --fault silu exited $?"
"$bin" compare "$tmp/silu.npz" "$tmp/clean.npz" --replay -m "$model" --replay-mode op -o "$tmp/r.yaml" \
    >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "compare of the SiLU fault exited $rc (want 1): $(cat "$tmp/out")"
grep -q '^first divergence: e0 blk.0.ffn_act (layer 0)' "$tmp/out" || fail "first divergence: $(cat "$tmp/out")"
grep -q '^hint: activation-swap: .*the subject computes SiLU(gate)·up where the reference computes relu(gate)²·up' \
    "$tmp/out" || fail "no activation-swap hint: $(cat "$tmp/out")"
grep -q '^hint: replay-local-op: replay: e0 blk.0.ffn_act is computed wrongly' "$tmp/out" ||
    fail "no op-level replay verdict: $(cat "$tmp/out")"
[ -s "$tmp/r.yaml" ] || fail "no receipt"
grep -A2 '^  first_divergence:' "$tmp/r.yaml" | grep -q 'tap: blk.0.ffn_act' ||
    fail "receipt's first divergence: $(grep -A3 first_divergence "$tmp/r.yaml")"
# The gate on any two traces (--subject): the clean trace passes, the SiLU one fails, with their artifacts.
gate=$src/ci/parity-gate.sh
BITPARITY=$bin bash "$gate" --subject "$tmp/clean.npz" --reference "$tmp/clean.npz" --out "$tmp/g0" >"$tmp/g0.log" 2>&1
[ $? -eq 0 ] || fail "gate --subject on a pass: $(cat "$tmp/g0.log")"
BITPARITY=$bin bash "$gate" --subject "$tmp/silu.npz" --reference "$tmp/clean.npz" -m "$model" --out "$tmp/g1" \
    -- --replay >"$tmp/g1.log" 2>&1
[ $? -eq 1 ] || fail "gate --subject on the SiLU fault did not exit 1: $(tail -5 "$tmp/g1.log")"
for f in receipt.yaml report.html report.md compare.log; do [ -s "$tmp/g1/$f" ] || fail "gate: no $f"; done
grep -q 'activation-swap' "$tmp/g1/report.md" || fail "gate report lacks the hint: $(cat "$tmp/g1/report.md")"
BITPARITY=$bin bash "$gate" --reference "$tmp/clean.npz" --out "$tmp/g2" >"$tmp/g2.log" 2>&1
[ $? -eq 2 ] || fail "gate without -m or --subject did not exit 2"
echo "PASS"
