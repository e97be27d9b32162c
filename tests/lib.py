"""tests/lib.py: what the Python integration tests share (tests/lib.sh is its twin for
the shell ones): where the binaries are, TAP output and skips.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from lib import BUILD, LOOPSCOPE, LOOPDEMO, tap, done
"""
import os
import sys

BUILD = os.environ.get("LS_BUILD") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build")
LOOPSCOPE = os.environ.get("LOOPSCOPE") or os.path.join(BUILD, "asan", "loopscope")  # the agent, under ASan+UBSan
LOOPDEMO = os.environ.get("LOOPDEMO") or os.path.join(BUILD, "loopdemo")

_n = 0
_failed = 0


def tap(ok, desc):
    """One TAP line for one check."""
    global _n, _failed
    _n += 1
    if not ok:
        _failed += 1
    print(("ok %d - %s" if ok else "not ok %d - %s") % (_n, desc), flush=True)


def check(desc, cond):
    tap(cond, desc)


def skip(reason):
    """The whole test cannot run here (a failure under CI=true, see tests/run.sh)."""
    print("SKIP " + reason)
    sys.exit(77)


def done():
    """Close the TAP plan; the exit status for sys.exit()."""
    print("1..%d" % _n)
    return 1 if _failed else 0


class Serve:
    """`loopscope serve ARGS` with its stderr collected in .lines and the port it
    listens on in .port (None until the "listening on" line). wait=False returns at
    once (.ready is set once it listens or exits)."""

    def __init__(self, args, binary=None, wait=True, listen="127.0.0.1:0"):
        import re
        import subprocess
        import threading
        extra = ["--listen", listen] if listen and "--listen" not in args else []
        self.p = subprocess.Popen([binary or LOOPSCOPE, "serve"] + extra + list(args),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.pid = self.p.pid
        self.lines = []
        self.port = None
        self.ready = threading.Event()

        def pump():
            for line in self.p.stderr:
                self.lines.append(line.rstrip("\n"))
                m = re.search(r"listening on https?://[0-9.]+:(\d+)/", line)
                if m:
                    self.port = int(m.group(1))
                    self.ready.set()
            self.ready.set()
        threading.Thread(target=pump, daemon=True).start()
        if wait:
            self.ready.wait(30)

    def stop(self):
        """SIGTERM, then the exit status (SIGKILL after 20 s)."""
        import signal
        import subprocess
        if self.p.poll() is not None:
            return self.p.returncode
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()
