#!/usr/bin/env bash
# bpf_prog_cost.sh: what each BPF program of a Node probe tier costs per hit.
#
#   sudo tests/bench/bpf_prog_cost.sh [light|phases] [SECONDS]     (default: light, 5)
#
# Starts tests/bench/node/spin.js (a setImmediate chain: one uv_run iteration per
# callback) on CPU 0, attaches `build/loopscope stat --probes TIER` to it from CPU 1,
# turns on the kernel's BPF run-time statistics (sysctl kernel.bpf_stats_enabled) for
# SECONDS, and prints, for each program the agent loaded, its runs and its mean run
# time (run_time_ns / run_cnt from `bpftool prog show`). This is the BPF side only; a
# uprobe hit also pays the trap into the kernel (~0.6 us here for an emulated
# instruction), which bench.py's section 1 includes. The sysctl is put back as it was;
# everything started is stopped by PID.
set -u
cd "$(dirname "$0")/../.."
TIER=${1:-light}
SECS=${2:-5}
LOOPSCOPE=${LOOPSCOPE:-$PWD/build/loopscope}
[ "$(id -u)" = 0 ] || { echo "bpf_prog_cost.sh: needs root (BPF)" >&2; exit 2; }
for c in node bpftool taskset; do
	command -v $c >/dev/null || { echo "bpf_prog_cost.sh: $c missing" >&2; exit 2; }
done
[ -x "$LOOPSCOPE" ] || { echo "bpf_prog_cost.sh: $LOOPSCOPE missing: run make" >&2; exit 2; }

PREV=$(sysctl -n kernel.bpf_stats_enabled)
PIDS=()
cleanup() {
	sysctl -qw kernel.bpf_stats_enabled="$PREV"
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

OUT=$(mktemp /tmp/bpf_prog_cost.XXXXXX)
taskset -c 0 node tests/bench/node/spin.js --max-s $((SECS + 30)) >"$OUT" &
NODE=$!
PIDS+=($NODE)
for ((k = 0; k < 50; k++)); do grep -q '^ready' "$OUT" && break; sleep 0.1; done
rm -f "$OUT"
# the agent's programs are the ones loaded after this (nothing else loads any meanwhile)
BEFORE=$(bpftool prog show 2>/dev/null | awk -F: '/^[0-9]+:/ { m = $1 } END { print m + 0 }')
taskset -c 1 "$LOOPSCOPE" stat -p "$NODE" -i 600 --probes "$TIER" >/dev/null 2>&1 &
AGENT=$!
PIDS+=($AGENT)
sleep 3	# attached (attach takes ~0.1 s) and past the first iterations
kill -0 "$AGENT" 2>/dev/null || { echo "bpf_prog_cost.sh: loopscope stat exited (attach failed?)" >&2; exit 1; }
sysctl -qw kernel.bpf_stats_enabled=1
sleep "$SECS"
# "ID: TYPE  name NAME  tag T  gpl  run_time_ns T  run_cnt N" (the stats only while enabled)
bpftool prog show 2>/dev/null | awk -v before="$BEFORE" '
	/^[0-9]+: / && $1 + 0 > before {
		name = ""; t = 0; n = 0
		for (i = 1; i < NF; i++) {
			if ($i == "name") name = $(i + 1)
			if ($i == "run_time_ns") t = $(i + 1)
			if ($i == "run_cnt") n = $(i + 1)
		}
		printf "%-12s %12d runs %8.0f ns/run\n", name, n, n ? t / n : 0
	}'
sysctl -qw kernel.bpf_stats_enabled="$PREV"
