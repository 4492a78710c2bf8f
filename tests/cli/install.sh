#!/usr/bin/env bash
# install.sh — `cmake --install` gives an outside project what it needs to
# write traces from its own engine: the library, <bitparity.h> and its
# headers, bitparity.pc and a CMake package. The example examples/c/retrace.c
# is built against the installed copy twice (pkg-config, find_package) and
# the trace it writes through the public writer is compared with the one it
# read. The writer's refusals are checked on the way. $1 = the bitparity
# binary (its folder is the build tree). Release only (label install): a
# sanitized shared library cannot be loaded by an unsanitized program.
set -u
. "$(dirname "$0")/lib/common.sh"
build=$(cd "$(dirname "$bp")" && pwd)

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 || fail "cmake --install: $(tail -5 "$tmp/install.log")"
libdir=$(find "$tmp/prefix" -name 'libbitparity.so' -printf '%h\n' | head -1)
[ -n "$libdir" ] || fail "no libbitparity.so installed"
[ -x "$tmp/prefix/bin/bitparity" ] || fail "no bin/bitparity installed"
[ -f "$tmp/prefix/include/bitparity/bitparity.h" ] || fail "no include/bitparity/bitparity.h"
[ -f "$libdir/pkgconfig/bitparity.pc" ] || fail "no bitparity.pc beside the library"

# 1. pkg-config, from outside the source tree
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs bitparity) || fail "pkg-config bitparity"
cc -std=c11 -Wall -Wextra -Werror "$src/examples/c/retrace.c" $flags -Wl,-rpath,"$libdir" -o "$tmp/retrace_pc" 2>"$tmp/err" ||
    fail "example against pkg-config flags ($flags): $(cat "$tmp/err")"
# C++ sees the same header
printf '#include <bitparity.h>\nint main() { bn_error e; return bitparity_trace_writer_open("", "x", nullptr, &e) == BN_OK; }\n' >"$tmp/h.cc"
c++ -std=c++17 -Wall -Werror "$tmp/h.cc" $flags -Wl,-rpath,"$libdir" -o "$tmp/h" 2>"$tmp/err" || fail "C++ include: $(cat "$tmp/err")"
"$tmp/h" || fail "C++ program: open with a NULL out succeeded"

# 2. find_package
cmake -S "$src/examples" -B "$tmp/eb" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_RPATH="$libdir" >"$tmp/cfg.log" 2>&1 ||
    fail "examples configure: $(tail -5 "$tmp/cfg.log")"
cmake --build "$tmp/eb" >"$tmp/b.log" 2>&1 || fail "examples build: $(tail -5 "$tmp/b.log")"

# 3. the written trace is a foreign trace that compares equal to what it copies
"$bp" synth --shape tiny --type i2_s --seed 3 -o "$tmp/m.gguf" 2>/dev/null || fail synth
"$bp" trace -m "$tmp/m.gguf" --tokens 5,6,7 --decode 2 --taps 'blk.0.*,logits' -o "$tmp/ref.npz" 2>/dev/null || fail trace
for exe in "$tmp/retrace_pc" "$tmp/eb/retrace"; do
    rm -f "$tmp/mine.npz"
    "$exe" "$tmp/ref.npz" "$tmp/mine.npz" my-engine "$tmp/m.gguf" 2>"$tmp/err" || fail "$exe: $(cat "$tmp/err")"
    "$py" -c "import sys,zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read('meta.yaml').decode())" "$tmp/mine.npz" >"$tmp/meta" || fail "no meta.yaml in the written trace"
    grep -q "name: my-engine" "$tmp/meta" || fail "producer not recorded: $(cat "$tmp/meta")"
    grep -Eq "sha256: \"?$(sha256sum "$tmp/m.gguf" | cut -c1-64)" "$tmp/meta" || fail "model sha256 not recorded"
    grep -q "weight_type: i2_s" "$tmp/meta" || fail "weight type not carried: $(cat "$tmp/meta")"
    "$bp" compare "$tmp/mine.npz" "$tmp/ref.npz" -o "$tmp/r.yaml" >"$tmp/out" 2>&1 || fail "compare: $(cat "$tmp/out")"
    grep -q "taps_compared: 0" "$tmp/r.yaml" && fail "nothing compared"
    # replay is refused for a trace that is not bitparity's engine's
    "$bp" compare "$tmp/mine.npz" "$tmp/ref.npz" --replay -m "$tmp/m.gguf" >"$tmp/out" 2>&1
    [ $? -eq 2 ] || fail "--replay on a foreign trace was not refused: $(cat "$tmp/out")"
