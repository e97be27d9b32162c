#!/usr/bin/env bash
# tests/bench/run.sh [SECTION...]: what `make bench` runs. Each section is one
# function below; with no argument every section runs, in order. Benchmarks are never
# part of `make test`. Add a section: write section_NAME and append NAME to SECTIONS.
#
# Method: these VMs are noisy, so each comparison runs its sides interleaved in one
# run (A B A B ...), a side's figure is the median over the rounds, and the ratio of
# medians is what gets reported. The measured process is pinned to one CPU when
# taskset exists.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${LS_BUILD:-$ROOT/build}
OUT=$BUILD/bench
mkdir -p "$OUT"
# bench.py names the command in its report and only folds in loop_bench.json made in this run.
export BENCH_T0=${BENCH_T0:-$(date +%s)}
if [ -z "${BENCH_CMD:-}" ]; then
	if [ -n "${MAKELEVEL:-}" ]; then BENCH_CMD="make bench"; else BENCH_CMD="tests/bench/run.sh $*"; fi
fi
export BENCH_CMD
# The report names the machine class first (tests/bench/bench.py repeats the line): the
# machine: line, or the one line calibrate failed with.
calib_out=$("$BUILD/loopscope" calibrate --refresh 2>&1)
grep -m1 '^machine:' <<<"$calib_out" || tail -n 1 <<<"$calib_out" | sed 's/^/machine: not calibrated: /'
export BENCH_CALIBRATED=1
# The benchmark programs, in case this runs without make bench (some sections only).
make -s -C "$ROOT" BUILD="$BUILD" $(for c in "$ROOT"/tests/bench/*.c; do b=${c##*/}; echo "$BUILD/bench/bin/${b%.c}"; done) ||
	echo "bench: building tests/bench/*.c failed" >&2
PIN=()
command -v taskset >/dev/null 2>&1 && PIN=(taskset -c 1)

