#!/usr/bin/env python3
# timeout: 420
"""Stall episodes name the JS function that blocked, on every Node.js build of the
matrix (tests/lib.py node_matrix).

tests/node/stacks/app.js blocks its loop in turn in a route handler, a class method,
a closure, an async function after an await, a TurboFan-optimised function, an ES
module's function, a small function TurboFan inlined into its hot caller, and two
functions whose many closed-over locals move what V8 keeps of their names (12
locals: inline, 90: a hash table). Each
block is logged with its start (CLOCK_MONOTONIC, the clock of an episode's start_s),
so each episode is matched to the block that caused it. For every episode with stack
samples, `stat --json` must give the function that block runs as the top JS frame of
the dominant stack, in the right file, at a line inside it (>= 90% of them, and at
least 6 named): for the inlined block that is the inlined function, with its caller
next at a line inside the caller (the frames V8 folded into one, told apart by the
code's inlining positions). No JS frame of any stack in those files may carry a name
the source does not have at that line. The objects read for inlined frames and lines
differ between V8 versions (userspace/backends/stacks.md), hence the whole matrix.
A second run, on the newest build and Debian's (node_matrix full), blocks in native
work (pbkdf2Sync, JSON.stringify, a backtracking regex, gzipSync, readFileSync): the
dominant stacks' native leaves must be named, and the JS function that called the
work (>= 90% of the episodes that began after the attach, every kind among them).
Each run lasts until stat has reported the blocks it needs (the JS cycle twice, the
native one and a half times: BLOCKS) from the first interval on.
The per-version tally is printed as TAP comments (named / episodes with samples).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, check, skip, done, node_matrix, node_usable, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
APPDIR = os.path.realpath(os.path.join(HERE, "..", "node", "stacks"))
FILES = {"app.js": os.path.join(APPDIR, "app.js"), "esm.mjs": os.path.join(APPDIR, "esm.mjs")}
BLOCKS = {"js": 18, "native": 7}
# the function each JS block's episode must name, where it is not the block's name
EXPECT = {"settleBatch": "crunchRow"}


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


def run(node, native, tmp):
    """app.js (JS or native blocks) under `stat --json` until BLOCKS of them began
    after the first interval and stat reported an interval after the last of them
    ended; the main loop's episodes but GC, or None."""
    # a block begins at least GAP_MS after the previous one ended (app.js), so native
    # blocks, which take what they take (more on a loaded machine), stay episodes of
    # their own
    env = dict(os.environ, BLOCK_MS="160", GAP_MS="250", NATIVE="1" if native else "0")
    outp, statp = os.path.join(tmp, "app.out"), os.path.join(tmp, "stat.json")
    app = subprocess.Popen([node, FILES["app.js"]], stdout=open(outp, "w"), env=env)
    try:
        if not wait_for(30, lambda: '"ready"' in open(outp).read() or app.poll() is not None) or \
           app.poll() is not None:
            return None
        p = subprocess.Popen([LOOPSCOPE, "stat", "-p", str(app.pid), "-i", "0.5", "--json"],
                             stdout=open(statp, "w"), stderr=subprocess.PIPE, text=True)
        wait_for(60, lambda: os.path.getsize(statp) > 0 or p.poll() is not None)
        attached = time.monotonic() - 0.5	# the first interval began after the attach
        blocks = lambda: open(outp).read().count('"block"')  # noqa: E731
        lines = lambda: open(statp).read().count("\n")  # noqa: E731
        b0 = blocks()
        # BLOCKS blocks over: the one after them began
        need = BLOCKS["native" if native else "js"]
        wait_for(120, lambda: blocks() >= b0 + need + 1 or p.poll() is not None)
        # an interval that ended after them: their episodes are reported
        n = lines()
        wait_for(5, lambda: lines() >= n + 1 or p.poll() is not None)
        p.send_signal(signal.SIGINT)
        err = p.stderr.read()
        if p.wait(timeout=60) != 0:
            print("# stat failed: " + err.strip().replace("\n", " | "))
            return None
        eps = []
        for l in open(statp):
            o = json.loads(l)
            if o["tid"] == o["pid"]:
                eps += [e for e in o.get("episodes", []) if e["kind"] != "gc"]
        blocks = [json.loads(l) for l in open(outp) if '"block"' in l]
        for e in eps:
            e["during_attach"] = e["start_s"] < attached
            # the last block logged before the episode began (the span starts a
            # little before the block's callback logs it)
            before = [b["block"] for b in blocks if b["t"] <= e["start_s"] + 0.05]
            e["block"] = before[-1] if before else None
        return eps
    finally:
        app.kill()
        app.wait()


def in_range(rng, f):
    """f is one of our functions' frames, in its file, at a line inside it."""
    r = rng.get(f["function"])
    return bool(r) and r[0] == short_file(f.get("file")) and r[1] <= f.get("line", 0) <= r[2]


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
                    # a line inside the function: its name is on a line at or above it
                    ok = 0 < line <= len(src[sf]) and \
                        any(re.search(r"\b%s\b" % re.escape(name), ln) for ln in src[sf][:line])
                if not ok:
                    bad.append("%s at %s:%s" % (name, sf, line))
    return bad


