#!/usr/bin/env bash
# arbiter_llamacpp.sh — `bitparity check --arbiter python` where the reference
# is the broken side: upstream llama.cpp's trace of the shared tiny model run
# with SiLU (../shared/reference-traces/llamacpp/silu-f32-p1.npz), checked
# with the engine on tiny-bitnet-llamacpp-f32.gguf, whose metadata declares
# relu² (bitnet.hidden_activation = relu2). The independent Python reference,
# run on that file's declared math, agrees with the subject bit for bit at
# blk.0.ffn_act and matches the reference trace only with SiLU forced.
# Exit 1 (parity fails) as without the arbiter.
# $1 = the bitparity binary; BITPARITY_SOURCE_DIR = the source tree. Exit 77 (skip) without the shared data.
set -u
. "$(dirname "$0")/lib/common.sh"
shared=${BITPARITY_SHARED_DIR:-}
ref=$shared/reference-traces/llamacpp/silu-f32-p1.npz
model=$shared/models/tiny-bitnet-llamacpp-f32.gguf
if [ -z "$shared" ] || [ ! -f "$ref" ] || [ ! -f "$model" ]; then
    echo "SKIP: \$BITPARITY_SHARED_DIR/reference-traces/llamacpp/silu-f32-p1.npz or models/tiny-bitnet-llamacpp-f32.gguf absent (../shared not there)"
    exit 77
fi

"$bp" check -m "$model" --reference "$ref" --arbiter python --python "$py" -o "$tmp/r.yaml" >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "exit $rc (want 1: parity fails): $(cat "$tmp/out")"
grep -q '^first divergence: e0 blk.0.ffn_act ' "$tmp/out" || fail "first divergence: $(cat "$tmp/out")"
grep -q '^arbiter: subject and the independent reference agree on relu² at e0 blk.0.ffn_act (nmse 0); the reference trace differs from both (nmse 0.216); the reference trace computes SiLU (against the independent reference with SiLU forced: nmse 0)$' \
    "$tmp/out" || fail "arbiter line: $(grep -A1 '^arbiter' "$tmp/out")"
grep -q "llama.cpp-compat numerics) computed the declared math of the subject's model file $model (arch bitnet, FFN activation relu²: bitnet.hidden_activation = relu2)" \
    "$tmp/out" || fail "what it shows: $(grep 'what this shows' "$tmp/out")"
"$py" - "$tmp/r.yaml" <<'PY' || fail "receipt arbiter section"
import sys, yaml
a = yaml.safe_load(open(sys.argv[1]))['arbiter']
assert a['verdict'] == 'subject' and a['tap'] == 'blk.0.ffn_act' and a['activation'] == 'relu2', a
assert a['activation_key'] == 'bitnet.hidden_activation = relu2', a
# llama.cpp-compat: the engine and the Python reference are bit-identical; llama.cpp's SiLU output is
# NMSE 0.2158 from relu² (the activation-swap hint recomputes the same 0.216 from its gate/up)
assert a['subject'] == {'agrees': True, 'nmse': 0.0, 'max_abs': 0.0}, a['subject']
assert a['reference']['agrees'] is False and 0.215 < a['reference']['nmse'] < 0.217, a['reference']
assert a['other_activation'] == {'activation': 'silu', 'side': 'reference', 'agrees': True, 'nmse': 0.0}, a
PY
echo "PASS"
