#!/usr/bin/env bash
# gate.sh — `bitparity gate` end to end (docs/gate.md): a manifest of 8 entries (fixture models
# against their expected traces, the Python reference, another model, the shared bitnet.cpp and
# llama.cpp traces as optional entries, a perplexity/KLD gate on the trained fixture):
#   - run whole, and as 2 shards plus `--merge`: the merged summary.yaml is byte for byte the
#     whole run's, both shards hold entries, the merged folder has every receipt and detail page;
#   - exit 0 when everything passes; optional entries without ../shared are skipped, not failed;
#   - exit 1 for a model against the wrong expected trace and for a missed perplexity threshold,
#     named in summary.yaml / summary.md / summary.html;
#   - exit 2 for a bad manifest (file, line and key named), a missing non-optional file, a merge
#     with a shard missing;
#   - ci/parity-gate.sh --manifest runs the same gate for CI (exit code, step summary);
#   - ci/github-workflow-example.yml parses as YAML and runs the shards, the merge and the summary.
set -u
. "$(dirname "$0")/lib/common.sh"
fx=$src/fixtures
shared=${BITPARITY_SHARED_DIR:-}
[ -n "$shared" ] && [ -f "$shared/reference-traces/bitnetcpp/i2s/p1.npz" ] || shared=$tmp/no-shared

mkdir "$tmp/m"
cat >"$tmp/m/gate.yaml" <<YAML
gate: bitparity-gate/v1
vars:
  fx: $fx
  shared: $tmp/no-shared   # the command line's --set wins
entries:
  - {name: b158-i2s.p1, model: "\${fx}/models/b158-i2s.gguf", reference: "\${fx}/expected/b158-i2s.p1.compat.npz", policy: exact}
  - {name: llama-q8_0.p1, model: "\${fx}/models/llama-q8_0.gguf", reference: "\${fx}/expected/llama-q8_0.p1.compat.npz", policy: exact}
  - {name: llama-f32.p2, model: "\${fx}/models/llama-f32.gguf", reference: "\${fx}/expected/llama-f32.p2.f32.npz"}
  - name: b158-f32.python
    model: "\${fx}/models/b158-f32.gguf"
    reference: python
    tokens: [188, 39, 72, 11, 258, 220]
    decode: 1
    numerics: f32
  - name: b25-i2s.vs-itself
    model: "\${fx}/models/b25-i2s.gguf"
    reference: {model: "\${fx}/models/b25-i2s.gguf"}
    prompt: "the heat"
    policy: exact
  - {name: bitnetcpp-i2s-p1, optional: true, model: "\${shared}/models/tiny-bitnet-i2s.gguf", reference: "\${shared}/reference-traces/bitnetcpp/i2s/p1.npz"}
  - {name: llamacpp-tq2_0-p1, optional: true, model: "\${shared}/models/tiny-bitnet-llamacpp-tq2_0.gguf", reference: "\${shared}/reference-traces/llamacpp/tq2_0-p1.npz"}
  - name: kjv-i2s.ppl
    model: "\${fx}/trained/tiny-kjv-i2s.gguf"
    base: "\${fx}/trained/tiny-kjv-f32.gguf"
    perplexity: "\${fx}/trained/heldout.txt"
    bytes: 2000
    ppl_max: 4.5
    kld_mean_max: 0.01
    top1_min: 0.9
YAML

run() { # run NAME ARGS...: the gate's exit code in $rc, its output in $tmp/NAME.out
    local name=$1
    shift
    "$bp" gate "$@" >"$tmp/$name.out" 2>&1
    rc=$?
}

run whole "$tmp/m/gate.yaml" --set shared="$shared" -o "$tmp/whole"
[ $rc -eq 0 ] || fail "whole run exited $rc: $(cat "$tmp/whole.out")"
grep -q 'counts: {pass: [0-9]*, fail: 0, skipped: [0-9]*, error: 0}' "$tmp/whole/summary.yaml" ||
    fail "counts: $(grep counts "$tmp/whole/summary.yaml")"
if [ "$shared" = "$tmp/no-shared" ]; then
    echo "note: ../shared absent: the 2 shared entries must be skipped"
    grep -q 'counts: {pass: 6, fail: 0, skipped: 2, error: 0}' "$tmp/whole/summary.yaml" || fail "not skipped"
    grep -Eq "^  message: [\"']skipped, missing: \\\$\\{shared\\}/models/tiny-bitnet-i2s.gguf[\"']\$" "$tmp/whole/summary.yaml" ||
        fail "skip reason: $(cat "$tmp/whole/summary.yaml")"
else
    grep -q 'counts: {pass: 8, fail: 0, skipped: 0, error: 0}' "$tmp/whole/summary.yaml" || fail "shared entries"
    grep -A12 'name: bitnetcpp-i2s-p1' "$tmp/whole/summary.yaml" | grep -q 'failed: 0' || fail "bitnetcpp entry"
