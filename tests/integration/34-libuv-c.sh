#!/usr/bin/env bash
# timeout: 60
# A C program linked with Debian's libuv1 (stripped: exported symbols only) is
# attached: it reports utilization close to the program's own busy fraction, the
# runtime "libuv", the light tier, and one note saying what is unavailable and why.
# The same program linked statically with Debian's libuv_a.a into a PIE (symbols kept,
# no uv_version, a load bias) gets the phases tier and timer lateness, the uv_loop_t
# layout confirmed on its live default loop.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd gcc
need_cmd curl
[ -e /usr/include/uv.h ] || skip "needs libuv1-dev"

cat >"$TMP/uvbusy.c" <<'C'
/* A repeating 10 ms libuv timer whose callback busy-waits 5 ms; after 4 s prints its
 * own busy fraction (callback time / wall time since the first callback) and the
 * median lateness of its callbacks: start minus the due time, which is the timer's
 * timeout field (loop ms) as the previous callback saw it (libuv re-arms a repeating
 * timer before calling it). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

static uint64_t first, busy, due, late[1000];
static unsigned nlate;

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void on_timer(uv_timer_t *t)
{
	uint64_t s = uv_hrtime();

	if (!first)
		first = s;
	if (due && nlate < 1000)
		late[nlate++] = s > due * 1000000ull ? s - due * 1000000ull : 0;
	due = t->timeout;	/* the next due time, in loop ms */
	while (uv_hrtime() - s < 5000000)
		;
	busy += uv_hrtime() - s;
	if (uv_hrtime() - first > 4000000000ull) {
		qsort(late, nlate, sizeof(late[0]), cmp);
		printf("busy_fraction %.4f\nlate_p50_ms %.3f\n", (double)busy / (double)(uv_hrtime() - first),
		       late[nlate / 2] / 1e6);
		uv_timer_stop(t);
	}
}

int main(void)
{
	uv_timer_t t;

	uv_timer_init(uv_default_loop(), &t);
	uv_timer_start(&t, on_timer, 10, 10);
	printf("ready\n");
	fflush(stdout);
	return uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}
C
gcc -O1 -o "$TMP/uvbusy" "$TMP/uvbusy.c" -luv || { not_ok "build the libuv1 program"; done_testing; }
ok "built a program against Debian's libuv1"

# Asked for phases it cannot have, stat still runs (light) and says why in one line.
bg "$TMP/uvbusy" >"$TMP/ph.out"
upid=$BG_PID
wait_for 5 grep -q ready "$TMP/ph.out"
"$LOOPSCOPE" stat -p "$upid" -d 0.5 -i 0.5 --json --probes phases >"$TMP/ph.json" 2>"$TMP/ph.err"
check "stat --probes phases on the stripped libuv exits 0" [ $? = 0 ]
check "and says on stderr, in one line, why light runs: '$(head -c 200 "$TMP/ph.err")'" \
	bash -c "grep -q '^loopscope stat: pid $upid: phases unavailable (uv__io_poll has no symbol): light tier used\$' '$TMP/ph.err' && [ \$(grep -vc 'process $upid exited' '$TMP/ph.err') = 1 ]"
check "and reports the loop" [ -s "$TMP/ph.json" ]
kill "$upid"; wait "$upid" 2>/dev/null

bg "$TMP/uvbusy" >"$TMP/uvbusy.out"
upid=$BG_PID
wait_for 5 grep -q ready "$TMP/uvbusy.out"
sleep 0.5
"$LOOPSCOPE" stat -p "$upid" -d 2 -i 2 --json >"$TMP/stat.json" 2>"$TMP/stat.err"
check "stat exits 0 ($(head -c 200 "$TMP/stat.err"))" [ $? = 0 ]
bg "$LOOPSCOPE" serve -p "$upid" -l 127.0.0.1:0 2>"$TMP/serve.err"
spid=$BG_PID
wait_for 10 grep -q listening "$TMP/serve.err"
addr=$(grep -oE '127\.0\.0\.1:[0-9]+' "$TMP/serve.err" | head -1)
curl -s -m 3 "http://$addr/events" >"$TMP/events.ndjson"
kill "$spid"; wait "$spid" 2>/dev/null
wait "$upid"
own=$(awk '/busy_fraction/ { print $2 }' "$TMP/uvbusy.out")

