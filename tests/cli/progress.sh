#!/usr/bin/env bash
# progress.sh — progress on stderr (cli/progress.c): with --progress, trace,
# check, compare, perplexity and synth draw one updating line ("\r<cmd>: <stage>
# done/total unit (pct)  ... rate unit/s  ETA t") that ends complete (done =
# total) and is cleared at the end; without it (stderr is a file here) and
# with --quiet nothing of it appears; outputs are byte-identical either way.
# On a terminal (script(1), when present) the line shows by default and
# --quiet silences it.
# $1 = the bitparity binary.
set -u
source "$(dirname "$0")/lib/common.sh"
model=$src/fixtures/models/b158-i2s.gguf
ref=$src/fixtures/expected/b158-i2s.p1.compat.npz
text=$src/fixtures/prompts.txt

# has_progress FILE CMD STAGE UNIT: a progress line, its final state, and the clearing.
has_progress() {
    "$py" - "$@" <<'PY' || fail "$2 --progress: stderr lacks a complete progress line: $(tr '\r' '|' <"$1")"
import re, sys
path, cmd, stage, unit = sys.argv[1:]
err = open(path, encoding='utf-8', newline='').read()  # keep the \r
lines = err.split('\r')
pat = re.compile(r'%s: %s (\d+)/(\d+) %s \((\d+)%%\)(  [0-9.]+ MB written \([0-9.]+ MB/s\))?  ([0-9.]+|-) %s/s  ETA (\S+) *$'
                 % (re.escape(cmd), stage, unit, unit))
shown = [m for m in map(pat.match, lines) if m]
assert shown, 'no progress line'
done, total = int(shown[-1].group(1)), int(shown[-1].group(2))
assert done == total > 0 and shown[-1].group(3) == '100', shown[-1].group(0)
assert shown[-1].group(5) != '-' and shown[-1].group(6) == '0.0s', shown[-1].group(0)  # a rate at the end, ETA 0
counts = [int(m.group(1)) for m in shown]
assert counts == sorted(counts), counts  # never goes back within a stage
# the line is cleared: after the last progress line (of any stage) come blanks over its length
i = max(i for i, l in enumerate(lines) if l.startswith(cmd + ': ') and ' ETA ' in l)
assert lines[i + 1].strip() == '' and len(lines[i + 1]) >= len(lines[i].rstrip()), repr(lines[i + 1])
PY
}
no_progress() { # FILE WHAT
    if grep -q $'\r' "$1" || grep -q 'ETA' "$1"; then fail "$2: progress on stderr: $(tr '\r' '|' <"$1")"; fi
}

# trace: layers of every evaluation, MB written
"$bp" trace -m "$model" --tokens-from "$ref" -o "$tmp/p.npz" --progress 2>"$tmp/e" || fail "trace --progress exited $?"
has_progress "$tmp/e" trace recording layers
grep -q 'MB written' "$tmp/e" || fail "trace --progress: no MB written"
"$bp" trace -m "$model" --tokens-from "$ref" -o "$tmp/n.npz" 2>"$tmp/e" || fail "trace exited $?"
no_progress "$tmp/e" "trace (stderr not a terminal)"
"$bp" trace -m "$model" --tokens-from "$ref" -o "$tmp/q.npz" --quiet 2>"$tmp/e" || fail "trace --quiet exited $?"
no_progress "$tmp/e" "trace --quiet"
cmp -s "$tmp/p.npz" "$tmp/n.npz" || fail "trace: the trace with --progress differs from the one without"
cmp -s "$tmp/q.npz" "$tmp/n.npz" || fail "trace: the trace with --quiet differs"

# check: the recording, then the comparison; results identical
"$bp" check -m "$model" --reference "$ref" --progress --keep-trace "$tmp/kp.npz" >"$tmp/o1" 2>"$tmp/e" ||
    fail "check --progress exited $?"
