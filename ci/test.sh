#!/usr/bin/env bash
# Builds everything and runs every test: the release build with warnings as
# errors (all suites under ctest, the demo pipeline under valgrind memcheck
# among them), then an ASan+UBSan build running every C suite and CLI script
# again (the hostile-input corpora among them), then a short libFuzzer pass
# over each parser of untrusted files.
# Usage: ci/test.sh [--quick]   (quick: the release build and its tests only)
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/bootstrap.sh

jobs=$(nproc)
quick=0
[ "${1:-}" = "--quick" ] && quick=1

echo "== release build (-Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBITPARITY_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== tests (numpy on Debian's reference BLAS)"
bash ci/with-blas.sh reference ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900

echo "== parity gate: the fixtures and the shared reference traces (ci/gate.yaml, docs/gate.md)"
BITPARITY_SHARED_DIR=${BITPARITY_SHARED_DIR:-../shared} bash ci/parity-gate.sh --bitparity build/bitparity \
  --manifest ci/gate.yaml --out build/parity-gate -- --threads "$jobs"

if [ "$quick" = 1 ]; then exit 0; fi

# Nothing committed may depend on the BLAS or the CPU: the Python reference tests (the fixture
# regeneration check among them) again with OpenBLAS, then the fixture check with numpy's SIMD
# dispatch held to its SSE3 baseline (as on a CPU without AVX).
echo "== Python reference tests with OpenBLAS"
bash ci/with-blas.sh openblas ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900 -R '^py[.]'
echo "== fixture check with numpy's CPU dispatch at its baseline"
NPY_DISABLE_CPU_FEATURES="SSSE3 SSE41 POPCNT SSE42 AVX F16C FMA3 AVX2 AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL" \
  /usr/bin/python3 fixtures/make_models.py --check

echo "== sanitizer build (ASan+UBSan): every C suite and CLI script (hostile-input corpora included)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBITPARITY_SANITIZE=ON -DBITPARITY_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
# -LE: the memcheck pipeline and the memory-limit sweep ran in the release build (valgrind cannot
# run ASan binaries; ASan reserves more address space than any limit leaves); so did the policy
# noise calibration (numbers, not memory).
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900 -E '^py[.]' -LE 'valgrind|nomem|install|calibration'

echo "== libFuzzer (ASan+UBSan, ${FUZZ_SECONDS:-20} s per target)"
bash ci/fuzz.sh "${FUZZ_SECONDS:-20}"
echo "== all tests passed"
