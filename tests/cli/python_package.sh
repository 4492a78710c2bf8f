#!/usr/bin/env bash
# python_package.sh — the Python package installs like any other: pip (offline, into a virtual
# environment) installs python/ and, from outside the source tree, the installed `bitparity`
# writes a trace of a teacher-forced run that `bitparity compare` accepts against the engine's
# own trace, and reads the engine's trace back. $1 = the bitparity binary.
set -u
. "$(dirname "$0")/lib/common.sh"

"$py" -c 'import venv, setuptools, wheel' 2>/dev/null ||
    { echo "SKIP: python3-venv, python3-setuptools or python3-wheel missing (ci/bootstrap.sh installs them)"; exit 77; }
cp -r "$src/python" "$tmp/pkg" # pip builds in the folder it is given: keep the source tree clean
"$py" -m venv --system-site-packages "$tmp/venv" >/dev/null || fail "venv"
"$tmp/venv/bin/pip" install -q --no-index --no-build-isolation "$tmp/pkg" >"$tmp/pip.log" 2>&1 ||
    fail "pip install: $(tail -5 "$tmp/pip.log")"

"$bp" synth --shape tiny --type f32 --seed 4 -o "$tmp/m.gguf" 2>/dev/null || fail synth
"$bp" trace -m "$tmp/m.gguf" --tokens 7,8,9 --decode 2 --numerics f32 -o "$tmp/ref.npz" 2>/dev/null || fail trace

cd "$tmp" || fail "cd"
"$tmp/venv/bin/python" - "$tmp/ref.npz" "$tmp/mine.npz" "$tmp/m.gguf" "$src" <<'PY' || fail "the installed package"
import sys
import bitparity
ref, out, model, src = sys.argv[1:]
assert not bitparity.__file__.startswith(src), bitparity.__file__  # the installed copy, not the tree
# A "foreign engine" that computes exactly what the reference trace holds: the trace it writes
# through the package must compare equal. (examples/ show an engine with its own arithmetic.)
with bitparity.CanonicalTrace(ref) as r:
    assert r.meta['producer']['name'] == 'bitparity', r.meta['producer']
    with bitparity.TraceWriter(out, producer={'name': 'py-engine', 'version': '1'},
                               model={'path': model, 'sha256': bitparity.sha256_file(model),
                                      'weight_type': r.meta['model']['weight_type']},
                               settings={'numerics': 'f32'}) as w:
        for ev in r.evaluations:
            w.begin_evaluation(ev['tokens'], ev['p0'])
            for tap in r.taps(ev['id']):
                w.write_tap(tap, r.get(ev['id'], tap))
print('written', out)
PY
"$bp" compare "$tmp/mine.npz" "$tmp/ref.npz" -o "$tmp/r.yaml" >"$tmp/out" 2>&1 || fail "compare: $(cat "$tmp/out")"
grep -q "model-mismatch" "$tmp/r.yaml" && fail "same model reported as a mismatch"
"$bp" compare "$tmp/mine.npz" "$tmp/ref.npz" --replay -m "$tmp/m.gguf" >"$tmp/out" 2>&1
[ $? -eq 2 ] || fail "--replay on the package's trace was not refused: $(cat "$tmp/out")"
# The classic porting bugs written through the installed package (lib/porting_bugs.sh)
. "$src/tests/cli/lib/porting_bugs.sh"
retrace_py() {
    "$tmp/venv/bin/python" - "$@" <<'PY'
import sys
import bitparity
src, out, model = sys.argv[1:]
with bitparity.CanonicalTrace(src) as r, \
        bitparity.TraceWriter(out, producer={'name': 'py-port'},
                              model={'path': model, 'sha256': bitparity.sha256_file(model), 'weight_type': 'i2_s'},
                              settings={'numerics': 'ggml-compat'}) as w:
    for ev in r.evaluations:
        w.begin_evaluation(ev['tokens'], ev['p0'])
        for tap in r.taps(ev['id']):
            w.write_tap(tap, r.get(ev['id'], tap))
PY
}
check_porting_bugs retrace_py
echo "python_package: installed offline into a venv; its trace compares equal; 6 porting bugs localized and named; replay refused"
