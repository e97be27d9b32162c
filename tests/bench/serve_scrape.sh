#!/usr/bin/env bash
# serve_scrape.sh: scrape latency and agent CPU of `loopscope serve` with N loopdemo
# targets at a 1 s scrape interval, plus the exposition's size and series per loop.
#
#   sudo tests/bench/serve_scrape.sh [SECONDS] [N...]     (default: 20 s; 1 10 50)
#
# For each N: start N `build/loopdemo` (DEMO_ARGS, below), attach one `build/loopscope serve` (the
# optimised build, not ASan) to all of them, wait for the attach, then scrape /metrics
# once per second for SECONDS with `Accept-Encoding: gzip` like Prometheus does,
# timing each scrape with curl's time_total (connect to last byte). The agent's CPU
# is utime + stime from /proc/PID/stat over the same window, in % of one core.
# Everything started is stopped by PID; output is one line per N, then a JSON line
# per N (for tests/bench/bench.py or anyone else to parse).
set -u
cd "$(dirname "$0")/../.."
BUILD=${LS_BUILD:-$PWD/build}
LOOPSCOPE=${LOOPSCOPE:-$BUILD/loopscope}
LOOPDEMO=${LOOPDEMO:-$BUILD/loopdemo}
SECS=${1:-20}
# A light workload that still runs every phase, timers and both drain queues, so each
# loop exports its full set of series: ~1% of a core per demo, so 50 demos leave the
# 2-core machine room for the agent being measured (the default mix would saturate it).
DEMO_ARGS=${DEMO_ARGS:---block 1 --every 200 --tick-starve 1 --every 1000 --microtask-starve 1 --every 1000}
shift || true
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(1 10 50)
[ "$(id -u)" = 0 ] || { echo "serve_scrape.sh: needs root (BPF)" >&2; exit 2; }
for f in "$LOOPSCOPE" "$LOOPDEMO"; do
	[ -x "$f" ] || { echo "serve_scrape.sh: $f missing: run make" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "serve_scrape.sh: curl missing" >&2; exit 2; }

TMP=$(mktemp -d /tmp/serve_scrape.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

printf '%-4s %9s %9s %9s %10s %10s %8s %12s %10s\n' N p50_ms p99_ms max_ms plain_kB gzip_kB cpu_% series/loop render_ms
JSONS=()
for N in "${NS[@]}"; do
	PIDS=()
	args=()
	for ((i = 0; i < N; i++)); do
		# shellcheck disable=SC2086
		"$LOOPDEMO" $DEMO_ARGS --duration $((SECS + 60)) >/dev/null 2>&1 &
		PIDS+=($!)
		args+=(-p $!)
	done
	sleep 0.5
	rm -f "$TMP/serve.err"
	"$LOOPSCOPE" serve "${args[@]}" --listen 127.0.0.1:0 2>"$TMP/serve.err" &
	SERVE=$!
	PIDS+=($SERVE)
	port=
	for ((k = 0; k < 300; k++)); do
		port=$(grep -so 'listening on http://127\.0\.0\.1:[0-9]*' "$TMP/serve.err" | grep -o '[0-9]*$')
		[ -n "$port" ] && break
		kill -0 "$SERVE" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$port" ]; then
		echo "serve_scrape.sh: N=$N: serve did not start: $(tail -2 "$TMP/serve.err")" >&2
		exit 1
	fi
	url=http://127.0.0.1:$port/metrics
	sleep 2	# two intervals: every loop has a utilization and state
	curl -sf "$url" >"$TMP/plain"
	curl -sf -H 'Accept-Encoding: gzip' "$url" >"$TMP/gz"
	attached=$(awk '/^loopscope_attached_targets /{print $2}' "$TMP/plain")
	loops=$(grep -c '^loopscope_iterations_total{' "$TMP/plain")
	perloop=$(grep -c 'loop="' "$TMP/plain")
	t0=$(cpu_ticks "$SERVE")
	w0=$(date +%s.%N)
	: >"$TMP/times"
	for ((s = 0; s < SECS; s++)); do
		next=$(date +%s.%N)
		curl -s -o /dev/null -H 'Accept-Encoding: gzip' -w '%{http_code} %{time_total}\n' "$url" >>"$TMP/times"
		sleep "$(awk -v n="$next" -v now="$(date +%s.%N)" 'BEGIN{d = n + 1 - now; printf "%.3f\n", (d > 0 ? d : 0)}')"
	done
	t1=$(cpu_ticks "$SERVE")
	w1=$(date +%s.%N)
	bad=$(awk '$1 != 200' "$TMP/times" | wc -l)
	read -r p50 p99 max < <(awk '{print $2 * 1000}' "$TMP/times" | sort -n |
		awk '{v[NR] = $1} END {i50 = int(NR * 0.5 + 0.999); i99 = int(NR * 0.99 + 0.999);
			printf "%.2f %.2f %.2f\n", v[i50], v[i99], v[NR]}')
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v w0="$w0" -v w1="$w1" 'BEGIN{printf "%.2f", 100 * (b - a) / hz / (w1 - w0)}')
	plain_kb=$(awk -v s="$(stat -c %s "$TMP/plain")" 'BEGIN{printf "%.1f", s / 1024}')
	gz_kb=$(awk -v s="$(stat -c %s "$TMP/gz")" 'BEGIN{printf "%.1f", s / 1024}')
	spl=$(awk -v a="$perloop" -v l="$loops" 'BEGIN{printf "%.0f", l ? a / l : 0}')
	curl -sf "$url" >"$TMP/plain2"
	render=$(awk '/^loopscope_render_duration_seconds /{printf "%.2f", $2 * 1000}' "$TMP/plain2")
	printf '%-4s %9s %9s %9s %10s %10s %8s %12s %10s%s\n' "$N" "$p50" "$p99" "$max" "$plain_kb" "$gz_kb" "$cpu" "$spl" "$render" \
		"$([ "$attached" = "$N" ] && [ "$bad" = 0 ] || echo "  (attached $attached, non-200 $bad)")"
	JSONS+=("{\"targets\":$N,\"attached\":${attached:-0},\"loops\":$loops,\"scrapes\":$SECS,\"non_200\":$bad,\"p50_ms\":$p50,\"p99_ms\":$p99,\"max_ms\":$max,\"plain_bytes\":$(stat -c %s "$TMP/plain"),\"gzip_bytes\":$(stat -c %s "$TMP/gz"),\"agent_cpu_pct\":$cpu,\"series_per_loop\":$spl,\"render_ms\":${render:-null}}")
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	PIDS=()
done
for j in "${JSONS[@]}"; do echo "$j"; done
