#!/usr/bin/env python3
# timeout: 60
"""loopdemo --wait-attach starts neither workload nor accounting until the
loopscope:poll_start semaphore is raised. A tracer raises it through the kernel's
uprobe reference counter; here the test raises it itself by writing the semaphore
in /proc/PID/mem (root), so this runs without BPF."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import BUILD, check, done  # noqa: E402

DEMO = os.path.join(BUILD, "asan", "loopdemo")


def semaphore_vaddr(path, probe):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Name: %s\n\s+Location: \S+, Base: \S+, Semaphore: (0x[0-9a-f]+)" % probe, out)
    return int(m.group(1), 16)


def load_base(pid, exe):
    real = os.path.realpath(exe)
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == real and int(parts[2], 16) == 0:
                return int(parts[0].split("-")[0], 16)
    raise RuntimeError("no mapping of %s" % real)


def catches(pid, sig):
    """Whether process pid takes sig itself: a handler installed (SigCgt in
    /proc/PID/status) or, as loopdemo does, sig blocked for its signalfd (SigBlk of its
    main thread, blocked before any other thread exists)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("SigCgt:", "SigBlk:")) and int(line.split()[1], 16) >> (sig - 1) & 1:
                    return True
    except OSError:
        pass
    return False


def poke_u16(pid, addr, value):
    with open("/proc/%d/mem" % pid, "r+b", buffering=0) as f:
        f.seek(addr)
        f.write(value.to_bytes(2, "little"))


def main():
    if os.geteuid() != 0:
        print("SKIP needs root to write /proc/PID/mem")
        return 77
    tmp = tempfile.mkdtemp(prefix="loopscope-test.")
    stats = os.path.join(tmp, "s.json")
    # SCHED_FIFO (chrt execs the demo): its 30 ms blocks and 1 s workload are checked
    # against their length, which a neighbour must not stretch.
    p = subprocess.Popen(["chrt", "-f", "10", DEMO, "--wait-attach", "--block", "30", "--every", "100",
                          "--duration", "1", "--stats-json", stats])
    try:
        # SIGUSR1 before the demo handles it would end it: wait until it catches it
        # (a loaded machine starts processes slowly)
        for _ in range(200):
            if catches(p.pid, signal.SIGUSR1):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        p.send_signal(signal.SIGUSR1)
        for _ in range(400):
            if os.path.exists(stats):
                break
            time.sleep(0.05)
        before = json.load(open(stats))
        check("before attach: no accounting (iterations %d, window %.3f s)"
              % (before["iterations"], before["interval_s"]),
              before["iterations"] == 0 and before["interval_s"] == 0)
        check("before attach: still running (workload waits)", p.poll() is None)
        t0 = time.monotonic()
        poke_u16(p.pid, load_base(p.pid, DEMO) + semaphore_vaddr(DEMO, "poll_start"), 1)
        rc = p.wait(timeout=20)
        elapsed = time.monotonic() - t0
        check("exits 0 after the 1 s workload (rc %d)" % rc, rc == 0)
        check("workload started at attach: exit %.2f s after it" % elapsed, 0.9 <= elapsed <= 6)
        after = json.load(open(stats))
        check("ground truth covers the workload: %d timer callbacks, window %.3f s"
              % (after["timer_lateness"]["count"], after["interval_s"]),
              after["timer_lateness"]["count"] >= 9 and 0.95 <= after["interval_s"] <= 1.5)
        check("30 ms blocks seen: timers max %.4f s" % after["phases"]["timers"]["max_s"],
              0.030 <= after["phases"]["timers"]["max_s"] <= 0.06)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    return done()


if __name__ == "__main__":
    sys.exit(main())
