#!/usr/bin/env python3
# timeout: 400
"""65-profile-readers: the files `loopscope profile` writes, opened by real readers.

The unit test profile_out_test writes its synthetic profiles (a server blocking three
ways; names with quotes, markup, controls and invalid UTF-8; an empty profile) into a
temporary folder. Then:
  - the SVGs are well-formed XML (Python's parser) and headless Chromium loads each with
    no XML error and no console message, and its screenshot is not blank: many colours,
    JS green, native red/orange and kernel blue frames, and with "?s=pbkdf2" the magenta
    of the search, which only the inline script paints;
  - two deliberately broken copies (a script error, an unescaped '&') are caught by the
    same checks, so the checks can fail;
  - `go tool pprof -top` reads the .pb.gz files and prints the function names and counts;
  - every .folded line is "frames count" as flamegraph.pl and speedscope split it;
  - a real Node process: `node --cpu-prof` records a script that blocks in
    crypto.pbkdf2Sync and JSON.stringify under named functions; its stacks go through
    the same writers, and pprof's counts per function and the flame graph's search
    share match what this test counts in the .cpuprofile itself.
"""
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.dom.minidom

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import BUILD, check, done, skip  # noqa: E402
from profile_check import Readers, frame_kinds  # noqa: E402

GEN = os.path.join(BUILD, "asan", "tests", "profile_out_test")
for tool in ("chromium", "go", "node"):
    if not shutil.which(tool):
        skip("needs %s (make test installs it: DEB_TEST)" % tool)
if not os.access(GEN, os.X_OK):
    skip("needs %s (make test builds it)" % GEN)

tmp = tempfile.mkdtemp(prefix="loopscope-profile.")
rd = Readers(tmp)
env = rd.env

# A real Node process, sampled by V8 every 1 ms for about 2 s.
BLOCK_JS = r"""
const crypto = require('crypto');
function settle(i) { return crypto.pbkdf2Sync('pw' + i, 'salt', 20000, 32, 'sha256'); }
class Report { build(n) { return JSON.stringify(Array.from({ length: n }, (_, i) => ({ i, s: 'x'.repeat(20) }))); } }
function handle(i) { return i % 2 ? settle(i) : new Report().build(20000).length; }
const end = Date.now() + 2000;
for (let i = 0; Date.now() < end; i++) handle(i);
"""
open(os.path.join(tmp, "block.js"), "w").write(BLOCK_JS)
r = subprocess.run(["node", "--cpu-prof", "--cpu-prof-dir=" + tmp, "--cpu-prof-name=block.cpuprofile",
                    "--cpu-prof-interval", "1000", os.path.join(tmp, "block.js")], env=env, timeout=60)
check("node --cpu-prof recorded block.js (exit %d)" % r.returncode, r.returncode == 0)
cpuprofile = os.path.join(tmp, "block.cpuprofile")

r = subprocess.run([GEN], env=dict(env, LS_PROFILE_FIXTURES=tmp, LS_PROFILE_CPUPROFILE=cpuprofile),
                   capture_output=True, text=True, timeout=120)
check("profile_out_test wrote the fixtures (exit %d)" % r.returncode, r.returncode == 0)
if r.returncode:
    print(r.stdout[-2000:], r.stderr[-2000:])
    sys.exit(done())


# The cpuprofile counted here, independently: per function, the samples with it on
# the stack (pprof's cum) and with it at the leaf (flat).
prof = json.load(open(cpuprofile))
nodes = {n["id"]: n for n in prof["nodes"]}
parent = {c: n["id"] for n in prof["nodes"] for c in n.get("children", [])}
node_cum, node_flat = collections.Counter(), collections.Counter()
for sid in prof["samples"]:
    names, n = set(), sid
    while n in nodes and nodes[n]["callFrame"]["functionName"] != "(root)":
        names.add(nodes[n]["callFrame"]["functionName"] or "(anonymous)")
        n = parent.get(n)
    node_cum.update(names)
    leaf = nodes[sid]["callFrame"]["functionName"]
    if leaf != "(root)":
        node_flat[leaf or "(anonymous)"] += 1
