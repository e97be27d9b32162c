#!/usr/bin/env python3
# timeout: 400
"""66-profile-node: `loopscope profile` on a real Node process, each file opened by its
real reader.

A server-like script (tests/node/profile.js) runs a timer every 20 ms that calls
handle(), which alternates between settle() (crypto.pbkdf2Sync) and Report#build()
(a large JSON.stringify). Three `loopscope profile` at once record it for 3 s, one
into each format (nothing here is timed: the three attaches overlap, and so do the
readers below, each with its own HOME):
  - .folded: lines as flamegraph.pl splits them, root first: tick before handle
    before settle before pbkdf2Sync on one line, with the script's file and lines;
  - .pb.gz: go tool pprof -top names settle, build and handle, with handle's
    cumulative samples at least settle's and build's together;
  - .svg: Chromium loads it with no XML error and no console message, draws JS and
    native frames, and a search for settle covers a real share of the graph.
Bad output names fail before attaching and leave the target running.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, check, done, skip  # noqa: E402
from profile_check import Readers, frame_kinds  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node", "profile.js")
if os.geteuid() != 0:
    skip("needs root (CAP_BPF, CAP_PERFMON)")
for tool in ("node", "chromium", "go"):
    if not shutil.which(tool):
        skip("needs %s (make test installs it: DEB_TEST)" % tool)

tmp = tempfile.mkdtemp(prefix="loopscope-profile-node.")
rd = Readers(tmp)
node = subprocess.Popen(["node", SCRIPT], stdout=subprocess.PIPE, text=True)
try:
    check("profile.js started", node.stdout.readline().strip() == "ready")

    def profile(out, *extra):
        r = subprocess.run([LOOPSCOPE, "profile", "-p", str(node.pid), "-d", "3", "-o", out] + list(extra),
                           capture_output=True, text=True, timeout=120)
        print("".join("# " + ln + "\n" for ln in r.stderr.splitlines()[-4:]))
        return r

    # Bad names: refused before attaching, the target untouched.
    r = profile(os.path.join(tmp, "out.txt"))
    check("-o out.txt: exit 2, one line naming the extensions",
          r.returncode == 2 and len(r.stderr.splitlines()) == 1 and ".pb.gz" in r.stderr)
    r = profile(os.path.join(tmp, "no-such-dir", "flame.svg"))
    check("-o in a missing folder: exit 1 before recording (no progress line), saying it cannot write",
          r.returncode == 1 and "cannot write" in r.stderr and "samples" not in r.stderr)
    check("the target still runs", node.poll() is None)

    files = {ext: os.path.join(tmp, "node." + ext) for ext in ("folded", "pb.gz", "svg")}
    with ThreadPoolExecutor(3) as pool:
        runs = dict(zip(files, pool.map(profile, files.values())))
    for ext, out in files.items():
        check("loopscope profile -o node.%s (exit %d)" % (ext, runs[ext].returncode),
              runs[ext].returncode == 0 and os.path.exists(out))
    check("the target still runs after three profiles", node.poll() is None)
finally:
    node.kill()
    node.wait()

# The readers at once: pprof, and two Chromiums, each with a user-data-dir of its own.
os.makedirs(os.path.join(tmp, "r2"))
rd2 = Readers(os.path.join(tmp, "r2"))
with ThreadPoolExecutor(3) as pool:
    f_pprof = pool.submit(rd.pprof_top, files["pb.gz"], "-sample_index=samples")
    f_load = pool.submit(rd.load_svg, files["svg"], "?s=%5Esettle%20")
    f_shot = pool.submit(rd2.screenshot, files["svg"])

# ---------------------------------------------------------------- folded
lines = open(files["folded"], encoding="utf-8").read().splitlines()
parsed = [re.match(r"^(.+) (\d+)$", ln) for ln in lines]
total = sum(int(m.group(2)) for m in parsed if m)
check("node.folded: %d lines of 'frames count', %d samples" % (len(lines), total), lines and all(parsed) and total > 0)
chain = re.compile(r"tick \S*profile\.js:\d+;handle \S*profile\.js:\d+;settle \S*profile\.js:\d+;"
                   r"pbkdf2Sync node:internal/crypto/pbkdf2:\d+")
settle_lines = [m for m in parsed if m and chain.search(m.group(1))]
print("# %d of %d samples under tick;handle;settle;pbkdf2Sync" % (sum(int(m.group(2)) for m in settle_lines), total))
check("node.folded: root first, tick;handle;settle;pbkdf2Sync with file:line", settle_lines)

# ---------------------------------------------------------------- pprof
rc, out, rows = f_pprof.result()
check("go tool pprof reads node.pb.gz (exit %d)" % rc, rc == 0 and "loopscope profile of PID" in out)
cum = dict((k, v[1]) for k, v in rows.items())
check("pprof: settle, build, handle and pbkdf2Sync named (%s)" % {k: cum.get(k) for k in
                                                                ("settle", "build", "handle", "pbkdf2Sync")},
      all(cum.get(k, 0) > 0 for k in ("settle", "build", "handle", "pbkdf2Sync")))
check("pprof: handle's samples hold settle's and build's",
      cum.get("handle", 0) >= cum.get("settle", 0) + cum.get("build", 0) > 0)

# ---------------------------------------------------------------- svg
xml_ok, quiet, dom = f_load.result()
check("node.svg: Chromium reports no XML error", xml_ok)
check("node.svg: no console message", quiet)
m = re.search(r"Matched: ([\d.]+)%", dom)
check("node.svg?s=^settle: settle covers part of the graph (%s%%)" % (m and m.group(1)),
      m is not None and 0 < float(m.group(1)) < 100)
w, h, rows = f_shot.result()
green, red, _ = frame_kinds(rows, files["svg"])
colours = set(p for row in rows for p in row)
check("node.svg: a %dx%d screenshot with JS and native frames, %d colours" % (w, h, len(colours)),
      w == 1200 and green and red and len(colours) >= 20)

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(done())
