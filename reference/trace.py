"""Trace containers (docs/trace-format.md, docs/specs/ggml-nodes.md).

- ``TraceWriter``: streams the canonical layout (``e{k}/{tap}.npy`` members, npy 1.0, deflated),
  ``meta.yaml`` written last.
- ``CanonicalTrace``: reads a canonical trace, validating meta.yaml and every member.
- ``GgmlNodesTrace``: reads the shared bitnet.cpp / llama.cpp traces (layout ggml-nodes) and maps
  graph nodes onto canonical taps per docs/specs/ggml-trace-names.md (``canonical``).
"""

import io
import os
import tempfile
import zipfile

import numpy as np
import yaml


class TraceError(ValueError):
    """A malformed trace; the message names the file and member."""


def _npy_bytes(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def _read_npy(zf, member, path):
    try:
        data = zf.read(member)
    except KeyError:
        raise TraceError('%s: missing member %s' % (path, member))
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise TraceError('%s: member %s unreadable: %s' % (path, member, e))
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        shape, fortran, dtype = np.lib.format._read_array_header(buf, version)
    except (ValueError, SyntaxError) as e:
        raise TraceError('%s: member %s: bad npy header: %s' % (path, member, e))
    if dtype.hasobject:
        raise TraceError('%s: member %s: object arrays are not allowed' % (path, member))
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - buf.tell() != count * dtype.itemsize:
        raise TraceError('%s: member %s: header says %s %s (%d bytes) but %d data bytes follow'
                         % (path, member, dtype, shape, count * dtype.itemsize, len(data) - buf.tell()))
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=buf.tell())
    return arr.reshape(shape, order='F' if fortran else 'C').copy()


class TraceWriter:
    """Streaming writer of the canonical container.

    ``begin(tokens, p0)`` opens evaluation e{k}; ``add(tap, array)`` appends one member
    (float arrays stored float32, ``*.in_q8`` int8); ``close(greedy_tokens)`` writes meta.yaml.
    The members go to a temporary file beside ``path`` that ``close`` renames onto it; ``abort``
    removes it: an older file at ``path`` is never left half-replaced."""

    def __init__(self, path, producer, model, settings):
        self.path = str(path)
        self.meta = {'trace': 'bitparity/v1', 'layout': 'canonical', 'producer': dict(producer),
                     'model': dict(model), 'settings': dict(settings), 'evaluations': [], 'taps': []}
        folder, name = os.path.split(os.path.abspath(self.path))
        fd, self._tmp = tempfile.mkstemp(prefix='.%s.tmp.' % name, dir=folder)
        os.close(fd)
        self._zf = zipfile.ZipFile(self._tmp, 'w', compression=zipfile.ZIP_DEFLATED)
        self._k = -1
        self._seen = set()

    def abort(self):
        """Drops everything written; safe to call more than once."""
        if self._zf is not None:
            self._zf.close()
            self._zf = None
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def begin(self, tokens, p0):
        self._k += 1
        self.meta['evaluations'].append({'id': 'e%d' % self._k, 'tokens': [int(t) for t in tokens], 'p0': int(p0)})
        self._seen = set()

    def add(self, tap, arr):
        if self._k < 0:
            raise TraceError('add() before begin()')
        if tap in self._seen:
            raise TraceError('tap %s written twice in e%d' % (tap, self._k))
        self._seen.add(tap)
        arr = np.asarray(arr)
        arr = arr.astype(np.int8 if tap.endswith('.in_q8') else np.float32, copy=False)
        if self._k == 0:
            self.meta['taps'].append(tap)
        self._zf.writestr('e%d/%s.npy' % (self._k, tap), _npy_bytes(arr))

    def close(self, greedy_tokens=None):
        if greedy_tokens is not None:
            self.meta['greedy_tokens'] = [int(t) for t in greedy_tokens]
        self._zf.writestr('meta.yaml', yaml.safe_dump(self.meta, sort_keys=False, default_flow_style=None))
        self._zf.close()
        self._zf = None
        os.chmod(self._tmp, 0o666 & ~_umask())
        os.replace(self._tmp, self.path)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _open_zip(path):
    try:
        return zipfile.ZipFile(str(path), 'r')
    except (zipfile.BadZipFile, OSError) as e:
        raise TraceError('%s: not a readable zip/npz: %s' % (path, e))


def _read_meta(zf, path):
    try:
        meta = yaml.safe_load(zf.read('meta.yaml'))
    except KeyError:
        raise TraceError('%s: missing meta.yaml' % path)
    except yaml.YAMLError as e:
        raise TraceError('%s: meta.yaml: %s' % (path, e))
    if not isinstance(meta, dict):
        raise TraceError('%s: meta.yaml is not a mapping' % path)
    for key in ('trace', 'layout', 'evaluations'):
        if key not in meta:
            raise TraceError('%s: meta.yaml: missing key %r' % (path, key))
    if meta['trace'] != 'bitparity/v1':
        raise TraceError('%s: meta.yaml: trace %r is not bitparity/v1' % (path, meta['trace']))
    evs = meta['evaluations']
    if not isinstance(evs, list) or not evs:
        raise TraceError('%s: meta.yaml: evaluations must be a non-empty list' % path)
    for i, ev in enumerate(evs):
        if not isinstance(ev, dict) or not {'id', 'tokens', 'p0'} <= set(ev):
            raise TraceError('%s: meta.yaml: evaluations[%d] needs id, tokens, p0' % (path, i))
    return meta


class CanonicalTrace:
    """Reader of a canonical trace: ``meta``, ``evaluations`` (list of dicts), ``taps(eid)``,
    ``get(eid, tap)``."""

    def __init__(self, path):
        self.path = str(path)
        self._zf = _open_zip(path)
        self.meta = _read_meta(self._zf, self.path)
        if self.meta['layout'] != 'canonical':
            raise TraceError('%s: layout %r is not canonical' % (self.path, self.meta['layout']))
        self.evaluations = self.meta['evaluations']
        self._members = set(self._zf.namelist())

    def taps(self, eid):
        pre = eid + '/'
        order = {t: i for i, t in enumerate(self.meta.get('taps') or [])}
        names = [m[len(pre):-4] for m in self._zf.namelist() if m.startswith(pre) and m.endswith('.npy')]
        return sorted(names, key=lambda t: order.get(t, len(order)))

    def get(self, eid, tap):
        return _read_npy(self._zf, '%s/%s.npy' % (eid, tap), self.path)

    def has(self, eid, tap):
        return '%s/%s.npy' % (eid, tap) in self._members

    def close(self):
        self._zf.close()


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

