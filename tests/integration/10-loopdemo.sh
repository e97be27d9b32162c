#!/usr/bin/env bash
# timeout: 120
# loopdemo's ground truth (--stats-json) matches the lag each workload flag asks for,
# and the binary carries the USDT probe set of lsl_probes.h, each with a semaphore.
source "$(dirname "$0")/../lib.sh"
DEMO=$LS_BUILD/asan/loopdemo
DEMO_SH=$(cd "$(dirname "$0")/.." && pwd)/demo.sh
need_cmd jq
need_cmd readelf

# jget FILE FILTER: one value out of a stats file.
jget() { jq -r "$2" "$1"; }
# between V LO HI: LO <= V <= HI (floats).
between() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }
# jt FILTER FILE: the filter holds (jq -e, quietly).
jt() { jq -e "$1" "$2" >/dev/null; }
# The workloads below are checked against the times they ask for (a 50 ms block, a
# 120 ms drain): SCHED_FIFO keeps a neighbour on this CPU from stretching them, as
# 20-stat-accuracy does. chrt execs the demo, so $! is the demo's PID.
RT=(chrt -f 10)

# 1. probes: 13 names, provider loopscope, every note has a semaphore.
notes=$(readelf -n "$LS_BUILD/loopdemo")
for p in iter_start iter_end phase_start phase_end poll_start poll_end timer_fired \
	tick_drain_start tick_drain_end microtask_drain_start microtask_drain_end \
	callback_start callback_end; do
	check "probe loopscope:$p present" grep -q "Name: $p\$" <<<"$notes"
done
check "every probe has a non-zero semaphore" \
	bash -c '! grep -q "Semaphore: 0x0000000000000000" <<<"$1"' _ "$notes"
check "providers are loopscope and loopscope_nop5 only" \
	bash -c '[ "$(grep "Provider:" <<<"$1" | sort -u | awk "{print \$2}" | tr "\n" " ")" = "loopscope loopscope_nop5 " ]' _ "$notes"
# Each probe point is a 1-byte nop (provider loopscope) and, right after it, a 5-byte
# nop (loopscope_nop5) with the same arguments and semaphore (lsl_internal.h).
twins() {
	python3 - "$1" "$2" <<'PY'
import re, subprocess, sys
sites = re.findall(r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: \S+, Semaphore: (0x[0-9a-f]+)\s+Arguments: ?(.*)",
                   sys.argv[1])
one = [s for s in sites if s[0] == "loopscope"]
five = {(s[1], int(s[2], 16)): s for s in sites if s[0] == "loopscope_nop5"}
bad = [s for s in one if (s[1], int(s[2], 16) + 1) not in five or five[(s[1], int(s[2], 16) + 1)][3:] != s[3:]]
if not one or bad or len(five) != len(one):
    sys.exit("%d sites, %d twins, unmatched: %r" % (len(one), len(five), bad[:2]))
for name, loc in [(s[1], int(s[2], 16)) for s in one]:
    dis = subprocess.run(["objdump", "-d", "--start-address=%#x" % loc, "--stop-address=%#x" % (loc + 6), sys.argv[2]],
                         capture_output=True, text=True).stdout
    if not re.search(r"\t90\s+\tnop", dis) or "0f 1f 44 00 00" not in dis:
        sys.exit("%s at %#x is not nop + nopl: %s" % (name, loc, dis[-200:]))
PY
}
check "every loopscope site has a loopscope_nop5 twin at +1 (nop, then a 5-byte nop; same arguments, semaphore)" \
	twins "$notes" "$LS_BUILD/loopdemo"

# 2. --block 50 --every 200 for 2 s: 50 ms timer callbacks, about 25% busy, no stall.
f=$TMP/block.json
check "block run exits 0" "${RT[@]}" "$DEMO" --block 50 --every 200 --duration 2 --stats-json "$f"
check "schema: runtime reference, pid, tid, comm" \
	bash -c '[ "$(jq -r ".runtime" "$1")" = reference ] && jq -e ".pid > 0 and .tid > 0 and (.comm|length) > 0" "$1" >/dev/null' _ "$f"
check "schema: every phase has total_s,count,p50_s,p99_s,max_s" \
	jt '[.phases[] | has("total_s") and has("count") and has("p50_s") and has("p99_s") and has("max_s")] | length == 7 and all' "$f"
check "schema: delay, timer_lateness, ticks, microtasks, poll_wait_s, stall_episodes" \
	jt 'has("delay") and has("timer_lateness") and (.ticks|has("starvation_episodes")) and (.microtasks|has("max_drain_s")) and has("poll_wait_s") and has("stall_episodes") and has("interval_s") and has("utilization") and has("iterations")' "$f"
v=$(jget "$f" .phases.timers.max_s)
check "timers phase max $v s is the 50 ms block" between "$v" 0.050 0.100
v=$(jget "$f" .delay.max_s)
check "delay max $v s covers the block" between "$v" 0.050 0.120
v=$(jget "$f" .utilization)
check "utilization $v is about 9 blocks of 50 ms in 2 s" between "$v" 0.18 0.32
check "no stall below the 100 ms threshold" [ "$(jget "$f" .stall_episodes)" = 0 ]
v=$(jget "$f" .timer_lateness.p50_s)
check "timer lateness p50 $v s stays small when idle between blocks" between "$v" 0 0.005
sum=$(jq '[.phases[].total_s] | add' "$f"); win=$(jget "$f" .interval_s)
check "phase totals ($sum s) add up to the window ($win s)" within "$sum" "$win" 0.03 0.005
check "poll wait <= poll phase total" jt '.poll_wait_s <= .phases.poll.total_s' "$f"

