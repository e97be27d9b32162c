#!/usr/bin/env bash
# timeout: 300
# top -p A -p B when B dies while top attaches: top keeps going with A and shows B's
# fate (its row "exited", an alert with what happened), like serve and stat do (47);
# with every target gone, one line and exit 1.
#  1. B already dead (a zombie its parent has not reaped) when top starts: deterministic.
#  2. Every target such a zombie: one line naming them, exit 1, the screen never taken.
#  3. B SIGKILLed at delays stepped across the measured attach window (launch -> A's
#     row on the screen), so the kill lands before, inside and after the attach.
#  4. A target that execs: attached again with --follow-exec, one line either way.
# B's parent is a shell that execs sleep, which never reaps: a kill leaves a zombie
# until that sleep is stopped (by PID), as a process manager that is slow to reap would.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd tmux
source "$(dirname "$0")/5-top-tmux.bash"

# start_b: a loopdemo B whose parent does not reap it; sets B and HOLD (the parent).
start_b() {
	rm -f "$TMP/b.pid"
	bg sh -c "$LOOPDEMO >/dev/null 2>&1 & echo \$! > $TMP/b.pid; exec sleep 600"
	HOLD=$BG_PID
	wait_for 5 test -s "$TMP/b.pid" || return 1
	B=$(cat "$TMP/b.pid")
}
# stop_b: B's parent goes (its zombie is reaped by init).
stop_b() { kill -KILL "$B" 2>/dev/null; kill "$HOLD" 2>/dev/null; wait "$HOLD" 2>/dev/null; }
is_zombie() { [ "$(awk '{print $3}' /proc/"$1"/stat 2>/dev/null)" = Z ]; }
top_running() { kill -0 "$TOP_PID" 2>/dev/null; }
# quit: q, top exits 0, the pane is cleared for the next round.
quit() {
	tmux_keys q
	wait_screen 8 "TOP_EXIT=0\$" || return 1
	tmux_keys clear Enter
	wait_screen 5 '^PROMPT\$'
}

bg "$LOOPDEMO" --block 20 --every 200 --duration 300
A=$BG_PID
tmux_start 110 30

# 1. B is a zombie before top starts.
start_b
kill -KILL "$B"
wait_for 5 is_zombie "$B"
top_launch -p "$A" -p "$B"
check "zombie B: top shows A" wait_screen 20 "^ +$A loopdemo +reference"
check "zombie B: B's row and alert say it had exited" wait_screen 5 "$B .*exited" "$B.*already exited"
sleep 2	# past top's exit linger: it would have left by now if it thought all was over
check "zombie B: top keeps running with A" top_running
check "zombie B: q exits 0" quit
check "zombie B: nothing on stderr" test ! -s "$TMP/top.err"
stop_b

# 2. Every target gone: one line, exit 1.
start_b
Z1=$B H1=$HOLD
start_b
Z2=$B
kill -KILL "$Z1" "$Z2"
wait_for 5 is_zombie "$Z1"
wait_for 5 is_zombie "$Z2"
tmux_keys "$LOOPSCOPE top -p $Z1 -p $Z2 2>$TMP/e1; echo ALLGONE_EXIT=\$?" Enter
check "all gone: exit 1" wait_screen 20 "ALLGONE_EXIT=1\$"
check "all gone: one line naming both" bash -c "[ \$(wc -l <'$TMP/e1') = 1 ] && grep -q 'process $Z1 ' '$TMP/e1' && grep -q 'process $Z2 ' '$TMP/e1'"
check "all gone: the screen was not taken" test "$(tmux_fmt '#{alternate_on}')" = 0
sed 's/^/# /' "$TMP/e1"
stop_b
B=$Z1 HOLD=$H1 stop_b
tmux_keys clear Enter

# 3. The kill swept across the attach window. The window, measured: launch -> A's row.
windows=()
for _ in 1 2 3; do
	start_b
	t0=$EPOCHREALTIME
	top_launch -p "$A" -p "$B"
	wait_screen 30 "^ +$B loopdemo +reference" || break
	windows+=("$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')")
	quit
	stop_b
