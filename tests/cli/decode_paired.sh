#!/usr/bin/env bash
# bench/decode_paired.c, the benchmark's in-process decode bound: a round's
# read pass covers exactly the bytes a decoded token reads (every tensor of
# the model once, as bench/run.sh counts them from inspect), it prints one
# line per round and the summary lines bench/run.sh parses, and bad
# arguments or a missing model are an error (exit 2) that says what.
set -euo pipefail
bp=$1
dp=$(dirname "$bp")/bench/decode_paired
py=${BITPARITY_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$dp" ] || fail "no $dp (the decode_paired target is built with bitparity)"

"$bp" synth --shape tiny --type i2_s -o "$tmp/m.gguf" 2>/dev/null
"$bp" inspect "$tmp/m.gguf" --json > "$tmp/m.json"
"$dp" "$tmp/m.gguf" 3 8 2 > "$tmp/out.txt" 2> "$tmp/err.txt" || fail "decode_paired: $(cat "$tmp/err.txt")"
"$py" - "$tmp" <<'PY'
import json, re, sys
d = sys.argv[1]
want = sum(t["nbytes"] for t in json.load(open(f"{d}/m.json"))["tensors"])
out = open(f"{d}/out.txt").read()
kv = dict(l.split(": ", 1) for l in out.splitlines() if not l.startswith("round "))
assert int(kv["bytes_per_token"]) == want, (kv["bytes_per_token"], want)
rounds = re.findall(r"^round (\d+): read ([0-9.]+) GB/s \(bound ([0-9.]+) tok/s\), decode ([0-9.]+) tok/s, "
                    r"([0-9.]+) of the bound$", out, re.M)
assert [int(r[0]) for r in rounds] == [1, 2, 3], out
for _, bw, bound, rate, frac in rounds:
    bw, bound, rate, frac = map(float, (bw, bound, rate, frac))
    assert bw > 0 and rate > 0, out
    # the bound is one token per read pass of the model's bytes, the fraction decode over it
    assert abs(bound - bw * 1e9 / want) <= 0.01 * bound + 0.01, (bw, bound)
    assert abs(frac - rate / bound) <= 0.005 * frac + 0.00006, (rate, bound, frac)
levels = [k for k in kv if k.startswith("inprocess_") and k.endswith("_level")]
assert levels and sum(int(kv[k].split()[0]) for k in levels) == 3, kv
# two levels only when the fastest read beats the slowest by more than 1.4x
bws = [float(r[1]) for r in rounds]
two = max(bws) > 1.4 * min(bws)
assert sorted(levels) == (["inprocess_high_level", "inprocess_low_level"] if two else ["inprocess_one_level"]), (levels, bws)
fr = sorted(float(r[4]) for r in rounds)
assert float(kv["decode_fraction_of_inprocess_bound"]) == fr[1], (kv, fr)
assert [float(x) for x in kv["decode_fraction_of_inprocess_bound_range"].split()] == [fr[0], fr[2]], kv
PY

set +e
"$dp" "$tmp/m.gguf" 3 7 > /dev/null 2> "$tmp/err.txt"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "TOKENS a divisor of 64" "$tmp/err.txt" || fail "7 tokens a round: exit $rc, $(cat "$tmp/err.txt")"
set +e
"$dp" "$tmp/missing.gguf" > /dev/null 2> "$tmp/err.txt"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "missing.gguf" "$tmp/err.txt" || fail "a missing model: exit $rc, $(cat "$tmp/err.txt")"
echo "decode_paired: ok"
