#!/usr/bin/env bash
# timeout: 120
# loopscope top under tmux against loopdemo (--block 300 --every 2000): the phase names
# and numbers appear, a 300 ms block shows a stall alert within 1 s of its start, keys
# work, resizing to 80x24 keeps the screen whole, and q leaves a clean shell (terminal
# restored, nothing of ours attached).
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd tmux
need_cmd bpftool
need_cmd jq
source "$(dirname "$0")/5-top-tmux.bash"

# SCHED_FIFO: the 300 ms blocks are checked as 300 ms; a neighbour must not stretch
# them (chrt execs the demo, so the PID is the demo's)
bg chrt -f 10 "$LOOPDEMO" --block 300 --every 2000 --duration 100
DEMO=$BG_PID
tmux_start 120 40
stty_before=$(tmux_stty)
top_launch -p "$DEMO"

# 1. The screen comes up with every phase and real numbers.
check "top draws its title and the target's header line" \
	wait_screen 10 "loopscope top" "$DEMO loopdemo"
check "the timers phase shows the 300 ms blocks as its p99" wait_screen 30 '^>? ?timers .* 29[0-9]ms|^>? ?timers .* 30[0-9]ms'
cap=$(tmux_cap)
for ph in timers pending idle prepare poll check close; do
	if grep -qE "^[ >]$ph +[^ ]+ +[0-9.]+% " <<<"$cap"; then ok "phase $ph has a bar and a share"; else
		not_ok "phase $ph has a bar and a share"; echo "$cap" | sed 's/^/# /'; fi
done
check "the time in no phase has its own row" grep -qE "^ other +[^ ]+ +[0-9.]+%" <<<"$cap"
check "the shares (seven phases and other) add up to 100%" python3 -c '
import re, sys
rows = [l for l in sys.stdin if re.match(r"^[ >](timers|pending|idle|prepare|poll|check|close|other) ", l)]
tot = sum(float(re.search(r" ([0-9.]+)%", l).group(1)) for l in rows)
print("# %d rows, %.1f%%" % (len(rows), tot))
sys.exit(0 if len(rows) == 8 and 99.5 <= tot <= 100.5 else 1)' <<<"$cap"
check "the delay line has p50/p99/max over its span" grep -qE '^delay [0-9hms]+ p50 [0-9.]+[mun]?s +p99 [0-9.]+[mun]?s +max' <<<"$cap"
check "the header line shows the reference runtime and a rate" \
	grep -qE "^ +$DEMO loopdemo +reference +[0-9.]+k? +[0-9.]+%" <<<"$cap"

# 2. A 300 ms block alerts while it happens, within 1 s of its start (the start is the
# episode's start time the log shows once it is over).
alert_at= alert_line=
end=$((SECONDS + 20))	# blocks come every 2 s: several chances to catch one live
while [ $SECONDS -lt $end ]; do
	line=$(tmux_cap | grep -m1 -E "^ !! $DEMO: stalled in timers for [0-9]+ms")
	if [ -n "$line" ]; then alert_at=$(date +%s.%N); alert_line=$line; break; fi
	sleep 0.05
done
if [ -n "$alert_at" ]; then
	ok "a stall alert appeared: $alert_line"
	# Once the block is over its log line holds its start (wall clock, ms).
	sleep 0.6
	start=
	for t in $(tmux_cap | grep -E "^[0-9:.]+ +$DEMO loopdemo +stall +timers +[0-9]+ms" | awk '{print $1}'); do
		s=$(date -d "$t" +%s.%N)
		if awk -v s="$s" -v a="$alert_at" 'BEGIN { exit !(s <= a + 0.05) }'; then
			if [ -z "$start" ] || awk -v s="$s" -v b="$start" 'BEGIN { exit !(s > b) }'; then start=$s; fi
		fi
	done
	if [ -n "$start" ]; then
		lag=$(awk -v s="$start" -v a="$alert_at" 'BEGIN { printf "%.3f", a - s }')
		check "stall alert on screen ${lag}s after the block started (< 1 s)" \
			awk -v l="$lag" 'BEGIN { exit !(l >= 0 && l < 1.0) }'
	else
		not_ok "the stalled block's episode is in the log"; tmux_cap | sed 's/^/# /'
	fi
else
	not_ok "a stall alert appeared within 20 s"; tmux_cap | sed 's/^/# /'
fi
check "the stall episode is in the log with its phase and ~300 ms" \
	wait_screen 4 "^[0-9:.]+ +$DEMO loopdemo +stall +timers +(29[0-9]|30[0-9]|31[0-9])ms"

