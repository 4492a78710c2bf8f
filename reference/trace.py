"""Trace containers (docs/trace-format.md, docs/specs/ggml-nodes.md).

- ``TraceWriter``: streams the canonical layout (``e{k}/{tap}.npy`` members, npy 1.0, deflated),
  ``meta.yaml`` written last.
- ``CanonicalTrace``: reads a canonical trace, validating meta.yaml and every member.
- ``GgmlNodesTrace``: reads the shared bitnet.cpp / llama.cpp traces (layout ggml-nodes) and maps
  graph nodes onto canonical taps per docs/specs/ggml-trace-names.md (``canonical``).
"""

import os
import sys

import numpy as np
import yaml

# The canonical container has one implementation: the installable package in python/bitparity
# (numpy only). The reference keeps PyYAML as its meta.yaml codec: its traces, the fixtures
# included (fixtures/MANIFEST.sha256), are byte for byte what yaml.safe_dump writes.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'python'))
from bitparity import trace as _container  # noqa: E402
from bitparity.trace import TraceError, _read_npy  # noqa: E402,F401


def _yaml_dump(meta):
    return yaml.safe_dump(meta, sort_keys=False, default_flow_style=None)


def _yaml_load(text, where):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TraceError('%s: %s' % (where, e))


class TraceWriter(_container.TraceWriter):
    """The package's writer with the reference's producer and PyYAML's meta.yaml."""

    def __init__(self, path, producer, model, settings):
        super().__init__(path, producer, model, settings, dump=_yaml_dump)


class CanonicalTrace(_container.CanonicalTrace):
    def __init__(self, path):
        super().__init__(path, load=_yaml_load)


_open_zip = _container.open_zip


def _read_meta(zf, path):
    return _container.read_meta(zf, path, _yaml_load)


# --- ggml-nodes -> canonical (docs/specs/ggml-trace-names.md) --------------------------------------
# canonical suffix -> (bitnet.cpp (name, op), llama.cpp (name, op)); {N} = layer.
_BLOCK_MAP = {
    'attn_norm': (('attn_norm-{N}', 'MUL'), ('attn_norm-{N}', 'MUL')),
    'attn_q': (('Qcur-{N}', 'MUL_MAT'), ('Qcur-{N}', 'MUL_MAT')),
    'attn_k': (('Kcur-{N}', 'MUL_MAT'), ('Kcur-{N}', 'MUL_MAT')),
    'attn_v': (('Vcur-{N}', 'MUL_MAT'), ('Vcur-{N}', 'MUL_MAT')),
    'attn_q_rope': (('Qcur-{N}', 'ROPE'), ('Qcur-{N}', 'ROPE')),
    'attn_k_rope': (('Kcur-{N}', 'ROPE'), ('Kcur-{N}', 'ROPE')),
    'attn_scores': (('kq-{N}', 'MUL_MAT'), ('kq-{N}', 'MUL_MAT')),
    'attn_probs': (('kq_soft_max_ext-{N}', 'SOFT_MAX'), ('kq_soft_max-{N}', 'SOFT_MAX')),
    'attn_ctx': (('kqv_out-{N}', 'CONT'), ('kqv_out-{N}', 'CONT')),
    'attn_sub_norm': (('attn_sub_norm-{N}', 'MUL'), ('attn_sub_norm-{N}', 'MUL')),
    'attn_out': (('attn_o_out-{N}', 'MUL_MAT'), ('attn_out-{N}', 'MUL_MAT')),
    'ffn_inp': (('ffn_inp-{N}', 'ADD'), ('ffn_inp-{N}', 'ADD')),
    'ffn_norm': (('ffn_norm-{N}', 'MUL'), ('ffn_norm-{N}', 'MUL')),
    'ffn_gate': (('ffn_gate-{N}', 'MUL_MAT'), ('ffn_gate-{N}', 'MUL_MAT')),
    'ffn_up': (('ffn_up-{N}', 'MUL_MAT'), ('ffn_up-{N}', 'MUL_MAT')),
    # llama.cpp fuses silu(gate)·up into one SWIGLU node named like the relu² MUL
    'ffn_act': (('ffn_out-{N}', 'MUL'), ('ffn_sub_out-{N}', 'MUL|SWIGLU')),
    'ffn_sub_norm': (('ffn_sub_norm-{N}', 'MUL'), ('ffn_sub_norm-{N}', 'MUL')),
    'ffn_out': (('ffn_down-{N}', 'MUL_MAT'), ('ffn_down-{N}', 'MUL_MAT')),
    'out': (('l_out-{N}', 'ADD'), ('l_out-{N}', 'ADD')),
}
_GLOBAL_MAP = {
    'token_embd': (('inp_embd', 'GET_ROWS'), ('embd', 'GET_ROWS')),
    'output_norm': (('result_norm', 'MUL'), ('result_norm', 'MUL')),
    'logits': (('result_output', 'MUL_MAT'), ('result_output', 'MUL_MAT')),
}
BLOCK_TAPS = tuple(_BLOCK_MAP)
ATTN_MATRIX_TAPS = ('attn_scores', 'attn_probs')


