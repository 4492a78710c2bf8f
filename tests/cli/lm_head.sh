#!/usr/bin/env bash
# --lm-head q8_0 (issue 13: an explicit, recorded faster lm_head): the lm_head
# requantized once loaded, never silently. run says so on stderr, a trace
# records settings.lm_head, perplexity prints it, and a comparison with the
# file's lm_head is judged under `quantized` automatically; every tap before
# the logits keeps its bits, the logits differ by Q8_0's rounding only.
set -u
. "$(dirname "$0")/lib/common.sh"
m="$src/fixtures/models/b158-i2s.gguf"
toks=1,2,3,4,5,6,7,8,9,10,11,12
"$bp" run -m "$m" --tokens "$toks" -n 4 --temp 0 --ids --lm-head q8_0 >"$tmp/run.out" 2>"$tmp/run.err" ||
    fail "run --lm-head q8_0: $(cat "$tmp/run.err")"
grep -q '^bitparity run: lm_head requantized to q8_0 (--lm-head; [0-9.]* s): logits differ' "$tmp/run.err" ||
    fail "run did not say the lm_head was requantized: $(cat "$tmp/run.err")"
"$bp" run -m "$m" --tokens "$toks" -n 4 --temp 0 --ids >/dev/null 2>"$tmp/run0.err" || fail "run"
grep -q 'lm_head' "$tmp/run0.err" && fail "run without --lm-head mentions it: $(cat "$tmp/run0.err")"
for th in 1 3; do
    "$bp" trace -m "$m" --tokens "$toks" --decode 2 --lm-head q8_0 --threads $th -o "$tmp/q8-$th.npz" 2>/dev/null ||
        fail "trace --lm-head q8_0 ($th threads)"
done
"$bp" trace -m "$m" --tokens-from "$tmp/q8-1.npz" -o "$tmp/f16.npz" 2>/dev/null || fail "trace (the file's lm_head)"
"$py" -c "import sys, zipfile, yaml
q = yaml.safe_load(zipfile.ZipFile(sys.argv[1]).read('meta.yaml'))['settings']
f = yaml.safe_load(zipfile.ZipFile(sys.argv[2]).read('meta.yaml'))['settings']
assert q['lm_head'] == 'q8_0' and 'lm_head' not in f, (q, f)" "$tmp/q8-1.npz" "$tmp/f16.npz" ||
    fail "settings.lm_head not recorded as it should be"
# the copy does not depend on the thread count that made it
"$bp" compare "$tmp/q8-1.npz" "$tmp/q8-3.npz" >"$tmp/out" || fail "q8_0 lm_head: threads differ: $(cat "$tmp/out")"
grep -q 'policy     exact (auto' "$tmp/out" || fail "two q8_0 traces not judged exact: $(cat "$tmp/out")"
# against the file's lm_head: quantized, automatically, with the reason
"$bp" compare "$tmp/q8-1.npz" "$tmp/f16.npz" -o "$tmp/r.yaml" >"$tmp/out" || fail "q8_0 vs stored lm_head: $(head -5 "$tmp/out")"
grep -q "choice: 'auto: lm_head types differ (q8_0 vs stored)" "$tmp/r.yaml" && grep -q 'policy     quantized (auto: lm_head types differ (q8_0 vs stored)' "$tmp/out" ||
    fail "q8_0 vs stored lm_head: $(head -5 "$tmp/out")"
# exact: the first divergence is e0's logits, every earlier tap bit for bit
"$bp" compare "$tmp/q8-1.npz" "$tmp/f16.npz" --policy exact >"$tmp/out"
[ $? -eq 1 ] && grep -q '^first divergence: e0 logits' "$tmp/out" || fail "exact: $(head -5 "$tmp/out")"
# ... and named: the lm-head-type hint, with the earlier taps counted
grep -q "^hint: lm-head-type: the subject's lm_head is q8_0 and the reference's stored (settings.lm_head): the logits \
differ by that quantization, every earlier tap is bit-identical (36 of 36 earlier taps bit-identical; e0 logits nmse " \
    "$tmp/out" || fail "no lm-head-type hint: $(grep hint "$tmp/out")"
"$bp" compare "$tmp/q8-1.npz" "$tmp/q8-3.npz" --policy exact | grep -q 'lm-head-type' && fail "lm-head-type on equal types"
# an explicit "lm_head: stored" is the file's lm_head, as an absent key is: a q8_0 trace relabelled so is then the
# same type as f16.npz, judged exact, and its differing logits get no lm-head-type hint ("stored and stored")
"$py" - "$tmp/q8-3.npz" "$tmp/relabelled.npz" <<'PY' || fail "could not relabel a trace"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as a, zipfile.ZipFile(sys.argv[2], 'w') as b:
    for i in a.infolist():
        d = a.read(i.filename)
        b.writestr(i, d.replace(b'lm_head: q8_0', b'lm_head: stored') if i.filename == 'meta.yaml' else d)
