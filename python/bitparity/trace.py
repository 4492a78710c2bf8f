"""The bitparity trace container (docs/trace-format.md), numpy only.

- ``TraceWriter``: streams the canonical layout (``e{k}/{tap}.npy`` members, npy 1.0), meta.yaml
  written last; atomic (temporary file beside the path, renamed at close).
- ``CanonicalTrace``: reads a canonical trace, validating meta.yaml and every member it loads.

meta.yaml is written and read here without PyYAML: ``dump_meta`` emits block mappings with flow
lists, ``load_meta`` reads the YAML subset every bitparity writer emits (the engine's libyaml
emitter, PyYAML's ``safe_dump`` in the reference, ``dump_meta``). Both take a replacement
(``dump=``, ``load=``) for callers that need another codec.
"""

import io
import json
import os
import re
import tempfile
import zipfile

import numpy as np


class TraceError(ValueError):
    """A malformed trace or a misuse of the writer; the message names the file and member."""


# --- tap names (docs/taps.md) --------------------------------------------------------------------
BLOCK_TAPS = ('attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_q_rope', 'attn_k_rope', 'attn_scores',
              'attn_probs', 'attn_ctx', 'attn_sub_norm', 'attn_out', 'ffn_inp', 'ffn_norm', 'ffn_gate',
              'ffn_up', 'ffn_act', 'ffn_sub_norm', 'ffn_out', 'out')
PROJECTIONS = ('attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down')
GLOBAL_TAPS = ('token_embd', 'output_norm', 'logits')
_TAP_RE = re.compile(r'^(?:%s|blk\.(?:0|[1-9]\d{0,5})\.(?:%s|(?:%s)\.(?:in_q8|in_scale)))$'
                     % ('|'.join(GLOBAL_TAPS), '|'.join(BLOCK_TAPS), '|'.join(PROJECTIONS)))


def is_canonical_tap(name):
    """True when ``name`` is a tap of docs/taps.md ("blk.3.ffn_act", "logits")."""
    return bool(_TAP_RE.match(name))


# --- npy members ---------------------------------------------------------------------------------
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


# --- meta.yaml: emitter ----------------------------------------------------------------------------
def _scalar_text(v):
    if v is None:
        return 'null'
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return json.dumps(str(v))  # a JSON string is a YAML double-quoted scalar


def _flow_text(v):
    if isinstance(v, dict):
        return '{' + ', '.join('%s: %s' % (k, _flow_text(x)) for k, x in v.items()) + '}'
    if isinstance(v, (list, tuple)):
        return '[' + ', '.join(_flow_text(x) for x in v) + ']'
    return _scalar_text(v)


def dump_meta(meta):
    """meta.yaml text of ``meta``: nested mappings in block style, lists in flow style, a list of
    mappings (``evaluations``) as one flow mapping per line; keys must be plain words."""
    out = []

    def block(d, indent):
        for k, v in d.items():
            if not re.match(r'^[A-Za-z_][A-Za-z0-9_.]*$', str(k)):
                raise TraceError('meta.yaml: key %r is not a plain word' % (k,))
            if isinstance(v, dict):
                out.append('%s%s:' % (indent, k))
                block(v, indent + '  ')
            elif isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
                out.append('%s%s:' % (indent, k))
                out.extend('%s- %s' % (indent, _flow_text(x)) for x in v)
            else:
                out.append('%s%s: %s' % (indent, k, _flow_text(v)))
    block(meta, '')
    return '\n'.join(out) + '\n'


