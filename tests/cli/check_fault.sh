#!/usr/bin/env bash
# check_fault.sh — `bitparity check --fault NAME` on the fixture made for the
# faults that change nothing on most models (fixtures/models/b158-i2s-edge.gguf:
# a 5e-4 I2_S scale, exact int8 ties), against the Python reference's
# expected trace of the clean model:
#   - without a fault: PASS, every compared tap bit-identical, exit 0;
#   - round-away: exit 1, first divergence at blk.0.attn_q.in_q8 (the tap
#     bn_fault_first_tap names), the int8-rounding hint names the mode, and
#     the receipt's subject records `fault: round-away`;
#   - i2s-scale-clamp: exit 1, the first recorded tap after the projection
#     (the expected trace has attn_q_rope, not attn_q) is 2x the reference
#     (receipt: metrics.scale 2, nothing left after the fit);
#   - an unknown fault is a usage error (exit 2), and check --help shows it.
# $1 = the bitparity binary; BITPARITY_SOURCE_DIR = the source tree.
set -u
. "$(dirname "$0")/lib/common.sh"
fx=$src/fixtures
model=$fx/models/b158-i2s-edge.gguf
expected=$fx/expected/b158-i2s-edge.p1.compat.npz

"$bp" check --help | grep -q -- '--fault NAME' || fail "check --help does not describe --fault"

"$bp" check -m "$model" --reference "$expected" --taps '*' >"$tmp/clean" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "clean check exited $rc: $(cat "$tmp/clean")"
grep -q '72 compared: 72 pass (72 bit-identical)' "$tmp/clean" || fail "clean counts: $(cat "$tmp/clean")"

"$bp" check -m "$model" --reference "$expected" --taps '*' --fault round-away -o "$tmp/away.yaml" >"$tmp/away" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "round-away check exited $rc (want 1): $(cat "$tmp/away")"
grep -q 'fault round-away' "$tmp/away" || fail "the subject line does not name the fault: $(cat "$tmp/away")"
grep -q '^first divergence: e0 blk.0.attn_q.in_q8 ' "$tmp/away" || fail "round-away first tap: $(cat "$tmp/away")"
grep -q '^hint: int8-rounding: .*rounds halves away from zero where the reference rounds them to even' "$tmp/away" ||
    fail "no int8-rounding hint: $(cat "$tmp/away")"
# the subject side of the receipt records the fault, the reference side none
awk '/^subject:/{s=1} /^reference:/{s=0} s && /fault: round-away/{f=1} END{exit !f}' "$tmp/away.yaml" ||
    fail "receipt subject has no fault: round-away: $(grep -n fault "$tmp/away.yaml")"

"$bp" check -m "$model" --reference "$expected" --fault i2s-scale-clamp -o "$tmp/clamp.yaml" >"$tmp/clamp" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "i2s-scale-clamp check exited $rc (want 1): $(cat "$tmp/clamp")"
grep -q '^first divergence: e0 blk.0.attn_q_rope ' "$tmp/clamp" || fail "clamp first tap: $(cat "$tmp/clamp")"
# the clamped scale is 1e-3 for 5e-4: q, hence q after RoPE, is 2x the reference's, and nothing is left
"$py" - "$tmp/clamp.yaml" <<'PY' || fail "clamp: e0 blk.0.attn_q_rope is not 2x the reference"
import sys, yaml
r = yaml.safe_load(open(sys.argv[1]))
t = [t for t in r['taps'] if t['evaluation'] == 'e0' and t['name'] == 'blk.0.attn_q_rope'][0]
assert abs(t['metrics']['scale'] - 2.0) < 1e-6 and t['metrics']['scale_nmse'] < 1e-12, t['metrics']
PY

"$bp" check -m "$model" --reference "$expected" --fault bogus >"$tmp/bad" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "unknown fault exited $rc (want 2)"
grep -q "fault 'bogus': unknown fault" "$tmp/bad" || fail "unknown fault message: $(cat "$tmp/bad")"
echo "PASS"