done
check "attach window measured 3 times (${windows[*]:-none} s)" test "${#windows[@]}" = 3
window=$(printf '%s\n' "${windows[@]:-1}" | sort -n | sed -n 2p)
window=${window:-1}
n=8
bad=()
kinds=()
for ((i = 0; i < n; i++)); do
	delay=$(awk -v w="$window" -v i="$i" -v n="$n" 'BEGIN { printf "%.3f", w * 1.2 * i / (n - 1) }')
	start_b
	top_launch -p "$A" -p "$B"
	sleep "$delay"
	kill -KILL "$B"
	why=
	if ! wait_screen 30 "^ +$A loopdemo +reference" >/dev/null; then
		why="A not shown (top: $(tr '\n' ' ' <"$TMP/top.err"))"
	elif ! wait_screen 10 "$B .*exited" >/dev/null; then
		why="B's row never said exited"
	else
		sleep 2
		top_running || why="top left: $(tr '\n' ' ' <"$TMP/top.err")"
	fi
	kinds+=("$(tmux_cap | grep -E "^ +$B [a-z]+: " | sed -E "s/^ +$B [a-z]+: //; s/[0-9]+/N/g" | head -1)")
	if top_running; then
		quit || why="${why:-q did not exit 0}"
	else
		tmux_keys clear Enter
	fi
	stop_b
	[ -n "$why" ] && bad+=("${delay}s: $why")
done
check "kill sweep, $n points over 0-$(awk -v w="$window" 'BEGIN { print w * 1.2 }') s: A watched on, B's row exited, top keeps running, q exits 0 (failures: ${bad[*]:-none})" test "${#bad[@]}" = 0
printf '# B alerts seen: %s\n' "$(printf '%s\n' "${kinds[@]}" | sort -u | paste -sd '|')"

# 4. A target that execs the loop again (tests/tools/exec_after.c, once a file exists):
# with --follow-exec top keeps the attach set (and only it) and attaches the new
# program and runs on; without it, it has dropped every capability and cannot (and,
# its only target gone, leaves). Either way the agent's line is printed once the
# terminal is restored, not over the dashboard.
cc -shared -fPIC -O1 -o "$TMP/exec_after.so" "$(dirname "$0")/../tools/exec_after.c" -lpthread
for follow in 1 0; do
	rm -f "$TMP/exec-now"
	LD_PRELOAD=$TMP/exec_after.so LS_EXEC_WHEN=$TMP/exec-now LS_EXEC_PROG=$LOOPDEMO LS_EXEC_ARG=--io \
		bg "$LOOPDEMO"
	Y=$BG_PID
	top_launch -p "$Y" $([ "$follow" = 1 ] && echo --follow-exec)
	wait_screen 30 "^ +$Y loopdemo +reference" >/dev/null
	caps=$(awk '/^CapEff/ { print $2 }' /proc/"$TOP_PID"/status)
	touch "$TMP/exec-now"
	sleep 3
	top_running
	running=$?
	quit
	kill "$Y" 2>/dev/null
	sed 's/^/# /' "$TMP/top.err"
	if [ "$follow" = 1 ]; then
		check "exec, --follow-exec: top keeps the attach set only ($caps)" test "$caps" = 000000c000280000
		check "exec, --follow-exec: top ran on, then one line: attached to the new program" \
			bash -c "[ $running = 0 ] && [ \$(wc -l <'$TMP/top.err') = 1 ] && grep -q 'process $Y .*attached to the new program' '$TMP/top.err'"
	else
		check "exec: top without --follow-exec dropped every capability ($caps)" test "$caps" = 0000000000000000
		# (its only target gone, top leaves by itself)
		check "exec: top without --follow-exec, one line: no longer traced, naming --follow-exec" \
			bash -c "[ \$(grep -c 'process $Y ' '$TMP/top.err') = 1 ] && grep -q 'process $Y .*no longer traced.*--follow-exec' '$TMP/top.err'"
	fi
done
done_testing
