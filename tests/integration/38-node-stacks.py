#!/usr/bin/env python3
# timeout: 420
"""Stall episodes name the JS function that blocked, on every Node.js of the matrix.

tests/node/stacks/app.js blocks its loop in turn in a route handler, a class method,
a closure, an async function after an await, a TurboFan-optimised function and an
ES module's function. For every episode with stack samples, `stat --json` must give
the blocking function as the top JS frame of the dominant stack, in the right file,
at a line inside it (>= 90% of them, and at least 6 named); and no JS frame of any
stack in those files may carry a name the source does not have at that line. A
second run blocks in native work (pbkdf2Sync, JSON.stringify, a backtracking regex,
gzipSync, readFileSync): the dominant stacks' native leaves must be named.
The per-version tally is printed as TAP comments (named / episodes with samples).
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, check, skip, done, node_matrix, node_usable  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
APPDIR = os.path.realpath(os.path.join(HERE, "..", "node", "stacks"))
FILES = {"app.js": os.path.join(APPDIR, "app.js"), "esm.mjs": os.path.join(APPDIR, "esm.mjs")}
SECONDS = 10


def ranges():
    """{function: (file, first line, last line)} from the BEGIN/END markers."""
    out = {}
    for short, path in FILES.items():
        begin = {}
        for n, line in enumerate(open(path), 1):
            for name in re.findall(r"// BEGIN (\w+)", line):
                begin[name] = n
            for name in re.findall(r"// END (\w+)", line):
                out[name] = (short, begin[name], n)
    return out


def source_lines():
    return {short: open(path).read().split("\n") for short, path in FILES.items()}


def short_file(f):
    """app.js / esm.mjs when the frame's file is one of ours (a path or a file:// URL)."""
    if not f:
        return None
    f = f[7:] if f.startswith("file://") else f
    for short, path in FILES.items():
        if os.path.realpath(f) == path:
            return short
    return None


def run(node, native):
    # native blocks take what they take (more on a loaded machine): a longer gap keeps
    # them separate episodes
    env = dict(os.environ, BLOCK_MS="160", GAP_MS="1200" if native else "450", NATIVE="1" if native else "0")
    app = subprocess.Popen([node, FILES["app.js"]], stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = app.stdout.readline()
        if '"ready"' not in line:
            return None
        time.sleep(1.0)
        p = subprocess.run([LOOPSCOPE, "stat", "-p", str(app.pid), "-i", str(SECONDS), "-d", str(SECONDS),
                            "--json"], capture_output=True, text=True, timeout=SECONDS + 60)
        if p.returncode != 0:
            print("# stat failed: " + p.stderr.strip().replace("\n", " | "))
            return None
        eps = []
        for l in p.stdout.splitlines():
            o = json.loads(l)
            if o["tid"] == o["pid"]:
                eps += [e for e in o.get("episodes", []) if e["kind"] != "gc"]
        return eps
    finally:
        app.kill()
        app.wait()


def wrong_names(eps, rng, src):
    """JS frames in our files whose name the source does not have at their line."""
    bad = []
    for e in eps:
        for st in e["stacks"]:
            for f in st["frames"]:
                sf = short_file(f.get("file")) if f["kind"] == "js" else None
                if not sf or f["function"].startswith("[JS unknown"):
                    continue
                name, line = f["function"], f.get("line", 0)
                if name in rng:
                    ok = rng[name][0] == sf and rng[name][1] <= line <= rng[name][2]
                elif name == "(anonymous)":
                    ok = True
                else:
                    ok = 0 < line <= len(src[sf]) and re.search(r"\b%s\b" % re.escape(name), src[sf][line - 1])
                if not ok:
                    bad.append("%s at %s:%s" % (name, sf, line))
    return bad


def main():
    if os.geteuid() != 0:
        skip("needs root (BPF)")
    rng, src = ranges(), source_lines()
    matrix = node_matrix()
    if not matrix:
        skip("no node binary")
    tally = []
    for label, node in matrix:
        if not node_usable(label, node):
            continue
        eps = run(node, False)
        check("node %s: stat ran on the JS workload" % label, eps is not None)
        if eps is None:
            continue
        sampled = [e for e in eps if e["samples"] > 0]
        named = 0
        for e in sampled:
            js = [f for f in e["stacks"][0]["frames"] if f["kind"] == "js"] if e["stacks"] else []
            top = js[0] if js else None
            if top and top["function"] in rng and rng[top["function"]][0] == short_file(top.get("file")) and \
               rng[top["function"]][1] <= top.get("line", 0) <= rng[top["function"]][2]:
                named += 1
        tally.append("node %s: %d/%d episodes with samples named (%d without samples)" %
                     (label, named, len(sampled), len(eps) - len(sampled)))
        check("node %s: the blocking function tops the dominant stack in >= 90%% of %d sampled episodes "
              "(%d named, at least 6)" % (label, len(sampled), named),
              named >= 6 and named >= 0.9 * len(sampled))
        bad = wrong_names(eps, rng, src)
        check("node %s: no JS frame carries a name its source line does not have%s" %
              (label, (": " + ", ".join(sorted(set(bad))[:5])) if bad else ""), not bad)
        eps = run(node, True)
        check("node %s: stat ran on the native workload" % label, eps is not None)
        if eps is None:
            continue
        leaves = [e["stacks"][0]["frames"][0] for e in eps if e["samples"] > 0 and e["stacks"]]
        # a leaf in a stripped system library is named by its object ("[libc.so.6]"):
        # only the node binary's and the kernel's leaves must carry a function name
        unnamed = [f["function"] for f in leaves if f["kind"] != "js" and
                   (re.match(r"0x[0-9a-f]+$", f["function"]) or
                    (f["function"].startswith("[") and f.get("module", "").endswith("/node")))]
        tally.append("node %s native: leaves %s" % (label, ", ".join(sorted(set(f["function"][:40] for f in leaves)))))
        check("node %s: native work episodes have samples (%d)" % (label, len(leaves)), len(leaves) >= 2)
        check("node %s: every native leaf of a dominant stack in node or the kernel is named%s" %
              (label, (": " + ", ".join(unnamed[:5])) if unnamed else ""), not unnamed)
    for t in tally:
        print("# " + t)
    return done()


if __name__ == "__main__":
    sys.exit(main())
