#!/usr/bin/env python3
# timeout: 180
"""48-serve-privs: least privilege once attached, read from /proc/PID/status.

1. serve -p A -p B (no --exe): CapEff and CapPrm 0, NoNewPrivs 1 once it listens; the
   maps are still read (A's iterations grow), and when B is killed serve detaches it
   (the BPF programs serve holds go down, B target_up 0): detaching works after the
   drop. After SIGTERM no program serve held is still loaded.
2. serve --exe LOOPDEMO --user nobody: Uid 65534, CapEff = CapPrm = exactly the attach
   set (CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_SYS_ADMIN), NoNewPrivs 1, and a loop
   started afterwards is still attached.
3. stat -p A and top -p A (in tmux): CapEff and CapPrm 0 while they run; stat
   --follow-exec keeps exactly the attach set, with NoNewPrivs 1.
"""
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, LOOPDEMO, Serve, tap, done, skip  # noqa: E402

CAP_SYS_PTRACE, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 19, 21, 38, 39
ATTACH_SET = (1 << CAP_SYS_PTRACE) | (1 << CAP_SYS_ADMIN) | (1 << CAP_PERFMON) | (1 << CAP_BPF)


def status(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Uid"):
        m = re.search(r"^%s:\s+(.*)$" % key, text, re.M)
        out[key] = m.group(1).split()[0] if m else None
    return out


def wait_status(pid, pred, secs=20):
    t0 = time.monotonic()
    st = status(pid)
    while time.monotonic() - t0 < secs and not pred(st):
        time.sleep(0.1)
        st = status(pid)
    return st


def prog_ids(pid):
    ids = set()
    d = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(d) if os.path.isdir(d) else []:
        try:
            with open(os.path.join(d, fd)) as f:
                m = re.search(r"^prog_id:\s+(\d+)", f.read(), re.M)
                if m:
                    ids.add(int(m.group(1)))
        except OSError:
            pass
    return ids


def loaded_prog_ids():
    r = subprocess.run(["bpftool", "prog", "list"], capture_output=True, text=True)
    return {int(m.group(1)) for m in re.finditer(r"^(\d+):", r.stdout, re.M)}


def metric(port, name, pid):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^%s\{pid="%d"[^}]*\} (\S+)$' % (name, pid), text, re.M)
    return float(m.group(1)) if m else None


