#!/usr/bin/env bash
# report_screenshots.sh — the HTML reports as a browser shows them: a passing report (a fixture
# model checked against its expected trace), a failing one (the model with the transposed-W_o
# fault compared with its clean trace: without the model no hint fires, so "What to check next" is
# open), a summary
# of several entries (+ the SiLU fault), and a gate's summary.html (3 entries, one failing: the
# matrix with both verdicts and links to the entries' pages), rendered by headless Chromium. Each screenshot must not be
# blank (many colours, some ink: decoded with zlib + numpy), and the DOM Chromium built must hold
# the verdicts, the tap names written under the bars, the first divergence and what to check next.
# Screenshots are kept in $BITPARITY_SCREENSHOT_DIR when it is set (for a person to look at).
# $1 = the bitparity binary. Exit 77 (skip) without Chromium.
set -u
. "$(dirname "$0")/lib/common.sh"
chromium=${BITPARITY_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium" ]; then
    echo "SKIP: chromium is not installed (Debian: apt-get install chromium; ci/bootstrap.sh installs it)"
    exit 77
fi
model=$src/fixtures/models/b158-i2s.gguf
expected=$src/fixtures/expected/b158-i2s.p1.compat.npz

"$bp" check -m "$model" --reference "$expected" -o "$tmp/pass.yaml" >/dev/null || fail "check exited $?"
# The faults against the engine's clean trace: every tap is compared, so each shows where it acts.
"$bp" trace -m "$model" --tokens-from "$expected" -o "$tmp/clean.npz" 2>/dev/null || fail "trace"
for fault in transpose-wo silu; do
    "$bp" trace -m "$model" --tokens-from "$expected" --fault $fault -o "$tmp/$fault.npz" 2>/dev/null ||
        fail "trace --fault $fault"
    "$bp" compare "$tmp/$fault.npz" "$tmp/clean.npz" -o "$tmp/$fault.yaml" >/dev/null
    [ $? -eq 1 ] || fail "compare of the $fault fault did not fail"
done
"$bp" report "$tmp/pass.yaml" -o "$tmp/pass.html" || fail "report (pass)"
"$bp" report "$tmp/transpose-wo.yaml" -o "$tmp/fail.html" || fail "report (fail)"
"$bp" report "$tmp/pass.yaml" "$tmp/transpose-wo.yaml" "$tmp/silu.yaml" -o "$tmp/summary.html" || fail "report (summary)"

fx=$src/fixtures
mkdir "$tmp/m"
cat >"$tmp/m/gate.yaml" <<YAML
gate: bitparity-gate/v1
entries:
  - {name: b158-i2s.p1, model: "$fx/models/b158-i2s.gguf", reference: "$fx/expected/b158-i2s.p1.compat.npz", policy: exact}
  - {name: wrong-reference, model: "$fx/models/llama-f32.gguf", reference: "$fx/expected/llama-f16.p1.f32.npz"}
  - {name: kjv-i2s.ppl, model: "$fx/trained/tiny-kjv-i2s.gguf", perplexity: "$fx/trained/heldout.txt", bytes: 500, ppl_max: 4.5}
YAML
"$bp" gate "$tmp/m/gate.yaml" -o "$tmp/gate" >"$tmp/gate.out" 2>&1
[ $? -eq 1 ] || fail "the gate did not exit 1: $(cat "$tmp/gate.out")"

# Chromium as root in a container: no sandbox, no GPU, /tmp instead of a small /dev/shm, and a
# profile, HOME and XDG folders of its own (parallel tests must not share one).
export HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config XDG_CACHE_HOME=$tmp/home/.cache
shoot() { # PAGE: $tmp/PAGE.png and the DOM after layout in $tmp/PAGE.dom
    timeout 90 "$chromium" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
        --no-first-run --user-data-dir="$tmp/profile-$1" --window-size=1280,2000 \
        --screenshot="$tmp/$1.png" --dump-dom "file://$tmp/$1.html" >"$tmp/$1.dom" 2>"$tmp/$1.log" ||
        fail "chromium on $1.html exited $?: $(tail -3 "$tmp/$1.log")"
    [ -s "$tmp/$1.png" ] || fail "no screenshot of $1.html"
}
pids=()
for page in pass fail summary gate/summary; do shoot $page & pids+=($!); done # in parallel: most of it is start-up
for pid in "${pids[@]}"; do wait "$pid" || exit 1; done

"$py" "$src/tests/cli/lib/png_stats.py" "$tmp/pass.png" "$tmp/fail.png" "$tmp/summary.png" "$tmp/gate/summary.png" >"$tmp/stats" ||
    fail "decoding the screenshots"
while read -r png w h colours ink; do
    [ "$w" -eq 1280 ] && [ "$h" -eq 2000 ] || fail "$png is ${w}x$h"
    # A blank page has one or two colours and no ink; these pages have thousands of (anti-aliased)
    # colours and 1-10 % ink (text, bars, lines).
    [ "$colours" -ge 200 ] || fail "$png has only $colours colours: blank?"
    "$py" -c "import sys; sys.exit(not 0.005 <= $ink <= 0.5)" || fail "$png: ink fraction $ink"
done <"$tmp/stats"

has() { grep -qF -- "$2" "$tmp/$1.dom" || fail "$1: the page lacks: $2"; }
has pass '<span class="badge pass">PASS</span>'
has pass 'Every compared tap is within the policy'"'"'s limits.'
has pass '>attn_q_rope</text>' # the name under its bar
has pass '>0 (exact)</text>'   # a log axis never draws 0: its floor says so
has fail '<span class="badge fail">FAIL</span>'
has fail 'First divergence:</b> e0 <code>blk.0.attn_out</code>'
has fail '<h3>What to check next</h3>'
has fail 'the output weights'"'"' layout (transposed?) and scale'
for tap in attn_out ffn_inp ffn_act ffn_sub_norm output_norm logits; do has fail "font-weight:600\">$tap</text>"; done
has fail '<svg class="key"' # the error-growth legend draws each line's dash and marker
has summary '3 receipt(s): 1 pass, 2 fail'
has summary '<span class="badge pass small">PASS</span>'
has summary '<a href="#r3">3</a>'
has summary 'What to check next</b> (beyond the hints)' # the SiLU receipt has a hint
has gate/summary '<span class="badge fail">FAIL</span>'
for e in b158-i2s.p1 wrong-reference; do has gate/summary "<a href=\"entries/$e/report.html\"><code>$e</code></a>"; done
has gate/summary '<a href="entries/kjv-i2s.ppl/perplexity.yaml"><code>kjv-i2s.ppl</code></a>' # no page: its receipt
has gate/summary '<tr class="pass"><td class="num">1</td><td class="entry">'
has gate/summary '<tr class="fail"><td class="num">2</td>'
has gate/summary '</a></td><td class="verdict"><span class="badge pass">PASS</span></td>'
has gate/summary '</a></td><td class="verdict"><span class="badge fail">FAIL</span></td>'
has gate/summary 'first divergence: e0 '
for e in b158-i2s.p1 wrong-reference; do [ -s "$tmp/gate/entries/$e/report.html" ] || fail "no detail page of $e"; done
grep -qi '<script' "$tmp"/*.dom "$tmp/gate/summary.dom" && fail "a page has a script"

if [ -n "${BITPARITY_SCREENSHOT_DIR:-}" ]; then
    mkdir -p "$BITPARITY_SCREENSHOT_DIR" && cp "$tmp"/*.png "$tmp"/*.html "$BITPARITY_SCREENSHOT_DIR"/ &&
        cp "$tmp/gate/summary.png" "$BITPARITY_SCREENSHOT_DIR/gate-summary.png"
fi
echo OK
