"""tests/lib.py: what the Python integration tests share (tests/lib.sh is its twin for
the shell ones): where the binaries are, TAP output and skips.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from lib import BUILD, LOOPSCOPE, LOOPDEMO, tap, done
"""
import os
import struct
import sys

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


# ---------------------------------------------------------------- USDT semaphores
# A tracer raises a probe's semaphore when it attaches: reading it tells a test (or
# tests/bench/bench.py) when the agent's probes went live.

def usdt_semaphores(path, provider="loopscope"):
    """{probe name: semaphore link-time address} from the ELF's .note.stapsdt (64-bit LE)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {}
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = []
    for i in range(shnum):
        name, typ, flags, addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        secs.append((name, addr, off, size))
    stroff = secs[shstrndx][2]

    def secname(n):
        return data[stroff + n:data.index(b"\0", stroff + n)].decode()

    base_addr = None
    notes = None
    for name, addr, off, size in secs:
        if secname(name) == ".stapsdt.base":
            base_addr = addr
        elif secname(name) == ".note.stapsdt":
            notes = (off, size)
    if not notes:
        return {}
    out = {}
    pos, end = notes[0], notes[0] + notes[1]
    while pos + 12 <= end:
        namesz, descsz, typ = struct.unpack_from("<III", data, pos)
        pos += 12
        owner = data[pos:pos + namesz].rstrip(b"\0")
        pos += (namesz + 3) & ~3
        desc = data[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        if owner != b"stapsdt" or typ != 3:
            continue
        pc, base, sem = struct.unpack_from("<QQQ", desc, 0)
        prov, name = desc[24:].split(b"\0")[:2]
        if prov.decode() != provider or not sem:
            continue
        if base_addr is not None:       # prelink adjustment, as in <sys/sdt.h>
            sem += base_addr - base
        out[name.decode()] = sem
    return out


def load_bias(pid, exe):
    """Runtime minus link-time address of exe's mappings in pid (0 for non-PIE)."""
    with open(exe, "rb") as f:
        hdr = f.read(64)
    etype, = struct.unpack_from("<H", hdr, 16)
    if etype != 3:      # ET_EXEC
        return 0
    real = os.path.realpath(exe)
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == real and int(parts[2], 16) == 0:
                return int(parts[0].split("-")[0], 16)
    raise OSError(f"{exe} not mapped in {pid}")


class Semaphore:
    """Reads one USDT semaphore (u16) of a live process through /proc/PID/mem."""

    def __init__(self, pid, exe, probe):
        sems = usdt_semaphores(exe)
        if probe not in sems:
            raise KeyError(f"no semaphore for probe {probe} in {exe}")
        self.addr = load_bias(pid, exe) + sems[probe]
        self.f = open(f"/proc/{pid}/mem", "rb", buffering=0)

    def value(self):
        self.f.seek(self.addr)
        return struct.unpack("<H", self.f.read(2))[0]

    def close(self):
        self.f.close()
