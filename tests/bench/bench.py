#!/usr/bin/env python3
"""bench.py: every loopscope benchmark, one report (`make bench` runs it via run.sh).

    tests/bench/bench.py [--quick] [--only SECTION,...] [--build DIR] [--budget S]

Writes build/bench/report.md and build/bench/report.json (the same numbers). Sections:

  overhead   ns added per loop iteration by each probe tier (reference loop, Node)
  http       Node HTTP server under wrk: req/s and p99, no agent / tiers / prom-client / clinic
  http_ab    the tiers' cost again, on two servers loaded at once (one traced, one not)
  agent      agent CPU and RSS at 1k/10k/100k iterations/s; attach time
  accuracy   loopscope's numbers vs the reference loop's ground truth and Node's perf_hooks
  libuv      reference loop vs libuv per iteration (the loop engineer's C program)
  serve      `loopscope serve` scrape latency and agent CPU with 1/10/50 targets

Method. These VMs are noisy (2 vCPUs shared with whatever else runs), so every
comparison runs its sides interleaved in one run (A B A B ...), each side's figure is
the median over the repetitions, and the ratio of medians is what the report states;
absolute times are context only. The measured process is pinned to CPU 0, the load
generator and the agent to CPU 1. A part that does not exist yet, or that fails, gives
a row "not measured: <why>" instead of a number.

Processes: everything this script starts is remembered by PID and ended by PID (never
by name); load goes to 127.0.0.1 only, every run is bounded in time. Python stdlib only.
"""

import argparse
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from lib import Semaphore  # noqa: E402  (tests/lib.py: the USDT semaphore reader the tests share)
NODE_DIR = os.path.join(ROOT, "tests", "bench", "node")
CPU_TARGET = 0          # the measured process
CPU_HELPER = 1          # load generator, agent, scraper

# ---------------------------------------------------------------- processes

_started = []           # every Popen this script made, ended at exit by PID


def _on_cpu(cpu):
    if cpu is None or os.cpu_count() < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def start(cmd, cpu=None, log=None, env=None, cwd=None, stdout=None):
    """Start cmd (a list) in the background; stdout to `stdout` (PIPE) or the log file."""
    out = stdout
    if out is None:
        out = open(log, "w") if log else subprocess.DEVNULL
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if log or stdout else subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, preexec_fn=_on_cpu(cpu),
                         env=dict(os.environ, **(env or {})), cwd=cwd)
    if out not in (subprocess.DEVNULL, subprocess.PIPE) and out is not stdout:
        out.close()
    _started.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=5.0):
    """End one process we started: sig, then SIGKILL after timeout. Returns its status."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


@atexit.register
def _stop_all():
    for p in _started:
        if p.poll() is None:
            stop(p, timeout=3.0)


def run(cmd, timeout, cpu=None, cwd=None, env=None):
    """Run to completion (bounded); returns (rc, output). rc None on timeout."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           preexec_fn=_on_cpu(cpu), timeout=timeout, cwd=cwd,
                           env=dict(os.environ, **(env or {})))
        return r.returncode, r.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace")
    except OSError as e:
        return 127, str(e)


