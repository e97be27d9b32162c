#!/usr/bin/env bash
# timeout: 300
# 21-stat-lifecycle: loopscope stat's errors, exits and signals. Every error is one
# line on stderr with a non-zero exit; a target exiting mid-trace is one line and exit
# 0; SIGINT/SIGTERM detach cleanly; and after every case nothing of ours is left in
# the kernel (bpftool prog/link, compared with before the case).
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd bpftool
need_cmd jq
need_cmd setpriv

OUR_PROGS='^(poll_start|poll_end|timer_fired|tick_drain_end|microtask_drain|rl_sample)$'
# IDs of loaded BPF programs with our probe names (bpftool truncates names to 15 chars).
our_prog_ids() { bpftool -j prog list | jq -r --arg re "$OUR_PROGS" '.[] | select((.name // "") | test($re)) | .id' | sort -u; }
# Program IDs some live process holds (a prog or link fd). Debian's bpftool has no
# "pids" field, so read /proc/*/fdinfo. Other engineers' agents may run concurrently
# on a dev machine: their programs are held, a leak of ours would not be.
held_prog_ids() { grep -hs '^prog_id:' /proc/[0-9]*/fdinfo/* | awk '{print $2}' | sort -u; }
# How many BPF programs process $1 holds open.
# (one find, not a readlink per fd: a loaded machine forks slowly)
progs_held_by() { find /proc/"$1"/fd -lname 'anon_inode:bpf-prog' 2>/dev/null | wc -l; }

BEFORE=
mark() { BEFORE=$(our_prog_ids); }
# nothing_left DESC: every program of ours that appeared since mark() is gone, or
# held by some other live process; no bpffs pin of ours either.
# The kernel frees a program some time after its last holder closes it (RCU grace
# periods, which take long on a loaded machine), and other agents on the machine load
# and unload programs of the same names meanwhile. So each case notes the programs
# that appeared and are held by nobody, and the verdicts come at the end: a leak is
# one of them still there, still held by nobody, after every case has run (and up to
# 60 s more); one the kernel freed meanwhile was not.
leaked_progs() {
	local new
	new=$(comm -13 <(echo "$BEFORE") <(our_prog_ids) | grep -v '^$')
	comm -23 <(echo "$new") <(held_prog_ids) | grep -v '^$'
}
nothing_left() {
	local pinned=0
	ls /sys/fs/bpf 2>/dev/null | grep -Eq 'poll_|drain|refloop' && pinned=1
	echo "$1|$pinned|$(leaked_progs | tr '\n' ' ')" >>"$TMP/leak-candidates"
}
# still_leaked IDS...: those of IDS that still exist and that no process holds.
still_leaked() {
	local held id
	held=" $(held_prog_ids | tr '\n' ' ') "
	for id in "$@"; do
		bpftool prog show id "$id" >/dev/null 2>&1 && [[ $held != *" $id "* ]] && echo "$id"
	done
}
none_still_leaked() { [ -z "$(still_leaked $(cut -d'|' -f3 "$TMP/leak-candidates"))" ]; }
leak_verdicts() {
	local desc pinned ids left
	[ -e "$TMP/leak-candidates" ] || return 0
	wait_for 60 none_still_leaked
	while IFS='|' read -r desc pinned ids; do
		left=$(still_leaked $ids | tr '\n' ' ')
		if [ "$pinned" = 0 ] && [ -z "$left" ]; then
			ok "$desc: nothing left attached"
		else
			not_ok "$desc: programs left loaded and held by no process: $left (pinned in bpffs: $pinned)"
		fi
	done <"$TMP/leak-candidates"
}
# wait_exec PID: until the process runs a loopscope reference loop (bg forks a
# shell first; /proc/PID/exe exists before the exec).
wait_exec() { wait_for 5 bash -c "readelf -n /proc/$1/exe 2>/dev/null | grep -q 'Provider: loopscope'"; }
# stat_until COND ARGS...: run "$LS" stat ARGS (they include -d, the bound) with stdout
# in $TMP/out, stderr in $TMP/e; SIGINT it (it reports its last block and exits 0) once
# the command COND succeeds (stat flushes each line). Sets rc.
stat_until() {
	local cond=$1 st
	shift
	: >"$TMP/out"	# before the start: COND must not read the last case's output
	"$LS" stat "$@" >"$TMP/out" 2>"$TMP/e" & st=$!
	_seen() { ! kill -0 "$st" 2>/dev/null || $cond; }
	wait_for 30 _seen
	kill -INT "$st" 2>/dev/null
	wait "$st"; rc=$?
}
# announced KIND: two KIND episodes announced in progress (so the first one is over).
announced() { [ "$(grep -Ec "^! pid [0-9]+ tid [0-9]+: $1 in timers, running for" "$TMP/out")" -ge 2 ]; }
# busy_interval: an interval with no iteration and utilization >= 0.95 in $TMP/out.
# (jq -s: jq -e alone succeeds on an empty file)
busy_interval() { jq -s -e 'any(.[]; .iterations == 0 and .utilization >= 0.95)' "$TMP/out" >/dev/null 2>&1; }
# one_line FILE: exactly one non-empty line.
one_line() { [ "$(grep -c . "$1")" = 1 ]; }

# The agent must be runnable by nobody for the "not permitted" cases.
cp "$LOOPSCOPE" "$TMP/loopscope"
chmod 755 "$TMP" "$TMP/loopscope"
LS="$TMP/loopscope"

# ---- help and version
check "--help exits 0 and lists stat" bash -c "'$LS' --help | grep -q '^  stat '"
check "--version prints the version" bash -c "'$LS' --version | grep -Eq '^loopscope [0-9]+\.[0-9]+'"
check "stat --help exits 0 with usage" bash -c "'$LS' stat --help | grep -q 'usage: loopscope stat -p PID'"

# ---- bad usage: exit 2, one line
"$LS" stat >/dev/null 2>"$TMP/e"; rc=$?
check "stat without -p exits 2 (rc $rc)" [ "$rc" = 2 ]
check "stat without -p: one line" one_line "$TMP/e"
for i in 0 0.05 3601 abc; do
	"$LS" stat -p 1 -i "$i" >/dev/null 2>"$TMP/e"; rc=$?
	check "interval $i out of range: exit 2 (rc $rc)" [ "$rc" = 2 ]
	check "interval $i: one line that says so" bash -c "one_line() { [ \"\$(grep -c . \"\$1\")\" = 1 ]; }; one_line '$TMP/e' && grep -q 'interval out of range' '$TMP/e'"
done
"$LS" stat -p notapid >/dev/null 2>"$TMP/e"; rc=$?
check "bad PID: exit 2 (rc $rc)" [ "$rc" = 2 ]

# ---- no such process
mark
true & gone=$!; wait $gone
"$LS" stat -p "$gone" >/dev/null 2>"$TMP/e"; rc=$?
check "no such PID: exit 1 (rc $rc)" [ "$rc" = 1 ]
check "no such PID: one line 'no such process'" bash -c "[ \$(grep -c . '$TMP/e') = 1 ] && grep -q 'no such process: $gone' '$TMP/e'"
nothing_left "no such PID"

# ---- unsupported target
mark
bg sleep 30; sleeper=$BG_PID
"$LS" stat -p "$sleeper" >/dev/null 2>"$TMP/e"; rc=$?
check "unsupported target: exit 1 (rc $rc)" [ "$rc" = 1 ]
check "unsupported target: one line naming what was looked for" bash -c \
	"[ \$(grep -c . '$TMP/e') = 1 ] && grep -q 'not a supported target' '$TMP/e' && grep -q 'USDT provider' '$TMP/e' && grep -q 'uv_run' '$TMP/e'"
nothing_left "unsupported target"

# ---- no BTF (the check's path is overridable for exactly this test)
bg "$LOOPDEMO" --block 5 --every 100; demo=$BG_PID
wait_exec $demo
mark
LOOPSCOPE_BTF=/nonexistent/vmlinux "$LS" stat -p "$demo" >/dev/null 2>"$TMP/e"; rc=$?
check "no BTF: exit 1 (rc $rc)" [ "$rc" = 1 ]
check "no BTF: one line" bash -c "[ \$(grep -c . '$TMP/e') = 1 ] && grep -q 'no BTF' '$TMP/e'"
nothing_left "no BTF"

# ---- not permitted: nobody tracing root's process, and nobody tracing its own
mark
setpriv --reuid=65534 --regid=65534 --clear-groups "$LS" stat -p "$demo" >/dev/null 2>"$TMP/e"; rc=$?
check "not permitted (other user's process): exit 1 (rc $rc)" [ "$rc" = 1 ]
check "not permitted (other user's process): one line" bash -c "[ \$(grep -c . '$TMP/e') = 1 ] && grep -q 'not permitted' '$TMP/e'"
cp "$LOOPDEMO" "$TMP/loopdemo"; chmod 755 "$TMP/loopdemo"
bg setpriv --reuid=65534 --regid=65534 --clear-groups "$TMP/loopdemo" --block 5 --every 100; nd=$BG_PID
wait_exec $nd
setpriv --reuid=65534 --regid=65534 --clear-groups "$LS" stat -p "$nd" >/dev/null 2>"$TMP/e"; rc=$?
check "not permitted (own process, no CAP_BPF): exit 1 (rc $rc)" [ "$rc" = 1 ]
check "not permitted (own process): one line" bash -c "[ \$(grep -c . '$TMP/e') = 1 ] && grep -q 'not permitted' '$TMP/e'"
kill "$nd" 2>/dev/null
nothing_left "not permitted"

# ---- an attach that fails half-way leaves nothing: our provider, but no timer_fired probe
cat > "$TMP/partial.c" <<'EOF'
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#include <unistd.h>
__extension__ unsigned short loopscope_poll_start_semaphore __attribute__((section(".probes")));
__extension__ unsigned short loopscope_poll_end_semaphore __attribute__((section(".probes")));
int main(void)
{
	for (int i = 0; i < 3000; i++) {
		if (loopscope_poll_start_semaphore)
			STAP_PROBE3(loopscope, poll_start, 0, 0, 0);
		usleep(10000);
		if (loopscope_poll_end_semaphore)
			STAP_PROBE2(loopscope, poll_end, 0, 0);
	}
	return 0;
}
EOF
if gcc -O1 -o "$TMP/partial" "$TMP/partial.c"; then
	bg "$TMP/partial"; part=$BG_PID
	wait_exec $part
	mark
	"$LS" stat -p "$part" >/dev/null 2>"$TMP/e"; rc=$?
	check "half-way attach failure: exit 1 (rc $rc)" [ "$rc" = 1 ]
	check "half-way attach failure: one line naming the probe" bash -c "[ \$(grep -c . '$TMP/e') = 1 ] && grep -q 'timer_fired' '$TMP/e'"
	nothing_left "half-way attach failure"
	kill "$part" 2>/dev/null
else
	not_ok "compile the partial-provider target (gcc and sys/sdt.h are build dependencies)"
fi

# ---- SIGINT and SIGTERM detach cleanly and exit 0
for sig in INT TERM; do
	mark
	rm -f "$TMP/out"
	"$LS" stat -p "$demo" -i 0.2 >"$TMP/out" 2>"$TMP/e" & st=$!
	wait_for 10 grep -q '^pid ' "$TMP/out"
	held=$(progs_held_by "$st")
	check "SIG$sig: the agent held its 5 programs while tracing (held $held)" [ "$held" = 5 ]
	kill -"$sig" "$st"; wait "$st"; rc=$?
	check "SIG$sig: exit 0 (rc $rc)" [ "$rc" = 0 ]
	check "SIG$sig: the target is unharmed" kill -0 "$demo"
	nothing_left "SIG$sig"
done

# ---- a stall in progress is announced while it happens, then finished
# (stat stops at -d 2.5 or once a second stall is announced: the first one is over,
# so it is in the last block)
bg "$LOOPDEMO" --block 400 --every 700; staller=$BG_PID
wait_exec $staller
mark
stat_until "announced stall" -p "$staller" -i 5 -d 2.5
check "stall run: exit 0 after -d or SIGINT (rc $rc)" [ "$rc" = 0 ]
check "stall in progress announced ('! pid ... stall in timers, running for')" \
	grep -Eq "^! pid $staller tid [0-9]+: stall in timers, running for" "$TMP/out"
check "finished stall listed in the block" grep -Eq '^    stall in timers: (3|4)[0-9][0-9]\.[0-9]+ ms' "$TMP/out"
nothing_left "stall run"
kill "$staller" 2>/dev/null

# ---- starvation in progress is announced too (the drain is read from the loop's record)
bg "$LOOPDEMO" --microtask-starve 400 --every 700; starver=$BG_PID
wait_exec $starver
stat_until "announced microtask_starvation" -p "$starver" -i 5 -d 2.5
check "starvation run: exit 0 (rc $rc)" [ "$rc" = 0 ]
check "microtask starvation in progress announced" \
	grep -Eq "^! pid $starver tid [0-9]+: microtask_starvation in timers, running for" "$TMP/out"
check "finished microtask starvation listed with its callbacks" \
	grep -Eq '^    microtask_starvation in timers: (3|4)[0-9][0-9]\.[0-9]+ ms, [0-9]+ callbacks' "$TMP/out"
kill "$starver" 2>/dev/null

# ---- a loop blocked for longer than an interval shows as busy while it blocks
# (stat stops at -d 4.5 or once it has printed such an interval)
bg "$LOOPDEMO" --io --block 1500 --every 2000; blocker=$BG_PID
wait_exec $blocker
stat_until busy_interval -p "$blocker" -i 0.5 -d 4.5 --json
check "long block: exit 0 (rc $rc)" [ "$rc" = 0 ]
jq -c '{interval_s, iterations, utilization}' "$TMP/out" | sed 's/^/# /'
check "long block: an interval inside the block has utilization >= 0.95 with no iteration" \
	busy_interval
kill "$blocker" 2>/dev/null

# ---- -d: the requested number of intervals, the target keeps running
mark
"$LS" stat -p "$demo" -i 0.5 -d 1.6 --json >"$TMP/out" 2>"$TMP/e"; rc=$?
n=$(grep -c '^{' "$TMP/out")
check "-d 1.6 -i 0.5: exit 0 (rc $rc)" [ "$rc" = 0 ]
check "-d 1.6 -i 0.5: 4 JSON lines, 3 full intervals and the rest (got $n)" [ "$n" = 4 ]
check "--json: every line parses and names the loop" bash -c "jq -e 'select(.pid == $demo and .runtime == \"reference\" and (.phases | length) == 7)' '$TMP/out' | grep -c '^{' | grep -qx $n"
check "-d: target still running" kill -0 "$demo"
nothing_left "-d"

# ---- the only target exits mid-trace: one line, exit 0
mark
# (ended by SIGTERM once stat traces it: how long attaching takes depends on the load)
bg "$LOOPDEMO" --block 5 --every 100; short=$BG_PID
wait_exec $short
"$LS" stat -p "$short" -i 0.5 >"$TMP/out" 2>"$TMP/e" & st=$!
wait_for 30 grep -q tracing "$TMP/e"
wait_for 10 grep -q '^pid ' "$TMP/out"	# past the first interval
kill -TERM "$short"
wait "$st"; rc=$?
check "only target exits: exit 0 (rc $rc)" [ "$rc" = 0 ]
check "only target exits: one line says so" bash -c "[ \$(grep -c 'exited' '$TMP/e') = 1 ] && grep -q 'process $short exited' '$TMP/e'"
check "only target exits: its last block is marked (exited)" grep -q "^pid $short .*(exited)" "$TMP/out"
nothing_left "only target exits"

# ---- a target killed in the middle of a poll wait: its counters never go back
# A snapshot taken during a wait counts the wait up to then; the kernel would add the
# whole wait at the next poll entry, which a killed loop never reaches. The last
# interval must not read that as a restarted counter and count the total again (it
# did: poll wait summed over the intervals at twice the time traced). A loop that
# waits ~700 ms between callbacks is in a wait at almost any moment it is killed.
mark
bg "$LOOPDEMO" --block 1 --every 700; idle=$BG_PID
wait_exec $idle
"$LS" stat -p "$idle" -i 0.5 --json >"$TMP/out" 2>"$TMP/e" & st=$!
# (--json says nothing on stderr once tracing: the lines are the sign)
wait_for 40 bash -c "[ \$(grep -c '^{' '$TMP/out') -ge 4 ]"
kill -KILL "$idle"
wait "$st"; rc=$?
check "killed mid-wait: exit 0 (rc $rc)" [ "$rc" = 0 ]
# Every interval's poll wait fits in the interval, and so does their sum in the time
# the intervals cover (each at most interval_s; 1% for clock reads).
check "killed mid-wait: no interval's poll wait exceeds its length" \
	bash -c "jq -se 'length >= 4 and all(.[]; .poll_wait_s <= .interval_s * 1.01 + 0.001)' '$TMP/out' >/dev/null"
check "killed mid-wait: the poll wait summed fits in the time traced" \
	bash -c "jq -se '(map(.poll_wait_s) | add) <= (map(.interval_s) | add) * 1.01 + 0.001' '$TMP/out' >/dev/null"
nothing_left "killed mid-wait"
# ---- two targets, one exits: the agent goes on with the other and drops the dead one's probes
mark
bg "$LOOPDEMO" --block 5 --every 100; a=$BG_PID
wait_exec $a
"$LS" stat -p "$a" -p "$demo" -i 0.5 -d 3.5 --json >"$TMP/out" 2>"$TMP/e" & st=$!
# --json prints no "tracing" line: attached is when it holds both targets' programs
held_is() { h=$(progs_held_by "$st"); [ "$h" = "$1" ]; }
wait_for 30 held_is 10
h1=$h
sleep 0.5
kill -TERM "$a"
wait_for 10 held_is 5
h2=$h
wait "$st"; rc=$?
check "two targets: 10 programs held while both live (held $h1)" [ "$h1" = 10 ]
check "two targets: 5 programs held after one exited (held $h2)" [ "$h2" = 5 ]
check "two targets, one exits: exit 0 (rc $rc)" [ "$rc" = 0 ]
check "two targets: one line for the exit" bash -c "[ \$(grep -c 'exited' '$TMP/e') = 1 ] && grep -q 'process $a exited' '$TMP/e'"
na=$(jq -r "select(.pid == $a) | .pid" "$TMP/out" | wc -l)
nd=$(jq -r "select(.pid == $demo) | .pid" "$TMP/out" | wc -l)
check "two targets: the exited one stops being reported ($na lines), the other goes on ($nd lines)" \
	bash -c "[ $na -ge 1 ] && [ $na -le 4 ] && [ $nd -ge 7 ]"
nothing_left "two targets"

# ---- a thread id instead of the process id; the same -p twice
bg "$LOOPDEMO" --work; w=$BG_PID	# ended by the cleanup: outlives a slow attach
wait_exec $w
wait_for 3 bash -c "[ \$(ls /proc/$w/task | wc -l) -gt 1 ]"
tid=$(ls /proc/$w/task | grep -vx "$w" | head -1)
"$LS" stat -p "$tid" -i 0.5 -d 0.5 >"$TMP/out" 2>"$TMP/e"; rc=$?
check "thread id: exit 1 (rc $rc)" [ "$rc" = 1 ]
check "thread id: says whose thread it is ($(head -c 200 "$TMP/e"))" \
	grep -qx "loopscope stat: $tid is a thread of process $w; give the process id" "$TMP/e"
"$LS" stat -p "$w" -p "$w" -i 0.5 -d 1 --json >"$TMP/out" 2>"$TMP/e"; rc=$?
check "-p twice: exit 0, traced once (rc $rc: $(head -c 200 "$TMP/e"))" [ "$rc" = 0 ]
check "-p twice: one line per interval, not two ($(grep -c . "$TMP/out") lines)" \
	bash -c "[ \$(jq -r .pid '$TMP/out' | sort -u | wc -l) = 1 ] && [ \$(grep -c . '$TMP/out') -le 3 ]"
nothing_left "thread id and -p twice"

check "the demo target survived every attach and detach" kill -0 "$demo"
leak_verdicts
done_testing
