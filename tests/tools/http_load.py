#!/usr/bin/env python3
"""http_load.py: a bounded HTTP load generator for `loopscope serve` (127.0.0.1 only).

    http_load.py --port P [--clients 1000] [--rounds 3] [--path /metrics] [--events-share 0.5]
                 [--scraper] [--slowloris N] [--deadline 120] [--tls-ca CA --user U --password W]

Each client opens a fresh connection per request (Connection: close), sends one GET and
reads the whole answer, --rounds times; every answer is classified:
  ok        200 with a complete body (Content-Length bytes; for /events the first line)
  busy      503 carrying Retry-After
  reset     the connection was reset (ECONNRESET / EPIPE) at any point
  empty     the server closed before sending a byte
  other     anything else (bad status, truncated body, timeout)
--scraper adds one client that scrapes /metrics once a second for as long as the load
runs, in a process of its own with blocking sockets (so the 1,000 clients' event loop
lag is not counted against the server); its record is reported apart. --slowloris N opens N connections that send a
request head one header line per second and never finish it; for each the time until
the server closed it is recorded. Everything stops by itself at --deadline seconds.
Prints one JSON object on stdout. Only loopback addresses are accepted.
"""
import argparse
import asyncio
import base64
import json
import ssl
import sys
import time


def classify_head(data, path):
    """(kind, detail) for a complete read of one answer."""
    if not data:
        return "empty", ""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return "other", "no complete head (%d bytes)" % len(data)
    head = data[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return "other", "bad status line %r" % head[0][:60]
    status = int(parts[1])
    hdrs = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    body = data[end + 4:]
    if status == 503:
        return ("busy", "") if "retry-after" in hdrs else ("other", "503 without Retry-After")
    if status != 200:
        return "other", "status %d" % status
    if path == "/events":
        return ("ok", "") if b"\n" in body else ("other", "no complete /events line")
    want = int(hdrs.get("content-length", "-1"))
    if want != len(body):
        return "other", "body %d of %d bytes" % (len(body), want)
    return "ok", ""


async def one_request(args, path, ctx):
    """Classify one request on a fresh connection."""
    data = b""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", args.port, ssl=ctx,
                                    server_hostname="localhost" if ctx else None), args.timeout)
        auth = ""
        if args.user is not None:
            tok = base64.b64encode(("%s:%s" % (args.user, args.password)).encode()).decode()
            auth = "Authorization: Basic %s\r\n" % tok
        writer.write(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sAccept-Encoding: identity\r\n"
                      "Connection: close\r\n\r\n" % (path, auth)).encode())
        await writer.drain()
        t_end = time.monotonic() + args.timeout
        while True:
            left = t_end - time.monotonic()
            if left <= 0:
                return "other", "timeout after %d bytes" % len(data)
            chunk = await asyncio.wait_for(reader.read(65536), left)
            if not chunk:
                break
            data += chunk
            if path == "/events" and b"\r\n\r\n" in data and b"\n" in data[data.find(b"\r\n\r\n") + 4:]:
                break
            if path == "/events" and data.startswith(b"HTTP/1.1 503") and b"\r\n\r\n" in data:
                continue
        return classify_head(data, path)
    except (ConnectionResetError, BrokenPipeError):
        return "reset", "after %d bytes" % len(data)
    except ssl.SSLError as e:
        return ("reset" if "EOF" not in str(e) else "empty"), "tls: %s" % e
    except (asyncio.TimeoutError, OSError) as e:
        return "other", "%s after %d bytes" % (type(e).__name__, len(data))
    finally:
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2)
            except Exception:
                pass


async def client(args, i, counts, ctx, stop):
    path = "/events" if (i % 100) < args.events_share * 100 else args.path
    for _ in range(args.rounds):
        if stop.is_set():
            return
        kind, detail = await one_request(args, path, ctx)
        counts[path][kind] = counts[path].get(kind, 0) + 1
        if kind not in ("ok", "busy") and len(counts["samples"]) < 20:
            counts["samples"].append("%s %s: %s" % (path, kind, detail))


def scrape_once(args):
    """One blocking GET /metrics on a fresh connection, classified."""
    import socket
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout) as s:
            if args.tls_ca:
                s = ssl.create_default_context(cafile=args.tls_ca).wrap_socket(s, server_hostname="localhost")
            auth = ""
            if args.user is not None:
                tok = base64.b64encode(("%s:%s" % (args.user, args.password)).encode()).decode()
                auth = "Authorization: Basic %s\r\n" % tok
            s.sendall(("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n%sAccept-Encoding: identity\r\n"
                       "Connection: close\r\n\r\n" % auth).encode())
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return classify_head(data, "/metrics")
    except (ConnectionResetError, BrokenPipeError):
        return "reset", "after %d bytes" % len(data)
    except OSError as e:
        return "other", "%s after %d bytes" % (type(e).__name__, len(data))


