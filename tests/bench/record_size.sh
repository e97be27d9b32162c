#!/usr/bin/env bash
# tests/bench/record_size.sh [SECONDS] [TIER...]: how big a `loopscope record` file
# grows for one busy Node.js server (tests/node/server.js under wrk, 16 connections on
# 127.0.0.1, bounded by time), at the default 1 s interval, per probe tier (default:
# light phases). Prints bytes, bytes per second and the extrapolated bytes per hour,
# with wrk's request rate so the load is on record. Needs root (the recorder attaches).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${LS_BUILD:-$ROOT/build}
secs=${1:-180}
shift
tiers=${*:-light phases}
tmp=$(mktemp -d /tmp/loopscope-recsize.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
for t in node wrk; do command -v $t >/dev/null || { echo "record_size: needs $t" >&2; exit 1; }; done
for tier in $tiers; do
	node "$ROOT/tests/node/server.js" 0 >"$tmp/srv.out" 2>&1 &
	srv=$!
	pids+=("$srv")
	for _ in $(seq 50); do grep -q listening "$tmp/srv.out" && break; sleep 0.1; done
	port=$(awk '/listening/ { print $2 }' "$tmp/srv.out")
	timeout $((secs + 30)) wrk -t1 -c16 -d$((secs + 4))s "http://127.0.0.1:$port/" >"$tmp/wrk.out" 2>&1 &
	wrk=$!
	pids+=("$wrk")
	sleep 1
	"$BUILD/loopscope" record -p "$srv" --probes "$tier" -d "$secs" -o "$tmp/$tier.lsr" 2>"$tmp/rec.err" ||
		{ cat "$tmp/rec.err" >&2; exit 1; }
	wait "$wrk"
	kill "$srv"
	wait "$srv" 2>/dev/null
	bytes=$(stat -c %s "$tmp/$tier.lsr")
	rps=$(awk '/Requests\/sec/ { print $2 }' "$tmp/wrk.out")
	awk -v t="$tier" -v b="$bytes" -v s="$secs" -v r="$rps" 'BEGIN {
		printf "record_size: tier %-7s %d s: %d bytes, %.0f B/s, %.1f MB per hour (server at %s req/s)\n",
			t, s, b, b / s, b / s * 3600 / 1e6, r }'
	# What the blocks hold, from their headers (userspace/record/README.md).
	python3 - "$tmp/$tier.lsr" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
off = 20 + struct.unpack('<I', d[12:16])[0]
blocks = raw = comp = recs = 0
while off + 36 <= len(d):
    _, cl, rl, n = struct.unpack('<4sIII', d[off:off + 16])
    blocks, raw, comp, recs = blocks + 1, raw + rl, comp + cl, recs + n
    off += 36 + cl
print(f"record_size:   {blocks} blocks, {recs} records, {raw} bytes of records compressed to {comp} "
      f"({100 * comp / raw:.0f}%), {raw / max(recs, 1):.0f} bytes per record before zlib")
PY
done
