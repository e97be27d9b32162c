#!/usr/bin/env bash
# timeout: 180
# loopscope top on two processes at once, an unmodified Node.js program (GC pauses and a
# 300 ms busy timer callback) and loopdemo: one header line each, j/k moves the detail to
# the other process (arrow keys or j/k), the Node one shows its GC pauses and alerts on its stall.
# On the newest official Node.js build and the system's node (tests/lib.sh node_matrix full).
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd tmux
on_node_matrix full
source "$(dirname "$0")/5-top-tmux.bash"

cat >"$TMP/app.js" <<'EOF'
// Garbage for the collector every 100 ms, and a 300 ms busy timer callback every 1.5 s.
let keep = [];
setInterval(() => { keep = []; for (let i = 0; i < 200000; i++) keep.push({ i, s: 'x' + i }); }, 100);
setInterval(() => { const t = Date.now(); while (Date.now() - t < 300); }, 1500);
setTimeout(() => process.exit(0), 60000);
EOF
bg "$NODE" "$TMP/app.js"
NODE=$BG_PID
bg "$LOOPDEMO" --block 20 --every 200 --duration 60
DEMO=$BG_PID
sleep 0.5

# wide enough for the detail line with Node 26's 15-letter comm and the versions
tmux_start 120 40
stty_before=$(tmux_stty)
top_launch --probes phases -p "$DEMO" -p "$NODE"
# The process's name: "node", or what Node 24 and 26 call their main thread.
comm=$(cat "/proc/$NODE/comm")
check "one header line per process" wait_screen 15 "^ +$DEMO loopdemo +reference " "^ +$NODE $comm +node "
check "the first -p is selected at first" wait_screen 3 "^$DEMO loopdemo +reference/usdt +last"
# Rows are in pid, then thread order; the Node process is above or below loopdemo, and
# may have a second loop (its platform's delayed-task thread runs one) between them.
# Arrow keys one way, j/k the other.
if [ "$NODE" -lt "$DEMO" ]; then to_node=Up to_demo=j; else to_node=Down to_demo=k; fi
# press KEY up to three times until the detail line matches RE
press_until() {
	local key=$1 re=$2
	for _ in 1 2 3; do
		tmux_keys "$key"
		wait_screen 2 "$re" >/dev/null && return 0
	done
	wait_screen 1 "$re"
}
check "$to_node moves the detail to the Node process's main loop" \
	press_until $to_node "^$NODE $comm main +node/phases +last"
check "the detail line names Node's and libuv's versions" \
	wait_screen 3 "^$NODE $comm main +node/phases +last .* node [0-9]+\.[0-9]+\.[0-9]+, libuv 1\.[0-9]+\.[0-9]+"
check "Node: its GC pauses are counted" wait_screen 10 "^GC +[1-9][0-9]* pauses +total [0-9.]+[mun]?s"
check "Node: per-phase rows at --probes phases" wait_screen 5 "^[ >]timers .*%" "^[ >]poll .*%"
check "Node: its 300 ms callback alerts while it runs" \
	wait_screen 10 "^ !! $NODE $comm: (stalled in [a-z]+|not polling) for [0-9]+ms"
check "Node: the stall reaches the episode log" wait_screen 5 "^[0-9:.]+ +$NODE $comm +stall +"
check "$to_demo moves back" press_until $to_demo "^$DEMO loopdemo +reference/usdt +last"
tmux_keys q
check "q exits with status 0" wait_screen 5 "TOP_EXIT=0\$"
check "tty modes as before" test "$(tmux_stty)" = "$stty_before"
check "both targets still run" kill -0 "$NODE" "$DEMO"
check "top's stderr is clean (no sanitizer report)" bash -c "! grep -qiE 'sanitizer|runtime error' '$TMP/top.err'"
done_testing
