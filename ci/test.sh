#!/usr/bin/env bash
# Builds everything and runs every test: the release build with warnings as
# errors (all suites under ctest), then an ASan+UBSan build running every C
# suite and CLI script again (the hostile-input corpora among them), then a
# short libFuzzer pass over each parser of untrusted files.
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
echo "== tests"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900

if [ "$quick" = 1 ]; then exit 0; fi

echo "== sanitizer build (ASan+UBSan): every C suite and CLI script (hostile-input corpora included)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBITPARITY_SANITIZE=ON -DBITPARITY_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900 -E '^py[.]'

echo "== libFuzzer (ASan+UBSan, ${FUZZ_SECONDS:-20} s per target)"
bash ci/fuzz.sh "${FUZZ_SECONDS:-20}"
echo "== all tests passed"