done

# 4. the classic porting bugs written through the installed C writer (lib/porting_bugs.sh)
. "$src/tests/cli/lib/porting_bugs.sh"
retrace_c() { "$tmp/eb/retrace" "$1" "$2" my-port "$3"; }
check_porting_bugs retrace_c

# 5. refusals: each names what is wrong, and leaves no file behind
cat >"$tmp/bad.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <bitparity.h>
/* argv[1]: which mistake; prints the message, exits 1 when refused */
int main(int argc, char **argv) {
    (void)argc;
    bn_error e = {0};
    bitparity_trace_writer *w = NULL;
    const char *which = argv[1];
    int32_t tok[3] = {5, 6, 7};
    float x[3 * 4] = {0};
    int64_t shape[2] = {3, 4}, short_shape[2] = {2, 4};
    bn_status st = bitparity_trace_writer_open(argv[2], strcmp(which, "producer") ? "eng" : "bitparity", &w, &e);
    if (!st) st = bitparity_trace_writer_begin_evaluation(w, tok, 3, 0, &e);
    if (!st && !strcmp(which, "name")) st = bitparity_trace_writer_write_tap(w, "blk.0.attn_qq", x, shape, 2, &e);
    if (!st && !strcmp(which, "tokens")) st = bitparity_trace_writer_write_tap(w, "blk.0.attn_norm", x, short_shape, 2, &e);
    if (!st && !strcmp(which, "twice")) {
        st = bitparity_trace_writer_write_tap(w, "token_embd", x, shape, 2, &e);
        if (!st) st = bitparity_trace_writer_write_tap(w, "token_embd", x, shape, 2, &e);
    }
    if (!st && !strcmp(which, "dtype")) st = bitparity_trace_writer_write_tap(w, "blk.0.attn_q.in_q8", x, shape, 2, &e);
    if (!st && !strcmp(which, "key")) st = bitparity_trace_writer_set(w, "model.colour", "red", &e);
    if (!st && !strcmp(which, "sha")) st = bitparity_trace_writer_set(w, "model.sha256", "abc", &e);
    if (st) {
        bitparity_trace_writer_abort(w);
        printf("%s\n", e.msg);
        return 1;
    }
    return bitparity_trace_writer_close(w, &e) ? 1 : 0;
}
C
cc -std=c11 -Wall -Werror "$tmp/bad.c" $flags -Wl,-rpath,"$libdir" -o "$tmp/bad" 2>"$tmp/err" || fail "bad.c: $(cat "$tmp/err")"
check_refused() { # mistake, expected words
    rm -rf "$tmp/out.d" && mkdir "$tmp/out.d"
    "$tmp/bad" "$1" "$tmp/out.d/t.npz" >"$tmp/msg" && fail "$1: accepted"
    grep -q -- "$2" "$tmp/msg" || fail "$1: message '$(cat "$tmp/msg")' lacks '$2'"
    [ -z "$(ls -A "$tmp/out.d")" ] || fail "$1: left files behind: $(ls -A "$tmp/out.d")"
}
check_refused producer "reserved for bitparity's own engine"
check_refused name "'blk.0.attn_qq' is not a canonical tap name"
check_refused tokens "dimension 0 must be the evaluation's 3 tokens (got 2"
check_refused twice "tap token_embd written twice"
check_refused dtype "holds int8 data"
check_refused key "unknown metadata key 'model.colour'"
check_refused sha "not 64 lowercase hex digits"
"$tmp/bad" none "$tmp/ok.npz" >"$tmp/msg" || fail "a correct trace was refused: $(cat "$tmp/msg")"
"$py" -c "import sys,zipfile; assert 'tokens: [5, 6, 7]' in zipfile.ZipFile(sys.argv[1]).read('meta.yaml').decode()" "$tmp/ok.npz" || fail "the correct trace was not published"
echo "install: library, headers, bitparity.pc, CMake package; example built twice; 6 porting bugs localized and named; 7 refusals"