def cpu_seconds(pid):
    """utime+stime of a process from /proc/PID/stat, in seconds (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return None


def task_cpu_seconds(pid):
    """CPU time of every thread of pid from /proc/PID/task/*/schedstat (ns resolution,
    where /proc/PID/stat counts 10 ms ticks); None if the process is gone."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return None
    return total / 1e9


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def wait_line(p, pattern, timeout):
    """Read p.stdout (a PIPE) until a line matches; returns the match or None."""
    end = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < end:
        line = p.stdout.readline()
        if not line:
            return None
        m = rx.search(line.decode(errors="replace"))
        if m:
            return m
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spread(xs):
    """Half the range over the median, as a fraction (None for fewer than 2 values)."""
    xs = [x for x in xs if x is not None]
    if len(xs) < 2 or not statistics.median(xs):
        return None
    return (max(xs) - min(xs)) / 2 / statistics.median(xs)


def spread_txt(xs):
    sp = spread(xs)
    return f"+/-{100 * sp:.1f}%" if sp is not None else "-"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def first_line(text, default=""):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:200]
    return default


# ---------------------------------------------------------------- the environment

def build_bench_bin(build, name):
    """BUILD/bench/bin/NAME (tests/bench/NAME.c), made by make if missing or stale (a run
    of some sections only, or bench.py run by hand, still has it); None if make fails."""
    path = os.path.join(build, "bench", "bin", name)
    rc, out = run(["make", "-s", "-C", ROOT, f"BUILD={build}", path], 300)
    if rc != 0:
        print(f"bench: make {path} failed: {first_line(out.strip().splitlines()[-1] if out.strip() else '')}",
              file=sys.stderr)
    return path if os.access(path, os.X_OK) else None


def calibration(loopscope, refresh):
    """(machine line, figures dict or None) from `loopscope calibrate`: the report's first
    line, so a reader sees which machine class produced every figure below it."""
    if not os.access(loopscope, os.X_OK):
        return f"machine: not calibrated: {loopscope} not built", None
    rc, out = run([loopscope, "calibrate"] + (["--refresh"] if refresh else []), 60)
    if rc != 0:
        return f"machine: not calibrated: {first_line(out.strip().splitlines()[-1] if out.strip() else '')}", None
    line = first_line(out)
    rc, js = run([loopscope, "calibrate", "--json"], 60)     # the cache just written
    try:
        return line, json.loads(js) if rc == 0 else None
    except ValueError:
        return line, None


class Env:
    """What exists in this tree right now; each missing piece is a reason string."""

    def __init__(self, build, out):
        self.build = build
        self.logs = os.path.join(out, "logs")
        self.loopscope = os.path.join(build, "loopscope")
        self.loopdemo = os.path.join(build, "loopdemo")
        self.node = shutil.which("node") or "/usr/bin/node"
        self.wrk = shutil.which("wrk")
        self.bench_bins = sorted(
            os.path.join(build, "bench", "bin", n) for n in
            (os.listdir(os.path.join(build, "bench", "bin")) if os.path.isdir(os.path.join(build, "bench", "bin")) else []))
        self.help = {}
        for cmd in ("stat", "serve"):
            rc, out = run([self.loopscope, cmd, "--help"], 10) if os.access(self.loopscope, os.X_OK) else (127, "")
            self.help[cmd] = out if rc == 0 else None
        rc, out = run([self.loopdemo, "--help"], 10) if os.access(self.loopdemo, os.X_OK) else (127, "")
        self.demo_help = out if rc == 0 else None
        self.root = os.geteuid() == 0
        self.refspin = build_bench_bin(build, "refspin")

    def why_no_stat(self):
        if not os.access(self.loopscope, os.X_OK):
            return f"{self.loopscope} not built"
        if self.help["stat"] is None:
            return "`loopscope stat` does not exist yet (issue 3)"
        if not self.root:
            return "needs root for BPF"
        return None

    def why_no_demo(self, *flags):
        if self.demo_help is None:
            return f"{self.loopdemo} not built (issue 2)"
        for fl in flags:
            if fl not in self.demo_help:
                return f"loopdemo has no {fl} option"
        return None

    def node_tiers(self):
        """Probe tiers `stat` offers for Node (from its --help), [] when none."""
        h = self.help.get("stat") or ""
        if "--probes" not in h:
            return []
        return [t for t in ("light", "phases", "counters") if t in h]

    def default_tier(self):
        """The Node tier stat uses without --probes, as its --help states it:
        "light (default)" or "default: light" in the --probes paragraph."""
        h = self.help.get("stat") or ""
        if "--probes" not in h:
            return None
        m = (re.search(r"\b(light|phases)\s*\(default\)", h)
             or re.search(r"default[:\s]+(light|phases)\b", h))
        return m.group(1) if m else None


# ---------------------------------------------------------------- agent handling

class Agent:
    """One `loopscope stat` (or serve) run in the background, pinned to the helper CPU."""

    def __init__(self, env, args, logname, extra_env=None, binary=None):
        self.env = env
        self.log = os.path.join(env.logs, logname)
        self.t0 = time.monotonic()
        self.p = start([binary or env.loopscope] + args, cpu=CPU_HELPER, log=self.log, env=extra_env)
        self.attach_s = None
        self.args_tier = args[args.index("--probes") + 1] if "--probes" in args[:-1] else None

    def output(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def error(self):
        """The agent's own one-line error when it exited, else None."""
        if self.p.poll() is None:
            return None
        return f"loopscope exited {self.p.returncode}: " + first_line(self.output(), "(no output)")

    def bpf_links(self):
        """Number of BPF link fds the agent holds (attached probes)."""
        n = 0
        try:
            for fd in os.listdir(f"/proc/{self.p.pid}/fd"):
                try:
                    if os.readlink(f"/proc/{self.p.pid}/fd/{fd}") == "anon_inode:bpf_link":
                        n += 1
                except OSError:
                    pass
        except OSError:
            pass
        return n

    def wait_attached(self, timeout=15.0, sem=None):
        """Wait until the probes are live. With sem (a Semaphore in the target) that is
        the moment the kernel raised it; otherwise until the agent's BPF link count has
        been non-zero and unchanged for 0.3 s (all attach calls done). Returns None on
        success (self.attach_s set) or the reason it failed."""
        end = self.t0 + timeout
        last, since = -1, None
        while time.monotonic() < end:
            err = self.error()
            if err:
                return err
            if sem is not None:
                if sem.value() > 0:
                    self.attach_s = time.monotonic() - self.t0
                    return None
                time.sleep(0.0005)
                continue
            n = self.bpf_links()
            now = time.monotonic()
            if n == 0 and self.args_tier == "counters" and "tracing " in self.output():
                self.attach_s = now - self.t0     # no probe to wait for: attached once it says so
                return None
            if n != last:
                last, since = n, now
            elif n > 0 and now - since >= 0.3:
                self.attach_s = since - self.t0
                return None
            time.sleep(0.01)
        self.stop()
        return f"agent did not attach within {timeout:.0f} s"

    def stop(self):
        # generous: a SIGKILL while uprobes are being unregistered leaks them in the kernel
        stop(self.p, signal.SIGINT, timeout=30.0)
        return self.p.returncode


# ---------------------------------------------------------------- report

class Report:
    def __init__(self):
        self.sections = []
        self.goals = []

    def section(self, key, title, columns, method, formats=None):
        """formats: {column: "pct" | "3f" | ...} for the Markdown only (JSON keeps numbers)."""
        s = {"key": key, "title": title, "columns": columns, "method": method, "rows": [], "notes": [],
             "formats": formats or {}}
        self.sections.append(s)
        return s

    @staticmethod
    def row(sec, *cells, **extra):
        r = dict(zip(sec["columns"], cells))
        r.update(extra)
        sec["rows"].append(r)
        return r

    @classmethod
    def from_json(cls, j):
        r = cls()
        r.sections, r.goals = j["sections"], j["goals"]
        return r

    def goal(self, text, value, met, note=""):
        self.goals.append({"goal": text, "value": value, "met": met, "note": note})


def fmt(v, nd=2, how=None):
    if v is None:
        return "-"
    if how == "pct" and isinstance(v, (int, float)):
        return "inf" if v == float("inf") else f"{100 * v:.2f}%"
    if how == "chg" and isinstance(v, (int, float)):
        return f"{100 * v:+.2f}%"
    if how == "3f" and isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}"
    return str(v)


def render_md(rep, meta):
    out = [meta.get("machine", "machine: not calibrated"), "", "# loopscope benchmark report", ""]
    out.append(f"Command: `{meta['command']}`  ")
    out.append(f"Date: {meta['date']} · commit {meta['commit']} · {meta['host']}  ")
    out.append(f"Took {meta['elapsed_s']:.0f} s{' (--quick: short runs, not for quoting)' if meta['quick'] else ''}; "
               f"1-minute load average {meta.get('loadavg_start', 0):.2f} at the start, "
               f"{meta.get('loadavg_end', 0):.2f} at the end (2 CPUs; anything else running adds noise).")
    if meta.get("machine"):
        out.append(f"Calibration ({'`loopscope calibrate`'}): {meta['machine']}.")
    out.append("")
    out.append("## Goals")
    out.append("")
    out.append("| goal | measured | met |")
    out.append("| --- | --- | --- |")
    for g in rep.goals:
        met = {True: "met", False: "NOT met", None: "not measured"}[g["met"]]
        note = f" ({g['note']})" if g["note"] else ""
        out.append(f"| {g['goal']} | {g['value']}{note} | {met} |")
    out.append("")
    for s in rep.sections:
        out.append(f"## {s['title']}")
        out.append("")
        out.append(s["method"])
        out.append("")
        out.append("| " + " | ".join(s["columns"]) + " |")
        out.append("|" + " --- |" * len(s["columns"]))
        for r in s["rows"]:
            out.append("| " + " | ".join(fmt(r.get(c), how=s["formats"].get(c)) for c in s["columns"]) + " |")
        for n in s["notes"]:
            out.append("")
            out.append(n)
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- sections

def spin_windows(p, sink, stop_evt):
    """Reader thread: 'win ITERS WALL_NS CPU_NS' lines from spin targets ->
    (monotonic, iters, wall ns, loop-thread CPU ns)."""
    for raw in iter(p.stdout.readline, b""):
        parts = raw.split()
        if len(parts) == 4 and parts[0] == b"win":
            sink.append((time.monotonic(), int(parts[1]), int(parts[2]), int(parts[3])))
        if stop_evt.is_set():
            break


def ns_per_iter(wins, t_from, t_to, clock="cpu"):
    """Median over the windows wholly inside [t_from, t_to] of ns per iteration, in the
    loop thread's CPU time (clock="cpu": another process taking the CPU does not count)
    or in wall-clock time ("wall")."""
    k = 3 if clock == "cpu" else 2
    sel = [w[k] / w[1] for w in wins if t_from <= w[0] - w[2] / 1e9 and w[0] <= t_to and w[1]]
    return median(sel) if sel else None


def measure_tiers(env, cfg, target_cmd, tiers, label, attach_args, settle=0.3):
    """Per-iteration cost of a spinning target, untraced vs each tier, interleaved.

    target_cmd prints 'win ITERS NS' lines. tiers: [(name, extra stat args[, extra
    environment])]. Returns
    {tier: [ns/iter per repetition]} with 'none' included, and {tier: reason} failures."""
    p = start(target_cmd, cpu=CPU_TARGET, stdout=subprocess.PIPE)
    wins, evt = [], threading.Event()
    th = threading.Thread(target=spin_windows, args=(p, wins, evt), daemon=True)
    th.start()
    res = {"none": []}
    pairs = {}          # tier -> [(untraced, traced)] of the same repetition
    wall_pairs = {}     # the same in wall-clock time
    failed = {}
    time.sleep(cfg.warmup)
    meas = cfg.measure
    for rep in range(cfg.reps):
        t = time.monotonic()
        time.sleep(meas)
        res["none"].append(ns_per_iter(wins, t, time.monotonic()))
        wall_none = ns_per_iter(wins, t, time.monotonic(), "wall")
        for name, extra, *agent_env in tiers:
            if name in failed:
                continue
            ag = Agent(env, ["stat", "-p", str(p.pid), "-i", "60"] + extra,
                       f"{label}-{name}-{rep}.log".replace(" ", "_"), extra_env=agent_env[0] if agent_env else None)
            kw = attach_args(p)
            err = ag.wait_attached(**kw)
            if kw.get("sem"):
                kw["sem"].close()
            if err:
                failed[name] = err
                ag.stop()
                continue
            time.sleep(settle)
            t = time.monotonic()
            time.sleep(meas)
            v = ns_per_iter(wins, t, time.monotonic())
            vw = ns_per_iter(wins, t, time.monotonic(), "wall")
            alive = ag.p.poll() is None
            ag.stop()
            if not alive:
                failed[name] = ag.error() or "agent exited while measuring"
                continue
            res.setdefault(name, []).append(v)
            pairs.setdefault(name, []).append((res["none"][-1], v))
            wall_pairs.setdefault(name, []).append((wall_none, vw))
            time.sleep(settle)          # detach: uprobes unregister on close
        if p.poll() is not None:
            break
    evt.set()
    stop(p)
    if p.returncode not in (0, -signal.SIGTERM):
        failed["target"] = f"target exited {p.returncode}"
    res["_pairs"], res["_wall_pairs"] = pairs, wall_pairs
    return res, failed


# The reference loop with its 1-byte sites forced, next to the default (the cheaper
# kind by calibration): what the choice is worth here, measured side by side.
REF_NOP1 = "usdt, 1-byte sites (LOOPSCOPE_USDT=nop1)"


def section_overhead(env, cfg, rep):
    s = rep.section("overhead", "1. Per-iteration cost of each probe tier",
                    ["target", "tier", "untraced ns/iter", "traced ns/iter", "added ns/iter", "ratio", "note"],
                    "A target that does nothing but iterate (the reference loop's tight immediate chain, "
                    "Node's `setImmediate` chain in `tests/bench/node/spin.js`) is pinned to CPU 0 and reports "
                    "its own iterations and its loop thread's CPU time per 200 ms window; ns per iteration is "
                    "that CPU time (user + system, where probe hits are handled) over the iterations, so "
                    "time other processes take from CPU 0 does not count (the wall-clock figure is in the note); "
                    "a repetition's figure is the median of its windows. "
                    "In one process the bench alternates untraced "
                    "windows and windows with `loopscope stat -p PID -i 60 [--probes TIER]` attached "
                    f"(CPU 1), {cfg.reps} repetitions of {cfg.measure:.1f} s each; figures are medians of the "
                    "repetitions; added and ratio are medians of each repetition's traced - untraced and "
                    "traced / untraced (paired, so a slow drift of the machine's load cancels). Probe hits "
                    "run in the "
                    "target's context, so this is where the kernel side of the agent's cost shows.")
    why = env.why_no_stat()

    # Reference loop: tests/bench/refspin.c, a tight immediate chain.
    if why or not env.refspin:
        rep.row(s, "reference loop (immediate chain)", "usdt",
                note=f"not measured: {why or 'build/bench/bin/refspin not built'}")
    else:
        def ref_attach(p):
            try:
                return {"sem": Semaphore(p.pid, env.refspin, "poll_start")}
            except (OSError, KeyError):
                return {}
        res, failed = measure_tiers(env, cfg, [env.refspin, "--window-ms", "200",
                                               "--duration", str(int(cfg.reps * cfg.measure * 4 + 60))],
                                    [("usdt", []), (REF_NOP1, [], {"LOOPSCOPE_USDT": "nop1"})],
                                    "overhead-ref", ref_attach)
        _tier_rows(rep, s, "reference loop (immediate chain)", res, failed, ["usdt", REF_NOP1])
        cfg.ref_tier_cost = _tier_added(res, "usdt")

    # Node: spin.js.
    tiers = env.node_tiers()
    if why:
        rep.row(s, "node (setImmediate chain)", "light / phases", note=f"not measured: {why}")
        return
    if not tiers:
        tiers_spec = [("default", [])]
    else:
        tiers_spec = [(t, ["--probes", t]) for t in tiers]
    res, failed = measure_tiers(env, cfg, [env.node, os.path.join(NODE_DIR, "spin.js"), "--window-ms", "200",
                                           "--max-s", str(int(cfg.reps * len(tiers_spec) * (cfg.measure + 20) + 60))],
                                tiers_spec, "overhead-node", lambda p: {})
    if not tiers and "default" in failed:
        failed = {"light": failed["default"], "phases": failed["default"]}
        tiers_spec = [("light", []), ("phases", [])]
    _tier_rows(rep, s, "node (setImmediate chain)", res, failed, [t for t, _ in tiers_spec])
    cfg.node_tier_cost = {t: _tier_added(res, t) for t, _ in tiers_spec}
    tier_floors(env, cfg, rep, tiers_spec)


COST_LINE = re.compile(r"^pid \d+: (\w+) tier, per iteration ([\d.]+) traps, ([\d.]+) probe runs")


def tier_floors(env, cfg, rep, tiers_spec):
    """Per tier: traps and probe runs per iteration as the agent measures them (stat's
    header over 2 s on the same setImmediate chain), the floor they imply on this
    machine (traps x calibrated uprobe hit + other runs x half a calibrated
    tracepoint pair: the epoll tracepoints run in pairs around a syscall + the BPF
    programs' own run time, from the kernel's BPF run-time statistics switched on for
    the measuring window), and section 1's added cost against it."""
    s = rep.section("floors", "1c. Node: cost per iteration against the floor of its probe plan",
                    ["tier", "traps/iter", "probe runs/iter", "floor ns/iter", "added ns/iter", "added / floor",
                     "note"],
                    "Traps and probe runs per iteration are what `loopscope stat` prints in its header "
                    "(the agent's own counters over its iterations), on the same `spin.js` chain; the floor "
                    "prices them with this machine's `loopscope calibrate` figures: a trap at the emulated "
                    "uprobe hit, any other run at half a syscall tracepoint pair, plus the programs' own run "
                    "time per iteration (run_time_ns / run_cnt of the agent's program fds, with the kernel's "
                    "run-time statistics on for that window only). Added is section 1's figure.")
    line, c = cfg.machine, cfg.calib      # main() calibrated before the first section
    cfg.node_floor = {}
    if c is None:
        rep.row(s, "all", note=line)
        return
    p = start([env.node, os.path.join(NODE_DIR, "spin.js"), "--window-ms", "1000", "--max-s", "120"],
              cpu=CPU_TARGET, stdout=subprocess.DEVNULL)
    try:
        time.sleep(cfg.warmup + 1)
        for name, extra in tiers_spec:
            # long enough for the run-time window below (bpftool is slow on a loaded machine)
            ag = Agent(env, ["stat", "-p", str(p.pid), "-i", "8", "-d", "8"] + extra, f"floor-{name}.log")
            body = prog_ns_per_run(ag.p.pid, 1.0, 1.5)
            ag.p.wait(timeout=60)
            out = ag.output()
            m = [x for x in map(COST_LINE.match, out.splitlines()) if x]
            added = (cfg.node_tier_cost or {}).get(name)
            if ag.p.returncode != 0 or not m:
                rep.row(s, name, note=f"not measured: stat rc={ag.p.returncode} {out.strip()[-120:]}")
                continue
            traps, runs = float(m[-1].group(2)), float(m[-1].group(3))
            floor = traps * c["uprobe_hit_ns"] + max(runs - traps, 0) * c["tp_pair_ns"] / 2 + runs * (body or 0)
            ratio = added / floor if added is not None and floor > 0 else None
            cfg.node_floor[name] = (traps, runs, floor, added, ratio)
            rep.row(s, name, traps, runs, floor, added, ratio,
                    note="no probe: the floor is 0" if floor == 0 else
                    f"programs {body:,.0f} ns a run" if body is not None else "programs' run time not measured")
    finally:
        stop(p)


def prog_ns_per_run(pid, after, span):
    """Mean run time (ns) of the BPF programs process pid holds, over span seconds
    starting after seconds from now (once they are loaded), from the kernel's run-time
    statistics (BpfStats, on for that window only); None if unavailable."""
    time.sleep(after)
    st = BpfStats()
    try:
        if st.err:
            return None
        end = time.monotonic() + 5
        while not (bpf_prog_stats(pid) or (0, 0))[1] and time.monotonic() < end:    # still attaching
            time.sleep(0.1)
        a = bpf_prog_stats(pid)
        time.sleep(span)
        b = bpf_prog_stats(pid)
    finally:
        st.close()
    if not a or not b or b[1] <= a[1]:
        return None
    return (b[0] - a[0]) / (b[1] - a[1])


def _paired(res, tier, key="_pairs"):
    """Per-repetition (traced - untraced, traced / untraced), from adjacent windows."""
    ps = [(a, b) for a, b in res.get(key, {}).get(tier, []) if a and b]
    return [b - a for a, b in ps], [b / a for a, b in ps]


def _tier_added(res, tier):
    return median(_paired(res, tier)[0])


def _tier_rows(rep, s, target, res, failed, tiers):
    base = median(res.get("none", []))
    for t in tiers:
        if t in failed or not res.get(t):
            rep.row(s, target, t, base, note=f"not measured: {failed.get(t, 'no samples')}")
            continue
        v = median(res[t])
        added, ratio = _paired(res, t)
        wall_added = median(_paired(res, t, "_wall_pairs")[0])
        rep.row(s, target, t, base, v, median(added), median(ratio),
                note=f"{len(res[t])} reps; spread untraced {spread_txt(res.get('none', []))}, "
                     f"traced {spread_txt(res[t])}; wall clock: +{fmt(wall_added)} ns/iter",
                runs={"none": res.get("none"), t: res[t]}, wall_pairs=res["_wall_pairs"].get(t))


# ---- 2. HTTP

def npm_ready(cfg):
    """Install prom-client and clinic into build/bench/node (npm ci from the lockfile).
    Returns (node_modules path, None) or (None, reason)."""
    dest = os.path.join(cfg.out, "node")
    stamp = os.path.join(dest, "node_modules", ".loopscope-stamp")
    lock = os.path.join(NODE_DIR, "package-lock.json")
    if os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(lock):
        return os.path.join(dest, "node_modules"), None
    if not shutil.which("npm"):
        return None, "npm not installed"
    os.makedirs(dest, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(NODE_DIR, f), dest)
    rc, out = run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], 300, cwd=dest)
    with open(os.path.join(cfg.out, "logs", "npm.log"), "w") as f:
        f.write(out)
    if rc != 0:
        return None, f"npm ci failed ({'timeout' if rc is None else rc}): {first_line(out)}"
    open(stamp, "w").close()
    return os.path.join(dest, "node_modules"), None


def wrk_requests(out):
    m = re.search(r"^\s*(\d+) requests in", out, re.M)
    return int(m.group(1)) if m else None


def parse_wrk(out):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if not rps or not p99:
        return None, None, first_line(out, "wrk printed nothing")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    return float(rps.group(1)), float(p99.group(1)) * scale, (errs.group(0) if errs else None)


def wrk_cmd(cfg, port):
    return ["wrk", "-t1", f"-c{cfg.conns}", f"-d{cfg.http_s}s", "--latency", f"http://127.0.0.1:{port}/"]


def start_server(env, cfg, modules, prom=False, exit_after_s=400):
    envv = {"PORT": "0", "EXIT_AFTER_S": str(int(exit_after_s))}
    if prom:
        envv.update(PROM="1", NODE_PATH=modules)
    p = start([env.node, os.path.join(NODE_DIR, "server.js")], cpu=CPU_TARGET, env=envv,
              stdout=subprocess.PIPE)
    m = wait_line(p, r"listening (\d+) (\d+)", 10)
    if not m:
        stop(p)
        return None, None
    return p, int(m.group(1))


class PromScraper:
    """Scrapes prom-client's /metrics once a second, as Prometheus would (from CPU 1)."""

    def __init__(self, port):
        self.port, self.evt = port, threading.Event()
        self.n = 0
        self.th = threading.Thread(target=self._loop, daemon=True)
        self.th.start()

    def _loop(self):
        while not self.evt.wait(1.0):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/metrics")
                c.getresponse().read()
                c.close()
                self.n += 1
            except OSError:
                pass

    def close(self):
        self.evt.set()
        self.th.join()


def section_http(env, cfg, rep):
    s = rep.section("http", "2. Node HTTP server under load",
                    ["configuration", "req/s", "p99 ms", "req/s vs no agent", "p99 vs no agent",
                     "server CPU us/req", "CPU/req vs no agent", "loop iterations/req", "note"],
                    f"`tests/bench/node/server.js` on 127.0.0.1 pinned to CPU 0; `wrk -t1 -c{cfg.conns} "
                    f"-d{cfg.http_s}s --latency` pinned to CPU 1, after {cfg.http_warm_s} s of unrecorded load. Configurations run interleaved, "
                    f"{cfg.http_reps} rounds (clinic: {cfg.clinic_reps}, which spawns its own server, is compared with "
                    "the no-agent run of its round too); absolute figures are medians per configuration, the "
                    "\"vs no agent\" columns medians of per-round ratios (paired). loopscope's "
                    "tiers attach to the same server process as the no-agent runs (`loopscope stat -p PID -i 60 "
                    "--probes TIER`, attached before wrk starts, detached after; \"light (tracepoints)\" is light with "
                    "`LOOPSCOPE_EPOLL_TRACEPOINTS=1`: epoll timed by the syscall tracepoints instead of its two "
                    "uprobes in uv__io_poll); prom-client "
                    "(`collectDefaultMetrics()`, scraped once a second from CPU 1) runs in its own server "
                    "process with the same code; `clinic doctor --collect-only` spawns its own server. Server CPU "
                    "per request: the server's CPU time (schedstat, all threads, BPF probe time included) "
                    "over the wrk run divided by the requests wrk completed. Loop iterations per request: "
                    "what `stat --json` counted while attached, over wrk's requests (so the per-iteration "
                    "costs of section 1 translate into per-request costs).")
    if not env.wrk:
        rep.row(s, "all", note="not measured: wrk not installed (Debian package wrk)")
        return
    modules, npm_err = npm_ready(cfg)
    srv, port = start_server(env, cfg, modules)
    if not srv:
        rep.row(s, "all", note="not measured: server.js did not start")
        return
    prom_srv, prom_port, prom_err = None, None, None
    if modules:
        prom_srv, prom_port = start_server(env, cfg, modules, prom=True)
        if not prom_srv:
            prom_err = "server.js with PROM=1 did not start"
    else:
        prom_err = npm_err
    clinic = os.path.join(modules, ".bin", "clinic") if modules else None
    clinic_err = npm_err if not modules else (None if os.access(clinic, os.X_OK) else "clinic not installed")

    why = env.why_no_stat()
    tiers = env.node_tiers() if not why else []
    tier_err = why or (None if tiers else "`loopscope stat` has no --probes light|phases (issue 4)")
    if not why and not tiers:
        # stat exists without Node tiers: see whether it attaches to Node at all.
        tiers, tier_err = ["default"], None

    # light with the epoll syscall tracepoints instead of its uprobes: what the choice saves
    configs = ["no agent"] + [f"loopscope {t}" for t in tiers] \
        + (["loopscope light (tracepoints)"] if "light" in tiers else []) \
        + (["prom-client"] if prom_srv else []) \
        + (["clinic doctor"] if not clinic_err else [])
    res = {c: [] for c in configs}
    failed = {}
    it_per_req = {}
    clinic_dir = os.path.join(cfg.out, "clinic")
    os.makedirs(clinic_dir, exist_ok=True)

    # warm-up, not recorded: req/s keeps rising for ~10 s of load (JIT, heap sizing)
    wu = f"-d{cfg.http_warm_s}s"
    run(["wrk", "-t1", f"-c{cfg.conns}", wu, f"http://127.0.0.1:{port}/"], 40, cpu=CPU_HELPER)
    if prom_srv:
        run(["wrk", "-t1", f"-c{cfg.conns}", wu, f"http://127.0.0.1:{prom_port}/"], 40, cpu=CPU_HELPER)

    for r in range(cfg.http_reps):
        # rotate the order each round so no configuration always follows the same one
        for c in configs[r % len(configs):] + configs[:r % len(configs)]:
            if c in failed:
                continue
            cpu0, cpu_pid = None, None
            if c == "no agent":
                cpu_pid, cpu0 = srv.pid, task_cpu_seconds(srv.pid)
                rc, out = run(wrk_cmd(cfg, port), cfg.http_s + 20, cpu=CPU_HELPER)
            elif c.startswith("loopscope "):
                t = c.split()[1]
                tp = c.endswith("(tracepoints)")
                extra = [] if t == "default" else ["--probes", t]
                ag = Agent(env, ["stat", "-p", str(srv.pid), "-i", "60", "--json"] + extra,
                           f"http-{t}{'-tp' if tp else ''}-{r}.log",
                           extra_env={"LOOPSCOPE_EPOLL_TRACEPOINTS": "1"} if tp else None)
                err = ag.wait_attached()
                if err:
                    failed[c] = err
                    continue
                cpu_pid, cpu0 = srv.pid, task_cpu_seconds(srv.pid)
                rc, out = run(wrk_cmd(cfg, port), cfg.http_s + 20, cpu=CPU_HELPER)
                alive = ag.p.poll() is None
                ag.stop()
                if not alive:
                    failed[c] = ag.error()
                    continue
                # stat's one interval spans attach..detach, wrk inside it; the idle server
                # makes next to no iterations, so iterations / requests is what wrk caused
                j, nreq = last_json(ag.output()), wrk_requests(out or "")
                if j and nreq:
                    it_per_req.setdefault(c, []).append(j["iterations"] / nreq)
            elif c == "prom-client":
                sc = PromScraper(prom_port)
                cpu_pid, cpu0 = prom_srv.pid, task_cpu_seconds(prom_srv.pid)
                rc, out = run(wrk_cmd(cfg, prom_port), cfg.http_s + 20, cpu=CPU_HELPER)
                sc.close()
            else:
                if r >= cfg.clinic_reps:
                    continue
                # clinic spawns the server (CPU 0 through taskset) and runs wrk on its port
                onport = " ".join(wrk_cmd(cfg, "$PORT"))
                rc, out = run(["taskset", "-c", str(CPU_TARGET), clinic, "doctor", "--collect-only",
                               "--dest", clinic_dir, "--on-port", f"taskset -c {CPU_HELPER} {onport}", "--",
                               env.node, os.path.join(NODE_DIR, "server.js")],
                              cfg.http_s + 90, cwd=clinic_dir,
                              env={"NO_INSIGHT": "1", "NO_UPDATE_NOTIFIER": "1", "PORT": "0",
                                   "EXIT_AFTER_S": "120"})
            us_per_req = None
            if cpu_pid:
                cpu1, nreq = task_cpu_seconds(cpu_pid), wrk_requests(out or "")
                if cpu0 is not None and cpu1 is not None and nreq:
                    us_per_req = (cpu1 - cpu0) / nreq * 1e6
            rps, p99, note = parse_wrk(out or "")
            if rps is None:
                failed[c] = f"run failed (rc {rc}): {note}"
                continue
            res[c].append((rps, p99, us_per_req, r))
    stop(srv)
    if prom_srv:
        stop(prom_srv)

    base = {x[3]: x for x in res["no agent"]}       # round -> the no-agent run of that round

    def paired(c, k):
        """Median over rounds of this configuration's value k over no agent's, same round."""
        rs = [x[k] / base[x[3]][k] for x in res[c] if x[3] in base and x[k] and base[x[3]][k]]
        return median(rs)

    cfg.http = {}
    for c in configs:
        if c in failed or not res[c]:
            rep.row(s, c, note=f"not measured: {failed.get(c, 'no samples')}")
            continue
        rps, p99 = median([x[0] for x in res[c]]), median([x[1] for x in res[c]])
        cpu_req = median([x[2] for x in res[c]])
        rps_ratio, p99_ratio, cpu_ratio = paired(c, 0), paired(c, 1), paired(c, 2)
        cfg.http[c] = (rps, p99, cpu_req, median(it_per_req.get(c, [])), spread([x[0] for x in res[c]]),
                       rps_ratio, cpu_ratio)
        rep.row(s, c, rps, p99, rps_ratio, p99_ratio, cpu_req, cpu_ratio, median(it_per_req.get(c, [])),
                note=f"{len(res[c])} runs, req/s spread {spread_txt([x[0] for x in res[c]])}",
                runs=[x[:3] + (x[3],) for x in res[c]])
    if tier_err:
        rep.row(s, "loopscope light / phases", note=f"not measured: {tier_err}")
    if prom_err:
        rep.row(s, "prom-client", note=f"not measured: {prom_err}")
    if clinic_err:
        rep.row(s, "clinic doctor", note=f"not measured: {clinic_err}")


# ---- 2b. the same cost, measured on two servers at once

def section_http_ab(env, cfg, rep):
    s = rep.section("http_ab", "2b. Node HTTP server: traced and untraced side by side",
                    ["configuration", "rounds", "CPU/req, traced vs untraced", "req/s, traced vs untraced",
                     "CPU/req spread", "note"],
                    f"Section 2 compares runs made one after another, and this 2-vCPU VM's throughput drifts "
                    f"by several % between runs, more than the effect measured. Here two identical "
                    f"`tests/bench/node/server.js` processes share CPU 0 and are loaded at the same time by two "
                    f"`wrk -t1 -c{cfg.conns} -d{cfg.ab_s}s` on CPU 1 (after {cfg.http_warm_s} s of unrecorded "
                    f"load), so whatever the machine does to one it does to the other. In each round one server "
                    f"has `loopscope stat -p PID -i 60 --probes TIER` attached (CPU 1, attached 1.5 s before wrk "
                    f"starts); which server alternates every round, and the configurations' order rotates. "
                    f"\"no agent (A/A)\" rounds attach nothing and show the method's own noise. CPU/req is each "
                    f"server's CPU time (schedstat, all threads, probe time included) over the requests wrk "
                    f"completed against it; figures are medians over {cfg.ab_reps} rounds of traced / untraced "
                    f"of the same round, shown as a change; spread is half the range of the CPU/req ratios.",
                    formats={"CPU/req, traced vs untraced": "chg", "req/s, traced vs untraced": "chg"})
    if not env.wrk:
        rep.row(s, "all", note="not measured: wrk not installed (Debian package wrk)")
        return
    why = env.why_no_stat()
    tiers = env.node_tiers() if not why else []
    if not tiers:
        rep.row(s, "all", note=f"not measured: {why or 'no Node tiers'}")
        return
    servers = []
    # each round attaches and detaches an agent per configuration: on a loaded machine
    # that takes longer than the rounds' load, so the servers' own time limit scales
    nconf = 2 + len(tiers) + (1 if cfg.ab_baseline else 0)
    for _ in range(2):
        p, port = start_server(env, cfg, None, exit_after_s=cfg.http_warm_s + cfg.ab_reps * nconf * (cfg.ab_s + 30) + 60)
        if not p:
            for q, _ in servers:
                stop(q)
            rep.row(s, "all", note="not measured: server.js did not start")
            return
        servers.append((p, port))

    def load(secs):
        ws = [start(["wrk", "-t1", f"-c{cfg.conns}", f"-d{secs}s", f"http://127.0.0.1:{port}/"], cpu=CPU_HELPER,
                    stdout=subprocess.PIPE) for _, port in servers]
        outs = []
        for w in ws:
            try:
                outs.append(w.communicate(timeout=secs + 30)[0] or "")
            except subprocess.TimeoutExpired:
                stop(w)
                outs.append("")
        return [wrk_requests(o if isinstance(o, str) else o.decode()) for o in outs]

    configs = ["no agent (A/A)"] + [f"loopscope {t}" for t in tiers]
    if cfg.ab_baseline:     # another build's default tier, in the same rounds (before/after a change)
        configs.append(f"baseline {env.default_tier()}")
    res = {c: [] for c in configs}
    failed = {}
    try:
        load(cfg.http_warm_s)
        for r in range(cfg.ab_reps):
            traced = r % 2
            for c in configs[r % len(configs):] + configs[:r % len(configs)]:
                if c in failed:
                    continue
                ag = None
                if c.startswith(("loopscope ", "baseline ")):
                    ag = Agent(env, ["stat", "-p", str(servers[traced][0].pid), "-i", "60", "--probes",
                                     c.split()[1]], f"http-ab-{c.replace(' ', '-')}-{r}.log",
                               binary=cfg.ab_baseline if c.startswith("baseline ") else None)
                    err = ag.wait_attached()
                    if err:
                        failed[c] = err
                        ag.stop()
                        continue
                time.sleep(1.5 if ag else 0.5)
                c0 = [task_cpu_seconds(p.pid) for p, _ in servers]
                n = load(cfg.ab_s)
                c1 = [task_cpu_seconds(p.pid) for p, _ in servers]
                if ag:
                    alive = ag.p.poll() is None
                    ag.stop()
                    if not alive:
                        failed[c] = ag.error()
                        continue
                if None in n or None in c0 or None in c1 or 0 in n:
                    failed[c] = "a wrk run failed"
                    continue
                us = [(c1[i] - c0[i]) / n[i] * 1e6 for i in range(2)]
                res[c].append((us[traced] / us[1 - traced], n[traced] / n[1 - traced], traced))
    finally:
        for p, _ in servers:
            stop(p)
    cfg.http_ab = {}
    for c in configs:
        if c in failed or not res[c]:
            rep.row(s, c, note=f"not measured: {failed.get(c, 'no samples')}")
            continue
        cr, rr = median([x[0] for x in res[c]]), median([x[1] for x in res[c]])
        sp = (max(x[0] for x in res[c]) - min(x[0] for x in res[c])) / 2
        cfg.http_ab[c] = (cr, rr, sp, len(res[c]))
        rep.row(s, c, len(res[c]), cr - 1, rr - 1, f"+/-{100 * sp:.1f}%",
                note=f"binary {cfg.ab_baseline}" if c.startswith("baseline ") else "",
                runs=[list(x) for x in res[c]])


# ---- 3. agent cost and attach time

class BpfStats:
    """BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): the kernel times every BPF program run while
    the returned fd is open (closing it, or our exit, turns it off again)."""

    def __init__(self):
        import ctypes
        self.fd = -1
        libc = ctypes.CDLL(None, use_errno=True)
        attr = ctypes.create_string_buffer(128)           # union bpf_attr, type = 0
        fd = libc.syscall(321, 32, attr, 8)               # __NR_bpf (x86-64), BPF_ENABLE_STATS
        self.err = None if fd >= 0 else os.strerror(ctypes.get_errno())
        self.fd = fd

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def bpf_prog_stats(pid):
    """(run_time_ns, run_cnt) summed over the BPF programs process pid holds (fdinfo)."""
    t = n = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k == "run_time_ns":
                        t += int(v)
                    elif k == "run_cnt":
                        n += int(v)
        except OSError:
            pass
    return t, n


def section_agent(env, cfg, rep):
    s = rep.section("agent", "3. Agent cost and attach time",
                    ["target", "iterations/s", "agent CPU % of a core", "agent RSS MiB",
                     "BPF ns per run", "BPF CPU % (in target)", "note"],
                    "A target pinned to CPU 0 makes a fixed number of loop iterations per second "
                    "(`refspin --rate N` / `spin.js --rate N`: each iteration busy-waits for its slot); "
                    f"`loopscope stat -p PID -i 1` (CPU 1, printing every second) is attached and, after "
                    f"attach, its CPU time is taken over {cfg.agent_s:.0f} s (all threads' /proc/PID/task/*/schedstat: "
                    "utime+stime in /proc/PID/stat counts 10 ms ticks, too coarse here); RSS is "
                    "VmRSS at the end. The BPF programs run in the target's context, not the agent's: "
                    "their time (kernel BPF run-time statistics, BPF_ENABLE_STATS, read from the agent's "
                    "program fds) is shown separately as a share of one core.")
    why = env.why_no_stat()
    targets = []
    if env.refspin:
        targets.append(("reference loop", lambda r: [env.refspin, "--rate", str(r), "--duration", "60"],
                        lambda p: {"sem": Semaphore(p.pid, env.refspin, "poll_start")}))
    else:
        rep.row(s, "reference loop", note="not measured: build/bench/bin/refspin not built")
    targets.append(("node", lambda r: [env.node, os.path.join(NODE_DIR, "spin.js"), "--rate", str(r),
                                       "--max-s", "60"], lambda p: {}))
    cfg.agent_cpu = {}
    for name, cmd, attach in targets:
        for rate in (1000, 10000, 100000):
            if why:
                rep.row(s, name, rate, note=f"not measured: {why}")
                continue
            p = start(cmd(rate), cpu=CPU_TARGET, stdout=subprocess.PIPE)
            wins, evt = [], threading.Event()
            threading.Thread(target=spin_windows, args=(p, wins, evt), daemon=True).start()
            time.sleep(0.3)
            try:
                kw = attach(p)
            except (OSError, KeyError):
                kw = {}
            ag = Agent(env, ["stat", "-p", str(p.pid), "-i", "1"], f"agent-{name}-{rate}.log")
            err = ag.wait_attached(**kw)
            if kw.get("sem"):
                kw["sem"].close()
            if err:
                rep.row(s, name, rate, note=f"not measured: {err}")
                stop(p)
                continue
            time.sleep(0.5)                 # past the attach work
            stats = BpfStats()
            c0, b0, t0 = task_cpu_seconds(ag.p.pid), bpf_prog_stats(ag.p.pid), time.monotonic()
            time.sleep(cfg.agent_s)
            c1, b1, t1 = task_cpu_seconds(ag.p.pid), bpf_prog_stats(ag.p.pid), time.monotonic()
            rss = rss_mib(ag.p.pid)
            stats.close()
            achieved = ns_per_iter(wins, t0, t1, "wall")
            alive = ag.p.poll() is None
            ag.stop()
            evt.set()
            stop(p)
            if not alive or c0 is None or c1 is None:
                rep.row(s, name, rate, note=f"not measured: {ag.error() or 'agent exited'}")
                continue
            cpu = 100 * (c1 - c0) / (t1 - t0)
            bpf_ns = bpf_cpu = None
            note = f"achieved {1e9 / achieved:,.0f} it/s" if achieved else ""
            if stats.err:
                note += f"; BPF stats unavailable: {stats.err}"
            elif b0 and b1 and b1[1] > b0[1]:
                bpf_ns = (b1[0] - b0[0]) / (b1[1] - b0[1])
                bpf_cpu = 100 * (b1[0] - b0[0]) / 1e9 / (t1 - t0)
            rep.row(s, name, rate, cpu, rss, bpf_ns, bpf_cpu, note=note.strip("; "))
            cfg.agent_cpu[(name, rate)] = cpu

    # Attach time.
    a = rep.section("attach", "3b. Attach time",
                    ["target", "definition", "median ms", "max ms", "runs", "note"],
                    "From the fork of `loopscope stat -p PID` to (a) the target's `poll_start` USDT "
                    "semaphore turning non-zero, read through /proc/PID/mem every 0.5 ms: the kernel has "
                    "registered the probe, so the very next loop iteration is counted (reference loop only: "
                    "Node has no semaphores); (b) stat's \"tracing N process\" line on stderr, printed once "
                    "every probe is attached and the first snapshot is taken. Untraced tight loop as target, "
                    f"{cfg.attach_runs} fresh stat processes each.")
    cfg.attach_ms = None
    if why:
        a["rows"].append({"target": "all", "note": f"not measured: {why}"})
        return
    for name, cmd, attach in targets:
        p = start(cmd(0) if name == "reference loop" else
                  [env.node, os.path.join(NODE_DIR, "spin.js"), "--max-s", "60"],
                  cpu=CPU_TARGET, stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        sem_ms, line_ms, errs = [], [], []
        for i in range(cfg.attach_runs):
            try:
                kw = attach(p)
            except (OSError, KeyError):
                kw = {}
            t0 = time.monotonic()
            ag = Agent(env, ["stat", "-p", str(p.pid), "-i", "60"], f"attach-{name}-{i}.log")
            if kw:
                err = ag.wait_attached(**kw)
                kw["sem"].close()
                if err:
                    errs.append(err)
                    continue
                sem_ms.append(ag.attach_s * 1e3)
            end = time.monotonic() + 15
            while time.monotonic() < end and ag.p.poll() is None and "tracing" not in ag.output():
                time.sleep(0.001)
            if "tracing" in ag.output():
                line_ms.append((time.monotonic() - t0) * 1e3)
            else:
                errs.append(ag.error() or "no 'tracing' line within 15 s")
            ag.stop()
            time.sleep(0.2)
        stop(p)
        if sem_ms:
            rep.row(a, name, "(a) probe live", median(sem_ms), max(sem_ms), len(sem_ms))
            cfg.attach_ms = median(sem_ms)
        if line_ms:
            rep.row(a, name, "(b) stat ready", median(line_ms), max(line_ms), len(line_ms))
            if name == "node":
                cfg.attach_node_ms = median(line_ms)
        if errs and not line_ms:
            rep.row(a, name, note=f"not measured: {errs[0]}")


# ---- 4. accuracy

REF_WORKLOADS = [
    ("idle", []),
    ("--block 5 --every 50", ["--block", "5", "--every", "50"]),
    ("--block 20 --every 100", ["--block", "20", "--every", "100"]),
    ("--block 80 --every 250", ["--block", "80", "--every", "250"]),
    ("--io", ["--io"]),
    ("--tick-starve 150 --every 500", ["--tick-starve", "150", "--every", "500"]),
    ("--microtask-starve 150 --every 500", ["--microtask-starve", "150", "--every", "500"]),
]


def rel(a, b):
    """Relative error of a against truth b (0 when both are 0)."""
    if b == 0:
        return 0.0 if a == 0 else float("inf")
    return abs(a - b) / abs(b)


def within_delay(a, b):
    """Issue 3's delay bound: |a - b| <= max(10% of b, 200 us)."""
    return abs(a - b) <= max(0.10 * abs(b), 200e-6)


def episodes(j):
    return (j.get("stall_episodes", 0), (j.get("ticks") or {}).get("starvation_episodes"),
            (j.get("microtasks") or {}).get("starvation_episodes"))


def compare_ref(gt, ls):
    """Row of relative errors of stat's JSON (ls) against loopdemo's ground truth (gt)."""
    window = gt["interval_s"]
    worst_phase, worst = "-", 0.0
    for ph, v in gt["phases"].items():
        if v["total_s"] < 0.01 * window:        # under 1% of the window: see the JSON
            continue
        e = rel(ls["phases"][ph]["total_s"], v["total_s"])
        if e >= worst:
            worst_phase, worst = ph, e
    d = {k: rel(ls["delay"][k], gt["delay"][k]) for k in ("p50_s", "p99_s", "max_s")}
    d_ok = all(within_delay(ls["delay"][k], gt["delay"][k]) for k in d)
    util = abs(ls["utilization"] - gt["utilization"])
    ep_gt, ep_ls = episodes(gt), episodes(ls)
    ok = worst <= 0.02 and util <= 0.02 and d_ok and ep_gt == ep_ls
    return {"iterations": rel(ls["iterations"], gt["iterations"]), "utilization abs": util,
            "phase total (worst)": f"{100 * worst:.2f}% ({worst_phase})",
            "delay p50": d["p50_s"], "delay p99": d["p99_s"], "delay max": d["max_s"],
            "episodes gt/ls": "/".join(map(str, ep_gt)) + " vs " + "/".join(map(str, ep_ls)),
            "within bounds": "yes" if ok else "NO"}, ok


def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def section_accuracy(env, cfg, rep):
    s = rep.section("accuracy", "4. Accuracy",
                    ["target", "workload", "iterations", "utilization abs", "phase total (worst)",
                     "delay p50", "delay p99", "delay max", "episodes gt/ls", "within bounds", "note"],
                    "Reference loop: `loopdemo --wait-attach WORKLOAD --duration "
                    f"{cfg.acc_s:.0f} --stats-json FILE` (its exact ground truth, accounting starts when "
                    "the agent raises poll_start's semaphore) against `loopscope stat -p PID --json -i 60` "
                    "over the same span (stat reports once, when the target exits). Relative errors; "
                    "utilization as an absolute difference; phase totals: the worst phase among those "
                    "taking at least 1% of the window (the JSON copy has every phase); episodes as "
                    "stall/nextTick/microtask counts. Bounds (issue 3): phase totals within 2%, utilization "
                    "within 0.02, delay p50/p99/max within max(10%, 200 us), episode counts exact. "
                    "Node: `tests/bench/node/accuracy.js` (a timer blocking 0/5/10/20/40 ms every 100 ms; or "
                    "an HTTP server doing ~50 us per request under `autocannon -R 4000 -c 8` from CPU 1) "
                    "measures itself with perf_hooks over exactly the intervals of `loopscope stat -i 1 --json` "
                    "(windows opened and closed by SIGUSR2 as stat prints); bounds (issue 4): ELU within "
                    "0.03, delay max within max(10%, 2 ms) of monitorEventLoopDelay({resolution: 1}).max "
                    "minus the resolution.",
                    formats={"iterations": "pct", "utilization abs": "3f", "delay p50": "pct",
                             "delay p99": "pct", "delay max": "pct"})
    why = env.why_no_stat()
    wd = env.why_no_demo("--wait-attach", "--stats-json")
    cfg.acc_ok = None
    if why or wd:
        rep.row(s, "reference loop", "all", note=f"not measured: {why or wd}")
    else:
        all_ok = True
        for label, args in REF_WORKLOADS:
            gt_file = os.path.join(cfg.out, "logs", "accuracy-gt.json")
            if os.path.exists(gt_file):
                os.unlink(gt_file)
            p = start([env.loopdemo, "--wait-attach", "--duration", str(cfg.acc_s), "--stats-json", gt_file]
                      + args, cpu=CPU_TARGET, log=os.path.join(cfg.out, "logs", "accuracy-demo.log"))
            time.sleep(0.2)
            ag = Agent(env, ["stat", "-p", str(p.pid), "--json", "-i", "60", "-d", str(cfg.acc_s + 30)],
                       "accuracy-" + label.split()[0].strip("-") + ".log")
            try:
                rc = p.wait(cfg.acc_s + 20)
            except subprocess.TimeoutExpired:
                rc = None
            try:
                ag.p.wait(10)
            except subprocess.TimeoutExpired:
                ag.stop()
            ls = last_json(ag.output())
            try:
                with open(gt_file) as f:
                    gt = json.load(f)
            except (OSError, ValueError):
                gt = None
            if rc != 0 or not gt or not ls:
                why_not = (f"loopdemo exited {rc}" if rc != 0 else "no ground truth written" if not gt
                           else ag.error() or "stat printed no JSON: " + first_line(ag.output(), "(nothing)"))
                rep.row(s, "reference loop", label, note=f"not measured: {why_not}")
                all_ok = False
                continue
            row, ok = compare_ref(gt, ls)
            all_ok &= ok
            rep.row(s, "reference loop", label, *[row[c] for c in s["columns"][2:10]],
                    truth=gt, loopscope=ls)
        cfg.acc_ok = all_ok
    node_accuracy(env, cfg, rep, s, why)


def node_accuracy(env, cfg, rep, s, why):
    cfg.node_acc_ok = None
    if why:
        rep.row(s, "node", "accuracy.js", note=f"not measured: {why}")
        return
    oks = []
    for label, http_load in (("timer blocks 0-40 ms", False), ("HTTP, autocannon -R 4000", True)):
        ok = node_accuracy_one(env, cfg, rep, s, label, http_load)
        if ok is not None:
            oks.append(ok)
    cfg.node_acc_ok = all(oks) if oks else None


def node_accuracy_one(env, cfg, rep, s, label, http_load):
    """One Node workload: stat -i 1 --json intervals vs perf_hooks over the same windows."""
    n_int = cfg.node_acc_intervals
    label = f"{label}, {n_int} x 1 s"
    cannon = None
    if http_load:
        modules, err = npm_ready(cfg)
        cannon = os.path.join(modules, ".bin", "autocannon") if modules else None
        if not cannon or not os.access(cannon, os.X_OK):
            rep.row(s, "node", label, note=f"not measured: autocannon not installed ({err or 'missing'})")
            return None
    p = start([env.node, os.path.join(NODE_DIR, "accuracy.js"), "--max-s", "60"]
              + (["--http"] if http_load else []), cpu=CPU_TARGET, stdout=subprocess.PIPE)
    if not wait_line(p, r"ready", 10) or (http_load and not (m := wait_line(p, r"listening (\d+)", 10))):
        rep.row(s, "node", label, note="not measured: accuracy.js did not start")
        stop(p)
        return None
    lines = []
    threading.Thread(target=lambda: [lines.append(l) for l in iter(p.stdout.readline, b"")],
                     daemon=True).start()
    load = None
    if http_load:
        load = start([cannon, "-R", "4000", "-c", "8", "-d", str(n_int + 4),
                      f"http://127.0.0.1:{m.group(1)}/"], cpu=CPU_HELPER)
        time.sleep(0.5)
    ag = Agent(env, ["stat", "-p", str(p.pid), "--json", "-i", "1"], "accuracy-node.log")
    seen, opened, stat_lines = 0, False, []
    end = time.monotonic() + n_int + 20
    while time.monotonic() < end and ag.p.poll() is None:
        js = [l for l in ag.output().splitlines() if l.startswith("{")]
        if len(js) > seen:
            seen = len(js)
            # the first line covers the attach; windows open at its end
            os.kill(p.pid, signal.SIGUSR2)
            if opened:
                stat_lines.append(json.loads(js[-1]))
            opened = True
            if len(stat_lines) == n_int:
                break
        time.sleep(0.002)
    err = ag.error()
    ag.stop()
    if load:
        stop(load)
    time.sleep(0.2)
    stop(p)
    node = [json.loads(l) for l in lines if l.startswith(b"{")]
    if err or len(stat_lines) < n_int or len(node) < n_int:
        rep.row(s, "node", label, note="not measured: " + (err or f"got {len(stat_lines)} stat "
                                                           f"and {len(node)} perf_hooks intervals"))
        return None
    ls_util = sum(j["utilization"] * j["interval_s"] for j in stat_lines) / sum(j["interval_s"] for j in stat_lines)
    elu = sum(n["elu"] * n["window_s"] for n in node) / sum(n["window_s"] for n in node)
    ls_max = max(j["delay"]["max_s"] for j in stat_lines)
    late_max = max(((j.get("timer_lateness") or {}).get("max_s") or 0) for j in stat_lines)
    eld_max = max(n["eld"]["max_s"] for n in node) - node[0]["resolution_s"]
    util_ok = abs(ls_util - elu) <= 0.03
    max_ok = abs(ls_max - eld_max) <= max(0.10 * eld_max, 2e-3)
    rep.row(s, "node", label, None, abs(ls_util - elu), "-", None, None,
            rel(ls_max, eld_max), "-", "yes" if util_ok and max_ok else "NO",
            note=f"ELU {elu:.3f} vs loopscope {ls_util:.3f}; eld max - resolution {1e3 * eld_max:.1f} ms vs "
                 f"loopscope delay max {1e3 * ls_max:.1f} ms (timer lateness max {1e3 * late_max:.1f} ms)",
            perf_hooks=node, loopscope=stat_lines)
    return util_ok and max_ok


# ---- 5. reference loop vs libuv

def section_libuv(env, cfg, rep):
    s = rep.section("libuv", "5. Reference loop vs libuv, per iteration",
                    ["variant", "ns/iter", "vs libuv", "note"],
                    "From `tests/bench/run.sh loop` (the loop engineer's `tests/bench/loop_bench.c`, run "
                    "by `make bench` just before this report): a tight immediate chain in the reference "
                    "loop and a check+idle handle chain in Debian's libuv, interleaved rounds, medians; "
                    "the no-probes twin is the same loop built with -DLSL_NO_PROBES.")
    path = os.path.join(cfg.out, "loop_bench.json")
    cfg.libuv_ratio, cfg.libuv_note = None, ""
    t0 = float(os.environ.get("BENCH_T0", "0"))
    if not os.path.exists(path):
        cfg.libuv_note = "`tests/bench/run.sh loop` did not run"
        rep.row(s, "all", note=f"not measured: {cfg.libuv_note}")
        return
    if os.path.getmtime(path) < t0:
        cfg.libuv_note = "`tests/bench/run.sh loop` failed in this run (stale loop_bench.json)"
        rep.row(s, "all", note=f"not measured: {cfg.libuv_note}")
        return
    with open(path) as f:
        j = json.load(f)
    when = time.strftime("%H:%M UTC", time.gmtime(os.path.getmtime(path)))
    uv = j["libuv_ns"]
    for name, key, note in (
            ("libuv 1.44: check + idle handle chain", "libuv_ns", ""),
            ("reference loop, probes compiled in, untraced", "lsl_ns", "no fd watched: poll skips the syscall"),
            ("reference loop + one fd watched (epoll_wait(0) each, as libuv)", "lsl_fd_ns", ""),
            ("reference loop, ground-truth accounting on", "lsl_acct_ns", "what loopdemo --stats-json pays"),
            ("reference loop, probe record filled (semaphore up, no tracer)", "lsl_rec_ns",
             "the loop's own share of a traced iteration"),
            ("reference loop, built with -DLSL_NO_PROBES", "lsl_noprobes_ns", "")):
        if key in j:
            rep.row(s, name, j[key], j[key] / uv, note=note)
    rep.row(s, "untraced probe cost (probes in - compiled out), medians", j["lsl_ns"] - j["lsl_noprobes_ns"],
            note=f"{j['rounds']} rounds x {j['n']} iterations, loop_bench.json of {when}")
    if "lsl_min_ns" in j and "lsl_noprobes_min_ns" in j:
        rep.row(s, "untraced probe cost, fastest runs", j["lsl_min_ns"] - j["lsl_noprobes_min_ns"],
                note="least disturbed runs of each")
    cfg.libuv_ratio = max(j["libuv_ratio"], j["libuv_ratio_fd"])


# ---- 6. serve

def scrape(port, path="/metrics", gzip=False):
    """One GET over a fresh connection; (seconds to the last byte, body bytes, status)."""
    t = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path, headers={"Accept-Encoding": "gzip"} if gzip else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return time.monotonic() - t, len(body), r.status


def attached_targets(text):
    m = re.search(r"^loopscope_\w*attached\w*(?:\{[^}]*\})?\s+([\d.e+]+)\s*$", text, re.M)
    return int(float(m.group(1))) if m else None


def section_serve(env, cfg, rep):
    s = rep.section("serve", "6. `loopscope serve`: scrape latency and agent CPU",
                    ["targets", "scrape median ms", "scrape max ms", "gzip median ms", "body KiB",
                     "agent CPU % of a core", "agent RSS MiB", "note"],
                    "N `loopdemo --block 1 --every 100` processes (CPU 0); `loopscope serve -p PID ... "
                    "--listen 127.0.0.1:PORT` (CPU 1); once every target is attached, GET /metrics once "
                    f"a second for {cfg.serve_s} s from CPU 1 (a fresh connection each, time to the last "
                    "byte; every other scrape asks for gzip), and the agent's CPU time over the same "
                    "window (schedstat of all its threads).")
    cfg.serve = {}
    if env.help.get("serve") is None:
        rep.row(s, "1 / 10 / 50", note="not measured: `loopscope serve` does not exist yet (issue 5)")
        return
    if env.demo_help is None:
        rep.row(s, "1 / 10 / 50", note=f"not measured: {env.loopdemo} not built")
        return
    for n in cfg.serve_targets:
        demos = [start([env.loopdemo, "--block", "1", "--every", "100", "--duration", "120"],
                       cpu=CPU_TARGET) for _ in range(n)]
        port = free_port()
        args = ["serve", "--listen", f"127.0.0.1:{port}"]
        for d in demos:
            args += ["-p", str(d.pid)]
        ag = Agent(env, args, f"serve-{n}.log")
        # ready: /metrics answers and reports every target attached (or, without that
        # metric, the agent's BPF link count has settled)
        ready, text, end = False, "", time.monotonic() + 20 + 0.5 * n
        while time.monotonic() < end and ag.p.poll() is None:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/metrics")
                text = c.getresponse().read().decode(errors="replace")
                c.close()
                k = attached_targets(text)
                if k == n or (k is None and ag.wait_attached(timeout=end - ag.t0) is None):
                    ready = True
                    break
            except OSError:
                pass
            time.sleep(0.1)
        if not ready:
            err = ag.error() or f"not ready in time (attached: {attached_targets(text)})"
            ag.stop()
            for d in demos:
                stop(d)
            rep.row(s, n, note=f"not measured: {err}")
            continue
        plain, gz, size = [], [], 0
        c0, t0 = task_cpu_seconds(ag.p.pid), time.monotonic()
        for i in range(cfg.serve_s):
            nxt = t0 + i + 1
            try:
                dt, nbytes, st = scrape(port, gzip=bool(i % 2))
                if st == 200:
                    (gz if i % 2 else plain).append(dt * 1e3)
                    if not i % 2:
                        size = nbytes
            except OSError:
                pass
            time.sleep(max(0.0, nxt - time.monotonic()))
        c1, t1 = task_cpu_seconds(ag.p.pid), time.monotonic()
        rss = rss_mib(ag.p.pid)
        err = ag.error()
        ag.stop()
        for d in demos:
            stop(d)
        if err or c0 is None or c1 is None or not plain:
            rep.row(s, n, note=f"not measured: {err or 'no successful scrape'}")
            continue
        cpu = 100 * (c1 - c0) / (t1 - t0)
        cfg.serve[n] = (median(plain), cpu)
        rep.row(s, n, median(plain), max(plain + gz), median(gz), size / 1024, cpu, rss,
                note=f"{len(plain) + len(gz)} scrapes")


# ---- goals

def judge_goals(env, cfg, rep):
    g = lambda name, default=None: getattr(cfg, name, default)

    # default Node tier under 2% of req/s
    http = g("http")
    tier = env.default_tier()
    key = f"loopscope {tier}" if tier else ("loopscope default" if http and "loopscope default" in http else None)
    if http is None:
        rep.goal("default tier costs < 2% of Node req/s", "-", None, "http section not run")
    elif not key or key not in http or "no agent" not in http:
        rep.goal("default tier costs < 2% of Node req/s", "-", None,
                 "no Node tier measured (see section 2)")
    else:
        tier = key.split()[1]
        loss = 1 - (http[key][5] if http[key][5] is not None else http[key][0] / http["no agent"][0])
        why = []
        ab = (g("http_ab") or {}).get(key)
        aa = (g("http_ab") or {}).get("no agent (A/A)")
        if ab:
            # side by side (2b) is the less noisy figure: it decides when it was measured
            why.append(f"section 2 (runs one after another): req/s {-100 * loss:+.1f}%")
            loss = 1 - ab[1]
            if aa:
                why.append(f"2b's A/A control: req/s {100 * (aa[1] - 1):+.1f}%, CPU/req {100 * (aa[0] - 1):+.1f}%")
        if ab:
            why.append(f"server CPU per request {100 * (ab[0] - 1):+.1f}% (2b)")
        elif http[key][6] is not None:
            why.append(f"server CPU per request {100 * (http[key][6] - 1):+.1f}%")
        cost = (g("node_tier_cost") or {}).get(tier)
        if cost is not None and http[key][3]:
            why.append(f"{http[key][3]:.3f} loop iterations/request x {cost:,.0f} ns/iteration (section 1) = "
                       f"{cost * http[key][3]:,.0f} ns/request")
        if not ab and http["no agent"][4] is not None:
            why.append(f"no-agent runs spread +/-{100 * http['no agent'][4]:.1f}%")
        rep.goal(f"default tier ({tier}) costs < 2% of Node req/s",
                 f"req/s {-100 * loss:+.1f}% vs no agent" + (" (side by side, 2b)" if ab else ""),
                 loss < 0.02, "; ".join(why))

    # probe cost by tier (issue 18), side by side (2b) against the A/A control
    ab = g("http_ab") or {}
    aa = ab.get("no agent (A/A)")
    for t, cpu_max, rps_max in ((tier or "light", 0.01, 0.01), ("phases", 0.03, 0.03)):
        v = ab.get(f"loopscope {t}")
        text = f"{t} tier: <= {100 * cpu_max:.0f}% CPU per request and <= {100 * rps_max:.0f}% req/s (2b)"
        if not v:
            rep.goal(text, "-", None, "section 2b not run")
            continue
        rep.goal(text, f"CPU/req {100 * (v[0] - 1):+.1f}%, req/s {100 * (v[1] - 1):+.1f}%",
                 v[0] - 1 <= cpu_max and 1 - v[1] <= rps_max,
                 f"A/A control: CPU/req {100 * (aa[0] - 1):+.1f}%, req/s {100 * (aa[1] - 1):+.1f}%" if aa else "")
    v = ab.get("loopscope counters")
    if v and aa:
        # indistinguishable: within the A/A control's own deviation plus its round-to-round spread
        tol_c = abs(aa[0] - 1) + aa[2] + v[2]
        rep.goal("counters tier indistinguishable from the A/A control (2b)",
                 f"CPU/req {100 * (v[0] - 1):+.1f}%, req/s {100 * (v[1] - 1):+.1f}%",
                 abs(v[0] - 1) <= tol_c and abs(v[1] - 1) <= abs(aa[1] - 1) + aa[2] + v[2],
                 f"A/A: CPU/req {100 * (aa[0] - 1):+.1f}%, req/s {100 * (aa[1] - 1):+.1f}%, spreads "
                 f"+/-{100 * aa[2]:.1f}% / +/-{100 * v[2]:.1f}%")
    else:
        rep.goal("counters tier indistinguishable from the A/A control (2b)", "-", None, "section 2b not run")
    fl = {t: x for t, x in (g("node_floor") or {}).items() if x[2] > 0 and x[4] is not None}
    if fl:
        rep.goal("each Node tier's added cost per iteration within 1.2x of its plan's floor (1c)",
                 ", ".join(f"{t} {x[4]:.2f}x" for t, x in fl.items()), all(x[4] <= 1.2 for x in fl.values()),
                 "floor = traps x calibrated uprobe hit + other runs x half a tracepoint pair")
    else:
        rep.goal("each Node tier's added cost per iteration within 1.2x of its plan's floor (1c)", "-", None,
                 "section 1 not run")

    # reference-loop probe budget (issue 3): ~2 us per iteration
    # Trap costs differ an order of magnitude between machines of our kind: the note
    # puts the figure next to this machine's floor (one USDT hit per iteration, on the
    # kind of nop the agent chose: the cheaper of the two calibrated).
    c = g("ref_tier_cost")
    calib = g("calib")
    floor = ""
    if calib and c is not None and calib.get("usdt_hit_ns"):
        hits = {"1-byte": calib["usdt_hit_ns"]}
        if calib.get("usdt_nop5_hit_ns"):
            hits["5-byte"] = calib["usdt_nop5_hit_ns"]
        kind = min(hits, key=hits.get)
        floor = (f"this machine's USDT hit on a {kind} nop {hits[kind]:,.0f} ns"
                 + "".join(f" ({k} nop {v:,.0f} ns)" for k, v in hits.items() if k != kind)
                 + f", one a loop iteration, before any BPF work ({c / hits[kind]:.2f}x)")
    rep.goal("reference loop: default probe set adds <= ~2 us per iteration",
             f"{c:,.0f} ns" if c is not None else "-", (c <= 2000) if c is not None else None,
             floor if c is not None else "see section 1")

    # agent CPU at 10k it/s
    a = g("agent_cpu", {})
    at10k = {k[0]: v for k, v in a.items() if k[1] == 10000}
    if at10k:
        worst = max(at10k.values())
        rep.goal("agent < 1% of a core at 10k iterations/s",
                 ", ".join(f"{k} {v:.2f}%" for k, v in at10k.items()), worst < 1.0,
                 "" if "node" in at10k else "Node not measured")
    else:
        rep.goal("agent < 1% of a core at 10k iterations/s", "-", None, "see section 3")

    # attach
    ms = g("attach_ms")
    rep.goal("attach < 300 ms (stat start -> probe live, reference loop)",
             f"{ms:.0f} ms" if ms is not None else "-", (ms < 300) if ms is not None else None,
             "" if ms is not None else "see section 3b")

    ms = g("attach_node_ms")
    rep.goal("attach < 300 ms (stat start -> stat ready, Node)",
             f"{ms:.0f} ms" if ms is not None else "-", (ms < 300) if ms is not None else None,
             "" if ms is not None else "see section 3b")

    # loop vs libuv
    r = g("libuv_ratio")
    rep.goal("reference loop within 1.3x of libuv per iteration (worse of: no fd, one fd watched)",
             f"{r:.2f}x" if r is not None else "-", (r <= 1.3) if r is not None else None,
             g("libuv_note", "") if r is None else "")

    # accuracy
    ok = g("acc_ok")
    rep.goal("reference loop accuracy within issue 3's bounds", "see section 4" if ok is not None else "-", ok,
             "" if ok is not None else "not run")
    ok = g("node_acc_ok")
    rep.goal("Node accuracy within issue 4's bounds (ELU 0.03, delay max)",
             "see section 4" if ok is not None else "-", ok, "" if ok is not None else "Node not measured")

    # serve
    sv = g("serve", {})
    if 50 in sv:
        rep.goal("serve: scrape of 50 targets < 20 ms", f"{sv[50][0]:.1f} ms", sv[50][0] < 20)
        rep.goal("serve: agent < 1% of a core at a 1 s scrape interval (50 targets)", f"{sv[50][1]:.2f}%",
                 sv[50][1] < 1.0)
    else:
        rep.goal("serve: scrape of 50 targets < 20 ms; agent < 1% of a core at 1 s scrapes", "-", None,
                 "see section 6")


# ---- README

README_HEAD = "## Tables"     # the section of tests/bench/README.md that --update-readme rewrites
BENCH_README = os.path.join(ROOT, "tests", "bench", "README.md")


def readme_section(report):
    """tests/bench/README.md's `## Tables` section: every table of the latest
    report.json, each under its heading with the line saying what made it, when and on
    what machine (the method paragraphs stay in build/bench/report.md)."""
    meta = report["meta"]
    machine = meta.get('machine') or 'machine: not calibrated'
    # trap costs differ an order of magnitude between machines: each table says which class made it
    made = (f"`{meta['command']}`, {meta['date']}, {meta['host']}"
            f"{' (QUICK RUN)' if meta['quick'] else ''}, load average "
            f"{meta.get('loadavg_start', 0):.2f} -> {meta.get('loadavg_end', 0):.2f}; {machine}.")
    out = [README_HEAD, ""]
    md = render_md(Report.from_json(report), meta).splitlines()
    i = next(k for k, line in enumerate(md) if line.startswith("## ") and line != "## Goals"
             and k > md.index("## Goals"))
    for line in md[i:]:
        if line.startswith("## "):
            out += ["#" + line, "", made]
            continue
        if line and not line.startswith("|"):
            continue                    # method paragraphs: see report.md
        out.append(line)
    out = [l for k, l in enumerate(out) if l or (k and out[k - 1])]   # no double blank lines
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def update_readme(report_json, readme):
    with open(report_json) as f:
        report = json.load(f)
    with open(readme) as f:
        text = f.read()
    sec = readme_section(report)
    start_i = text.find("\n" + README_HEAD + "\n")
    if start_i < 0:
        text = text.rstrip("\n") + "\n\n" + sec
    else:
        nxt = text.find("\n## ", start_i + 1)
        end_i = nxt if nxt >= 0 else len(text)
        text = text[:start_i + 1] + sec + text[end_i:]
    with open(readme, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- main

def node_version(env):
    rc, out = run([env.node, "--version"], 10)
    return out.strip() if rc == 0 else "?"


def git_commit():
    rc, out = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], 10)
    rc2, dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], 10)
    return out.strip() + ("+dirty" if dirty.strip() else "") if rc == 0 else "unknown"


