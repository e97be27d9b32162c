#!/usr/bin/env python3
# timeout: 420
"""Starvation among other work, on every Node.js build of the matrix.

tests/node/starve.js runs timers of several durations and loopback socket I/O, and
every 1.3 s starves the loop for 250 ms: a recursive process.nextTick and a recursive
promise chain in turn, started from a setInterval callback, a socket's data callback
and a setImmediate callback (six bursts cover every pair). Each burst is matched by
time with the episodes `loopscope stat` reports for the main loop:

- every burst gives exactly one episode, and no episode comes without a burst;
- a promise-chain burst is microtask_starvation, wherever it started;
- a nextTick burst started from I/O or setImmediate (drained by
  node::InternalCallbackScope::Close) is tick_starvation;
- a nextTick burst started from a timer is tick_starvation too: when another timer
  list is due in the same pass, Node drains the ticks from JS (runNextTicks() between
  the lists), where no native frame tells them apart; the episode's JS frames do
  (processTicksAndRejections / runNextTicks on the stack). Only an episode that got no
  stack sample at all (its thread never on a CPU) may stay a stall;
- the same program without bursts gives no episode at all.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, check, skip, done, node_matrix, node_usable  # noqa: E402

NODEDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node")
INTERVAL = 0.5
NBURSTS = 6


def run(node_exe, mode, secs, tmp):
    """starve.js MODE mix under stat for secs; (bursts, main-loop episodes, stat rc, err)."""
    out = open(os.path.join(tmp, "starve-%s.out" % mode), "w+")
    node = subprocess.Popen([node_exe, os.path.join(NODEDIR, "starve.js"), mode, "mix", str(secs + 20), "usr2"],
                            stdout=out, stderr=subprocess.STDOUT)
    eps, rc, err = [], -1, ""
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out.seek(0)
            if "ready" in out.read():
                break
            time.sleep(0.05)
        p = subprocess.Popen([LOOPSCOPE, "stat", "-p", str(node.pid), "-i", str(INTERVAL), "-d", str(secs),
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = True
        for line in p.stdout:
            if first:
                # attached and counting: the bursts begin 1.3 s from now
                node.send_signal(signal.SIGUSR2)
                first = False
            o = json.loads(line)
            if o["tid"] == o["pid"]:
                eps += o.get("episodes", [])
        err = p.stderr.read()
        rc = p.wait()
    finally:
        node.kill()
        node.wait()
    out.seek(0)
    bursts = []
    for line in out:
        if line.startswith("{"):
            b = json.loads(line)
            b["t0"], b["t1"] = int(b["t0"]), int(b["t1"])
            bursts.append(b)
    return bursts, eps, rc, err


def overlaps(ep, b):
    """The episode (CLOCK_MONOTONIC seconds) overlaps the burst (ns, the same clock)."""
    start = ep["start_s"] * 1e9
    end = start + ep["duration_s"] * 1e9
    return start <= b["t1"] and end >= b["t0"]


def one_node(label, node_exe, tmp):
    secs = 1.3 * NBURSTS + 1.5
    bursts, eps, rc, err = run(node_exe, "mix", secs, tmp)
    check("%s: stat exits 0 (rc=%d %s)" % (label, rc, err.strip()[:200]), rc == 0)
    check("%s: the %d bursts ran while attached (%d)" % (label, NBURSTS, len(bursts)), len(bursts) >= NBURSTS)
    bursts = bursts[:NBURSTS]
    got = []
    for b in bursts:
        kinds = [e["kind"] for e in eps if overlaps(e, b)]
        got.append((b, kinds))
        print("# %s: %s burst from %s (%.0f ms): %s" % (label, b["burst"], b["origin"],
                                                       (b["t1"] - b["t0"]) / 1e6, kinds or "no episode"))
    stray = [e for e in eps if not any(overlaps(e, b) for b in bursts)]
    check("%s: one episode per burst (%s)" % (label, [len(k) for _, k in got]),
          all(len(k) == 1 for _, k in got))
    check("%s: no episode without a burst (%s)" % (label, [(e["kind"], e["start_s"]) for e in stray]),
          not stray)
    micro = [k for b, k in got if b["burst"] == "micro"]
    check("%s: every promise-chain burst is microtask_starvation (%s)" % (label, micro),
          micro and all(k == ["microtask_starvation"] for k in micro))
    tick_cb = [k for b, k in got if b["burst"] == "tick" and b["origin"] != "timer"]
    check("%s: nextTick bursts from I/O and setImmediate are tick_starvation (%s)" % (label, tick_cb),
          tick_cb and all(k == ["tick_starvation"] for k in tick_cb))
    tick_timer = [[(e["kind"], e.get("samples", 0)) for e in eps if overlaps(e, b)]
                  for b, _ in got if b["burst"] == "tick" and b["origin"] == "timer"]
    check("%s: timer-started tick bursts are tick_starvation (a stall only without samples) (%s)"
          % (label, tick_timer),
          tick_timer and all(len(k) == 1 and (k[0][0] == "tick_starvation" or (k[0][0] == "stall" and not k[0][1]))
                             for k in tick_timer))

    _, eps, rc, err = run(node_exe, "none", 4, tmp)
    check("%s: healthy: stat exits 0 (rc=%d %s)" % (label, rc, err.strip()[:200]), rc == 0)
    check("%s: healthy: no episode (%s)" % (label, [e["kind"] for e in eps]), not eps)


def main():
    if os.geteuid() != 0:
        skip("needs root (CAP_BPF, CAP_PERFMON)")
    with tempfile.TemporaryDirectory(prefix="loopscope-test.") as tmp:
        for label, node_exe in node_matrix():
            if node_usable(label, node_exe):
                one_node(label, node_exe, tmp)
    sys.exit(done())


main()
