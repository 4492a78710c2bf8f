#!/usr/bin/env bash
# interrupt.sh — outputs appear whole or not at all: a `bitparity trace`
# killed with SIGINT or SIGTERM while it is writing exits 130, leaves no
# temporary file, no partial trace, and an older trace of that name
# byte-identical; failures mid-way (and a missing folder) leave nothing
# either; a report, a receipt and a model are replaced only when complete.
# $1 = the bitparity binary. Needs no shared data (the models are synthesized).
set -u
bp=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# no_leftovers DIR: no ".NAME.tmp.XXXXXX" file in DIR
no_leftovers() {
    local left
    left=$(find "$1" -maxdepth 1 -name '.*.tmp.*')
    [ -z "$left" ] || fail "temporary file(s) left behind: $left"
}

"$bp" synth --type i2_s -o "$tmp/tiny.gguf" 2>/dev/null || fail "synth tiny"
"$bp" synth --shape bench --type i2_s -o "$tmp/bench.gguf" 2>/dev/null || fail "synth bench"
"$bp" trace -m "$tmp/tiny.gguf" --tokens 509,12,300 --decode 1 -o "$tmp/good.npz" || fail "the good trace"

# A long trace: 500 greedy steps on the 8-layer bench model, one thread, every
# default tap (~1.5 s of work, ~0.75 MB per step). The writer's 1 MiB stdio
# buffer reaches the file after the first steps: with the logits alone (2 KB
# a step) the first bytes appeared only near the end, and the signal could
# come after the commit.
# exec: the background job's pid is bitparity's own, so the signal reaches it.
# long_trace OUT ERR
long_trace() {
    exec "$bp" trace -m "$tmp/bench.gguf" --tokens 509,12,300 --decode 500 --threads 1 -o "$1" 2>"$2"
}
# long_perplexity TEXT LOGITS ERR: the logits of 511-token windows saved
long_perplexity() {
    exec "$bp" perplexity -m "$tmp/bench.gguf" -f "$1" --ctx 512 --threads 1 --save-logits "$2" >/dev/null 2>"$3"
}
# long_run IDS ERR: 500 tokens streamed to IDS
long_run() {
    exec "$bp" run -m "$tmp/bench.gguf" --tokens 509,12,300 -n 500 --temp 0 --threads 1 --ids >"$1" 2>"$2"
}

# proc_state PID: the one-letter state of PID (T stopped, Z exited, ...)
proc_state() { sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null; }

# stop_while DIR GLOB PID: waits (up to 60 s) until DIR holds a non-empty
# file matching GLOB, then stops PID (SIGSTOP) and returns 0 when PID is
# stopped with that file still there: caught mid-write, so a signal sent now
# is handled before the output is committed, however loaded the machine.
# Returns 1 when PID ended first (it left the stop to a loaded scheduler's
# mercy: the caller reaps it and tries again).
stop_while() {
    local dir=$1 glob=$2 pid=$3 state
    for _ in $(seq 1200); do
        [ -n "$(find "$dir" -maxdepth 1 -name "$glob" -size +0c)" ] && break
        case $(proc_state "$pid") in Z | '') return 1 ;; esac
        sleep 0.05
    done
    kill -STOP "$pid" 2>/dev/null || return 1
    for _ in $(seq 200); do
        state=$(proc_state "$pid")
        case $state in T) break ;; Z | '') return 1 ;; esac
        sleep 0.01
    done
    [ "$state" = T ] || fail "pid $pid did not stop (state '$state')"
    [ -n "$(find "$dir" -maxdepth 1 -name "$glob" -size +0c)" ] || { kill -CONT "$pid"; return 1; }
}

