#!/usr/bin/env bash
# report_gate_baseline.sh — `bitparity report NEW/summary.yaml --baseline OLD/summary.yaml` on two real
# gate runs of 3 entries (a fixture model against its expected trace, llama-f32 against its own trace
# then against llama-f16's, a perplexity entry whose ppl_max drops from 4.5 to 2.5): the report names
# the two entries that regressed and the tap (e0 token_embd, NMSE 0 -> 2.11) and exits 1; the
# perplexity entry shows its verdict change and its ppl; a summary against itself exits 0; a summary
# against a receipt exits 2 with a message naming both. $1 = the bitparity binary.
set -u
. "$(dirname "$0")/lib/common.sh"
fx=$src/fixtures

for run in old new; do
    if [ $run = old ]; then ref=llama-f32.p1.f32.npz pmax=4.5; else ref=llama-f16.p1.f32.npz pmax=2.5; fi
    mkdir "$tmp/m-$run"
    cat >"$tmp/m-$run/gate.yaml" <<YAML
gate: bitparity-gate/v1
entries:
  - {name: b158-i2s.p1, model: "$fx/models/b158-i2s.gguf", reference: "$fx/expected/b158-i2s.p1.compat.npz", policy: exact}
  - {name: llama-f32.p1, model: "$fx/models/llama-f32.gguf", reference: "$fx/expected/$ref"}
  - {name: kjv-i2s.ppl, model: "$fx/trained/tiny-kjv-i2s.gguf", perplexity: "$fx/trained/heldout.txt", bytes: 500, ppl_max: $pmax}
YAML
    "$bp" gate "$tmp/m-$run/gate.yaml" -o "$tmp/$run" >"$tmp/$run.out" 2>&1
    rc=$?
    [ $run = old ] && [ $rc -ne 0 ] && fail "old gate exited $rc: $(cat "$tmp/$run.out")"
    [ $run = new ] && [ $rc -ne 1 ] && fail "new gate exited $rc: $(cat "$tmp/$run.out")"
done
"$bp" report --help | grep -q 'OLD/summary.yaml' || fail "report --help lacks the gate summaries"

# The regression, in Markdown: exit 1, 2 of 3 entries, the tap that got worse first.
"$bp" report "$tmp/new/summary.yaml" --baseline "$tmp/old/summary.yaml" >"$tmp/reg.md"
[ $? -eq 1 ] || fail "a gate regression did not exit 1"
head -1 "$tmp/reg.md" | grep -qx '## ❌ REGRESSION against the baseline' || fail "title: $(head -1 "$tmp/reg.md")"
grep -q '^\*\*2 of 3 entries regressed\*\*: 27 taps went from pass to fail, .* Most severe: llama-f32.p1 e0 `token_embd`: \*\*pass → fail\*\*, NMSE 0 → 2.11 (was exact)\.$' \
    "$tmp/reg.md" || fail "headline: $(sed -n 3p "$tmp/reg.md")"
grep -qx '| b158-i2s.p1 | unchanged | pass → pass | none | none | 0 | 0 | 0 | 0 |' "$tmp/reg.md" || fail "b158 row"
grep -qx '| llama-f32.p1 | \*\*regression\*\* | pass → fail | none | e0 `token_embd` | 27 | 0 | 0 | 0 |' "$tmp/reg.md" ||
    fail "llama row: $(grep '^| llama-f32.p1 | \*' "$tmp/reg.md")"
# the perplexity entry: no receipt, its verdict and its perplexity (the same 500 bytes: the same ppl, ~3.74)
row=$(grep '^| kjv-i2s.ppl |' "$tmp/reg.md")
echo "$row" | grep -qx '| kjv-i2s.ppl | \*\*regression\*\* | pass → fail | ppl 3\.7[0-9]* | ppl 3\.7[0-9]* | 0 | 0 | 0 | 0 |' ||
    fail "perplexity row: $row"
ppl=$("$py" -c 'import sys, yaml; print("%.6g" % [e for e in yaml.safe_load(open(sys.argv[1]))["entries"] if e["name"] == "kjv-i2s.ppl"][0]["ppl"])' \
    "$tmp/new/summary.yaml") || fail "the perplexity in summary.yaml"
