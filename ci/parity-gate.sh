#!/usr/bin/env bash
# parity-gate.sh — the CI parity gate. Either runs bitparity's engine on MODEL
# with a reference trace's evaluations (`bitparity check`), or compares any
# two traces (`bitparity compare SUBJECT REFERENCE`: your own engine's trace
# against a reference); keeps the receipt, renders it as report.html (an
# artifact to download) and report.md (printed to the log, and appended to
# $GITHUB_STEP_SUMMARY when that is set), and exits with the comparison's
# code: 0 pass, 1 parity failure, 2 usage or input error (3 when the tool
# itself failed, or the report could not be written).
# With --manifest it runs a gate manifest instead (`bitparity gate`,
# docs/gate.md: every entry's receipt and report, summary.yaml/.md/.html in
# DIR), with ${shared} set to $BITPARITY_SHARED_DIR when that is set; this is
# how ci/test.sh gates the fixtures and the shared traces (ci/gate.yaml).
#
# usage: ci/parity-gate.sh (-m MODEL | --subject TRACE.npz [-m MODEL]) --reference TRACE.npz
#                          [--policy P] [--out DIR] [--bitparity PATH] [-- EXTRA OPTIONS...]
#        ci/parity-gate.sh --manifest GATE.yaml [--shard I/N] [--out DIR] [--bitparity PATH] [-- EXTRA...]
#   --manifest M     run the gate manifest M (-- EXTRA goes to `bitparity gate`)
#   --shard I/N      with --manifest: only shard I of N
#   -m MODEL         without --subject: the model bitparity's engine runs (check);
#                    with --subject: the subject's model, for the hints (and --replay)
#   --subject T      gate this trace (any engine's) instead of running bitparity's engine
#   --out DIR        where receipt.yaml, report.html, report.md and the log go
#                    (default: parity-report)
#   --bitparity B    the binary (default: $BITPARITY, else `bitparity` on PATH)
#   -- ...           passed to `bitparity check` / `compare` as is (e.g. --replay, --numerics f32)
set -u

usage() {
    sed -n '/^# usage:/,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

model= subject= reference= policy= out=parity-report manifest= shard=
bin=${BITPARITY:-bitparity}
extra=()
while [ $# -gt 0 ]; do
    case $1 in
    -m | --model) [ $# -ge 2 ] || usage; model=$2; shift 2 ;;
    --reference) [ $# -ge 2 ] || usage; reference=$2; shift 2 ;;
    --subject) [ $# -ge 2 ] || usage; subject=$2; shift 2 ;;
    --policy) [ $# -ge 2 ] || usage; policy=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --bitparity) [ $# -ge 2 ] || usage; bin=$2; shift 2 ;;
    --manifest) [ $# -ge 2 ] || usage; manifest=$2; shift 2 ;;
    --shard) [ $# -ge 2 ] || usage; shard=$2; shift 2 ;;
    -h | --help) usage ;;
    --) shift; extra=("$@"); break ;;
    *) echo "parity-gate: unknown argument '$1'" >&2; usage ;;
    esac
done
if [ -n "$manifest" ]; then
    if ! command -v "$bin" >/dev/null 2>&1; then
        echo "parity-gate: bitparity binary '$bin' not found (set \$BITPARITY or --bitparity)" >&2
        exit 2
    fi
    args=(gate "$manifest" -o "$out")
    [ -n "$shard" ] && args+=(--shard "$shard")
    [ -n "${BITPARITY_SHARED_DIR:-}" ] && args+=(--set "shared=$(cd "$BITPARITY_SHARED_DIR" 2>/dev/null && pwd || echo "$BITPARITY_SHARED_DIR")")
    args+=("${extra[@]}")
    echo "parity-gate: $bin ${args[*]}"
    "$bin" "${args[@]}"
    rc=$?
    if [ -f "$out/summary.md" ]; then
        [ -n "${GITHUB_STEP_SUMMARY:-}" ] && cat "$out/summary.md" >>"$GITHUB_STEP_SUMMARY"
    fi
    echo "parity-gate: exit $rc; summary: $out/summary.html"
    exit $rc
fi
if [ -z "$reference" ] || { [ -z "$model" ] && [ -z "$subject" ]; }; then
    echo "parity-gate: --reference TRACE and one of -m MODEL and --subject TRACE are required" >&2
    usage
fi
if ! command -v "$bin" >/dev/null 2>&1; then
    echo "parity-gate: bitparity binary '$bin' not found (set \$BITPARITY or --bitparity)" >&2
    exit 2
fi
mkdir -p "$out" || exit 2
rm -f "$out/receipt.yaml" "$out/report.html" "$out/report.md"

if [ -n "$subject" ]; then
    cmd=compare
    args=(compare "$subject" "$reference" -o "$out/receipt.yaml")
    [ -n "$model" ] && args+=(-m "$model")
else
    cmd=check
    args=(check -m "$model" --reference "$reference" -o "$out/receipt.yaml")
fi
[ -n "$policy" ] && args+=(--policy "$policy")
args+=("${extra[@]}")
echo "parity-gate: $bin ${args[*]}"
# the command's own text summary goes to a file: the Markdown below says it all.
"$bin" "${args[@]}" >"$out/$cmd.log"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
    echo "parity-gate: bitparity $cmd exited $rc (no comparison was made)" >&2
    exit $rc
fi
if [ ! -s "$out/receipt.yaml" ]; then
    echo "parity-gate: bitparity $cmd exited $rc but wrote no receipt" >&2
    exit 3
fi
if ! "$bin" report "$out/receipt.yaml" -o "$out/report.html" ||
    ! "$bin" report "$out/receipt.yaml" -o "$out/report.md"; then
    echo "parity-gate: the report could not be rendered (receipt kept in $out)" >&2
    exit 3
fi
cat "$out/report.md"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$out/report.md" >>"$GITHUB_STEP_SUMMARY"
fi
echo "parity-gate: $([ $rc -eq 0 ] && echo PASS || echo FAIL) (exit $rc); report: $out/report.html"
exit $rc
