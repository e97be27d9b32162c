"""tests/lib.py: what the Python integration tests share (tests/lib.sh is its twin for
the shell ones): where the binaries are, TAP output and skips.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from lib import BUILD, LOOPSCOPE, LOOPDEMO, tap, done
"""
import json
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


def node_records(f):
    """The records tests/node/accuracy.js wrote to the open file f (those with "t",
    as int ns), in order."""
    f.seek(0)
    recs = []
    for line in f:
        o = json.loads(line)
        if "t" in o:
            o["t"] = int(o["t"])
            recs.append(o)
    return recs


def node_elu(recs, t0, t1):
    """Node's own eventLoopUtilization() over [t0, t1] (mono ns) from its cumulative
    records, interpolated to the edges; None when the records do not cover it."""
    idle = [interp(recs, t, "idle") for t in (t0, t1)]
    active = [interp(recs, t, "active") for t in (t0, t1)]
    if None in idle or None in active:
        return None
    di, da = idle[1] - idle[0], active[1] - active[0]
    return da / (da + di)


def interp(recs, t, key):
    """Linear interpolation of a cumulative record field at monotonic time t (ns)."""
    for a, b in zip(recs, recs[1:]):
        if a["t"] <= t <= b["t"]:
            f = (t - a["t"]) / (b["t"] - a["t"]) if b["t"] > a["t"] else 0.0
            return a[key] + f * (b[key] - a[key])
    return None