# signal_mid_write SIG DIR GLOB CMD...: runs CMD (which execs bitparity) in
# the background until stop_while catches it mid-write, then delivers SIG and
# sets rc to its exit code. Up to 5 tries: a try whose process ended before it
# was caught is not a failure of bitparity; the command in $restore (when set)
# puts the older output back before the next try.
signal_mid_write() {
    local sig=$1 dir=$2 glob=$3 try pid
    shift 3
    for try in 1 2 3 4 5; do
        # job control: a background job keeps SIGINT (a non-interactive shell would ignore it for the job)
        set -m
        "$@" &
        pid=$!
        set +m
        if stop_while "$dir" "$glob" "$pid"; then
            kill -"$sig" "$pid"
            kill -CONT "$pid"
            wait "$pid"
            rc=$?
            return 0
        fi
        wait "$pid"
        echo "note: try $try ended before it was caught mid-write; again" >&2
        [ -z "${restore:-}" ] || eval "$restore"
    done
    fail "SIG$sig: never caught $* mid-write in 5 tries"
}

for sig in INT TERM; do
    out=$tmp/run-$sig
    mkdir "$out"
    cp "$tmp/good.npz" "$out/t.npz"
    restore="cp '$tmp/good.npz' '$out/t.npz'"
    signal_mid_write $sig "$out" '.t.npz.tmp.*' long_trace "$out/t.npz" "$out/err"
    [ $rc -eq 130 ] || fail "SIG$sig: exit $rc, want 130: $(cat "$out/err")"
    grep -q "bitparity trace: interrupted by SIG$sig" "$out/err" || fail "SIG$sig: message: $(cat "$out/err")"
    no_leftovers "$out"
    cmp -s "$tmp/good.npz" "$out/t.npz" || fail "SIG$sig: the older trace was changed"
    [ "$(ls -A "$out")" = "$(printf 'err\nt.npz')" ] || fail "SIG$sig: unexpected files: $(ls -A "$out")"
    # without an older file, nothing at all is left
    restore="rm -f '$out/new.npz'"
    signal_mid_write $sig "$out" '.new.npz.tmp.*' long_trace "$out/new.npz" /dev/null
    [ $rc -eq 130 ] || fail "SIG$sig (new file): exit $rc, want 130"
    [ ! -e "$out/new.npz" ] || fail "SIG$sig: a partial new.npz was left"
    no_leftovers "$out"
done

# perplexity --save-logits: interrupted while it writes the logits of its
# 511-token windows; run: interrupted while it streams tokens to stdout
out=$tmp/ppl
mkdir "$out"
cp "$tmp/good.npz" "$out/base.npz"
for _ in $(seq 400); do printf 'the quick brown fox jumps over the lazy dog. '; done >"$out/text.txt"
restore="cp '$tmp/good.npz' '$out/base.npz'"
signal_mid_write INT "$out" '.base.npz.tmp.*' long_perplexity "$out/text.txt" "$out/base.npz" "$out/err"
[ $rc -eq 130 ] || fail "perplexity: exit $rc, want 130: $(cat "$out/err")"
grep -q "bitparity perplexity: interrupted by SIGINT" "$out/err" || fail "perplexity: message: $(cat "$out/err")"
cmp -s "$tmp/good.npz" "$out/base.npz" || fail "perplexity: the older --save-logits file was changed"
no_leftovers "$out"
restore=
signal_mid_write TERM "$out" 'ids' long_run "$out/ids" "$out/err"
[ $rc -eq 130 ] || fail "run: exit $rc, want 130: $(cat "$out/err")"
grep -q "bitparity run: interrupted by SIGTERM" "$out/err" || fail "run: message: $(cat "$out/err")"

# failures mid-way leave the older trace as it was and no temporary file:
# `check` follows a reference whose second evaluation does not continue the
# first (p0 5 after 3 tokens), so it fails after e0's taps were written
out=$tmp/midway
mkdir "$out"
cp "$tmp/good.npz" "$out/t.npz"
src=$(cd "$(dirname "$0")/../.." && pwd)
/usr/bin/python3 - "$src" "$out/gap.npz" <<'PY' || fail "writing the gapped reference"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from reference.trace import TraceWriter
w = TraceWriter(sys.argv[2], {'name': 'test', 'version': '0'}, {'path': 'x.gguf'},
                {'numerics': 'ggml-compat'})
