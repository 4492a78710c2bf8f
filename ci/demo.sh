#!/usr/bin/env bash
# The main job end to end on a tiny model bitparity makes itself:
#   1. synthesize a tiny I2_S BitNet b1.58 model and inspect it,
#   2. trace it with bitparity's engine and with the independent Python
#      reference (prompt + 2 greedy decode steps),
#   3. compare the two traces under the automatically chosen policy and
#      write the receipt and the HTML/Markdown report,
#   4. show the harness at work: a seeded bug (SiLU for relu²) is localized,
#      named and placed by the replay.
# Usage: ci/demo.sh [OUT_DIR]   (default: demo-out/). Exit 0 when every step
# did what it should (the parity check passes, the seeded bug is found).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/bootstrap.sh
out=${1:-demo-out}
mkdir -p "$out"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bitparity >/dev/null
bp=build/bitparity
py=/usr/bin/python3
tokens=509,286,220,457,496,302,451,13,271,88

echo "== 1. synthesize and inspect a tiny BitNet b1.58 model (I2_S weights)"
"$bp" synth --shape tiny --type i2_s --seed 1 -o "$out/tiny-i2s.gguf"
"$bp" inspect "$out/tiny-i2s.gguf" | sed -n '1,4p'
"$bp" inspect --stats "$out/tiny-i2s.gguf" | grep -A1 'blk.0.attn_q.weight'

echo "== 2. trace the engine and the Python reference"
"$bp" trace -m "$out/tiny-i2s.gguf" --tokens "$tokens" --decode 2 -o "$out/engine.npz"
"$py" reference/bitnet_ref.py trace -m "$out/tiny-i2s.gguf" --tokens "$tokens" --decode 2 -o "$out/reference.npz"

echo "== 3. compare, write the receipt and the report"
"$bp" compare "$out/engine.npz" "$out/reference.npz" -o "$out/receipt.yaml"
"$bp" report "$out/receipt.yaml" -o "$out/report.html"
"$bp" report "$out/receipt.yaml" -o "$out/report.md"
echo "receipt: $out/receipt.yaml  report: $out/report.html, $out/report.md"

echo "== 4. a seeded bug: the engine computes SiLU where the model says relu²"
"$bp" trace -m "$out/tiny-i2s.gguf" --tokens "$tokens" --decode 2 --fault silu -o "$out/engine-silu.npz"
set +e
"$bp" compare "$out/engine-silu.npz" "$out/reference.npz" --replay -m "$out/tiny-i2s.gguf" \
  -o "$out/receipt-silu.yaml" | grep -E '^(bitparity compare|first divergence|hint)'
rc=${PIPESTATUS[0]}
set -e
"$bp" report "$out/receipt-silu.yaml" -o "$out/report-silu.html"
if [ "$rc" != 1 ]; then
  echo "demo: the seeded bug was not reported as a parity failure (exit $rc)" >&2
  exit 1
fi
echo "receipt: $out/receipt-silu.yaml  report: $out/report-silu.html"
echo "demo: ok"
