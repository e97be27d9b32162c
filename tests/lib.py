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


def node_matrix(full=False):
    """The Node.js builds the Node tests run on, as (label, path): the official builds
    of tests/node/versions in $LS_NODE_CACHE (make test installs them) and the system's
    node as "system". full: only the newest official build and the system's node.
    LS_NODE_ONLY="18.20.8 system" keeps only those labels (a quicker run by hand)."""
    cache = os.environ.get("LS_NODE_CACHE") or "/var/cache/loopscope/node"
    here = os.path.dirname(os.path.abspath(__file__))
    vs = [l.strip() for l in open(os.path.join(here, "node", "versions"))
          if l.strip() and l.strip()[0].isdigit()]
    if full:
        vs = vs[-1:]
    out = [(v, os.path.join(cache, v, "bin", "node")) for v in vs]
    for d in os.environ.get("PATH", "").split(":"):
        p = os.path.join(d or ".", "node")
        if os.access(p, os.X_OK):
            out.append(("system", p))
            break
    only = os.environ.get("LS_NODE_ONLY", "").split()
    return [x for x in out if not only or x[0] in only]


def node_usable(label, path):
    """True if path runs; else one line saying so, and under CI=true a failed check."""
    import subprocess
    try:
        if subprocess.run([path, "--version"], capture_output=True).returncode == 0:
            return True
    except OSError:
        pass
    msg = "node %s: %s does not run (make test installs it from the npm registry)" % (label, path)
    if os.environ.get("CI") == "true":
        check(msg, False)
    else:
        print("# SKIP " + msg)
    return False
