#!/usr/bin/env bash
# PyTorch forward hooks (python/bitparity/torch_hooks.py) on a PyTorch BitNet with transformers'
# module layout (tests/python/torch_bitnet.py) that loads the fixture GGUF's weights:
#  1. its hook trace passes against the engine's f32 trace under the policy chosen automatically
#     (cross-backend: two backends) with every tap within NMSE 1e-11, and against the engine's
#     default (ggml-compat: f16 KV cache) trace under `quantized`;
#  2. each classic porting bug switched on in the PyTorch model is localized at the right tap with
#     the right hint, and --replay on it is refused.
set -u
. "$(dirname "$0")/lib/common.sh"
. "$src/tests/cli/lib/porting_bugs.sh"
"$py" -c 'import torch' 2>/dev/null || { echo "SKIP: python3-torch is not installed (ci/bootstrap.sh installs it)"; exit 77; }

model="$src/fixtures/models/b158-i2s.gguf" tokens=264,72,101,108,108,111
port() { "$py" "$src/tests/python/torch_bitnet.py" -m "$model" --tokens $tokens --decode 2 "$@"; }

"$bp" trace -m "$model" --tokens $tokens --decode 2 --numerics f32 -o "$tmp/engine-f32.npz" 2>/dev/null || fail "engine f32 trace"
"$bp" trace -m "$model" --tokens $tokens --decode 2 -o "$tmp/engine.npz" 2>/dev/null || fail "engine trace"
port -o "$tmp/torch.npz" || fail "torch model"

# 1. the clean model
"$bp" compare "$tmp/torch.npz" "$tmp/engine-f32.npz" -o "$tmp/clean.yaml" >"$tmp/out" 2>&1 ||
    fail "clean hook trace vs engine f32: $(cat "$tmp/out")"
grep -q 'policy  *cross-backend (auto' "$tmp/out" || fail "auto policy is not cross-backend: $(cat "$tmp/out")"
"$py" - "$tmp/clean.yaml" <<'PY' || fail "clean hook trace not within 1e-11: $(cat "$tmp/out")"
import sys, yaml
r = yaml.safe_load(open(sys.argv[1]))
taps = r['taps']
assert len(taps) == 3 * 37, len(taps)        # 3 evaluations x (3 global + 2 layers x 17 taps)
assert all(t['status'] == 'pass' for t in taps)
worst = max(taps, key=lambda t: t['metrics']['nmse'])
assert worst['metrics']['nmse'] < 1e-11, worst
assert sum(t['metrics']['nmse'] == 0 for t in taps) >= 9     # token_embd, attn_v of layer 0, ...
PY
"$bp" compare "$tmp/torch.npz" "$tmp/engine.npz" --policy quantized >"$tmp/out" 2>&1 ||
    fail "clean hook trace vs engine ggml-compat under quantized: $(cat "$tmp/out")"

# 2. the bugs, each switched on in the PyTorch model
while read -r _ bug tap hint; do
    port --bug "$bug" -o "$tmp/bug.npz" || fail "torch model --bug $bug"
    assert_bug_named "$tmp/bug.npz" "$tmp/engine-f32.npz" "$model" "$tap" "$hint" "torch --bug $bug"
done < <(porting_bug_cases)
echo "torch_hooks: clean pass, 6 bugs named"
