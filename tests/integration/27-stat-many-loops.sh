#!/usr/bin/env bash
# timeout: 60
# 27-stat-many-loops: one process with more loop threads (18) than the kernel side has
# slots for (REFLOOP_MAX_LOOPS, 16). The 16 are reported; the others are not dropped
# silently: stat warns on stderr, and the JSON note of the target says how many probe
# hits were not measured.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd jq
SRC=$(cd "$(dirname "$0")/../.." && pwd)
NLOOPS=18

cat >"$TMP/manyloops.c" <<'CEOF'
/* N loops on N threads, each with a 5 ms repeating timer, for S seconds or until
 * SIGTERM (then every loop ends at its next tick and the process exits 0). */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include "lsl.h"

static double seconds;
static volatile sig_atomic_t stop_now;

static void on_term(int sig)
{
	stop_now = 1;
}

static void on_tick(lsl_timer_t *t)
{
	if (stop_now || lsl_hrtime_ns() >= *(uint64_t *)t->h.data)
		lsl_close(&t->h, NULL);
}

static void *run(void *arg)
{
	lsl_loop_t *loop;
	lsl_timer_t t;
	uint64_t stop = lsl_hrtime_ns() + (uint64_t)(seconds * 1e9);

	(void)arg;
	if (lsl_loop_new(&loop) || lsl_timer_init(loop, &t))
		exit(1);
	t.h.data = &stop;
	lsl_timer_start(&t, on_tick, 5, 5);
	lsl_run(loop);
	if (lsl_loop_close(loop))
		exit(1);
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[1]) : 0;
	pthread_t th[64];

	if (n < 1 || n > 64)
		return 2;
	seconds = atof(argv[2]);
	signal(SIGTERM, on_term);
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, run, NULL);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	return 0;
}
CEOF
if ! gcc -O2 -D_GNU_SOURCE -I"$SRC/loop/include" -o "$TMP/manyloops" "$TMP/manyloops.c" "$LS_BUILD/liblsl.a" -lpthread -lm; then
	not_ok "build the many-loop target against build/liblsl.a"
	done_testing
fi

# Ended by SIGTERM once both stat runs are done (attaching takes longer on a loaded
# machine; 60 s is only the bound).
bg "$TMP/manyloops" $NLOOPS 60; pid=$BG_PID
wait_for 5 bash -c "[ \$(ls /proc/$pid/task 2>/dev/null | wc -l) -ge $((NLOOPS + 1)) ]"
"$LOOPSCOPE" stat -p "$pid" -i 1 -d 2 >"$TMP/out" 2>"$TMP/err"; rc=$?
check "text: stat exits 0 (rc $rc: $(head -c 200 "$TMP/err"))" [ "$rc" = 0 ]
n=$(grep -c "reference loop" "$TMP/out")
check "text: 16 loops per interval over 2 intervals ($n blocks)" [ "$n" = 32 ]
check "text: a warning line about the untracked loops: $(grep -m1 beyond "$TMP/err")" \
	grep -q "^loopscope stat: pid $pid: loop threads beyond the first 16 are not measured ([0-9]* probe hits dropped)$" "$TMP/err"

"$LOOPSCOPE" stat -p "$pid" -i 1 -d 1 --json >"$TMP/json" 2>"$TMP/err2"; rc=$?
check "json: stat exits 0 (rc $rc)" [ "$rc" = 0 ]
check "json: 16 lines, one per tracked loop ($(grep -c . "$TMP/json"))" bash -c "[ \$(grep -c . '$TMP/json') = 16 ]"
check "json: the warning on stderr too" grep -q "loop threads beyond the first 16" "$TMP/err2"
kill -TERM "$pid"
wait "$pid"; prc=$?
check "the target exited 0 (rc $prc)" [ "$prc" = 0 ]
done_testing