def scraper_proc(args, stop, out):
    """The 1/s scraper, in its own process: results go to out (a Queue) at the end."""
    record = []
    while not stop.is_set():
        t0 = time.monotonic()
        kind, detail = scrape_once(args)
        record.append(kind if kind == "ok" else "%s (%s)" % (kind, detail))
        stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))
    out.put(record)


async def slowloris(args, n, drops, stop):
    """One connection sending a header line a second; its lifetime until the server closes."""
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", args.port), args.timeout)
    except (OSError, asyncio.TimeoutError):
        drops.append(None)
        return
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        k = 0
        while not stop.is_set():
            try:
                got = await asyncio.wait_for(reader.read(4096), 1.0)
                if not got:
                    break
                continue        # a 408 or 503: keep reading until EOF
            except asyncio.TimeoutError:
                pass
            writer.write(b"X-Slow-%d: 1\r\n" % k)
            k += 1
            await writer.drain()
        drops.append(time.monotonic() - t0 if not stop.is_set() else None)
    except (ConnectionResetError, BrokenPipeError):
        drops.append(time.monotonic() - t0)
    finally:
        writer.close()


async def main_async(args):
    ctx = None
    if args.tls_ca:
        ctx = ssl.create_default_context(cafile=args.tls_ca)
    counts = {args.path: {}, "/events": {}, "samples": []}
    stop = asyncio.Event()
    record = []
    drops = []
    loris = [asyncio.create_task(slowloris(args, i, drops, stop)) for i in range(args.slowloris)]
    if loris:
        await asyncio.sleep(args.slowloris_head_start)
    scr = None
    if args.scraper:
        import multiprocessing
        scr_stop, scr_out = multiprocessing.Event(), multiprocessing.Queue()
        scr = multiprocessing.Process(target=scraper_proc, args=(args, scr_stop, scr_out), daemon=True)
        scr.start()
    t0 = time.monotonic()
    tasks = [asyncio.create_task(client(args, i, counts, ctx, stop)) for i in range(args.clients)]
    done, pending = await asyncio.wait(tasks, timeout=max(1.0, args.deadline - (time.monotonic() - t0)))
    stop.set()
    for t in pending:
        t.cancel()
    if scr:
        scr_stop.set()
        try:
            record = await asyncio.get_running_loop().run_in_executor(None, scr_out.get, True, args.timeout + 5)
        except Exception:
            record = ["other (the scraper process did not report)"]
        scr.join(5)
        if scr.is_alive():
            scr.kill()
    if loris:
        await asyncio.wait(loris, timeout=3)
        for t in loris:
            t.cancel()
    out = {"clients": args.clients, "rounds": args.rounds, "seconds": round(time.monotonic() - t0, 1),
           "unfinished_clients": len(pending), "metrics": counts[args.path], "events": counts["/events"],
           "samples": counts["samples"]}
    if args.scraper:
        out["scraper"] = {"total": len(record), "ok": sum(1 for r in record if r == "ok"),
                          "failures": [r for r in record if r != "ok"][:10]}
    if args.slowloris:
        closed = [d for d in drops if d is not None]
        out["slowloris"] = {"connections": args.slowloris, "closed_by_server": len(closed),
                            "lifetimes_s": sorted(round(d, 2) for d in closed)[::max(1, len(closed) // 10)],
                            "max_lifetime_s": round(max(closed), 2) if closed else None}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--path", default="/metrics")
    ap.add_argument("--events-share", type=float, default=0.0, help="fraction of clients on /events")
    ap.add_argument("--scraper", action="store_true")
    ap.add_argument("--slowloris", type=int, default=0)
    ap.add_argument("--slowloris-head-start", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=30.0, help="per request")
    ap.add_argument("--deadline", type=float, default=120.0, help="the whole run")
    ap.add_argument("--tls-ca")
    ap.add_argument("--user")
    ap.add_argument("--password", default="")
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "localhost"):
        sys.exit("http_load.py: loopback only (127.0.0.1)")
    if not (1 <= args.clients <= 5000 and 1 <= args.rounds <= 1000 and 0 <= args.slowloris <= 5000
            and 0 < args.deadline <= 3600):
        sys.exit("http_load.py: out of bounds (clients <= 5000, rounds <= 1000, deadline <= 3600 s)")
    out = asyncio.run(asyncio.wait_for(main_async(args), args.deadline + args.timeout + 10))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
