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


def interp(recs, t, key):
    """Linear interpolation of a cumulative record field at monotonic time t (ns)."""
    for a, b in zip(recs, recs[1:]):
        if a["t"] <= t <= b["t"]:
            f = (t - a["t"]) / (b["t"] - a["t"]) if b["t"] > a["t"] else 0.0
            return a[key] + f * (b[key] - a[key])
    return None
