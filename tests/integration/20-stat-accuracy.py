#!/usr/bin/env python3
# timeout: 240
"""20-stat-accuracy: `loopscope stat --json` against loopdemo's own ground truth.

Each workload runs loopdemo with --wait-attach (its workload and its accounting start
when the agent raises poll_start's semaphore, the last probe attached) and
--duration, then compares the agent's one JSON line with --stats-json. Tolerances
(issue 3): per-phase totals within 2%, utilization within 0.02, delay p50/p99/max
within max(10%, 200 us), starvation episodes: count exact, durations within 5%,
and no episode at all on a healthy workload.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile

BUILD = os.environ.get("LS_BUILD") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
LOOPSCOPE = os.environ.get("LOOPSCOPE") or os.path.join(BUILD, "asan", "loopscope")
LOOPDEMO = os.environ.get("LOOPDEMO") or os.path.join(BUILD, "loopdemo")

n = 0
failed = 0


def tap(ok, desc):
    global n, failed
    n += 1
    if not ok:
        failed += 1
    print(("ok %d - %s" if ok else "not ok %d - %s") % (n, desc), flush=True)


def near(a, b, rel, absolute):
    return abs(a - b) <= max(rel * abs(b), absolute)


def run_case(name, args, duration, tmp):
    """Run loopdemo ARGS under the agent; returns (ground truth, trace line, stat stderr)."""
    gt_path = os.path.join(tmp, name + ".gt.json")
    # SCHED_FIFO: on this shared 2-CPU machine a preemption between the loop's own
    # clock read and the probe's would otherwise show up as a difference of a
    # scheduler slice (ms) in maxima of microsecond spans. chrt execs loopdemo, so
    # the PID is loopdemo's.
    demo = subprocess.Popen(["chrt", "-f", "10", LOOPDEMO] + args +
                            ["--duration", str(duration), "--stats-json", gt_path, "--wait-attach"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        stat = subprocess.run([LOOPSCOPE, "stat", "-p", str(demo.pid), "-i", "600", "--json"],
                              capture_output=True, text=True, timeout=duration + 60)
        demo_rc = demo.wait(timeout=30)
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGKILL)
            demo.wait()
    tap(stat.returncode == 0, "%s: stat exits 0 when its only target exits (rc %d, stderr %r)"
        % (name, stat.returncode, stat.stderr.strip()[-300:]))
    tap(demo_rc == 0, "%s: loopdemo ran and exited 0 (rc %d)" % (name, demo_rc))
    lines = [l for l in stat.stdout.splitlines() if l.strip()]
    tap(len(lines) == 1, "%s: one JSON line for one loop and one interval (got %d)" % (name, len(lines)))
    try:
        with open(gt_path) as f:
            gt = json.loads(f.read().strip().splitlines()[-1])
        tr = json.loads(lines[-1])
    except (OSError, ValueError, IndexError) as e:
        tap(False, "%s: ground truth and trace parse (%s)" % (name, e))
        return None, None
    return gt, tr


def compare(name, gt, tr, expect_episodes=None):
    """expect_episodes: None = healthy (no episodes at all), else (kind, ms)."""
    tap(tr["pid"] == gt["pid"] and tr["runtime"] == "reference",
        "%s: pid %s / runtime %s" % (name, tr["pid"], tr["runtime"]))
    tap(near(tr["iterations"], gt["iterations"], 0.02, 3),
        "%s: iterations %d vs ground truth %d" % (name, tr["iterations"], gt["iterations"]))
    for ph, g in gt["phases"].items():
        t = tr["phases"][ph]
        # 2% of the total; 0.5 ms absolute for phases that are nearly empty.
        tap(near(t["total_s"], g["total_s"], 0.02, 0.0005),
            "%s: %s total %.6f s vs %.6f s" % (name, ph, t["total_s"], g["total_s"]))
        tap(near(t["count"], g["count"], 0.02, 3),
            "%s: %s runs %d vs %d" % (name, ph, t["count"], g["count"]))
    tap(abs(tr["utilization"] - gt["utilization"]) <= 0.02,
        "%s: utilization %.4f vs %.4f" % (name, tr["utilization"], gt["utilization"]))
    tap(near(tr["poll_wait_s"], gt["poll_wait_s"], 0.02, 0.002),
        "%s: poll wait %.4f s vs %.4f s" % (name, tr["poll_wait_s"], gt["poll_wait_s"]))
    for q in ("p50_s", "p99_s", "max_s"):
        tap(near(tr["delay"][q], gt["delay"][q], 0.10, 200e-6),
            "%s: delay %s %.6f vs %.6f" % (name, q, tr["delay"][q], gt["delay"][q]))
        # The timer callback that starts loopdemo's workload (--wait-attach) is traced
        # but predates its accounting: one sample apart, so small samples' quantiles
        # are only compared from 50 timers on.
        if gt["timer_lateness"]["count"] >= 50:
            tap(near(tr["timer_lateness"][q], gt["timer_lateness"][q], 0.10, 200e-6),
                "%s: timer lateness %s %.6f vs %.6f" % (name, q, tr["timer_lateness"][q],
                                                         gt["timer_lateness"][q]))
    tap(near(tr["timer_lateness"]["count"], gt["timer_lateness"]["count"], 0.02, 2),
        "%s: timer callbacks %d vs %d" % (name, tr["timer_lateness"]["count"], gt["timer_lateness"]["count"]))
    for dr in ("ticks", "microtasks"):
        t, g = tr[dr], gt[dr]
        tap(near(t["drains"], g["drains"], 0.02, 2) and near(t["callbacks"], g["callbacks"], 0.02, 2),
            "%s: %s drains %d/%d callbacks %d/%d" % (name, dr, t["drains"], g["drains"], t["callbacks"],
                                                     g["callbacks"]))
        tap(t["starvation_episodes"] == g["starvation_episodes"],
            "%s: %s starvation episodes %d vs %d" % (name, dr, t["starvation_episodes"],
                                                      g["starvation_episodes"]))
        if g["drains"]:
            # The end is the probe's own clock read: a preemption between the loop's
            # end stamp and the probe (this 2-CPU machine is shared) lengthens a drain
            # of microseconds by up to a scheduler slice, hence the 2 ms floor.
            tap(near(t["max_drain_s"], g["max_drain_s"], 0.05, 0.002),
                "%s: %s longest drain %.6f vs %.6f" % (name, dr, t["max_drain_s"], g["max_drain_s"]))
    tap(tr["stall_episodes"] == gt["stall_episodes"],
        "%s: stall episodes %d vs %d" % (name, tr["stall_episodes"], gt["stall_episodes"]))
    # One line of figures per workload (the README quotes them).
    big = [ph for ph, g in gt["phases"].items() if g["total_s"] >= 0.01]
    worst = max(abs(tr["phases"][ph]["total_s"] - gt["phases"][ph]["total_s"]) / gt["phases"][ph]["total_s"]
                for ph in big) if big else 0.0
    print("# %-16s iterations %6d/%6d  worst phase total (>=10 ms) %.3f%%  utilization %+.4f  "
          "delay p50/p99/max %+.0f/%+.0f/%+.0f us" % (
              name, tr["iterations"], gt["iterations"], 100 * worst, tr["utilization"] - gt["utilization"],
              1e6 * (tr["delay"]["p50_s"] - gt["delay"]["p50_s"]), 1e6 * (tr["delay"]["p99_s"] - gt["delay"]["p99_s"]),
              1e6 * (tr["delay"]["max_s"] - gt["delay"]["max_s"])), flush=True)
    eps = tr.get("episodes", [])
    if expect_episodes is None:
        # Healthy: no starvation at all. A phase can still overrun on a loaded machine
        # (2 cores shared with the agent); then the loop counted it too and the
        # episodes must match its count.
        starv = [e for e in eps if e["kind"] != "stall"]
        stalls = [e for e in eps if e["kind"] == "stall"]
        tap(starv == [] and len(stalls) == gt["stall_episodes"],
            "%s: healthy workload: %d starvation episodes, %d stalls (loop counted %d)"
            % (name, len(starv), len(stalls), gt["stall_episodes"]))
        return
    kind, ms = expect_episodes
    if kind == "stall":
        want = gt["stall_episodes"]
    else:
        want = gt["ticks" if kind == "tick_starvation" else "microtasks"]["starvation_episodes"]
    mine = [e for e in eps if e["kind"] == kind]
    tap(want > 0 and len(mine) == want,
        "%s: %d %s episodes delivered, ground truth %d" % (name, len(mine), kind, want))
    # Ground truth keeps no per-episode list: each one must last at least the workload's
    # MS (less 5%) and at most the longest run the loop itself measured (plus 5%).
    if kind == "stall":
        longest = gt["phases"]["timers"]["max_s"]  # the workload blocks in a timer
    else:
        longest = gt["ticks" if kind == "tick_starvation" else "microtasks"]["max_drain_s"]
    for e in mine:
        tap(ms / 1000.0 * 0.95 <= e["duration_s"] <= longest * 1.05,
            "%s: %s episode lasted %.4f s (workload %d ms, loop's longest %.4f s)"
            % (name, kind, e["duration_s"], ms, longest))
    if kind == "stall":
        tap(all(e["phase"] == "timers" for e in mine), "%s: the stalls were in the timers phase" % name)
        return
    stalls = [e for e in eps if e["kind"] == "stall"]
    tap(len(stalls) == gt["stall_episodes"], "%s: %d stall episodes delivered, ground truth %d"
        % (name, len(stalls), gt["stall_episodes"]))


def main():
    if os.geteuid() != 0:
        print("SKIP needs root (CAP_BPF, CAP_PERFMON)")
        return 77
    for p in (LOOPSCOPE, LOOPDEMO):
        if not os.access(p, os.X_OK):
            print("not ok 1 - %s is missing (run make)" % p)
            return 1
    cases = [
        ("block5", ["--block", "5", "--every", "50"], 3, None),
        ("block20", ["--block", "20", "--every", "100"], 3, None),
        ("block80", ["--block", "80", "--every", "250"], 3, None),
        ("io", ["--io"], 3, None),
        ("work", ["--work"], 3, None),
        ("idle", ["--block", "1", "--every", "1000"], 3, None),
        ("block150", ["--block", "150", "--every", "500"], 3, ("stall", 150)),
        ("tick-starve", ["--tick-starve", "150", "--every", "600"], 3, ("tick_starvation", 150)),
        ("microtask-starve", ["--microtask-starve", "150", "--every", "600"], 3,
         ("microtask_starvation", 150)),
    ]
    with tempfile.TemporaryDirectory(prefix="loopscope-20.") as tmp:
        for name, args, dur, exp in cases:
            gt, tr = run_case(name, args, dur, tmp)
            if gt is not None:
                compare(name, gt, tr, exp)
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