# --- meta.yaml: reader of the subset bitparity writers emit ---------------------------------------
class _Flow:
    """Recursive descent over one flow value ("[1, 2]", "{id: e0, tokens: [1], p0: 0}", a scalar)."""

    def __init__(self, text, where):
        self.s, self.i, self.where = text, 0, where

    def fail(self, what):
        raise TraceError('%s: %s at column %d' % (self.where, what, self.i + 1))

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in ' \t\n':
            self.i += 1

    def value(self, stops):
        self.ws()
        c = self.s[self.i:self.i + 1]
        if c == '[':
            self.i += 1
            items = []
            self.ws()
            if self.s[self.i:self.i + 1] == ']':
                self.i += 1
                return items
            while True:
                items.append(self.value(',]'))
                self.ws()
                c = self.s[self.i:self.i + 1]
                self.i += 1
                if c == ']':
                    return items
                if c != ',':
                    self.fail("expected ',' or ']'")
        if c == '{':
            self.i += 1
            d = {}
            self.ws()
            if self.s[self.i:self.i + 1] == '}':
                self.i += 1
                return d
            while True:
                key = self.value(':')
                self.ws()
                if self.s[self.i:self.i + 1] != ':':
                    self.fail("expected ':'")
                self.i += 1
                d[key] = self.value(',}')
                self.ws()
                c = self.s[self.i:self.i + 1]
                self.i += 1
                if c == '}':
                    return d
                if c != ',':
                    self.fail("expected ',' or '}'")
        if c == '"':
            j = self.i + 1
            while j < len(self.s) and self.s[j] != '"':
                j += 2 if self.s[j] == '\\' else 1
            if j >= len(self.s):
                self.fail('unterminated string')
            raw, self.i = self.s[self.i:j + 1], j + 1
            try:
                return json.loads(re.sub(r'\\x([0-9A-Fa-f]{2})', r'\\u00\1', raw.replace('\n', ' ')))
            except ValueError:
                self.fail('bad escape in string')
        if c == "'":
            j = self.i + 1
            while True:
                j = self.s.find("'", j)
                if j < 0:
                    self.fail('unterminated string')
                if self.s[j + 1:j + 2] == "'":
                    j += 2
                    continue
                break
            raw, self.i = self.s[self.i + 1:j], j + 1
            return raw.replace("''", "'")
        j = self.i
        while j < len(self.s) and self.s[j] not in stops and self.s[j] != '\n':
            if self.s[j] == ':' and ':' not in stops and self.s[j + 1:j + 2] in ('', ' '):
                break
            if self.s[j] == '#' and j > 0 and self.s[j - 1] in ' \t':  # a comment ends the scalar
                break
            j += 1
        text, self.i = self.s[self.i:j].strip(), j
        return _plain(text)


def _plain(text):
    if text in ('', '~', 'null', 'Null', 'NULL'):
        return None
    if text in ('true', 'True', 'TRUE'):
        return True
    if text in ('false', 'False', 'FALSE'):
        return False
    if re.match(r'^[-+]?(0|[1-9][0-9]*)$', text):
        return int(text)
    if re.match(r'^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$', text):
        return float(text)
    return text


def _flow_value(text, where):
    f = _Flow(text, where)
    v = f.value(',]}' if text.lstrip()[:1] in '[{' else '')
    f.ws()
    if f.i != len(f.s) and not f.s.startswith('#', f.i):
        f.fail('unexpected text after the value')
    return v


_KEY_LINE = re.compile(r'^([^\s:\[\]{}#,]+|"[^"]*"|\'[^\']*\'):(?: (.*))?$')


