#!/usr/bin/env bash
# tests/demo.sh: what `make demo` runs. Starts the reference loop's demo program with
# its default realistic mix (echo traffic, thread-pool jobs, a 40 ms block every second,
# nextTick / microtask starvation now and then) and opens `loopscope top` on it; q (or
# Ctrl-C) in top ends both. Extra arguments go to loopdemo.
#
# `loopscope top` attaches eBPF probes, so it needs root and a terminal; without them the
# demo prints its own exact live numbers once a second instead, until Ctrl-C.
set -u
BUILD=${LS_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
DEMO=$BUILD/loopdemo
TOP=$BUILD/loopscope
for f in "$DEMO" "$TOP"; do
	[ -x "$f" ] || { echo "loopscope: $f is missing; run 'make' first" >&2; exit 1; }
done

if [ "$(id -u)" != 0 ] || [ ! -t 0 ] || [ ! -t 1 ]; then
	[ "$(id -u)" != 0 ] && echo "loopscope: 'loopscope top' needs root (eBPF); showing loopdemo's own numbers instead" >&2
	echo "loopdemo (pid below) runs a realistic mix; its own exact numbers, once a second. Ctrl-C stops it."
	exec "$DEMO" --print-interval 1 "$@"
fi

"$DEMO" "$@" >/dev/null 2>&1 &
demo=$!
# The demo goes when top does, however top ends.
trap 'kill "$demo" 2>/dev/null; wait "$demo" 2>/dev/null' EXIT
sleep 0.2	# let it reach its loop; top attaches to it by PID
"$TOP" top -p "$demo"