echo "$row" | grep -qF "ppl $ppl |" || fail "perplexity row $row, summary's ppl $ppl"
grep -q '^| llama-f32.p1 | e0 | `token_embd` | \*\*regression\*\* | \*\*pass → fail\*\* | 0 | 2.11 | \*\*from 0\*\* |' \
    "$tmp/reg.md" || fail "token_embd row"
grep -q '^<details><summary>Full report: FAIL llama-f32.gguf</summary>$' "$tmp/reg.md" || fail "no folded full report"

# HTML: the same, with the entries table.
"$bp" report "$tmp/new/summary.yaml" --baseline "$tmp/old/summary.yaml" -o "$tmp/reg.html"
[ $? -eq 1 ] || fail "a gate regression to HTML did not exit 1"
grep -q '<span class="badge regression">REGRESSION</span>' "$tmp/reg.html" || fail "HTML badge"
grep -q '<td>kjv-i2s.ppl</td><td><b>regression</b></td>' "$tmp/reg.html" || fail "HTML perplexity row"
[ "$(grep -o '<tr class="change">' "$tmp/reg.html" | wc -l)" -eq 27 ] || fail "HTML: not 27 changed taps"

# The reverse is a fix (exit 0); a summary against itself is unchanged (exit 0).
"$bp" report "$tmp/old/summary.yaml" --baseline "$tmp/new/summary.yaml" >"$tmp/fix.md" || fail "a fix exited $?"
head -1 "$tmp/fix.md" | grep -q '^## ✅ FIXED against the baseline' || fail "fix title: $(head -1 "$tmp/fix.md")"
grep -q '^| kjv-i2s.ppl | fixed | fail → pass |' "$tmp/fix.md" || fail "perplexity fixed row"
"$bp" report "$tmp/new/summary.yaml" --baseline "$tmp/new/summary.yaml" >"$tmp/same.md" || fail "unchanged exited $?"
head -1 "$tmp/same.md" | grep -q '^## ➖ UNCHANGED against the baseline' || fail "unchanged title"

# An entry only in one summary is new / gone.
cp -r "$tmp/old" "$tmp/fewer"
"$py" - "$tmp/fewer/summary.yaml" <<'PY' || fail "editing the summary"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
doc["entries"] = [e for e in doc["entries"] if e["name"] != "b158-i2s.p1"]
doc["counts"]["pass"] -= 1
yaml.safe_dump(doc, open(sys.argv[1], "w"), sort_keys=False)
PY
"$bp" report "$tmp/fewer/summary.yaml" --baseline "$tmp/old/summary.yaml" >"$tmp/gone.md" 2>"$tmp/gone.err" ||
    fail "an entry gone exited $?: $(cat "$tmp/gone.err")"
grep -q '^| b158-i2s.p1 | gone | pass → — |' "$tmp/gone.md" || fail "gone row: $(grep b158 "$tmp/gone.md")"

# Input errors: exit 2, a receipt and a summary named, a summary naming a missing receipt.
"$bp" report "$tmp/new/summary.yaml" --baseline "$tmp/old/entries/llama-f32.p1/receipt.yaml" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "a summary against a receipt did not exit 2"
grep -q "summary.yaml is a gate summary but .*receipt.yaml is a receipt" "$tmp/err" || fail "mix message: $(cat "$tmp/err")"
"$bp" report "$tmp/old/entries/llama-f32.p1/receipt.yaml" --baseline "$tmp/new/summary.yaml" >/dev/null 2>&1
[ $? -eq 2 ] || fail "a receipt against a summary did not exit 2"
rm "$tmp/new/entries/llama-f32.p1/receipt.yaml"
"$bp" report "$tmp/new/summary.yaml" --baseline "$tmp/old/summary.yaml" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "a missing receipt did not exit 2"
grep -q 'entries/llama-f32.p1/receipt.yaml' "$tmp/err" || fail "missing receipt message: $(cat "$tmp/err")"
echo OK
