#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with ASan+UBSan and runs
# each for SECONDS (default 20) from its seeds (tests/fuzz/seeds/<name>/,
# fixtures/models for fuzz_model)
# plus the corpus kept in build-fuzz/corpus/<target>/, then prints one line
# per target: executions, final cov: and ft:, and crashes (0, or the
# artifact: a crash, leak, timeout or out-of-memory input to replay with
# `build-fuzz/tests/fuzz/<target> <artifact>`). Exits 1 when any target
# crashed, 2 on a usage error.
# Usage: ci/fuzz.sh [SECONDS] [TARGET...]   (TARGET: fuzz_gguf or gguf; default all)
# FUZZ_RUNS=N also stops a target after N executions, whichever comes first
# (the long campaign: FUZZ_RUNS=10000000 ci/fuzz.sh 3600).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
runs=${FUZZ_RUNS:--1}
if [ "$seconds" -lt 1 ] || ! [[ "$runs" =~ ^(-1|[1-9][0-9]*)$ ]]; then
  echo "usage: [FUZZ_RUNS=N>=1] ci/fuzz.sh [SECONDS>=1] [TARGET...]" >&2
  exit 2
fi
bash ci/bootstrap.sh

jobs=$(nproc)
build=build-fuzz
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DBITPARITY_FUZZ=ON -DBITPARITY_TESTS=OFF >/dev/null

targets=()
if [ $# -eq 0 ]; then
  for src in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
else
  for t in "$@"; do targets+=("fuzz_${t#fuzz_}"); done
fi
for t in "${targets[@]}"; do
  if [ ! -f "tests/fuzz/$t.c" ]; then
    echo "ci/fuzz.sh: no target $t (tests/fuzz/$t.c)" >&2
    exit 2
  fi
done
cmake --build "$build" -j"$jobs" --target "${targets[@]}" >/dev/null

mkdir -p "$build/artifacts" "$build/logs"
failed=0
printf '%-18s %10s %7s %7s  %s\n' target execs cov ft crashes
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  seeds="tests/fuzz/seeds/${t#fuzz_}"
  log="$build/logs/$t.log"
  mkdir -p "$corpus"
  [ -d "$seeds" ] || seeds=""
  case $t in
    fuzz_model) seeds="$seeds fixtures/models" ;; # every architecture and weight type, not copied
    fuzz_lint) seeds="tests/fuzz/seeds/gguf fixtures/models" ;; # broken and good models
  esac
  # -close_fd_mask=3: the targets' own stdout/stderr (CLI usage errors) are
  # silenced; libFuzzer's and the sanitizers' reports still reach the log.
  # A hang (-timeout) or runaway allocation (-rss_limit_mb, -malloc_limit_mb)
  # is a finding like a crash.
  rc=0
  "$build/tests/fuzz/$t" -max_total_time="$seconds" -runs="$runs" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
    "$corpus" $seeds >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
  crashes=0
  if [ "$rc" -ne 0 ] || [ -n "$artifact" ]; then
    crashes="${artifact:-exit $rc, no artifact}  (log: $log)"
    failed=1
  fi
  printf '%-18s %10s %7s %7s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes"
  if [ "$crashes" != 0 ]; then
    # the report and the project's own frames (not libFuzzer's or libc's)
    grep -E 'ERROR|SUMMARY|deadly signal|^ *#[0-9]+ 0x.* in .*/(engine|parity|reports|cli|tests)/' "$log" |
      head -n 12 | sed 's/^/    /'
  fi
done
exit "$failed"
