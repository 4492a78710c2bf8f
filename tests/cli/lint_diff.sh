#!/usr/bin/env bash
# bitparity lint and diff on broken exports written by the tests' own
# generator (tests/python/broken_exports.py) from the fixture models, in other
# layers and tensors than issue 10's table: lint names every bug a file shows
# by itself with the right rule id and exit code and flags none of the good
# models; diff names the changed tensor and the relation (and says why the
# activation part was skipped when the engine refuses a file).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
kjv=$src/fixtures/trained/tiny-kjv-i2s.gguf # bitnet-b1.58, H 128, 4 heads, 1 kv head, I2_S
b25=$src/fixtures/models/b25-i2s.gguf        # bitnet-25, H 128

# lint FILE EXPECTED_EXIT RULE [SUBJECT]: the exit code now; that the rule fires (on SUBJECT, named in
# its message) is checked for every call at once by check_lint_expectations (one Python start-up)
n_lint=0
lint_expect() {
    local f=$1 want=$2 rule=$3 subject=${4:-} rc=0
    n_lint=$((n_lint + 1))
    "$bp" lint --format json "$f" > "$tmp/lint$n_lint.json" || rc=$?
    [ "$rc" = "$want" ] || fail "lint $(basename "$f"): exit $rc, expected $want"
    printf '%s\t%s\t%s\t%s\n' "$tmp/lint$n_lint.json" "$rule" "$subject" "$(basename "$f")" >> "$tmp/expect.tsv"
}
check_lint_expectations() {
    "$py" - "$tmp/expect.tsv" <<'PY' || fail "lint: a rule did not fire"
import json, sys
for line in open(sys.argv[1]):
    path, rule, subject, name = line.rstrip('\n').split('\t')
    doc = json.load(open(path))
    hits = [f for f in doc['findings'] if f['rule'] == rule and (not subject or f['subject'] == subject)]
    assert hits, (name, rule, subject, [(f['rule'], f['subject']) for f in doc['findings']])
    assert all(subject in f['message'] for f in hits), (name, hits)
PY
}

# every broken export, written by the generator in one Python process (one start-up, not 17)
cat > "$tmp/kinds.txt" <<KINDS
"$kjv" norm-scale "$tmp/ns.gguf" --tensor blk.1.attn_sub_norm.weight
"$b25" norm-scale "$tmp/ns-all.gguf"
"$src/fixtures/models/b158-i2s.gguf" bitnet-no-act "$tmp/noact.gguf"
"$b25" i2s-scale "$tmp/scale0.gguf" --tensor blk.0.ffn_up.weight --value 0
"$kjv" i2s-scale "$tmp/scaleinf.gguf" --tensor blk.3.attn_k.weight --value inf
"$kjv" i2s-code3 "$tmp/code3.gguf" --tensor blk.1.attn_q.weight
"$b25" drop-key "$tmp/nopre.gguf" --key tokenizer.ggml.pre
"$b25" vocab-trim "$tmp/vocab.gguf"
"$b25" rope-dim "$tmp/rope.gguf" --value 64
"$kjv" norm-quantize "$tmp/normq.gguf" --tensor blk.2.ffn_norm.weight
"$kjv" extra-tensor "$tmp/extra.gguf" --key blk.3.attn_rot.weight
"$kjv" sign-flip "$tmp/flip.gguf" --tensor blk.0.ffn_down.weight
"$kjv" transpose "$tmp/tsq.gguf" --tensor blk.3.attn_q.weight
"$kjv" transpose "$tmp/tns.gguf" --tensor blk.0.ffn_up.weight
"$kjv" qk-permute "$tmp/qk.gguf" --layer 2
"$kjv" i2s-pack-linear "$tmp/linear.gguf" --tensor blk.1.ffn_gate.weight
"$kjv" subnorm-ones "$tmp/ones.gguf" --layer 3 --which ffn
KINDS
"$py" - "$src/tests/python" "$tmp/kinds.txt" <<'PY'
import shlex, sys
sys.path.insert(0, sys.argv[1])
import broken_exports
for line in open(sys.argv[2]):
    assert broken_exports.main(shlex.split(line)) == 0, line
