#!/usr/bin/env bash
# convert_tiktoken.sh — `bitparity convert tiktoken`: --help, the LLaMA-3 rank
# file to a vocabulary GGUF, and bad inputs (exit 2, one line on stderr).
# $1 = the bitparity binary. Exit 77 (skip) without the shared data.
set -u
bin=$1
model=${BITPARITY_SHARED_DIR:-}/tokenizers/llama3/tokenizer.model
if [ -z "${BITPARITY_SHARED_DIR:-}" ] || [ ! -f "$model" ]; then
    echo "SKIP: \$BITPARITY_SHARED_DIR/tokenizers/llama3/tokenizer.model absent"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" convert --help >"$tmp/help" 2>&1 || fail "convert --help exited $?"
grep -q 'tiktoken' "$tmp/help" || fail "convert --help does not list the tiktoken kind"
"$bin" --help | grep -q '^  convert ' || fail "bitparity --help does not list convert"

"$bin" convert tiktoken "$model" -o "$tmp/x.gguf" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || fail "convert exited $rc: $(cat "$tmp/err")"
grep -q '128256 tokens (128000 ranks + 256 special), 280147 merges' "$tmp/out" ||
    fail "unexpected summary: $(cat "$tmp/out")"
[ "$(head -c 4 "$tmp/x.gguf")" = GGUF ] || fail "x.gguf is not a GGUF file"

# A bad line: exit 2, one line naming the file and line, no output left.
printf 'QQ== 0\nnot-base64 1\n' >"$tmp/bad.model"
"$bin" convert tiktoken "$tmp/bad.model" -o "$tmp/y.gguf" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 2 ] || fail "bad input exited $rc, expected 2"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "expected one line on stderr, got: $(cat "$tmp/err")"
grep -q 'bad.model: line 2: ' "$tmp/err" || fail "message does not name file and line: $(cat "$tmp/err")"
[ ! -e "$tmp/y.gguf" ] || fail "a partial output was left behind"

# A missing input file and an unknown kind are input/usage errors too.
"$bin" convert tiktoken "$tmp/absent.model" -o "$tmp/z.gguf" 2>"$tmp/err"
[ $? -eq 2 ] || fail "missing input did not exit 2"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "missing input: expected one line: $(cat "$tmp/err")"
"$bin" convert sentencepiece "$model" -o "$tmp/z.gguf" 2>/dev/null
[ $? -eq 2 ] || fail "unknown kind did not exit 2"
"$bin" convert tiktoken "$model" 2>/dev/null
[ $? -eq 2 ] || fail "missing -o did not exit 2"
echo "PASS"
