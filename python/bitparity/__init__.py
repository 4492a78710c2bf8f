"""bitparity: write and read BitNet parity traces (docs/trace-format.md) from Python, numpy only.

    import bitparity
    with bitparity.TraceWriter('mine.npz', producer={'name': 'my-engine'},
                               model={'path': 'model.gguf', 'sha256': bitparity.sha256_file('model.gguf'),
                                      'weight_type': 'i2_s'},
                               settings={'numerics': 'f32'}) as w:
        w.begin_evaluation(prompt_ids, p0=0)
        w.write_tap('blk.0.attn_norm', x)          # [T, H] float32, docs/taps.md
        ...
then ``bitparity compare mine.npz reference.npz``.
"""

import hashlib

from .trace import (BLOCK_TAPS, GLOBAL_TAPS, PROJECTIONS, CanonicalTrace, TraceError, TraceWriter, dump_meta,
                    is_canonical_tap, load_meta)

__version__ = '0.1.0'
__all__ = ['TraceWriter', 'CanonicalTrace', 'TraceError', 'dump_meta', 'load_meta', 'is_canonical_tap',
           'sha256_file', 'BLOCK_TAPS', 'GLOBAL_TAPS', 'PROJECTIONS']


def sha256_file(path):
    """Hex sha256 of a file (model.sha256: the comparer warns when two traces ran different files)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
