# porting_bugs.sh — sourced after common.sh: the classic porting bugs, as a foreign engine's trace.
#
# assert_bug_named PORT CLEAN MODEL TAP HINT LABEL: compare PORT (a foreign trace with one bug)
# against CLEAN must fail (exit 1) with its first divergence at e0 TAP and the hint HINT among the
# hints, and --replay must be refused (exit 2: it would re-run bitparity's engine, not the port).
assert_bug_named() {
    local port=$1 clean=$2 model=$3 tap=$4 hint=$5 label=$6 rc
    "$bp" compare "$port" "$clean" -o "$tmp/r.yaml" >"$tmp/out" 2>&1
    rc=$?
    [ $rc -eq 1 ] || fail "$label: compare exited $rc, not 1: $(cat "$tmp/out")"
    "$py" - "$tmp/r.yaml" "$tap" "$hint" "$label" <<'PY' || fail "$label: $(cat "$tmp/out")"
import re, sys
text, tap, hint, label = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3], sys.argv[4]
subject = text.split('subject:', 1)[1].split('\nreference:', 1)[0]
m = re.search(r'\bfault: (?!(?:null|none)\b).*', subject)
assert not m, 'the foreign trace carries an engine fault name: %s' % m.group(0)
fd = text[text.index('first_divergence:'):]
m = re.search(r'\n\s+evaluation: (\S+)\n\s+tap: (\S+)', fd)
assert m and (m.group(1), m.group(2)) == ('e0', tap), (label, m and m.groups(), tap)
names = re.findall(r'^\s*-?\s*name: (\S+)', text[text.index('hints:'):], re.M)
assert hint in names, (label, hint, names)
PY
    "$bp" compare "$port" "$clean" --replay -m "$model" >"$tmp/out" 2>&1
    rc=$?
    [ $rc -eq 2 ] || fail "$label: --replay on a foreign trace exited $rc, not refused: $(cat "$tmp/out")"
}

# porting_bug_cases: the classic porting bugs, one per line: the engine's --fault that computes
# what a port with it computes, the name of the bug switch of the test ports (torch_bitnet.py), the
# tap where it first shows in a trace of b158-i2s.gguf, and the hint that must name it.
porting_bug_cases() {
    cat <<'CASES'
silu silu blk.0.ffn_act activation-swap
gamma-inv-sqrt-h gamma-inv-sqrt-h blk.0.attn_norm scale-factor
layernorm layernorm blk.0.attn_norm layernorm-vs-rmsnorm
no-subnorm no-subnorm blk.0.attn_sub_norm subnorm-missing
rope-normal rope-normal blk.0.attn_q_rope rope-pairing
qk-head-perm head-order blk.0.attn_q head-permutation
CASES
}

# check_porting_bugs WRITER: for each bug, the engine's seeded fault gives the activations a port
# with that bug computes; `WRITER IN.npz OUT.npz MODEL` writes them again as a foreign engine's
# trace, which assert_bug_named checks.
check_porting_bugs() {
    local writer=$1 model="$src/fixtures/models/b158-i2s.gguf" # 8 heads / 4 KV: head order and RoPE pairing show
    local tokens=264,72,101,108,108,111 fault tap hint _
    "$bp" trace -m "$model" --tokens $tokens --decode 1 -o "$tmp/clean.npz" 2>/dev/null || fail "clean trace"
    while read -r fault _ tap hint; do
        "$bp" trace -m "$model" --tokens $tokens --decode 1 --fault "$fault" -o "$tmp/fault.npz" 2>/dev/null ||
            fail "trace --fault $fault"
        rm -f "$tmp/port.npz"
        "$writer" "$tmp/fault.npz" "$tmp/port.npz" "$model" 2>"$tmp/err" || fail "$fault: $writer: $(cat "$tmp/err")"
        assert_bug_named "$tmp/port.npz" "$tmp/clean.npz" "$model" "$tap" "$hint" "$fault ($writer)"
    done < <(porting_bug_cases)
}
