#!/usr/bin/env bash
# compare_traces.sh — `bitparity compare` end to end: the engine against the
# shared bitnet.cpp and llama.cpp traces (pass, localized failure), receipts in
# YAML and JSON read back with PyYAML / json, and a token mismatch.
# $1 = the bitparity binary. Exit 77 (skip) without the shared data.
set -u
bin=$1
shared=${BITPARITY_SHARED_DIR:-}
py=${BITPARITY_PYTHON:-/usr/bin/python3}
if [ -z "$shared" ] || [ ! -f "$shared/reference-traces/bitnetcpp/i2s/p1.npz" ]; then
    echo "SKIP: \$BITPARITY_SHARED_DIR/reference-traces absent"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
refs=$shared/reference-traces
models=$shared/models
p1=509,12,300,45,78,260,301,99,400,13,271,88

"$bin" --help | grep -q '^  compare ' || fail "bitparity --help does not list compare"
"$bin" compare --help >"$tmp/help" || fail "compare --help exited $?"
for opt in --map --policy -o --format --threads; do
    grep -q -- "$opt" "$tmp/help" || fail "compare --help does not mention $opt"
done
grep -q -- '--replay ' "$tmp/help" || fail "compare --help does not describe --replay"

# Engine (ggml-compat) vs bitnet.cpp: every mapped tap bit-identical, exit 0.
"$bin" trace -m "$models/tiny-bitnet-i2s.gguf" --tokens $p1 --decode 2 -o "$tmp/e.npz" >/dev/null ||
    fail "trace exited $?"
"$bin" compare "$tmp/e.npz" "$refs/bitnetcpp/i2s/p1.npz" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || fail "compare vs bitnet.cpp exited $rc: $(cat "$tmp/out" "$tmp/err")"
grep -q '^bitparity compare: PASS' "$tmp/out" || fail "no PASS line: $(cat "$tmp/out")"
grep -q '213 compared: 213 pass (213 bit-identical), 0 fail' "$tmp/out" || fail "counts: $(cat "$tmp/out")"
grep -q 'policy     ggml-compat (auto: ' "$tmp/out" || fail "policy line: $(cat "$tmp/out")"

# Receipts: -o YAML, --format json on stdout; both parse and agree.
"$bin" compare "$tmp/e.npz" "$refs/bitnetcpp/i2s/p1.npz" -o "$tmp/r.yaml" --format json >"$tmp/r.json" ||
    fail "compare -o exited $?"
"$py" - "$tmp/r.yaml" "$tmp/r.json" "$tmp/e.npz" <<'PY' || fail "receipt check"
import hashlib, json, sys, yaml
y = yaml.safe_load(open(sys.argv[1]))
j = json.load(open(sys.argv[2]))
for k in ("created", "timings"):
    y.pop(k), j.pop(k)
assert y == j, "YAML and JSON receipts differ"
assert y["receipt"] == "bitparity/v1"
s = y["summary"]
assert s["verdict"] == "pass" and s["first_divergence"] is None and s["hints"] == []
assert s["counts"]["compared"] == 213 and s["counts"]["bit_identical"] == 213, s["counts"]
assert s["evaluations"] == {"subject": 3, "reference": 3, "compared": 3}
assert y["subject"]["sha256"] == hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest()
assert y["reference"]["map"]["name"] == "bitnet.cpp"
assert [e["p0"] for e in y["input"]["evaluations"]] == [0, 12, 13]
assert len(y["taps"]) == 237 and all(t["status"] in ("pass", "missing-subject") for t in y["taps"])
assert [l["evaluation"] for l in y["logits"]] == ["e0", "e1", "e2"]
assert y["error_growth"]["evaluations"][2]["nmse_max"] == [0.0, 0.0, 0.0, 0.0]
PY

# Pruned last layer (only the last position's logits): still a pass.
"$bin" compare "$tmp/e.npz" "$refs/bitnetcpp/i2s/p1_lastonly.npz" >"$tmp/out" ||
    fail "compare vs p1_lastonly exited $?: $(cat "$tmp/out")"

# Engine f32 vs llama.cpp's SiLU trace: exit 1, localized to blk.0.ffn_act.
"$bin" trace -m "$models/tiny-bitnet-llamacpp-f32.gguf" --numerics f32 --tokens 509,1,100,200,300,400,500,7 \
    -o "$tmp/l.npz" >/dev/null || fail "trace (llama) exited $?"
