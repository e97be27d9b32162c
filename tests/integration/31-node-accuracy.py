#!/usr/bin/env python3
# timeout: 600
"""Node.js numbers from outside agree with Node's own, measured in the same process.

- utilization: loopscope's vs performance.eventLoopUtilization() over the same
  window (Node's cumulative idle/active interpolated to the window edges), within 0.03;
- delay: loopscope's max not-polling span vs monitorEventLoopDelay({resolution: 1})'s
  max minus the resolution, within max(10%, 2 ms);
- GC: total pause time vs the pauses `node --trace-gc` prints, within 15%.
Both probe tiers are checked for utilization and delay (a stationary workload:
tests/node/accuracy.js); the GC check uses the default tier (tests/node/gc.js).
On every Node.js build of the matrix (tests/lib.py node_matrix); each line of
results starts with the build's label.
"""
import json
import os
import signal
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import BUILD, LOOPSCOPE, check, skip, done, interp, node_matrix, node_usable, node_records, node_elu  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODEDIR = os.path.join(HERE, "..", "node")


def stat_once(pid, secs, tier):
    """One stat interval of secs; returns (json of the main loop, mono ns at its end)."""
    p = subprocess.Popen([LOOPSCOPE, "stat", "-p", str(pid), "-i", str(secs), "-d", str(secs),
                          "--json", "--probes", tier], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    main, t_end = None, None
    for line in p.stdout:
        t_end = time.monotonic_ns()
        o = json.loads(line)
        if o["tid"] == o["pid"]:
            main = o
    err = p.stderr.read()
    rc = p.wait()
    return main, t_end, rc, err


def run_delay_ns(pid):
    """Time the process's main thread has waited on a run queue (schedstat), in ns."""
    try:
        return int(open("/proc/%d/task/%d/schedstat" % (pid, pid)).read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def one_window(node_exe, tier, tmp, attempt):
    """One stat window against accuracy.js; returns the verdicts (desc, ok) or None."""
    out = open(os.path.join(tmp, "acc-%s-%d.out" % (tier, attempt)), "w+")
    # Highest CFS weight: other processes preempting node between two of its
    # iterations make monitorEventLoopDelay's one gap span two of loopscope's
    # per-iteration samples (or the reverse), and the maxima stop being comparable.
    node = subprocess.Popen(["nice", "-n", "-20", node_exe, os.path.join(NODEDIR, "accuracy.js")],
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.5)
        rd0 = run_delay_ns(node.pid)
        main, t_end, rc, err = stat_once(node.pid, 3, tier)
        waited = run_delay_ns(node.pid) - rd0
        time.sleep(0.2)
    finally:
        node.kill()
        node.wait()
    v = [("%s: stat exits 0 and reports the main loop (rc=%d %s)" % (tier, rc, err.strip()[:200]),
          rc == 0 and main is not None)]
    if main is None:
        return v, 0
    recs = node_records(out)
    t0 = t_end - int(main["interval_s"] * 1e9)
    elu_node = node_elu(recs, t0, t_end)
    if elu_node is None:
        return v + [("%s: node's records cover the window" % tier, False)], waited
    elu_ours = main["utilization"]
    v.append(("%s: utilization %.4f vs node's eventLoopUtilization %.4f (within 0.03)"
              % (tier, elu_ours, elu_node), abs(elu_ours - elu_node) <= 0.03))
    # each record's max covers the 50 ms before it
    eld = [r["eld_max_ns"] for r in recs if t0 + 50e6 <= r["t"] <= t_end]
    eld_max = max(eld) / 1e9 - 0.001 if eld else None
    ours = main["delay"]["max_s"]
    tol = max(0.1 * eld_max, 0.002) if eld_max else 0
    v.append(("%s: delay max %.2f ms vs monitorEventLoopDelay max - resolution %.2f ms (within %.2f ms)"
              % (tier, ours * 1e3, (eld_max or 0) * 1e3, tol * 1e3),
              eld_max is not None and abs(ours - eld_max) <= tol))
    return v, waited


def accuracy(label, node_exe, tier, tmp):
    """Up to three windows: one where a check fails while node waited for a CPU for
    more than 2 ms is the machine's doing (see one_window) and is measured again."""
    for attempt in range(3):
        v, waited = one_window(node_exe, tier, tmp, attempt)
        if all(ok for _, ok in v) or waited <= 2000000 or attempt == 2:
            break
        print("# %s %s: a check failed while node waited %.1f ms for a CPU in the window; again"
              % (label, tier, waited / 1e6))
        for desc, ok in v:
            print("#   %s %s" % ("ok" if ok else "not ok", desc))
    print("# %s %s: node waited %.1f ms for a CPU in the window" % (label, tier, waited / 1e6))
    for desc, ok in v:
        check("%s %s" % (label, desc), ok)


PAUSE = re.compile(r"\s(\d+) ms: (?:Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Compact|Mark-Compact \(reduce\))"
                   r".*?MB, ([\d.]+) / [\d.]+ ms")


def gc_total(label, node_exe, tmp):
    out = open(os.path.join(tmp, "gc.out"), "w+")
    # the allocation starts on SIGUSR2, sent once stat's first line says it is attached
    node = subprocess.Popen([node_exe, "--trace-gc", os.path.join(NODEDIR, "gc.js"), "2000", "0"],
                            stdout=out, stderr=subprocess.STDOUT)
    for _ in range(100):
        out.seek(0)
        if "ready" in out.read():
            break
        time.sleep(0.1)
    # no -d: stat ends when the target exits, after its final interval
    p = subprocess.Popen([LOOPSCOPE, "stat", "-p", str(node.pid), "-i", "0.5", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in p.stdout:
        if not lines:
            node.send_signal(signal.SIGUSR2)
        lines.append(line)
    err = p.stderr.read()
    p.returncode = p.wait()
    p.stderr = err
    node.wait()
    ours = n_ours = 0
    for line in lines:
        o = json.loads(line)
        if o["tid"] == o["pid"] and "gc" in o:
            ours += o["gc"]["total_s"]
            n_ours += o["gc"]["count"]
    out.seek(0)
    text = out.read()
    started = text.find("gc_start")
    theirs = [float(m.group(2)) / 1e3 for m in PAUSE.finditer(text[started:])] if started >= 0 else []
    check(label + " gc: stat exits 0 after the target exits (rc=%d %s)" % (p.returncode, p.stderr.strip()[-200:]),
          p.returncode == 0)
    check(label + " gc: the workload collected (%d pauses in --trace-gc, %d seen)" % (len(theirs), n_ours),
          len(theirs) >= 5 and n_ours >= 5)
    total = sum(theirs)
    check(label + " gc: pause total %.1f ms vs --trace-gc %.1f ms (within 15%%)" % (ours * 1e3, total * 1e3),
          total > 0 and abs(ours - total) <= 0.15 * total)


def main():
    if os.geteuid() != 0:
        skip("needs root (CAP_BPF, CAP_PERFMON)")
    if subprocess.run(["sh", "-c", "command -v node"], capture_output=True).returncode:
        skip("needs node")
    with tempfile.TemporaryDirectory(prefix="loopscope-test.") as tmp:
        for label, node_exe in node_matrix():
            if not node_usable(label, node_exe):
                continue
            for tier in ("light", "phases"):
                accuracy(label, node_exe, tier, tmp)
            gc_total(label, node_exe, tmp)
    sys.exit(done())


main()
