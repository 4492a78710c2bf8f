#!/usr/bin/env bash
# nomem.sh — under memory pressure the binary fails cleanly: a model with the
# benchmark shape is run (perplexity, 2048-token windows) under a sweep of
# address-space limits (ulimit -v). Every run either succeeds or exits 2/3
# with one line that names what could not be allocated and how many bytes;
# none crashes (exit >= 128). Release build only (label nomem): ASan reserves
# terabytes of address space. Needs no shared data. $1 = the binary.
set -u
. "$(dirname "$0")/lib/common.sh"

if ! (ulimit -v 1048576) 2>/dev/null; then
    echo "SKIP: this shell cannot set ulimit -v"
    exit 77
fi
"$bp" synth --shape bench --type i2_s --seed 1 -o "$tmp/b.gguf" 2>/dev/null || fail "synth --shape bench"
"$py" -c "print('the quick brown fox jumps over the lazy dog. ' * 600)" >"$tmp/text.txt"
alloc_failures=0
for mb in 48 56 64 72 80 96 112 128 160 256; do
    (ulimit -v $((mb * 1024)) && exec "$bp" perplexity -m "$tmp/b.gguf" -f "$tmp/text.txt" --ctx 2048 --threads 1) \
        >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ $rc -lt 128 ] || fail "crashed under $mb MiB (exit $rc): $(cat "$tmp/err")"
    [ $rc -eq 0 ] && continue
    [ $rc -eq 2 ] || [ $rc -eq 3 ] || fail "exit $rc under $mb MiB: $(cat "$tmp/err")"
    [ "$(grep -c . "$tmp/err")" -eq 1 ] || fail "more than one line under $mb MiB: $(cat "$tmp/err")"
    grep -q "bytes" "$tmp/err" || fail "under $mb MiB the message names no size: $(cat "$tmp/err")"
    grep -qE "out of memory|cannot allocate|Cannot allocate memory" "$tmp/err" ||
        fail "under $mb MiB the message is not about memory: $(cat "$tmp/err")"
    grep -q "activations\|KV cache\|scratch\|out of memory (" "$tmp/err" && alloc_failures=$((alloc_failures + 1))
done
[ $alloc_failures -gt 0 ] || fail "no limit made an engine allocation fail (the sweep no longer reaches it)"
echo "nomem: $alloc_failures allocation failures, each named with its size"
