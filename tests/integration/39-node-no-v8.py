#!/usr/bin/env python3
# timeout: 180
"""39-node-no-v8: a Node.js binary without V8's post-mortem metadata.

The newest official build, copied with every v8dbg_* symbol name made unreadable
(renamed in place in its string tables: what a build without the metadata, or a
stripped one, looks like to the agent; the process runs as before). stat attaches,
says once on stderr that JS frames are unavailable and why, measures the loop as
usual and gives each stall its native stacks (no JS frame, no wrong name). The
unmodified binary, side by side: no such line, and its stalls name the JS function.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, check, skip, done, node_matrix, node_usable  # noqa: E402

WORKLOAD = r"""
function spinTheLoop(ms) { const t = Date.now(); while (Date.now() - t < ms); }
setInterval(() => spinTheLoop(180), 450);
setTimeout(() => process.exit(0), 30000);
console.log('ready');
"""


def hide_v8_metadata(src, dst):
    """Copy src to dst with 'v8dbg_' renamed 'v8dbX_' in every string table. Returns
    how many names changed."""
    data = bytearray(open(src, "rb").read())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3a)
    n = 0
    for i in range(shnum):
        _, typ, _, _, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        if typ != 3:  # SHT_STRTAB
            continue
        seg = bytes(data[off:off + size])
        n += seg.count(b"v8dbg_")
        data[off:off + size] = seg.replace(b"v8dbg_", b"v8dbX_")
    with open(dst, "wb") as f:
        f.write(data)
    os.chmod(dst, 0o755)
    return n


def run(node, script, label):
    """stat --json on node running script for 2.5 s: (rc, stderr, episodes)."""
    proc = subprocess.Popen([node, script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        proc.stdout.readline()  # ready
        out = subprocess.run([LOOPSCOPE, "stat", "-p", str(proc.pid), "-d", "2.5", "-i", "2.5", "--json"],
                             capture_output=True, text=True, timeout=90)
    finally:
        proc.kill()
        proc.wait()
    eps = []
    for line in out.stdout.splitlines():
        o = json.loads(line)
        if o["tid"] == o["pid"]:
            eps += [e for e in o.get("episodes", []) if e["kind"] == "stall"]
    for e in eps:
        st = e.get("stacks") or []
        print("# %s: stall %.0f ms, %s samples, top %s" % (
            label, 1000 * e["duration_s"], e.get("samples"),
            [f["function"] for f in st[0]["frames"][:4]] if st else None))
    return out.returncode, out.stderr, eps


def main():
    if os.geteuid() != 0:
        skip("needs root (CAP_BPF, CAP_PERFMON)")
    label, node = node_matrix(full=True)[0]
    if not node_usable(label, node):
        return done()
    tmp = tempfile.mkdtemp(prefix="loopscope-39-")
    try:
        script = os.path.join(tmp, "spin.js")
        with open(script, "w") as f:
            f.write(WORKLOAD)
        hidden = os.path.join(tmp, "node")
        n = hide_v8_metadata(node, hidden)
        check("%s: the copy's v8dbg_* names are gone (%d renamed)" % (label, n), n > 100)

        rc, err, eps = run(hidden, script, "no metadata")
        lines = [l for l in err.splitlines() if "JS frames unavailable" in l]
        check("no metadata: stat exits 0 (rc %d: %s)" % (rc, err.strip()[-200:]), rc == 0)
        check("no metadata: one line says JS frames are unavailable and why (%r)" % lines,
              len(lines) == 1 and "no V8 post-mortem metadata" in lines[0])
        check("no metadata: stalls are reported (%d)" % len(eps), len(eps) >= 2)
        with_stacks = [e for e in eps if e.get("stacks")]
        check("no metadata: stalls carry native stacks (%d of %d)" % (len(with_stacks), len(eps)),
              len(with_stacks) >= 1)
        js = [f["function"] for e in eps for s in e.get("stacks") or [] for f in s["frames"] if f["kind"] == "js"]
        check("no metadata: no JS frame is named (%r)" % js[:3], not js)
        natives = [f["function"] for e in with_stacks for f in e["stacks"][0]["frames"] if f["kind"] == "native"]
        check("no metadata: native frames are named (%r)" % natives[:4],
              any(not x.startswith("0x") and not x.startswith("[") for x in natives))

        rc, err, eps = run(node, script, "control")
        check("control: stat exits 0 (rc %d)" % rc, rc == 0)
        check("control: no 'JS frames unavailable' line", "JS frames unavailable" not in err)
        tops = [next((f["function"] for f in e["stacks"][0]["frames"] if f["kind"] == "js"), None)
                for e in eps if e.get("stacks")]
        check("control: stalls name the JS function (%r)" % tops, tops and "spinTheLoop" in tops)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done()


main()