"$bin" compare "$tmp/l.npz" "$refs/llamacpp/f32-p1.npz" >"$tmp/out" || fail "vs llama.cpp f32: $(cat "$tmp/out")"
grep -q 'policy     cross-backend' "$tmp/out" || fail "llama.cpp policy: $(cat "$tmp/out")"
"$bin" compare "$tmp/l.npz" "$refs/llamacpp/silu-f32-p1.npz" --format yaml >"$tmp/s.yaml"
rc=$?
[ $rc -eq 1 ] || fail "compare vs SiLU exited $rc (want 1)"
"$py" - "$tmp/s.yaml" <<'PY' || fail "SiLU receipt check"
import sys, yaml
y = yaml.safe_load(open(sys.argv[1]))
fd = y["summary"]["first_divergence"]
assert y["summary"]["verdict"] == "fail"
assert (fd["evaluation"], fd["tap"], fd["layer"], fd["metric"]) == ("e0", "blk.0.ffn_act", 0, "nmse"), fd
assert y["summary"]["failing_evaluations"] == ["e0"]
PY
"$bin" compare "$tmp/l.npz" "$refs/llamacpp/silu-f32-p1.npz" >"$tmp/out"
grep -q '^first divergence: e0 blk.0.ffn_act (layer 0): nmse = ' "$tmp/out" || fail "text: $(cat "$tmp/out")"

# check against llama.cpp picks llama.cpp-compat numerics and the exact policy by itself, and passes:
# every tap of every shared llama.cpp trace bit-identical; the SiLU trace against the relu² model
# fails at blk.0.ffn_act with the activation-swap hint.
for t in f32 tq2_0 tq1_0 silu-f32; do
    "$bin" check -m "$models/tiny-bitnet-llamacpp-$t.gguf" --reference "$refs/llamacpp/$t-p1.npz" >"$tmp/out" 2>&1 ||
        fail "check vs llama.cpp $t exited $?: $(cat "$tmp/out")"
    grep -q 'policy     exact (auto: engine in llama.cpp-compat numerics vs llama.cpp' "$tmp/out" ||
        fail "llama.cpp $t policy: $(cat "$tmp/out")"
    grep -q 'bitparity llama.cpp-compat' "$tmp/out" || fail "llama.cpp $t numerics: $(cat "$tmp/out")"
    grep -q '71 compared: 71 pass (71 bit-identical)' "$tmp/out" || fail "llama.cpp $t not bit-identical: $(cat "$tmp/out")"
done
"$bin" check -m "$models/tiny-bitnet-llamacpp-f32.gguf" --reference "$refs/llamacpp/silu-f32-p1.npz" >"$tmp/out" 2>&1
[ $? -eq 1 ] || fail "check relu² model vs SiLU trace did not fail: $(cat "$tmp/out")"
grep -q '^first divergence: e0 blk.0.ffn_act ' "$tmp/out" && grep -q '^hint: activation-swap: ' "$tmp/out" ||
    fail "SiLU vs llama.cpp-compat: $(cat "$tmp/out")"

# bitnet.cpp with an f32 K cache (settings.kv_cache "K f32, V f16"): check takes the cache types from
# the reference and reproduces every tap, scores and probabilities included.
for t in f32 i2s; do
    "$bin" check -m "$models/tiny-bitnet-$t.gguf" --reference "$refs/bitnetcpp/$t/p1_kf32.npz" --taps '*' --policy exact \
        --keep-trace "$tmp/kf32.npz" >"$tmp/out" 2>&1 || fail "check vs bitnet.cpp $t K f32: $(cat "$tmp/out")"
    grep -q '158 compared: 158 pass (158 bit-identical)' "$tmp/out" || fail "$t K f32: $(cat "$tmp/out")"
    "$py" -c "import sys, zipfile, yaml
s = yaml.safe_load(zipfile.ZipFile(sys.argv[1]).read('meta.yaml'))['settings']
assert s['kv_cache'] == 'K f32, V f16', s" "$tmp/kf32.npz" || fail "$t: kv_cache not recorded as K f32, V f16"
done

# A different token id: tokenization diagnosis, exit 1, nothing compared.
"$bin" trace -m "$models/tiny-bitnet-i2s.gguf" --tokens 509,12,300 --decode 0 -o "$tmp/t.npz" >/dev/null
"$bin" compare "$tmp/t.npz" "$refs/bitnetcpp/i2s/p1.npz" >"$tmp/out"
rc=$?
[ $rc -eq 1 ] || fail "token mismatch exited $rc (want 1)"
grep -q 'diagnosis  tokenization mismatch: e0: 3 tokens in the subject, 12 in the reference' "$tmp/out" ||
    fail "tokenization text: $(cat "$tmp/out")"
grep -q '0 compared' "$tmp/out" || fail "activations were compared: $(cat "$tmp/out")"
echo "ok"