def main():
    if os.geteuid() != 0:
        skip("needs root")
    for tool in ("bpftool", "tmux"):
        if not shutil.which(tool):
            skip("needs %s" % tool)
    print("# before: this test's own status %s" % status(os.getpid()))
    a = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # 1. serve -p A -p B
        p = Serve(["-p", str(a.pid), "-p", str(b.pid), "--interval", "0.5"])
        port, lines = p.port, p.lines
        tap(port is not None, "serve -p A -p B listens (%s)" % lines[-1:])
        st = wait_status(p.pid, lambda s: s.get("CapEff") == "0000000000000000")
        print("# serve -p A -p B after attach: %s" % st)
        tap(st.get("CapEff") == "0000000000000000" and st.get("CapPrm") == "0000000000000000" and
            st.get("NoNewPrivs") == "1", "serve without --exe: CapEff %s CapPrm %s NoNewPrivs %s"
            % (st.get("CapEff"), st.get("CapPrm"), st.get("NoNewPrivs")))
        i0 = metric(port, "loopscope_iterations_total", a.pid)
        t0 = time.monotonic()       # until a later snapshot (--interval 0.5) is served, up to 10 s
        while True:
            i1 = metric(port, "loopscope_iterations_total", a.pid)
            if i0 is None or i1 is None or i1 > i0 or time.monotonic() - t0 > 10:
                break
            time.sleep(0.1)
        tap(i0 is not None and i1 is not None and i1 > i0, "maps still read after the drop: A's iterations "
            "%s -> %s" % (i0, i1))
        held0 = prog_ids(p.pid)
        b.kill()
        b.wait()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20 and not (len(prog_ids(p.pid)) < len(held0) and
                                                 metric(port, "loopscope_target_up", b.pid) == 0):
            time.sleep(0.2)
        held1 = prog_ids(p.pid)
        tap(0 < len(held1) < len(held0) and metric(port, "loopscope_target_up", b.pid) == 0,
            "B killed after the drop: detached (programs held %d -> %d), target_up 0" % (len(held0), len(held1)))
        rc = p.stop()
        left = held0 & loaded_prog_ids()
        tap(rc == 0 and not left, "serve exits 0 (rc %d) and none of its %d programs stays loaded (%s)"
            % (rc, len(held0), sorted(left)[:5]))

        # 2. serve --exe --user nobody
        p = Serve(["--exe", os.path.abspath(LOOPDEMO), "--user", "nobody", "--interval", "0.5"])
        port, lines = p.port, p.lines
        st = wait_status(p.pid, lambda s: s.get("Uid") == "65534")
        print("# serve --exe --user nobody after attach: %s" % st)
        want = "%016x" % ATTACH_SET
        tap(st.get("Uid") == "65534" and st.get("CapEff") == want and st.get("CapPrm") == want and
            st.get("CapBnd") == want and st.get("NoNewPrivs") == "1", "serve --exe --user nobody: Uid %s CapEff %s CapPrm %s CapBnd %s (want %s) "
            "NoNewPrivs %s" % (st.get("Uid"), st.get("CapEff"), st.get("CapPrm"), st.get("CapBnd"), want,
                               st.get("NoNewPrivs")))
        c = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15 and metric(port, "loopscope_target_up", c.pid) != 1:
            time.sleep(0.2)
        tap(metric(port, "loopscope_target_up", c.pid) == 1, "a loop started after the drop is attached (%s)"
            % [ln for ln in lines if str(c.pid) in ln])
        c.kill()
        c.wait()
        tap(p.stop() == 0, "serve --user nobody exits 0")

        # 3. stat and top
        s = subprocess.Popen([LOOPSCOPE, "stat", "-p", str(a.pid), "-d", "6"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        st = wait_status(s.pid, lambda x: x.get("CapEff") == "0000000000000000")
        print("# stat after attach: %s" % st)
        tap(st.get("CapEff") == "0000000000000000" and st.get("CapPrm") == "0000000000000000",
            "stat once attached: CapEff %s CapPrm %s" % (st.get("CapEff"), st.get("CapPrm")))
        s.wait(30)
        tap(s.returncode == 0, "stat exits 0 (%s)" % s.returncode)
        s = subprocess.Popen([LOOPSCOPE, "stat", "-p", str(a.pid), "-d", "6", "--follow-exec"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        st = wait_status(s.pid, lambda x: x.get("NoNewPrivs") == "1")
        print("# stat --follow-exec after attach: %s" % st)
        want = "%016x" % ATTACH_SET
        tap(st.get("CapEff") == want and st.get("CapPrm") == want and st.get("NoNewPrivs") == "1",
            "stat --follow-exec once attached: CapEff %s CapPrm %s (want %s) NoNewPrivs %s"
            % (st.get("CapEff"), st.get("CapPrm"), want, st.get("NoNewPrivs")))
        s.wait(30)
        tap(s.returncode == 0, "stat --follow-exec exits 0 (%s)" % s.returncode)
        sess = "ls48-%d" % os.getpid()
        subprocess.run(["tmux", "new-session", "-d", "-s", sess, "-x", "120", "-y", "40",
                        "%s top -p %d" % (LOOPSCOPE, a.pid)], check=True)
        try:
            pane = int(subprocess.run(["tmux", "list-panes", "-t", sess, "-F", "#{pane_pid}"],
                                      capture_output=True, text=True).stdout.split()[0])
            st = wait_status(pane, lambda x: x.get("CapEff") == "0000000000000000")
            print("# top after attach: %s" % st)
            tap(st.get("CapEff") == "0000000000000000" and st.get("CapPrm") == "0000000000000000",
                "top once attached: CapEff %s CapPrm %s" % (st.get("CapEff"), st.get("CapPrm")))
        finally:
            subprocess.run(["tmux", "kill-session", "-t", sess])
    finally:
        for q in (a, b):
            q.kill()
            q.wait()
    return done()


if __name__ == "__main__":
    sys.exit(main())
