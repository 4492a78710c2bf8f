#!/usr/bin/env bash
# examples/foreign-engine: the README's commands, run as written (bitparity and python3 stand for the
# built binary and the project's Python), must name the bug; then every bug switch of port.py is
# localized at the README table's tap with its hint and --replay is refused, and the clean port
# passes against the engine's f32 trace with every tap within NMSE 1e-11.
set -u
. "$(dirname "$0")/lib/common.sh"
. "$src/tests/cli/lib/porting_bugs.sh"
ex="$src/examples/foreign-engine"
cp "$ex/port.py" "$tmp/"
cd "$tmp" || fail "cd $tmp"
export PYTHONPATH="$src/python"
bitparity() { "$bp" "$@"; }
python3() { "$py" "$@"; }

# the README's commands: the synth line, then the four in the "Four commands" block
mapfile -t cmds < <("$py" - "$ex/README.md" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r'```sh\n(.*?)```', text, re.S)
for line in blocks[0].splitlines() + blocks[1].splitlines():
    line = line.split('  #')[0].strip()
    if line:
        print(line)
PY
)
[ ${#cmds[@]} -eq 5 ] || fail "README: expected 1 + 4 commands, found ${#cmds[@]}: ${cmds[*]}"
for i in 0 1 2 3; do
    eval "${cmds[$i]}" >"$tmp/step$i" 2>&1 || fail "README command $i failed: ${cmds[$i]}: $(cat "$tmp/step$i")"
done
eval "${cmds[4]}" >"$tmp/step4" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "README command 4 exited $rc, not 1: $(cat "$tmp/step4")"
grep -q '^first divergence: e0 blk.0.ffn_act ' "$tmp/step4" || fail "README: not localized at ffn_act: $(cat "$tmp/step4")"
grep -q '^hint: activation-swap: ' "$tmp/step4" || fail "README: no activation-swap hint: $(cat "$tmp/step4")"
grep -q "policy  *cross-backend (auto" "$tmp/step4" || fail "README: policy not chosen as the README says"

# the clean port against the engine
tokens=72,101,108,108,111
python3 port.py -m tiny.gguf --tokens $tokens -n 4 -o clean.npz >"$tmp/out" || fail "clean port: $(cat "$tmp/out")"
ids=$(sed -n 's/^generated ids: //p' "$tmp/out")
[ "$ids" = "$(bitparity run -m tiny.gguf --tokens $tokens -n 4 --temp 0 --numerics f32 --ids)" ] ||
    fail "clean port ids '$ids' differ from the engine's"
bitparity trace -m tiny.gguf --tokens-from clean.npz --numerics f32 -o ref.npz 2>/dev/null || fail "trace --tokens-from"
bitparity compare clean.npz ref.npz -o clean.yaml >"$tmp/out" 2>&1 || fail "clean port does not pass: $(cat "$tmp/out")"
"$py" - clean.yaml <<'PY' || fail "clean port not within 1e-11: $(cat "$tmp/out")"
import sys, yaml
taps = yaml.safe_load(open(sys.argv[1]))['taps']
assert len(taps) == 4 * (3 + 4 * 17), len(taps)          # 4 evaluations, 4 layers of 17 default taps
assert max(t['metrics']['nmse'] for t in taps) < 1e-11
PY

# every bug of the README's table
"$py" - "$ex/README.md" >"$tmp/cases" <<'PY'
import re, sys
for bug, tap, hint in re.findall(r'^\| `([a-z-]+)` \| `([^`]+)`.*?\| `([a-z-]+)`', open(sys.argv[1]).read(), re.M):
    print(bug, tap, hint)
PY
[ "$(wc -l <"$tmp/cases")" -eq 6 ] || fail "README table: expected 6 bugs: $(cat "$tmp/cases")"
while read -r bug tap hint; do
    python3 port.py -m tiny.gguf --tokens $tokens -n 2 --bug "$bug" -o bug.npz >/dev/null || fail "port --bug $bug"
    bitparity trace -m tiny.gguf --tokens-from bug.npz --numerics f32 -o bugref.npz 2>/dev/null || fail "trace for $bug"
    assert_bug_named bug.npz bugref.npz tiny.gguf "$tap" "$hint" "port.py --bug $bug"
done <"$tmp/cases"
# the missing sub-norm, measured against the weights when the model is given
python3 port.py -m tiny.gguf --tokens $tokens -n 1 --bug no-subnorm -o ns.npz >/dev/null || fail "port --bug no-subnorm"
bitparity trace -m tiny.gguf --tokens-from ns.npz --numerics f32 -o nsref.npz 2>/dev/null || fail "trace for no-subnorm"
bitparity compare ns.npz nsref.npz -m tiny.gguf >"$tmp/out" 2>&1
grep -q 'hint: subnorm-missing: blk.0.attn_out: the subject records no blk.0.attn_sub_norm and projects blk.0.attn_ctx unnormed' "$tmp/out" ||
    fail "no-subnorm with -m: $(cat "$tmp/out")"
grep -Eq 'vs W·blk.0.attn_ctx NMSE [0-9.]+e-0[5-9]' "$tmp/out" || fail "no-subnorm evidence: $(cat "$tmp/out")"
echo "foreign_engine: README's commands name the bug; 6 bugs named; clean port passes"
