#!/usr/bin/env bash
# stories260K (llama2.c checkpoint) converted with `bitparity convert llama2c`
# and run greedily from BOS prints the published text byte for byte: the F32
# path, normal RoPE, GQA, SwiGLU and the SentencePiece tokenizer are right.
set -euo pipefail
bp=$1
shared=${BITPARITY_SHARED_DIR:-}
d=$shared/models/stories260K
if [ ! -f "$d/stories260K.bin" ] || [ ! -f "$shared/models/README.md" ]; then
  echo "SKIP: ../shared/models/stories260K absent"; exit 77
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$bp" convert llama2c "$d/stories260K.bin" "$d/tok512.bin" -o "$tmp/s.gguf" >/dev/null
"$bp" run -m "$tmp/s.gguf" -n 256 --temp 0 --threads 2 > "$tmp/got.txt"
# The expected text is the fenced block after "Expected greedy output".
awk '/^Expected greedy output/ {f=1} f && /^```/ {n++; next} f && n==1 {print}' "$shared/models/README.md" > "$tmp/want.txt"
[ -s "$tmp/want.txt" ] || { echo "FAIL: no expected text found in models/README.md"; exit 1; }
if ! cmp -s "$tmp/got.txt" "$tmp/want.txt"; then
  echo "FAIL: output differs from the published text"; diff "$tmp/want.txt" "$tmp/got.txt" | head -20; exit 1
fi
# A truncated checkpoint is refused with a one-line message and exit 2.
head -c 100000 "$d/stories260K.bin" > "$tmp/trunc.bin"
set +e
"$bp" convert llama2c "$tmp/trunc.bin" "$d/tok512.bin" -o "$tmp/t.gguf" 2> "$tmp/err.txt"
rc=$?
set -e
[ "$rc" = 2 ] || { echo "FAIL: truncated checkpoint gave exit $rc"; exit 1; }
grep -q "implies 1056540 bytes but the file has 100000" "$tmp/err.txt" || { echo "FAIL: message: $(cat "$tmp/err.txt")"; exit 1; }
[ ! -e "$tmp/t.gguf" ] || { echo "FAIL: partial output left behind"; exit 1; }
echo "stories260K: $(wc -c < "$tmp/got.txt") bytes identical to the published text"