# 3. --block 150: a stall per block past the 100 ms threshold.
f=$TMP/stall.json
check "stall run exits 0" "${RT[@]}" "$DEMO" --block 150 --every 300 --duration 1.3 --stats-json "$f"
v=$(jget "$f" .stall_episodes)
check "stall episodes $v (blocks at 0.3, 0.6, 0.9, 1.2 s)" between "$v" 3 5

# 4. tick starvation, then microtask starvation: each counted in its own queue.
f=$TMP/tick.json
check "tick-starve run exits 0" "${RT[@]}" "$DEMO" --tick-starve 120 --every 300 --duration 1.3 --stats-json "$f"
check "tick starvation episodes >= 3, none for microtasks" \
	jt '.ticks.starvation_episodes >= 3 and .microtasks.starvation_episodes == 0 and .ticks.max_drain_s >= 0.12 and .ticks.callbacks > 1000' "$f"
f=$TMP/micro.json
check "microtask-starve run exits 0" "${RT[@]}" "$DEMO" --microtask-starve 120 --every 300 --duration 1.3 --stats-json "$f"
check "microtask starvation episodes >= 3, none for ticks" \
	jt '.microtasks.starvation_episodes >= 3 and .ticks.starvation_episodes == 0 and .microtasks.max_drain_s >= 0.12' "$f"

# 5. composed: --every binds to the flag before it.
f=$TMP/both.json
check "composed run exits 0" "${RT[@]}" "$DEMO" --block 20 --every 100 --tick-starve 110 --every 1000 --duration 1.5 --stats-json "$f"
check "one tick starvation (every 1000 ms) with 20 ms blocks every 100 ms" \
	jt '.ticks.starvation_episodes == 1 and .phases.timers.count > 10 and .timer_lateness.count >= 14' "$f"

# 6. --io --work, SIGUSR1 writes the file while running, SIGTERM ends cleanly.
f=$TMP/io.json
bg "$DEMO" --io --work --stats-json "$f"
pid=$BG_PID
sleep 1.5
kill -USR1 "$pid"
check "SIGUSR1 writes the stats" wait_for 5 test -s "$f"
# The echo client and the pool run on this loop: how fast depends on the machine's
# load, so ask again (SIGUSR1 every 0.5 s, up to 15 s) until the counts are there.
echo_ran() { kill -USR1 "$pid"; sleep 0.5; jt '.iterations > 200 and .phases.poll.count > 200 and .microtasks.drains > 100' "$f"; }
check "echo traffic runs the poll phase (callbacks, iterations)" wait_for 15 echo_ran
kill -TERM "$pid"
wait "$pid"; rc=$?
check "SIGTERM: clean exit (rc $rc), no leak reported by ASan" [ "$rc" = 0 ]
check "stats rewritten at exit" jt '.interval_s >= 1.4' "$f"

# 7. the default mix (what make demo shows) prints live lines and stops on SIGINT.
bg "$DEMO" --stats-json "$TMP/mix.json"
pid=$BG_PID
sleep 2.6
kill -INT "$pid"
wait "$pid"; rc=$?
check "default mix: SIGINT ends it cleanly (rc $rc)" [ "$rc" = 0 ]
check "default mix: echo traffic, pool jobs and a 40 ms block in 2.6 s" \
	jt '.microtasks.drains > 100 and .phases.poll.count > 200 and .phases.timers.max_s >= 0.040' "$TMP/mix.json"
out=$("$LS_BUILD/loopdemo" --print-interval 0.3 --duration 1)
check "--print-interval prints a line per interval with it/s, echo and jobs" \
	bash -c '[ "$(grep -c "it/s.*util.*delay p99" <<<"$1")" -ge 2 ] && grep -q "echo .*jobs" <<<"$1"' _ "$out"
check "quiet by default: nothing on stdout" bash -c '[ -z "$("$1" --block 1 --every 10 --duration 0.3)" ]' _ "$DEMO"

# demo.sh prints a line a second (no terminal here): interrupted once two are out.
bg "$DEMO_SH" >"$TMP/demo_sh.out" 2>&1
pid=$BG_PID
check "tests/demo.sh (make demo) shows live numbers" \
	wait_for 20 bash -c '[ "$(grep -c "it/s.*util.*echo.*jobs" "$1")" -ge 2 ]' _ "$TMP/demo_sh.out"
kill -INT "$pid"
wait "$pid"; rc=$?
check "tests/demo.sh stops cleanly when interrupted (rc $rc)" [ "$rc" = 0 ]

# 8. bad flags are refused with a message, not run.
check "--every without a workload is refused" bash -c '! "$1" --every 10 --duration 1 2>/dev/null' _ "$DEMO"
check "an unwritable --stats-json is refused at start, with a message" \
	bash -c '! "$1" --block 1 --every 10 --duration 5 --stats-json /nonexistent/x.json 2>"$2" && grep -q "cannot write" "$2"' _ "$DEMO" "$TMP/err"
check "negative ms is refused" bash -c '! "$1" --block -5 --duration 1 2>/dev/null' _ "$DEMO"
done_testing