def ggml_node_for_tap(tap, flavor):
    """(node name, op) of the ggml node holding canonical ``tap``; flavor 'bitnet.cpp' or
    'llama.cpp'. None when the tap has no node (e.g. in_q8)."""
    col = 0 if flavor == 'bitnet.cpp' else 1
    if tap in _GLOBAL_MAP:
        return _GLOBAL_MAP[tap][col]
    parts = tap.split('.')
    if len(parts) == 3 and parts[0] == 'blk' and parts[1].isdigit() and parts[2] in _BLOCK_MAP:
        name, op = _BLOCK_MAP[parts[2]][col]
        return name.format(N=parts[1]), op
    return None


class GgmlNodesTrace:
    """Reader of a layout ggml-nodes trace (shared bitnet.cpp / llama.cpp recordings).

    ``nodes(eid)``: index rows (dicts: seq, name, op, type, ne, file); ``node(eid, name, op,
    occurrence=0)``: the float32 array; ``canonical(eid, tap)``: the node mapped to the canonical
    tap's layout (see ``canonical``)."""

    def __init__(self, path):
        self.path = str(path)
        self._zf = _open_zip(path)
        self.meta = _read_meta(self._zf, self.path)
        if self.meta['layout'] != 'ggml-nodes':
            raise TraceError('%s: layout %r is not ggml-nodes' % (self.path, self.meta['layout']))
        self.evaluations = self.meta['evaluations']
        pname = str(self.meta.get('producer', {}).get('name', ''))
        self.flavor = 'llama.cpp' if pname.startswith('llama.cpp') else 'bitnet.cpp'
        self._index = {}

    def nodes(self, eid):
        if eid not in self._index:
            member = eid + '/index.tsv'
            try:
                text = self._zf.read(member).decode('utf-8')
            except KeyError:
                raise TraceError('%s: missing %s' % (self.path, member))
            lines = text.rstrip('\n').split('\n')
            head = lines[0].split('\t')
            for col in ('seq', 'name', 'op', 'type', 'ne0', 'ne1', 'ne2', 'ne3', 'file'):
                if col not in head:
                    raise TraceError('%s: %s: missing column %s' % (self.path, member, col))
            rows = []
            for ln, line in enumerate(lines[1:], 2):
                f = line.split('\t')
                if len(f) != len(head):
                    raise TraceError('%s: %s line %d: %d fields, header has %d' % (self.path, member, ln, len(f), len(head)))
                r = dict(zip(head, f))
                try:
                    r['ne'] = tuple(int(r['ne%d' % i]) for i in range(4))
                    r['seq'] = int(r['seq'])
                except ValueError:
                    raise TraceError('%s: %s line %d: bad integer' % (self.path, member, ln))
                rows.append(r)
            self._index[eid] = rows
        return self._index[eid]

    def find(self, eid, name, op, occurrence=0):
        """The index row of the ``occurrence``-th node (name, op), or None; op may list
        alternatives separated by '|'."""
        k = 0
        ops = op.split('|')
        for r in self.nodes(eid):
            if r['name'] == name and r['op'] in ops:
                if k == occurrence:
                    return r
                k += 1
        return None

    def load(self, eid, row):
        arr = _read_npy(self._zf, '%s/%s' % (eid, row['file']), self.path)
        ne = row['ne']
        if arr.size != ne[0] * ne[1] * ne[2] * ne[3]:
            raise TraceError('%s: %s/%s: %d elements, index says ne=%s' % (self.path, eid, row['file'], arr.size, ne))
        return arr.astype(np.float32, copy=False)

    def node(self, eid, name, op, occurrence=0):
        row = self.find(eid, name, op, occurrence)
        if row is None:
            raise TraceError('%s: %s has no node (%s, %s) #%d' % (self.path, eid, name, op, occurrence))
        return self.load(eid, row)

    def logits(self, eid):
        return _read_npy(self._zf, eid + '/logits.npy', self.path).astype(np.float32)

    def evaluation(self, eid):
        for ev in self.evaluations:
            if ev['id'] == eid:
                return ev
        raise TraceError('%s: no evaluation %s' % (self.path, eid))

    def canonical(self, eid, tap):
        """The value of canonical ``tap`` in evaluation ``eid`` in the canonical layout, or None
        when the trace has no node for it.

        Row taps come back as [rows, width] (rows may be a subset of T in pruned traces: the
        last rows). ``attn_scores`` / ``attn_probs`` come back as [nh, T, p0+T] (cropped to the
        unpadded cache length); attn_scores is the UNSCALED q·kᵀ of the ggml node (the 1/√D
        is applied inside ggml's softmax) and its masked entries are garbage."""
        if tap == 'logits':
            if ('%s/logits.npy' % eid) in self._zf.namelist():
                return self.logits(eid)
        m = ggml_node_for_tap(tap, self.flavor)
        if m is None:
            return None
        row = self.find(eid, *m)
        if row is None:
            return None
        arr = self.load(eid, row)
        ne = row['ne']
        if tap.endswith(ATTN_MATRIX_TAPS):
            ev = self.evaluation(eid)
            n_kv = int(ev['p0']) + len(ev['tokens'])
            return arr.reshape(ne[2], ne[1], ne[0])[:, :, :n_kv]
        width = ne[0] * ne[1] if row['op'] == 'ROPE' else ne[0]
        return arr.reshape(-1, width)


def nmse(a, b):
    """Σ(a−b)² / Σb² in float64 (0 when both are all zero)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    den = float(np.sum(b * b))
    num = float(np.sum((a - b) ** 2))
    return num / den if den else (0.0 if num == 0 else float('inf'))

