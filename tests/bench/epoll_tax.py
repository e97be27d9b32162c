#!/usr/bin/env python3
"""epoll_tax.py: what timing epoll costs a Node HTTP server, by mechanism.

    sudo python3 tests/bench/epoll_tax.py [ROUNDS]      (default 15; ~15 s per round)

tests/bench/node/server.js pinned to CPU 0 is warmed with 20 s of load, then each
round runs `wrk -t1 -c32 -d3s` (CPU 1) once per configuration, the order rotated by one
each round (so no configuration always runs first, or always after the same one):
  none          no agent
  light         `loopscope stat --probes light` (epoll by two uprobes in uv__io_poll)
  light-tp      the same with LOOPSCOPE_EPOLL_TRACEPOINTS=1 (epoll syscall tracepoints)
  tp-unused     `perf stat -e syscalls:sys_{enter,exit}_getppid`: tracepoints on a
                syscall the server never makes, i.e. only the host-wide syscall tax
Prints each run, then per configuration the median req/s and server CPU per request
and the medians of the per-round ratios against `none` (paired: drift cancels).
Everything started here is stopped by PID; load goes to 127.0.0.1 only.
"""
import os, re, signal, statistics, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOOPSCOPE = os.environ.get("LOOPSCOPE", os.path.join(ROOT, "build", "loopscope"))


def cpu_s(pid):
    t = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            t += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except OSError:
            pass
    return t / 1e9


def wrk(port, secs):
    o = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{secs}s", f"http://127.0.0.1:{port}/"],
                       capture_output=True, text=True, timeout=secs + 30).stdout
    m, n = re.search(r"Requests/sec:\s+([\d.]+)", o), re.search(r"(\d+) requests in", o)
    if not m or not n:
        sys.exit(f"epoll_tax.py: wrk failed: {o.strip()[:200]}")
    return float(m.group(1)), int(n.group(1))


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    if os.geteuid() != 0:
        sys.exit("epoll_tax.py: needs root (BPF, perf)")
    srv = subprocess.Popen(["taskset", "-c", "0", "node", os.path.join(ROOT, "tests/bench/node/server.js")],
                           env=dict(os.environ, PORT="0", EXIT_AFTER_S=str(60 + rounds * 20)),
                           stdout=subprocess.PIPE, text=True)
    try:
        _, port, pid = srv.stdout.readline().split()[:3]
        stat = [LOOPSCOPE, "stat", "-p", pid, "-i", "60", "--probes", "light"]
        configs = {
            "none": (None, None),
            "light": (stat, None),
            "light-tp": (stat, {"LOOPSCOPE_EPOLL_TRACEPOINTS": "1"}),
            "tp-unused": (["perf", "stat", "-e", "syscalls:sys_enter_getppid,syscalls:sys_exit_getppid",
                           "-p", pid], None),
        }
        wrk(port, 20)
        res = {c: [] for c in configs}
        for r in range(rounds):
            names = list(configs)
            for c in names[r % len(names):] + names[:r % len(names)]:
                cmd, extra = configs[c]
                ag = None
                if cmd:
                    ag = subprocess.Popen(["taskset", "-c", "1"] + cmd, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=dict(os.environ, **(extra or {})))
                    time.sleep(1.5)
                c0 = cpu_s(pid)
                rps, n = wrk(port, 3)
                us = (cpu_s(pid) - c0) / n * 1e6
                if ag:
                    ag.send_signal(signal.SIGINT)
                    ag.wait(timeout=30)
                res[c].append((rps, us))
                print(f"round {r} {c:10s} {rps:9.0f} req/s {us:6.2f} us/req", flush=True)
                time.sleep(0.3)
    finally:
        srv.terminate()
        srv.wait()
    base = res["none"]
    print(f"\n{'config':10s} {'req/s':>9s} {'vs none':>8s} {'us/req':>7s} {'vs none':>8s}   ({rounds} rounds)")
    for c, v in res.items():
        rr = statistics.median(x[0] / y[0] for x, y in zip(v, base))   # round r with round r
        cr = statistics.median(x[1] / y[1] for x, y in zip(v, base))
        print(f"{c:10s} {statistics.median(x[0] for x in v):9.0f} {rr:8.4f} "
              f"{statistics.median(x[1] for x in v):7.2f} {cr:8.4f}")


if __name__ == "__main__":
    main()
