#!/usr/bin/env bash
# args.sh — every numeric flag checks its range in one place (the option
# table): a value outside it is a usage error (exit 2) whose message states
# the range, "expected an integer / a number" is kept for words that are no
# number, and the edge values themselves are accepted.
# $1 = the bitparity binary. Needs no shared data.
set -u
bp=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bp" synth --type i2_s -o "$tmp/tiny.gguf" 2>/dev/null || fail "synth"
m=$tmp/tiny.gguf
printf 'the quick brown fox jumps over the lazy dog\n' >"$tmp/text.txt"

# usage CMD MESSAGE ARGS...: exit 2 and exactly "bitparity CMD: MESSAGE", then the --help hint
usage() {
    local cmd=$1 msg=$2
    shift 2
    "$bp" "$cmd" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ $rc -eq 2 ] || fail "$cmd $*: exit $rc, want 2: $(cat "$tmp/err")"
    [ "$(sed -n 1p "$tmp/err")" = "bitparity $cmd: $msg" ] ||
        fail "$cmd $*: got '$(sed -n 1p "$tmp/err")', want 'bitparity $cmd: $msg'"
    [ "$(sed -n 2p "$tmp/err")" = "try 'bitparity $cmd --help'" ] || fail "$cmd $*: no --help hint"
    [ ! -s "$tmp/out" ] || fail "$cmd $*: wrote to stdout"
}

usage trace "--threads 0: must be 1..256" -m "$m" --tokens 1 --threads 0 -o "$tmp/t.npz"
usage trace "-t 257: must be 1..256" -m "$m" --tokens 1 -t 257 -o "$tmp/t.npz"
usage trace "--decode -3: must be 0..4096" -m "$m" --tokens 1 --decode -3 -o "$tmp/t.npz"
usage trace "--decode 4097: must be 0..4096" -m "$m" --tokens 1 --decode 4097 -o "$tmp/t.npz"
usage trace "--decode '2x': expected an integer" -m "$m" --tokens 1 --decode 2x -o "$tmp/t.npz"
usage run "--temp -1: must be >= 0" -m "$m" --temp -1
usage run "--temp 'warm': expected a number" -m "$m" --temp warm
usage run "--top-p 0: must be in (0, 1]" -m "$m" --top-p 0
usage run "--top-p 1.5: must be in (0, 1]" -m "$m" --top-p 1.5
usage run "--top-k -1: must be 0..2147483647" -m "$m" --top-k -1
usage run "-n -1: must be 0..1048576" -m "$m" -n -1
usage run "--seed -5: must be >= 0 (a 64-bit integer)" -m "$m" --seed -5
usage run "--seed 99999999999999999999: must be >= 0 (a 64-bit integer)" -m "$m" --seed 99999999999999999999
usage run "--threads 'two': expected an integer" -m "$m" --threads two
# numbers are digits only: no leading blanks or '+' (strtoll alone would take them)
usage run "--seed ' 5': expected an integer" -m "$m" --seed ' 5'
usage run "--threads '+2': expected an integer" -m "$m" --threads +2
usage perplexity "--ctx 1: must be 2..4096" -m "$m" -f "$tmp/text.txt" --ctx 1
usage perplexity "-c 4097: must be 2..4096" -m "$m" -f "$tmp/text.txt" -c 4097
usage compare "--threads 300: must be 1..256" a.npz b.npz --threads 300
usage check "-t 0: must be 1..256" -m "$m" --reference r.npz -t 0
usage synth "--seed -1: must be >= 0 (a 64-bit integer)" --type i2_s --seed -1 -o "$tmp/x.gguf"
usage run "--load 'read': expected mmap or memory" -m "$m" --load read
usage trace "--load 'MMAP': expected mmap or memory" -m "$m" --tokens 1 --load MMAP -o "$tmp/t.npz"
usage perplexity "--load '': expected mmap or memory" -m "$m" -f "$tmp/text.txt" --load ''
usage check "--load 'ram': expected mmap or memory" -m "$m" --reference r.npz --load ram
usage compare "--load 'disk': expected mmap or memory" a.npz b.npz --replay -m "$m" --load disk
usage gate "--load 'swap': expected mmap or memory" gate.yaml --load swap
usage gate "--merge takes shard folders and -o only" --merge s1 --load mmap
[ ! -e "$tmp/t.npz" ] && [ ! -e "$tmp/x.gguf" ] || fail "a usage error wrote a file"

# the edges are accepted
"$bp" run -m "$m" --tokens 509 -n 0 --temp 0 --top-k 0 --top-p 1 --seed 0 --threads 1 >/dev/null 2>"$tmp/err" ||
    fail "run at the lower edges: $(cat "$tmp/err")"
"$bp" run -m "$m" --tokens 509 -n 2 --temp 0.5 --top-k 2147483647 --top-p 1e-9 --seed 9223372036854775807 --ids \
    >"$tmp/out" 2>"$tmp/err" || fail "run at the upper edges: $(cat "$tmp/err")"
