#!/usr/bin/env bash
# tokens_from.sh — `trace --tokens-from T` teacher-forces another trace's
# tokens: the new trace evaluates exactly T's evaluations (its prompt, then
# each decode step's token, whatever this engine would have chosen), so a
# foreign engine that decoded other tokens is still compared on every
# evaluation. Needs no shared data. $1 = the bitparity binary.
set -u
. "$(dirname "$0")/lib/common.sh"

"$bp" synth --shape tiny --type i2_s --seed 1 -o "$tmp/m.gguf" 2>/dev/null || fail "synth"
"$bp" synth --shape tiny --type i2_s --seed 2 -o "$tmp/other.gguf" 2>/dev/null || fail "synth other"
# A trace of another model: its greedy decode steps are tokens this model would not choose.
"$bp" trace -m "$tmp/other.gguf" --tokens 509,286,220,457 --decode 3 -o "$tmp/other.npz" 2>/dev/null ||
    fail "trace of the other model"
"$bp" trace -m "$tmp/m.gguf" --tokens-from "$tmp/other.npz" -o "$tmp/forced.npz" 2>"$tmp/err" ||
    fail "trace --tokens-from: $(cat "$tmp/err")"
"$bp" trace -m "$tmp/m.gguf" --tokens 509,286,220,457 --decode 3 -o "$tmp/free.npz" 2>/dev/null || fail "free trace"

# the forced trace evaluates exactly the other trace's tokens, at the same positions
"$py" - "$tmp/other.npz" "$tmp/forced.npz" "$tmp/free.npz" <<'PY' || fail "evaluations"
import sys, zipfile, re
def evals(path):
    meta = zipfile.ZipFile(path).read("meta.yaml").decode()
    return re.findall(r"- \{id: (e\d+), tokens: \[([^\]]*)\], p0: (\d+)\}", meta)
other, forced, free = (evals(p) for p in sys.argv[1:])
assert len(other) == 4, other
assert forced == other, (forced, other)
assert free != other, "the test needs the free run to decode other tokens than the other model"
PY

# the same-model comparison of the forced and the free trace passes up to where decode diverged and says where
"$bp" compare "$tmp/forced.npz" "$tmp/free.npz" >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] || [ $rc -eq 1 ] || fail "compare exited $rc: $(cat "$tmp/out")"
grep -q "decode diverged: e[1-3]: token 0 is" "$tmp/out" || fail "no decode-diverged diagnosis: $(cat "$tmp/out")"

# usage errors
"$bp" trace -m "$tmp/m.gguf" --tokens-from "$tmp/other.npz" --decode 2 -o "$tmp/x.npz" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "exclude each other" "$tmp/err" || fail "--decode with --tokens-from: $(cat "$tmp/err")"
"$bp" trace -m "$tmp/m.gguf" --tokens 1 --tokens-from "$tmp/other.npz" -o "$tmp/x.npz" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "exactly one of" "$tmp/err" || fail "--tokens with --tokens-from: $(cat "$tmp/err")"
"$bp" trace -m "$tmp/m.gguf" --tokens-from "$tmp/absent.npz" -o "$tmp/x.npz" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "$tmp/absent.npz" "$tmp/err" || fail "absent trace: $(cat "$tmp/err")"
# a followed trace whose tokens this model cannot take, or whose evaluations leave a gap
"$py" - "$tmp" <<'PY' || fail "writing the hostile traces"
import sys, zipfile
for name, evals in (("big-id", "  - {id: e0, tokens: [1, 99999], p0: 0}\n"),
                    ("gap", "  - {id: e0, tokens: [1, 2], p0: 0}\n  - {id: e1, tokens: [5], p0: 3}\n")):
    with zipfile.ZipFile(f"{sys.argv[1]}/{name}.npz", "w") as z:
        z.writestr("meta.yaml", "trace: bitparity/v1\nlayout: canonical\nevaluations:\n" + evals)
PY
"$bp" trace -m "$tmp/m.gguf" --tokens-from "$tmp/big-id.npz" -o "$tmp/x.npz" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "token id 99999 at index 1 is outside the vocabulary" "$tmp/err" ||
    fail "out-of-vocabulary id: $(cat "$tmp/err")"
"$bp" trace -m "$tmp/m.gguf" --tokens-from "$tmp/gap.npz" -o "$tmp/x.npz" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "evaluation e1 starts at position 3, not at 2" "$tmp/err" || fail "gap: $(cat "$tmp/err")"
[ ! -e "$tmp/x.npz" ] || fail "a refused trace wrote its output"
echo "tokens_from: ok"
