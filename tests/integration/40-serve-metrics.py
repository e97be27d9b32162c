#!/usr/bin/env python3
# timeout: 120
"""40-serve-metrics: `loopscope serve` attached to loopdemo.

/metrics passes `promtool check metrics`; every histogram is cumulative (buckets never
decrease with le, +Inf == _count); the families userspace/wire/metrics.md lists are there with the
demo's pid/comm/runtime/loop labels; gzip and plain bodies decode to the same text;
HEAD has the GET's size; /events carries snapshot lines and the demo's starvation
episodes; after the demo exits its series stay with loopscope_target_up 0 and the
final counts match the demo's ground truth; --compat prom-client adds prom-client's
series. The agent is the ASan build, so a leak or overflow fails the exit check.
"""
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPDEMO, tap, done, Serve  # noqa: E402




def start_serve(args):
    """Start serve (lib.Serve); returns (it, its port, its stderr lines so far)."""
    s = Serve(args)
    return s, s.port, s.lines


def http(port, method, path, headers=None, read_for=None):
    """One request on its own connection; returns (status, headers dict, raw body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    hdr = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
    s.sendall(("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n" % (method, path, hdr)).encode())
    data = b""
    end = time.monotonic() + (read_for or 30)
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    st = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    h = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        h[k.strip().lower()] = v.strip()
    return st, h, body


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """[(name, {labels}, value)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            out.append(("<unparsable>", {"line": line}, 0.0))
            continue
        out.append((m.group(1), dict(LABEL.findall(m.group(3) or "")), float(m.group(4))))
    return out


def check_histograms(samples):
    """Every histogram series: non-decreasing cumulative buckets, +Inf == _count."""
    series = {}
    counts = {}
    for name, lb, v in samples:
        if name.endswith("_bucket"):
            key = (name[:-7], tuple(sorted((k, x) for k, x in lb.items() if k != "le")))
            le = float("inf") if lb["le"] == "+Inf" else float(lb["le"])
            series.setdefault(key, []).append((le, v))
        elif name.endswith("_count"):
            counts[(name[:-6], tuple(sorted(lb.items())))] = v
    bad = []
    for key, b in series.items():
        les = [x[0] for x in b]
        vals = [x[1] for x in b]
        if les != sorted(les) or vals != sorted(vals) or les[-1] != float("inf") or counts.get(key) != vals[-1]:
            bad.append(key)
    return len(series), bad


FAMILIES = [
    "loopscope_target_info", "loopscope_target_up", "loopscope_loops", "loopscope_iterations_total",
    "loopscope_busy_seconds_total", "loopscope_idle_seconds_total", "loopscope_eventloop_utilization",
    "loopscope_phase_duration_seconds", "loopscope_iteration_duration_seconds",
    "loopscope_eventloop_delay_seconds", "loopscope_not_polling_seconds", "loopscope_poll_wait_seconds",
    "loopscope_timer_lateness_seconds", "loopscope_renders_total",
    "loopscope_drain_duration_seconds", "loopscope_drain_callbacks_total", "loopscope_starvation_episodes_total",
    "loopscope_stall_episodes_total", "loopscope_episodes_in_progress", "loopscope_attached_targets",
    "loopscope_probe_hits_total", "loopscope_ringbuf_drops_total", "loopscope_episodes_total",
    "loopscope_agent_cpu_seconds_total", "loopscope_agent_resident_memory_bytes", "loopscope_scrape_duration_seconds",
    "loopscope_scrapes_total", "loopscope_http_connections", "loopscope_http_rejected_total",
    "loopscope_events_dropped_total", "loopscope_build_info", "loopscope_gc_pause_seconds",
]

# Lines whose value describes serve itself at the moment of the request.
VOLATILE = re.compile(r"^loopscope_(scrape|scrapes|http|agent|events_dropped)")


def main():
    tmp = tempfile.mkdtemp(prefix="loopscope-40-")
    gt_path = os.path.join(tmp, "gt.json")
    demo = subprocess.Popen([LOOPDEMO, "--block", "30", "--every", "200", "--tick-starve", "150", "--every", "1000",
                             "--duration", "4", "--wait-attach", "--stats-json", gt_path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve, port, err = start_serve(["-p", str(demo.pid), "--keep-exited", "120"])
    try:
        tap(port is not None, "serve -p %d listens (%r)" % (demo.pid, err[-2:]))
        if port is None:
            return 1
        events = {}
        ev_thread = threading.Thread(target=lambda: events.update(
            dict(zip(("status", "headers", "body"), http(port, "GET", "/events", read_for=3.0)))))
        ev_thread.start()
        time.sleep(1.5)
        st, h, body = http(port, "GET", "/metrics")
        text = body.decode()
        tap(st == 200 and h.get("content-type") == "text/plain; version=0.0.4; charset=utf-8",
            "GET /metrics while the demo runs: 200, %s" % h.get("content-type"))
        pc = subprocess.run(["promtool", "check", "metrics"], input=text,
                            capture_output=True, text=True)
        tap(pc.returncode == 0, "promtool check metrics: clean (%s)" % (pc.stdout + pc.stderr).strip()[:300])
        samples = parse(text)
        tap(not any(s[0] == "<unparsable>" for s in samples), "every sample line parses")
        nh, bad = check_histograms(samples)
        tap(nh >= 10 and not bad, "%d histogram series, all cumulative with +Inf == _count (bad: %s)" % (nh, bad[:2]))
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        missing = [f for f in FAMILIES if f not in types]
        tap(not missing, "every documented family present (missing %s)" % missing)
        tap(all(t != "counter" or f.endswith("_total") for f, t in types.items()), "counters end in _total")
        tap("nodejs_eventloop_lag_seconds" not in types, "no prom-client series without --compat")
        mine = [lb for name, lb, v in samples if name == "loopscope_iterations_total"]
        tap(len(mine) == 1 and mine[0] == {"pid": str(demo.pid), "comm": "loopdemo", "runtime": "reference",
                                            "loop": str(demo.pid)},
            "loop labels pid/comm/runtime/loop: %s" % mine)
        phases = sorted(lb["phase"] for name, lb, v in samples if name == "loopscope_phase_duration_seconds_count")
        tap(phases == sorted(["timers", "pending", "idle", "prepare", "poll", "check", "close"]),
            "phase label carries the seven phases")
        le = [lb["le"] for name, lb, v in samples
              if name == "loopscope_eventloop_delay_seconds_bucket"]
        tap(len(le) == 82 and le[0] == "0.000016383" and le[-2] == "17.179869183" and le[-1] == "+Inf",
            "delay buckets: the documented fine set (%d le, %s .. %s)" % (len(le), le[:1], le[-2:-1]))
        # The body changes as the demo runs: HEAD is compared with GETs just before and
        # after it (on a loaded machine, the GET above may be seconds old).
        _, _, before = http(port, "GET", "/metrics")
        st, h, hbody = http(port, "HEAD", "/metrics")
        _, _, after = http(port, "GET", "/metrics")
        lo, hi = sorted((len(before), len(after)))
        tap(st == 200 and hbody == b"" and lo - 200 < int(h.get("content-length", 0)) < hi + 200,
            "HEAD /metrics: no body, Content-Length %s vs GETs before and after %d, %d"
            % (h.get("content-length"), len(before), len(after)))

        demo_rc = demo.wait(30)
        tap(demo_rc == 0, "loopdemo ran 4 s and exited 0")
        ev_thread.join(10)
        lines = [l for l in events.get("body", b"").decode(errors="replace").split("\n") if l]
        objs = []
        for l in lines:
            try:
                objs.append(json.loads(l))
            except ValueError:
                objs.append({"type": "<bad json>", "line": l[:80]})
        snaps = [o for o in objs if o.get("type") == "snapshot"]
        eps = [o for o in objs if o.get("type") == "episode"]
        tap(events.get("status") == 200 and events["headers"].get("content-type") == "application/x-ndjson"
            and all(o.get("type") in ("snapshot", "episode") for o in objs),
            "/events: NDJSON, every line a snapshot or an episode (%d lines)" % len(objs))
        tap(len(snaps) >= 2 and snaps[-1]["v"] == 1 and snaps[-1]["hist"] == "loglin4-40"
            and snaps[-1]["targets"][0]["pid"] == demo.pid
            and snaps[-1]["targets"][0]["loops"][0]["delay"]["count"] > 0,
            "/events: %d snapshots, the last with the demo's loop and its delay histogram" % len(snaps))
        tap(any(e["kind"] == "tick_starvation" and e["pid"] == demo.pid and e["end_ns"] > 0 for e in eps),
            "/events: the demo's nextTick starvation episode (%s)" % [(e["kind"], e["end_ns"] > 0) for e in eps][:6])

        # until the exit is in the snapshots (an interval; up to 10 s)
        t0 = time.monotonic()
        while True:
            st, h, body = http(port, "GET", "/metrics")
            if re.search(r'^loopscope_attached_targets 0$', body.decode(), re.M) or time.monotonic() - t0 > 10:
                break
            time.sleep(0.1)
        plain = body.decode()
        st2, h2, zbody = http(port, "GET", "/metrics", {"Accept-Encoding": "gzip"})
        try:
            unz = gzip.decompress(zbody).decode()
        except (OSError, EOFError) as e:
            unz = "<%s>" % e
        strip = lambda t: "\n".join(l for l in t.splitlines() if not VOLATILE.match(l))
        tap(h2.get("content-encoding") == "gzip" and "content-encoding" not in h and strip(unz) == strip(plain),
            "gzip and plain bodies decode to the same text (%d vs %d bytes on the wire)" % (len(zbody), len(body)))
        samples = parse(plain)
        up = [v for name, lb, v in samples if name == "loopscope_target_up" and lb["pid"] == str(demo.pid)]
        att = [v for name, lb, v in samples if name == "loopscope_attached_targets"]
        tap(up == [0.0] and att == [0.0], "after the exit: target_up 0 (%s), attached_targets 0 (%s)" % (up, att))
        with open(gt_path) as f:
            gt = json.loads(f.read().strip().splitlines()[-1])
        val = lambda name, **kw: [v for nm, lb, v in samples if nm == name and all(lb.get(k) == x for k, x in kw.items())]
        it = val("loopscope_iterations_total")
        tap(it and abs(it[0] - gt["iterations"]) <= max(3, 0.02 * gt["iterations"]),
            "iterations_total %s vs ground truth %d" % (it, gt["iterations"]))
        starv = val("loopscope_starvation_episodes_total", queue="nexttick")
        tap(starv == [float(gt["ticks"]["starvation_episodes"])] and starv[0] >= 2,
            "nexttick starvation episodes %s == ground truth %d" % (starv, gt["ticks"]["starvation_episodes"]))
        busy, idle = val("loopscope_busy_seconds_total"), val("loopscope_idle_seconds_total")
        util = busy[0] / (busy[0] + idle[0]) if busy and idle and busy[0] + idle[0] > 0 else -1
        tap(abs(util - gt["utilization"]) <= 0.02,
            "busy / (busy + idle) from the counters %.3f vs ground-truth utilization %.3f" % (util, gt["utilization"]))
        dc = val("loopscope_eventloop_delay_seconds_count")
        tap(dc and abs(dc[0] - gt["delay"]["count"]) <= max(3, 0.02 * gt["delay"]["count"]),
            "delay samples %s vs ground truth %d" % (dc, gt["delay"]["count"]))
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        rc = serve.stop()
    tap(rc == 0, "serve exits 0 on SIGTERM (ASan clean): rc %s, stderr %r" % (rc, err[-3:]))

    # --compat prom-client, on a second short demo.
    demo = subprocess.Popen([LOOPDEMO, "--block", "5", "--every", "50", "--duration", "3", "--wait-attach"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve, port, err = start_serve(["-p", str(demo.pid), "--compat", "prom-client"])
    try:
        time.sleep(2.2)
        st, h, body = http(port, "GET", "/metrics") if port else (0, {}, b"")
        text = body.decode()
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        want = {"nodejs_eventloop_lag_seconds": "gauge", "nodejs_eventloop_lag_min_seconds": "gauge",
                "nodejs_eventloop_lag_max_seconds": "gauge", "nodejs_eventloop_lag_mean_seconds": "gauge",
                "nodejs_eventloop_lag_stddev_seconds": "gauge", "nodejs_eventloop_lag_p50_seconds": "gauge",
                "nodejs_eventloop_lag_p90_seconds": "gauge", "nodejs_eventloop_lag_p99_seconds": "gauge"}
        ours = {k: v for k, v in types.items() if k.startswith("nodejs_")}
        tap(ours == want, "--compat prom-client: exactly prom-client's eventLoopLag families and types (%s)" % ours)
        samples = parse(text)
        g = lambda nm: [v for name, lb, v in samples if name == nm]
        p50, p99, mx = g("nodejs_eventloop_lag_p50_seconds"), g("nodejs_eventloop_lag_p99_seconds"), \
            g("nodejs_eventloop_lag_max_seconds")
        # The blocks are 5 ms of spinning; a loaded machine only makes spans longer.
        tap(len(p99) == 1 and 0.005 <= p99[0] <= mx[0] * 1.0001 and p50[0] <= p99[0],
            "nodejs_eventloop_lag p50 %s <= p99 %s <= max %s, p99 >= the 5 ms block" % (p50, p99, mx))
        # promtool's only objection may be prom-client's own names (type in the name).
        pc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        other = [l for l in (pc.stdout + pc.stderr).splitlines()
                 if l.strip() and "should not include type" not in l]
        tap(not other, "promtool finds nothing but prom-client's naming (%s)" % other[:3])
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)    # its 3 s are not needed past the checks
        demo.wait(30)
        rc = serve.stop()
    tap(rc == 0, "compat serve exits 0 (rc %s)" % rc)

    # A stall long enough to be seen while it lasts: the gauge goes to 1 and back to 0,
    # and /events carries the episode as it starts (end_ns 0) and as it ends.
    demo = subprocess.Popen([LOOPDEMO, "--block", "1500", "--every", "2000", "--duration", "4", "--wait-attach"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve, port, err = start_serve(["-p", str(demo.pid)])
    try:
        events = {}
        ev_thread = threading.Thread(target=lambda: events.update(
            dict(zip(("status", "headers", "body"), http(port, "GET", "/events", read_for=4.5)))))
        ev_thread.start()
        seen = []
        key = 'loopscope_episodes_in_progress{pid="%d",comm="loopdemo",runtime="reference",loop="%d",kind="stall"} ' \
            % (demo.pid, demo.pid)
        end = time.monotonic() + 4.5
        while time.monotonic() < end:
            st, h, body = http(port, "GET", "/metrics")
            for line in body.decode().splitlines():
                if line.startswith(key) and (not seen or seen[-1] != line[len(key):]):
                    seen.append(line[len(key):])
            time.sleep(0.1)
        tap("1" in seen and seen.index("1") + 1 < len(seen) and seen[seen.index("1") + 1] == "0",
            "episodes_in_progress{kind=stall} goes 1 during a 1.5 s stall, then 0 (values seen: %s)" % seen)
        ev_thread.join(10)
        eps = [json.loads(l) for l in events.get("body", b"").decode().split("\n") if '"type":"episode"' in l]
        stalls = [e for e in eps if e["kind"] == "stall" and e["pid"] == demo.pid]
        tap(any(e["end_ns"] == 0 for e in stalls) and any(e["end_ns"] > 0 for e in stalls),
            "/events: the stall as it starts (end_ns 0) and as it ends (%s)" % [(e["phase"], e["end_ns"] > 0)
                                                                              for e in stalls])
    finally:
        demo.wait(30)
        rc = serve.stop()
    tap(rc == 0, "serve exits 0 (rc %s)" % rc)
    return done()


if __name__ == "__main__":
    sys.exit(main())