SECTIONS = {
    "overhead": section_overhead,
    "http": section_http,
    "http_ab": section_http_ab,
    "agent": section_agent,
    "accuracy": section_accuracy,
    "libuv": section_libuv,
    "serve": section_serve,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--quick", action="store_true", help="short runs (to debug the harness)")
    ap.add_argument("--only", default="", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--out", default=None, help="report directory (default BUILD/bench)")
    ap.add_argument("--budget", type=float, default=720,
                    help="seconds; sections that would start after this are skipped (default 720)")
    ap.add_argument("--ab-baseline", default=None, metavar="LOOPSCOPE",
                    help="section 2b also runs this loopscope binary (another build) at the default tier")
    ap.add_argument("--ab-rounds", type=int, default=None, help="section 2b's rounds (default 10)")
    ap.add_argument("--update-readme", action="store_true",
                    help="run nothing: rewrite tests/bench/README.md's tables from the last report.json")
    args = ap.parse_args()
    if args.update_readme:
        out = os.path.abspath(args.out or os.path.join(args.build, "bench"))
        update_readme(os.path.join(out, "report.json"), BENCH_README)
        print(f"bench: tests/bench/README.md {README_HEAD} updated from {out}/report.json", file=sys.stderr)
        return
    cfg = argparse.Namespace()
    cfg.build = os.path.abspath(args.build)
    cfg.out = os.path.abspath(args.out or os.path.join(cfg.build, "bench"))
    cfg.quick = args.quick
    q = args.quick
    cfg.reps = 2 if q else 5
    cfg.warmup = 0.5 if q else 1.5
    cfg.measure = 0.6 if q else 1.0
    cfg.conns = 32
    cfg.http_s = 1 if q else 2
    cfg.http_reps = 1 if q else 12
    cfg.http_warm_s = 1 if q else 10
    cfg.ab_s = 1 if q else 3
    cfg.ab_reps = args.ab_rounds or (2 if q else 10)
    cfg.ab_baseline = os.path.abspath(args.ab_baseline) if args.ab_baseline else None
    if cfg.ab_baseline and not os.access(cfg.ab_baseline, os.X_OK):
        sys.exit(f"bench: --ab-baseline {args.ab_baseline}: not an executable file")
    cfg.clinic_reps = 1 if q else 2
    cfg.agent_s = 2.0 if q else 5.0
    cfg.attach_runs = 3 if q else 7
    cfg.acc_s = 2 if q else 4
    cfg.node_acc_intervals = 3 if q else 5
    cfg.serve_s = 4 if q else 10
    cfg.serve_targets = (1, 10) if q else (1, 10, 50)
    os.makedirs(os.path.join(cfg.out, "logs"), exist_ok=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    t0 = time.monotonic()
    load0 = os.getloadavg()
    commit = git_commit()       # what was built and is measured: edits made during the run do not count
    # run.sh measured it a moment ago (BENCH_CALIBRATED=1); bench.py alone measures now
    machine, calib = calibration(os.path.join(cfg.build, "loopscope"), os.environ.get("BENCH_CALIBRATED") != "1")
    print(machine, file=sys.stderr, flush=True)
    cfg.machine, cfg.calib = machine, calib
    env = Env(cfg.build, cfg.out)
    rep = Report()
    only = [x for x in args.only.split(",") if x]
    harness_errors = 0
    for name, fn in SECTIONS.items():
        if only and name not in only:
            continue
        ts = time.monotonic()
        if ts - t0 > args.budget:
            sec = rep.section(name, f"{name}", ["note"], "")
            rep.row(sec, f"not measured: the run passed its {args.budget:.0f} s budget before this section")
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            fn(env, cfg, rep)
        except Exception as e:      # one broken section must not cost the whole report
            import traceback
            traceback.print_exc()
            sec = rep.section(name, f"{name}: harness error", ["note"], "")
            rep.row(sec, f"not measured: bench.py failed in this section: {type(e).__name__}: {e}")
            harness_errors += 1
        print(f"bench: {name} done in {time.monotonic() - ts:.0f} s", file=sys.stderr, flush=True)

    judge_goals(env, cfg, rep)
    meta = {
        # the machine class: trap costs differ 13x between machines of our kind
        # run.sh sets BENCH_CMD to what the user typed ("make bench")
        "command": os.environ.get("BENCH_CMD") or " ".join(["tests/bench/bench.py"] + sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit,
        "host": f"{os.cpu_count()} CPUs, kernel {os.uname().release}, node {node_version(env)}",
        # other work on the machine is the main source of noise: say how much there was
        "loadavg_start": load0[0],
        "loadavg_end": os.getloadavg()[0],
        "elapsed_s": time.monotonic() - t0,
        "quick": q,
        "machine": machine,
        "calibration": calib,
    }
    md = render_md(rep, meta)
    with open(os.path.join(cfg.out, "report.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(cfg.out, "report.json"), "w") as f:
        json.dump({"meta": meta, "goals": rep.goals, "sections": rep.sections}, f, indent=1)
    print(md)
    print(f"bench: wrote {cfg.out}/report.md and report.json", file=sys.stderr)
    if harness_errors:
        print(f"bench: {harness_errors} section(s) failed inside bench.py (see above)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