PY
"$bp" compare "$tmp/f16.npz" "$tmp/relabelled.npz" >"$tmp/out"
[ $? -eq 1 ] && grep -q 'policy     exact (auto' "$tmp/out" && grep -q '^first divergence: e0 logits' "$tmp/out" ||
    fail "absent vs explicit stored lm_head: $(head -5 "$tmp/out")"
grep -q 'lm-head-type' "$tmp/out" && fail "lm-head-type hint on absent vs explicit stored: $(grep hint "$tmp/out")"
# ... by Q8_0's rounding only: the logits agree to well within 1 % (relative RMS)
"$py" -c "import sys, zipfile, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
for k in ('e0', 'e1', 'e2'):
    x, y = a[k + '/logits'].astype(np.float64), b[k + '/logits'].astype(np.float64)
    rel = np.sqrt(np.mean((x - y) ** 2) / np.mean(y ** 2))
    assert 0 < rel < 1e-2, (k, rel)" "$tmp/q8-1.npz" "$tmp/f16.npz" || fail "q8_0 logits not close to the file's"
# check follows the reference's settings.lm_head: the engine requantizes too, and the two agree bit for bit
"$bp" check -m "$m" --reference "$tmp/q8-1.npz" --keep-trace "$tmp/chk.npz" >"$tmp/out" 2>&1 ||
    fail "check against a q8_0 reference: $(head -8 "$tmp/out")"
grep -q 'policy     exact (auto' "$tmp/out" && grep -q '111 compared: 111 pass (111 bit-identical)' "$tmp/out" ||
    fail "check against a q8_0 reference: $(head -8 "$tmp/out")"
"$py" -c "import sys, zipfile, yaml
assert yaml.safe_load(zipfile.ZipFile(sys.argv[1]).read('meta.yaml'))['settings']['lm_head'] == 'q8_0'" "$tmp/chk.npz" ||
    fail "check's own trace does not record lm_head"
"$py" - "$tmp/q8-1.npz" "$tmp/q4.npz" <<'PY' || fail "could not write a q4 reference"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as a, zipfile.ZipFile(sys.argv[2], 'w') as b:
    for i in a.infolist():
        d = a.read(i.filename)
        b.writestr(i, d.replace(b'lm_head: q8_0', b'lm_head: q4_k') if i.filename == 'meta.yaml' else d)
PY
"$bp" check -m "$m" --reference "$tmp/q4.npz" >"$tmp/out" 2>&1
[ $? -eq 2 ] && grep -q "settings.lm_head 'q4_k': the engine requantizes an lm_head to q8_0 only" "$tmp/out" ||
    fail "check against a q4_k reference: $(head -3 "$tmp/out")"
# perplexity records it too, and its figure moves only a little
printf 'the quick brown fox jumps over the lazy dog. ' >"$tmp/text"
for i in 1 2 3 4 5; do cat "$tmp/text" "$tmp/text" >"$tmp/t2" && mv "$tmp/t2" "$tmp/text"; done
"$bp" perplexity -m "$m" -f "$tmp/text" --ctx 64 --lm-head q8_0 >"$tmp/pq" 2>/dev/null || fail "perplexity --lm-head q8_0"
"$bp" perplexity -m "$m" -f "$tmp/text" --ctx 64 >"$tmp/pf" 2>/dev/null || fail "perplexity"
grep -qx 'lm_head = q8_0' "$tmp/pq" || fail "perplexity did not record lm_head: $(cat "$tmp/pq")"
grep -q 'lm_head' "$tmp/pf" && fail "perplexity without --lm-head mentions it"
a=$(sed -n 's/^perplexity = //p' "$tmp/pq") b=$(sed -n 's/^perplexity = //p' "$tmp/pf")
awk -v a="$a" -v b="$b" 'BEGIN {r = a / b; exit !(a != b && r > 0.99 && r < 1.01)}' ||
    fail "perplexity q8_0 $a vs the file's $b"
# usage errors
for args in "run --tokens 1,2" "trace --tokens 1,2 -o $tmp/x.npz" "perplexity -f $tmp/text"; do
    cmd=${args%% *}
    "$bp" $args -m "$m" --lm-head q4 >"$tmp/out" 2>&1
    [ $? -eq 2 ] && grep -q "bitparity $cmd: --lm-head 'q4': expected stored or q8_0" "$tmp/out" ||
        fail "$cmd --lm-head q4: $(cat "$tmp/out")"
done
[ -e "$tmp/x.npz" ] && fail "a usage error left a trace"
echo "lm_head: ok"
