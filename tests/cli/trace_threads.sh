#!/usr/bin/env bash
# trace_threads.sh — `bitparity trace --threads 1` and `--threads 3` write the
# same trace: the same members in the same order, every tap array (f32 and
# int8, opt-in taps included) byte for byte, and a meta.yaml that differs
# only in settings.threads. Fixture models (I2_S, TQ1_0, Q8_0), a 40-token
# prompt plus 3 decode steps, both numerics modes; no ../shared needed.
# $1 = the bitparity binary.
set -euo pipefail
bp=$1
py=${BITPARITY_PYTHON:-/usr/bin/python3}
src=${BITPARITY_SOURCE_DIR:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
p2=$(sed -n 's/^p2 //p' "$src/fixtures/prompts.txt")
[ -n "$p2" ] || fail "no prompt p2 in fixtures/prompts.txt"

for model in b158-i2s bitnet-tq1-relu2 llama-q8_0; do
    for numerics in ggml-compat f32; do
        for threads in 1 3; do
            "$bp" trace -m "$src/fixtures/models/$model.gguf" --tokens "$p2" --decode 3 --taps '*' \
                --numerics $numerics --threads $threads -o "$tmp/t$threads.npz" >/dev/null ||
                fail "$model $numerics: trace --threads $threads exited $?"
        done
        "$py" - "$tmp/t1.npz" "$tmp/t3.npz" "$model" <<'PY' || fail "$model $numerics: the traces differ"
import sys, zipfile, yaml
a, b = zipfile.ZipFile(sys.argv[1]), zipfile.ZipFile(sys.argv[2])
names = a.namelist()
assert names == b.namelist(), "member lists differ"
arrays = [n for n in names if n.endswith(".npy")]
assert len(arrays) >= 4 * 2 * 15, f"only {len(arrays)} arrays"
# I2_S quantizes each projection's input per token: those int8 taps are compared too
assert any(n.endswith(".in_q8.npy") for n in arrays) == sys.argv[3].endswith("i2s")
for n in arrays:
    assert a.read(n) == b.read(n), f"{n} differs between 1 and 3 threads"
ma, mb = yaml.safe_load(a.read("meta.yaml")), yaml.safe_load(b.read("meta.yaml"))
assert ma["settings"].pop("threads") == 1 and mb["settings"].pop("threads") == 3
assert ma == mb, "meta.yaml differs beyond settings.threads"
la, lb = a.read("meta.yaml").splitlines(), b.read("meta.yaml").splitlines()
assert [x for x, y in zip(la, lb) if x != y] == [b"  threads: 1"] and len(la) == len(lb)
print(f"{len(arrays)} arrays identical", end=" ")
PY
        echo "$model $numerics: ok"
    done
done