def load_meta(text, path='meta.yaml'):
    """The mapping in meta.yaml ``text`` (block mappings, ``- `` sequences of flow or plain items,
    flow lists that may wrap over lines, plain and quoted scalars). TraceError names the line."""
    lines = []  # (line number, indent, content) of meaningful lines
    for n, raw in enumerate(text.split('\n'), 1):
        body = raw.rstrip()
        if not body.strip() or body.lstrip().startswith('#') or body.strip() in ('---', '...'):
            continue
        if '\t' in raw[:len(raw) - len(raw.lstrip())]:
            raise TraceError('%s: line %d: tab in indentation' % (path, n))
        lines.append((n, len(body) - len(body.lstrip()), body.strip()))
    pos = [0]

    def gather(first, n, indent):
        """first plus the continuation lines of a flow value that wraps (deeper indent)."""
        parts = [first]
        while pos[0] < len(lines) and lines[pos[0]][1] > indent and first[:1] in '[{"\'':
            parts.append(lines[pos[0]][2])
            pos[0] += 1
        return _flow_value(' '.join(parts), '%s: line %d' % (path, n))

    def mapping(indent):
        d = {}
        while pos[0] < len(lines):
            n, ind, body = lines[pos[0]]
            if ind < indent:
                break
            if ind > indent:
                raise TraceError('%s: line %d: unexpected indentation' % (path, n))
            if body.startswith('- '):
                break
            m = _KEY_LINE.match(body)
            if not m:
                raise TraceError('%s: line %d: expected "key: value", got %r' % (path, n, body))
            key = _flow_value(m.group(1), '%s: line %d' % (path, n))
            if key in d:
                raise TraceError('%s: line %d: key %r repeated' % (path, n, key))
            pos[0] += 1
            rest = (m.group(2) or '').strip()
            if rest:
                d[key] = gather(rest, n, ind)
            elif pos[0] < len(lines) and lines[pos[0]][2].startswith('- ') and lines[pos[0]][1] >= ind:
                d[key] = sequence(lines[pos[0]][1])
            elif pos[0] < len(lines) and lines[pos[0]][1] > ind:
                d[key] = mapping(lines[pos[0]][1])
            else:
                d[key] = None
        return d

    def sequence(indent):
        items = []
        while pos[0] < len(lines):
            n, ind, body = lines[pos[0]]
            if ind != indent or not body.startswith('- '):
                break
            item = body[2:].strip()
            if item[:1] not in '[{"\'' and _KEY_LINE.match(item):
                # "- id: e0" opens a block mapping whose keys sit two columns in (PyYAML's style)
                lines[pos[0]] = (n, ind + 2, item)
                items.append(mapping(ind + 2))
                continue
            pos[0] += 1
            items.append(gather(item, n, ind))
        return items

    meta = mapping(0)
    if pos[0] < len(lines):
        n, _, body = lines[pos[0]]
        raise TraceError('%s: line %d: unexpected %r' % (path, n, body))
    return meta