has_progress "$tmp/e" check recording layers
has_progress "$tmp/e" check comparing taps
"$bp" check -m "$model" --reference "$ref" --keep-trace "$tmp/kn.npz" >"$tmp/o2" 2>"$tmp/e" || fail "check exited $?"
no_progress "$tmp/e" "check"
cmp -s "$tmp/kp.npz" "$tmp/kn.npz" || fail "check: the kept trace with --progress differs"
sed -i 's/kp\.npz/kn.npz/' "$tmp/o1" # the kept trace's name is printed
cmp -s "$tmp/o1" "$tmp/o2" || fail "check: stdout with --progress differs"
"$bp" check -m "$model" --reference "$ref" --quiet >/dev/null 2>"$tmp/e" || fail "check --quiet exited $?"
no_progress "$tmp/e" "check --quiet"
"$bp" check -m "$model" --reference "$ref" --quiet --progress >/dev/null 2>"$tmp/e"
[ $? = 2 ] || fail "check --quiet --progress should be a usage error"

# compare of two files: taps
"$bp" compare "$tmp/n.npz" "$ref" --progress >"$tmp/o1" 2>"$tmp/e" || fail "compare --progress exited $?"
has_progress "$tmp/e" compare comparing taps
"$bp" compare "$tmp/n.npz" "$ref" >"$tmp/o2" 2>"$tmp/e" || fail "compare exited $?"
no_progress "$tmp/e" "compare"
cmp -s "$tmp/o1" "$tmp/o2" || fail "compare: stdout with --progress differs"

# perplexity: layers of every window; the numbers and the saved logits unchanged
"$bp" perplexity -m "$model" -f "$text" --ctx 16 --save-logits "$tmp/lp.npz" --progress >"$tmp/o1" 2>"$tmp/e" ||
    fail "perplexity --progress exited $?"
has_progress "$tmp/e" perplexity evaluating layers
"$bp" perplexity -m "$model" -f "$text" --ctx 16 --save-logits "$tmp/ln.npz" >"$tmp/o2" 2>"$tmp/e" ||
    fail "perplexity exited $?"
no_progress "$tmp/e" "perplexity"
cmp -s "$tmp/o1" "$tmp/o2" || fail "perplexity: stdout with --progress differs"
cmp -s "$tmp/lp.npz" "$tmp/ln.npz" || fail "perplexity: saved logits with --progress differ"

# synth: tensors and MB written; the same bytes
"$bp" synth --shape tiny --type i2_s -o "$tmp/p.gguf" --progress 2>"$tmp/e" || fail "synth --progress exited $?"
has_progress "$tmp/e" synth writing tensors
"$bp" synth --shape tiny --type i2_s -o "$tmp/n.gguf" 2>"$tmp/e" || fail "synth exited $?"
no_progress "$tmp/e" "synth"
grep -q '^bitparity synth: wrote' "$tmp/e" || fail "synth: its message is gone"
cmp -s "$tmp/p.gguf" "$tmp/n.gguf" || fail "synth: the model with --progress differs"

for c in trace check compare perplexity synth; do
    "$bp" $c --help | grep -q -- '--progress' || fail "$c --help does not list --progress"
    "$bp" $c --help | grep -q -- '--quiet' || fail "$c --help does not list --quiet"
done

# On a terminal: shown by default, silenced by --quiet (script(1) gives the command a pty).
if command -v script >/dev/null 2>&1; then
    script -qec "'$bp' trace -m '$model' --tokens-from '$ref' -o '$tmp/t.npz'" /dev/null >"$tmp/tty" </dev/null ||
        fail "trace on a terminal exited $?"
    has_progress "$tmp/tty" trace recording layers
    script -qec "'$bp' trace -m '$model' --tokens-from '$ref' -o '$tmp/t.npz' --quiet" /dev/null >"$tmp/tty" </dev/null ||
        fail "trace --quiet on a terminal exited $?"
    no_progress "$tmp/tty" "trace --quiet on a terminal"
    cmp -s "$tmp/t.npz" "$tmp/n.npz" || fail "trace on a terminal: a different trace"
else
    echo "note: script(1) absent: the terminal case is not tested"
fi
echo "progress: ok"
