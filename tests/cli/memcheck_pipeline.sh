#!/usr/bin/env bash
# memcheck_pipeline.sh — the demo's pipeline (ci/demo.sh) on the tiny model,
# every bitparity step under valgrind memcheck: synth, trace (prompt + 2 greedy
# decode steps), compare --replay against the Python reference's trace, report
# (HTML and Markdown), then the seeded SiLU bug traced with 3 threads and
# localized by compare --replay in block and op mode, and its reports. Each
# step must be clean: no invalid read or write, no use of an uninitialised
# value, no definite leak (valgrind exits 99 on any of them). The Python leg
# runs without valgrind.
# Runs in the Release build's ctest (label "valgrind"); ci/test.sh leaves it
# out of the ASan build, where valgrind cannot run.
# $1 = the bitparity binary. Exit 77 (skip) without valgrind or on an ASan build.
set -u
bin=$1
src=${BITPARITY_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${BITPARITY_PYTHON:-/usr/bin/python3}
if ! command -v valgrind >/dev/null; then
    echo "SKIP: valgrind is not installed (ci/bootstrap.sh installs it)"
    exit 77
fi
if ldd "$bin" 2>/dev/null | grep -q 'libasan'; then
    echo "SKIP: $bin is built with AddressSanitizer, which valgrind cannot run"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
tokens=509,286,220,457,496,302,451,13,271,88

# vg NAME EXPECTED_EXIT ARGS...: runs `bitparity ARGS` under memcheck, prints
# the summary lines and fails on a memcheck error (exit 99) or another exit
# code than expected. stdout goes to $tmp/NAME.out.
vg() {
    local name=$1 want=$2
    shift 2
    valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        --log-file="$tmp/$name.vg" "$bin" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    local rc=$?
    echo "$name: exit $rc; $(grep -hoE '(ERROR SUMMARY|definitely lost:|All heap blocks).*' "$tmp/$name.vg" |
        sed -E 's/ \(suppressed.*//' | paste -sd ';' -)"
    if [ $rc -eq 99 ]; then
        cat "$tmp/$name.vg"
        fail "memcheck found errors in: bitparity $*"
    fi
    [ $rc -eq "$want" ] || fail "bitparity $* exited $rc, expected $want: $(cat "$tmp/$name.err")"
}

vg synth 0 synth --shape tiny --type i2_s --seed 1 -o "$tmp/tiny.gguf"
vg trace 0 trace -m "$tmp/tiny.gguf" --tokens $tokens --decode 2 -o "$tmp/engine.npz"
"$py" "$src/reference/bitnet_ref.py" trace -m "$tmp/tiny.gguf" --tokens $tokens --decode 2 \
    -o "$tmp/reference.npz" >/dev/null || fail "the reference trace exited $?"
vg compare 0 compare "$tmp/engine.npz" "$tmp/reference.npz" --replay -m "$tmp/tiny.gguf" -o "$tmp/receipt.yaml"
grep -q '^bitparity compare: PASS' "$tmp/compare.out" || fail "no PASS: $(cat "$tmp/compare.out")"
grep -q '213 compared: 213 pass (213 bit-identical), 0 fail' "$tmp/compare.out" ||
    fail "counts: $(cat "$tmp/compare.out")"
vg report_html 0 report "$tmp/receipt.yaml" -o "$tmp/report.html"
vg report_md 0 report "$tmp/receipt.yaml" -o "$tmp/report.md"
[ -s "$tmp/report.html" ] && [ -s "$tmp/report.md" ] || fail "a report is missing or empty"

# The failing path: hints, replay (block and op), the failure's report.
vg trace_silu 0 trace -m "$tmp/tiny.gguf" --tokens $tokens --decode 2 --fault silu --threads 3 \
    -o "$tmp/silu.npz"
vg compare_silu 1 compare "$tmp/silu.npz" "$tmp/reference.npz" --replay -m "$tmp/tiny.gguf" \
    -o "$tmp/receipt-silu.yaml"
grep -q '^first divergence.*blk\.0\.ffn_act' "$tmp/compare_silu.out" ||
    fail "the seeded SiLU is not localized at blk.0.ffn_act: $(cat "$tmp/compare_silu.out")"
grep -q '^hint: activation-swap' "$tmp/compare_silu.out" || fail "no SiLU hint: $(cat "$tmp/compare_silu.out")"
vg compare_silu_op 1 compare "$tmp/silu.npz" "$tmp/reference.npz" --replay --replay-mode op \
    -m "$tmp/tiny.gguf" -o "$tmp/receipt-silu-op.yaml"
vg report_silu_html 0 report "$tmp/receipt-silu.yaml" -o "$tmp/report-silu.html"
vg report_silu_op_md 0 report "$tmp/receipt-silu-op.yaml" -o "$tmp/report-silu-op.md"
echo "memcheck_pipeline: every step clean"
