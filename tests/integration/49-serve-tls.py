#!/usr/bin/env python3
# timeout: 180
"""49-serve-tls: serve --web.config.file (exporter-toolkit format): TLS and basic auth.

Certificates are made here with openssl (a CA, a server certificate for 127.0.0.1 and
localhost, a client certificate); bcrypt hashes with crypt(3) through Python: alice's
as $2y$ (Debian's libxcrypt must verify it), bob's as $2b$. serve requires and verifies
a client certificate (RequireAndVerifyClientCert, min_version TLS12). Asserted:
  - both users get 200 and the exposition; a wrong password and no credentials get 401
    with WWW-Authenticate; no client certificate: the handshake is refused (no HTTP
    answer at all); plain HTTP on the TLS port gets no answer either;
  - a real Prometheus (Debian's) scrapes it with scheme https, tls_config and
    basic_auth: up == 1 and loopscope_target_up == 1; a job with the wrong password is
    up == 0 with a 401 in its last error;
  - top --connect https://USER:PASS@127.0.0.1:PORT with --tls-ca/--tls-cert/--tls-key
    shows the loop, and the password is not on the screen;
  - a non-loopback --listen without a web config prints exactly one warning line; with
    one, none; bad web configs are one line and exit 2.
"""
import base64
import warnings
warnings.filterwarnings("ignore", category=DeprecationWarning)
import crypt  # noqa: E402  (Python 3.11: deprecated, still the way to crypt(3))
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib import LOOPSCOPE, LOOPDEMO, Serve, tap, done, skip  # noqa: E402

PROMETHEUS = "/usr/bin/prometheus"


def sh(*args, cwd=None):
    r = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("%s: %s" % (args, r.stderr[-300:]))


def make_certs(d):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
       "-days", "2", "-subj", "/CN=loopscope test CA", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
           "-subj", "/CN=" + name, cwd=d)
        sh("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
           "-CAcreateserial", "-out", name + ".crt", "-days", "2", *ext, cwd=d)


def https_get(port, d, user=None, password=None, cert=True):
    """(status, headers, body) or (None, None, error string)."""
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    if cert:
        ctx.load_cert_chain(os.path.join(d, "client.crt"), os.path.join(d, "client.key"))
    hdr = ""
    if user is not None:
        hdr = "Authorization: Basic %s\r\n" % base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n" % hdr).encode())
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
    except (ssl.SSLError, OSError) as e:
        return None, None, "%s: %s" % (type(e).__name__, e)
    if not data:
        return None, None, "no answer"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), hdrs, body


def prom_query(pport, expr):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (pport, urllib.parse.urlencode({"query": expr}))
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