node_total = len(prof["samples"])
print("# block.cpuprofile: %d samples; settle %d, build %d, pbkdf2Sync %d" % (
    node_total, node_cum["settle"], node_cum["build"], node_cum["pbkdf2Sync"]))
check("the Node profile has samples in settle and build (>= 5% each)",
      min(node_cum["settle"], node_cum["build"]) >= 0.05 * node_total > 0)

# ---------------------------------------------------------------- SVG
for name in ("demo", "odd", "empty", "node"):
    path = os.path.join(tmp, name + ".svg")
    try:
        xml.dom.minidom.parse(path)
        wellformed = True
    except Exception as e:  # noqa: BLE001 - any parser error is the failure
        print("# %s: %s" % (path, e))
        wellformed = False
    check("%s.svg is well-formed XML" % name, wellformed)
    q = {"demo": "?s=pbkdf2", "node": "?s=%5Esettle%20"}.get(name, "")
    xml_ok, quiet, dom = rd.load_svg(path, q)
    check("%s.svg: Chromium reports no XML error" % name, xml_ok)
    check("%s.svg: no console message (the script ran clean)" % name, quiet)
    w, h, rows = rd.screenshot(path, q)
    bg = (248, 248, 244)
    px = [p for row in rows for p in row]
    ink = sum(1 for p in px if p != bg and p != (255, 255, 255))
    colours = set(px)
    print("# %s.svg screenshot %dx%d: %d distinct colours, %.1f%% ink" % (name, w, h, len(colours),
                                                                        100.0 * ink / max(len(px), 1)))
    check("%s.svg: Chromium drew a %dx%d screenshot" % (name, w, h), w == 1200 and h > 0)
    if name == "empty":
        check("empty.svg: the title and 'No samples' are drawn", ink > 200)
        continue
    check("%s.svg: not blank (%d colours, %d ink pixels)" % (name, len(colours), ink),
          len(colours) >= 20 and ink > 0.1 * len(px))
    green, red, blue = frame_kinds(rows, path)
    if name == "node":  # V8's profiler sees no kernel frames
        check("node.svg: JS (green) and native (red/orange) frames drawn", green and red)
    else:
        check("%s.svg: JS (green), native (red/orange) and kernel (blue) frames drawn" % name, green and red and blue)
    if name == "demo":
        check("demo.svg?s=pbkdf2: the search ran (one frame marked in the DOM)", dom.count('data-f="') == 1)
        check("demo.svg?s=pbkdf2: the match is painted magenta", (230, 0, 230) in colours)
        check("demo.svg?s=pbkdf2: 'Matched: 72.0%' shown", "Matched: 72.0%" in dom)
    if name == "node":
        m = re.search(r"Matched: ([\d.]+)%", dom)
        want_share = 100.0 * node_cum["settle"] / node_total
        check("node.svg?s=^settle: the flame graph's share of settle (%s%%) is the cpuprofile's (%.1f%%)" % (
            m and m.group(1), want_share), m is not None and abs(float(m.group(1)) - want_share) <= 0.15)
    if name == "odd":
        check("odd.svg: the names' markup stayed text", "alert(" in dom and "<x>" not in dom.split("<script")[0])

# Click-to-zoom, driven by the script's own zoom() on load: settle fills the width,
# its ancestors too (faded), everything beside it is hidden.
zoomed = os.path.join(tmp, "zoom.svg")
open(zoomed, "w", encoding="utf-8").write(open(os.path.join(tmp, "demo.svg"), encoding="utf-8").read().replace(
    "if(q)search(q);", "if(q)search(q);zoom(fr.filter(function(g){return name(g).indexOf('settle')===0;})[0]);"))
xml_ok, quiet, dom = rd.load_svg(zoomed)
frames = dict((m.group(2).split("\n")[0], m.group(0)) for m in
              re.finditer(r'<g class="f"[^>]*?( style="[^"]*")?><title>([^<]*)</title><rect [^>]*>', dom))
