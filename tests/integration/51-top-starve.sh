#!/usr/bin/env bash
# timeout: 90
# loopscope top shows nextTick and microtask starvation banners while the starvation
# lasts (loopdemo --tick-starve / --microtask-starve), with the time so far counting up
# and the callbacks run, and takes them down when it is over.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd tmux
source "$(dirname "$0")/5-top-tmux.bash"

# watch_banner REGEX LIMIT_MS: sample the screen for up to 14 s; pass when the active banner
# (REGEX, first number = ms so far) was seen at least twice with a growing duration
# below LIMIT_MS (so during the starvation), and later was gone again.
watch_banner() {
	local re=$1 limit=$2 end=$((SECONDS + 14)) cap line ms first= last= seen=0 gone=0
	while [ $SECONDS -lt $end ]; do
		cap=$(tmux_cap)
		line=$(grep -m1 -E "$re" <<<"$cap")
		if [ -n "$line" ]; then
			ms=$(sed -E 's/.* for ([0-9.]+)(ms|s) .*/\1 \2/' <<<"$line" | awk '{ print $2 == "s" ? $1 * 1000 : $1 }')
			[ -z "$first" ] && { first=$ms; echo "# first: $line"; }
			if awk -v m="$ms" -v l="$limit" 'BEGIN { exit !(m < l) }'; then seen=$((seen + 1)); last=$ms; fi
		elif [ "$seen" -ge 2 ]; then
			gone=1
			break
		fi
		sleep 0.1
	done
	echo "# banner samples during the starvation: $seen (first ${first:-none} ms, last ${last:-none} ms), gone after: $gone"
	[ "$seen" -ge 2 ] && [ "$gone" = 1 ] && awk -v a="$first" -v b="$last" 'BEGIN { exit !(b > a) }'
}

bg "$LOOPDEMO" --tick-starve 1500 --every 4000 --duration 60
DEMO=$BG_PID
tmux_start 100 32
top_launch -p "$DEMO"
check "top is up" wait_screen 10 "$DEMO loopdemo"
check "nextTick starvation banner while it lasts, counting up" \
	watch_banner "^ !! $DEMO: process.nextTick starvation for [0-9.]+m?s \\([0-9]+ callbacks\\)" 1500
check "the log has the nextTick episode (~1.5 s)" \
	wait_screen 6 "^[0-9:.]+ +$DEMO loopdemo +tick_starvation +[a-z]+ +1\\.[45][0-9]s"
check "the drains line counts the starvation" wait_screen 3 "^nextTick .* starved [1-9]"
tmux_keys q
check "q exits with status 0" wait_screen 5 "TOP_EXIT=0"
kill "$DEMO"; wait "$DEMO" 2>/dev/null

bg "$LOOPDEMO" --microtask-starve 1500 --every 4000 --duration 60
DEMO=$BG_PID
top_launch -p "$DEMO"
check "top is up again" wait_screen 10 "$DEMO loopdemo"
check "microtask starvation banner while it lasts, counting up" \
	watch_banner "^ !! $DEMO: microtask starvation for [0-9.]+m?s \\([0-9]+ callbacks\\)" 1500
check "the log has the microtask episode" \
	wait_screen 6 "^[0-9:.]+ +$DEMO loopdemo +microtask_starvation +[a-z]+ +1\\.[45][0-9]s"
tmux_keys q
check "q exits with status 0" wait_screen 5 "TOP_EXIT=0"
check "top's stderr is clean (no sanitizer report)" bash -c "! grep -qiE 'sanitizer|runtime error' '$TMP/top.err'"
done_testing