read -r rt util iters <<<"$(python3 -c '
import json, sys
o = [json.loads(l) for l in open(sys.argv[1])]
m = [x for x in o if x["tid"] == x["pid"]][-1]
print(m["runtime"], m["utilization"], m["iterations"])
' "$TMP/stat.json")"
check "runtime is libuv (got $rt)" [ "$rt" = libuv ]
check "the loop iterated ($iters iterations in 2 s)" [ "${iters:-0}" -gt 50 ]
check "utilization $util vs the program's own busy fraction $own (within 0.05)" within "$util" "$own" 0 0.05
read -r tier uvv note <<<"$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o.get("type") == "snapshot" and o["targets"]:
        t = o["targets"][0]
        print(t["tier"], t.get("libuv_version") or "-", t["note"])
        break
' "$TMP/events.ndjson")"
check "tier light (got '$tier')" [ "$tier" = light ]
check "/events names the libuv version, Debian's libuv1 1.44 (got '$uvv')" bash -c "[[ '$uvv' == 1.44.* ]]"
check "the note says why phases and timers are unavailable: '$note'" \
	bash -c "grep -q 'stripped' <<<'$note' && grep -q 'uv__run_timers' <<<'$note'"


# Static libuv in a PIE: libuv 1.44 runs timers at the top of the iteration.
[ -e /usr/lib/x86_64-linux-gnu/libuv_a.a ] || { not_ok "libuv_a.a (libuv1-dev) is missing"; done_testing; }
gcc -O1 -fPIE -pie -o "$TMP/uvstatic" "$TMP/uvbusy.c" /usr/lib/x86_64-linux-gnu/libuv_a.a -lpthread -ldl ||
	{ not_ok "build the static libuv program"; done_testing; }
bg "$TMP/uvstatic" >"$TMP/uvstatic.out"
upid=$BG_PID
wait_for 5 grep -q ready "$TMP/uvstatic.out"
sleep 0.5
"$LOOPSCOPE" stat -p "$upid" -d 2 -i 2 --json --probes phases >"$TMP/static.json" 2>"$TMP/static.err"
check "static PIE: stat --probes phases exits 0 ($(head -c 200 "$TMP/static.err"))" [ $? = 0 ]
wait "$upid"
own=$(awk '/busy_fraction/ { print $2 }' "$TMP/uvstatic.out")
own_late=$(awk '/late_p50_ms/ { print $2 }' "$TMP/uvstatic.out")
read -r util late late_p50 timers nph <<<"$(python3 -c '
import json, sys
o = [json.loads(l) for l in open(sys.argv[1])]
m = [x for x in o if x["tid"] == x["pid"]][-1]
ph = m.get("phases", {})
tl = m.get("timer_lateness", {})
print(m["utilization"], tl.get("count", 0), tl.get("p50_s", -1) * 1e3, ph.get("timers", {}).get("count", 0),
      sum(1 for v in ph.values() if v["count"] > 0))
' "$TMP/static.json")"
check "static PIE: utilization $util vs its own busy fraction $own (within 0.05)" within "$util" "$own" 0 0.05
check "static PIE: timer lateness measured ($late samples)" [ "${late:-0}" -gt 50 ]
# libuv 1.44 computes the poll timeout from the loop time taken before the 5 ms
# callback, so every tick is ~5 ms late: a real lateness to agree on, within the 1 ms
# the loop clock's resolution allows (plus half a bucket).
check "static PIE: lateness p50 $late_p50 ms vs the program's own $own_late ms (within 1.5 ms)" \
	within "$late_p50" "$own_late" 0 1.5
check "static PIE: every phase measured ($nph of 7, timers ran $timers times)" [ "${nph:-0}" = 7 ]
done_testing
