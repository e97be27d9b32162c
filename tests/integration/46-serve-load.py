#!/usr/bin/env python3
# timeout: 300
"""46-serve-load: 1,000 concurrent clients, slowloris, and a 1/s scraper in the middle.

serve runs attached to a loopdemo; tests/tools/http_load.py (127.0.0.1, bounded) drives it.
Asserted, in counts only:
 1. 1,000 clients x 3 requests (70% /metrics, 30% /events), default limits: every request
    gets a complete 200 or a 503 with Retry-After; 0 resets, 0 empty replies, nothing
    else; the 1/s scraper gets every scrape.
 2. The same against --max-conns 100: the 503 path is taken (busy > 0) and still
    0 resets, 0 empty replies, nothing else.
 3. 1,000 slowloris connections (a header line a second, never finished) with
    --header-timeout 2, plus 50 clients x 40 scrapes and the scraper: every slowloris
    connection is dropped by the server before the run ends, the clients get 200 or 503
    only, the scraper gets every scrape.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPDEMO, Serve, tap, done  # noqa: E402

LOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "http_load.py")


def load(port, *args):
    r = subprocess.run([sys.executable, LOAD, "--port", str(port)] + list(args),
                       capture_output=True, text=True, timeout=200)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"error": (r.stdout + r.stderr)[-400:]}


def bad(counts):
    return {k: v for k, v in counts.items() if k not in ("ok", "busy")}


def run(name, serve_args, load_args, expect_busy):
    demo = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve = Serve(["-p", str(demo.pid)] + serve_args)
    port, err = serve.port, serve.lines
    try:
        tap(port is not None, "%s: serve listens (%s)" % (name, err[-1:]))
        if port is None:
            return None
        out = load(port, *load_args)
        tap("error" not in out, "%s: the load tool ran (%s)" % (name, out.get("error", "")))
        if "error" in out:
            return None
        m, e = out["metrics"], out["events"]
        total = sum(m.values()) + sum(e.values())
        want = out["clients"] * out["rounds"]
        tap(not bad(m) and not bad(e) and total == want and out["unfinished_clients"] == 0,
            "%s: %d of %d requests answered (/metrics %s, /events %s), resets/empty/other %s %s"
            % (name, total, want, m, e, bad(m), out["samples"][:3]))
        if expect_busy:
            tap(m.get("busy", 0) + e.get("busy", 0) > 0, "%s: over the limit the answer is a 503 (%d)"
                % (name, m.get("busy", 0) + e.get("busy", 0)))
        return out
    finally:
        rc = serve.stop()
        demo.kill()
        demo.wait()
        tap(rc == 0, "%s: serve exits 0 on SIGTERM (ASan clean): rc %s %s" % (name, rc, err[-2:]))


def main():
    out = run("1000 clients", [], ["--clients", "1000", "--rounds", "3", "--events-share", "0.3", "--scraper",
                                    "--deadline", "150"], False)
    if out:
        s = out["scraper"]
        tap(s["total"] >= 1 and s["ok"] == s["total"], "1000 clients: the 1/s scraper got %d of %d %s"
            % (s["ok"], s["total"], s["failures"]))
        print("# figures: %s" % json.dumps({k: out[k] for k in ("metrics", "events", "scraper", "seconds")}))
    run("--max-conns 100", ["--max-conns", "100"],
        ["--clients", "1000", "--rounds", "3", "--events-share", "0.3", "--deadline", "150"], True)
    out = run("slowloris", ["--header-timeout", "2"],
              ["--clients", "50", "--rounds", "40", "--slowloris", "1000", "--slowloris-head-start", "2",
               "--scraper", "--deadline", "60"], False)
    if out:
        sl, s = out["slowloris"], out["scraper"]
        tap(sl["closed_by_server"] == 1000, "slowloris: %d of 1000 dropped by the server while the run lasted "
            "(lifetimes %s s)" % (sl["closed_by_server"], sl["lifetimes_s"]))
        tap(s["total"] >= 1 and s["ok"] == s["total"], "slowloris: the 1/s scraper got %d of %d %s"
            % (s["ok"], s["total"], s["failures"]))
    return done()


if __name__ == "__main__":
    sys.exit(main())