def main():
    if os.geteuid() != 0:
        skip("needs root (BPF)")
    rng, src = ranges(), source_lines()
    # app.js's natives: {name: line} of each one-line entry ("  pbkdf2: () => ...")
    native_lines = {}
    for n, line in enumerate(src["app.js"], 1):
        m = re.match(r"  (\w+): \(\) => ", line)
        if m:
            native_lines[m.group(1)] = n
    matrix = node_matrix(full=True)
    if not matrix:
        skip("no node binary")
    tmp = tempfile.mkdtemp(prefix="loopscope-test.")
    tally = []
    for label, node in node_matrix():
        if not node_usable(label, node):
            continue
        eps = run(node, False, tmp)
        check("node %s: stat ran on the JS workload" % label, eps is not None)
        if eps is None:
            continue
        sampled = [e for e in eps if e["samples"] > 0]
        named, inlined, inl_named = 0, 0, 0
        for e in sampled:
            js = [f for f in e["stacks"][0]["frames"] if f["kind"] == "js"] if e["stacks"] else []
            top = js[0] if js else None
            want = EXPECT.get(e["block"], e["block"])
            if top and top["function"] == want and in_range(rng, top):
                named += 1
            else:
                print("# node %s: %s episode of block %s not named %s: top JS frame %s" %
                      (label, e["kind"], e["block"], want, top and
                       "%s %s:%s" % (top["function"], short_file(top.get("file")), top.get("line"))))
            if e["block"] in EXPECT:
                # the inlined function's caller is the next frame, at its call
                inlined += 1
                inl_named += len(js) > 1 and js[1]["function"] == e["block"] and in_range(rng, js[1])
        tally.append("node %s: %d/%d episodes with samples named (%d without samples); inlined: %d/%d with "
                     "their caller" % (label, named, len(sampled), len(eps) - len(sampled), inl_named, inlined))
        check("node %s: the blocking function tops the dominant stack in >= 90%% of %d sampled episodes "
              "(%d named, at least 6)" % (label, len(sampled), named),
              named >= 6 and named >= 0.9 * len(sampled))
        check("node %s: a function TurboFan inlined is named with its caller under it in >= 90%% of %d "
              "episodes (%d, at least 1)" % (label, inlined, inl_named),
              inl_named >= 1 and inl_named >= 0.9 * inlined)
        bad = wrong_names(eps, rng, src)
        check("node %s: no JS frame carries a name its source line does not have%s" %
              (label, (": " + ", ".join(sorted(set(bad))[:5])) if bad else ""), not bad)
    for label, node in matrix:
        if not node_usable(label, node):
            continue
        eps = run(node, True, tmp)
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
        # the JS code that called the native work is named too: the dominant stack's
        # first frame in app.js is the natives entry that ran it, at its line
        # (not those that began while stat was still attaching: the samples of a leaf
        # that keeps no frame record stay leaf-only until user space has seen one, and
        # it reads none before the attach is done: userspace/backends/stacks.md)
        sampled = [e for e in eps if e["samples"] > 0 and e["stacks"] and not e["during_attach"]]
        callers = {}
        for e in sampled:
            ours = [f for f in e["stacks"][0]["frames"] if f["kind"] == "js" and short_file(f.get("file")) == "app.js"]
            f = ours[0] if ours else None
            entry = [f["function"]] if f and native_lines.get(f["function"]) == f.get("line") else []
            if entry:
                callers[entry[0]] = callers.get(entry[0], 0) + 1
            else:
                print("# node %s native: caller not named: leaf %s, first app.js frame %s" %
                      (label, e["stacks"][0]["frames"][0]["function"][:40],
                       f and "%s app.js:%s" % (f["function"], f.get("line"))))
        named = sum(callers.values())
        tally.append("node %s native: %d/%d episodes with samples name their JS caller (%s)" %
                     (label, named, len(sampled), ", ".join("%s %d" % kv for kv in sorted(callers.items()))))
        check("node %s: the JS function that called the native work is named in >= 90%% of %d sampled "
              "episodes (%d), every kind of work among them (%s)" %
              (label, len(sampled), named, ", ".join(sorted(set(native_lines) - set(callers))) or "all"),
              named >= 0.9 * len(sampled) and set(callers) == set(native_lines))
        bad = wrong_names(eps, rng, src)
        check("node %s: no JS frame of the native workload carries a name its source line does not have%s" %
              (label, (": " + ", ".join(sorted(set(bad))[:5])) if bad else ""), not bad)
    for t in tally:
        print("# " + t)
    shutil.rmtree(tmp, ignore_errors=True)
    return done()


if __name__ == "__main__":
    sys.exit(main())