# 3. Keys: help overlay, sort, pause.
tmux_keys h
check "h opens the help overlay" wait_screen 3 "pause / resume"
sleep 0.6	# a refresh or two over it
check "the help box is clean: no bar or strip cell shows through" python3 -c '
import sys
lines = sys.stdin.read().split("\n")
y = next(i for i, l in enumerate(lines) if "loopscope top: keys" in l)
x = lines[y].index("loopscope top: keys") - 2
bad = set("\u00b7\u2588\u258f\u258e\u258d\u258c\u258b\u258a\u2589\u2581\u2582\u2583\u2584\u2585\u2586\u2587")
for l in lines[y - 1:y + 19]:
    if bad & set(l[x:x + 52]):
        print("# stray cell in the help box: %r" % l); sys.exit(1)' <<<"$(tmux_cap)"
tmux_keys x
check "any key closes it" wait_screen_not 3 "pause / resume"
tmux_keys s
check "s sorts by delay" wait_screen 3 "sort delay"
tmux_keys p
check "p pauses" wait_screen 3 "PAUSED"
tmux_keys p
check "p resumes" wait_screen_not 3 "PAUSED"
tmux_keys r
check "r resets the window" wait_screen 3 "  last [0-2]s  "

# 4. Resizing to 80x24 keeps the screen whole.
tmux_resize 80 24
sleep 1
cap=$(tmux_cap)
check "80x24: 24 lines" test "$(tmux_cap_raw | wc -l)" = 24
check "80x24: title on the first line" grep -q "^ loopscope top" <<<"$(head -1 <<<"$cap")"
check "80x24: keys on the last line" grep -q "q quit" <<<"$(tmux_cap_raw | tail -1)"
for ph in timers pending idle prepare poll check close; do
	check "80x24: phase $ph still shown" grep -qE "^[ >]$ph " <<<"$cap"
done
check "80x24: header line still shown" grep -q "PID COMM" <<<"$cap"
check "80x24: no line wider than 80 columns" python3 -c '
import sys
w = max(len(l.rstrip("\n")) for l in sys.stdin)
sys.exit(0 if w <= 80 else 1)' <<<"$cap"
# 60x15: columns are left out, not cut; the headings stay over their columns.
tmux_resize 60 15
sleep 1
cap=$(tmux_cap)
check "60x15: the phase headings are over their numbers" python3 -c '
import re, sys
lines = sys.stdin.read().split("\n")
head = next(i for i, l in enumerate(lines) if re.search(r"share +p50 +p99 +max$", l))
rows = [l for l in lines[head + 1:head + 8]]
for word in ("share", "p50", "p99", "max"):
    e = lines[head].index(word) + len(word) - 1
    for l in rows:
        if len(l) <= e or l[e] == " " or (len(l) > e + 1 and l[e + 1] != " "):
            print("# not under %r: %r" % (word, l)); sys.exit(1)' <<<"$cap"
check "60x15: STATE is over the state, whole" python3 -c '
import re, sys
lines = sys.stdin.read().split("\n")
head = next(i for i, l in enumerate(lines) if "PID COMM" in l)
x = lines[head].index("STATE")
sys.exit(0 if re.match(r"(polling|running \w+|STALL \w+ [0-9.]+m?s)$", lines[head + 1][x:].rstrip()) else 1)' <<<"$cap"
check "60x15: keys on the last line" grep -q "q quit" <<<"$(tmux_cap_raw | tail -1)"
tmux_resize 120 40
check "back to 120x40: the screen follows" wait_screen 3 "EPISODES"

# 5. q: a clean shell, the terminal restored, nothing attached.
links=$(top_link_ids)
progs=$(top_prog_ids)
check "top holds bpf links while it runs" test -n "$links"
tmux_keys q
check "q exits with status 0" wait_screen 5 "TOP_EXIT=0"
check "the alternate screen is off" test "$(tmux_fmt '#{alternate_on}')" = 0
check "the cursor is visible" test "$(tmux_fmt '#{cursor_flag}')" = 1
check "tty modes are as before (stty -g)" test "$(tmux_stty)" = "$stty_before"
check "the shell prompt is back" wait_screen 3 "^PROMPT\\$ *$"
check "no bpf link of ours is left" links_gone "$links"
check "no bpf program of ours is left" progs_gone "$progs"
check "top's stderr is clean (no sanitizer report)" bash -c "! grep -qiE 'sanitizer|runtime error' '$TMP/top.err'"
check "the demo loop is still running" kill -0 "$DEMO"
done_testing
