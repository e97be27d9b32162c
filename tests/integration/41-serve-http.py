#!/usr/bin/env python3
# timeout: 90
"""41-serve-http: the HTTP server of `loopscope serve` under bad and hostile clients.

serve runs attached to a loopdemo (so /metrics is a real ~100 kB body) plus --exe on a
binary nobody runs, with a 2 s header timeout and a 250-connection limit.
Asserted: 400 / 404 / 405 (+Allow) / 431 / 505, HEAD, keep-alive and pipelining,
a one-byte-per-second client that never blocks scrapes and is dropped at its header
deadline, 200 concurrent scrapes all answered, 300 idle connections against the limit
(the oldest are told 503 and closed; a scrape still gets in), OPTIONS * and a 10 kB URI (414),
a /events reader that stops reading without slowing scrapes, and a clean exit (ASan).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, LOOPDEMO, tap, done, Serve  # noqa: E402




def start_serve(args):
    """Start serve (lib.Serve); returns (it, its port, its stderr lines so far)."""
    s = Serve(args)
    return s, s.port, s.lines


def connect(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


def recv_all(s, until=None, limit=10 << 20):
    buf = b""
    while len(buf) < limit:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        if until is not None and until(buf):
            break
    return buf


def one_response_done(buf):
    """True once buf holds one complete response with a Content-Length."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
    return m is not None and len(body) >= int(m.group(1))


def request(port, raw, timeout=5):
    s = connect(port, timeout)
    s.sendall(raw)
    data = recv_all(s)
    s.close()
    return data


def status_of(resp):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    return int(m.group(1)) if m else None


