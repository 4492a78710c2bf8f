"""png_stats.py PNG... | png_stats.py --crop X0 Y0 X1 Y1 OUT.png PNG — what a screenshot shows.

Decodes 8-bit RGB/RGBA, non-interlaced PNGs (what Chromium writes) with zlib and numpy only and
prints a line per file: `PATH width height distinct_colours ink_fraction`, ink being the pixels
with a channel below 160 (text, bars, lines; not the page's light backgrounds). With --crop, writes
that box of the image (RGB) to OUT.png for a person to look at.
"""
import struct
import sys
import zlib

import numpy as np


def paeth(a, b, c):
    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def left_dependent(f, line, prev, bpp):
    """Reverses the Average (3) or Paeth (4) filter of one row, channel by channel. A Paeth byte
    whose upper and upper-left neighbours are equal predicts its left neighbour, so runs of them
    are a running sum (numpy); only the other bytes (edges in the row above) are done one by one.
    A byte-by-byte loop over a whole screenshot takes seconds in Python."""
    out = np.empty_like(line)
    for ch in range(bpp):
        L, B = line[ch::bpp].astype(np.int64), prev[ch::bpp].astype(np.int64)
        C = np.concatenate([[0], B[:-1]])
        n, cur, left, pos = len(L), np.empty(len(L), np.int64), 0, 0
        hard = range(n) if f == 3 else np.flatnonzero(B != C).tolist()
        for h in list(hard) + [n]:
            if h > pos:
                run = (left + np.cumsum(L[pos:h])) & 255
                cur[pos:h], left = run, int(run[-1])
            if h == n:
                break
            pred = (left + int(B[h])) >> 1 if f == 3 else paeth(left, int(B[h]), int(C[h]))
            left = cur[h] = (int(L[h]) + pred) & 255
            pos = h + 1
        out[ch::bpp] = cur
    return out


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
        else:  # Average / Paeth: each byte needs its reconstructed left neighbour
            cur = left_dependent(f, line, prev, bpp)
        out[y] = cur
        prev = out[y]
    return out.reshape(h, w, bpp)[:, :, :3]


def write_png(path, rgb):
    h, w, _ = rgb.shape
    rows = b''.join(b'\0' + rgb[y].tobytes() for y in range(h))
    chunk = lambda k, b: struct.pack('>I', len(b)) + k + b + struct.pack('>I', zlib.crc32(k + b) & 0xffffffff)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) +
                           chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def main(args):
    if args[:1] == ['--crop']:
        x0, y0, x1, y1 = map(int, args[1:5])
        write_png(args[5], np.ascontiguousarray(decode(args[6])[y0:y1, x0:x1]))
        return
    for path in args:
        img = decode(path)
        flat = img.reshape(-1, 3).astype(np.uint32)
        colours = len(np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]))
        ink = float(np.mean(np.any(img < 160, axis=2)))
        print(path, img.shape[1], img.shape[0], colours, '%.4f' % ink)


main(sys.argv[1:])