settle = frames.get("settle /srv/app/billing.js:31", "")
check("zoom: settle and its leaf span the graph", 'width="1180.00"' in settle and
      'width="1180.00"' in frames.get("node::crypto::PBKDF2Traits::DeriveBits", ""))
check("zoom: frames beside settle are hidden", "display: none" in frames.get("loadConfig /srv/app/config.js:9", "")
      and "display: none" in frames.get("stringify", ""))
check("zoom: no console message", quiet and xml_ok)

# The checks above can fail: a script error and an unescaped '&' are both caught.
demo = open(os.path.join(tmp, "demo.svg"), encoding="utf-8").read()
bad_js = os.path.join(tmp, "bad-js.svg")
open(bad_js, "w", encoding="utf-8").write(demo.replace("if(q)search(q);", "if(q)search(q);noSuchFunction();"))
bad_xml = os.path.join(tmp, "bad-xml.svg")
open(bad_xml, "w", encoding="utf-8").write(demo.replace("</title>", "&</title>", 1))
xml_ok, quiet, _ = rd.load_svg(bad_js)
check("control: a script error shows up as a console message", xml_ok and not quiet)
xml_ok, quiet, _ = rd.load_svg(bad_xml)
check("control: a bare '&' shows up as an XML error", not xml_ok)

# ---------------------------------------------------------------- pprof


def pprof_top(name, *args):
    return rd.pprof_top(os.path.join(tmp, name + ".pb.gz"), *args)


rc, out, rows = pprof_top("demo", "-sample_index=samples")
check("go tool pprof -top reads demo.pb.gz (exit %d)" % rc, rc == 0)
check("pprof: 500 samples in all", "Total samples = 500" in out)
want = {"node::crypto::PBKDF2Traits::DeriveBits": (360, 360), "copy_user_enhanced_fast_string": (90, 90),
        "v8::internal::JsonStringifier::Serialize_": (50, 50), "pbkdf2Sync": (0, 360), "handle": (0, 450),
        "readFileSync": (0, 90), "main": (0, 500), "stringify": (0, 50)}
for fn, (flat, cum) in want.items():
    check("pprof: %s flat %d cum %d (got %s)" % (fn, flat, cum, rows.get(fn)), rows.get(fn) == (flat, cum))
check("pprof: the profile's comment names the PID", "loopscope profile of PID 4093 (node)" in out)
rc, out, _ = pprof_top("demo")
check("pprof: cpu time is samples x period (DeriveBits 360ms)",
      rc == 0 and re.search(r"^\s*360ms\s+72\.00%.*DeriveBits$", out, re.M) is not None)
rc, out, _ = pprof_top("odd", "-sample_index=samples")
check("pprof reads odd.pb.gz: 12 samples, [no frames] 2", rc == 0 and "of 12 total" in out
      and re.search(r"^\s*2\s+16\.67%.*\[no frames\]$", out, re.M) is not None)
rc, out, _ = pprof_top("empty")
check("pprof reads empty.pb.gz (0 samples)", rc == 0 and "Total samples = 0" in out)

rc, out, rows = pprof_top("node", "-sample_index=samples")
check("pprof reads node.pb.gz: %d samples" % node_total, rc == 0 and ("of %d total" % node_total) in out)
for fn in ("settle", "build", "handle", "pbkdf2Sync"):
    check("pprof: %s flat %d cum %d as in the cpuprofile (got %s)" % (fn, node_flat[fn], node_cum[fn], rows.get(fn)),
          rows.get(fn) == (node_flat[fn], node_cum[fn]))

# ---------------------------------------------------------------- folded
for name, total in (("demo", 500), ("odd", 12), ("empty", 0), ("node", None)):
    lines = open(os.path.join(tmp, name + ".folded"), encoding="utf-8").read().splitlines()
    # flamegraph.pl: /^(.*)\s+?(\d+(?:\.\d*)?)$/, speedscope: /^(.*) (\d+)$/
    parsed = [re.match(r"^(.+) (\d+)$", ln) for ln in lines]
    total = node_total if total is None else total
    check("%s.folded: every line is 'frames count', %d samples" % (name, total),
          all(parsed) and sum(int(m.group(2)) for m in parsed) == total)

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(done())
