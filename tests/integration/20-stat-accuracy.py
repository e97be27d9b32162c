#!/usr/bin/env python3
# timeout: 300
"""20-stat-accuracy: `loopscope stat --json` against loopdemo's own ground truth.

Each workload runs loopdemo with --wait-attach (its workload and its accounting start
when the agent raises poll_start's semaphore, the last probe attached) and
--duration (2 s; the -i 1 runs 3 s), then compares the agent's one JSON line with --stats-json, and, for a
few workloads, the sum of its one-second lines (-i 1). Every episode is matched
against the loop's own episode list (start, duration). Tolerances
(issue 3): per-phase totals within 2%, utilization within 0.02, delay p50/p99/max
within max(10%, 200 us), starvation episodes: count exact, durations within 5%,
and no episode at all on a healthy workload.

A case whose checks fail while loopdemo was disturbed (an involuntary context switch
of its SCHED_FIFO threads, from wait4's rusage, or steal time the hypervisor took,
from /proc/stat) is measured again, up to three times; the bounds never change.
A preemption between the loop's own clock read and the probe's moves a maximum by
its length (seen: delay max 908 us vs 192 us with 2 involuntary switches), and it
lands there more often than chance: the return from a probe's trap is where the
kernel preempts. When every attempt was disturbed, a maximum (one sample: the only
figure a single preemption moves) may differ by no more than the bound plus the time
the loop thread measurably waited for a CPU during the run (its schedstat run delay,
sampled while it ran); everything else keeps its bound.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, LOOPDEMO, tap, done  # noqa: E402

_tap = tap
# What disturbed the last run_case's loopdemo: (involuntary context switches, steal ticks).
disturbed = (0, 0)
# ns loopdemo's loop thread waited for a CPU during the last run_case (schedstat).
waited_ns = 0
# True in the last attempt of measured() when every attempt before it was disturbed.
last_disturbed_attempt = False


def run_delay(pid):
    """ns thread pid has waited on a runqueue so far (/proc/PID/task/PID/schedstat), or None."""
    try:
        with open("/proc/%d/task/%d/schedstat" % (pid, pid)) as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def watch_run_delay(pid, out, stop):
    """Samples pid's run delay every 20 ms until stop is set or it exits: out[0] the
    first value, out[1] the last one read while it ran."""
    while not stop.is_set():
        v = run_delay(pid)
        if v is None:
            break
        if out[0] is None:
            out[0] = v
        out[1] = v
        time.sleep(0.02)


def steal_ticks():
    """Steal time of all CPUs so far (USER_HZ ticks): time the hypervisor ran something else."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def measured(name, fn):
    """Run fn (a run_case and its comparison, which call tap) up to three times: a run
    whose checks fail while loopdemo was disturbed is measured again. The last run's
    verdicts are the test's."""
    global tap, last_disturbed_attempt
    for attempt in range(3):
        last_disturbed_attempt = attempt == 2
        verdicts = []
        tap = lambda ok, desc: verdicts.append((ok, desc))
        try:
            fn()
        finally:
            tap = _tap
        if all(ok for ok, _ in verdicts) or disturbed == (0, 0) or attempt == 2:
            break
        print("# %s: a check failed while loopdemo was disturbed (%d involuntary context switches, "
              "%d steal ticks); again" % ((name,) + disturbed), flush=True)
        for ok, desc in verdicts:
            if not ok:
                print("#   not ok %s" % desc, flush=True)
    for ok, desc in verdicts:
        tap(ok, desc)




def near(a, b, rel, absolute):
    return abs(a - b) <= max(rel * abs(b), absolute)