def main():
    for tool in ("openssl", "tmux"):
        if not shutil.which(tool):
            skip("needs " + tool)
    if not os.path.exists(PROMETHEUS):
        skip("needs prometheus")
    d = tempfile.mkdtemp(prefix="loopscope-49-")
    make_certs(d)
    h_alice = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
    h_alice = "$2y$" + h_alice[4:]
    h_bob = crypt.crypt("hunter2", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
    tap(h_bob.startswith("$2b$") and crypt.crypt("s3cret", h_alice) == h_alice,
        "libxcrypt makes $2b$ and verifies $2y$ bcrypt hashes")
    web = os.path.join(d, "web.yml")
    with open(web, "w") as f:
        f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                "  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n"
                "  min_version: TLS12\n"
                "basic_auth_users:\n  alice: '%s'\n  bob: '%s'\n" % (h_alice, h_bob))
    demo = subprocess.Popen([LOOPDEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prom = None
    p = Serve(["-p", str(demo.pid), "--web.config.file", web])
    port, lines = p.port, p.lines
    try:
        tap(port is not None and any("https://" in ln for ln in lines),
            "serve --web.config.file listens on https (%s)" % lines[-1:])
        if port is None:
            return done()
        st, h, body = https_get(port, d, "alice", "s3cret")
        tap(st == 200 and b"loopscope_target_up" in body, "alice ($2y$) with a client certificate: %s" % st)
        st, h, body = https_get(port, d, "bob", "hunter2")
        tap(st == 200, "bob ($2b$): %s" % st)
        st, h, body = https_get(port, d, "alice", "wrong")
        tap(st == 401 and "basic" in (h or {}).get("www-authenticate", "").lower(),
            "a wrong password: 401 with WWW-Authenticate (%s %s)" % (st, (h or {}).get("www-authenticate")))
        st, h, body = https_get(port, d)
        tap(st == 401, "no credentials: 401 (%s)" % st)
        st, h, body = https_get(port, d, "alice", "s3cret", cert=False)
        tap(st is None, "no client certificate: the handshake is refused, no HTTP answer (%s)" % body)
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                plain = r.status
        except Exception as e:
            plain = type(e).__name__
        tap(plain != 200, "plain HTTP on the TLS port: no answer (%s)" % plain)

        # A real Prometheus over https with basic auth; a second job with a wrong password.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        pport = s.getsockname()[1]
        s.close()
        cfg = os.path.join(d, "prometheus.yml")
        tls = ("    scheme: https\n    tls_config:\n      ca_file: %s/ca.crt\n      cert_file: %s/client.crt\n"
               "      key_file: %s/client.key\n" % (d, d, d))
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                    "  - job_name: good\n" + tls +
                    "    basic_auth:\n      username: alice\n      password: s3cret\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % port +
                    "  - job_name: badpass\n" + tls +
                    "    basic_auth:\n      username: alice\n      password: nope\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % port)
        prom = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(d, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % pport, "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "prometheus.log"), "w"))
        good = bad = tu = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 40:
            try:
                good = prom_query(pport, 'up{job="good"}')
                bad = prom_query(pport, 'up{job="badpass"}')
                tu = prom_query(pport, 'loopscope_target_up{job="good",pid="%d"}' % demo.pid)
                if good and bad and tu and good[0]["value"][1] == "1":
                    break
            except OSError:
                pass
            time.sleep(0.5)
        tap(good and good[0]["value"][1] == "1" and tu and tu[0]["value"][1] == "1",
            "Prometheus scrapes over https with basic auth: up %s, target_up %s"
            % (good and good[0]["value"][1], tu and tu[0]["value"][1]))
        err = ""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/targets" % pport, timeout=5) as r:
                for t in json.loads(r.read())["data"]["activeTargets"]:
                    if t["labels"].get("job") == "badpass":
                        err = t.get("lastError", "")
        except OSError as e:
            err = str(e)
        tap(bad and bad[0]["value"][1] == "0" and "401" in err, "the wrong password: up 0, %r" % err)

        # top --connect over TLS with credentials in the URL.
        sess = "ls49-%d" % os.getpid()
        url = "https://alice:s3cret@127.0.0.1:%d" % port
        subprocess.run(["tmux", "new-session", "-d", "-s", sess, "-x", "160", "-y", "40",
                        "%s top --connect %s --tls-ca %s/ca.crt --tls-cert %s/client.crt --tls-key %s/client.key; "
                        "sleep 30" % (LOOPSCOPE, url, d, d, d)], check=True)
        screen = ""
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 20:
                screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", sess], capture_output=True,
                                        text=True).stdout
                if str(demo.pid) in screen:
                    break
                time.sleep(0.3)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", sess])
        tap(str(demo.pid) in screen and "s3cret" not in screen,
            "top --connect https://alice:***@...: the loop on screen, no password (%s)" % screen.splitlines()[:2])
        tap(p.stop() == 0, "serve exits 0")
        p = None

        # --listen beyond loopback: one warning without a web config, none with one.
        for args, want in (([], 1), (["--web.config.file", web], 0)):
            q = Serve(["-p", str(demo.pid)] + args, listen="0.0.0.0:0")
            qport, qlines = q.port, q.lines
            time.sleep(0.3)
            warns = [ln for ln in qlines if "warning" in ln]
            q.stop()
            tap(qport is not None and len(warns) == want, "--listen 0.0.0.0 %s: %d warning line(s) (%s)"
                % ("with a web config" if args else "alone", len(warns), warns))
        for text, what in (("tls_server_config:\n  cert_file: server.crt\n", "no key_file"),
                           ("basic_auth_users:\n  carol: plaintext\n", "not a bcrypt hash"),
                           ("tls_server_confg:\n  cert_file: a\n", "a misspelt key"),
                           ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                            "  client_auth_type: Sometimes\n", "an unknown client_auth_type")):
            bad_cfg = os.path.join(d, "bad.yml")
            with open(bad_cfg, "w") as f:
                f.write(text)
            r = subprocess.run([LOOPSCOPE, "serve", "-p", str(demo.pid), "--web.config.file", bad_cfg],
                               capture_output=True, text=True, timeout=30)
            tap(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1,
                "web config with %s: exit %d, %s" % (what, r.returncode, r.stderr.strip()))
    finally:
        if p:
            p.stop()
        if prom:
            prom.terminate()
            prom.wait()
        demo.kill()
        demo.wait()
    return done()


if __name__ == "__main__":
    sys.exit(main())
