"""tests/lib.py: what the Python integration tests share (tests/lib.sh is its twin for
the shell ones): where the binaries are, TAP output and skips.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from lib import BUILD, LOOPSCOPE, LOOPDEMO, tap, done
"""
import os
import struct
import sys
import zlib

BUILD = os.environ.get("LS_BUILD") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build")
LOOPSCOPE = os.environ.get("LOOPSCOPE") or os.path.join(BUILD, "asan", "loopscope")  # the agent, under ASan+UBSan
LOOPDEMO = os.environ.get("LOOPDEMO") or os.path.join(BUILD, "loopdemo")

_n = 0
_failed = 0


def tap(ok, desc):
    """One TAP line for one check."""
    global _n, _failed
    _n += 1
    if not ok:
        _failed += 1
    print(("ok %d - %s" if ok else "not ok %d - %s") % (_n, desc), flush=True)


def check(desc, cond):
    tap(cond, desc)


def skip(reason):
    """The whole test cannot run here (a failure under CI=true, see tests/run.sh)."""
    print("SKIP " + reason)
    sys.exit(77)


def done():
    """Close the TAP plan; the exit status for sys.exit()."""
    print("1..%d" % _n)
    return 1 if _failed else 0


def png_pixels(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA PNG, with zlib alone."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    w, h, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and ctype in (2, 6) and not interlace, "unexpected PNG kind %r" % (hdr,)
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, rows, at = zlib.decompress(idat), w * bpp, bytearray(w * bpp), [], 0
    for _ in range(h):
        f, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return w, h, rows