fi
for f in summary.yaml summary.md summary.html entries/b158-i2s.p1/receipt.yaml entries/b158-i2s.p1/report.html \
    entries/kjv-i2s.ppl/perplexity.yaml entries/b158-f32.python/reference.npz; do
    [ -s "$tmp/whole/$f" ] || fail "no $f"
done
# real numbers: the exact fixture entry is bit-identical at 27 taps; the trained model's perplexity on the
# first 2000 bytes is ~4.35 and within 1e-2 nats of its F32 twin
"$py" - "$tmp/whole/summary.yaml" <<'PY' || fail "summary numbers"
import sys, yaml
s = yaml.safe_load(open(sys.argv[1]))
e = {x['name']: x for x in s['entries']}
assert s['gate'] == 'bitparity-gate/v1' and s['shard'] is None and s['entries_in_manifest'] == 8, s
assert [x['index'] for x in s['entries']] == list(range(8))
assert e['b158-i2s.p1']['policy'] == 'exact' and e['b158-i2s.p1']['compared'] == 27, e['b158-i2s.p1']
assert e['b158-i2s.p1']['message'] == '27 taps compared, 27 bit-identical', e['b158-i2s.p1']
assert e['b158-f32.python']['verdict'] == 'pass' and e['b158-f32.python']['compared'] > 0, e['b158-f32.python']
assert e['b25-i2s.vs-itself']['reference'].startswith('model: ${fx}/'), e['b25-i2s.vs-itself']
p = e['kjv-i2s.ppl']
assert p["tokens"] == 2000 and 3.5 < p["ppl"] < 4.5, p
assert 0 < p['kld_mean'] < 0.01 and 0.9 <= p['top1'] <= 1, p
PY

# 2 shards and a merge: the same summary.yaml, byte for byte; the shards map
# their models (--load mmap) where the whole run read them into memory, and
# every verdict and number is the same
run s1 "$tmp/m/gate.yaml" --set shared="$shared" --shard 1/2 --load mmap -o "$tmp/s1"
[ $rc -eq 0 ] || fail "shard 1/2 exited $rc: $(cat "$tmp/s1.out")"
run s2 "$tmp/m/gate.yaml" --set shared="$shared" --shard 2/2 --load mmap -o "$tmp/s2"
[ $rc -eq 0 ] || fail "shard 2/2 exited $rc: $(cat "$tmp/s2.out")"
grep -q '^shard: {index: 1, count: 2}' "$tmp/s1/summary.yaml" || fail "shard 1 summary"
n1=$(grep -c '^- name:' "$tmp/s1/summary.yaml")
n2=$(grep -c '^- name:' "$tmp/s2/summary.yaml")
[ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] && [ $((n1 + n2)) -eq 8 ] || fail "shards hold $n1 + $n2 entries"
run merge --merge "$tmp/s2" "$tmp/s1" -o "$tmp/merged"
[ $rc -eq 0 ] || fail "merge exited $rc: $(cat "$tmp/merge.out")"
cmp "$tmp/whole/summary.yaml" "$tmp/merged/summary.yaml" || fail "merged summary differs: $(diff "$tmp/whole/summary.yaml" "$tmp/merged/summary.yaml")"
cmp "$tmp/whole/summary.md" "$tmp/merged/summary.md" || fail "merged summary.md differs"
for f in entries/b158-i2s.p1/report.html entries/kjv-i2s.ppl/perplexity.yaml entries/llama-f32.p2/receipt.yaml; do
    [ -s "$tmp/merged/$f" ] || fail "merged: no $f"
done
run merge1 --merge "$tmp/s1" -o "$tmp/m1"
[ $rc -eq 2 ] && grep -q 'shard 2/2 is missing' "$tmp/merge1.out" || fail "merge of 1 of 2 shards: $rc $(cat "$tmp/merge1.out")"

# failures: a model against another model's expected trace; a perplexity limit below the measure
cat >"$tmp/m/fail.yaml" <<YAML
entries:
  - {name: ok, model: "$fx/models/b158-i2s.gguf", reference: "$fx/expected/b158-i2s.p1.compat.npz"}
  - {name: wrong-reference, model: "$fx/models/llama-f32.gguf", reference: "$fx/expected/llama-f16.p1.f32.npz", arbiter: python}
  - {name: ppl-too-high, model: "$fx/trained/tiny-kjv-i2s.gguf", perplexity: "$fx/trained/heldout.txt", bytes: 500, ppl_max: 2.5}
YAML
run fail "$tmp/m/fail.yaml" -o "$tmp/fail"
[ $rc -eq 1 ] || fail "failing manifest exited $rc: $(cat "$tmp/fail.out")"
grep -q 'counts: {pass: 1, fail: 2, skipped: 0, error: 0}' "$tmp/fail/summary.yaml" || fail "fail counts"
grep -A12 'name: wrong-reference' "$tmp/fail/summary.yaml" | grep -Eq "message: [\"']first divergence: e0 " ||
    fail "wrong-reference message: $(cat "$tmp/fail/summary.yaml")"