# --- writer ----------------------------------------------------------------------------------------
def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class TraceWriter:
    """Streaming writer of the canonical layout.

    ``begin(tokens, p0)`` (or ``begin_evaluation``) opens evaluation e{k}; ``add(tap, array)`` (or
    ``write_tap``) appends one member: float arrays are stored float32, ``*.in_q8`` int8; the first
    dimension (the second for attn_scores / attn_probs) must be the evaluation's token count.
    ``close(greedy_tokens=None)`` writes meta.yaml and renames the temporary file onto ``path``;
    ``abort()`` removes it, so an older file at ``path`` is never half-replaced. As a context
    manager it closes on success (unless closed inside the block) and aborts on an exception.
    ``strict`` (default) refuses tap names that are not in docs/taps.md. ``producer`` needs a ``name``; the name ``bitparity`` is refused
    unless ``reserved_ok`` (it tells ``compare --replay`` that the trace came from bitparity's
    engine). ``dump`` replaces the meta.yaml emitter."""

    def __init__(self, path, producer, model=None, settings=None, *, strict=True, dump=dump_meta,
                 compression=zipfile.ZIP_DEFLATED, reserved_ok=False):
        producer = dict(producer)
        if not producer.get('name'):
            raise TraceError('%s: producer needs a name (your engine\'s)' % path)
        if producer['name'] == 'bitparity' and not reserved_ok:
            raise TraceError("%s: producer name 'bitparity' is reserved for bitparity's own engine" % path)
        self.path = str(path)
        self.meta = {'trace': 'bitparity/v1', 'layout': 'canonical', 'producer': producer,
                     'model': dict(model or {}), 'settings': dict(settings or {}), 'evaluations': [], 'taps': []}
        self._strict, self._dump = strict, dump
        folder, name = os.path.split(os.path.abspath(self.path))
        fd, self._tmp = tempfile.mkstemp(prefix='.%s.tmp.' % name, dir=folder)
        os.close(fd)
        self._zf = zipfile.ZipFile(self._tmp, 'w', compression=compression)
        self._k = -1
        self._seen = set()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is not None:
            self.abort()
        elif self._zf is not None:       # not closed inside the block (close(greedy_tokens=...))
            self.close()
        return False

    def abort(self):
        """Drops everything written; safe to call more than once."""
        if self._zf is not None:
            self._zf.close()
            self._zf = None
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def begin(self, tokens, p0):
        tokens = [int(t) for t in tokens]
        if not tokens or int(p0) < 0:
            raise TraceError('%s: e%d needs one or more tokens and p0 >= 0' % (self.path, self._k + 1))
        self._k += 1
        self.meta['evaluations'].append({'id': 'e%d' % self._k, 'tokens': tokens, 'p0': int(p0)})
        self._seen = set()

    begin_evaluation = begin

    def add(self, tap, arr):
        if self._zf is None:
            raise TraceError('%s: add() after close() or abort()' % self.path)
        if self._k < 0:
            raise TraceError('%s: add(%s) before begin()' % (self.path, tap))
        if tap in self._seen:
            raise TraceError('%s: tap %s written twice in e%d' % (self.path, tap, self._k))
        if self._strict and not is_canonical_tap(tap):
            raise TraceError('%s: e%d: %r is not a canonical tap name (docs/taps.md)' % (self.path, self._k, tap))
        arr = np.asarray(arr)
        if self._strict:
            axis = 1 if tap.endswith(('.attn_scores', '.attn_probs')) else 0
            n = len(self.meta['evaluations'][-1]['tokens'])
            if arr.ndim <= axis or arr.shape[axis] != n:
                raise TraceError('%s: e%d: tap %s has shape %s: dimension %d must be the evaluation\'s %d '
                                 'tokens (docs/taps.md)' % (self.path, self._k, tap, arr.shape, axis, n))
        self._seen.add(tap)
        arr = arr.astype(np.int8 if tap.endswith('.in_q8') else np.float32, copy=False)
        if self._k == 0:
            self.meta['taps'].append(tap)
        self._zf.writestr('e%d/%s.npy' % (self._k, tap), _npy_bytes(arr))

    write_tap = add

    def close(self, greedy_tokens=None):
        if self._zf is None:
            raise TraceError('%s: close() after close() or abort()' % self.path)
        if self._k < 0:
            self.abort()
            raise TraceError('%s: no evaluation was begun: nothing to publish' % self.path)
        if greedy_tokens is not None:
            self.meta['greedy_tokens'] = [int(t) for t in greedy_tokens]
        try:
            self._zf.writestr('meta.yaml', self._dump(self.meta))
            self._zf.close()
            self._zf = None
            os.chmod(self._tmp, 0o666 & ~_umask())
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise


# --- reader ----------------------------------------------------------------------------------------
def open_zip(path):
    try:
        return zipfile.ZipFile(str(path), 'r')
    except (zipfile.BadZipFile, OSError) as e:
        raise TraceError('%s: not a readable zip/npz: %s' % (path, e))


def read_meta(zf, path, load=load_meta):
    """meta.yaml of an open trace, checked for the keys every trace has."""
    try:
        text = zf.read('meta.yaml').decode('utf-8')
    except KeyError:
        raise TraceError('%s: missing meta.yaml' % path)
    except UnicodeDecodeError as e:
        raise TraceError('%s: meta.yaml is not UTF-8: %s' % (path, e))
    meta = load(text, '%s: meta.yaml' % path)
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
    ``get(eid, tap)``, ``has(eid, tap)``; a context manager. ``load`` replaces the meta.yaml
    reader."""

    def __init__(self, path, *, load=load_meta):
        self.path = str(path)
        self._zf = open_zip(path)
        try:
            self.meta = read_meta(self._zf, self.path, load)
            if self.meta['layout'] != 'canonical':
                raise TraceError('%s: layout %r is not canonical' % (self.path, self.meta['layout']))
        except BaseException:
            self._zf.close()
            raise
        self.evaluations = self.meta['evaluations']
        self._members = set(self._zf.namelist())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

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
