#!/usr/bin/env bash
# The main job end to end on a tiny model bitparity makes itself:
# synthesize an I2_S BitNet model, inspect it, trace it with the engine and
# with the independent Python reference, compare the two traces under a
# policy and write a receipt (and, where built, a report).
# Usage: ci/demo.sh [OUT_DIR]   (default: demo-out/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/bootstrap.sh
out=${1:-demo-out}
mkdir -p "$out"
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" --target bitparity >/dev/null
bp=build/bitparity
py=/usr/bin/python3
tokens=509,286,220,457,496,302,451,13,271,88

echo "== 1. synthesize a tiny BitNet b1.58 model (I2_S weights)"
"$bp" synth --shape tiny --type i2_s --seed 1 -o "$out/tiny-i2s.gguf"

echo "== 2. inspect it"
"$bp" inspect "$out/tiny-i2s.gguf" | sed -n '1,4p'
"$bp" inspect --stats "$out/tiny-i2s.gguf" | grep -A1 'blk.0.attn_q.weight'

echo "== 3. trace the engine (prompt + 2 greedy decode steps, ggml-compat numerics)"
"$bp" trace -m "$out/tiny-i2s.gguf" --tokens "$tokens" --decode 2 -o "$out/engine.npz"

echo "== 4. trace the independent Python reference"
"$py" reference/bitnet_ref.py trace -m "$out/tiny-i2s.gguf" --tokens "$tokens" --decode 2 -o "$out/reference.npz"

if "$bp" --help | grep -q '^  compare'; then
  echo "== 5. compare engine vs reference, write the receipt"
  set +e
  "$bp" compare "$out/engine.npz" "$out/reference.npz" -o "$out/receipt.yaml"
  rc=$?
  set -e
  echo "receipt: $out/receipt.yaml (exit $rc)"
  if "$bp" --help | grep -q '^  report'; then
    "$bp" report "$out/receipt.yaml" -o "$out/report.html"
    "$bp" report "$out/receipt.yaml" --format markdown -o "$out/report.md"
    echo "report: $out/report.html, $out/report.md"
  fi
  exit $rc
fi
