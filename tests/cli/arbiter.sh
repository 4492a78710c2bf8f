#!/usr/bin/env bash
# arbiter.sh — `bitparity check --arbiter python` on the fixtures (no
# ../shared needed): which side agrees with the independent Python reference
# run on the subject's model file's declared math.
#   - the subject is the broken one: a broken export of b158-i2s (kind
#     bitnet-no-act of tests/python/broken_exports.py: arch `bitnet` without
#     hidden_activation, so SiLU runs) checked against the reference's trace
#     of the original. The arbiter reads the broken file, which declares SiLU,
#     so it agrees with the subject; the output says that this shows what the
#     file declares, not that the file is right, and that the reference trace
#     came from another model file;
#   - the reference is the broken one: the original model checked against the
#     Python reference's trace of the broken export: the arbiter agrees with
#     the subject on relu² and names SiLU for the reference;
#   - a passing check runs no arbiter; --arbiter takes only `python`; a
#     missing interpreter is an input error naming it.
# Exit codes stay those of check: 1 when parity fails.
# $1 = the bitparity binary; BITPARITY_SOURCE_DIR = the source tree.
set -u
. "$(dirname "$0")/lib/common.sh"
fx=$src/fixtures
orig=$fx/models/b158-i2s.gguf
expected=$fx/expected/b158-i2s.p1.compat.npz
p1=$(awk '$1 == "p1" {print $2}' "$fx/prompts.txt")

"$bp" check --help | grep -q -- '--arbiter python' || fail "check --help does not describe --arbiter"
"$py" "$src/tests/python/broken_exports.py" "$orig" bitnet-no-act "$tmp/noact.gguf" || fail "broken_exports.py failed"

# 1. The subject is the broken export.
"$bp" check -m "$tmp/noact.gguf" --reference "$expected" --arbiter python --python "$py" -o "$tmp/s.yaml" \
    >"$tmp/s.out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "broken subject: exit $rc (want 1): $(cat "$tmp/s.out")"
grep -q '^first divergence: e0 blk.0.ffn_act ' "$tmp/s.out" || fail "first divergence: $(cat "$tmp/s.out")"
grep -q '^arbiter: subject and the independent reference agree on SiLU at e0 blk.0.ffn_act (nmse 0); the reference trace differs from both (nmse 0\.[0-9]*); the reference trace computes relu² (against the independent reference with relu² forced: nmse 0)$' \
    "$tmp/s.out" || fail "arbiter line (broken subject): $(grep arbiter "$tmp/s.out")"
grep -q "what this shows: .*declared math of the subject's model file $tmp/noact.gguf (arch bitnet, FFN activation SiLU: no bitnet.hidden_activation key, so the arch's default); agreeing with it shows that a side computes what that file declares, not that the file is a correct export" \
    "$tmp/s.out" || fail "what it shows: $(grep shows "$tmp/s.out")"
grep -q 'the reference trace was recorded from another model file' "$tmp/s.out" ||
    fail "no word that the reference ran another file: $(grep shows "$tmp/s.out")"
"$py" - "$tmp/s.yaml" <<'PY' || fail "receipt arbiter section (broken subject)"
import sys, yaml
a = yaml.safe_load(open(sys.argv[1]))['arbiter']
assert a['verdict'] == 'subject', a
assert (a['evaluation'], a['tap'], a['arch'], a['activation'], a['numerics'], a['policy']) == \
    ('e0', 'blk.0.ffn_act', 'bitnet', 'silu', 'ggml-compat', 'reference'), a
assert a['activation_key'].startswith('no bitnet.hidden_activation key'), a
assert a['subject'] == {'agrees': True, 'nmse': 0.0, 'max_abs': 0.0}, a['subject']
assert a['reference']['agrees'] is False and a['reference']['nmse'] > 0.1, a['reference']
assert a['other_activation'] == {'activation': 'relu2', 'side': 'reference', 'agrees': True, 'nmse': 0.0}, a
PY

# 2. The reference is the broken one: the Python reference's trace of the broken export.
"$py" "$src/reference/bitnet_ref.py" trace -m "$tmp/noact.gguf" --tokens "$p1" --decode 2 -o "$tmp/noact.npz" \
    >/dev/null || fail "bitnet_ref.py trace of the broken export failed"
"$bp" check -m "$orig" --reference "$tmp/noact.npz" --arbiter python --python "$py" -o "$tmp/r.json" \
    >"$tmp/r.out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "broken reference: exit $rc (want 1): $(cat "$tmp/r.out")"
grep -q '^arbiter: subject and the independent reference agree on relu² at e0 blk.0.ffn_act (nmse 0); the reference trace differs from both (nmse 0\.[0-9]*); the reference trace computes SiLU (against the independent reference with SiLU forced: nmse 0)$' \
    "$tmp/r.out" || fail "arbiter line (broken reference): $(grep arbiter "$tmp/r.out")"
grep -q "FFN activation relu²: no bitnet-b1.58.hidden_activation key, so the arch's default" "$tmp/r.out" ||
    fail "declared activation of the original: $(grep shows "$tmp/r.out")"
"$py" -c 'import json, sys; a = json.load(open(sys.argv[1]))["arbiter"]
assert a["verdict"] == "subject" and a["activation"] == "relu2" and a["other_activation"]["activation"] == "silu", a' \
    "$tmp/r.json" || fail "receipt arbiter section (broken reference)"

# 3. A passing check runs no arbiter and writes no section.
"$bp" check -m "$orig" --reference "$expected" --arbiter python --python "$py" -o "$tmp/p.yaml" >"$tmp/p.out" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "passing check with --arbiter: exit $rc: $(cat "$tmp/p.out")"
grep -q '^arbiter' "$tmp/p.out" "$tmp/p.yaml" && fail "an arbiter ran on a passing check"

# 4. Usage and input errors.
"$bp" check -m "$orig" --reference "$expected" --arbiter torch >"$tmp/u.out" 2>&1
[ $? -eq 2 ] || fail "--arbiter torch: want exit 2"
grep -q "arbiter 'torch': expected python" "$tmp/u.out" || fail "usage message: $(cat "$tmp/u.out")"
"$bp" check -m "$tmp/noact.gguf" --reference "$expected" --arbiter python --python "$tmp/no-python" >"$tmp/n.out" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "missing interpreter: exit $rc (want 2): $(cat "$tmp/n.out")"
grep -q "arbiter: cannot run $tmp/no-python" "$tmp/n.out" || fail "missing interpreter message: $(cat "$tmp/n.out")"
echo "PASS"