[ "$(wc -w <"$tmp/out")" -le 2 ] || fail "run -n 2 printed more than 2 ids: $(cat "$tmp/out")"
"$bp" trace -m "$m" --tokens 509,12 --decode 0 --taps logits --threads 256 -o "$tmp/t.npz" 2>"$tmp/err" ||
    fail "trace --decode 0 --threads 256: $(cat "$tmp/err")"
"$bp" perplexity -m "$m" -f "$tmp/text.txt" --ctx 2 >"$tmp/out" 2>"$tmp/err" || fail "perplexity --ctx 2: $(cat "$tmp/err")"
grep -q "^ctx = 2$" "$tmp/out" || fail "perplexity --ctx 2: $(cat "$tmp/out")"
# an id is its digits: leading zeros (any number of them) do not change it
z=$(printf '0%.0s' $(seq 80))
"$bp" run -m "$m" --tokens 509,12 -n 3 --temp 0 --ids >"$tmp/plain" 2>/dev/null || fail "run --tokens 509,12"
"$bp" run -m "$m" --tokens "${z}509,${z}12" -n 3 --temp 0 --ids >"$tmp/zeros" 2>"$tmp/err" ||
    fail "run --tokens with leading zeros: $(cat "$tmp/err")"
cmp -s "$tmp/plain" "$tmp/zeros" || fail "leading zeros changed the ids: $(cat "$tmp/plain") vs $(cat "$tmp/zeros")"
"$bp" synth --type i2_s --seed 0 -o "$tmp/s0.gguf" 2>/dev/null || fail "synth --seed 0"
# --load memory: the same ids, trace and perplexity as the mapped file
"$bp" run -m "$m" --tokens 509,12 -n 3 --temp 0 --ids --load memory >"$tmp/mem" 2>"$tmp/err" ||
    fail "run --load memory: $(cat "$tmp/err")"
cmp -s "$tmp/plain" "$tmp/mem" || fail "--load memory changed the ids: $(cat "$tmp/plain") vs $(cat "$tmp/mem")"
"$bp" trace -m "$m" --tokens 509,12 --decode 2 -o "$tmp/t-mmap.npz" 2>/dev/null || fail "trace --load mmap"
"$bp" trace -m "$m" --tokens 509,12 --decode 2 --load memory -o "$tmp/t-mem.npz" 2>"$tmp/err" ||
    fail "trace --load memory: $(cat "$tmp/err")"
cmp -s "$tmp/t-mmap.npz" "$tmp/t-mem.npz" || fail "trace --load memory wrote other bytes"
"$bp" perplexity -m "$m" -f "$tmp/text.txt" --ctx 4 >"$tmp/ppl-mmap" 2>/dev/null || fail "perplexity"
"$bp" perplexity -m "$m" -f "$tmp/text.txt" --ctx 4 --load memory >"$tmp/ppl-mem" 2>"$tmp/err" ||
    fail "perplexity --load memory: $(cat "$tmp/err")"
cmp -s "$tmp/ppl-mmap" "$tmp/ppl-mem" || fail "perplexity --load memory printed other figures"
# check records the engine from a mapped model as from one in memory: the same trace, bit-identical to the reference
for how in mmap memory; do
    "$bp" check -m "$m" --reference "$tmp/t-mem.npz" --policy exact --load $how --keep-trace "$tmp/k-$how.npz" \
        >"$tmp/out" 2>"$tmp/err" || fail "check --load $how: $(cat "$tmp/out" "$tmp/err")"
done
cmp -s "$tmp/k-mmap.npz" "$tmp/k-memory.npz" || fail "check --load mmap kept another trace"
# --timings: three lines on stderr, stdout unchanged; -n 3 evaluates the
# prompt and 2 decode steps (the third token is sampled, not evaluated)
"$bp" run -m "$m" --tokens 509,12 -n 3 --temp 0 --ids --timings >"$tmp/timed" 2>"$tmp/err" ||
    fail "run --timings: $(cat "$tmp/err")"
cmp -s "$tmp/plain" "$tmp/timed" || fail "--timings changed stdout"
[ "$(wc -l <"$tmp/err")" -eq 3 ] || fail "run --timings: want 3 lines on stderr: $(cat "$tmp/err")"
grep -Eq '^timings: load [0-9]+\.[0-9]{3} s$' "$tmp/err" || fail "no load line: $(cat "$tmp/err")"
grep -Eq '^timings: prompt 2 tokens in [0-9]+\.[0-9]{3} s \([0-9]+\.[0-9]{2} tok/s\)$' "$tmp/err" ||
    fail "no prompt line: $(cat "$tmp/err")"
grep -Eq '^timings: decode 2 tokens in [0-9]+\.[0-9]{3} s \([0-9]+\.[0-9]{2} tok/s\)$' "$tmp/err" ||
    fail "no decode line: $(cat "$tmp/err")"
echo "args: ok"