def scrape_time(port):
    t = time.monotonic()
    r = request(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    return time.monotonic() - t, status_of(r)


def main():
    if not os.path.exists(LOOPSCOPE):
        print("not ok 1 - %s missing (make first)" % LOOPSCOPE)
        return 1
    tmp = tempfile.mkdtemp(prefix="loopscope-41-")
    nobody = os.path.join(tmp, "nobody-runs-this")
    shutil.copy("/bin/true", nobody)
    demo = subprocess.Popen([LOOPDEMO, "--block", "2", "--every", "50", "--duration", "60"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve, port, err = start_serve(["-p", str(demo.pid), "--exe", nobody, "--header-timeout", "2",
                                    "--max-conns", "250"])
    try:
        tap(port is not None, "serve listens on a free port (stderr: %r)" % err[-3:])
        if port is None:
            return 1
        run_cases(port)
    finally:
        rc = serve.stop()
        demo.kill()
        demo.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    tap(rc == 0, "serve exits 0 on SIGTERM with nothing leaked (rc %s; stderr tail %r)" % (rc, err[-5:]))
    return done()


def run_cases(port):
    # --- status codes (first wait for the demo's loop to show up: one interval)
    # (histograms appear with their first sample: wait for the phases too)
    for _ in range(40):
        r = request(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        if b"loopscope_iterations_total{" in r and len(r) > 50000:
            break
        time.sleep(0.1)
    tap(status_of(r) == 200 and b"version=0.0.4" in r and b"loopscope_attached_targets 1\n" in r
        and len(r) > 50000, "GET /metrics: 200, text format 0.0.4, the demo's series (%d bytes)" % len(r))
    r = request(port, b"HELLO\r\n\r\n")
    tap(status_of(r) == 400, "malformed request line: 400 (%r)" % r[:40])
    r = request(port, b"GET /metrics HTTP/1.1\r\n\r\n")
    tap(status_of(r) == 400, "HTTP/1.1 without Host: 400")
    r = request(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
    tap(status_of(r) == 400, "header line without a colon: 400")
    r = request(port, b"GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    tap(status_of(r) == 404, "unknown path: 404")
    for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS"):
        r = request(port, method + b" /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        tap(status_of(r) == 405 and b"\r\nAllow: GET, HEAD\r\n" in r, "%s /metrics: 405 with Allow" % method.decode())
    # A refused body: the 405 must survive the unread bytes (lingering close, no reset).
    s = connect(port)
    s.sendall(b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n")
    try:
        s.sendall(b"x" * 300000)
        r = recv_all(s)
    except OSError as e:
        r = b"<%s>" % str(e).encode()
    s.close()
    tap(status_of(r) == 405, "POST with a 300 kB body: the 405 arrives intact (%r)" % r[:40])
    r = request(port, b"GET /metrics HTTP/2.0\r\nHost: t\r\n\r\n")
    tap(status_of(r) == 505, "HTTP/2.0 request line: 505")
    r = request(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    tap(status_of(r) == 431, "20 kB of headers: 431")
    r = request(port, b"GET /" + b"a" * 400 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    tap(status_of(r) == 414, "400-byte target: 414")
    r = request(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    tap(status_of(r) == 200 and r.endswith(b"attached\n"), "GET /healthz: 200")

    # --- HEAD, keep-alive, pipelining
    s = connect(port)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
    r1 = recv_all(s, one_response_done)
    s.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
    r2 = recv_all(s, lambda b: b"\r\n\r\n" in b)
    time.sleep(0.2)
    s.settimeout(0.3)
    extra = recv_all(s)
    head2 = r2.partition(b"\r\n\r\n")
    cl = re.search(rb"(?i)content-length: (\d+)", head2[0])
    tap(status_of(r1) == 200 and status_of(r2) == 200 and cl and int(cl.group(1)) > 1000
        and head2[2] == b"" and extra == b"",
        "keep-alive: GET then HEAD on one connection; HEAD has Content-Length and no body")
    s.settimeout(5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    r = recv_all(s)
    tap(r.count(b"HTTP/1.1 200 OK") == 3, "three pipelined requests answered in order, then closed")
    s.close()

    # --- gzip
    r = request(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    tap(b"\r\nContent-Encoding: gzip\r\n" in r and r.partition(b"\r\n\r\n")[2][:2] == b"\x1f\x8b",
        "Accept-Encoding: gzip gets a gzip body")
    r = request(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip;q=0\r\nConnection: close\r\n\r\n")
    tap(b"Content-Encoding" not in r, "gzip;q=0 gets plain text")

    # --- one byte per second: never blocks others, dropped at the 2 s header deadline
    slow = connect(port)
    slow_req = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
    t0 = time.monotonic()
    worst = 0.0
    dropped_after = None
    for i in range(len(slow_req)):
        try:
            slow.sendall(slow_req[i:i + 1])
            slow.settimeout(0.01)
            try:
                if slow.recv(4096) == b"":
                    dropped_after = time.monotonic() - t0
            except socket.timeout:
                pass
            except OSError:
                dropped_after = time.monotonic() - t0
        except OSError:
            dropped_after = time.monotonic() - t0
        if dropped_after is not None:
            break
        dt, st = scrape_time(port)
        worst = max(worst, dt)
        time.sleep(max(0.0, 1.0 - dt))
    slow.close()
    tap(dropped_after is not None and 1.5 <= dropped_after <= 4.5,
        "a one-byte-per-second client is dropped at the header timeout (after %s s)" %
        (None if dropped_after is None else round(dropped_after, 2)))
    tap(worst < 0.5, "scrapes meanwhile answered at once (slowest %.3f s)" % worst)

    # --- 200 concurrent connections, all answered
    socks = [connect(port, 10) for _ in range(200)]
    for s in socks:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    ok = 0
    for s in socks:
        r = recv_all(s)
        ok += status_of(r) == 200 and one_response_done(r)
        s.close()
    tap(ok == 200, "200 concurrent scrapes: %d answered 200 with a full body" % ok)

    # --- render cache: concurrent scrapes in one interval share one render
    import gzip as _gzip

    def scrape_body(gz):
        hdr = b"Accept-Encoding: gzip\r\n" if gz else b""
        r = request(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\n" + hdr + b"Connection: close\r\n\r\n")
        head, _, body = r.partition(b"\r\n\r\n")
        if b"Content-Encoding: gzip" in head:
            body = _gzip.decompress(body)
        return body

    def renders_of(body):
        m = re.search(rb"\nloopscope_renders_total (\d+)\n", body)
        return int(m.group(1)) if m else None

    bodies = [None] * 20
    def worker(i):
        bodies[i] = scrape_body(i % 2 == 0)
    ths = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    rs = [renders_of(b) for b in bodies]
    tap(None not in rs and len(set(rs)) <= 2 and len(set(bodies)) == len(set(rs)),
        "20 concurrent scrapes (half gzip): %d render(s), %d distinct bod(ies)" % (len(set(rs)), len(set(bodies))))
    r0 = renders_of(scrape_body(False))
    t_end = time.monotonic() + 3
    k = 0
    while time.monotonic() < t_end:
        scrape_body(k % 2 == 0)
        k += 1
        time.sleep(0.03)
    r1 = renders_of(scrape_body(False))
    tap(r0 is not None and r1 is not None and r1 - r0 <= 6 and k >= 30,
        "%d scrapes over 3 s at a 1 s interval: %s renders" % (k, None if r0 is None or r1 is None else r1 - r0))

    # --- connection limit (250): 300 idle connections cannot lock a scraper out
    socks = []
    for _ in range(300):
        try:
            socks.append(connect(port, 10))
        except OSError:
            break
    time.sleep(0.3)
    dt, st = scrape_time(port)
    tap(len(socks) == 300 and st == 200,
        "300 idle connections against a 250 limit, then a scrape: 200 (%d opened, %.3f s)" % (len(socks), dt))
    closed = resets = 0
    for s in socks:
        s.setblocking(False)
        try:
            got = s.recv(64)
            closed += got == b"" or got.startswith(b"HTTP/1.1 503")
        except BlockingIOError:
            pass
        except ConnectionResetError:
            resets += 1
        s.close()
    tap(closed >= 50 and resets == 0,
        "the oldest idle connections made room: %d of 300 told 503 or closed, %d reset" % (closed, resets))
    time.sleep(0.3)
    dt, st = scrape_time(port)
    tap(st == 200, "after the idle connections close, scrapes work again (%.3f s)" % dt)
    r = request(port, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
    tap(status_of(r) in (400, 405), "OPTIONS *: %s, not 404" % status_of(r))
    r = request(port, b"GET /" + b"u" * 10000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    tap(status_of(r) == 414, "10 kB URI: 414 (%s)" % status_of(r))

    # --- an /events reader that never reads does not slow scrapes
    ev = connect(port)
    ev.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ev.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
    good = connect(port)
    good.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
    worst = 0.0
    for _ in range(10):
        dt, st = scrape_time(port)
        worst = max(worst, dt)
        time.sleep(0.25)
    good.settimeout(2)
    data = recv_all(good, lambda b: b.count(b'{"type":"snapshot"') >= 2)
    head, _, body = data.partition(b"\r\n\r\n")
    tap(b"application/x-ndjson" in head and body.count(b'{"type":"snapshot"') >= 2,
        "/events streams one snapshot line per interval (%d seen)" % body.count(b'{"type":"snapshot"'))
    tap(worst < 0.5, "a stalled /events reader does not slow scrapes (slowest %.3f s)" % worst)
    ev.close()
    good.close()
    r = request(port, b"HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n")
    tap(status_of(r) == 200 and r.endswith(b"\r\n\r\n"), "HEAD /events: head only, then closed")


if __name__ == "__main__":
    sys.exit(main())
