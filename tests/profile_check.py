"""tests/profile_check.py: opening `loopscope profile`'s files with real readers, for
65-profile-readers.py and 66-profile-node.py: headless Chromium (its DOM after the
inline script ran, its console, a screenshot read with a PNG decoder of zlib alone)
and `go tool pprof -top`. Every reader runs with HOME and caches in the test's own
temporary folder and no network.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import png_pixels  # noqa: E402


class Readers:
    def __init__(self, tmp):
        self.tmp = tmp
        self.env = dict(os.environ, HOME=tmp, GOCACHE=os.path.join(tmp, "gocache"),
                        GOPATH=os.path.join(tmp, "gopath"), GOFLAGS="-mod=mod", GOTOOLCHAIN="local",
                        GOPROXY="off", PPROF_TMPDIR=tmp)

    def chromium(self, url, *args):
        """Run headless Chromium on url; returns (stdout, console lines)."""
        cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
               "--user-data-dir=" + os.path.join(self.tmp, "chromium"), "--enable-logging=stderr", "--v=0"]
        r = subprocess.run(cmd + list(args) + [url], env=self.env, capture_output=True, text=True, timeout=120,
                           errors="replace")
        return r.stdout, [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]

    def load_svg(self, path, query=""):
        """(no XML error, no console message, the DOM after the script ran)."""
        dom, console = self.chromium("file://" + path + query, "--dump-dom")
        for ln in console:
            print("# console:", ln)
        return "<parsererror" not in dom and "svg" in dom, not console, dom

    def screenshot(self, path, query=""):
        """(width, height, rows of (r, g, b)) of Chromium's picture of an SVG."""
        png = path + ".png"
        self.chromium("file://" + path + query, "--window-size=1200,%d" % min(svg_height(path), 4000),
                      "--screenshot=" + png)
        return png_pixels(png) if os.path.exists(png) else (0, 0, [])

    def pprof_top(self, path, *args):
        """(exit status, output, {function: (flat, cum)}) of go tool pprof -top."""
        r = subprocess.run(["go", "tool", "pprof", "-top"] + list(args) + [path], env=self.env,
                           capture_output=True, text=True, timeout=120, errors="replace")
        print("".join("# " + ln + "\n" for ln in (r.stdout + r.stderr).splitlines()[:30]))
        rows = {}
        for ln in r.stdout.splitlines():
            m = re.match(r"\s*(\d+)\s+[\d.]+%\s+[\d.]+%\s+(\d+)\s+[\d.]+%\s+(.+)$", ln)
            if m:
                rows[m.group(3)] = (int(m.group(1)), int(m.group(2)))
        return r.returncode, r.stdout, rows


def svg_height(path):
    return int(re.search(r'<svg [^>]*height="(\d+)"', open(path, encoding="utf-8").read()).group(1))


def frame_kinds(rows, path):
    """Which kinds of frame a screenshot shows: (JS green, native red/orange, kernel
    blue), looking at the frames only (the legend below them has every colour)."""
    drawn = set(p for row in rows[:svg_height(path) - 48] for p in row)
    return (any(g > r + 60 and g > b + 60 for r, g, b in drawn),
            any(r > 200 and r > g + 60 and b < 80 for r, g, b in drawn),
            any(b > 200 and b > r + 60 for r, g, b in drawn))
