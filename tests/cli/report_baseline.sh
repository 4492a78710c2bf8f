#!/usr/bin/env bash
# report_baseline.sh — `bitparity report NEW --baseline OLD` end to end on receipts of real runs:
# a fixture model checked against its expected trace (pass) and the same model with the SiLU fault
# compared with that trace (fail at blk.0.ffn_act): the regression is named with its change and
# exits 1, the reverse is a fix and exits 0, a receipt against itself is unchanged; one receipt
# edited by hand gives a degraded tap with exact numbers; bad input exits 2.
# $1 = the bitparity binary.
set -u
. "$(dirname "$0")/lib/common.sh"
model=$src/fixtures/models/b158-i2s.gguf
expected=$src/fixtures/expected/b158-i2s.p1.compat.npz

"$bp" report --help | grep -q -- '--baseline OLD' || fail "report --help lacks --baseline"
"$bp" check -m "$model" --reference "$expected" -o "$tmp/old.yaml" >/dev/null || fail "check exited $?"
"$bp" trace -m "$model" --tokens-from "$expected" --fault silu -o "$tmp/silu.npz" 2>/dev/null || fail "trace --fault silu"
"$bp" compare "$tmp/silu.npz" "$expected" -o "$tmp/new.yaml" >/dev/null
[ $? -eq 1 ] || fail "compare of the SiLU fault did not fail"

# The regression: exit 1, headline, and the first row names the tap and its change.
"$bp" report "$tmp/new.yaml" --baseline "$tmp/old.yaml" >"$tmp/reg.md"
[ $? -eq 1 ] || fail "a regression did not exit 1"
head -1 "$tmp/reg.md" | grep -qx '## ❌ REGRESSION against the baseline — b158-i2s.gguf' || fail "title: $(head -1 "$tmp/reg.md")"
grep -qF '**Regressed**: 15 taps went from pass to fail, 0 degraded (NMSE ×10 or more), 0 fixed, 0 improved. Most severe: e0 `blk.0.ffn_act`: **pass → fail**, NMSE 0 → 0.258 (was exact).' "$tmp/reg.md" ||
    fail "headline: $(sed -n 3p "$tmp/reg.md")"
row=$(grep -m1 '^| e0 | `blk\.' "$tmp/reg.md")
[ "$row" = '| e0 | `blk.0.ffn_act` | **regression** | **pass → fail** | 0 | 0.258 | **from 0** | 5.88 | 0.915464 |' ] ||
    fail "first changed tap: $row"
grep -q '^<details><summary>Full report: FAIL b158-i2s.gguf</summary>$' "$tmp/reg.md" || fail "no folded full report"
"$bp" report "$tmp/new.yaml" --baseline "$tmp/old.yaml" -o "$tmp/reg.html"
[ $? -eq 1 ] || fail "a regression to HTML did not exit 1"
grep -q '<span class="badge regression">REGRESSION</span><h2>Changes against the baseline</h2>' "$tmp/reg.html" || fail "HTML badge"
[ "$(grep -o '<tr class="change">' "$tmp/reg.html" | wc -l)" -eq 15 ] || fail "HTML: not 15 changed taps"
grep -q '<td><code>blk.0.ffn_act</code></td><td><b>regression</b></td>' "$tmp/reg.html" || fail "HTML: ffn_act row"

# The reverse is a fix, a receipt against itself unchanged: exit 0.
"$bp" report "$tmp/old.yaml" --baseline "$tmp/new.yaml" >"$tmp/fix.md" || fail "a fix exited $?"
head -1 "$tmp/fix.md" | grep -q '^## ✅ FIXED against the baseline' || fail "fix title: $(head -1 "$tmp/fix.md")"
grep -q '^| e0 | `blk.0.ffn_act` | fixed | fail → pass | 0.258 | 0 | to 0 |' "$tmp/fix.md" || fail "fixed row"
"$bp" report "$tmp/old.yaml" --baseline "$tmp/old.yaml" >"$tmp/same.md" || fail "unchanged exited $?"
head -1 "$tmp/same.md" | grep -q '^## ➖ UNCHANGED against the baseline' || fail "unchanged title"

# Degraded, by hand: blk.0.attn_norm of e1 from NMSE 1e-12 to 4e-11 (x40, +3.9e-11), both within the limit.
"$py" - "$tmp/old.yaml" "$tmp/a.yaml" "$tmp/b.yaml" <<'PY' || fail "editing the receipts"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for out, nmse in ((sys.argv[2], 1e-12), (sys.argv[3], 4e-11)):
    for t in doc['taps']:
        if (t['evaluation'], t['name']) == ('e1', 'blk.0.attn_norm'):
            assert t['status'] == 'pass' and t['limits']['nmse_max'] > 4e-11, t
            t['metrics']['nmse'] = nmse
    yaml.safe_dump(doc, open(out, 'w'), sort_keys=False)
PY
"$bp" report "$tmp/b.yaml" --baseline "$tmp/a.yaml" >"$tmp/deg.md" || fail "degraded exited $?"
head -1 "$tmp/deg.md" | grep -q '^## ⚠️ DEGRADED against the baseline' || fail "degraded title: $(head -1 "$tmp/deg.md")"
grep -qx '| e1 | `blk.0.attn_norm` | degraded | \*\*pass → pass\*\* | 1e-12 | 4e-11 | \*\*×40\*\* | 0 | 1 |' "$tmp/deg.md" ||
    fail "degraded row: $(grep ffn_norm "$tmp/deg.md")"
"$bp" report "$tmp/b.yaml" --baseline "$tmp/a.yaml" --factor 50 | grep -q '^## ➖ UNCHANGED' || fail "--factor 50"
"$bp" report "$tmp/b.yaml" --baseline "$tmp/a.yaml" -o "$tmp/deg.html" || fail "degraded HTML"
grep -q '<td class="num">+3.9e-11</td>' "$tmp/deg.html" || fail "HTML: the NMSE difference"

# Input errors: exit 2.
"$bp" report "$tmp/new.yaml" --baseline "$tmp/none.yaml" >/dev/null 2>&1
[ $? -eq 2 ] || fail "a missing baseline did not exit 2"
"$bp" report "$tmp/new.yaml" "$tmp/old.yaml" --baseline "$tmp/old.yaml" >/dev/null 2>&1
[ $? -eq 2 ] || fail "two receipts with --baseline did not exit 2"
"$bp" report "$tmp/new.yaml" --baseline "$tmp/old.yaml" --factor 1 >/dev/null 2>&1
[ $? -eq 2 ] || fail "--factor 1 did not exit 2"
"$bp" report "$tmp/new.yaml" --factor 4 >/dev/null 2>&1
[ $? -eq 2 ] || fail "--factor without --baseline did not exit 2"
sed 's/^  verdict: pass$/  verdict: maybe/' "$tmp/old.yaml" >"$tmp/bad.yaml"
"$bp" report "$tmp/new.yaml" --baseline "$tmp/bad.yaml" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "a malformed baseline did not exit 2"
grep -q "bad.yaml:[0-9]*: summary.verdict: expected pass or fail, got 'maybe'" "$tmp/err" || fail "error: $(cat "$tmp/err")"
echo OK
