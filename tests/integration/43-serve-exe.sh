#!/usr/bin/env bash
# timeout: 90
# 43-serve-exe: `loopscope serve --exe PATH` picks up a process started after the agent
# and drops it when it exits (target_up 0, then gone after --keep-exited), and a second
# process of the same binary is picked up too. The binary is a private copy of loopdemo,
# so loopdemos that other tests run are not matched; a symlink to it is given as the
# path, to show the match is by file, not by name.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd curl

cp "$LOOPDEMO" "$TMP/mydemo"
ln -s "$TMP/mydemo" "$TMP/link-to-demo"

bg "$LOOPSCOPE" serve --exe "$TMP/link-to-demo" --listen 127.0.0.1:0 --keep-exited 4 2>"$TMP/serve.err"
SERVE=$BG_PID
wait_for 20 grep -q 'listening on' "$TMP/serve.err" || { cat "$TMP/serve.err"; not_ok "serve starts"; done_testing; }
PORT=$(grep -o '127\.0\.0\.1:[0-9]*' "$TMP/serve.err" | head -1 | cut -d: -f2)
metrics() { curl -sf "http://127.0.0.1:$PORT/metrics"; }
attached() { metrics | awk '$1 == "loopscope_attached_targets" { print $2 }'; }
up_of() { metrics | grep "^loopscope_target_up{pid=\"$1\"," | awk '{ print $2 }'; }

check "no process of that binary yet: attached_targets 0" [ "$(attached)" = 0 ]

# The processes run until the test ends them with SIGTERM (loopdemo exits 0 on it),
# once the checks of their lifetime are done; --duration 60 only bounds them.
# Started after the agent: found by the next /proc scan (1 s interval) and shown by the
# next snapshot (/metrics renders the interval's snapshot): within about 2 s.
"$TMP/mydemo" --block 2 --every 20 --duration 60 >/dev/null 2>&1 &
D1=$!
_pids+=("$D1")
t0=$SECONDS
if wait_for 8 sh -c "[ \"\$(curl -sf http://127.0.0.1:$PORT/metrics | grep -c '^loopscope_target_up{pid=\"$D1\",.*} 1')\" = 1 ]"; then
	ok "a process started after the agent is attached within $((SECONDS - t0)) s (target_up 1)"
else
	not_ok "process $D1 started after the agent was not picked up; stderr: $(tail -3 "$TMP/serve.err")"
fi
check "its loop is measured (iterations grow)" wait_for 8 sh -c \
	"curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^loopscope_iterations_total{pid=\"$D1\",.*} [1-9]'"

# A second process of the same binary.
"$TMP/mydemo" --duration 60 >/dev/null 2>&1 &
D2=$!
_pids+=("$D2")
check "a second process of the binary is attached too (attached_targets 2)" wait_for 8 sh -c \
	"curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^loopscope_attached_targets 2\$'"

# Exits: target_up 0 within an interval, and gone after --keep-exited (4 s).
kill -TERM "$D2"
wait "$D2" 2>/dev/null
check "the second one exits first: target_up 0 for it, 1 for the first" wait_for 8 sh -c \
	"curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^loopscope_target_up{pid=\"$D2\",.*} 0' &&
	 curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^loopscope_target_up{pid=\"$D1\",.*} 1'"
kill -TERM "$D1"
wait "$D1" 2>/dev/null
check "after both exit: attached_targets 0" wait_for 8 sh -c \
	"curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^loopscope_attached_targets 0\$'"
up=$(up_of "$D1")
check "the exited process reads target_up 0 (got '$up')" [ "$up" = 0 ]
check "and is dropped from /metrics after --keep-exited" wait_for 8 sh -c \
	"! curl -sf http://127.0.0.1:$PORT/metrics | grep -q 'pid=\"$D1\"'"
check "serve logged both attaches" [ "$(grep -c 'attached to' "$TMP/serve.err")" = 2 ]

# A process that starts again after the others left is picked up (the scan goes on).
"$TMP/mydemo" --duration 60 >/dev/null 2>&1 &
D3=$!
_pids+=("$D3")
check "a later process is picked up after the others exited" wait_for 8 sh -c \
	"curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^loopscope_target_up{pid=\"$D3\",.*} 1'"
kill -TERM "$D3"
wait "$D3" 2>/dev/null

kill -TERM "$SERVE"
wait "$SERVE"
rc=$?
check "serve exits 0 on SIGTERM (ASan clean, rc $rc)" [ "$rc" = 0 ]
done_testing
