"""png_stats.py PNG [X0 Y0 X1 Y1 OUT.png] — what a screenshot shows, for the report screenshot test.

Decodes an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) with zlib and numpy only and
prints `width height distinct_colours nonwhite_fraction`. With a box and OUT.png, also writes that
crop (RGB, unfiltered) for a person to look at.
"""
import struct
import sys
import zlib

import numpy as np


def decode(path):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, w = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
            assert depth == 8 and ctype in (2, 6) and not interlace, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat.append(body)
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(b''.join(idat)), np.uint8).reshape(h, 1 + w * bpp)
    out = np.zeros((h, w * bpp), np.uint8)
    prev = np.zeros(w * bpp, np.uint8)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:]
        if f == 0:
            cur = line.copy()
        elif f == 2:
            cur = line + prev
        elif f == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(w, bpp), axis=0, dtype=np.uint64).astype(np.uint8).reshape(-1)
        else:  # Average / Paeth: sequential along the row
            cur, p, ln = bytearray(line.tobytes()), prev.tobytes(), len(line)
            for i in range(ln):
                a = cur[i - bpp] if i >= bpp else 0
                b = p[i]
                if f == 3:
                    cur[i] = (cur[i] + ((a + b) >> 1)) & 255
                else:
                    c = p[i - bpp] if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.frombuffer(bytes(cur), np.uint8)
        out[y] = cur
        prev = out[y]
    return out.reshape(h, w, bpp)[:, :, :3]


def write_png(path, rgb):
    h, w, _ = rgb.shape
    rows = b''.join(b'\0' + rgb[y].tobytes() for y in range(h))
    chunk = lambda k, b: struct.pack('>I', len(b)) + k + b + struct.pack('>I', zlib.crc32(k + b) & 0xffffffff)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) +
                           chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


img = decode(sys.argv[1])
flat = img.reshape(-1, 3).astype(np.uint32)
colours = len(np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]))
nonwhite = float(np.mean(np.any(img < 245, axis=2)))
print(img.shape[1], img.shape[0], colours, '%.4f' % nonwhite)
if len(sys.argv) == 7:
    x0, y0, x1, y1 = map(int, sys.argv[2:6])
    write_png(sys.argv[6], np.ascontiguousarray(img[y0:y1, x0:x1]))
