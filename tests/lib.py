"""tests/lib.py: what the Python integration tests share (tests/lib.sh is its twin for
the shell ones): where the binaries are, TAP output and skips.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from lib import BUILD, LOOPSCOPE, LOOPDEMO, tap, done
"""
import json
import os
import struct
from itertools import accumulate
from operator import add
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


def node_matrix(full=False):
    """The Node.js builds the Node tests run on, as (label, path): the official builds
    of tests/node/versions in $LS_NODE_CACHE (make test installs them) and the system's
    node as "system". full: only the newest official build and the system's node.
    LS_NODE_ONLY="18.20.8 system" keeps only those labels (a quicker run by hand)."""
    cache = os.environ.get("LS_NODE_CACHE") or "/var/cache/loopscope/node"
    here = os.path.dirname(os.path.abspath(__file__))
    vs = [l.strip() for l in open(os.path.join(here, "node", "versions"))
          if l.strip() and l.strip()[0].isdigit()]
    if full:
        vs = vs[-1:]
    out = [(v, os.path.join(cache, v, "bin", "node")) for v in vs]
    for d in os.environ.get("PATH", "").split(":"):
        p = os.path.join(d or ".", "node")
        if os.access(p, os.X_OK):
            out.append(("system", p))
            break
    only = os.environ.get("LS_NODE_ONLY", "").split()
    return [x for x in out if not only or x[0] in only]


def node_usable(label, path):
    """True if path runs; else one line saying so, and under CI=true a failed check."""
    import subprocess
    try:
        if subprocess.run([path, "--version"], capture_output=True).returncode == 0:
            return True
    except OSError:
        pass
    msg = "node %s: %s does not run (make test installs it from the npm registry)" % (label, path)
    if os.environ.get("CI") == "true":
        check(msg, False)
    else:
        print("# SKIP " + msg)
    return False


def wait_for(secs, cond, every=0.05):
    """Poll cond() every `every` seconds until it is true (True) or secs passed (False)."""
    import time
    end = time.monotonic() + secs
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(every)
    return True


def run_delay_ns(pid, tid=None):
    """ns the thread (default: the process's main thread) has waited on a run queue so
    far (/proc/PID/task/TID/schedstat); None once it is gone."""
    try:
        return int(open("/proc/%d/task/%d/schedstat" % (pid, tid or pid)).read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def stat_window(pid, secs, args=(), env=None):
    """One `loopscope stat -p PID -i SECS -d SECS ARGS` interval whose end this test
    reads from the clock: stat and the reading thread run at nice -20 meanwhile, so that
    a neighbour rarely delays the line. Returns (lines, stderr, rc, mono ns when the
    last line was read (the interval's end), ns stat's main thread and the reading
    thread waited for a CPU until then: what the edge may be late by)."""
    import subprocess
    import threading
    import time
    me = threading.get_native_id()
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, -20)     # this thread, and stat (inherited)
    try:
        mine0 = run_delay_ns(os.getpid(), me) or 0
        p = subprocess.Popen([LOOPSCOPE, "stat", "-p", str(pid), "-i", str(secs), "-d", str(secs)] + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, **(env or {})))
        stat0 = run_delay_ns(p.pid) or 0
        lines, t_end, waited = [], None, 0
        for line in p.stdout:
            t_end = time.monotonic_ns()
            # (stat is still there: it detaches after its last line)
            waited = ((run_delay_ns(p.pid) or stat0) - stat0) + ((run_delay_ns(os.getpid(), me) or mine0) - mine0)
            lines.append(line)
        err = p.stderr.read()
        rc = p.wait(timeout=60)
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return lines, err, rc, t_end, waited


def node_records(f):
    """The records tests/node/accuracy.js wrote to the open file f (those with "t",
    as int ns), in order; a last line node is still writing is left out."""
    f.seek(0)
    recs = []
    for line in f:
        if not line.endswith("\n"):
            break
        o = json.loads(line)
        if "t" in o:
            o["t"] = int(o["t"])
            recs.append(o)
    return recs


def node_elu(recs, t0, t1):
    """Node's own eventLoopUtilization() over [t0, t1] (mono ns) from its cumulative
    records, interpolated to the edges; None when the records do not cover it."""
    idle = [interp(recs, t, "idle") for t in (t0, t1)]
    active = [interp(recs, t, "active") for t in (t0, t1)]
    if None in idle or None in active:
        return None
    di, da = idle[1] - idle[0], active[1] - active[0]
    return da / (da + di)


def interp(recs, t, key):
    """Linear interpolation of a cumulative record field at monotonic time t (ns)."""
    for a, b in zip(recs, recs[1:]):
        if a["t"] <= t <= b["t"]:
            f = (t - a["t"]) / (b["t"] - a["t"]) if b["t"] > a["t"] else 0.0
            return a[key] + f * (b[key] - a[key])
    return None


def png_pixels(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA PNG, with zlib alone.
    None/Sub/Up rows are unfiltered by C-level iteration (map/accumulate); only
    Average and Paeth rows take a Python loop."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    w, h, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and ctype in (2, 6) and not interlace, "unexpected PNG kind %r" % (hdr,)
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, rows, at = zlib.decompress(b"".join(idat)), w * bpp, bytes(w * bpp), [], 0
    low = (255).__and__
    for _ in range(h):
        f, line = raw[at], raw[at + 1:at + 1 + stride]
        at += 1 + stride
        if f == 1:
            out = bytearray(stride)
            for c in range(bpp):
                out[c::bpp] = bytes(map(low, accumulate(line[c::bpp])))
            line = bytes(out)
        elif f == 2:
            line = bytes(map(low, map(add, line, prev)))
        elif f in (3, 4):
            line = bytearray(line)
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                if f == 3:
                    line[i] = (line[i] + (a + b) // 2) & 255
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            line = bytes(line)
        rows.append(list(zip(line[0::bpp], line[1::bpp], line[2::bpp])))
        prev = line
    return w, h, rows


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


class Serve:
    """`loopscope serve ARGS` with its stderr collected in .lines and the port it
    listens on in .port (None until the "listening on" line). wait=False returns at
    once (.ready is set once it listens or exits)."""

    def __init__(self, args, binary=None, wait=True, listen="127.0.0.1:0"):
        import re
        import subprocess
        import threading
        extra = ["--listen", listen] if listen and "--listen" not in args else []
        self.p = subprocess.Popen([binary or LOOPSCOPE, "serve"] + extra + list(args),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.pid = self.p.pid
        self.lines = []
        self.port = None
        self.ready = threading.Event()

        def pump():
            for line in self.p.stderr:
                self.lines.append(line.rstrip("\n"))
                m = re.search(r"listening on https?://[0-9.]+:(\d+)/", line)
                if m:
                    self.port = int(m.group(1))
                    self.ready.set()
            self.ready.set()
        threading.Thread(target=pump, daemon=True).start()
        if wait:
            self.ready.wait(30)

    def stop(self):
        """SIGTERM, then the exit status (SIGKILL after 20 s)."""
        import signal
        import subprocess
        if self.p.poll() is not None:
            return self.p.returncode
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()