w.begin([509, 12, 300], 0)
w.add('logits', np.zeros((3, 512)))
w.begin([7], 5)
w.add('logits', np.zeros((1, 512)))
w.close([1, 2])
PY
"$bp" check -m "$tmp/tiny.gguf" --reference "$out/gap.npz" --keep-trace "$out/t.npz" 2>"$out/err"
rc=$?
[ $rc -eq 2 ] || fail "gapped reference: exit $rc, want 2: $(cat "$out/err")"
grep -q "only consecutive evaluations can be followed" "$out/err" || fail "gapped reference: message: $(cat "$out/err")"
cmp -s "$tmp/good.npz" "$out/t.npz" || fail "a failed trace changed the older one"
rm -f "$out/gap.npz"
no_leftovers "$out"
# a token outside the vocabulary fails at the first evaluation
"$bp" trace -m "$tmp/tiny.gguf" --tokens 1,600 --decode 0 -o "$out/t.npz" 2>/dev/null
[ $? -eq 2 ] || fail "bad token: want exit 2"
cmp -s "$tmp/good.npz" "$out/t.npz" || fail "a failed trace changed the older one"
no_leftovers "$out"
# a missing folder: exit 2, the path in the message, nothing created
"$bp" trace -m "$tmp/tiny.gguf" --tokens 1,2 -o "$out/no/such/t.npz" 2>"$out/err"
rc=$?
[ $rc -eq 2 ] || fail "missing folder: exit $rc, want 2"
grep -q "$out/no/such/t.npz: cannot create: No such file or directory" "$out/err" || fail "missing folder: $(cat "$out/err")"
# a folder as the output
"$bp" synth --type i2_s -o "$out" 2>"$out/err"
[ $? -eq 2 ] || fail "a folder as output: want exit 2"
grep -q "is a directory" "$out/err" || fail "a folder as output: $(cat "$out/err")"

# the other writers go through the same module: a new file replaces the old
# one whole, with no temporary file left
"$bp" synth --type i2_s --seed 3 -o "$out/m.gguf" 2>/dev/null || fail "synth"
cp "$out/m.gguf" "$out/m.old"
"$bp" synth --type i2_s --seed 4 -o "$out/m.gguf" 2>/dev/null || fail "synth over an older model"
cmp -s "$out/m.gguf" "$out/m.old" && fail "synth did not replace the older model"
"$bp" inspect "$out/m.gguf" --tensor output_norm.weight --dump "$out/n.npy" || fail "inspect --dump"
"$bp" inspect "$out/m.gguf" --tensor no.such.tensor --dump "$out/n.npy" 2>/dev/null && fail "dump of an absent tensor"
[ -s "$out/n.npy" ] || fail "a failed dump removed the older .npy"
"$bp" trace -m "$tmp/tiny.gguf" --tokens 509,12,300 --decode 1 --fault silu -o "$out/f.npz" || fail "fault trace"
"$bp" compare "$out/f.npz" "$tmp/good.npz" -o "$out/r.yaml" >/dev/null
[ $? -eq 1 ] || fail "compare of a seeded bug: want exit 1"
"$bp" report "$out/r.yaml" -o "$out/r.html" || fail "report"
cp "$out/r.html" "$out/r.old"
printf 'receipt: bitparity/v1\nsummary: [\n' >"$out/bad.yaml"
"$bp" report "$out/bad.yaml" -o "$out/r.html" 2>/dev/null
[ $? -eq 2 ] || fail "report of a malformed receipt: want exit 2"
cmp -s "$out/r.html" "$out/r.old" || fail "a failed report changed the older one"
no_leftovers "$out"
echo "interrupt: ok"
