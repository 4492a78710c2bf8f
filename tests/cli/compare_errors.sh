#!/usr/bin/env bash
# compare_errors.sh — `bitparity compare` on bad input: usage errors and
# unreadable traces, maps and policies exit 2 with one line on stderr naming
# the file (and line). $1 = the bitparity binary. Exit 77 without shared data.
set -u
bin=$1
shared=${BITPARITY_SHARED_DIR:-}
ref=$shared/reference-traces/bitnetcpp/f32/p1.npz
if [ -z "$shared" ] || [ ! -f "$ref" ]; then
    echo "SKIP: \$BITPARITY_SHARED_DIR/reference-traces absent"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# expect_error CODE NEEDLE ARGS...: exit CODE, stderr one line containing NEEDLE.
expect_error() {
    local code=$1 needle=$2
    shift 2
    "$bin" compare "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ $rc -eq "$code" ] || fail "compare $* exited $rc (want $code): $(cat "$tmp/err")"
    grep -qF -- "$needle" "$tmp/err" || fail "compare $*: stderr lacks '$needle': $(cat "$tmp/err")"
    [ "$(grep -c . "$tmp/err")" -le 2 ] || fail "compare $*: more than a line: $(cat "$tmp/err")"
}

expect_error 2 "give SUBJECT.npz and REFERENCE.npz" "$ref"
expect_error 2 "--format 'xml'" "$ref" "$ref" --format xml
expect_error 2 "--replay needs -m MODEL" "$ref" "$ref" --replay
expect_error 2 "--replay-mode 'x': expected block or op" "$ref" "$ref" --replay -m model.gguf --replay-mode x
expect_error 2 "$tmp/absent.npz" "$tmp/absent.npz" "$ref"
# bitnet.cpp's dump as the subject: replaying bitparity's engine would not speak for it
expect_error 2 "--replay re-runs bitparity's engine, so it only speaks for traces bitparity recorded; $ref was produced by 'bitnet.cpp" \
    "$ref" "$ref" --replay -m "$shared/models/tiny-bitnet-f32.gguf"

head -c 1000 "$ref" >"$tmp/cut.npz"
expect_error 2 "$tmp/cut.npz" "$tmp/cut.npz" "$ref"

printf 'tapmap: bitparity/v1\nname: broken\nlayout: ggml-nodes\ntaps:\n  - {tap: x, node: y}\n  - {tap: z, nod: w}\n' \
    >"$tmp/map.yaml"
expect_error 2 "$tmp/map.yaml:6: key 'nod'" "$ref" "$ref" --map "$tmp/map.yaml"
expect_error 2 "cannot be read with tap map 'canonical'" "$ref" "$ref" --map canonical
expect_error 2 "no built-in policy" "$ref" "$ref" --policy strictest
printf 'policy: bitparity/v1\nname: p\ndefaults: {nmse_max: lots}\n' >"$tmp/p.yaml"
expect_error 2 "$tmp/p.yaml:3" "$ref" "$ref" --policy "$tmp/p.yaml"

# A ggml-nodes trace against itself: same producer -> exact, and it passes.
"$bin" compare "$ref" "$ref" >"$tmp/out" 2>&1 || fail "self-compare exited $?: $(cat "$tmp/out")"
grep -q 'policy     exact' "$tmp/out" || fail "self-compare policy: $(cat "$tmp/out")"
grep -q '237 compared: 237 pass (237 bit-identical)' "$tmp/out" || fail "self-compare counts: $(cat "$tmp/out")"
echo "ok"
