#!/usr/bin/env bash
# tests/demo.sh: what `make demo` runs. Starts the reference loop's demo program with
# its default realistic mix (echo traffic, thread-pool jobs, a 40 ms block every second,
# nextTick / microtask starvation now and then) and prints its own live ground-truth
# numbers once a second until Ctrl-C.
set -u
BUILD=${LS_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
DEMO=$BUILD/loopdemo
[ -x "$DEMO" ] || { echo "loopscope: $DEMO is missing; run 'make' first" >&2; exit 1; }

echo "loopdemo (pid below) runs a realistic mix; its own exact numbers, once a second. Ctrl-C stops it."
exec "$DEMO" --print-interval 1 "$@"