# median: the median of the numbers on stdin.
# minimum: the smallest number on stdin (the least disturbed run on a noisy VM).
minimum() { sort -g | head -1; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ------------------------------------------------------------------ loop
# The reference loop vs libuv on a tight immediate chain, and the untraced probe
# cost (the same loop compiled with -DLSL_NO_PROBES).
section_loop() {
	local bin=$BUILD/bench/bin/loop_bench nop=$OUT/noprobes/loop_bench
	local rounds=${LOOP_BENCH_ROUNDS:-11} n=${LOOP_BENCH_N:-300000} raw=$OUT/loop_bench.raw r
	echo "== loop: reference loop vs libuv, tight immediate chain ($rounds interleaved rounds of $n iterations)"
	[ -x "$bin" ] || { echo "loop: $bin missing (make bench builds it)" >&2; return 1; }
	mkdir -p "$OUT/noprobes"
	# The no-probe twin: same sources and flags, probe sites compiled out.
	${CC:-cc} -O2 -g -std=gnu11 -D_GNU_SOURCE -DLSL_NO_PROBES -fno-omit-frame-pointer \
		-I"$ROOT/loop/include" -o "$nop" "$ROOT"/loop/src/*.c "$ROOT/tests/bench/loop_bench.c" \
		-luv -lpthread -lm || { echo "loop: building the -DLSL_NO_PROBES twin failed" >&2; return 1; }
	: >"$raw"
	for ((r = 0; r < rounds; r++)); do
		"${PIN[@]}" "$bin" --rounds 1 --n "$n" --modes lsl,libuv,lsl-acct,lsl-rec,lsl-fd >>"$raw" || return 1
		"${PIN[@]}" "$nop" --rounds 1 --n "$n" --modes lsl | sed 's/^lsl /lsl-noprobes /' >>"$raw" || return 1
	done
	local m_lsl m_uv m_acct m_rec m_fd m_nop min_lsl min_nop
	m_lsl=$(awk '$1 == "lsl" { print $2 }' "$raw" | median)
	m_uv=$(awk '$1 == "libuv" { print $2 }' "$raw" | median)
	m_acct=$(awk '$1 == "lsl-acct" { print $2 }' "$raw" | median)
	m_fd=$(awk '$1 == "lsl-fd" { print $2 }' "$raw" | median)
	m_rec=$(awk '$1 == "lsl-rec" { print $2 }' "$raw" | median)
	m_nop=$(awk '$1 == "lsl-noprobes" { print $2 }' "$raw" | median)
	min_lsl=$(awk '$1 == "lsl" { print $2 }' "$raw" | minimum)
	min_nop=$(awk '$1 == "lsl-noprobes" { print $2 }' "$raw" | minimum)
	awk -v lsl="$m_lsl" -v uv="$m_uv" -v acct="$m_acct" -v rec="$m_rec" -v fd="$m_fd" -v nop="$m_nop" \
		-v minl="$min_lsl" -v minn="$min_nop" 'BEGIN {
		printf "  %-44s %10s %12s\n", "variant (median ns per iteration)", "ns/iter", "vs libuv"
		printf "  %-44s %10.1f %11.2fx\n", "libuv 1.44 check+idle chain", uv, 1
		printf "  %-44s %10.1f %11.2fx\n", "lsl, probes compiled in, untraced", lsl, lsl / uv
		printf "  %-44s %10.1f %11.2fx\n", "lsl, + one fd watched (epoll_wait(0) each)", fd, fd / uv
		printf "  %-44s %10.1f %11.2fx\n", "lsl, ground-truth accounting on", acct, acct / uv
		printf "  %-44s %10.1f %11.2fx\n", "lsl, record filled (poll_start semaphore up)", rec, rec / uv
		printf "  %-44s %10.1f %11.2fx\n", "lsl, built with -DLSL_NO_PROBES", nop, nop / uv
		printf "  untraced probe cost: %.1f ns per iteration by medians (probes in %.1f vs compiled out %.1f; %+.1f%%),\n", lsl - nop, lsl, nop, (lsl - nop) * 100 / nop
		printf "                       %.1f ns by the fastest runs (%.1f vs %.1f)\n", minl - minn, minl, minn
		printf "  goal: within 1.3x of libuv with probes compiled in: %s (%.2fx; %.2fx with an fd watched)\n", (lsl / uv <= 1.3 && fd / uv <= 1.3) ? "met" : "NOT met", lsl / uv, fd / uv
	}'
	printf '{"libuv_ns":%s,"lsl_ns":%s,"lsl_fd_ns":%s,"lsl_acct_ns":%s,"lsl_rec_ns":%s,"lsl_noprobes_ns":%s,"lsl_min_ns":%s,"lsl_noprobes_min_ns":%s,"libuv_ratio":%s,"libuv_ratio_fd":%s,"rounds":%d,"n":%d}\n' \
		"$m_uv" "$m_lsl" "$m_fd" "$m_acct" "$m_rec" "$m_nop" "$min_lsl" "$min_nop" \
		"$(awk -v a="$m_lsl" -v b="$m_uv" 'BEGIN { printf "%.3f", a / b }')" \
		"$(awk -v a="$m_fd" -v b="$m_uv" 'BEGIN { printf "%.3f", a / b }')" "$rounds" "$n" >"$OUT/loop_bench.json"
	echo "  raw runs: $raw; summary: $OUT/loop_bench.json"
}

# ------------------------------------------------------------------ report
# Every other benchmark (probe tiers per iteration, Node HTTP with loopscope /
# prom-client / clinic, agent CPU and attach time, accuracy, serve) and the ONE report:
# tests/bench/bench.py writes $OUT/report.md and $OUT/report.json, folding in the
# loop section's $OUT/loop_bench.json when that ran in this same run.
section_report() {
	echo "== report: probe tiers, Node HTTP, agent cost and attach, accuracy, libuv, serve (tests/bench/bench.py)"
	python3 -B "$ROOT/tests/bench/bench.py" --build "$BUILD" --out "$OUT" ${BENCH_ARGS:-}
}

SECTIONS=(loop report)

want=("$@")
[ ${#want[@]} -eq 0 ] && want=("${SECTIONS[@]}")
rc=0
for s in "${want[@]}"; do
	if ! declare -F "section_$s" >/dev/null; then
		echo "bench: no section '$s' (have: ${SECTIONS[*]})" >&2
		rc=1
		continue
	fi
	"section_$s" || { echo "bench: section $s failed" >&2; rc=1; }
done
exit $rc
