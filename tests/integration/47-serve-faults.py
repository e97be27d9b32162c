#!/usr/bin/env python3
# timeout: 600
"""47-serve-faults: a fault costs only the target it hits.

1. Kill sweep (the optimized build, for time): serve -p A -p B, with B SIGKILLed after a delay stepped across the
   measured attach window (50 points, from before serve starts attaching to after it
   listens). Every time: serve keeps running and listening, A stays target_up 1, B is
   listed with target_up 0, exactly one line on stderr names B, and serve exits 0 on
   SIGTERM. B is reaped only after each round, so a kill before the attach leaves a
   zombie, which must be reported as such.
2. The same for stat -p A -p B -d 1 at 10 points: exit 0, A's report printed (stat is
   stopped with SIGINT once it traces and has said B's line, else by -d 1).
3. exec (tests/tools/exec_after.c, when the test says so, after serve listens): one traced loop
   execs /bin/sleep, another execs the loop again; within a few intervals the first is target_up 0 (one line: no longer traced), the second is
   attached to its new program (one line), a third is untouched; serve has --follow-exec.
   stat -p Y, Y exec'ing the loop again: without --follow-exec one line saying it is no
   longer traced and naming the flag; with it one line "attached to the new program"
   and reports that go on.
4. Messages: PID 1 as root is not told to run as root; a zombie is not called a
   kernel thread.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, LOOPDEMO, Serve, tap, done  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


# The sweep starts serve 50 times: the optimized build keeps it within the test's
# time (ASan's start-up alone would triple it); every other part runs under ASan.
RELEASE = os.environ.get("LOOPSCOPE_RELEASE") or os.path.join(os.path.dirname(LOOPSCOPE), "..", "loopscope")


def start_serve(args, binary=LOOPSCOPE):
    s = Serve(args, binary, wait=False)
    return s, s, s.lines, s.ready


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode()


def up_of(text, pid):
    m = re.search(r'^loopscope_target_up\{pid="%d"[^}]*\} (\S+)$' % pid, text, re.M)
    return m.group(1) if m else None


def stop(s):
    return s.stop()


def sweep(a):
    # The attach window, measured: serve start -> listening (it attaches before it listens).
    windows = []
    for _ in range(3):
        b = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        p, port, lines, ready = start_serve(["-p", str(a.pid), "-p", str(b.pid)], RELEASE)
        ready.wait(30)
        windows.append(time.monotonic() - t0)
        stop(p)
        b.kill()
        b.wait()
    window = sorted(windows)[1]
    tap(window > 0, "attach window measured: %.3f s (median of 3)" % window)
    bad = []
    n = 50
    for i in range(n):
        delay = window * 1.2 * i / (n - 1)
        b = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p, port, lines, ready = start_serve(["-p", str(a.pid), "-p", str(b.pid)], RELEASE)
        time.sleep(delay)
        b.kill()
        ready.wait(30)
        why = None
        if port.port is None:
            why = "serve did not listen: %s" % lines[-3:]
        else:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                text = metrics(port.port)
                if up_of(text, a.pid) == "1" and up_of(text, b.pid) == "0":
                    break
                time.sleep(0.05)
            ua, ub = up_of(text, a.pid), up_of(text, b.pid)
            about_b = [ln for ln in lines if str(b.pid) in ln and "listening" not in ln]
            if ua != "1" or ub != "0":
                why = "target_up A %s B %s" % (ua, ub)
            elif len(about_b) != 1:
                why = "lines about B: %s" % about_b
        rc = stop(p)
        b.wait()
        if rc != 0 and not why:
            why = "exit status %d (%s)" % (rc, lines[-2:])
        if why:
            bad.append("%.3f s: %s" % (delay, why))
        else:
            kinds = [ln for ln in lines if str(b.pid) in ln]
            sweep.kinds.add(re.sub(r"\d+", "N", kinds[0].split(": ", 1)[1]) if kinds else "?")
    tap(not bad, "kill sweep, %d points over 0-%.2f s: A traced on, B one line + target_up 0, exit 0 "
        "(failures: %s)" % (n, window * 1.2, bad[:3]))
    print("# kill sweep: B's lines seen: %s" % sorted(sweep.kinds))


sweep.kinds = set()


def stat_sweep(a):
    import signal
    import threading
    bad = []
    for i in range(10):
        b = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p = subprocess.Popen([LOOPSCOPE, "stat", "-p", str(a.pid), "-p", str(b.pid), "-d", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        errs = []
        seen = threading.Event()

        def pump(p=p, errs=errs, seen=seen, bpid=str(b.pid)):
            for line in p.stderr:
                errs.append(line)
                if any("tracing" in ln for ln in errs) and any(bpid in ln for ln in errs):
                    seen.set()
            seen.set()
        th = threading.Thread(target=pump, daemon=True)
        th.start()
        time.sleep(0.05 * i)
        b.kill()
        # What the checks need: stat traces and has said B's line (else -d 1 ends it).
        if seen.wait(60) and p.poll() is None:
            p.send_signal(signal.SIGINT)
        out = p.stdout.read()
        p.wait(60)
        th.join(10)
        err = "".join(errs)
        b.wait()
        lines_b = [ln for ln in err.splitlines() if str(b.pid) in ln]
        if p.returncode != 0 or ("pid %d" % a.pid) not in out or len(lines_b) != 1:
            bad.append("%d ms: rc %d, A reported %s, B lines %s" % (50 * i, p.returncode,
                                                                    ("pid %d" % a.pid) in out, lines_b))
    tap(not bad, "stat -p A -p B with B killed at 0-450 ms: exit 0, A reported, one line for B (%s)" % bad[:3])


def exec_test(tmp):
    so = os.path.join(tmp, "exec_after.so")
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", so, os.path.join(HERE, "..", "tools", "exec_after.c"),
                        "-lpthread"], capture_output=True, text=True)
    tap(r.returncode == 0, "build the exec helper (%s)" % r.stderr[-200:])
    when = os.path.join(tmp, "exec-now")
    env1 = dict(os.environ, LD_PRELOAD=so, LS_EXEC_WHEN=when, LS_EXEC_PROG="/bin/sleep", LS_EXEC_ARG="60")
    env2 = dict(os.environ, LD_PRELOAD=so, LS_EXEC_WHEN=when, LS_EXEC_PROG=os.path.abspath(LOOPDEMO),
                LS_EXEC_ARG="--io")
    x = subprocess.Popen([LOOPDEMO], env=env1, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    y = subprocess.Popen([LOOPDEMO], env=env2, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    z = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # --follow-exec keeps the capabilities attaching needs (without it serve drops them
    # all and an exec'd target cannot be attached again: it says so, stat_exec_test).
    p, port, lines, ready = start_serve(["-p", str(x.pid), "-p", str(y.pid), "-p", str(z.pid),
                                         "--follow-exec"])
    try:
        ready.wait(30)
        tap(port.port is not None, "serve -p X -p Y -p Z listens")
        if port.port is None:
            return
        time.sleep(0.5)
        open(when, "w").close()             # both exec now, after the attach
        t0 = time.monotonic()
        ok = False
        while time.monotonic() - t0 < 15:
            text = metrics(port.port)
            lx = [ln for ln in lines if str(x.pid) in ln and "exec'd" in ln]
            ly = [ln for ln in lines if str(y.pid) in ln and "exec'd" in ln]
            if up_of(text, x.pid) == "0" and lx and ly and up_of(text, y.pid) == "1":
                ok = True
                break
            time.sleep(0.1)
        tap(ok, "exec into /bin/sleep: target_up 0 and one line (%s)" % lx)
        tap(len(ly) == 1 and "attached to the new program" in ly[0] and up_of(text, y.pid) == "1" and
            re.search(r'target_info\{pid="%d"[^}]*state="attached"' % y.pid, text) is not None,
            "exec into the loop again: re-attached, target_up 1 (%s)" % ly)
        tap(up_of(text, z.pid) == "1", "the third target is untouched (target_up %s)" % up_of(text, z.pid))
        tap(len([ln for ln in lines if str(x.pid) in ln]) == 1, "one line for the exec'd target: %s" %
            [ln for ln in lines if str(x.pid) in ln])
    finally:
        rc = stop(p)
        tap(rc == 0, "serve exits 0 (rc %d)" % rc)
        for q in (x, y, z):
            q.kill()
            q.wait()


def stat_exec_run(tmp, follow):
    """stat -p Y [--follow-exec] -i 0.5 --json, Y exec'ing the loop again once stat has
    reported, stopped 4 s later: (stat's stderr lines about Y, its exit status, the
    reports of Y's pid printed after the exec)."""
    so = os.path.join(tmp, "exec_after.so")
    when = os.path.join(tmp, "stat-exec-now-%d" % follow)
    env = dict(os.environ, LD_PRELOAD=so, LS_EXEC_WHEN=when, LS_EXEC_PROG=os.path.abspath(LOOPDEMO),
               LS_EXEC_ARG="--io")
    y = subprocess.Popen([LOOPDEMO], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = os.path.join(tmp, "stat-exec-%d.json" % follow)
    args = [LOOPSCOPE, "stat", "-p", str(y.pid), "-i", "0.5", "-d", "40", "--json"]

    def reports():
        with open(out) as f:
            return [json.loads(ln) for ln in f if ln.startswith("{") and ln.endswith("}\n")]
    with open(out, "w") as f:
        s = subprocess.Popen(args + (["--follow-exec"] if follow else []), stdout=f,
                             stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30 and not reports():
            time.sleep(0.1)
        n0 = len(reports())
        open(when, "w").close()
        time.sleep(4)
    finally:
        s.send_signal(2)
        err = s.communicate(timeout=60)[1]
        y.kill()
        y.wait()
    after = [r for r in reports()[n0:] if r.get("pid") == y.pid]
    return [ln for ln in err.splitlines() if str(y.pid) in ln], s.returncode, after


def stat_exec_test(tmp):
    lines, rc, after = stat_exec_run(tmp, 0)
    tap(rc == 0 and len(lines) == 1 and "no longer traced" in lines[0] and "--follow-exec" in lines[0],
        "stat without --follow-exec: exit 0, one line that says so and names --follow-exec (rc %s, %s)"
        % (rc, lines))
    # (the interval the exec fell in still has the old program's iterations)
    busy = [r for r in after if r.get("iterations", 0) > 0]
    tap(len(busy) <= 2, "stat without --follow-exec: no iterations reported once the old program is "
        "gone (%d of %d reports with iterations)" % (len(busy), len(after)))
    lines, rc, after = stat_exec_run(tmp, 1)
    new = [ln for ln in lines if "attached to the new program" in ln]
    tap(rc == 0 and len(lines) == 1 and len(new) == 1,
        "stat --follow-exec: exit 0, one line: attached to the new program (rc %s, %s)" % (rc, lines))
    busy = [r for r in after if r.get("iterations", 0) > 0]
    tap(len(busy) >= 4, "stat --follow-exec keeps reporting the pid after its exec (%d of %d reports "
        "with iterations)" % (len(busy), len(after)))


def messages():
    r = subprocess.run([LOOPSCOPE, "stat", "-p", "1", "-d", "1"], capture_output=True, text=True, timeout=60)
    if os.geteuid() == 0:
        tap("run loopscope as root" not in r.stderr, "PID 1 as root: no 'run as root' (%s)" % r.stderr.strip()[:160])
    z = subprocess.Popen(["sleep", "0.05"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:     # until it is a zombie
        with open("/proc/%d/stat" % z.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    r = subprocess.run([LOOPSCOPE, "stat", "-p", str(z.pid), "-d", "1"], capture_output=True, text=True, timeout=60)
    z.wait()
    tap("kernel thread" not in r.stderr and "zombie" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
        "a zombie is called one (%s)" % r.stderr.strip())


def main():
    tmp = tempfile.mkdtemp(prefix="loopscope-47-")
    a = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        messages()
        exec_test(tmp)
        stat_exec_test(tmp)
        stat_sweep(a)
        sweep(a)
    finally:
        a.kill()
        a.wait()
    return done()


if __name__ == "__main__":
    sys.exit(main())