def run_case(name, args, duration, tmp, interval="600", agent_env=None):
    """Run loopdemo ARGS under the agent; returns (ground truth, trace). With
    interval "1" the trace is the list of every interval's JSON line. agent_env: more
    environment for the agent."""
    gt_path = os.path.join(tmp, name + ".gt.json")
    # SCHED_FIFO: on this shared 2-CPU machine a preemption between the loop's own
    # clock read and the probe's would otherwise show up as a difference of a
    # scheduler slice (ms) in maxima of microsecond spans. chrt execs loopdemo, so
    # the PID is loopdemo's.
    demo = subprocess.Popen(["chrt", "-f", "10", LOOPDEMO] + args +
                            ["--duration", str(duration), "--stats-json", gt_path, "--wait-attach"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    global disturbed, waited_ns
    steal0 = steal_ticks()
    rd, stop = [None, None], threading.Event()
    watcher = threading.Thread(target=watch_run_delay, args=(demo.pid, rd, stop), daemon=True)
    watcher.start()
    try:
        stat = subprocess.run([LOOPSCOPE, "stat", "-p", str(demo.pid), "-i", interval, "--json"],
                              capture_output=True, text=True, timeout=duration + 60,
                              env=dict(os.environ, **(agent_env or {})))
        # stat ends when loopdemo exits: reap it here for its rusage
        _, status, ru = os.wait4(demo.pid, 0)
        demo.returncode = demo_rc = os.waitstatus_to_exitcode(status)
        disturbed = (ru.ru_nivcsw, steal_ticks() - steal0)
    finally:
        stop.set()
        watcher.join()
        waited_ns = (rd[1] - rd[0]) if rd[0] is not None and rd[1] is not None else 0
        if demo.poll() is None:
            demo.send_signal(signal.SIGKILL)
            demo.wait()
    tap(stat.returncode == 0, "%s: stat exits 0 when its only target exits (rc %d, stderr %r)"
        % (name, stat.returncode, stat.stderr.strip()[-300:]))
    tap(demo_rc == 0, "%s: loopdemo ran and exited 0 (rc %d)" % (name, demo_rc))
    lines = [l for l in stat.stdout.splitlines() if l.strip()]
    if interval == "600":
        tap(len(lines) == 1, "%s: one JSON line for one loop and one interval (got %d)" % (name, len(lines)))
    else:
        # One line a second for duration s, give or take the attach and the exit.
        tap(duration - 1 <= len(lines) <= duration + 2,
            "%s: %d JSON lines for %d s at -i %s" % (name, len(lines), duration, interval))
    try:
        with open(gt_path) as f:
            gt = json.loads(f.read().strip().splitlines()[-1])
        tr = json.loads(lines[-1]) if interval == "600" else [json.loads(l) for l in lines]
    except (OSError, ValueError, IndexError) as e:
        tap(False, "%s: ground truth and trace parse (%s)" % (name, e))
        return None, None
    # Quantiles are exact only while the loop kept every sample.
    tap(gt.get("samples_dropped") == 0,
        "%s: ground truth kept every sample (samples_dropped %r)" % (name, gt.get("samples_dropped")))
    if gt.get("samples_dropped") != 0:
        return None, None
    return gt, tr


def match_episodes(name, got, want):
    """Each ground-truth episode found once in got (kind, phase, start within 2 ms:
    both sides use the loop's own timestamps) with its duration within 5%; nothing
    else in got."""
    left = list(got)
    for w in want:
        hit = next((g for g in left if g["kind"] == w["kind"] and g["phase"] == w["phase"] and
                    abs(g["start_s"] - w["start_s"]) <= 0.002), None)
        tap(hit is not None and abs(hit["duration_s"] - w["duration_s"]) <= 0.05 * w["duration_s"],
            "%s: %s in %s at %.3f s lasting %.4f s: reported %s" % (
                name, w["kind"], w["phase"], w["start_s"], w["duration_s"],
                "%.4f s" % hit["duration_s"] if hit else "nothing"))
        if hit is not None:
            left.remove(hit)
    tap(not left, "%s: no episode the ground truth does not have (%r)" % (name, left[:3]))


def compare_summed(name, gt, trs):
    """-i 1: the intervals add up to the ground truth's totals."""
    tot = lambda f: sum(f(t) for t in trs)
    tap(near(tot(lambda t: t["iterations"]), gt["iterations"], 0.02, 3),
        "%s: iterations summed over %d intervals %d vs %d" % (name, len(trs), tot(lambda t: t["iterations"]),
                                                              gt["iterations"]))
    for ph, g in gt["phases"].items():
        total = tot(lambda t: t["phases"][ph]["total_s"])
        count = tot(lambda t: t["phases"][ph]["count"])
        tap(near(total, g["total_s"], 0.02, 0.0005) and near(count, g["count"], 0.02, 3),
            "%s: %s summed total %.6f s / %d runs vs %.6f s / %d" % (name, ph, total, count, g["total_s"],
                                                                   g["count"]))
    tap(near(tot(lambda t: t["poll_wait_s"]), gt["poll_wait_s"], 0.02, 0.002),
        "%s: poll wait summed %.4f s vs %.4f s" % (name, tot(lambda t: t["poll_wait_s"]), gt["poll_wait_s"]))
    for dr in ("ticks", "microtasks"):
        d, c, e = (tot(lambda t: t[dr]["drains"]), tot(lambda t: t[dr]["callbacks"]),
                   tot(lambda t: t[dr]["starvation_episodes"]))
        g = gt[dr]
        tap(near(d, g["drains"], 0.02, 2) and near(c, g["callbacks"], 0.02, 2) and e == g["starvation_episodes"],
            "%s: %s summed drains %d/%d callbacks %d/%d starvation %d/%d" % (
                name, dr, d, g["drains"], c, g["callbacks"], e, g["starvation_episodes"]))
    stalls = tot(lambda t: t["stall_episodes"])
    tap(stalls == gt["stall_episodes"], "%s: stall episodes summed %d vs %d" % (name, stalls, gt["stall_episodes"]))
    match_episodes(name + " -i 1", [e for t in trs for e in t.get("episodes", [])], gt["episodes"])


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
        ok = near(tr["delay"][q], gt["delay"][q], 0.10, 200e-6)
        extra = ""
        if not ok and q == "max_s" and last_disturbed_attempt and waited_ns:
            # disturbed in every attempt: the loop thread's measured wait for a CPU
            # may sit between the loop's clock read and the probe's
            ok = abs(tr["delay"][q] - gt["delay"][q]) <= max(0.10 * gt["delay"][q], 200e-6) + waited_ns / 1e9
            extra = " (+%.0f us the loop thread waited for a CPU)" % (waited_ns / 1e3)
        tap(ok, "%s: delay %s %.6f vs %.6f%s" % (name, q, tr["delay"][q], gt["delay"][q], extra))
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
    # One line of figures per workload (userspace/backends/refloop.md quotes one).
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
        match_episodes(name, eps, gt["episodes"])
        return
    kind, ms = expect_episodes
    if kind == "stall":
        want = gt["stall_episodes"]
    else:
        want = gt["ticks" if kind == "tick_starvation" else "microtasks"]["starvation_episodes"]
    mine = [e for e in eps if e["kind"] == kind]
    tap(want > 0 and len(mine) == want,
        "%s: %d %s episodes delivered, ground truth %d" % (name, len(mine), kind, want))
    # Each one against the loop's own list: same start, duration within 5%; and each
    # lasted the workload's MS (less 5%).
    match_episodes(name, eps, gt["episodes"])
    for e in mine:
        tap(ms / 1000.0 * 0.95 <= e["duration_s"],
            "%s: %s episode lasted %.4f s (workload %d ms)" % (name, kind, e["duration_s"], ms))
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
        ("block5", ["--block", "5", "--every", "50"], 2, None),
        ("block20", ["--block", "20", "--every", "100"], 2, None),
        ("block80", ["--block", "80", "--every", "250"], 2, None),
        ("io", ["--io"], 2, None),
        ("work", ["--work"], 2, None),
        ("idle", ["--block", "1", "--every", "1000"], 2, None),
        ("block150", ["--block", "150", "--every", "500"], 2, ("stall", 150)),
        ("tick-starve", ["--tick-starve", "150", "--every", "600"], 2, ("tick_starvation", 150)),
        ("microtask-starve", ["--microtask-starve", "150", "--every", "600"], 2,
         ("microtask_starvation", 150)),
    ]
    with tempfile.TemporaryDirectory(prefix="loopscope-20.") as tmp:
        for name, args, dur, exp in cases:
            def one(name=name, args=args, dur=dur, exp=exp):
                gt, tr = run_case(name, args, dur, tmp)
                if gt is not None:
                    compare(name, gt, tr, exp)
            measured(name, one)
        # The same figures read a second at a time, over 3 s (three whole intervals):
        # the intervals must add up.
        for name, args, dur, exp in cases:
            if name not in ("block80", "io", "tick-starve", "microtask-starve"):
                continue

            def summed(name=name, args=args):
                gt, trs = run_case(name + "-i1", args, 3, tmp, interval="1")
                if gt is not None:
                    compare_summed(name + "-i1", gt, trs)
            measured(name + "-i1", summed)
        # The agent takes the loop's 5-byte or 1-byte probe sites, whichever calibrate
        # measured cheaper here (refloop.md); the other kind gives the same figures.
        for name, args, dur, exp in cases:
            if name != "block20":
                continue

            def other_sites(name=name, args=args, dur=dur, exp=exp):
                for kind in ("nop1", "nop5"):
                    gt, tr = run_case("%s-%s" % (name, kind), args, dur, tmp, agent_env={"LOOPSCOPE_USDT": kind})
                    if gt is not None:
                        compare("%s (LOOPSCOPE_USDT=%s)" % (name, kind), gt, tr, exp)
            measured(name + "-sites", other_sites)
    return done()


if __name__ == "__main__":
    sys.exit(main())