PY

# ---- good models: no error, no warning (but the documented one) ----------------------------
"$bp" synth --type i2_s -o "$tmp/synth-i2s.gguf" 2>/dev/null
"$bp" synth --type tq1_0 -o "$tmp/synth-tq1.gguf" 2>/dev/null
"$bp" synth --type f32 --arch llama -o "$tmp/synth-llama.gguf" 2>/dev/null
"$bp" synth --type i2_s --arch bitnet --shape tiny-mha -o "$tmp/synth-bitnet.gguf" 2>/dev/null
good=()
for f in "$src"/fixtures/models/*.gguf "$src"/fixtures/trained/*.gguf "$tmp"/synth-*.gguf; do
    "$bp" lint --format yaml "$f" > "$tmp/good-$(basename "$f").yaml" || fail "lint of good model $f exits $?"
    good+=("$tmp/good-$(basename "$f").yaml")
done
[ ${#good[@]} -eq 15 ] || fail "expected 15 good models, found ${#good[@]}"
"$py" - "${good[@]}" <<'PY' || fail "lint of a good model: unexpected findings"
import os, sys, yaml
for path in sys.argv[1:]:
    doc = yaml.safe_load(open(path))
    bad = [(f['rule'], f['subject']) for f in doc['findings'] if f['severity'] != 'info']
    # the tq2 SiLU fixture is a `bitnet` model that really uses SiLU: the warning says what runs, rightly
    silu = os.path.basename(path) == 'good-bitnet-tq2-silu.gguf.yaml'
    assert bad == ([('bitnet-no-activation', 'bitnet.hidden_activation')] if silu else []), (path, bad)
    assert doc['summary']['error'] == 0 and doc['lint'] == 'bitparity/lint-v1', path
    assert any(f['rule'] == 'norm-gamma-rms' and 'attn_norm' in f['subject'] for f in doc['findings']), path
PY

# ---- broken exports lint can see -------------------------------------------------------------
lint_expect "$tmp/ns.gguf" 0 norm-gamma-scaled blk.1.attn_sub_norm.weight
lint_expect "$tmp/ns-all.gguf" 0 norm-gamma-scaled blk.0.ffn_sub_norm.weight
lint_expect "$tmp/noact.gguf" 0 bitnet-no-activation bitnet.hidden_activation
grep -q '99.8 instead of 17.1' "$tmp/lint$n_lint.json" || fail "bitnet-no-activation does not give the 2B-4T perplexity"
lint_expect "$tmp/scale0.gguf" 1 i2s-scale-invalid blk.0.ffn_up.weight
lint_expect "$tmp/scaleinf.gguf" 1 i2s-scale-invalid blk.3.attn_k.weight
lint_expect "$tmp/code3.gguf" 1 i2s-code3 blk.1.attn_q.weight
lint_expect "$tmp/nopre.gguf" 0 tokenizer-pre-missing tokenizer.ggml.pre
lint_expect "$tmp/vocab.gguf" 1 vocab-size tokenizer.ggml.tokens
lint_expect "$tmp/vocab.gguf" 1 engine-refuses # lint reads what the binder refuses
lint_expect "$tmp/rope.gguf" 1 rope-dim bitnet-25.rope.dimension_count
lint_expect "$tmp/normq.gguf" 1 norm-quantized blk.2.ffn_norm.weight
lint_expect "$tmp/extra.gguf" 0 unused-tensor blk.3.attn_rot.weight

check_lint_expectations

# the text form: one line per finding, the rule id and the subject on it; --rules lists every id
"$bp" lint "$tmp/code3.gguf" > "$tmp/lint.txt" || true
grep -q '^error   i2s-code3 .*blk.1.attn_q.weight' "$tmp/lint.txt" || fail "lint text line"
[ "$("$bp" lint --rules | wc -l)" -ge 17 ] || fail "lint --rules lists too few rules"
for id in $("$bp" lint --rules | awk '{print $1}'); do
    grep -q "\`$id\`" "$src/docs/lint.md" || fail "rule $id is not in docs/lint.md"
done

# input errors: exit 2 with one line naming the file
rc=0; "$bp" lint "$tmp/none.gguf" 2> "$tmp/err" || rc=$?
[ $rc = 2 ] && grep -q none.gguf "$tmp/err" || fail "lint of a missing file: exit $rc"
head -c 300 "$kjv" > "$tmp/trunc.gguf"
rc=0; "$bp" lint "$tmp/trunc.gguf" 2> "$tmp/err" || rc=$?
[ $rc = 2 ] && grep -q 'trunc.gguf' "$tmp/err" || fail "lint of a truncated file: exit $rc"
rc=0; "$bp" lint --format xml "$kjv" 2>/dev/null || rc=$?; [ $rc = 2 ] || fail "lint --format xml: exit $rc"

# ---- diff: the changed tensor and the relation ------------------------------------------------
# diff_expect OLD NEW EXPECTED_EXIT TENSOR RELATION: NEW's TENSOR is found RELATION to OLD's
diff_expect() {
    local old=$1 new=$2 want=$3 tensor=$4 rel=$5 rc=0
    "$bp" diff "$old" "$new" -o "$tmp/receipt.yaml" > "$tmp/diff.txt" || rc=$?
    [ "$rc" = "$want" ] || fail "diff $(basename "$new"): exit $rc, expected $want"
    grep -q "~ $tensor: $rel:" "$tmp/diff.txt" || { cat "$tmp/diff.txt"; fail "diff $(basename "$new"): $tensor not $rel"; }
}
diff_expect "$kjv" "$tmp/flip.gguf" 1 blk.0.ffn_down.weight sign-flipped
diff_expect "$kjv" "$tmp/tsq.gguf" 1 blk.3.attn_q.weight transposed
diff_expect "$kjv" "$tmp/tns.gguf" 1 blk.0.ffn_up.weight mis-strided
diff_expect "$kjv" "$tmp/qk.gguf" 1 blk.2.attn_q.weight qk-permuted
grep -q "~ blk.2.attn_k.weight: qk-permuted: rows permuted within each of 1 heads of 32" "$tmp/diff.txt" || fail "attn_k permute"
diff_expect "$tmp/qk.gguf" "$kjv" 1 blk.2.attn_k.weight qk-unpermuted
diff_expect "$kjv" "$tmp/linear.gguf" 1 blk.1.ffn_gate.weight re-packed
grep -q 'first divergence: e0 blk.1.ffn_gate ' "$tmp/diff.txt" || fail "re-packed: first divergent tap"
diff_expect "$kjv" "$tmp/ones.gguf" 1 blk.3.ffn_sub_norm.weight per-channel-ratio
grep -q 'NEW is all ones' "$tmp/diff.txt" || fail "subnorm-ones: all ones not said"
diff_expect "$kjv" "$tmp/ns.gguf" 1 blk.1.attn_sub_norm.weight scaled
grep -q '11.3137 x OLD.*(the factor is sqrt(H))' "$tmp/diff.txt" || fail "norm-scale: the factor"
diff_expect "$b25" "$tmp/scale0.gguf" 1 blk.0.ffn_up.weight scaled
grep -q "NEW = 0 x OLD" "$tmp/diff.txt" || fail "zero scale"
diff_expect "$kjv" "$tmp/scaleinf.gguf" 1 blk.3.attn_k.weight different
grep -Eq "NEW holds [0-9]+ NaN and 2740 inf, OLD 0 and 0" "$tmp/diff.txt" || fail "non-finite scale"
diff_expect "$kjv" "$tmp/normq.gguf" 1 blk.2.ffn_norm.weight re-encoded
grep -q "activations: skipped: the engine cannot bind NEW: .*blk.2.ffn_norm.weight is Q8_0" "$tmp/diff.txt" \
    || fail "diff does not say why the activations were skipped"

# the receipt: both models with their sha256, the metadata and tensor diffs, the activation part
"$py" - "$tmp/receipt.yaml" "$(sha256sum "$kjv" | cut -c1-64)" <<'PY' || fail "diff receipt"
import sys, yaml
r = yaml.safe_load(open(sys.argv[1]))
assert r['diff'] == 'bitparity/diff-v1' and r['old']['sha256'] == sys.argv[2], r['old']
assert r['verdict']['equivalent'] is False and r['new']['engine_binds'] is False
(t,) = r['tensors']['differences']
assert t['name'] == 'blk.2.ffn_norm.weight' and t['relation'] == 're-encoded' and t['new_type'] == 'Q8_0'
assert 0 < t['metrics']['nmse'] < 1e-4 and r['tensors']['identical'] == 45
assert r['activations']['ran'] is False and 'Q8_0' in r['activations']['skipped']
PY

# metadata: the arch renamed, hidden_activation absent -> SiLU runs; activations fail at ffn_act
rc=0; "$bp" diff "$src/fixtures/models/b158-i2s.gguf" "$tmp/noact.gguf" --format json > "$tmp/d.json" || rc=$?
[ $rc = 1 ] || fail "diff bitnet-no-act: exit $rc"
"$py" - "$tmp/d.json" <<'PY' || fail "diff bitnet-no-act: json"
import json, sys
r = json.load(open(sys.argv[1]))
md = {m['key']: m for m in r['metadata']}
assert md['general.architecture'] == {'key': 'general.architecture', 'change': 'changed', 'old': 'bitnet-b1.58', 'new': 'bitnet'}
assert md['bitnet.embedding_length']['change'] == 'added' and md['bitnet-b1.58.embedding_length']['change'] == 'removed'
a = r['activations']
assert a['ran'] and not a['pass'] and a['first_divergence']['tap'] == 'blk.0.ffn_act', a
assert any(h['name'] == 'activation-swap' for h in a['hints']) and r['tensors']['differences'] == []
PY
# vocabulary trimmed: metadata only, the engine refuses NEW
rc=0; "$bp" diff "$b25" "$tmp/vocab.gguf" > "$tmp/diff.txt" || rc=$?
[ $rc = 1 ] && grep -q '~ tokenizer.ggml.tokens: \[STRING x 267\] -> \[STRING x 266\]' "$tmp/diff.txt" || fail "diff vocab-trim"
# the same model, and an extra tensor the engine ignores: equivalent (exit 0)
"$bp" diff "$kjv" "$kjv" --tokens 256,40,41,42 > "$tmp/diff.txt" || fail "diff of a model with itself: exit $?"
grep -q 'verdict: equivalent' "$tmp/diff.txt" || fail "diff of a model with itself"
"$bp" diff "$kjv" "$tmp/extra.gguf" -p "In the beginning" > "$tmp/diff.txt" || fail "diff extra tensor: exit $?"
grep -q '+ blk.3.attn_rot.weight (F32)' "$tmp/diff.txt" || fail "diff extra tensor: not listed"
# tokens the model cannot run: the weight part stands, the activation part says why it was skipped
rc=0; "$bp" diff "$b25" "$tmp/ns-all.gguf" --tokens 1,99999 > "$tmp/diff.txt" || rc=$?
[ $rc = 1 ] && grep -q "activations: skipped: the engine cannot run the tokens: token id 99999" "$tmp/diff.txt" \
    && grep -q "~ blk.1.ffn_sub_norm.weight: scaled: .*(the factor is sqrt(H))" "$tmp/diff.txt" || fail "diff with bad tokens"
# usage and input errors: exit 2
for args in "$kjv" "$kjv $tmp/none.gguf" "$kjv $tmp/trunc.gguf" "$kjv $kjv --tokens 1 -p x" "$kjv $kjv --tokens x,y"; do
    rc=0; "$bp" diff $args > /dev/null 2>&1 || rc=$?
    [ $rc = 2 ] || fail "diff $args: exit $rc, expected 2"
done
echo "lint_diff: ok"