# arbiter: python: the independent reference runs llama-f32's declared math: the subject agrees with it
grep -A3 '^arbiter:' "$tmp/fail/entries/wrong-reference/receipt.yaml" | grep -q '^  verdict: subject$' ||
    fail "arbiter: $(grep -A3 '^arbiter:' "$tmp/fail/entries/wrong-reference/receipt.yaml")"
grep -q '^  message: "\{0,1\}ppl [0-9.]* > ppl_max 2.5"\{0,1\}$' "$tmp/fail/summary.yaml" || fail "ppl message"
grep -q '^## bitparity gate: .* FAIL' "$tmp/fail/summary.md" || fail "summary.md: $(head -3 "$tmp/fail/summary.md")"
grep -q '\[`wrong-reference`\](entries/wrong-reference/report.html) | ❌ \*\*fail\*\*' "$tmp/fail/summary.md" ||
    fail "summary.md row: $(cat "$tmp/fail/summary.md")"
grep -q '<a href="entries/wrong-reference/report.html"><code>wrong-reference</code></a>' "$tmp/fail/summary.html" ||
    fail "summary.html link"
grep -q '<span class="badge fail">FAIL</span>' "$tmp/fail/summary.html" || fail "summary.html badge"

# ci/parity-gate.sh --manifest: the same gate, its exit code, summary.md appended to the step summary
GITHUB_STEP_SUMMARY=$tmp/step.md BITPARITY=$bp bash "$src/ci/parity-gate.sh" --manifest "$tmp/m/fail.yaml" \
    --out "$tmp/pg" >"$tmp/pg.out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "parity-gate.sh --manifest exited $rc: $(cat "$tmp/pg.out")"
cmp -s "$tmp/pg/summary.md" "$tmp/step.md" || fail "parity-gate.sh: the step summary is not summary.md"

# input errors: exit 2, naming the file, the line and the key
printf 'entries:\n  - name: x\n    model: a.gguf\n    perplexity: t.txt\n    ppl_max: high\n' >"$tmp/m/bad.yaml"
run bad "$tmp/m/bad.yaml" -o "$tmp/bad"
[ $rc -eq 2 ] || fail "bad manifest exited $rc"
grep -q "bad.yaml:5: key 'ppl_max': expected a number >= 0, got 'high'" "$tmp/bad.out" || fail "bad manifest: $(cat "$tmp/bad.out")"
printf 'entries:\n  - {name: x, model: a.gguf, reference: r.npz, colour: red}\n' >"$tmp/m/bad2.yaml"
run bad2 "$tmp/m/bad2.yaml" -o "$tmp/bad"
[ $rc -eq 2 ] && grep -q "bad2.yaml:2: key 'colour': not a key of a parity entry" "$tmp/bad2.out" ||
    fail "unknown key: $rc $(cat "$tmp/bad2.out")"
printf 'entries:\n  - {name: x, model: "${nope}/a.gguf", reference: r.npz}\n' >"$tmp/m/bad3.yaml"
run bad3 "$tmp/m/bad3.yaml" -o "$tmp/bad"
[ $rc -eq 2 ] && grep -q "bad3.yaml:2: key 'model': .*no variable 'nope'" "$tmp/bad3.out" || fail "unknown var: $(cat "$tmp/bad3.out")"
printf 'entries:\n  - {name: gone, model: missing.gguf, reference: r.npz}\n' >"$tmp/m/missing.yaml"
run missing "$tmp/m/missing.yaml" -o "$tmp/missing"
[ $rc -eq 2 ] || fail "missing non-optional file exited $rc: $(cat "$tmp/missing.out")"
grep -q 'counts: {pass: 0, fail: 0, skipped: 0, error: 1}' "$tmp/missing/summary.yaml" || fail "missing: counts"
run shard "$tmp/m/gate.yaml" --shard 3/2
[ $rc -eq 2 ] || fail "--shard 3/2 exited $rc"

# the example workflow a user copies: YAML, a matrix over shards, the merge, the step summary
wf=$src/ci/github-workflow-example.yml
grep -qF 'bitparity gate "$MANIFEST" --shard ${{ matrix.shard }}/2' "$wf" || fail "workflow: no sharded gate"
grep -qF 'gate --merge' "$wf" && grep -qF 'GITHUB_STEP_SUMMARY' "$wf" || fail "workflow: no merge or step summary"
if "$py" -c 'import yaml' 2>/dev/null; then
    "$py" - "$wf" <<'PY' || fail "workflow does not parse"
import sys, yaml
w = yaml.safe_load(open(sys.argv[1]))
jobs = w['jobs']
assert jobs['gate']['strategy']['matrix']['shard'] == [1, 2], jobs['gate']
assert jobs['merge']['needs'] == 'gate', jobs['merge']
PY
fi
echo "PASS"
